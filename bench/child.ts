/**
 * Benchmark roles, each run as its own process by `run.ts`:
 *   recv-raw|recv-ezipc URL N          listen, count N frames, answer one byte, print "ready URL"
 *   send-raw|send-ezipc URL N SIZE     send N frames of SIZE bytes, wait for the answer, print JSON {seconds}
 *   echo-raw|echo-ezipc URL            listen and echo every frame, print "ready URL"
 *   ping-raw|ping-ezipc URL COUNT SIZE round trips one at a time, print JSON {p50Us, p99Us}
 *   …-secure                           the ezipc roles over the Noise channel (ChaCha20-Poly1305)
 * The raw roles are the baseline: node:net with a 4-byte big-endian length prefix; batched writes for
 * throughput, one write per reply for round trips.
 */
import net from "node:net";
import { secureDial, secureListen } from "../src/security/channel.js";
import { keyPairFromPrivate } from "../src/security/suite.js";
import { dial, listen } from "../src/transport/registry.js";
import { listenOn, rawConnect, rawFrame, rawFrames } from "./raw.js";
import { percentile } from "./stats.js";

const [role, url, a, b] = process.argv.slice(2) as [string, string, string?, string?];

/** A hand-written batching writer: copies frames into a 64 KiB buffer, writes it when full or per tick. */
class RawBatcher {
  private buf = Buffer.allocUnsafe(65536);
  private pos = 0;
  private scheduled = false;
  constructor(private readonly socket: net.Socket) {}
  send(payload: Buffer): boolean {
    let ok = true;
    if (this.pos + 4 + payload.length > this.buf.length) ok = this.flush();
    this.buf.writeUInt32BE(payload.length, this.pos);
    payload.copy(this.buf, this.pos + 4);
    this.pos += 4 + payload.length;
    if (!this.scheduled) {
      this.scheduled = true;
      setImmediate(() => this.flush());
    }
    return ok;
  }
  flush(): boolean {
    this.scheduled = false;
    if (this.pos === 0) return true;
    const out = this.buf.subarray(0, this.pos);
    this.buf = Buffer.allocUnsafe(65536);
    this.pos = 0;
    return this.socket.write(out);
  }
}

function rawListen(onSocket: (s: net.Socket) => void): Promise<string> {
  return listenOn(net.createServer({ noDelay: true }, onSocket), url);
}

const opts = { heartbeatIntervalMs: 0 };
/** `…-secure` roles: the ezipc roles over the Noise channel (one fixed key pair shared by both ends). */
const secure = role.endsWith("-secure") || role.endsWith("-secure-aes");
/** `…-secure` roles use ChaCha20-Poly1305, `…-secure-aes` AES-256-GCM. */
const cipher = role.endsWith("-aes") ? "AESGCM" : "ChaChaPoly";
const benchKey = keyPairFromPrivate(Buffer.alloc(32, 7));
const listenOpts = secure ? { ...opts, upgrade: secureListen({ staticKey: benchKey }) } : opts;
const dialOpts = secure ? { ...opts, upgrade: secureDial({ hubKey: benchKey.publicKey, cipher }) } : opts;

/** A receiver's measurement: the seconds from its first byte (raw) or frame (ezipc) to its last frame. */
function received(first: bigint): void {
  console.log(JSON.stringify({ seconds: Number(process.hrtime.bigint() - first) / 1e9 }));
}

switch (role.replace(/-aes$/, "")) {
  case "recv-raw": {
    const n = Number(a);
    const bound = await rawListen((s) => {
      let count = 0;
      let first = 0n;
      s.once("data", () => {
        first = process.hrtime.bigint();
      });
      rawFrames(s, () => {
        if (++count === n) {
          received(first);
          s.write(Buffer.from([1]));
        }
      });
    });
    console.log(`ready ${bound}`);
    break;
  }
  case "recv-ezipc":
  case "recv-secure": {
    const n = Number(a);
    const l = await listen(url, listenOpts);
    l.on("connection", (c) => {
      let count = 0;
      let first = 0n;
      c.on("message", () => {
        if (count === 0) first = process.hrtime.bigint();
        if (++count === n) {
          received(first);
          c.send(Buffer.from([1]));
        }
      });
    });
    console.log(`ready ${l.url}`);
    break;
  }
  case "send-raw": {
    const n = Number(a);
    const payload = Buffer.alloc(Number(b), 7);
    const s = await rawConnect(url);
    const batcher = new RawBatcher(s);
    const done = new Promise((r) => s.once("data", r));
    const t0 = process.hrtime.bigint();
    for (let i = 0; i < n; i++) {
      if (!batcher.send(payload)) await new Promise((r) => s.once("drain", r));
    }
    batcher.flush();
    await done;
    const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
    console.log(JSON.stringify({ seconds }));
    s.destroy();
    break;
  }
  case "send-ezipc":
  case "send-secure": {
    const n = Number(a);
    const payload = Buffer.alloc(Number(b), 7);
    const c = await dial(url, dialOpts);
    const done = new Promise((r) => c.once("message", r));
    const t0 = process.hrtime.bigint();
    for (let i = 0; i < n; i++) {
      if (!c.send(payload)) await c.drain();
    }
    await done;
    const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
    console.log(JSON.stringify({ seconds }));
    c.destroy();
    break;
  }
  case "echo-raw": {
    // The latency baseline writes each reply at once (no batching delay at all).
    const bound = await rawListen((s) => rawFrames(s, (f) => s.write(rawFrame(f))));
    console.log(`ready ${bound}`);
    break;
  }
  case "echo-ezipc":
  case "echo-secure": {
    const l = await listen(url, listenOpts);
    l.on("connection", (c) => c.on("message", (m) => c.send(m)));
    console.log(`ready ${l.url}`);
    break;
  }
  case "ping-raw":
  case "ping-ezipc":
  case "ping-secure": {
    const count = Number(a);
    const payload = Buffer.alloc(Number(b), 1);
    let send: (p: Buffer) => void;
    let next: Promise<void>;
    let wake: () => void = () => {};
    const arm = () => {
      next = new Promise<void>((r) => {
        wake = r;
      });
    };
    arm();
    let close: () => void;
    if (role === "ping-raw") {
      const s = await rawConnect(url);
      rawFrames(s, () => wake());
      send = (p) => s.write(rawFrame(p));
      close = () => s.destroy();
    } else {
      const c = await dial(url, dialOpts);
      c.on("message", () => wake());
      send = (p) => c.send(p);
      close = () => c.destroy();
    }
    const samples = new Float64Array(count);
    const warmup = Math.min(2000, count / 5);
    for (let i = -warmup; i < count; i++) {
      const t0 = process.hrtime.bigint();
      send(payload);
      await next!;
      arm();
      if (i >= 0) samples[i] = Number(process.hrtime.bigint() - t0) / 1000;
    }
    samples.sort();
    console.log(JSON.stringify({ p50Us: percentile(samples, 0.5), p99Us: percentile(samples, 0.99) }));
    close();
    break;
  }
  default:
    console.error(`unknown role ${role}`);
    process.exit(2);
}
