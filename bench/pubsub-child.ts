/**
 * Pub/sub and RPC benchmark roles, each run as its own process by `pubsub-bench.ts`. `SYS` is `ez` (the
 * ezipc hub) or `nats` (a local nats-server with the nats npm client).
 *   hub URL [SHM_URL]                    run a hub with its defaults (with SHM_URL: bridging that shm://
 *                                        namespace); print "ready URL"
 *   SYS-sub URL TOPIC N SUBS             SUBS subscribers; print "ready", then JSON once each got N
 *   SYS-pub URL TOPIC N SIZE             N messages of SIZE bytes, fire-and-forget; print JSON {seconds}
 *   SYS-reply URL TOPIC [spin]           an echo responder; print "ready" (ez, shm://, "spin": polling)
 *   SYS-req URL TOPIC COUNT [hub|spin]   COUNT requests one at a time; print JSON {p50Us, p99Us}
 *                                        (ez, with "hub": through the hub, direct RPC off; "spin": as above)
 *   (the ez roles take shm:// URLs too: the shared-memory backend, no hub)
 *   ez-replay URL TOPIC N                subscribe from the oldest message and read N; print JSON {seconds}
 *   raw-relay URL                        the ceiling: a node:net relay that forwards what a publisher writes,
 *                                        as it reads it, to every subscriber (no parsing, no history)
 *   raw-sub / raw-pub                    as SYS-sub / SYS-pub, length-prefixed frames over node:net
 */
import net from "node:net";
import { connect, Hub, shmBridge } from "../src/index.js";
import { listenOn, rawConnect, rawFrame, rawFrames } from "./raw.js";
import { percentile } from "./stats.js";

const [role, url, topic, a, b, c] = process.argv.slice(2) as [
  string,
  string,
  string?,
  string?,
  string?,
  string?,
];
const ezOpts = { heartbeatIntervalMs: 0, reconnect: false as const };

/** The nats client, loaded by the NATS roles only: the ezipc roles' memory figures must not carry it. */
async function natsConnect(options: { servers: string }) {
  return (await import("nats")).connect(options);
}

function natsServer(u: string): string {
  const p = new URL(u);
  return `${p.hostname}:${p.port}`;
}

async function timeRequests(count: number, one: () => Promise<unknown>): Promise<void> {
  const warmup = Math.min(1000, Math.floor(count / 5));
  const samples = new Float64Array(count);
  for (let i = -warmup; i < count; i++) {
    const t0 = process.hrtime.bigint();
    await one();
    if (i >= 0) samples[i] = Number(process.hrtime.bigint() - t0) / 1000;
  }
  samples.sort();
  console.log(JSON.stringify({ p50Us: percentile(samples, 0.5), p99Us: percentile(samples, 0.99) }));
}

/**
 * Resolves when each of `subs` counters reached n (messages received, or reported lost in a gap); reports
 * deliveries over the first→last window (and its wall-clock bounds), and how many were lost.
 */
function counting(
  subs: number,
  n: number,
): { onMessage: (i: number) => void; onLost: (i: number, k: number) => void; done: Promise<void> } {
  const counts = new Array<number>(subs).fill(0);
  let finished = 0;
  let first = 0n;
  let firstWallMs = 0;
  let lost = 0;
  let resolve: () => void = () => {};
  const done = new Promise<void>((r) => {
    resolve = r;
  });
  const add = (i: number, k: number) => {
    if (first === 0n) {
      first = process.hrtime.bigint();
      firstWallMs = performance.timeOrigin + performance.now();
    }
    counts[i] = counts[i]! + k;
    if (counts[i]! >= n && counts[i]! - k < n && ++finished === subs) {
      const seconds = Number(process.hrtime.bigint() - first) / 1e9;
      // Wall-clock bounds too (ms, comparable across processes) for rates over several subscriber processes.
      const lastWallMs = performance.timeOrigin + performance.now();
      console.log(JSON.stringify({ deliveries: n * subs - lost, lost, seconds, firstWallMs, lastWallMs }));
      resolve();
    }
  };
  return {
    onMessage: (i) => add(i, 1),
    onLost: (i, k) => {
      lost += k;
      add(i, k);
    },
    done,
  };
}

switch (role) {
  case "hub": {
    // The defaults a user gets (16 MiB per topic, 256 MiB in all, publishers held for lagging subscribers).
    const hub = await Hub.listen({
      urls: [url],
      heartbeatIntervalMs: 0,
      bridge: topic ? shmBridge(topic, { scanMs: 100 }) : undefined,
    });
    console.log(`ready ${hub.urls[0]}`);
    process.once("SIGINT", () => process.exit(0));
    break;
  }
  case "raw-relay": {
    const subs = new Set<net.Socket>();
    const server = net.createServer({ noDelay: true }, (sock) => {
      sock.once("data", (first) => {
        if (first[0] === 0x53 && first.length === 1) {
          subs.add(sock); // 'S': a subscriber
          return;
        }
        const forward = (chunk: Buffer) => {
          let full = false;
          for (const s of subs) full = !s.write(chunk) || full;
          if (full) {
            sock.pause();
            Promise.all(
              [...subs].map((s) => new Promise((r) => (s.writableNeedDrain ? s.once("drain", r) : r(0)))),
            ).then(() => sock.resume());
          }
        };
        forward(first);
        sock.on("data", forward);
      });
    });
    console.log(`ready ${await listenOn(server, url)}`);
    process.once("SIGINT", () => process.exit(0));
    break;
  }
  case "raw-rpc-relay": {
    // The baseline of a call through a broker: bytes from the caller go to the server ('S' on connect) and
    // back, as they come, with no parsing — the least a third process can do per call.
    let server: net.Socket | null = null;
    let caller: net.Socket | null = null;
    const relay = net.createServer({ noDelay: true }, (sock) => {
      sock.once("data", (first) => {
        if (first[0] === 0x53 && first.length === 1) {
          server = sock;
          sock.on("data", (d) => caller?.write(d));
          return;
        }
        caller = sock;
        server?.write(first);
        sock.on("data", (d) => server?.write(d));
      });
    });
    console.log(`ready ${await listenOn(relay, url)}`);
    process.once("SIGINT", () => process.exit(0));
    break;
  }
  case "raw-echo-dial": {
    // An echo server that dials the relay and says it is the server.
    const sock = await rawConnect(url);
    sock.write(Buffer.from([0x53]));
    rawFrames(sock, (f) => sock.write(rawFrame(f)));
    console.log("ready");
    break;
  }
  case "raw-sub": {
    const n = Number(a);
    const subs = Number(b ?? 1);
    const c = counting(subs, n);
    for (let i = 0; i < subs; i++) {
      const sock = await rawConnect(url);
      sock.write(Buffer.from([0x53]));
      rawFrames(sock, (f) => {
        if (f.length >= 0) c.onMessage(i);
      });
    }
    console.log("ready");
    await c.done;
    process.exit(0);
    break;
  }
  case "raw-pub": {
    const n = Number(a);
    const size = Number(b);
    const sock = await rawConnect(url);
    const frame = Buffer.alloc(4 + size, 7);
    frame.writeUInt32BE(size, 0);
    const per = Math.max(1, Math.floor(65536 / frame.length));
    const t0 = process.hrtime.bigint();
    for (let i = 0; i < n; i += per) {
      const k = Math.min(per, n - i);
      const batch = Buffer.allocUnsafe(k * frame.length);
      for (let j = 0; j < k; j++) frame.copy(batch, j * frame.length);
      if (!sock.write(batch)) await new Promise((r) => sock.once("drain", r));
    }
    await new Promise<void>((r) => sock.end(r));
    console.log(JSON.stringify({ seconds: Number(process.hrtime.bigint() - t0) / 1e9 }));
    process.exit(0);
    break;
  }
  case "ez-sub": {
    const n = Number(a);
    const subs = Number(b ?? 1);
    const c = counting(subs, n);
    for (let i = 0; i < subs; i++) {
      const client = await connect(url, { ...ezOpts, name: `sub${i}` });
      // Default options: a user's subscriber.
      await client.subscribe(topic!, { onGap: (g) => c.onLost(i, Number(g.last - g.first + 1n)) }, (m) => {
        if (m.payload.length >= 0) c.onMessage(i);
      });
    }
    console.log("ready");
    await c.done;
    process.exit(0);
    break;
  }
  case "nats-sub": {
    const n = Number(a);
    const subs = Number(b ?? 1);
    const c = counting(subs, n);
    for (let i = 0; i < subs; i++) {
      const nc = await natsConnect({ servers: natsServer(url) });
      nc.subscribe(topic!, {
        callback: (_err, m) => {
          if (m.data.length >= 0) c.onMessage(i);
        },
      });
      await nc.flush();
    }
    console.log("ready");
    await c.done;
    process.exit(0);
    break;
  }
  case "ez-pub": {
    const n = Number(a);
    const payload = Buffer.alloc(Number(b), 7);
    const client = await connect(url, { ...ezOpts, name: "pub" });
    // "keep": a topic whose history holds every message (for the replay row; 4 GiB bound).
    if (c === "keep") await client.configureTopic(topic!, { maxBytes: 0xffffffff });
    const t0 = process.hrtime.bigint();
    for (let i = 0; i < n; i++) {
      if (!client.publishAndForget(topic!, payload)) await client.drain();
    }
    // Everything is out of this process (shm://: including publishes held for a slow reader, which a
    // publish to another topic does not wait for), and has reached the hub (a hub connection is in order).
    await client.drain();
    await client.publish(`${topic}.done`, "x");
    console.log(JSON.stringify({ seconds: Number(process.hrtime.bigint() - t0) / 1e9 }));
    process.exit(0);
    break;
  }
  case "nats-pub": {
    const n = Number(a);
    const payload = Buffer.alloc(Number(b), 7);
    const nc = await natsConnect({ servers: natsServer(url) });
    const t0 = process.hrtime.bigint();
    for (let i = 0; i < n; i++) {
      nc.publish(topic!, payload);
      if (i % 1000 === 999) await nc.flush(); // nats.js buffers without bound otherwise
    }
    await nc.flush();
    console.log(JSON.stringify({ seconds: Number(process.hrtime.bigint() - t0) / 1e9 }));
    process.exit(0);
    break;
  }
  case "ez-reply": {
    // a = "spin": shm:// readers poll instead of sleeping.
    const client = await connect(url, {
      ...ezOpts,
      name: "replier",
      ...(a === "spin" ? { spin: true } : {}),
    });
    await client.serve(topic!, (req) => req.payload);
    console.log("ready");
    break;
  }
  case "nats-reply": {
    const nc = await natsConnect({ servers: natsServer(url) });
    nc.subscribe(topic!, { callback: (_err, m) => m.respond(m.data) });
    await nc.flush();
    console.log("ready");
    break;
  }
  case "ez-req": {
    // b = "hub": every call through the hub (direct RPC off); "spin": shm:// readers poll.
    const client = await connect(url, {
      ...ezOpts,
      name: "requester",
      directRpc: b !== "hub",
      ...(b === "spin" ? { spin: true } : {}),
    });
    const payload = Buffer.alloc(64, 1);
    await timeRequests(Number(a), () => client.request(topic!, payload));
    process.exit(0);
    break;
  }
  case "nats-req": {
    const nc = await natsConnect({ servers: natsServer(url) });
    const payload = Buffer.alloc(64, 1);
    await timeRequests(Number(a), () => nc.request(topic!, payload, { timeout: 10_000 }));
    process.exit(0);
    break;
  }
  case "ez-replay": {
    const n = Number(a);
    const client = await connect(url, { ...ezOpts, name: "replayer" });
    let count = 0;
    const t0 = process.hrtime.bigint();
    await new Promise<void>((resolve) => {
      void client.subscribe(topic!, { init: "oldest", prefetch: 8192 }, () => {
        if (++count === n) resolve();
      });
    });
    console.log(JSON.stringify({ seconds: Number(process.hrtime.bigint() - t0) / 1e9 }));
    process.exit(0);
    break;
  }
  default:
    console.error(`unknown role ${role}`);
    process.exit(2);
}
