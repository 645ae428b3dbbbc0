/**
 * Pub/sub and RPC through the hub, each beside NATS measured in the same run (a local nats-server, the
 * nats npm client): pub → sub throughput at 64 B and 1 KiB, fan-out to 10 subscribers, request/reply round
 * trips (and the raw node:net echo), and the replay rate of a topic's stored history.
 */

import { type ChildProcess, spawn, spawnSync } from "node:child_process";
import { fileURLToPath } from "node:url";
import { childScript, collect, freeUrl, procUsage, runRole, stop, withServer } from "./procs.js";
import { median } from "./stats.js";

const script = fileURLToPath(new URL("./pubsub-child.js", import.meta.url));
let seq = 3000;

export function natsAvailable(): boolean {
  return spawnSync("nats-server", ["--version"], { encoding: "utf8" }).status === 0;
}

export async function withNats<T>(fn: (url: string, proc: ChildProcess) => Promise<T>): Promise<T> {
  // `-p -1`: nats-server binds a port of its own choosing and logs it, so no two runs race for one port.
  const proc = spawn("nats-server", ["-a", "127.0.0.1", "-p", "-1"], { stdio: ["ignore", "ignore", "pipe"] });
  const url = await new Promise<string>((resolve, reject) => {
    let err = "";
    let port = "";
    proc.stderr!.on("data", (d: Buffer) => {
      err += d.toString();
      port ||= /Listening for client connections on [^\s]*:(\d+)/.exec(err)?.[1] ?? "";
      if (port && err.includes("Server is ready")) resolve(`tcp://127.0.0.1:${port}`);
    });
    proc.once("exit", (code) => reject(new Error(`nats-server exited ${code}: ${err}`)));
  });
  try {
    return await fn(url, proc);
  } finally {
    await stop(proc);
  }
}

function withHub<T>(fn: (url: string, proc: ChildProcess) => Promise<T>): Promise<T> {
  return withServer(script, ["hub", freeUrl("tcp", seq++)], fn);
}

function withRawRelay<T>(fn: (url: string, proc: ChildProcess) => Promise<T>): Promise<T> {
  return withServer(script, ["raw-relay", freeUrl("tcp", seq++)], fn);
}

interface FanOut {
  /** Deliveries per second. */
  rate: number;
  /** Messages the subscribers were told they missed. */
  lost: number;
  /** The broker's CPU time per delivery (µs). */
  cpuUs: number;
  /** The broker's peak resident memory (bytes). */
  peakRss: number;
}

/** `subs` subscribers receiving n messages of `size` bytes each through `broker`. */
async function fanOut(
  sys: "ez" | "nats" | "raw",
  url: string,
  broker: ChildProcess,
  n: number,
  size: number,
  subs: number,
): Promise<FanOut> {
  const topic = `bench.t${seq++}`;
  const sub = await runRole(script, [`${sys}-sub`, url, topic, String(n), String(subs)]);
  const result = collect(sub.proc);
  const before = procUsage(broker.pid!);
  await runRole(script, [`${sys}-pub`, url, topic, String(n), String(size)]);
  const r = JSON.parse((await result).trim().split("\n").at(-1)!) as {
    deliveries: number;
    lost?: number;
    seconds: number;
  };
  const after = procUsage(broker.pid!);
  return {
    rate: r.deliveries / r.seconds,
    lost: r.lost ?? 0,
    cpuUs: ((after.cpuMs - before.cpuMs) * 1000) / (n * subs),
    peakRss: after.peakRssBytes,
  };
}

/** Request/reply round trips; `ez-hub` is the hub with direct RPC off (every call through the hub). */
async function rtt(
  sys: "ez" | "ez-hub" | "nats",
  url: string,
  count: number,
): Promise<{ p50Us: number; p99Us: number }> {
  const topic = `rpc.t${seq++}`;
  const role = sys === "nats" ? "nats" : "ez";
  const replier = await runRole(script, [`${role}-reply`, url, topic]);
  try {
    const args = [`${role}-req`, url, topic, String(count), ...(sys === "ez-hub" ? ["hub"] : [])];
    const { out } = await runRole(script, args);
    return JSON.parse(out) as { p50Us: number; p99Us: number };
  } finally {
    replier.proc.kill("SIGKILL");
  }
}

const fmt = (x: number) =>
  x >= 1e6 ? `${(x / 1e6).toFixed(2)} M` : x >= 1e3 ? `${(x / 1e3).toFixed(0)} k` : x.toFixed(0);

export async function pubsubBench(quick: boolean): Promise<string[]> {
  const lines: string[] = [];
  const nats = natsAvailable();
  const runs = quick ? 1 : 3;
  const na = (x: number | undefined) => (x === undefined ? "n/a" : fmt(x));
  if (!nats)
    lines.push("_nats-server is not installed: NATS columns are empty (`apt-get install nats-server`)._", "");

  const cases: { name: string; size: number; subs: number; n: number; target: string }[] = [
    { name: "1 → 1, 64 B", size: 64, subs: 1, n: quick ? 50_000 : 2_000_000, target: "≥ 2×" },
    { name: "1 → 1, 1 KiB", size: 1024, subs: 1, n: quick ? 20_000 : 1_000_000, target: "≥ 2×" },
    { name: "1 → 10, 64 B (fan-out)", size: 64, subs: 10, n: quick ? 10_000 : 300_000, target: "" },
  ];
  lines.push(
    `### Pub/sub through the hub vs NATS (deliveries/s), publisher, broker and subscribers in separate processes, medians of ${runs}`,
  );
  lines.push("");
  lines.push(
    `Every side with its defaults: a fire-and-forget publisher that waits when \`publishAndForget\` returns false; default subscribers (prefetch 16384, \`prefetchBytes\` 8 MiB); a default hub (16 MiB per topic). \`lost\`: messages the ezipc subscribers were told they missed (gaps), over all runs. Each run carries ${fmt(cases[0]!.n)} messages at 64 B, ${fmt(cases[1]!.n)} at 1 KiB and ${fmt(cases[2]!.n)} to each of 10 subscribers: long enough for every process to reach its steady rate (with fresh processes, the first 100 k messages at 1 KiB go at half the later rate while they warm up: V8 compiling their code, heaps growing).`,
  );
  lines.push("");
  lines.push(
    "| case | raw node:net relay (ceiling) | NATS | ezipc hub | ezipc lost | hub / NATS | hub / raw relay | target |",
  );
  lines.push("|---|---:|---:|---:|---:|---:|---:|---:|");
  let liveRate = 0;
  const costLines: string[] = [];
  for (const c of cases) {
    const ezRuns: FanOut[] = [];
    const ntRuns: FanOut[] = [];
    const rawRuns: FanOut[] = [];
    for (let r = 0; r < runs; r++) {
      rawRuns.push(await withRawRelay((url, p) => fanOut("raw", url, p, c.n, c.size, c.subs)));
      if (nats) ntRuns.push(await withNats((url, p) => fanOut("nats", url, p, c.n, c.size, c.subs)));
      ezRuns.push(await withHub((url, p) => fanOut("ez", url, p, c.n, c.size, c.subs)));
    }
    const lost = ezRuns.reduce((a, x) => a + x.lost, 0);
    const e = median(ezRuns.map((x) => x.rate));
    const n = ntRuns.length > 0 ? median(ntRuns.map((x) => x.rate)) : undefined;
    const w = median(rawRuns.map((x) => x.rate));
    const cost = (xs: FanOut[]) =>
      xs.length === 0
        ? "n/a | n/a"
        : `${median(xs.map((x) => x.cpuUs)).toFixed(2)} | ${(Math.max(...xs.map((x) => x.peakRss)) / 2 ** 20).toFixed(0)}`;
    costLines.push(`| ${c.name} | ${cost(rawRuns)} | ${cost(ntRuns)} | ${cost(ezRuns)} |`);
    if (c.subs === 1 && c.size === 64) liveRate = e;
    lines.push(
      `| ${c.name} | ${fmt(w)} | ${na(n)} | ${fmt(e)} | ${lost} | ${n ? `${(e / n).toFixed(2)}×` : "n/a"} | ${((100 * e) / w).toFixed(0)}% | ${c.target} |`,
    );
    process.stderr.write(`${lines.at(-1)}\n`);
  }
  lines.push("");
  lines.push(
    "Broker cost in the same runs: CPU time of the broker process per delivered message (µs, median; from /proc), and its peak resident memory (MiB, the largest over the runs).",
  );
  lines.push("");
  lines.push(
    "| case | raw relay CPU µs | raw relay peak RSS | NATS CPU µs | NATS peak RSS | hub CPU µs | hub peak RSS |",
  );
  lines.push("|---|---:|---:|---:|---:|---:|---:|");
  lines.push(...costLines);
  process.stderr.write(`${costLines.join("\n")}\n`);

  const count = quick ? 2_000 : 20_000;
  const rawRuns: number[][] = [[], []];
  const ezRuns: number[][] = [[], []];
  const ezHubRuns: number[][] = [[], []];
  const relayRuns: number[][] = [[], []];
  const natsRuns: number[][] = [[], []];
  for (let r = 0; r < runs; r++) {
    const raw = await withServer(childScript, ["echo-raw", freeUrl("tcp", seq++)], async (url) => {
      const { out } = await runRole(childScript, ["ping-raw", url, String(count), "64"]);
      return JSON.parse(out) as { p50Us: number; p99Us: number };
    });
    rawRuns[0]!.push(raw.p50Us);
    rawRuns[1]!.push(raw.p99Us);
    if (nats) {
      const x = await withNats((url) => rtt("nats", url, count));
      natsRuns[0]!.push(x.p50Us);
      natsRuns[1]!.push(x.p99Us);
    }
    const e = await withHub((url) => rtt("ez", url, count));
    ezRuns[0]!.push(e.p50Us);
    ezRuns[1]!.push(e.p99Us);
    const h = await withHub((url) => rtt("ez-hub", url, count));
    ezHubRuns[0]!.push(h.p50Us);
    ezHubRuns[1]!.push(h.p99Us);
    const relayed = await withServer(script, ["raw-rpc-relay", freeUrl("tcp", seq++)], async (url) => {
      const echo = await runRole(script, ["raw-echo-dial", url]);
      try {
        const { out } = await runRole(childScript, ["ping-raw", url, String(count), "64"]);
        return JSON.parse(out) as { p50Us: number; p99Us: number };
      } finally {
        await stop(echo.proc);
      }
    });
    relayRuns[0]!.push(relayed.p50Us);
    relayRuns[1]!.push(relayed.p99Us);
  }
  const m = (xs: number[]) => (xs.length > 0 ? median(xs) : Number.NaN);
  const [r50, r99, n50, n99, e50, e99, h50, h99, x50, x99] = [
    rawRuns[0]!,
    rawRuns[1]!,
    natsRuns[0]!,
    natsRuns[1]!,
    ezRuns[0]!,
    ezRuns[1]!,
    ezHubRuns[0]!,
    ezHubRuns[1]!,
    relayRuns[0]!,
    relayRuns[1]!,
  ].map(m);
  lines.push("");
  lines.push(
    `### Request/reply round trip, one 64 B request in flight (µs), medians of ${runs} runs of ${count}`,
  );
  lines.push("");
  lines.push("| system | p50 | p99 | p50 / NATS | p50 / raw echo | target |");
  lines.push("|---|---:|---:|---:|---:|---:|");
  lines.push(
    `| raw node:net echo, no broker (baseline) | ${r50!.toFixed(1)} | ${r99!.toFixed(1)} | | 1.00× | |`,
  );
  lines.push(
    `| raw node:net relay between caller and echo server, three processes (baseline of a broker hop) | ${x50!.toFixed(1)} | ${x99!.toFixed(1)} | | ${(x50! / r50!).toFixed(2)}× | |`,
  );
  lines.push(
    `| NATS request/reply | ${nats ? n50!.toFixed(1) : "n/a"} | ${nats ? n99!.toFixed(1) : "n/a"} | 1.00× | ${nats ? `${(n50! / r50!).toFixed(2)}×` : "n/a"} | |`,
  );
  lines.push(
    `| ezipc RPC (default: direct once the hub named the server) | ${e50!.toFixed(1)} | ${e99!.toFixed(1)} | ${nats ? `${(e50! / n50!).toFixed(2)}×` : "n/a"} | ${(e50! / r50!).toFixed(2)}× | ≤ 0.5× NATS |`,
  );
  lines.push(
    `| ezipc RPC through the hub (\`directRpc: false\`) | ${h50!.toFixed(1)} | ${h99!.toFixed(1)} | ${nats ? `${(h50! / n50!).toFixed(2)}×` : "n/a"} | ${(h50! / r50!).toFixed(2)}× (${(h50! / x50!).toFixed(2)}× relay) | ≤ 2× |`,
  );
  process.stderr.write(`${lines.slice(-4).join("\n")}\n`);

  // 3 M messages, replayed by three fresh processes in turn (the median): one replay of 1 M took 0.15–0.25 s,
  // short enough for a busy machine to halve it.
  const stored = quick ? 100_000 : 3_000_000;
  const replays = quick ? 1 : 3;
  const { replay, perMessage } = await withHub(async (url, hub) => {
    const before = procUsage(hub.pid!).rssBytes;
    await runRole(script, ["ez-pub", url, "replay", String(stored), "64", "keep"]);
    // Resident memory the stored messages added to the hub (its V8 heap's headroom included).
    const perMessage = (procUsage(hub.pid!).rssBytes - before) / stored;
    const rates: number[] = [];
    for (let r = 0; r < replays; r++) {
      const { out } = await runRole(script, ["ez-replay", url, "replay", String(stored)]);
      rates.push(stored / (JSON.parse(out) as { seconds: number }).seconds);
    }
    return { replay: median(rates), perMessage };
  });
  lines.push("");
  lines.push(
    `### History replay: ${fmt(stored)} stored 64 B messages read with init oldest, iter next (a topic configured to keep them: \`maxBytes\` 4 GiB), median of ${replays} replays`,
  );
  lines.push("");
  lines.push(
    "| replay (messages/s) | live pub → sub, 64 B (same run) | replay / live | target | hub memory per retained message |",
  );
  lines.push("|---:|---:|---:|---:|---:|");
  lines.push(
    `| ${fmt(replay)} | ${fmt(liveRate)} | ${(replay / liveRate).toFixed(2)}× | ≥ 1.5× | ${perMessage.toFixed(0)} B |`,
  );
  process.stderr.write(`${lines.at(-1)}\n`);
  return lines;
}
