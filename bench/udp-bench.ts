/**
 * udp:// beside raw node:dgram, in one run: one-way datagrams/s at 64 B and 1 KiB (measured at the
 * receiver, first to last datagram) with the share lost, and echo round trips beside raw dgram and tcp://.
 * Sender and receiver in separate processes; raw and ezipc runs interleaved; medians of `runs`.
 */
import { fileURLToPath } from "node:url";
import { fastestCipher } from "../src/security/channel.js";
import { childScript, nextLine, runRole, withServer } from "./procs.js";
import { median } from "./stats.js";

const script = fileURLToPath(new URL("./udp-child.js", import.meta.url));

type Kind = "raw" | "ezipc" | "sealed";

async function oneWay(kind: Kind, size: number, n: number): Promise<{ rate: number; lost: number }> {
  return withServer(script, [`recv-${kind}`, "udp://127.0.0.1:0"], async (url, recv) => {
    const line = nextLine(recv);
    await runRole(script, [`send-${kind}`, url, String(n), String(size)]);
    const r = JSON.parse(await line) as { received: number; seconds: number };
    return { rate: r.received / r.seconds, lost: 1 - r.received / n };
  });
}

async function roundTrip(kind: Kind | "tcp", count: number): Promise<number> {
  if (kind === "tcp") {
    return withServer(childScript, ["echo-ezipc", "tcp://127.0.0.1:0"], async (url) => {
      const { out } = await runRole(childScript, ["ping-ezipc", url, String(count), "64"]);
      return (JSON.parse(out) as { p50Us: number }).p50Us;
    });
  }
  return withServer(script, [`echo-${kind}`, "udp://127.0.0.1:0"], async (url) => {
    const { out } = await runRole(script, [`ping-${kind}`, url, String(count)]);
    return (JSON.parse(out) as { p50Us: number }).p50Us;
  });
}

const fmt = (x: number) => (x >= 1e6 ? `${(x / 1e6).toFixed(2)} M` : `${(x / 1e3).toFixed(0)} k`);
const pct = (x: number) => `${(x * 100).toFixed(1)}%`;

export async function udpBench(quick: boolean): Promise<string[]> {
  const runs = quick ? 1 : 3;
  const lines = [
    `### udp:// beside raw node:dgram, sender and receiver in separate processes, medians of ${runs}`,
    "",
    "| | raw dgram | ezipc udp:// | ezipc / raw | target | lost: raw / ezipc |",
    "|---|---:|---:|---:|---:|---:|",
  ];
  for (const size of [64, 1024]) {
    const n = quick ? 20_000 : 500_000;
    const raw: { rate: number; lost: number }[] = [];
    const ez: { rate: number; lost: number }[] = [];
    for (let i = 0; i < runs; i++) {
      raw.push(await oneWay("raw", size, n));
      ez.push(await oneWay("ezipc", size, n));
    }
    const [r, e] = [median(raw.map((x) => x.rate)), median(ez.map((x) => x.rate))];
    const [rl, el] = [median(raw.map((x) => x.lost)), median(ez.map((x) => x.lost))];
    lines.push(
      `| datagrams/s, ${size} B | ${fmt(r)} | ${fmt(e)} | ${((e / r) * 100).toFixed(0)}% | ≥ 80% | ${pct(rl)} / ${pct(el)} |`,
    );
    process.stderr.write(`${lines.at(-1)}\n`);
  }
  const count = quick ? 2_000 : 20_000;
  const rt: Record<Kind | "tcp", number[]> = { raw: [], ezipc: [], sealed: [], tcp: [] };
  for (let i = 0; i < runs; i++)
    for (const k of ["raw", "ezipc", "sealed", "tcp"] as const) rt[k].push(await roundTrip(k, count));
  const [r, e, t] = [median(rt.raw), median(rt.ezipc), median(rt.tcp)];
  lines.push(
    `| echo round trip p50, 64 B (µs) | ${r.toFixed(1)} | ${e.toFixed(1)} | ${(e / r).toFixed(2)}× |  | tcp:// ${t.toFixed(1)} |`,
  );
  // Encrypted datagrams beside plain ones, interleaved in the same run.
  lines.push(
    "",
    `Encrypted udp:// (Noise IK, then each datagram sealed with ${fastestCipher()} and an explicit nonce) beside plain udp://:`,
    "",
    "| | plain udp:// | encrypted udp:// | encrypted / plain | lost: plain / encrypted |",
    "|---|---:|---:|---:|---:|",
  );
  for (const size of [64, 1024]) {
    const n = quick ? 20_000 : 300_000;
    const plain: { rate: number; lost: number }[] = [];
    const sealed: { rate: number; lost: number }[] = [];
    for (let i = 0; i < runs; i++) {
      plain.push(await oneWay("ezipc", size, n));
      sealed.push(await oneWay("sealed", size, n));
    }
    const [p, q] = [median(plain.map((x) => x.rate)), median(sealed.map((x) => x.rate))];
    const [pl, ql] = [median(plain.map((x) => x.lost)), median(sealed.map((x) => x.lost))];
    lines.push(
      `| datagrams/s, ${size} B | ${fmt(p)} | ${fmt(q)} | ${((q / p) * 100).toFixed(0)}% | ${pct(pl)} / ${pct(ql)} |`,
    );
    process.stderr.write(`${lines.at(-1)}\n`);
  }
  const s = median(rt.sealed);
  lines.push(
    `| echo round trip p50, 64 B (µs) | ${e.toFixed(1)} | ${s.toFixed(1)} | ${(s / e).toFixed(2)}× |  |`,
  );
  return lines;
}
