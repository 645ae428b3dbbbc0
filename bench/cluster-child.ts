/**
 * Cluster benchmark roles (cluster-bench.ts), each its own process:
 *   cluster-hub URL NATS_URLS                a hub on the cluster with its defaults; print "ready URL"
 *   kv-reader NATS_URL BUCKET COUNT WARMUP   NATS alone: watch a key-value bucket; print "ready", then JSON
 *                                            with the put → watch delays
 *   kv-writer NATS_URL BUCKET TOTAL          NATS alone: TOTAL timestamped puts of 64 B, one at a time
 *   js-sub NATS_URL NAME N                   NATS alone: a stream NAME (3 replicas) and an ordered consumer of
 *                                            it; print "ready", then JSON once it got N messages
 *   js-pub NATS_URL NAME N SIZE              NATS alone: N messages of SIZE bytes to stream NAME's subject,
 *                                            plain publishes (as a clustered hub sends fire-and-forget ones)
 */
import { connect, type NatsConnection } from "nats";
import { Hub } from "../src/index.js";
import { percentile } from "./stats.js";

const [role, url, a, b, c] = process.argv.slice(2) as [string, string, string, string?, string?];

const nats = (u: string): Promise<NatsConnection> => connect({ servers: new URL(u).host });

switch (role) {
  case "cluster-hub": {
    const hub = await Hub.listen({ urls: [url], heartbeatIntervalMs: 0, cluster: { servers: a } });
    console.log(`ready ${hub.urls[0]}`);
    process.once("SIGINT", () => process.exit(0));
    process.once("SIGTERM", () => process.exit(0));
    break;
  }
  case "kv-reader": {
    const count = Number(b);
    const warmup = Number(c);
    const nc = await nats(url);
    const kv = await nc.jetstream().views.kv(a, { replicas: 3, history: 1, allow_direct: false });
    const lat = new Float64Array(count);
    let n = 0;
    const it = await kv.watch({ key: "k", initializedFn: () => console.log("ready") });
    // A watch that is behind skips revisions the bucket (history 1) has replaced: each put carries its
    // index, so the reader measures what it got and stops at the last.
    for await (const e of it) {
      if (e.operation !== "PUT" || e.value.length < 12) continue;
      const now = process.hrtime.bigint();
      const d = Buffer.from(e.value.buffer, e.value.byteOffset, 12);
      const i = d.readUInt32LE(8) - warmup;
      if (i >= 0) lat[n++] = Number(now - d.readBigUInt64LE(0)) / 1000;
      if (i === count - 1) break;
    }
    const got = lat.subarray(0, n).sort();
    console.log(JSON.stringify({ propP50: percentile(got, 0.5), propP99: percentile(got, 0.99) }));
    process.exit(0);
    break;
  }
  case "kv-writer": {
    const total = Number(b);
    const nc = await nats(url);
    const kv = await nc.jetstream().views.kv(a, { replicas: 3, history: 1, allow_direct: false });
    const data = Buffer.alloc(64);
    for (let i = 0; i < total; i++) {
      data.writeBigUInt64LE(process.hrtime.bigint(), 0);
      data.writeUInt32LE(i, 8);
      await kv.put("k", data);
    }
    console.log(JSON.stringify({ done: total }));
    await nc.close();
    process.exit(0);
    break;
  }
  case "js-sub": {
    const n = Number(b);
    const nc = await nats(url);
    const jsm = await nc.jetstreamManager();
    await jsm.streams.add({ name: a, subjects: [`${a}.s`], num_replicas: 3, max_bytes: 256 * 1024 * 1024 });
    const consumer = await nc.jetstream().consumers.get(a);
    let got = 0;
    let first = 0n;
    await consumer.consume({
      callback: () => {
        if (got++ === 0) first = process.hrtime.bigint();
        if (got === n) {
          const seconds = Number(process.hrtime.bigint() - first) / 1e9;
          console.log(JSON.stringify({ deliveries: n, seconds }));
          process.exit(0);
        }
      },
    });
    console.log("ready");
    break;
  }
  case "js-pub": {
    const n = Number(b);
    const payload = Buffer.alloc(Number(c), 7);
    const nc = await nats(url);
    for (let i = 0; i < n; i++) {
      nc.publish(`${a}.s`, payload);
      if (i % 1000 === 999) await nc.flush();
    }
    await nc.flush();
    console.log(JSON.stringify({ done: n }));
    process.exit(0);
    break;
  }
  default:
    throw new Error(`unknown role ${role}`);
}
