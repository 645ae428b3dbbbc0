// Behaviour the hardening issue asked for, one test each: a graceful close releases at once, side-effect
// free key info, gaps that wait for a listener, cancel means no more chunks, status before failure during a
// shutdown, the direct listener only while serving, silence detected at its bound, and coded errors a person
// can act on.
import assert from "node:assert/strict";
import { lstatSync, mkdirSync, mkdtempSync, readdirSync, statSync } from "node:fs";
import net from "node:net";
import os from "node:os";
import path from "node:path";
import { describe, it } from "node:test";
import { setImmediate as tick } from "node:timers/promises";
import {
  type ClientStatus,
  type Connection,
  connect,
  dh25519,
  dial,
  type Gap,
  HUB_PROTOCOL_VERSION,
  Hub,
} from "../../src/index.js";
import { removeStaleDirs } from "../../src/rpc/direct.js";
import { nextEvent, until, within } from "../helpers.js";
import { ChildClient } from "./child-client.js";
import { withHub } from "./hubs.js";
import { proto, rawClient } from "./raw-client.js";

describe("hardening", () => {
  it("a hub option out of its range is refused with a RangeError naming it, before anything listens", async () => {
    const bad: [string, unknown, Record<string, unknown>?][] = [
      ["holdPublishersMs", -1],
      ["reconnectWindowMs", -5],
      ["disposeGraceMs", Number.NaN],
      ["topicMaxBytes", 1.5],
      ["maxKeys", -1],
      ["maxCallsPerClient", Number.POSITIVE_INFINITY],
      // Refused by a lower layer (the transport): still a RangeError, not a store failure.
      ["heartbeatIntervalMs", -1],
    ];
    for (const [key, value] of bad) {
      await assert.rejects(
        Hub.listen({ urls: ["tcp://127.0.0.1:0"], [key]: value }),
        (e) => e instanceof RangeError && e.message.startsWith(`${key} must be`),
        `${key}: ${String(value)}`,
      );
    }
    const hub = await Hub.listen({ urls: ["tcp://127.0.0.1:0"], holdPublishersMs: 0, maxKeys: 10 });
    await hub.close();
  });

  it("a duration option longer than a timer can hold (or negative) is refused, never fires at once", async () => {
    // Node fires a timer longer than 2^31-1 ms after 1 ms: such a deadline used to act at once.
    const tooLong = 3_000_000_000;
    const hub = await Hub.listen({ urls: ["tcp://127.0.0.1:0"] });
    try {
      const url = hub.urls[0]!;
      const refused = async (p: Promise<unknown>, name: string) =>
        assert.rejects(p, (e) => e instanceof RangeError && e.message.startsWith(`${name} must be`), name);
      await refused(connect(url, { requestTimeoutMs: tooLong }), "requestTimeoutMs");
      await refused(connect(url, { connectTimeoutMs: tooLong }), "connectTimeoutMs");
      await refused(connect(url, { stallTimeoutMs: tooLong }), "stallTimeoutMs");
      await refused(connect(url, { reconnect: { maxDelayMs: tooLong } }), "reconnect.maxDelayMs");
      await refused(connect(url, { reconnect: { initialDelayMs: -1 } }), "reconnect.initialDelayMs");
      await refused(connect(url, { reconnect: { factor: Number.NaN } }), "reconnect.factor");
      await refused(dial(url, { connectTimeoutMs: tooLong }), "connectTimeoutMs");
      await refused(
        Hub.listen({ urls: ["tcp://127.0.0.1:0"], reconnectWindowMs: tooLong }),
        "reconnectWindowMs",
      );
      // In range, a client works.
      const c = await connect(url, { requestTimeoutMs: 2 ** 31 - 1, connectTimeoutMs: 1_000 });
      await c.close();
    } finally {
      await hub.close();
    }
  });

  it("a client that closes gracefully releases its pointers at once; a lost one keeps them for its window", async () => {
    await withHub({ reconnectWindowMs: 60_000, disposeGraceMs: 60_000 }, async (hub, url) => {
      const a = await connect(url, { name: "a" });
      const p = await a.allocate("bye.key", 4, "poll");
      assert.equal(hub.peek("bye.key")!.refcount, 1);
      const gone = nextEvent<[{ name: string }]>(hub, "clientGone", 2_000);
      await a.close();
      assert.equal((await gone)[0].name, "a");
      assert.equal(hub.peek("bye.key")!.refcount, 0);
      void p;
    });
  });

  it("info() and exists() tell none, live, grace and disposed apart without reviving a key", async () => {
    await withHub({ disposeGraceMs: 60_000 }, async (hub, url) => {
      const a = await connect(url, { name: "a" });
      try {
        assert.deepEqual(await a.info("no.such"), { state: "none" });
        assert.equal(await a.exists("no.such"), false);
        const p = await a.allocate("info.key", 8, "lazy");
        const live = await a.info("info.key");
        assert.equal(live.state, "live");
        assert.ok(live.state === "live" && live.refcount === 1 && live.size === 8 && live.version === 1);
        p.dispose();
        await until(async () => (await a.info("info.key")).state === "grace", "grace", 2_000);
        // info in grace leaves it in grace (watch would revive it)
        assert.equal((await a.info("info.key")).state, "grace");
        assert.equal(hub.peek("info.key")!.refcount, 0);
        assert.equal(await a.exists("info.key"), true);
        hub.delete("info.key");
        assert.deepEqual(await a.info("info.key"), { state: "disposed" });
        assert.equal(await a.peek("info.key"), null);
      } finally {
        await a.close();
      }
    });
  });

  it("the client says whether a reconnect resumed its identity", async () => {
    await withHub({ reconnectWindowMs: 10_000 }, async (_hub, url) => {
      const a = await connect(url, { name: "a", reconnect: { initialDelayMs: 10, maxDelayMs: 50 } });
      try {
        assert.equal(a.resumed, false);
        const p = await a.allocate("resume.key", 4, "poll"); // something to resume
        const id = a.clientId;
        const back = new Promise<{ resumed: boolean }>((resolve) => {
          a.on("status", (s: ClientStatus, info) => {
            if (s === "connected") resolve(info);
          });
        });
        (a as unknown as { conn: Connection }).conn.destroy(); // cut under the client, no CLOSE frame
        assert.deepEqual(await within(back, 5_000, "reconnected"), { resumed: true });
        assert.equal(a.resumed, true);
        assert.equal(a.clientId, id);
        void p;
      } finally {
        await a.close();
      }
    });
  });

  it("publish results and deadman states serialise with JSON.stringify (bigints as decimal strings)", async () => {
    await withHub({}, async (_hub, url) => {
      const c = await connect(url, { name: "json" });
      try {
        const r = await c.publish("json.topic", "x");
        assert.deepEqual(r, { seq: 1n, time: r.time });
        assert.equal(JSON.stringify(r), `{"seq":"1","time":${r.time}}`);
        const d = c.deadman("json.token");
        await d.take();
        assert.deepEqual(JSON.parse(JSON.stringify(await d.state())), {
          taken: true,
          holder: c.label,
          mine: true,
          epoch: "1",
        });
      } finally {
        await c.close();
      }
    });
  });

  it("a gap found while subscribing reaches a listener added after subscribe() resolves, and onGap", async () => {
    await withHub({}, async (_hub, url) => {
      const c = await connect(url);
      try {
        await c.configureTopic("g.topic", { maxCount: 3 });
        for (let i = 1; i <= 10; i++) await c.publish("g.topic", `m${i}`);
        const early: Gap[] = [];
        const s1 = await c.subscribe("g.topic", { init: { fromSeq: 2n }, onGap: (g) => early.push(g) });
        assert.deepEqual(early, [{ topic: "g.topic", first: 2n, last: 7n }], "onGap saw it before resolving");
        const s2 = await c.subscribe("g.topic", { init: { fromSeq: 1n } });
        const [late] = await nextEvent<[Gap]>(s2, "gap", 2_000);
        assert.deepEqual(late, { topic: "g.topic", first: 1n, last: 7n });
        const first = await s2[Symbol.asyncIterator]().next();
        assert.equal(first.value!.seq, 8n);
        s1.unsubscribe();
        s2.unsubscribe();
      } finally {
        await c.close();
      }
    });
  });

  it("after stream.cancel() no chunk is yielded, even those that had arrived", async () => {
    await withHub({}, async (_hub, url) => {
      const server = await connect(url, { name: "server" });
      const caller = await connect(url, { name: "caller" });
      try {
        await server.serve("count", async function* () {
          for (let i = 0; i < 1_000; i++) yield String(i);
        });
        const stream = await caller.requestStream("count", "", { prefetch: 8 });
        const it = stream[Symbol.asyncIterator]();
        assert.equal(Buffer.from((await it.next()).value!).toString(), "0");
        // Let the rest of the window arrive, then cancel.
        await until(
          () => (stream as unknown as { queue: unknown[] }).queue.length >= 3,
          "chunks queued",
          2_000,
        );
        stream.cancel();
        assert.equal((await it.next()).done, true);
      } finally {
        await caller.close();
        await server.close();
      }
    });
  });

  it("a graceful hub shutdown changes the client's status before operations fail", async () => {
    const hub = await Hub.listen({ urls: ["tcp://127.0.0.1:0"] });
    const c = await connect(hub.urls[0]!, { name: "c" });
    try {
      const statuses: ClientStatus[] = [];
      let failedWhileConnected = false;
      c.on("status", (s) => statuses.push(s));
      const closing = hub.close();
      for (let i = 0; i < 10_000 && c.status === "connected"; i++) {
        try {
          c.publishAndForget("t", "x");
        } catch {
          if (c.status === "connected") failedWhileConnected = true;
          break;
        }
        await tick();
      }
      await closing;
      assert.equal(failedWhileConnected, false, "publishAndForget threw while the status said connected");
      assert.notEqual(c.status, "connected");
      assert.ok(statuses.includes("reconnecting"));
      let ready = false;
      void c.whenReady().then(
        () => (ready = true),
        () => {},
      );
      await tick();
      assert.equal(ready, false, "whenReady waits for the next connection");
    } finally {
      await c.close();
    }
  });

  it("only a serving client opens a direct listener folder, and folders of dead processes are removed", async () => {
    const mine = () => readdirSync(os.tmpdir()).filter((n) => n.startsWith(`ezipc-direct-${process.pid}-`));
    const before = mine().length;
    await withHub({}, async (_hub, url) => {
      const sub = await connect(url, { name: "sub" });
      await sub.subscribe("x.topic");
      await sub.request("nobody", "x").catch(() => {});
      assert.equal(mine().length, before, "a subscriber and a caller open none");
      const server = await connect(url, { name: "server" });
      const s = await server.serve("svc", () => "ok");
      assert.equal(mine().length, before + 1);
      s.close();
      await until(() => mine().length === before, "the folder to go when nothing is served", 2_000);
      await sub.close();
      await server.close();
    });
    // A folder whose owner died (pid 2^22+ does not exist here) is removed; one of a live process is kept.
    const tmp = os.tmpdir();
    const dead = path.join(tmp, "ezipc-direct-4194000-test");
    const live = path.join(tmp, `ezipc-direct-${process.ppid}-test`);
    mkdirSync(dead, { recursive: true });
    mkdirSync(live, { recursive: true });
    removeStaleDirs();
    assert.throws(() => statSync(dead), /ENOENT/);
    assert.ok(statSync(live).isDirectory());
    removeStaleDirs(); // idempotent
    (await import("node:fs")).rmSync(live, { recursive: true });
    // What another user put under such a name in a shared /tmp is not this process's to remove: a folder
    // of theirs (a hub run as root removed it), or a link (left alone, and its target too).
    const { chownSync, rmSync, symlinkSync, writeFileSync } = await import("node:fs");
    const theirs = path.join(tmp, "ezipc-direct-4194001-theirs");
    const link = path.join(tmp, "ezipc-direct-4194002-link");
    const target = mkdtempSync(path.join(tmp, "ezipc-test-target-"));
    try {
      mkdirSync(theirs);
      writeFileSync(path.join(theirs, "file"), "x");
      chownSync(theirs, 65534, 65534);
      symlinkSync(target, link);
      removeStaleDirs();
      assert.ok(statSync(path.join(theirs, "file")).isFile(), "another user's folder is kept");
      assert.ok(lstatSync(link).isSymbolicLink(), "a link is left alone");
      assert.ok(statSync(target).isDirectory());
    } finally {
      for (const p of [theirs, link, target]) rmSync(p, { recursive: true, force: true });
    }
  });

  it("a serving process killed with kill -9 leaves its folder; the next hub started on the host removes it", async () => {
    const folders = (pid: number) =>
      readdirSync(os.tmpdir()).filter((n) => n.startsWith(`ezipc-direct-${pid}-`));
    let pid = 0;
    await withHub({}, async (_hub, url) => {
      const child = await ChildClient.start(url, "doomed-server");
      await child.cmd("serve", { key: "doomed.svc" });
      pid = child.child.pid!;
      assert.equal(folders(pid).length, 1);
      await child.kill("SIGKILL");
      assert.equal(folders(pid).length, 1, "kill -9 leaves it behind");
    });
    const next = await Hub.listen({ urls: ["tcp://127.0.0.1:0"] });
    await next.close();
    assert.equal(folders(pid).length, 0, "the next hub removed it");
  });

  it("a connection silent after hello is closed at heartbeatTimeoutMs, not on a later tick", async () => {
    await withHub({ heartbeatIntervalMs: 400, heartbeatTimeoutMs: 1_000 }, async (hub, url) => {
      const port = Number(new URL(url).port);
      const sock = net.connect(port, "127.0.0.1");
      await new Promise((r) => sock.once("connect", r));
      const hello = proto.encode("hello", { protocol: HUB_PROTOCOL_VERSION, name: "mute", features: [] });
      const header = Buffer.alloc(4);
      header.writeUInt32BE(hello.length);
      const t0 = Date.now();
      sock.write(Buffer.concat([header, hello]));
      sock.on("data", () => {}); // reads, never answers
      await within(new Promise((r) => sock.once("close", r)), 5_000, "the hub to close it");
      const elapsed = Date.now() - t0;
      assert.ok(elapsed >= 950 && elapsed < 1_300, `closed after ${elapsed} ms (bound 1,000 ms)`);
      await until(() => hub.stats().heartbeatTimeouts === 1, "the hub to count it");
    });
  });

  it("a plain client at a hub that requires encryption is told so, with EZIPC_AUTH; stats count it", async () => {
    await withHub({ security: { staticKey: dh25519.generateKeyPair() } }, async (hub, url) => {
      await assert.rejects(
        connect(url, { name: "plain" }),
        (e: Error & { code?: string }) => e.code === "EZIPC_AUTH" && /requires encryption/.test(e.message),
      );
      const wrongKey = dh25519.generateKeyPair().publicKey.toString("base64");
      await assert.rejects(
        connect(url, { name: "pinned", secure: { hubKey: wrongKey } }),
        (e: Error & { code?: string }) => e.code === "EZIPC_AUTH" && /pinned/.test(e.message),
      );
      const s = hub.stats();
      assert.equal(s.handshakeFailures.plain, 1);
      assert.equal(s.handshakeFailures.wrongKey, 1);
    });
  });

  it("stats count the faults that closed connections", async () => {
    await withHub({ maxFrameBytes: 1024 }, async (hub, url) => {
      const port = Number(new URL(url).port);
      for (const [bytes, code] of [
        [Buffer.from([0, 0, 0x10, 0]), "EZIPC_FRAME_TOO_LARGE"],
        [Buffer.from([0, 0, 0, 2, 0xff, 0xff]), "EZIPC_UNKNOWN_MESSAGE"],
      ] as const) {
        const sock = net.connect(port, "127.0.0.1");
        sock.on("error", () => {});
        let told = Buffer.alloc(0);
        sock.on("data", (d: Buffer) => (told = Buffer.concat([told, d])));
        sock.write(bytes);
        await within(new Promise((r) => sock.once("close", r)), 5_000, "closed");
        // The last words: a CLOSE frame whose reason starts with the code.
        assert.equal(told.readUInt32BE(0) >>> 31, 1, "a control frame");
        assert.equal(told[4], 0x03, "CLOSE");
        assert.match(told.subarray(5).toString(), new RegExp(`^${code}: `));
      }
      await until(() => hub.stats().framesTooLarge === 1, "a frame too large counted");
      await until(() => hub.stats().protocolErrors === 1, "a protocol error counted");
    });
  });

  it("a config value nested deeper than 256 levels is refused with EZIPC_BAD_REQUEST, the connection goes on (10,000 levels overflowed the hub's stack and cost the writer its connection)", async () => {
    await withHub({}, async (hub, url) => {
      const owner = await connect(url, { name: "owner" });
      const cfg = await owner.config("cfg.deep", { persistent: false });
      await cfg.write({ a: 1 });
      const r = await rawClient(url, "deep");
      r.conn.send(proto.encode("watch", { rid: 1, key: "cfg.deep", policy: 2 }));
      const id = (await r.next()).body.id;
      const deep = (n: number, op: number) =>
        op === 2 ? `${'{"a":'.repeat(n)}1${"}".repeat(n)}` : `${"[".repeat(n)}${"]".repeat(n)}`;
      for (const op of [0, 1, 2]) {
        r.conn.send(proto.encode("config", { rid: 10 + op, id, op, json: deep(10_000, op) }));
        const m = await r.next();
        assert.deepEqual(
          [m.type, m.body.rid, m.body.code],
          ["error", 10 + op, "EZIPC_BAD_REQUEST"],
          `op ${op}`,
        );
        assert.match(m.body.message!, /nested deeper than 256/);
      }
      assert.deepEqual(await cfg.read(), { a: 1 });
      // Brackets in strings are text, not nesting; 256 levels are a value like any other.
      r.conn.send(
        proto.encode("config", { rid: 19, id, op: 0, json: JSON.stringify({ s: "[{".repeat(5_000) }) }),
      );
      let text = await r.next();
      while (text.type === "update") text = await r.next();
      assert.deepEqual([text.type, text.body.rid], ["ok", 19]);
      r.conn.send(proto.encode("config", { rid: 20, id, op: 0, json: deep(256, 0) }));
      let reply = await r.next();
      while (reply.type === "update") reply = await r.next(); // (its own write, pushed to its poll pointer)
      assert.deepEqual([reply.type, reply.body.rid], ["ok", 20]);
      assert.equal(hub.stats().protocolErrors, 0);
      await r.conn.close();
      await owner.close();
    });
  });
});
