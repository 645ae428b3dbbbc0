/**
 * Hub benchmark roles, each run as its own process by `hub-bench.ts`:
 *   hub URL                          run a hub, print "ready URL"
 *   reads URL COUNT                  request-read round trips, propagation between two clients of one
 *                                    process, and the cost of a fresh lazy read; print JSON
 *   prop-reader URL KEY COUNT WARMUP poll client: print "ready", then JSON with the write → update delays
 *   prop-writer URL KEY TOTAL        TOTAL timestamped writes of 64 B, one at a time
 *   watchers URL KEY N TARGET        N poll clients on KEY; print "ready", then JSON once all saw TARGET
 *   writer URL KEY COUNT WINDOW      COUNT writes of 64 B with WINDOW in flight; print JSON {seconds}
 *   raw-relay URL                    baseline hub: node:net server forwarding each frame to every other
 *                                    connection and acknowledging it to its sender; print "ready URL"
 *   raw-prop-reader URL COUNT WARMUP baseline poll client of raw-relay; print "ready", then JSON delays
 *   raw-prop-writer URL TOTAL        baseline writer: TOTAL timestamped 64 B frames, one at a time
 *   raw-pipe URL COUNT WINDOW        baseline: node:net requests of 64 B with WINDOW in flight against
 *                                    child.js echo-raw; print JSON {seconds}
 */
import net from "node:net";
import { connect, Hub } from "../src/index.js";
import { listenOn, rawConnect, rawFrame, rawFrames } from "./raw.js";
import { percentile } from "./stats.js";

const [role, url, a, b, c] = process.argv.slice(2) as [string, string, string?, string?, string?];
const opts = { heartbeatIntervalMs: 0, reconnect: false as const };

switch (role) {
  case "hub": {
    const hub = await Hub.listen({ urls: [url], heartbeatIntervalMs: 0 });
    console.log(`ready ${hub.urls[0]}`);
    process.once("SIGINT", () => process.exit(0));
    break;
  }
  case "reads": {
    // Request-read round trips, and the cost of a fresh lazy read.
    const count = Number(a);
    const warmup = Math.min(1000, Math.floor(count / 5));
    const A = await connect(url, { ...opts, name: "owner" });
    const C = await connect(url, { ...opts, name: "reader" });
    const w = await A.allocate(`reads.${process.pid}`, 64, "request");
    const r = await C.watch(w.key, "request");
    if (!r) throw new Error("watch failed");
    const reads = new Float64Array(count);
    for (let i = -warmup; i < count; i++) {
      const t0 = process.hrtime.bigint();
      await r.read();
      if (i >= 0) reads[i] = Number(process.hrtime.bigint() - t0) / 1000;
    }
    reads.sort();

    // Propagation with writer and poll reader as two clients of one process (two processes in all).
    const B = await connect(url, { ...opts, name: "poller" });
    const p = await B.watch(w.key, "poll");
    if (!p) throw new Error("watch failed");
    const prop = new Float64Array(count);
    let wake: () => void = () => {};
    p.on("change", () => wake());
    const data = Buffer.alloc(64, 1);
    for (let i = -warmup; i < count; i++) {
      data.writeUInt32LE(i >>> 0);
      const seen = new Promise<void>((resolve) => {
        wake = resolve;
      });
      const t0 = process.hrtime.bigint();
      const ack = w.write(data);
      await seen;
      const t1 = process.hrtime.bigint();
      await ack;
      if (i >= 0) prop[i] = Number(t1 - t0) / 1000;
    }
    prop.sort();
    // A lazy pointer on a key that does not change: read() answers from the copy.
    const lazy = await C.watch(w.key, "lazy");
    if (!lazy) throw new Error("watch failed");
    r.dispose(); // the lazy pointer alone decides the policy now
    const n = 200_000;
    for (let i = 0; i < 10_000; i++) await lazy.read();
    const t0 = process.hrtime.bigint();
    for (let i = 0; i < n; i++) await lazy.read();
    const lazyNs = Number(process.hrtime.bigint() - t0) / n;
    console.log(
      JSON.stringify({
        readP50: percentile(reads, 0.5),
        readP99: percentile(reads, 0.99),
        localP50: percentile(prop, 0.5),
        localP99: percentile(prop, 0.99),
        lazyNs,
      }),
    );
    process.exit(0);
    break;
  }
  case "prop-reader": {
    // A poll client in its own process: each update carries the writer's hrtime (CLOCK_MONOTONIC, shared
    // by all processes of the machine), so the delay is measured end to end across processes.
    const key = a!;
    const count = Number(b);
    const warmup = Number(c);
    const client = await connect(url, { ...opts, name: "prop-reader" });
    const ptr = await client.watch(key, "poll");
    if (!ptr) throw new Error(`no key ${key}`);
    const lat = new Float64Array(count);
    let n = 0;
    // Each write carries its index (bytes 8…11): a reader that is sent only the newest of several writes
    // (a clustered hub's watch may skip revisions it is behind on) measures the ones it got and still stops
    // at the last.
    ptr.on("change", ({ data }) => {
      const now = process.hrtime.bigint();
      const d = Buffer.from(data!.buffer, data!.byteOffset, 12);
      const i = d.readUInt32LE(8) - warmup;
      if (i >= 0) lat[n++] = Number(now - d.readBigUInt64LE(0)) / 1000;
      if (i === count - 1) {
        const got = lat.subarray(0, n).sort();
        console.log(JSON.stringify({ propP50: percentile(got, 0.5), propP99: percentile(got, 0.99) }));
        process.exit(0);
      }
    });
    console.log("ready");
    break;
  }
  case "prop-writer": {
    // One write at a time: stamp, write, wait for the hub's acknowledgement.
    const key = a!;
    const total = Number(b);
    const client = await connect(url, { ...opts, name: "prop-writer" });
    const ptr = await client.watch(key, "request");
    if (!ptr) throw new Error(`no key ${key}`);
    const data = Buffer.alloc(64);
    for (let i = 0; i < total; i++) {
      data.writeBigUInt64LE(process.hrtime.bigint(), 0);
      data.writeUInt32LE(i, 8);
      await ptr.write(data);
    }
    console.log(JSON.stringify({ done: total }));
    process.exit(0);
    break;
  }
  case "watchers": {
    const key = a!;
    const n = Number(b);
    const target = Number(c);
    let deliveries = 0;
    let done = 0;
    let first = 0n;
    const finished = new Promise<void>((resolve) => {
      void (async () => {
        for (let i = 0; i < n; i++) {
          const client = await connect(url, { ...opts, name: `watcher${i}` });
          const ptr = await client.watch(key, "poll");
          if (!ptr) throw new Error(`no key ${key}`);
          ptr.on("change", (ch) => {
            if (first === 0n) first = process.hrtime.bigint();
            deliveries++;
            if (ch.version === target && ++done === n) resolve();
          });
        }
        console.log("ready");
      })();
    });
    await finished;
    const seconds = Number(process.hrtime.bigint() - first) / 1e9;
    console.log(JSON.stringify({ deliveries, seconds }));
    process.exit(0);
    break;
  }
  case "writer": {
    const key = a!;
    const count = Number(b);
    const window = Number(c);
    const client = await connect(url, { ...opts, name: "writer" });
    const ptr = await client.watch(key, "request");
    if (!ptr) throw new Error(`no key ${key}`);
    const data = Buffer.alloc(64, 2);
    const t0 = process.hrtime.bigint();
    let inFlight = 0;
    let sent = 0;
    await new Promise<void>((resolve) => {
      let acked = 0;
      const pump = () => {
        while (inFlight < window && sent < count) {
          inFlight++;
          sent++;
          void ptr.write(data).then(() => {
            inFlight--;
            if (++acked === count) resolve();
            else pump();
          });
        }
      };
      pump();
    });
    console.log(JSON.stringify({ seconds: Number(process.hrtime.bigint() - t0) / 1e9 }));
    process.exit(0);
    break;
  }
  case "raw-relay": {
    const socks = new Set<net.Socket>();
    const ack = rawFrame(Buffer.from([1]));
    const server = net.createServer({ noDelay: true }, (sock) => {
      socks.add(sock);
      sock.on("close", () => socks.delete(sock));
      rawFrames(sock, (f) => {
        const out = rawFrame(f);
        for (const o of socks) if (o !== sock) o.write(out);
        sock.write(ack);
      });
    });
    console.log(`ready ${await listenOn(server, url)}`);
    break;
  }
  case "raw-prop-reader": {
    const count = Number(a);
    const warmup = Number(b);
    const sock = await rawConnect(url);
    const lat = new Float64Array(count);
    let seen = 0;
    rawFrames(sock, (f) => {
      const now = process.hrtime.bigint();
      const i = seen++ - warmup;
      if (i >= 0) lat[i] = Number(now - f.readBigUInt64LE(0)) / 1000;
      if (i === count - 1) {
        lat.sort();
        console.log(JSON.stringify({ propP50: percentile(lat, 0.5), propP99: percentile(lat, 0.99) }));
        process.exit(0);
      }
    });
    console.log("ready");
    break;
  }
  case "raw-prop-writer": {
    const total = Number(a);
    const sock = await rawConnect(url);
    let wake: () => void = () => {};
    rawFrames(sock, () => wake());
    const payload = Buffer.alloc(64);
    for (let i = 0; i < total; i++) {
      payload.writeBigUInt64LE(process.hrtime.bigint(), 0);
      const acked = new Promise<void>((resolve) => {
        wake = resolve;
      });
      sock.write(rawFrame(payload));
      await acked;
    }
    console.log(JSON.stringify({ done: total }));
    process.exit(0);
    break;
  }
  case "raw-pipe": {
    const count = Number(a);
    const window = Number(b);
    const s = await rawConnect(url);
    const frame = Buffer.alloc(4 + 64, 2);
    frame.writeUInt32BE(64, 0);
    const t0 = process.hrtime.bigint();
    let received = 0;
    let sent = 0;
    await new Promise<void>((resolve) => {
      // Refill the window once per chunk read, in one write (the listener below runs after rawFrames').
      const pump = () => {
        const batch: Buffer[] = [];
        while (sent - received < window && sent < count) {
          batch.push(frame);
          sent++;
        }
        if (batch.length > 0) s.write(batch.length === 1 ? batch[0]! : Buffer.concat(batch));
      };
      rawFrames(s, () => {
        received++;
      });
      s.on("data", () => (received === count ? resolve() : pump()));
      pump();
    });
    console.log(JSON.stringify({ seconds: Number(process.hrtime.bigint() - t0) / 1e9 }));
    s.destroy();
    break;
  }
  default:
    console.error(`unknown role ${role}`);
    process.exit(2);
}
