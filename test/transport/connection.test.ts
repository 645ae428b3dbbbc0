import assert from "node:assert/strict";
import diagnosticsChannel from "node:diagnostics_channel";
import { describe, it } from "node:test";
import { type LogRecord, setLogger } from "../../src/log.js";
import { backoffDelay } from "../../src/transport/dialer.js";
import { dial, listen } from "../../src/transport/registry.js";
import type { Connection } from "../../src/transport/types.js";
import { nextEvent, tempDir, testCertificates, until, within } from "../helpers.js";

let n = 0;

describe("Connection details", () => {
  it("send(frame, length) sends a prefix; a small frame's buffer may be reused at once", async () => {
    const listener = await listen(`memory://prefix-${++n}`);
    const accepted = nextEvent<[Connection]>(listener, "connection");
    const client = await dial(listener.url);
    const [server] = await accepted;
    const got: Buffer[] = [];
    server.on("message", (f) => got.push(Buffer.from(f)));
    const scratch = Buffer.alloc(64 * 1024);
    scratch.fill(1, 0, 10);
    client.send(scratch, 10);
    scratch.fill(2, 0, 10); // reused before the frame left: it was copied
    client.send(scratch, 5);
    const big = Buffer.alloc(40 * 1024, 7);
    client.send(big, 20 * 1024); // a large prefix is written as a view
    assert.throws(() => client.send(scratch, scratch.length + 1), RangeError);
    await within(
      (async () => {
        while (got.length < 3) await new Promise((r) => setImmediate(r));
      })(),
      5_000,
      "three frames",
    );
    assert.deepEqual(got[0], Buffer.alloc(10, 1));
    assert.deepEqual(got[1], Buffer.alloc(5, 2));
    assert.deepEqual(got[2], Buffer.alloc(20 * 1024, 7));
    await client.close();
    await listener.close();
  });

  it("released(): a plain socket's sender may reuse a large frame's buffer once the socket took it; never over memory:// or tls://", async () => {
    const tmp = tempDir();
    const certs = testCertificates(tmp.dir);
    const urls = [
      "tcp://127.0.0.1:0",
      `unix://${tmp.dir}/released.sock`,
      `memory://released-${++n}`,
      `tls://127.0.0.1:0?cert=${certs.certFile}&key=${certs.keyFile}`,
    ];
    try {
      for (const url of urls) {
        const plain = url.startsWith("tcp:") || url.startsWith("unix:");
        const listener = await listen(url);
        const accepted = nextEvent<[Connection]>(listener, "connection");
        const client = await dial(
          url.startsWith("tls:") ? `${listener.url}?ca=${certs.caFile}` : listener.url,
        );
        const [server] = await accepted;
        const got: Buffer[] = [];
        server.on("message", (f) => got.push(Buffer.from(f)));
        // One 40 KiB buffer (sent by reference), rewritten whenever the connection says it let go of it.
        const buf = Buffer.alloc(40 * 1024);
        let reused = 0;
        let sent = 0;
        const sendOne = () => {
          buf.fill(sent % 251);
          client.send(buf);
          sent++;
        };
        sendOne();
        for (let i = 0; i < 50; i++) {
          if (client.released?.() === true) {
            reused++;
            sendOne();
          } else await new Promise((r) => setImmediate(r));
        }
        if (plain) assert.ok(reused > 0, `${url}: the socket took a frame at once`);
        else assert.equal(reused, 0, `${url}: never released`);
        // Backed up (the server reads nothing): the frames wait in the socket, and are not released.
        if (plain) {
          server.pause();
          let held = false;
          for (let i = 0; i < 2000 && !held; i++) {
            buf.fill(sent % 251);
            client.send(Buffer.from(buf)); // (copies: these may wait)
            sent++;
            held = client.released?.() === false;
          }
          assert.ok(held, `${url}: a backed-up socket holds what it was given`);
          server.resume();
        }
        await until(() => got.length === sent, `${url}: every frame`, 10_000);
        for (let i = 0; i < got.length; i++) {
          assert.deepEqual(got[i], Buffer.alloc(40 * 1024, i % 251), `${url}: frame ${i}`);
        }
        await client.close();
        await listener.close();
      }
    } finally {
      tmp.cleanup();
    }
  });

  it("pauses reading while an async-iterator consumer lags, and loses nothing", async () => {
    const listener = await listen(`memory://iter-${++n}`);
    const accepted = nextEvent<[Connection]>(listener, "connection");
    const client = await dial(listener.url, { receiveHighWaterMarkBytes: 64 * 1024 });
    const [server] = await accepted;
    const total = 2000;
    const frame = Buffer.alloc(1024, 3);
    const producing = (async () => {
      for (let i = 0; i < total; i++) if (!server.send(frame)) await server.drain();
    })();
    let got = 0;
    let sawBackpressure = false;
    const iterator = client[Symbol.asyncIterator]();
    while (got < total) {
      const r = await within(iterator.next(), 5_000, `frame ${got}`);
      assert.equal(r.done, false);
      got++;
      if (got === 100) {
        // the consumer stalls: the producer must see backpressure instead of filling memory
        await within(
          (async () => {
            while (server.queuedBytes === 0) await new Promise((r2) => setImmediate(r2));
          })(),
          5_000,
          "the producer to queue",
        );
        sawBackpressure = true;
      }
    }
    await producing;
    assert.ok(sawBackpressure);
    assert.equal(got, total);
    await iterator.return?.();
    await client.close();
    await listener.close();
  });

  it("gives every connection a new id, never reused", async () => {
    const listener = await listen(`memory://ids-${++n}`);
    const ids = new Set<number>();
    for (let i = 0; i < 50; i++) {
      const c = await dial(listener.url);
      assert.ok(!ids.has(c.id));
      ids.add(c.id);
      await c.close();
    }
    await listener.close();
  });

  it("computes bounded exponential backoff with jitter", () => {
    const o = { initialDelayMs: 100, maxDelayMs: 1_000, factor: 2, jitter: 0.5, maxAttempts: 10 };
    assert.equal(
      backoffDelay(1, o, () => 0),
      100,
    );
    assert.equal(
      backoffDelay(3, o, () => 0),
      400,
    );
    assert.equal(
      backoffDelay(10, o, () => 0),
      1_000,
      "capped",
    );
    assert.equal(
      backoffDelay(3, o, () => 1),
      200,
      "jitter takes off up to half",
    );
  });
});

describe("logging", () => {
  it("is silent by default and switches on and off globally, with a diagnostics channel", async () => {
    const records: LogRecord[] = [];
    const listener = await listen(`memory://log-${++n}`);
    const c1 = await dial(listener.url);
    await c1.close();
    assert.equal(records.length, 0);
    setLogger((r) => records.push(r));
    const published: unknown[] = [];
    const onPublish = (m: unknown) => published.push(m);
    diagnosticsChannel.subscribe("ezipc:log", onPublish);
    try {
      const c2 = await dial(listener.url);
      await c2.close();
      assert.ok(records.some((r) => r.component === "transport" && r.message === "connection open"));
      assert.ok(published.length > 0);
    } finally {
      setLogger(null);
      diagnosticsChannel.unsubscribe("ezipc:log", onPublish);
    }
    const count = records.length;
    const c3 = await dial(listener.url);
    await c3.close();
    assert.equal(records.length, count, "silent again");
    await listener.close();
  });
});

describe("dialling an address with the wrong scheme", () => {
  it("says what answered instead: HTTP to tcp://, no HTTP to ws://, no TLS to tls:// and wss://", async () => {
    const tcp = await listen("tcp://127.0.0.1:0");
    const ws = await listen("ws://127.0.0.1:0");
    const port = (l: { url: string }) => new URL(l.url).port;
    try {
      const refused = async (url: string, code: string, hint: RegExp) => {
        await assert.rejects(
          (async () => {
            const c = await dial(url);
            // A stream transport connects; what answered shows in the first frame it reads.
            c.send(Buffer.from("hello"));
            const info = await within(c.closed, 5_000, "the close");
            throw info.error ?? new Error("closed without an error");
          })(),
          (e: { code?: string; message: string }) => {
            assert.equal(e.code, code, e.message);
            assert.match(e.message, hint);
            return true;
          },
          url,
        );
      };
      await refused(`tcp://127.0.0.1:${port(ws)}`, "EZIPC_FRAME_TOO_LARGE", /first bytes received, "HTTP"/);
      await refused(`ws://127.0.0.1:${port(tcp)}`, "EZIPC_CONNECTION_REFUSED", /did not answer HTTP/);
      await refused(`tls://127.0.0.1:${port(ws)}`, "EZIPC_CONNECTION_REFUSED", /did not answer TLS/);
      await refused(`wss://127.0.0.1:${port(ws)}`, "EZIPC_CONNECTION_REFUSED", /did not answer TLS/);
    } finally {
      await tcp.close();
      await ws.close();
    }
  });
});
