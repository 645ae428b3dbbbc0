/**
 * ws:// beside the raw `ws` library and beside tcp://, in one run: one-way throughput (measured at the
 * receiver, first to last message) and echo round trips, sender and receiver in separate processes. Raw
 * and ezipc runs are interleaved; each figure is the median of `runs`.
 */
import { fileURLToPath } from "node:url";
import { childScript, freeUrl, nextLine, runRole, withServer } from "./procs.js";
import { median } from "./stats.js";

const wsScript = fileURLToPath(new URL("./ws-child.js", import.meta.url));
let seq = 9000;

type Kind = "rawws" | "ws" | "tcp";

function script(kind: Kind): string {
  return kind === "rawws" ? wsScript : childScript;
}
const role = (kind: Kind, r: string) => `${r}-${kind === "rawws" ? "rawws" : "ezipc"}`;
const address = (kind: Kind) => (kind === "tcp" ? freeUrl("tcp", seq++) : "ws://127.0.0.1:0");

async function throughput(kind: Kind, size: number, n: number): Promise<number> {
  return withServer(script(kind), [role(kind, "recv"), address(kind), String(n)], async (url, recv) => {
    const line = nextLine(recv);
    await runRole(script(kind), [role(kind, "send"), url, String(n), String(size)]);
    return n / (JSON.parse(await line) as { seconds: number }).seconds;
  });
}

async function roundTrip(kind: Kind, count: number): Promise<number> {
  return withServer(script(kind), [role(kind, "echo"), address(kind)], async (url) => {
    const { out } = await runRole(script(kind), [role(kind, "ping"), url, String(count), "64"]);
    return (JSON.parse(out) as { p50Us: number }).p50Us;
  });
}

const fmt = (x: number) => (x >= 1e6 ? `${(x / 1e6).toFixed(2)} M` : `${(x / 1e3).toFixed(0)} k`);

export async function wsBench(quick: boolean): Promise<string[]> {
  const runs = quick ? 1 : 3;
  const lines = [
    `### ws:// (WebSocket) beside the raw \`ws\` library and tcp://, sender and receiver in separate processes, medians of ${runs}`,
    "",
    "| | raw ws | ezipc ws:// | ezipc / raw ws | target | ezipc tcp:// |",
    "|---|---:|---:|---:|---:|---:|",
  ];
  for (const size of [64, 1024]) {
    const n = quick ? 20_000 : size === 64 ? 2_000_000 : 600_000;
    const r: Record<Kind, number[]> = { rawws: [], ws: [], tcp: [] };
    for (let i = 0; i < runs; i++)
      for (const k of ["rawws", "ws", "tcp"] as Kind[]) r[k].push(await throughput(k, size, n));
    const [raw, ws, tcp] = [median(r.rawws), median(r.ws), median(r.tcp)];
    lines.push(
      `| throughput, ${size} B (msg/s) | ${fmt(raw)} | ${fmt(ws)} | ${((ws / raw) * 100).toFixed(0)}% | ≥ 90% | ${fmt(tcp)} |`,
    );
    process.stderr.write(`${lines.at(-1)}\n`);
  }
  const count = quick ? 2_000 : 20_000;
  const r: Record<Kind, number[]> = { rawws: [], ws: [], tcp: [] };
  for (let i = 0; i < runs; i++)
    for (const k of ["rawws", "ws", "tcp"] as Kind[]) r[k].push(await roundTrip(k, count));
  const [raw, ws, tcp] = [median(r.rawws), median(r.ws), median(r.tcp)];
  lines.push(
    `| echo round trip p50, 64 B (µs) | ${raw.toFixed(1)} | ${ws.toFixed(1)} | ${(ws / raw).toFixed(2)}× | ≤ 1.1× | ${tcp.toFixed(1)} |`,
  );
  return lines;
}
