/**
 * The raw WebSocket baseline of the ws:// benchmark (bench/ws-bench.ts): the `ws` library used as well as a
 * hand-written program would, one binary message per message, as ezipc's ws:// sends one per frame.
 *   recv-rawws URL N          listen, count N messages, answer one byte, print "ready URL", then {seconds}
 *   send-rawws URL N SIZE     send N messages (bursts corked into one write, waiting while over 1 MiB is
 *                             buffered), wait for the answer
 *   echo-rawws URL            listen and echo every message
 *   ping-rawws URL COUNT SIZE round trips one at a time: {p50Us, p99Us}
 */
import type net from "node:net";
import WebSocket, { WebSocketServer } from "ws";
import { percentile } from "./stats.js";

const [role, url, a, b] = process.argv.slice(2) as [string, string, string?, string?];

function serve(onSocket: (ws: WebSocket) => void): Promise<string> {
  const u = new URL(url);
  const wss = new WebSocketServer({ host: u.hostname, port: Number(u.port), perMessageDeflate: false });
  wss.on("connection", (ws, req) => {
    (req.socket as net.Socket).setNoDelay(true);
    onSocket(ws);
  });
  return new Promise((resolve) =>
    wss.once("listening", () => resolve(`ws://${u.hostname}:${(wss.address() as net.AddressInfo).port}`)),
  );
}

async function open(): Promise<WebSocket> {
  const ws = new WebSocket(url, { perMessageDeflate: false });
  await new Promise((r) => ws.once("open", r));
  (ws as unknown as { _socket: net.Socket })._socket.setNoDelay(true);
  return ws;
}

switch (role) {
  case "recv-rawws": {
    const n = Number(a);
    console.log(
      `ready ${await serve((ws) => {
        let count = 0;
        let first = 0n;
        ws.on("message", () => {
          if (count === 0) first = process.hrtime.bigint();
          if (++count === n) {
            console.log(JSON.stringify({ seconds: Number(process.hrtime.bigint() - first) / 1e9 }));
            ws.send(Buffer.from([1]));
          }
        });
      })}`,
    );
    break;
  }
  case "send-rawws": {
    const n = Number(a);
    const payload = Buffer.alloc(Number(b), 7);
    const ws = await open();
    const socket = (ws as unknown as { _socket: net.Socket })._socket;
    const done = new Promise((r) => ws.once("message", r));
    const t0 = process.hrtime.bigint();
    let sent = 0;
    while (sent < n) {
      socket.cork();
      for (let i = 0; i < 256 && sent < n; i++, sent++) ws.send(payload, { binary: true });
      socket.uncork();
      if (ws.bufferedAmount > 1024 * 1024) await new Promise((r) => socket.once("drain", r));
      else if (sent % 4096 === 0) await new Promise((r) => setImmediate(r));
    }
    await done;
    console.log(JSON.stringify({ seconds: Number(process.hrtime.bigint() - t0) / 1e9 }));
    ws.terminate();
    break;
  }
  case "echo-rawws": {
    console.log(
      `ready ${await serve((ws) => ws.on("message", (m: Buffer) => ws.send(m, { binary: true })))}`,
    );
    break;
  }
  case "ping-rawws": {
    const count = Number(a);
    const payload = Buffer.alloc(Number(b), 1);
    const ws = await open();
    let wake: () => void = () => {};
    ws.on("message", () => wake());
    const samples = new Float64Array(count);
    const warmup = Math.min(2000, count / 5);
    for (let i = -warmup; i < count; i++) {
      const t0 = process.hrtime.bigint();
      const next = new Promise<void>((r) => {
        wake = r;
      });
      ws.send(payload, { binary: true });
      await next;
      if (i >= 0) samples[i] = Number(process.hrtime.bigint() - t0) / 1000;
    }
    samples.sort();
    console.log(JSON.stringify({ p50Us: percentile(samples, 0.5), p99Us: percentile(samples, 0.99) }));
    ws.terminate();
    break;
  }
  default:
    console.error(`unknown role ${role}`);
    process.exit(2);
}
