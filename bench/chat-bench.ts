/**
 * The chat server under load: 1,000 connected clients in 10 rooms, each room receiving 100 lines a second
 * (every client says one line a second): delivery latency and the server's CPU; and the store's write rate
 * for SQLite and MariaDB, in one-tick batches (as the server writes) and one line per transaction.
 */
import { randomBytes } from "node:crypto";
import { readFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import mysql from "mysql2/promise";
import { childScript, collect, freeUrl, runRole, stop, withServer } from "./procs.js";

const script = fileURLToPath(new URL("./chat-child.js", import.meta.url));
const MYSQL = process.env.EZIPC_TEST_MYSQL ?? "mysql://ezipc:ezipc@127.0.0.1:3306";

/** CPU seconds (user + system) a process has used so far (Linux /proc). */
function cpuSeconds(pid: number): number {
  const fields = readFileSync(`/proc/${pid}/stat`, "utf8").split(") ")[1]!.split(" ");
  return (Number(fields[11]) + Number(fields[12])) / 100; // utime, stime in clock ticks (100 Hz)
}

async function mysqlDb(): Promise<string | null> {
  try {
    const admin = await mysql.createConnection(MYSQL);
    const name = `ezipc_bench_${randomBytes(4).toString("hex")}`;
    await admin.query(`CREATE DATABASE ${name}`);
    await admin.end();
    return `${MYSQL}/${name}`;
  } catch {
    return null;
  }
}

export async function chatBench(quick: boolean): Promise<string[]> {
  const rooms = 10;
  const perRoom = quick ? 20 : 100;
  const seconds = quick ? 2 : 5;
  const sqlite = () =>
    `sqlite:${path.join(os.tmpdir(), `ezipc-chat-bench-${process.pid}-${randomBytes(3).toString("hex")}.db`)}`;
  const lines: string[] = [
    `### Chat server: ${rooms * perRoom} clients in ${rooms} rooms, ${perRoom} lines/s per room, ${seconds} s (SQLite store)`,
    "",
    "| deliveries/s | latency p50 (µs) | latency p99 (µs) | server CPU | raw node:net echo RTT p50 (µs, same run) |",
    "|---:|---:|---:|---:|---:|",
  ];
  const rtt = await withServer(childScript, ["echo-raw", freeUrl("tcp", 900)], async (url) => {
    const { out } = await runRole(childScript, ["ping-raw", url, "5000", "64"]);
    return JSON.parse(out) as { p50Us: number };
  }).catch(() => ({ p50Us: Number.NaN }));
  const { out, proc } = await runRole(script, ["server", sqlite()]);
  const url = out.split("\n")[0]!.slice("ready ".length);
  try {
    const clients = await runRole(script, ["clients", url, String(rooms), String(perRoom), String(seconds)]);
    const result = collect(clients.proc);
    const cpu0 = cpuSeconds(proc.pid!);
    const t0 = Date.now();
    const r = JSON.parse((await result).trim().split("\n").at(-1)!) as {
      p50Us: number;
      p99Us: number;
      delivered: number;
    };
    const cpu = (cpuSeconds(proc.pid!) - cpu0) / ((Date.now() - t0) / 1000);
    lines.push(
      `| ${Math.round(r.delivered / seconds)} | ${r.p50Us.toFixed(0)} | ${r.p99Us.toFixed(0)} | ${(cpu * 100).toFixed(0)}% of a core | ${rtt.p50Us.toFixed(1)} |`,
    );
    process.stderr.write(`${lines.at(-1)}\n`);
  } finally {
    await stop(proc);
  }
  lines.push(
    "",
    "### Chat store write rate (lines/s)",
    "",
    "| store | one tick's lines per transaction (100) | one line per transaction |",
    "|---|---:|---:|",
  );
  const n = quick ? 2_000 : 20_000;
  for (const [name, db] of [
    ["SQLite (WAL, each transaction synced)", sqlite()],
    ["MariaDB (InnoDB)", await mysqlDb()],
  ] as const) {
    if (!db) {
      lines.push(`| ${name} | n/a | n/a |`);
      continue;
    }
    const batched = JSON.parse((await runRole(script, ["store", db, String(n), "100"])).out) as {
      linesPerSec: number;
    };
    const single = JSON.parse(
      (await runRole(script, ["store", db, String(Math.floor(n / 10)), "1"])).out,
    ) as {
      linesPerSec: number;
    };
    lines.push(`| ${name} | ${Math.round(batched.linesPerSec)} | ${Math.round(single.linesPerSec)} |`);
    process.stderr.write(`${lines.at(-1)}\n`);
  }
  return lines;
}
