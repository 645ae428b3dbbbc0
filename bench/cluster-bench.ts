/**
 * Clustered hubs (docs/cluster.md) beside one hub and beside NATS alone, in one run, each role in its own
 * process, three NATS JetStream nodes (3 replicas) on loopback:
 * - a 64 B write → seen by a poll reader: one hub (writer and reader on it); two hubs of the cluster (writer
 *   on hub A, reader on hub B); NATS alone (a key-value put → a watcher: the hop a clustered write makes
 *   at least once);
 * - pub/sub, one publisher → one subscriber (fire-and-forget, defaults): one hub; the publisher on hub A and
 *   the subscriber on hub B; NATS alone (plain publishes into a replicated stream → an ordered consumer:
 *   the path a clustered publish takes between the two hubs).
 * Medians of `runs`.
 */
import type { ChildProcess } from "node:child_process";
import { fileURLToPath } from "node:url";
import { connect } from "../src/index.js";
import { natsCluster } from "../test/cluster/nats-cluster.js";
import { collect, freeUrl, hubChildScript, runRole, stop, withServer } from "./procs.js";
import { median } from "./stats.js";

const clusterChild = fileURLToPath(new URL("./cluster-child.js", import.meta.url));
const pubsubChild = fileURLToPath(new URL("./pubsub-child.js", import.meta.url));

type Latency = { propP50: number; propP99: number };

/** The last JSON line a role prints before it exits. */
async function lastJson<T>(proc: ChildProcess): Promise<T> {
  return JSON.parse((await collect(proc)).trim().split("\n").at(-1)!) as T;
}

/** Writer on `writeUrl`, poll reader on `readUrl` (hub-child's prop roles). */
async function propagation(writeUrl: string, readUrl: string, key: string, count: number): Promise<Latency> {
  const owner = await connect(writeUrl, { heartbeatIntervalMs: 0, reconnect: false, name: "bench" });
  try {
    const ptr = await owner.allocate(key, 64, "request");
    const warmup = Math.min(500, Math.floor(count / 5));
    const reader = await runRole(hubChildScript, [
      "prop-reader",
      readUrl,
      key,
      String(count),
      String(warmup),
    ]);
    const result = lastJson<Latency>(reader.proc);
    await runRole(hubChildScript, ["prop-writer", writeUrl, key, String(count + warmup)]);
    const r = await result;
    ptr.dispose();
    return r;
  } finally {
    await owner.close();
  }
}

async function natsPropagation(natsUrl: string, bucket: string, count: number): Promise<Latency> {
  const warmup = Math.min(500, Math.floor(count / 5));
  const reader = await runRole(clusterChild, ["kv-reader", natsUrl, bucket, String(count), String(warmup)]);
  const result = lastJson<Latency>(reader.proc);
  await runRole(clusterChild, ["kv-writer", natsUrl, bucket, String(count + warmup)]);
  return result;
}

/** Messages/s from the subscriber's first message to its last (pubsub-child's ez roles). */
async function pubsub(
  pubUrl: string,
  subUrl: string,
  topic: string,
  n: number,
  size: number,
): Promise<number> {
  const sub = await runRole(pubsubChild, ["ez-sub", subUrl, topic, String(n), "1"]);
  const result = lastJson<{ deliveries: number; seconds: number }>(sub.proc);
  await runRole(pubsubChild, ["ez-pub", pubUrl, topic, String(n), String(size)]);
  const r = await result;
  return r.deliveries / r.seconds;
}

async function natsPubsub(natsUrl: string, name: string, n: number, size: number): Promise<number> {
  const sub = await runRole(clusterChild, ["js-sub", natsUrl, name, String(n)]);
  const result = lastJson<{ deliveries: number; seconds: number }>(sub.proc);
  await runRole(clusterChild, ["js-pub", natsUrl, name, String(n), String(size)]);
  const r = await result;
  return r.deliveries / r.seconds;
}

const us = (x: number) => x.toFixed(0);
const rate = (x: number) => (x >= 1e3 ? `${(x / 1e3).toFixed(1)} k` : x.toFixed(0));

export async function clusterBench(quick: boolean): Promise<string[]> {
  const runs = quick ? 1 : 3;
  const count = quick ? 300 : 2_000;
  const n = quick ? 5_000 : 50_000;
  const size = 64;
  const nats = await natsCluster(3);
  const hubs = await Promise.all(
    [0, 1].map((i) => runRole(clusterChild, ["cluster-hub", "tcp://127.0.0.1:0", nats.urls[i]!])),
  );
  const [a, b] = hubs.map((h) => h.out.split("\n")[0]!.slice("ready ".length)) as [string, string];
  const prop: Record<"one" | "cluster" | "nats", Latency[]> = { one: [], cluster: [], nats: [] };
  const msgs: Record<"one" | "cluster" | "nats", number[]> = { one: [], cluster: [], nats: [] };
  try {
    for (let r = 0; r < runs; r++) {
      await withServer(hubChildScript, ["hub", freeUrl("tcp", 9_100 + r)], async (url) => {
        prop.one.push(await propagation(url, url, `one.${r}`, count));
        msgs.one.push(await pubsub(url, url, `one.t${r}`, n, size));
      });
      prop.cluster.push(await propagation(a, b, `cluster.${r}`, count));
      msgs.cluster.push(await pubsub(a, b, `cluster.t${r}`, n, size));
      prop.nats.push(await natsPropagation(nats.urls[2]!, `bench_${r}`, count));
      msgs.nats.push(await natsPubsub(nats.urls[2]!, `bench_s${r}`, n, size));
      process.stderr.write(`cluster bench: run ${r + 1} of ${runs}\n`);
    }
  } finally {
    await Promise.all(hubs.map((h) => stop(h.proc)));
    await nats.close();
  }
  const m = (xs: Latency[], f: keyof Latency) => median(xs.map((x) => x[f]));
  const one = { p50: m(prop.one, "propP50"), rate: median(msgs.one) };
  const lines = [
    `### Clustered hubs beside one hub and NATS alone: three NATS JetStream nodes (3 replicas) on loopback, each role in its own process, medians of ${runs}`,
    "",
    `A 64 B write → seen by a poll reader (µs, ${count} writes one at a time):`,
    "",
    "| path | p50 | p99 | p50 / one hub |",
    "|---|---:|---:|---:|",
    `| one hub, no cluster (writer and reader on it) | ${us(one.p50)} | ${us(m(prop.one, "propP99"))} | 1.00× |`,
  ];
  const row = (name: string, xs: Latency[]) => {
    const p50 = m(xs, "propP50");
    lines.push(`| ${name} | ${us(p50)} | ${us(m(xs, "propP99"))} | ${(p50 / one.p50).toFixed(1)}× |`);
  };
  row("two hubs of a cluster (writer on hub A, reader on hub B)", prop.cluster);
  row("NATS alone: key-value put → watcher (one hop of a clustered write)", prop.nats);
  lines.push(
    "",
    `Pub/sub, ${n} fire-and-forget messages of ${size} B, one publisher → one subscriber with default options (messages/s at the subscriber):`,
    "",
    "| path | msg/s | / one hub |",
    "|---|---:|---:|",
    `| one hub, no cluster | ${rate(one.rate)} | 1.00× |`,
    `| two hubs of a cluster (publisher on hub A, subscriber on hub B) | ${rate(median(msgs.cluster))} | ${(median(msgs.cluster) / one.rate).toFixed(2)}× |`,
    `| NATS alone: plain publishes into a replicated stream → ordered consumer | ${rate(median(msgs.nats))} | ${(median(msgs.nats) / one.rate).toFixed(2)}× |`,
  );
  return lines;
}
