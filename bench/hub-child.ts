/**
 * Hub benchmark roles, each run as its own process by `hub-bench.ts`:
 *   hub URL                          run a hub, print "ready URL"
 *   latency URL COUNT                propagation (write on A → change on poll B), request-read RTT and the
 *                                    cost of a fresh lazy read; print JSON
 *   watchers URL KEY N TARGET        N poll clients on KEY; print "ready", then JSON once all saw TARGET
 *   writer URL KEY COUNT WINDOW      COUNT writes of 64 B with WINDOW in flight; print JSON {seconds}
 *   raw-pipe URL COUNT WINDOW        baseline: node:net requests of 64 B with WINDOW in flight against
 *                                    child.js echo-raw; print JSON {seconds}
 */
import net from "node:net";
import { connect, Hub } from "../src/index.js";

const [role, url, a, b, c] = process.argv.slice(2) as [string, string, string?, string?, string?];
const opts = { heartbeatIntervalMs: 0, reconnect: false as const };

function percentile(xs: Float64Array, p: number): number {
  return xs[Math.min(xs.length - 1, Math.floor(xs.length * p))]!;
}

switch (role) {
  case "hub": {
    const hub = await Hub.listen({ urls: [url], heartbeatIntervalMs: 0 });
    console.log(`ready ${hub.urls[0]}`);
    process.once("SIGINT", () => process.exit(0));
    break;
  }
  case "latency": {
    const count = Number(a);
    const warmup = Math.min(1000, Math.floor(count / 5));
    const A = await connect(url, { ...opts, name: "writer" });
    const B = await connect(url, { ...opts, name: "poller" });
    const C = await connect(url, { ...opts, name: "reader" });
    const w = await A.allocate(`lat.${process.pid}`, 64, "request");
    const p = await B.watch(w.key, "poll");
    const r = await C.watch(w.key, "request");
    if (!p || !r) throw new Error("watch failed");
    const data = Buffer.alloc(64, 1);

    const prop = new Float64Array(count);
    let wake: () => void = () => {};
    p.on("change", () => wake());
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

    const reads = new Float64Array(count);
    for (let i = -warmup; i < count; i++) {
      const t0 = process.hrtime.bigint();
      await r.read();
      if (i >= 0) reads[i] = Number(process.hrtime.bigint() - t0) / 1000;
    }
    reads.sort();

    // A lazy pointer on a key that does not change: read() answers from the copy.
    const still = await A.allocate(`still.${process.pid}`, 64, "request");
    const lazy = await C.watch(still.key, "lazy");
    if (!lazy) throw new Error("watch failed");
    const n = 200_000;
    for (let i = 0; i < 10_000; i++) await lazy.read();
    const t0 = process.hrtime.bigint();
    for (let i = 0; i < n; i++) await lazy.read();
    const lazyNs = Number(process.hrtime.bigint() - t0) / n;
    console.log(
      JSON.stringify({
        propP50: percentile(prop, 0.5),
        propP99: percentile(prop, 0.99),
        readP50: percentile(reads, 0.5),
        readP99: percentile(reads, 0.99),
        lazyNs,
      }),
    );
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
  case "raw-pipe": {
    const count = Number(a);
    const window = Number(b);
    const u = new URL(url);
    const s = await new Promise<net.Socket>((resolve, reject) => {
      const sock = net.connect({ host: u.hostname, port: Number(u.port), noDelay: true }, () =>
        resolve(sock),
      );
      sock.once("error", reject);
    });
    const frame = Buffer.alloc(4 + 64, 2);
    frame.writeUInt32BE(64, 0);
    const t0 = process.hrtime.bigint();
    let received = 0;
    let sent = 0;
    let pending: Buffer | null = null;
    await new Promise<void>((resolve) => {
      const pump = () => {
        const batch: Buffer[] = [];
        while (sent - received < window && sent < count) {
          batch.push(frame);
          sent++;
        }
        if (batch.length > 0) s.write(batch.length === 1 ? batch[0]! : Buffer.concat(batch));
      };
      s.on("data", (chunk: Buffer) => {
        const buf = pending ? Buffer.concat([pending, chunk]) : chunk;
        let pos = 0;
        while (buf.length - pos >= 4) {
          const len = buf.readUInt32BE(pos);
          if (buf.length - pos - 4 < len) break;
          pos += 4 + len;
          received++;
        }
        pending = pos < buf.length ? buf.subarray(pos) : null;
        if (received === count) resolve();
        else pump();
      });
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
