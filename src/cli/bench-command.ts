/**
 * `ezipc bench`: load a running hub the way a deployment would (like `nats bench`), with the client's default
 * settings, and report what it did: messages/s, MB/s, latency percentiles, and what was lost.
 *
 * - Pub/sub: `--pub N` publishers send `--msgs K` messages of `--size B` bytes in all, fire-and-forget with
 *   backpressure (`drain`), to one topic; `--sub M` subscribers each expect every message. A payload starts
 *   with its send time, so latency is measured end to end (all clients run in this process: one clock).
 * - RPC (`--rpc`): `--sub M` servers answer, `--pub N` callers make `--msgs K` requests in all, one in flight
 *   per caller.
 * Progress is shown while it runs (a live line on a terminal, a plain line a second otherwise); the end is a
 * table, or JSON with `--json`. Every loop is bounded by the message count and by `--timeout-ms`.
 */
import type { Command } from "commander";
import type { HubClient } from "../client/client.js";
import { withTimeout } from "../deadline.js";
import { EzipcError } from "../errors.js";
import { cliSecurity, hubUrlOption, nonNegativeInt } from "./hub-commands.js";

interface BenchOptions {
  url: string;
  pub: number;
  sub: number;
  size: number;
  msgs: number;
  rpc?: boolean;
  json?: boolean;
  timeoutMs: number;
}

/** What a run reports. */
export interface BenchReport {
  mode: "pubsub" | "rpc";
  publishers: number;
  subscribers: number;
  size: number;
  sent: number;
  received: number;
  expected: number;
  lost: number;
  gaps: number;
  seconds: number;
  messagesPerSecond: number;
  megabytesPerSecond: number;
  latencyUs: { p50: number; p90: number; p99: number; max: number };
}

/** Latency samples, bounded: beyond the capacity each new sample replaces a random one (reservoir). */
class Samples {
  private readonly values: Float64Array;
  private n = 0;
  constructor(capacity = 1_000_000) {
    this.values = new Float64Array(capacity);
  }
  add(v: number): void {
    if (this.n < this.values.length) this.values[this.n] = v;
    else {
      const i = Math.floor(Math.random() * (this.n + 1));
      if (i < this.values.length) this.values[i] = v;
    }
    this.n++;
  }
  percentiles(): { p50: number; p90: number; p99: number; max: number } {
    const v = this.values.slice(0, Math.min(this.n, this.values.length)).sort();
    const at = (q: number) => (v.length === 0 ? 0 : v[Math.min(v.length - 1, Math.floor(q * v.length))]!);
    return { p50: at(0.5), p90: at(0.9), p99: at(0.99), max: v.length ? v[v.length - 1]! : 0 };
  }
}

const nowUs = () => Number(process.hrtime.bigint() / 1000n);

function positive(v: string): number {
  const n = nonNegativeInt(v);
  if (n === 0) throw new EzipcError("EZIPC_BAD_REQUEST", "expected a positive integer");
  return n;
}

export function addBenchCommand(program: Command, defaults: { tcp: string }): void {
  program
    .command("bench")
    .description("load a running hub with publishers and subscribers (or callers and servers) and report")
    .argument("[topic]", "the topic to use", "ezipc.bench")
    .option(...hubUrlOption(defaults.tcp))
    .option("--pub <n>", "publishers (callers with --rpc)", positive, 1)
    .option("--sub <n>", "subscribers (servers with --rpc)", nonNegativeInt, 1)
    .option("--size <bytes>", "payload size (at least 8: it carries the send time)", positive, 128)
    .option("--msgs <n>", "messages (requests with --rpc) in all", positive, 100_000)
    .option("--rpc", "request/reply instead of pub/sub")
    .option("--json", "print the result as JSON")
    .option("--timeout-ms <ms>", "give up after this long", positive, 120_000)
    .action(async (topic: string, o: BenchOptions) => {
      if (o.size < 8) throw new EzipcError("EZIPC_BAD_REQUEST", "--size must be at least 8 bytes");
      if (o.rpc && o.sub === 0)
        throw new EzipcError("EZIPC_BAD_REQUEST", "--rpc needs at least one server (--sub)");
      const report = o.rpc ? await benchRpc(topic, o) : await benchPubSub(topic, o);
      process.stdout.write(o.json ? `${JSON.stringify(report, null, 2)}\n` : table(report));
      if (report.lost > 0) process.exitCode = 1;
    });
}

async function clients(n: number, o: BenchOptions, role: string): Promise<HubClient[]> {
  const { connect } = await import("../client/client.js");
  return Promise.all(
    Array.from({ length: n }, (_, i) =>
      connect(o.url, { name: `ezipc-bench-${role}${i}`, reconnect: false, ...cliSecurity() }),
    ),
  );
}

/** Prints progress while `running`: a live line on a terminal, a plain line each second otherwise. */
function progress(o: BenchOptions, status: () => string): () => void {
  if (o.json) return () => {};
  const tty = Boolean(process.stderr.isTTY);
  const timer = setInterval(
    () => process.stderr.write(tty ? `\r${status()}\u001b[K` : `${status()}\n`),
    tty ? 250 : 1_000,
  );
  return () => {
    clearInterval(timer);
    if (tty) process.stderr.write("\r\u001b[K");
  };
}

async function benchPubSub(topic: string, o: BenchOptions): Promise<BenchReport> {
  const subs = await clients(o.sub, o, "sub");
  const pubs = await clients(o.pub, o, "pub");
  const samples = new Samples();
  let received = 0;
  let gaps = 0;
  let sent = 0;
  const expected = o.msgs * o.sub;
  let allIn: () => void = () => {};
  const done = new Promise<void>((r) => {
    allIn = r;
  });
  for (const s of subs) {
    const sub = await s.subscribe(topic, { init: "awaitNew" }, (m) => {
      samples.add(
        nowUs() - Number(Buffer.from(m.payload.buffer, m.payload.byteOffset, 8).readBigUInt64LE(0)),
      );
      if (++received >= expected) allIn();
    });
    sub.on("gap", (g) => {
      gaps += Number(g.last - g.first + 1n);
    });
  }
  if (expected === 0) allIn();
  const t0 = performance.now();
  const stop = progress(o, () => {
    const s = (performance.now() - t0) / 1000;
    const p = samples.percentiles();
    return `sent ${sent}/${o.msgs}  received ${received}/${expected}  ${Math.round(received / s)} msg/s  p50 ${p.p50} µs  p99 ${p.p99} µs`;
  });
  const payload = Buffer.alloc(o.size);
  const per = Math.ceil(o.msgs / o.pub);
  const deadline = Date.now() + o.timeoutMs;
  try {
    await Promise.all(
      pubs.map(async (p, i) => {
        const mine = Math.min(per, o.msgs - i * per);
        for (let j = 0; j < mine && Date.now() < deadline; j++) {
          payload.writeBigUInt64LE(BigInt(nowUs()), 0);
          sent++;
          if (!p.publishAndForget(topic, payload)) await p.drain();
        }
        await p.drain();
      }),
    );
    // What has not arrived by the deadline is reported as lost.
    await withTimeout(done, Math.max(0, deadline - Date.now()), () => new EzipcError("EZIPC_TIMEOUT")).catch(
      () => {},
    );
  } finally {
    stop();
  }
  const seconds = (performance.now() - t0) / 1000;
  await Promise.all([...pubs, ...subs].map((c) => c.close()));
  return report("pubsub", o, sent, received, expected, gaps, seconds, samples);
}

async function benchRpc(topic: string, o: BenchOptions): Promise<BenchReport> {
  const servers = await clients(o.sub, o, "server");
  for (const s of servers) await s.serve(topic, (req) => req.payload);
  const callers = await clients(o.pub, o, "caller");
  const samples = new Samples();
  let received = 0;
  const payload = Buffer.alloc(o.size);
  const per = Math.ceil(o.msgs / o.pub);
  const deadline = Date.now() + o.timeoutMs;
  const t0 = performance.now();
  const stop = progress(o, () => {
    const s = (performance.now() - t0) / 1000;
    const p = samples.percentiles();
    return `replies ${received}/${o.msgs}  ${Math.round(received / s)} req/s  p50 ${p.p50} µs  p99 ${p.p99} µs`;
  });
  try {
    await Promise.all(
      callers.map(async (c, i) => {
        const mine = Math.min(per, o.msgs - i * per);
        for (let j = 0; j < mine && Date.now() < deadline; j++) {
          const t = nowUs();
          await c.request(topic, payload);
          samples.add(nowUs() - t);
          received++;
        }
      }),
    );
  } finally {
    stop();
  }
  const seconds = (performance.now() - t0) / 1000;
  await Promise.all([...callers, ...servers].map((c) => c.close()));
  return report("rpc", o, o.msgs, received, o.msgs, 0, seconds, samples);
}

function report(
  mode: "pubsub" | "rpc",
  o: BenchOptions,
  sent: number,
  received: number,
  expected: number,
  gaps: number,
  seconds: number,
  samples: Samples,
): BenchReport {
  return {
    mode,
    publishers: o.pub,
    subscribers: o.sub,
    size: o.size,
    sent,
    received,
    expected,
    lost: expected - received,
    gaps,
    seconds: Number(seconds.toFixed(3)),
    messagesPerSecond: Math.round(received / seconds),
    megabytesPerSecond: Number(((received * o.size) / seconds / 1e6).toFixed(2)),
    latencyUs: samples.percentiles(),
  };
}

function table(r: BenchReport): string {
  const what =
    r.mode === "rpc"
      ? `${r.publishers} callers → ${r.subscribers} servers`
      : `${r.publishers} pub → ${r.subscribers} sub`;
  const rows = [
    ["case", `${what}, ${r.size} B`],
    [r.mode === "rpc" ? "requests/s" : "deliveries/s", String(r.messagesPerSecond)],
    ["MB/s", String(r.megabytesPerSecond)],
    [
      "latency p50 / p90 / p99 / max (µs)",
      `${r.latencyUs.p50} / ${r.latencyUs.p90} / ${r.latencyUs.p99} / ${r.latencyUs.max}`,
    ],
    ["received / expected", `${r.received} / ${r.expected}`],
    ["lost (in gaps)", `${r.lost} (${r.gaps})`],
    ["seconds", String(r.seconds)],
  ];
  const w = Math.max(...rows.map((x) => x[0]!.length));
  return `${rows.map(([k, v]) => `${k!.padEnd(w)}  ${v}`).join("\n")}\n`;
}
