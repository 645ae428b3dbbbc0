import assert from "node:assert/strict";
import net from "node:net";
import { describe, it } from "node:test";
import WebSocket from "ws";
import { connect, dh25519, Hub } from "../../src/index.js";
import { nextEvent, within } from "../helpers.js";

/** A raw WebSocket to `url`, open. */
async function rawWs(url: string): Promise<WebSocket> {
  const ws = new WebSocket(url);
  ws.on("error", () => {});
  await within(nextEvent(ws, "open"), 5_000, "WebSocket open");
  return ws;
}

/** Everything a raw WebSocket receives until it closes: binary messages and the close code. */
function untilClosed(ws: WebSocket): Promise<{ messages: Buffer[]; code: number }> {
  const messages: Buffer[] = [];
  ws.on("message", (m: Buffer) => messages.push(m));
  return within(
    new Promise((resolve) => ws.once("close", (code) => resolve({ messages, code }))),
    5_000,
    "the hub to close the WebSocket",
  );
}

/** The reason of the CLOSE frame in a binary message (docs/protocol.md: 0x80000000 | n, 0x03, reason). */
function closeReason(m: Buffer): string {
  assert.equal(m.readUInt32BE(0) >>> 31, 1, "a control frame");
  assert.equal(m[4], 0x03, "CLOSE");
  return m.subarray(5).toString();
}

describe("the hub over ws://", () => {
  it("serves WebSocket clients beside tcp:// ones: variables, pub/sub and RPC across the two", async () => {
    const hub = await Hub.listen({ urls: ["tcp://127.0.0.1:0", "ws://127.0.0.1:0"] });
    const [tcpUrl, wsUrl] = hub.urls as [string, string];
    assert.match(wsUrl, /^ws:\/\/127\.0\.0\.1:\d+$/);
    const a = await connect(wsUrl, { name: "browserish" });
    const b = await connect(tcpUrl, { name: "native" });
    try {
      const p = await a.allocate("ws.key", 4, "poll");
      const q = await b.watch("ws.key", "poll");
      assert.ok(q);
      const changed = nextEvent(q, "change");
      assert.equal(await p.write(Buffer.from([7])), 2);
      await within(changed, 5_000, "the tcp watcher sees the ws write");
      assert.deepEqual([...q.read()], [7, 0, 0, 0]);
      const sub = await a.subscribe("ws.news", { init: "oldest" });
      await b.publish("ws.news", "over tcp");
      const it = sub[Symbol.asyncIterator]();
      assert.equal((await within(it.next(), 5_000, "message over ws")).value!.text(), "over tcp");
      await a.serve("ws.echo", (req) => req.text().toUpperCase());
      assert.equal((await b.request("ws.echo", "hi")).text(), "HI");
    } finally {
      await a.close();
      await b.close();
      await hub.close();
    }
  });

  it("refuses what is not ezipc: a text message, an oversize message, a plain HTTP request; others carry on", async () => {
    const hub = await Hub.listen({ urls: ["ws://127.0.0.1:0"], maxFrameBytes: 4096 });
    const url = hub.urls[0]!;
    const good = await connect(url, { name: "good" });
    try {
      const p = await good.allocate("ws.survivor", 1, "poll");
      // A text message: CLOSE with EZIPC_PROTOCOL, then the WebSocket goes.
      const text = await rawWs(url);
      const t = untilClosed(text);
      text.send("hello?");
      const { messages } = await t;
      assert.match(closeReason(messages.at(-1)!), /^EZIPC_PROTOCOL: /);
      // A binary message over the frame limit: closed before it is buffered (WebSocket code 1009).
      const big = await rawWs(url);
      const b = untilClosed(big);
      big.send(Buffer.alloc(4096 + 4 + 64 * 1024 + 1));
      assert.equal((await b).code, 1009);
      // A frame header announcing more than maxFrameBytes: EZIPC_FRAME_TOO_LARGE, told by code.
      const liar = await rawWs(url);
      const l = untilClosed(liar);
      const header = Buffer.alloc(4);
      header.writeUInt32BE(4097);
      liar.send(header);
      assert.match(closeReason((await l).messages.at(-1)!), /^EZIPC_FRAME_TOO_LARGE: /);
      // Plain HTTP on the WebSocket port: 426.
      const res = await fetch(url.replace(/^ws:/, "http:"));
      assert.equal(res.status, 426);
      await res.text();
      assert.equal(await p.write(Buffer.from([1])), 2, "the good client carries on");
    } finally {
      await good.close();
      await hub.close();
    }
  });

  it("a flood of WebSockets that never say hello is closed at the handshake timeout; a client still gets in", async () => {
    const hub = await Hub.listen({ urls: ["ws://127.0.0.1:0"], handshakeTimeoutMs: 300 });
    const url = hub.urls[0]!;
    try {
      // Each watched from its creation: the first may be closed before the last is open.
      const closed = Array.from({ length: 200 }, () => {
        const ws = new WebSocket(url);
        ws.on("error", () => {});
        return untilClosed(ws);
      });
      const c = await connect(url, { name: "late" });
      assert.equal((await c.allocate("ws.flooded", 1, "request")).version, 1);
      const results = await Promise.all(closed);
      for (const r of results) assert.match(closeReason(r.messages.at(-1)!), /^EZIPC_HANDSHAKE: /);
      await c.close();
    } finally {
      await hub.close();
    }
  });

  it("drops sockets that never finish their HTTP upgrade request, after heartbeatTimeoutMs", async () => {
    const hub = await Hub.listen({
      urls: ["ws://127.0.0.1:0"],
      heartbeatTimeoutMs: 600,
      heartbeatIntervalMs: 200,
    });
    const port = Number(new URL(hub.urls[0]!).port);
    try {
      const t0 = Date.now();
      const slow = await Promise.all(
        Array.from({ length: 20 }, async () => {
          const s = net.connect(port, "127.0.0.1");
          s.on("error", () => {});
          s.on("data", () => {});
          await within(nextEvent(s, "connect"), 5_000, "connected");
          s.write("GET / HTTP/1.1\r\nHost: x\r\n"); // and never the blank line
          return s;
        }),
      );
      await within(
        Promise.all(slow.map((s) => new Promise((r) => s.once("close", r)))),
        5_000,
        "the hub to drop the unfinished requests",
      );
      assert.ok(Date.now() - t0 >= 500, "not before the bound");
      const c = await connect(hub.urls[0]!, { name: "after" });
      assert.equal((await c.allocate("ws.after", 1, "request")).version, 1);
      await c.close();
    } finally {
      await hub.close();
    }
  });

  it("carries the security upgrade: an encrypted client over ws:// to a secure hub", async () => {
    const staticKey = dh25519.generateKeyPair();
    const hub = await Hub.listen({ urls: ["ws://127.0.0.1:0"], security: { staticKey } });
    try {
      const c = await connect(hub.urls[0]!, {
        name: "secret",
        secure: { hubKey: staticKey.publicKey.toString("base64") },
      });
      assert.equal((await c.allocate("ws.secret", 2, "poll")).version, 1);
      await c.close();
      await assert.rejects(
        connect(hub.urls[0]!, { name: "plain", reconnect: false }),
        (e: Error & { code?: string }) => e.code === "EZIPC_AUTH",
      );
    } finally {
      await hub.close();
    }
  });
});
