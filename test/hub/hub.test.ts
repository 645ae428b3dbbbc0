import assert from "node:assert/strict";
import path from "node:path";
import { after, before, describe, it } from "node:test";
import { setImmediate as tick } from "node:timers/promises";
import v8 from "node:v8";
import vm from "node:vm";
import {
  type Connection,
  connect,
  dial,
  HUB_PROTOCOL_VERSION,
  Hub,
  type HubClient,
  type IpcPtr,
  isEzipcError,
  SqliteStore,
  t,
} from "../../src/index.js";
import { nextEvent, tempDir, until, within } from "../helpers.js";
import { restartedHub, withHub } from "./hubs.js";
import { proto, type RawMessage, rawClient } from "./raw-client.js";

describe("hub protocol", () => {
  it("encodes the example of docs/protocol.md byte for byte", () => {
    const frame = proto.encode("watch", { rid: 7, key: "temp", policy: 2 });
    assert.equal(Buffer.from(frame).toString("hex"), "0500070000000474656d7002");
  });
});

describe("hub: sync policies", () => {
  let hub: Hub;
  let a: HubClient;
  let b: HubClient;
  before(async () => {
    hub = await Hub.listen({ urls: ["tcp://127.0.0.1:0"] });
    a = await connect(hub.urls[0]!, { name: "a" });
    b = await connect(hub.urls[0]!, { name: "b" });
  });
  after(async () => {
    await a.close();
    await b.close();
    await hub.close();
  });

  it("allocate zero-fills; watch of a missing key is null; allocate of a live key is EZIPC_KEY_EXISTS", async () => {
    const p = await a.allocate("zero", 16, "poll");
    assert.deepEqual(Buffer.from(p.read()), Buffer.alloc(16));
    assert.equal(p.version, 1);
    assert.equal(await b.watch("never.created", "poll"), null);
    await assert.rejects(b.allocate("zero", 16, "request"), { code: "EZIPC_KEY_EXISTS" });
    const same = await b.allocate("zero", 16, "request", { openExisting: true });
    assert.equal(hub.peek("zero")!.refcount, 2);
    await assert.rejects(b.allocate("zero", 8, "request", { openExisting: true }), {
      code: "EZIPC_BAD_REQUEST",
    });
    same.dispose();
    p.dispose();
  });

  it("request keeps no copy: every read asks the hub", async () => {
    const w = await a.allocate("req", 4, "request");
    const r = await b.watch("req", "request");
    assert.ok(r);
    assert.equal(r.fresh, false);
    const reads0 = hub.stats().reads;
    await w.write(Buffer.from([1, 2, 3, 4]));
    assert.deepEqual([...(await r.read())], [1, 2, 3, 4]);
    await r.read();
    assert.equal(hub.stats().reads - reads0, 2);
    w.dispose();
    r.dispose();
  });

  it("lazy keeps a copy: one stale notice per change, one fetch when stale, local reads while fresh", async () => {
    const w = await a.allocate("lazy", 4, "request");
    const l = await b.watch("lazy", "lazy");
    assert.ok(l);
    const reads0 = hub.stats().reads;
    assert.deepEqual([...(await l.read())], [0, 0, 0, 0]); // the copy came with watch
    assert.equal(hub.stats().reads, reads0);
    const stale = nextEvent<[{ version: number; data?: Uint8Array }]>(l, "change");
    await w.write(Buffer.from([9]), 3);
    const [change] = await stale;
    assert.equal(change.version, 2);
    assert.equal(change.data, undefined, "lazy is told the version only");
    assert.equal(l.fresh, false);
    const staleSent = hub.stats().staleSent;
    await w.write(Buffer.from([8]), 2); // no second notice until the client reads
    assert.equal(hub.stats().staleSent, staleSent);
    assert.deepEqual([...(await l.read())], [0, 0, 8, 9]);
    assert.equal(l.version, 3);
    assert.equal(l.fresh, true);
    await l.read();
    assert.equal(hub.stats().reads - reads0, 1, "fetched once");
    w.dispose();
    l.dispose();
  });

  it("poll: every change is pushed; read() is synchronous", async () => {
    const w = await a.allocate("poll", 2, "request");
    const p = await b.watch("poll", "poll");
    assert.ok(p);
    const seen: number[] = [];
    p.on("change", (c) => seen.push(c.version));
    for (let i = 1; i <= 5; i++) await w.write(Buffer.from([i, i]));
    // The writer's ack comes after the hub pushed the update; the watcher gets it over its own socket.
    if (p.version < 6)
      await within(
        (async () => {
          for await (const c of p.changes()) if (c.version >= 6) return;
        })(),
        5_000,
        "v6",
      );
    const value: Uint8Array = p.read();
    assert.deepEqual([...value], [5, 5]);
    assert.deepEqual(seen.slice(-1), [6]);
    assert.deepEqual(
      seen,
      [...seen].sort((x, y) => x - y),
      "versions are monotonic",
    );
    w.dispose();
    p.dispose();
  });

  it("the highest policy held in a client serves every pointer of the key", async () => {
    const w = await a.allocate("mixed", 4, "request");
    const req = await b.watch("mixed", "request");
    const poll = await b.watch("mixed", "poll");
    assert.ok(req && poll);
    await w.write(Buffer.from([7, 7, 7, 7]));
    if (poll.version < 2) await nextEvent(poll, "change");
    const reads0 = hub.stats().reads;
    assert.deepEqual([...(await req.read())], [7, 7, 7, 7]);
    assert.equal(hub.stats().reads, reads0, "the request pointer answered from the poll copy");
    assert.equal(req.fresh, true);
    poll.dispose();
    assert.equal(req.fresh, false, "without the poll pointer the copy is dropped");
    await req.read();
    assert.equal(hub.stats().reads, reads0 + 1);
    w.dispose();
    req.dispose();
  });

  it("write: RangeError before sending; resolves with the new version; compareAndWrite detects conflicts", async () => {
    const p = await a.allocate("cas", 4, "poll");
    const writes0 = hub.stats().writes;
    assert.throws(() => p.write(Buffer.alloc(5)), RangeError);
    assert.throws(() => p.write(Buffer.alloc(1), 4), RangeError);
    assert.throws(() => p.write(Buffer.alloc(1), -1), RangeError);
    assert.equal(hub.stats().writes, writes0, "nothing was sent");
    assert.equal(await p.write(Buffer.from([1])), 2);
    assert.deepEqual(await p.compareAndWrite(2, Buffer.from([2])), { ok: true, version: 3 });
    assert.deepEqual(await p.compareAndWrite(2, Buffer.from([3])), { ok: false, version: 3 });
    assert.equal(p.read()[0], 2);
    p.dispose();
  });

  it("typed blocks: a fixed-size schema lays out the block; get()/set() encode and decode", async () => {
    const Pose = t.struct({ x: t.f64, y: t.f64, heading: t.f32, valid: t.bool });
    const w = await a.allocate("pose", Pose, "poll");
    assert.equal(w.size, 21);
    assert.deepEqual(w.get(), { x: 0, y: 0, heading: 0, valid: false });
    const v = await w.set({ x: 1.5, y: -2, heading: 0.5, valid: true });
    const r = await b.watch("pose", "request", { schema: Pose });
    assert.ok(r);
    assert.deepEqual(await r.get(), { x: 1.5, y: -2, heading: 0.5, valid: true });
    assert.equal(r.version, v);
    await assert.rejects(b.watch("pose", "poll", { schema: t.struct({ x: t.f64 }) }), {
      code: "EZIPC_BAD_REQUEST",
    });
    assert.throws(() => (w as unknown as IpcPtr<"poll">).write(Buffer.alloc(22)), RangeError);
    await assert.rejects(a.allocate("bad.schema", t.struct({ s: t.string() }), "poll"), TypeError);
    w.dispose();
    r.dispose();
  });

  it("JSON config variables: write, writeIfEmpty, mergePatch (RFC 7396) and watch", async () => {
    const cfg = await a.config("cfg.robot", { persistent: false });
    assert.equal(await cfg.read(), undefined);
    assert.equal(await cfg.writeIfEmpty({ speed: 1, limits: { max: 5, min: 0 } }), true);
    assert.equal(await cfg.writeIfEmpty({ speed: 2 }), false);
    const watcher = await b.config("cfg.robot", { policy: "poll" });
    const changes = watcher.changes();
    const first = changes.next();
    await cfg.mergePatch({ limits: { min: null, max: 9 }, name: "r2" });
    const c = await within(first, 5_000, "config change");
    assert.deepEqual(c.value?.value, { speed: 1, limits: { max: 9 }, name: "r2" });
    assert.deepEqual(await watcher.read(), { speed: 1, limits: { max: 9 }, name: "r2" });
    await cfg.write([1, 2]);
    assert.deepEqual(await cfg.read(), [1, 2]);
    const ptr = cfg.pointer;
    assert.throws(() => ptr.write(Buffer.from("x")), TypeError);
    await changes.return(undefined);
    cfg.dispose();
    watcher.dispose();
  });

  it("list, peek and stats describe the keys", async () => {
    const p = await a.allocate("ls.one", 3, "poll");
    const q = await b.watch("ls.one", "lazy");
    const list = await b.list("ls.*");
    assert.equal(list.length, 1);
    assert.equal(list[0]!.key, "ls.one");
    assert.equal(list[0]!.refcount, 2);
    assert.deepEqual(
      list[0]!.holders.map((h) => [h.client.split("#")[0], h.request, h.lazy, h.poll]).sort(),
      [
        ["a", 0, 0, 1],
        ["b", 0, 1, 0],
      ],
    );
    assert.deepEqual(await b.peek("ls.one"), { kind: "bytes", version: 1, data: new Uint8Array(3) });
    assert.equal(await b.peek("ls.none"), null);
    const s = await a.stats();
    assert.equal(s.connectedClients, 2);
    assert.ok(s.keys >= 1);
    p.dispose();
    q?.dispose();
  });
});

describe("hub: restarts", () => {
  it("a client back from an earlier run keeps its persistent keys; a key not kept is invalidated, even when one of its name was made since", async () => {
    const tmp = tempDir();
    const dir = path.join(tmp.dir, "data");
    const sock = path.join(tmp.dir, "hub.sock");
    const hub = await Hub.listen({ urls: [`unix://${sock}`], store: SqliteStore.inDir(dir) });
    const a = await connect(`unix://${sock}`, { reconnect: { initialDelayMs: 10, maxDelayMs: 50 } });
    let hub2: Hub | undefined;
    try {
      const mem = await a.allocate("restart.mem", 4, "lazy");
      const kept = await a.allocate("restart.kept", 4, "lazy", { persistent: true });
      await mem.write(Buffer.from("aaaa"));
      assert.equal(await mem.write(Buffer.from("AAAA")), 3);
      await kept.write(Buffer.from("kkkk"));
      await hub.close();
      await until(() => mem.status === "stale", "the hub's loss seen");

      // Another client makes a key of the same name on the new run, up to the version `a` saw, before `a`
      // can come back.
      let b: HubClient | undefined;
      hub2 = await restartedHub(sock, { store: SqliteStore.inDir(dir) }, async (url) => {
        b = await connect(url);
        const other = await b.allocate("restart.mem", 4, "lazy");
        await other.write(Buffer.from("bbbb"));
        assert.equal(await other.write(Buffer.from("BBBB")), 3);
      });
      await until(() => mem.status === "invalidated" && kept.status === "live", "the resync", 10_000);
      assert.throws(() => mem.read(), { code: "EZIPC_KEY_DISPOSED" });
      assert.equal(Buffer.from(await kept.read()).toString(), "kkkk");
      assert.equal(await kept.write(Buffer.from("KKKK")), 3);
      // The new key is unharmed, and `a` can hold it anew.
      assert.equal(hub2.peek("restart.mem")!.refcount, 1);
      const again = await a.watch("restart.mem", "lazy");
      assert.equal(Buffer.from(await again!.read()).toString(), "BBBB");
      await b!.close();
    } finally {
      await a.close();
      await hub2?.close();
      tmp.cleanup();
    }
  });
});

describe("hub: reference counts", () => {
  it("dispose and `using` release; watch during the grace revives; then tombstone; deleted keys invalidate pointers", async () => {
    await withHub({ disposeGraceMs: 200 }, async (hub, url) => {
      const c = await connect(url);
      try {
        {
          using p = await c.allocate("scoped", 4, "poll");
          assert.equal(p.status, "live");
          assert.equal(hub.peek("scoped")!.refcount, 1);
        }
        await c.stats(); // a round trip: the release is processed
        assert.equal(hub.peek("scoped")!.refcount, 0);
        const revived = await c.watch("scoped", "lazy");
        assert.ok(revived);
        assert.equal(hub.peek("scoped")!.refcount, 1);
        const gone = nextEvent(hub, "invalidated", 5_000);
        revived.dispose();
        assert.throws(() => revived.read(), { code: "EZIPC_KEY_DISPOSED" });
        await gone;
        await assert.rejects(c.watch("scoped", "poll"), { code: "EZIPC_KEY_DISPOSED" });

        const held = await c.allocate("deleted", 4, "poll", { persistent: true });
        const status = nextEvent<[string]>(held, "status");
        assert.equal(hub.delete("deleted"), true);
        assert.deepEqual(await status, ["invalidated"]);
        assert.equal(held.status, "invalidated");
        assert.throws(() => held.write(Buffer.alloc(1)), { code: "EZIPC_KEY_DISPOSED" });
      } finally {
        await c.close();
      }
    });
  });

  it("a pointer the program dropped is released by the FinalizationRegistry; one with a listener is kept", async () => {
    v8.setFlagsFromString("--expose-gc");
    const gc = vm.runInNewContext("gc") as () => void;
    await withHub({}, async (hub, url) => {
      const c = await connect(url);
      try {
        const keep = await c.allocate("gc.kept", 4, "request");
        await (async () => {
          await c.watch("gc.kept", "lazy"); // dropped at once
        })();
        let seen = 0;
        await (async () => {
          // Dropped too, but listened to: it must go on receiving changes.
          (await c.watch("gc.kept", "poll"))!.on("change", () => {
            seen++;
          });
        })();
        assert.equal(hub.peek("gc.kept")!.refcount, 3);
        // Bounded: collect, let finalizers run, and let the release reach the hub.
        for (let i = 0; i < 50 && hub.peek("gc.kept")!.refcount > 2; i++) {
          gc();
          await tick();
          await c.stats();
        }
        assert.equal(hub.peek("gc.kept")!.refcount, 2, "only the unlistened pointer was released");
        for (let i = 0; i < 5; i++) {
          gc();
          await tick();
        }
        await keep.write(Buffer.from([1]));
        await c.stats();
        assert.equal(seen, 1, "the listened pointer still gets changes");
        assert.equal(hub.peek("gc.kept")!.refcount, 2);
        keep.dispose();
      } finally {
        await c.close();
      }
    });
  });

  it("a client that comes back within its window resumes: same id, its pointers never dropped to zero", async () => {
    await withHub({ reconnectWindowMs: 5_000, disposeGraceMs: 0 }, async (hub, url) => {
      const c = await connect(url, { reconnect: { initialDelayMs: 10, maxDelayMs: 50 } });
      const other = await connect(url);
      try {
        const p = await c.allocate("resume.me", 4, "poll");
        const id = c.clientId;
        const stale = nextEvent<[string]>(p, "status");
        const resumed = nextEvent<[{ resumed: boolean }]>(hub, "client");
        // Cut the socket under the client (no CLOSE frame).
        const conn = (c as unknown as { conn: Connection }).conn;
        conn.destroy();
        assert.deepEqual(await stale, ["stale"]);
        await other
          .allocate("resume.me", 4, "request", { openExisting: true })
          .then((q) => q.write(Buffer.from([5])));
        assert.equal((await resumed)[0].resumed, true);
        await nextEvent(c, "resynced");
        assert.equal(c.clientId, id);
        assert.equal(p.status, "live");
        assert.equal(p.read()[0], 5, "resynchronised to the write made while away");
        assert.equal(hub.peek("resume.me")!.refcount, 2);
      } finally {
        await c.close();
        await other.close();
      }
    });
  });
});

describe("hub: limits and bad input", () => {
  it("max keys, block size, total bytes and pointers per client fail only that request", async () => {
    await withHub(
      {
        maxKeys: 3,
        maxBlockBytes: 100,
        maxTotalBytes: 150,
        maxPointersPerClient: 4,
        allowClientPersistent: false,
      },
      async (hub, url) => {
        const c = await connect(url);
        try {
          await assert.rejects(c.allocate("big", 101, "poll"), { code: "EZIPC_BLOCK_TOO_LARGE" });
          const k1 = await c.allocate("k1", 100, "poll");
          await assert.rejects(c.allocate("k2", 51, "poll"), { code: "EZIPC_HUB_FULL" });
          // Pointers are kept in variables to the end: one nobody references may be collected, and its
          // finalizer releases it at the hub (the limits below count live pointers).
          const k2 = await c.allocate("k2", 50, "poll");
          await assert.rejects(c.allocate("k3", 1, "poll"), { code: "EZIPC_HUB_FULL" });
          k1.dispose();
          await c.stats();
          await assert.rejects(c.allocate("p", 1, "poll", { persistent: true }), {
            code: "EZIPC_PERMISSION_DENIED",
          });
          assert.equal(hub.stats().keys, 2);
          const watched = [
            await c.watch("k2", "lazy"),
            await c.watch("k2", "request"),
            await c.watch("k2", "poll"),
          ];
          await assert.rejects(c.watch("k2", "poll"), { code: "EZIPC_TOO_MANY_POINTERS" });
          await assert.rejects(c.allocate("bad key", 1, "poll"), { code: "EZIPC_INVALID_KEY" });
          await assert.rejects(c.allocate("x".repeat(256), 1, "poll"), { code: "EZIPC_INVALID_KEY" });
          await withHub({ maxKeys: 1 }, async (_h, u2) => {
            const d = await connect(u2);
            await d.allocate("only", 1, "poll");
            await assert.rejects(d.allocate("second", 1, "poll"), { code: "EZIPC_TOO_MANY_KEYS" });
            await d.close();
          });
          assert.equal(c.status, "connected", "the connection carries on");
          assert.equal((await c.list()).length, 2, "k1 (in its grace) and k2");
          k2.dispose();
          for (const w of watched) w!.dispose();
        } finally {
          await c.close();
        }
      },
    );
  });

  it("a hostile peer: garbage, messages before hello, unknown ids, wrong protocol version — only it is affected", async () => {
    await withHub({ handshakeTimeoutMs: 200 }, async (hub, url) => {
      const good = await connect(url);
      const p = await good.allocate("survivor", 4, "poll");
      try {
        // Garbage frame: closed with a decode error.
        const g = await dial(url);
        g.on("error", () => {});
        g.send(Buffer.from([0xff, 0xff, 1, 2, 3]));
        const closed = await within(g.closed, 5_000, "garbage peer closed");
        assert.ok(isEzipcError(closed.error, "EZIPC_UNKNOWN_MESSAGE"), closed.reason);
        assert.equal(closed.initiator, "remote", "the hub told it why (a CLOSE with the code)");

        // A message before hello: closed.
        const early = await dial(url);
        early.on("error", () => {});
        early.send(proto.encode("stats", { rid: 1 }));
        await within(early.closed, 5_000, "early peer closed");

        // No hello at all: closed after handshakeTimeoutMs.
        const silent = await dial(url, { heartbeatIntervalMs: 0 });
        silent.on("error", () => {});
        await within(silent.closed, 5_000, "silent peer closed");

        // Requests on blocks it does not hold, bad policies, writes out of range: errors, connection stays.
        const raw = await rawClient(url);
        raw.conn.send(proto.encode("read", { rid: 7, id: 999 }));
        assert.deepEqual((await raw.next()).body.code, "EZIPC_BAD_REQUEST");
        raw.conn.send(proto.encode("watch", { rid: 8, key: "survivor", policy: 9 }));
        assert.deepEqual((await raw.next()).body.code, "EZIPC_BAD_REQUEST");
        raw.conn.send(proto.encode("watch", { rid: 9, key: "survivor", policy: 0 }));
        const opened = await raw.next();
        assert.equal(opened.type, "opened");
        raw.conn.send(
          proto.encode("write", { rid: 10, id: opened.body.id, offset: 2, data: new Uint8Array(3) }),
        );
        const outOfRange = (await raw.next()).body;
        assert.equal(outOfRange.code, "EZIPC_BAD_REQUEST");
        assert.match(outOfRange.message!, /outside its 4 bytes/);
        raw.conn.send(proto.encode("release", { id: opened.body.id, policy: 0 }));
        raw.conn.send(proto.encode("release", { id: opened.body.id, policy: 0 })); // one too many: ignored
        raw.conn.send(
          proto.encode("welcome", {
            protocol: 1,
            clientId: "x",
            resumed: false,
            hub: "h",
            features: [],
            maxBlockBytes: 1,
            label: "x",
          }),
        );
        await within(raw.conn.closed, 5_000, "peer that sent a hub-only message closed");

        // Wrong protocol version: connect rejects.
        const v2 = await dial(url);
        v2.send(proto.encode("hello", { protocol: 99, name: "future", features: [] }));
        const err = proto.decode((await nextEvent<[Buffer]>(v2, "message"))[0]);
        assert.equal((err.body as { code: string }).code, "EZIPC_HANDSHAKE");
        await within(v2.closed, 5_000, "v2 closed");

        assert.equal(await p.write(Buffer.from([1, 2, 3, 4])), 2, "the good client carries on");
        assert.equal(hub.peek("survivor")!.refcount, 1);
      } finally {
        await good.close();
      }
    });
  });

  it("a poll client that never reads: updates are coalesced, hub memory stays bounded, others are not slowed", async () => {
    await withHub({ sendHighWaterMarkBytes: 256 * 1024, stallTimeoutMs: 60_000 }, async (hub, url) => {
      const writer = await connect(url, { name: "writer" });
      const fast = await connect(url, { name: "fast" });
      try {
        const w = await writer.allocate("firehose", 32 * 1024, "request");
        const f = await fast.watch("firehose", "poll");
        assert.ok(f);
        const slow = await rawClient(url, "slow");
        slow.conn.send(proto.encode("watch", { rid: 1, key: "firehose", policy: 2 }));
        assert.equal((await slow.next()).type, "opened");
        slow.conn.pause(); // never reads again: the kernel buffers fill, then the hub's queue

        let fastUpdates = 0;
        f.on("change", () => fastUpdates++);
        const writes = 600; // 600 × 32 KiB = 19 MiB through a client that reads nothing
        const chunk = Buffer.alloc(32 * 1024);
        let maxQueued = 0;
        for (let i = 0; i < writes; i++) {
          chunk.writeUInt32LE(i + 1);
          await w.write(chunk);
          maxQueued = Math.max(maxQueued, hub.stats().maxClientQueuedBytes);
        }
        const last = writes + 1;
        if (f.version < last) {
          await within(
            (async () => {
              for await (const c of f.changes()) if (c.version >= last) return;
            })(),
            10_000,
            "fast watcher",
          );
        }
        assert.equal(Buffer.from(f.read()).readUInt32LE(0), writes);
        assert.equal(fastUpdates, writes, "the fast watcher got every update");
        const s = hub.stats();
        assert.ok(s.updatesCoalesced > 0, "updates to the slow client were coalesced");
        assert.ok(
          maxQueued < 256 * 1024 + 2 * 33 * 1024,
          `queue peak ${maxQueued} bytes stays near the high-water mark`,
        );
        slow.conn.destroy();
      } finally {
        await writer.close();
        await fast.close();
      }
    });
  });
});

describe("hub client against a scripted hub", () => {
  it("an update in the same chunk as the opened reply is not lost", async () => {
    const { listen } = await import("../../src/index.js");
    const server = await listen("tcp://127.0.0.1:0");
    server.on("connection", (conn) => {
      conn.on("message", (frame) => {
        const m = proto.decode(frame) as RawMessage;
        if (m.type === "hello") {
          conn.send(
            proto.encode("welcome", {
              protocol: HUB_PROTOCOL_VERSION,
              clientId: "scripted",
              resumed: false,
              hub: "scripted",
              features: [],
              maxBlockBytes: 1024,
              label: "scripted#1",
            }),
          );
        } else if (m.type === "watch") {
          // Both frames leave in one write, so they arrive in one chunk.
          const rid = m.body.rid as number;
          conn.send(
            proto.encode("opened", {
              rid,
              id: 3,
              kind: 0,
              size: 2,
              version: 1n,
              persistent: false,
              created: false,
              data: new Uint8Array([1, 1]),
            }),
          );
          conn.send(proto.encode("update", { id: 3, version: 2n, data: new Uint8Array([2, 2]) }));
        } else if (m.type === "resyncDone") {
          conn.send(proto.encode("ok", { rid: m.body.rid as number, version: 0n }));
        }
      });
    });
    const c = await connect(server.url, { reconnect: false });
    try {
      const p = await c.watch("k", "poll");
      assert.ok(p);
      assert.equal(p.version, 2);
      assert.deepEqual([...p.read()], [2, 2]);
    } finally {
      await c.close();
      await server.close();
    }
  });
});
