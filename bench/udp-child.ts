/**
 * udp:// benchmark roles (udp-bench.ts), each its own process; KIND is `raw` (node:dgram, as a careful
 * hand-written program uses it), `ezipc` (udp:// connections) or `sealed` (encrypted udp://, the cipher
 * this machine prefers, a fixed benchmark key).
 *   recv-KIND URL           count datagrams until END; answer DONE; print "ready URL", then JSON
 *                           {received, seconds} (first to last datagram)
 *   send-KIND URL N SIZE    N datagrams of SIZE bytes as fast as the socket takes them (at most 1 MiB
 *                           queued), then END until DONE comes back
 *   echo-KIND URL           send every datagram back; print "ready URL"
 *   ping-KIND URL COUNT     COUNT 64 B round trips one at a time (a lost one is sent again after 50 ms);
 *                           print JSON {p50Us, p99Us, resent}
 */
import dgram from "node:dgram";
import { secureDatagramDial, secureDatagramListen } from "../src/security/datagrams.js";
import { keyPairFromPrivate } from "../src/security/suite.js";
import { dial, listen } from "../src/transport/registry.js";
import type { Connection, DialOptions, ListenOptions } from "../src/transport/types.js";
import { percentile } from "./stats.js";

const [role, url, a, b] = process.argv.slice(2) as [string, string, string?, string?];
const END = Buffer.from("END");
const DONE = Buffer.from("DONE");
const QUEUE_LIMIT = 1024 * 1024;
const opts = { heartbeatIntervalMs: 0, udp: { maxDatagramBytes: 2048 } };
const kind = role.slice(role.indexOf("-") + 1);
/** The listener's key of the `sealed` runs (a benchmark's: fixed, so that both processes know it). */
const benchKey = keyPairFromPrivate(Buffer.alloc(32, 5));
const listenOpts: ListenOptions =
  kind === "sealed"
    ? { ...opts, udp: { ...opts.udp, secure: secureDatagramListen({ staticKey: benchKey }) } }
    : opts;
const dialOpts: DialOptions =
  kind === "sealed"
    ? { ...opts, udp: { ...opts.udp, secure: secureDatagramDial({ hubKey: benchKey.publicKey }) } }
    : opts;

function hostPort(u: string): { host: string; port: number } {
  const p = new URL(u);
  return { host: p.hostname, port: Number(p.port) };
}

/** Counts until END; first to last datagram. */
function counter(): { onData: (d: Buffer) => boolean; result: () => string } {
  let received = 0;
  let first = 0n;
  let last = 0n;
  return {
    onData: (d) => {
      if (d.length === 3 && d.equals(END)) return true;
      const now = process.hrtime.bigint();
      if (received === 0) first = now;
      last = now;
      received++;
      return false;
    },
    result: () => JSON.stringify({ received, seconds: Number(last - first) / 1e9 }),
  };
}

async function rawSocket(): Promise<dgram.Socket> {
  const s = dgram.createSocket("udp4");
  await new Promise<void>((r) => s.bind(0, "127.0.0.1", () => r()));
  return s;
}

async function timePings(count: number, once: () => Promise<boolean>): Promise<void> {
  const samples = new Float64Array(count);
  let resent = 0;
  for (let i = -Math.min(1000, count / 5); i < count; i++) {
    const t0 = process.hrtime.bigint();
    while (!(await once())) resent++;
    if (i >= 0) samples[i] = Number(process.hrtime.bigint() - t0) / 1000;
  }
  samples.sort();
  console.log(JSON.stringify({ p50Us: percentile(samples, 0.5), p99Us: percentile(samples, 0.99), resent }));
}

switch (role) {
  case "recv-raw": {
    const { host, port } = hostPort(url);
    const s = dgram.createSocket("udp4");
    await new Promise<void>((r) => s.bind(port, host, () => r()));
    const c = counter();
    let done = false;
    s.on("message", (m, rinfo) => {
      if (!c.onData(m)) return;
      s.send(DONE, rinfo.port, rinfo.address);
      if (!done) console.log(c.result());
      done = true;
    });
    console.log(`ready udp://127.0.0.1:${s.address().port}`);
    break;
  }
  case "recv-ezipc":
  case "recv-sealed": {
    const l = await listen(url, listenOpts);
    const c = counter();
    let done = false;
    l.on("connection", (conn) =>
      conn.on("message", (m) => {
        if (!c.onData(m)) return;
        conn.send(DONE);
        if (!done) console.log(c.result());
        done = true;
      }),
    );
    console.log(`ready ${l.url}`);
    break;
  }
  case "send-raw": {
    const n = Number(a);
    const payload = Buffer.alloc(Number(b), 7);
    const { host, port } = hostPort(url);
    const s = await rawSocket();
    await new Promise<void>((r) => s.connect(port, host, () => r()));
    let queued = 0;
    let wake: (() => void) | null = null;
    const sent = () => {
      queued -= payload.length;
      if (wake && queued < QUEUE_LIMIT / 2) {
        const w = wake;
        wake = null;
        w();
      }
    };
    for (let i = 0; i < n; i++) {
      queued += payload.length;
      s.send(payload, sent);
      if (queued >= QUEUE_LIMIT) await new Promise<void>((r) => (wake = r));
    }
    const done = new Promise<void>((r) => s.once("message", () => r()));
    const timer = setInterval(() => s.send(END), 5);
    await done;
    clearInterval(timer);
    s.close();
    break;
  }
  case "send-ezipc":
  case "send-sealed": {
    const n = Number(a);
    const payload = Buffer.alloc(Number(b), 7);
    const c: Connection = await dial(url, { ...dialOpts, sendHighWaterMarkBytes: QUEUE_LIMIT });
    for (let i = 0; i < n; i++) if (!c.send(payload)) await c.drain();
    const done = new Promise<void>((r) => c.once("message", () => r()));
    const timer = setInterval(() => c.send(END), 5);
    await done;
    clearInterval(timer);
    await c.close();
    break;
  }
  case "echo-raw": {
    const { host, port } = hostPort(url);
    const s = dgram.createSocket("udp4");
    await new Promise<void>((r) => s.bind(port, host, () => r()));
    s.on("message", (m, rinfo) => s.send(m, rinfo.port, rinfo.address));
    console.log(`ready udp://127.0.0.1:${s.address().port}`);
    break;
  }
  case "echo-ezipc":
  case "echo-sealed": {
    const l = await listen(url, listenOpts);
    l.on("connection", (conn) => conn.on("message", (m) => conn.send(m)));
    console.log(`ready ${l.url}`);
    break;
  }
  case "ping-raw": {
    const { host, port } = hostPort(url);
    const s = await rawSocket();
    await new Promise<void>((r) => s.connect(port, host, () => r()));
    const payload = Buffer.alloc(64, 1);
    await timePings(
      Number(a),
      () =>
        new Promise<boolean>((resolve) => {
          const t = setTimeout(() => {
            s.removeAllListeners("message");
            resolve(false);
          }, 50);
          s.once("message", () => {
            clearTimeout(t);
            resolve(true);
          });
          s.send(payload);
        }),
    );
    s.close();
    break;
  }
  case "ping-ezipc":
  case "ping-sealed": {
    const c = await dial(url, dialOpts);
    const payload = Buffer.alloc(64, 1);
    await timePings(
      Number(a),
      () =>
        new Promise<boolean>((resolve) => {
          const onMessage = () => {
            clearTimeout(t);
            resolve(true);
          };
          const t = setTimeout(() => {
            c.off("message", onMessage);
            resolve(false);
          }, 50);
          c.once("message", onMessage);
          c.send(payload);
        }),
    );
    await c.close();
    break;
  }
  default:
    throw new Error(`unknown role ${role}`);
}
