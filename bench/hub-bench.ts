/**
 * The hub's benchmarks (shared variables), each beside a baseline measured in the same run:
 * - propagation latency (write on A → visible on poll client B) and request-read RTT, beside the raw
 *   node:net echo RTT;
 * - sustained 64 B writes/s with 0, 1 and 10 poll watchers, beside raw node:net pipelined request/reply;
 * - the cost of a fresh lazy read;
 * - hub RSS with 10,000 keys × 1 KiB held by 100 connected clients.
 * The hub, the writer and the watchers each run in their own process.
 */
import { connect, type HubClient } from "../src/index.js";
import { childScript, collect, freeUrl, hubChildScript, runRole, withServer } from "./procs.js";
import { median } from "./stats.js";

let seq = 1000;

interface Latency {
  propP50: number;
  propP99: number;
  readP50: number;
  readP99: number;
  localP50: number;
  localP99: number;
  lazyNs: number;
}

export async function rawRtt(count: number): Promise<{ p50Us: number; p99Us: number }> {
  return withServer(childScript, ["echo-raw", freeUrl("tcp", seq++)], async (url) => {
    const { out } = await runRole(childScript, ["ping-raw", url, String(count), "64"]);
    return JSON.parse(out) as { p50Us: number; p99Us: number };
  });
}

/** The baseline of propagation: a hand-written node:net relay between a writer and a reader process. */
export async function rawPropagation(count: number): Promise<{ propP50: number; propP99: number }> {
  return withServer(hubChildScript, ["raw-relay", freeUrl("tcp", seq++)], async (url) => {
    const warmup = Math.min(1000, Math.floor(count / 5));
    const reader = await runRole(hubChildScript, ["raw-prop-reader", url, String(count), String(warmup)]);
    const result = collect(reader.proc);
    await runRole(hubChildScript, ["raw-prop-writer", url, String(count + warmup)]);
    return JSON.parse((await result).trim().split("\n").at(-1)!) as { propP50: number; propP99: number };
  });
}

export async function hubLatency(count: number): Promise<Latency> {
  return withServer(hubChildScript, ["hub", freeUrl("tcp", seq++)], async (url) => {
    const owner = await connect(url, { heartbeatIntervalMs: 0, reconnect: false, name: "bench" });
    try {
      const key = `prop.${seq}`;
      const ptr = await owner.allocate(key, 64, "request");
      const warmup = Math.min(1000, Math.floor(count / 5));
      const reader = await runRole(hubChildScript, ["prop-reader", url, key, String(count), String(warmup)]);
      const result = collect(reader.proc);
      await runRole(hubChildScript, ["prop-writer", url, key, String(count + warmup)]);
      const prop = JSON.parse((await result).trim().split("\n").at(-1)!) as {
        propP50: number;
        propP99: number;
      };
      const { out } = await runRole(hubChildScript, ["reads", url, String(count)]);
      ptr.dispose();
      return { ...prop, ...(JSON.parse(out) as Omit<Latency, "propP50" | "propP99">) };
    } finally {
      await owner.close();
    }
  });
}

async function rawPipe(count: number, window: number): Promise<number> {
  return withServer(childScript, ["echo-raw", freeUrl("tcp", seq++)], async (url) => {
    const { out } = await runRole(hubChildScript, ["raw-pipe", url, String(count), String(window)]);
    return count / (JSON.parse(out) as { seconds: number }).seconds;
  });
}

async function hubWrites(
  count: number,
  watchers: number,
  window: number,
): Promise<{ writesPerSec: number; deliveriesPerSec: number }> {
  return withServer(hubChildScript, ["hub", freeUrl("tcp", seq++)], async (url) => {
    const owner = await connect(url, { heartbeatIntervalMs: 0, reconnect: false, name: "bench" });
    try {
      const key = `w64.${seq}`;
      const ptr = await owner.allocate(key, 64, "request");
      let watch: Promise<string> | undefined;
      if (watchers > 0) {
        const started = await runRole(hubChildScript, [
          "watchers",
          url,
          key,
          String(watchers),
          String(1 + count),
        ]);
        watch = collect(started.proc);
      }
      const { out } = await runRole(hubChildScript, ["writer", url, key, String(count), String(window)]);
      const writesPerSec = count / (JSON.parse(out) as { seconds: number }).seconds;
      let deliveriesPerSec = 0;
      if (watch) {
        const line = (await watch).trim().split("\n").at(-1)!;
        const w = JSON.parse(line) as { deliveries: number; seconds: number };
        deliveriesPerSec = w.deliveries / w.seconds;
      }
      ptr.dispose();
      return { writesPerSec, deliveriesPerSec };
    } finally {
      await owner.close();
    }
  });
}

async function hubMemory(keys: number, clients: number): Promise<{ emptyRss: number; loadedRss: number }> {
  return withServer(hubChildScript, ["hub", freeUrl("tcp", seq++)], async (url) => {
    const conns: HubClient[] = [];
    try {
      const first = await connect(url, { heartbeatIntervalMs: 0, reconnect: false, name: "m0" });
      conns.push(first);
      const emptyRss = (await first.stats()).rssBytes;
      for (let i = 1; i < clients; i++)
        conns.push(await connect(url, { heartbeatIntervalMs: 0, reconnect: false, name: `m${i}` }));
      const perClient = Math.ceil(keys / clients);
      await Promise.all(
        conns.map(async (c, ci) => {
          for (let k = 0; k < perClient && ci * perClient + k < keys; k++) {
            await c.allocate(`mem.${ci}.${k}`, 1024, "poll");
          }
        }),
      );
      const loadedRss = (await first.stats()).rssBytes;
      return { emptyRss, loadedRss };
    } finally {
      await Promise.all(conns.map((c) => c.close()));
    }
  });
}

const us = (x: number) => x.toFixed(1);
const fmt = (x: number) =>
  x >= 1e6 ? `${(x / 1e6).toFixed(2)} M` : x >= 1e3 ? `${(x / 1e3).toFixed(0)} k` : x.toFixed(0);
const mib = (x: number) => `${(x / 1024 / 1024).toFixed(1)} MiB`;

/** Runs the hub benchmarks and returns markdown lines. */
export async function hubBench(quick: boolean): Promise<string[]> {
  const runs = quick ? 1 : 5;
  const count = quick ? 2_000 : 20_000;
  const lines: string[] = [];
  const raw: { p50Us: number; p99Us: number }[] = [];
  const relay: { propP50: number; propP99: number }[] = [];
  const lat: Latency[] = [];
  for (let r = 0; r < runs; r++) {
    raw.push(await rawRtt(count));
    relay.push(await rawPropagation(count));
    lat.push(await hubLatency(count));
  }
  const x50 = median(relay.map((x) => x.propP50));
  const x99 = median(relay.map((x) => x.propP99));
  const r50 = median(raw.map((x) => x.p50Us));
  const r99 = median(raw.map((x) => x.p99Us));
  const p50 = median(lat.map((x) => x.propP50));
  const p99 = median(lat.map((x) => x.propP99));
  const q50 = median(lat.map((x) => x.readP50));
  const q99 = median(lat.map((x) => x.readP99));
  const l50 = median(lat.map((x) => x.localP50));
  const l99 = median(lat.map((x) => x.localP99));
  const lazyNs = median(lat.map((x) => x.lazyNs));
  lines.push(
    `### Hub: shared-variable latency over tcp:// (µs), hub, writer and reader each in its own process, medians of ${runs} runs of ${count}`,
  );
  lines.push("");
  lines.push("| measurement | p50 | p99 | p50 / raw echo RTT p50 | target |");
  lines.push("|---|---:|---:|---:|---:|");
  lines.push(`| raw node:net echo round trip (baseline) | ${us(r50)} | ${us(r99)} | 1.00× | |`);
  lines.push(
    `| raw node:net relay A → server → B, three processes (baseline) | ${us(x50)} | ${us(x99)} | ${(x50 / r50).toFixed(2)}× | |`,
  );
  lines.push(
    `| propagation: write on A → poll client B sees it (A, hub, B: three processes) | ${us(p50)} | ${us(p99)} | ${(p50 / r50).toFixed(2)}× (${(p50 / x50).toFixed(2)}× relay) | ≤ 1.5× |`,
  );
  lines.push(
    `| propagation, A and B two clients of one process (two processes) | ${us(l50)} | ${us(l99)} | ${(l50 / r50).toFixed(2)}× | |`,
  );
  lines.push(
    `| request read (round trip through the hub) | ${us(q50)} | ${us(q99)} | ${(q50 / r50).toFixed(2)}× | |`,
  );
  lines.push(
    `| lazy read while fresh (local copy) | ${(lazyNs / 1000).toFixed(3)} | | ${(lazyNs / 1000 / r50).toFixed(4)}× | |`,
  );
  process.stderr.write(`${lines.slice(-6).join("\n")}\n`);

  const writes = quick ? 20_000 : 200_000;
  const window = 256;
  const wr = quick ? 1 : 3;
  const rawRate: number[] = [];
  const rows = new Map<number, { w: number[]; d: number[] }>([
    [0, { w: [], d: [] }],
    [1, { w: [], d: [] }],
    [10, { w: [], d: [] }],
  ]);
  for (let r = 0; r < wr; r++) {
    rawRate.push(await rawPipe(writes, window));
    for (const [watchers, acc] of rows) {
      const x = await hubWrites(writes, watchers, window);
      acc.w.push(x.writesPerSec);
      acc.d.push(x.deliveriesPerSec);
    }
  }
  const rawMed = median(rawRate);
  lines.push("");
  lines.push(
    `### Hub: sustained writes of a 64 B variable (${fmt(writes)} writes, ${window} in flight), medians of ${wr} runs`,
  );
  lines.push("");
  lines.push("| poll watchers | acknowledged writes/s | updates delivered/s | writes / raw request-reply | ");
  lines.push("|---:|---:|---:|---:|");
  lines.push(`| raw node:net pipelined request/reply (baseline) | ${fmt(rawMed)} | | 100% |`);
  for (const [watchers, acc] of rows) {
    const w = median(acc.w);
    lines.push(
      `| ${watchers} | ${fmt(w)} | ${watchers === 0 ? "—" : fmt(median(acc.d))} | ${((w / rawMed) * 100).toFixed(0)}% |`,
    );
  }
  process.stderr.write(`${lines.slice(-4).join("\n")}\n`);

  const keys = quick ? 1_000 : 10_000;
  const clients = quick ? 10 : 100;
  const mem = await hubMemory(keys, clients);
  lines.push("");
  lines.push(`### Hub memory: ${fmt(keys)} keys × 1 KiB held (poll) by ${clients} connected clients`);
  lines.push("");
  lines.push("| hub RSS empty | hub RSS loaded | growth | data held | growth per key |");
  lines.push("|---:|---:|---:|---:|---:|");
  const growth = mem.loadedRss - mem.emptyRss;
  lines.push(
    `| ${mib(mem.emptyRss)} | ${mib(mem.loadedRss)} | ${mib(growth)} | ${mib(keys * 1024)} | ${(growth / keys / 1024).toFixed(2)} KiB |`,
  );
  process.stderr.write(`${lines.at(-1)}\n`);
  return lines;
}
