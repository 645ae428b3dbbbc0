/**
 * Shared memory (shm://) beside the hub over unix:// and raw sockets, in one run: pub → sub throughput
 * (1 → 1 and 1 → 10, 64 B and 1 KiB; every side with its defaults, so publishers wait for slow
 * subscribers on both), request/reply round trips sleeping and spinning beside a raw unix:// echo, and the
 * time a writer takes over the lock of a writer killed while holding it.
 */
import { rmSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { connect } from "../src/index.js";
import { KIND_TOPIC } from "../src/shm/layout.js";
import { TopicRing } from "../src/shm/ring.js";
import { namespaceDir, openOrCreateShmFile } from "../src/shm/shm-file.js";
import { viewAt } from "../src/views.js";
import { hubLatency } from "./hub-bench.js";
import {
  childScript,
  collect,
  freeUrl,
  hubChildScript,
  runRole,
  stop,
  withNamespace,
  withServer,
} from "./procs.js";
import { median, percentile } from "./stats.js";

const pubsubScript = fileURLToPath(new URL("./pubsub-child.js", import.meta.url));
const shmScript = fileURLToPath(new URL("./shm-child.js", import.meta.url));
let seq = 5000;

/** A fresh namespace for `fn`, removed afterwards. */

function withUnixHub<T>(fn: (url: string) => Promise<T>): Promise<T> {
  return withServer(pubsubScript, ["hub", freeUrl("unix", seq++)], (url) => fn(url));
}

/**
 * Deliveries per second of `subs` subscribers of n messages from one publisher process: all in one
 * subscriber process (`procs` 1), or one per process (`procs` = `subs`; the rate is over the wall-clock
 * window from the first delivery anywhere to the last).
 */
async function fanOut(
  url: string,
  n: number,
  size: number,
  subs: number,
  procs: number,
): Promise<{ rate: number; lost: number }> {
  const topic = `bench.t${seq++}`;
  const per = subs / procs;
  const roles = await Promise.all(
    Array.from({ length: procs }, () =>
      runRole(pubsubScript, ["ez-sub", url, topic, String(n), String(per)]),
    ),
  );
  const results = roles.map((r) => collect(r.proc));
  await runRole(pubsubScript, ["ez-pub", url, topic, String(n), String(size)]);
  const rs = (await Promise.all(results)).map(
    (out) =>
      JSON.parse(out.trim().split("\n").at(-1)!) as {
        deliveries: number;
        lost: number;
        firstWallMs: number;
        lastWallMs: number;
      },
  );
  const deliveries = rs.reduce((a, r) => a + r.deliveries, 0);
  const ms = Math.max(...rs.map((r) => r.lastWallMs)) - Math.min(...rs.map((r) => r.firstWallMs));
  return { rate: deliveries / (ms / 1000), lost: rs.reduce((a, r) => a + r.lost, 0) };
}

async function rtt(url: string, count: number, spin: boolean): Promise<{ p50Us: number; p99Us: number }> {
  const topic = `rpc.t${seq++}`;
  const replier = await runRole(pubsubScript, ["ez-reply", url, topic, ...(spin ? ["spin"] : [])]);
  try {
    const { out } = await runRole(pubsubScript, [
      "ez-req",
      url,
      topic,
      String(count),
      ...(spin ? ["spin"] : []),
    ]);
    return JSON.parse(out) as { p50Us: number; p99Us: number };
  } finally {
    await stop(replier.proc);
  }
}

/**
 * Write → seen by another process over shm:// (µs): this process writes `prop` (a 64 B value stamped with
 * its hrtime), a var-echo process sees it on a poll pointer and writes the counter back to `ack`; one write
 * in flight.
 */
async function varPropagation(
  url: string,
  count: number,
  spin: boolean,
): Promise<{ p50Us: number; p99Us: number }> {
  const warmup = Math.min(1000, Math.floor(count / 5));
  const c = await connect(url as `shm:${string}`, { name: "writer", spin });
  try {
    const prop = await c.allocate("prop", 64, "request");
    const ack = await c.allocate("ack", 4, "poll");
    const echo = await runRole(shmScript, [
      "var-echo",
      url,
      String(count),
      String(warmup),
      ...(spin ? ["spin"] : []),
    ]);
    const result = collect(echo.proc);
    const data = Buffer.alloc(64);
    let want = -1;
    let wake: () => void = () => {};
    ack.on("change", ({ data: d }) => {
      if (d && Buffer.from(d.buffer, d.byteOffset, 4).readUInt32LE(0) === want) wake();
    });
    for (let i = 0; i < count + warmup; i++) {
      want = i;
      const seen = new Promise<void>((resolve) => {
        wake = resolve;
      });
      data.writeBigUInt64LE(process.hrtime.bigint(), 0);
      data.writeUInt32LE(i, 8);
      await prop.write(data);
      await seen;
    }
    return JSON.parse((await result).trim().split("\n").at(-1)!) as { p50Us: number; p99Us: number };
  } finally {
    await c.close();
  }
}

/** ns per `read()` of a 64 B poll pointer: unchanged, and right after each write (copy included). */
async function pollReadNs(url: string, n: number): Promise<{ unchanged: number; changed: number }> {
  const c = await connect(url, { name: "reader", heartbeatIntervalMs: 0, reconnect: false });
  const w = await connect(url, { name: "writer", heartbeatIntervalMs: 0, reconnect: false });
  try {
    const key = `read.${seq++}`;
    const writer = await w.allocate(key, 64, "request");
    const p = (await c.watch(key, "poll"))!;
    let sink = 0;
    for (let i = 0; i < 100_000; i++) sink += p.read()[0]!;
    let t0 = process.hrtime.bigint();
    for (let i = 0; i < n; i++) sink += p.read()[0]!;
    const unchanged = Number(process.hrtime.bigint() - t0) / n;
    // After each write (shm://: the next read copies; a hub's copy changes when its update arrives).
    const m = Math.min(n, 20_000);
    let total = 0n;
    const data = Buffer.alloc(64);
    const shm = url.startsWith("shm:");
    for (let i = -Math.min(m, 5_000); i < m; i++) {
      const warm = i < 0;
      data[0] = i & 0xff;
      if (shm) {
        // The write is committed when write() returns (before its promise settles): the read copies it.
        const written = writer.write(data);
        t0 = process.hrtime.bigint();
        sink += p.read()[0]!;
        if (!warm) total += process.hrtime.bigint() - t0;
        if (p.version !== (await written)) throw new Error("the read did not see the write");
        continue;
      }
      const v = await writer.write(data);
      while (p.version < v) await new Promise((r) => setImmediate(r));
      t0 = process.hrtime.bigint();
      sink += p.read()[0]!;
      if (!warm) total += process.hrtime.bigint() - t0;
    }
    if (sink < 0) console.log(sink);
    return { unchanged, changed: Number(total) / m };
  } finally {
    await c.close();
    await w.close();
  }
}

/**
 * Deliveries/s from a publisher to a subscriber over TCP through a hub: the publisher on the hub directly,
 * or in a shm:// namespace that the hub bridges (`bridged`).
 */
export async function throughHub(n: number, size: number, bridged: boolean): Promise<number> {
  const topic = `bench.b${seq++}`;
  return withNamespace(async (shmUrl) => {
    let pubUrl = "";
    if (bridged) {
      // The topic exists before the bridge starts: it is bridged from its first message on.
      const c = await connect(shmUrl as `shm:${string}`, { name: "setup" });
      await c.configureTopic(topic, {});
      await c.close();
    }
    return withServer(
      pubsubScript,
      ["hub", freeUrl("tcp", seq++), ...(bridged ? [shmUrl] : [])],
      async (hubUrl) => {
        pubUrl = bridged ? shmUrl : hubUrl;
        if (bridged) {
          const probe = await connect(hubUrl, { name: "probe", reconnect: false });
          try {
            for (let i = 0; i < 1000 && (await probe.topics(topic)).length === 0; i++)
              await new Promise((r) => setTimeout(r, 10));
          } finally {
            await probe.close();
          }
        }
        const sub = await runRole(pubsubScript, ["ez-sub", hubUrl, topic, String(n), "1"]);
        const result = collect(sub.proc);
        await runRole(pubsubScript, ["ez-pub", pubUrl, topic, String(n), String(size)]);
        const r = JSON.parse((await result).trim().split("\n").at(-1)!) as {
          deliveries: number;
          firstWallMs: number;
          lastWallMs: number;
        };
        return r.deliveries / ((r.lastWallMs - r.firstWallMs) / 1000);
      },
    );
  });
}

/** ms from killing a process that holds a topic's writers' lock to another writer's append completing. */
async function recovery(): Promise<number> {
  const dir = namespaceDir(`bench-lock-${process.pid}`);
  const file = path.join(dir, `t${seq++}`);
  try {
    const ring = new TopicRing(openOrCreateShmFile(file, KIND_TOPIC, 65536, 0, 0o600));
    const holder = await runRole(shmScript, ["lock-holder", file]);
    const t0 = process.hrtime.bigint();
    holder.proc.kill("SIGKILL");
    ring.append(Buffer.alloc(0), Buffer.from("after"), Date.now()); // blocks until the lock is taken over
    const ms = Number(process.hrtime.bigint() - t0) / 1e6;
    await stop(holder.proc);
    if (ring.state().recoveries !== 1) throw new Error("the lock was not taken over");
    return ms;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/**
 * The ring alone, without the client API: a writer process appending 64 B messages in batches of 1,024 and
 * a reader process copying them out as messages (medians over `runs`). Readers are not waited for here, so
 * the reader's rate is the most it reads, skipping what it was lapped on.
 */
async function ringAlone(n: number, runs: number): Promise<{ reader: number; writer: number }> {
  const readers: number[] = [];
  const writers: number[] = [];
  for (let r = 0; r < runs; r++) {
    const dir = namespaceDir(`bench-ring-${process.pid}`);
    const file = path.join(dir, `t${seq++}`);
    try {
      openOrCreateShmFile(file, KIND_TOPIC, 16 * 1024 * 1024, 0, 0o600);
      const reader = await runRole(shmScript, ["ring-reader", file, String(n)]);
      const result = collect(reader.proc);
      const { out } = await runRole(shmScript, ["ring-writer", file, String(n)]);
      writers.push((JSON.parse(out) as { rate: number }).rate);
      readers.push((JSON.parse((await result).trim().split("\n").at(-1)!) as { rate: number }).rate);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }
  return { reader: median(readers), writer: median(writers) };
}

/** The shared-variable tables: read() cost and write → seen, shm:// beside the hub in the same run. */
export async function varsBench(quick: boolean, runs: number): Promise<string[]> {
  const lines: string[] = [];
  const n = quick ? 200_000 : 2_000_000;
  const shmRead: { unchanged: number; changed: number }[] = [];
  const hubRead: { unchanged: number; changed: number }[] = [];
  for (let r = 0; r < runs; r++) {
    shmRead.push(await withNamespace((url) => pollReadNs(url, n)));
    hubRead.push(
      await withServer(hubChildScript, ["hub", freeUrl("unix", seq++)], (url) => pollReadNs(url, n)),
    );
  }
  const count = quick ? 2_000 : 20_000;
  const hub: { propP50: number; propP99: number; readP50: number; readP99: number }[] = [];
  const sleep: { p50Us: number; p99Us: number }[] = [];
  const spin: { p50Us: number; p99Us: number }[] = [];
  for (let r = 0; r < runs; r++) {
    hub.push(await hubLatency(count));
    sleep.push(await withNamespace((url) => varPropagation(url, count, false)));
    spin.push(await withNamespace((url) => varPropagation(url, count, true)));
  }
  const m = (xs: number[]) => median(xs);
  lines.push(`### Shared variables over shm:// beside the hub, 64 B values, medians of ${runs} runs`);
  lines.push("");
  lines.push("| read | ns per read() | target |");
  lines.push("|---|---:|---:|");
  lines.push(
    `| shm:// poll, value unchanged (no copy) | ${m(shmRead.map((x) => x.unchanged)).toFixed(0)} | ≤ 100 |`,
  );
  lines.push(
    `| shm:// poll, right after a write (one copy; the target is for the read above) | ${m(shmRead.map((x) => x.changed)).toFixed(0)} | |`,
  );
  lines.push(
    `| hub poll (the local copy the hub pushed) | ${m(hubRead.map((x) => x.unchanged)).toFixed(0)} | |`,
  );
  lines.push(
    `| hub request read (a round trip through the hub over tcp://) | ${(m(hub.map((x) => x.readP50)) * 1000).toFixed(0)} (p50) | |`,
  );
  lines.push("");
  lines.push(`| write → seen by a poll pointer in another process (µs), ${count} writes | p50 | p99 |`);
  lines.push("|---|---:|---:|");
  lines.push(
    `| hub over tcp:// (writer, hub, reader: three processes) | ${m(hub.map((x) => x.propP50)).toFixed(1)} | ${m(hub.map((x) => x.propP99)).toFixed(1)} |`,
  );
  lines.push(
    `| shm://, readers sleep (default) | ${m(sleep.map((x) => x.p50Us)).toFixed(1)} | ${m(sleep.map((x) => x.p99Us)).toFixed(1)} |`,
  );
  lines.push(
    `| shm://, \`spin: true\` | ${m(spin.map((x) => x.p50Us)).toFixed(1)} | ${m(spin.map((x) => x.p99Us)).toFixed(1)} |`,
  );
  process.stderr.write(`${lines.join("\n")}\n`);
  return lines;
}

const fmt = (x: number) =>
  x >= 1e6 ? `${(x / 1e6).toFixed(2)} M` : x >= 1e3 ? `${(x / 1e3).toFixed(0)} k` : x.toFixed(0);

/** A message as a subscriber gets one (shm-pubsub.ts's ShmMessage has these fields). */
class FloorMessage {
  constructor(
    readonly topic: string,
    readonly seqNumber: number,
    readonly body: Buffer,
    readonly metaLength: number,
  ) {}
}

/**
 * ns per message of the least work any subscriber does under the TopicMessage API: a message object with its
 * own payload view (made as the readers make theirs), handed to a handler in runs of 512. No shared memory and
 * no reading: the floor under the per-process cost of the "10 processes" rows. Best of 5 rounds of `n`.
 */
function subscriberFloorNs(n: number): number {
  const block = new ArrayBuffer(64 * 1024);
  let seen = 0;
  const handler = (m: FloorMessage) => {
    if (m.body.length >= 0) seen++;
  };
  const run: FloorMessage[] = [];
  let best = Number.POSITIVE_INFINITY;
  for (let round = 0; round < 5; round++) {
    const t0 = process.hrtime.bigint();
    for (let i = 0; i < n; i++) {
      run.push(new FloorMessage("t", i, viewAt(block, (i % 700) * 90 + 26, 64), 10));
      if (run.length === 512) {
        for (const m of run) handler(m);
        run.length = 0;
      }
    }
    best = Math.min(best, Number(process.hrtime.bigint() - t0) / n);
  }
  if (seen === 0) throw new Error("the floor's handler never ran");
  return best;
}

export async function shmBench(quick: boolean): Promise<string[]> {
  const runs = quick ? 1 : 3;
  const lines: string[] = [];
  lines.push(
    `### Shared memory (shm://, no hub) vs the hub over unix:// (deliveries/s), publisher and subscribers in separate processes, medians of ${runs}`,
  );
  lines.push("");
  lines.push(
    "Every side with its defaults (publishers wait for slow `next` subscribers on both). `lost`: messages the subscribers were told they missed, over all runs. 1 → 10 in one process: ten clients (hub connections, or shm:// clients) in one subscriber process; in 10 processes: one each (the rate is over the wall-clock window from the first delivery anywhere to the last). Messages per run: 1 → 1, 4 M at 64 B and 1 M at 1 KiB; 1 → 10, 1.5 M and 300 k in one process, 3 M and 1 M in 10 processes (to each subscriber: ten processes warming up at once on two cores take that long to reach their steady rate).",
  );
  lines.push("");
  lines.push("| case | hub over unix:// | shm:// | shm lost | shm / hub | target |");
  lines.push("|---|---:|---:|---:|---:|---:|");
  let hubTenProcs64 = Number.NaN;
  let hubOne64 = Number.NaN;
  const cases = [
    // Runs long enough for the steady rate (a second or more of the slower side; the first ~100 ms of a
    // fresh process are its warm-up).
    { name: "1 → 1, 64 B", size: 64, subs: 1, n: quick ? 50_000 : 4_000_000 },
    { name: "1 → 1, 1 KiB", size: 1024, subs: 1, n: quick ? 20_000 : 1_000_000 },
    { name: "1 → 10 in one process, 64 B", size: 64, subs: 10, n: quick ? 10_000 : 1_500_000 },
    { name: "1 → 10 in one process, 1 KiB", size: 1024, subs: 10, n: quick ? 5_000 : 300_000 },
    // (Ten fresh subscriber processes warm up on two cores at once: 600 k messages each measured mostly
    // their warm-up, ~280 ns of CPU per message against ~160 from 3 M on.)
    { name: "1 → 10 in 10 processes, 64 B", size: 64, subs: 10, procs: 10, n: quick ? 10_000 : 3_000_000 },
    { name: "1 → 10 in 10 processes, 1 KiB", size: 1024, subs: 10, procs: 10, n: quick ? 5_000 : 1_000_000 },
  ];
  for (const c of cases) {
    const hub: number[] = [];
    const shm: number[] = [];
    let lost = 0;
    for (let r = 0; r < runs; r++) {
      hub.push((await withUnixHub((url) => fanOut(url, c.n, c.size, c.subs, c.procs ?? 1))).rate);
      const s = await withNamespace((url) => fanOut(url, c.n, c.size, c.subs, c.procs ?? 1));
      shm.push(s.rate);
      lost += s.lost;
    }
    const h = median(hub);
    const s = median(shm);
    lines.push(`| ${c.name} | ${fmt(h)} | ${fmt(s)} | ${lost} | ${(s / h).toFixed(2)}× | ≥ 3× |`);
    process.stderr.write(`${lines.at(-1)}\n`);
    if (c.procs === 10 && c.size === 64) hubTenProcs64 = h;
    if (c.subs === 1 && c.size === 64) hubOne64 = h;
  }
  const ring = await ringAlone(quick ? 200_000 : 10_000_000, runs);
  lines.push("");
  lines.push(
    `The ring alone, without the client API (no subscription, no handler, no holds; a writer process appending 64 B messages in batches of 1,024, a reader process copying them out as messages and looking at each payload, skipping what the writer laps it on, as nothing holds the writer): the writer appends ${fmt(ring.writer)}/s, the reader reads ${fmt(ring.reader)}/s, ${(ring.reader / hubOne64).toFixed(2)}× the hub's 1 → 1 rate at 64 B above (the 3× target is ${fmt(3 * hubOne64)}/s).`,
  );
  const floor = subscriberFloorNs(quick ? 200_000 : 2_000_000);
  const cores = os.cpus().length;
  lines.push("");
  lines.push(
    `The least any subscriber does per message under this API, measured in this process: a message object, its own 64 B payload view and the handler's call, with their collection: ${floor.toFixed(0)} ns (best of 5 rounds). Three times the hub's rate to ten processes at 64 B would leave ${((cores / (3 * hubTenProcs64)) * 1e9).toFixed(0)} ns of CPU per delivery on this machine's ${cores} cores, for everything; each of the ten processes reads each message from the ring itself, and the ring alone (above) takes ${(1e9 / ring.reader).toFixed(0)} ns of a core per message read.`,
  );

  const count = quick ? 2_000 : 20_000;
  lines.push("");
  lines.push(
    `### Request/reply round trip over shm:// (µs), one 64 B request in flight, medians of ${runs} runs of ${count}`,
  );
  lines.push("");
  lines.push("| system | p50 | p99 | p50 / raw unix echo | target p50 |");
  lines.push("|---|---:|---:|---:|---:|");
  const raw: number[][] = [[], []];
  const sleep: number[][] = [[], []];
  const spin: number[][] = [[], []];
  for (let r = 0; r < runs; r++) {
    const x = await withServer(childScript, ["echo-raw", freeUrl("unix", seq++)], async (url) => {
      const { out } = await runRole(childScript, ["ping-raw", url, String(count), "64"]);
      return JSON.parse(out) as { p50Us: number; p99Us: number };
    });
    raw[0]!.push(x.p50Us);
    raw[1]!.push(x.p99Us);
    const a = await withNamespace((url) => rtt(url, count, false));
    sleep[0]!.push(a.p50Us);
    sleep[1]!.push(a.p99Us);
    const b = await withNamespace((url) => rtt(url, count, true));
    spin[0]!.push(b.p50Us);
    spin[1]!.push(b.p99Us);
  }
  const r50 = median(raw[0]!);
  const row = (name: string, v: number[][], target: string) =>
    `| ${name} | ${median(v[0]!).toFixed(1)} | ${median(v[1]!).toFixed(1)} | ${(median(v[0]!) / r50).toFixed(2)}× | ${target} |`;
  lines.push(row("raw node:net echo over unix:// (baseline)", raw, ""));
  lines.push(row("shm:// RPC, readers sleep (default)", sleep, "≤ 25 µs"));
  lines.push(row("shm:// RPC, `spin: true` (both sides poll)", spin, "≤ 5 µs"));
  process.stderr.write(`${lines.slice(-3).join("\n")}\n`);

  lines.push("");
  lines.push(...(await varsBench(quick, runs)));

  lines.push("");
  lines.push(
    `### The hub bridging shm://: publisher → hub → subscriber over tcp:// (deliveries/s), medians of ${runs}`,
  );
  lines.push("");
  lines.push(
    "| payload | publisher on the hub (baseline) | publisher in shm://, bridged | bridged / direct |",
  );
  lines.push("|---|---:|---:|---:|");
  for (const size of [64, 1024]) {
    const n = quick ? 20_000 : size === 64 ? 300_000 : 100_000;
    const direct: number[] = [];
    const bridged: number[] = [];
    for (let r = 0; r < runs; r++) {
      direct.push(await throughHub(n, size, false));
      bridged.push(await throughHub(n, size, true));
    }
    const d = median(direct);
    const b = median(bridged);
    lines.push(`| ${size === 64 ? "64 B" : "1 KiB"} | ${fmt(d)} | ${fmt(b)} | ${(b / d).toFixed(2)}× |`);
    process.stderr.write(`${lines.at(-1)}\n`);
  }

  const rec: number[] = [];
  for (let r = 0; r < (quick ? 3 : 9); r++) rec.push(await recovery());
  rec.sort((a, b) => a - b);
  lines.push("");
  lines.push(`### Recovery: a writer killed with -9 while it holds a topic's lock, ${rec.length} runs`);
  lines.push("");
  lines.push("| from kill to the next writer's append done (ms), p50 | max |");
  lines.push("|---:|---:|");
  lines.push(`| ${percentile(Float64Array.from(rec), 0.5).toFixed(2)} | ${rec.at(-1)!.toFixed(2)} |`);
  process.stderr.write(`${lines.at(-1)}\n`);
  return lines;
}
