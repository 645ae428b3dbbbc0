// Frames at maxFrameBytes: what the hub forwards or answers travels in frames of its own, with fields of
// its own added (seq, time, a publisher's or caller's label; a listing's entries). A publish, a request or
// a listing that would not fit one frame fails alone, with EZIPC_MESSAGE_TOO_LARGE: the connection goes
// on, no seq or call is used up, and nobody else is affected. Clients refuse, before sending, what leaves
// less than FORWARD_RESERVE_BYTES of the frame free, and the hub always forwards the rest.
import assert from "node:assert/strict";
import path from "node:path";
import { describe, it } from "node:test";
import { connect, FORWARD_RESERVE_BYTES, Hub, isEzipcError, SqliteStore } from "../../src/index.js";
import { tempDir, until, within } from "../helpers.js";
import { withHub } from "./hubs.js";
import { proto, rawClient } from "./raw-client.js";

const KIB64 = 64 * 1024;
/** Bytes of a `publish` frame of one record without headers (index, rid, topic, count, headers, payload). */
function publishFrameBytes(topic: string, payload: number): number {
  const leb = (n: number) => (n < 0x80 ? 1 : n < 0x4000 ? 2 : 3);
  return 2 + 4 + leb(topic.length) + topic.length + 1 + 1 + leb(payload) + payload;
}
/** The payload that makes a one-record publish frame exactly `frame` bytes. */
function payloadFor(topic: string, frame: number): number {
  let p = frame - 16 - topic.length;
  while (publishFrameBytes(topic, p + 1) <= frame) p++;
  while (publishFrameBytes(topic, p) > frame) p--;
  return p;
}
const tooLarge = (e: unknown) => isEzipcError(e, "EZIPC_MESSAGE_TOO_LARGE");

describe("frames at maxFrameBytes", () => {
  it("a publish the hub cannot deliver in one frame fails alone with EZIPC_MESSAGE_TOO_LARGE; no seq is given out", async () => {
    // The hub takes frames of 64 KiB; the clients (16 MiB) let it decide.
    await withHub({ maxFrameBytes: KIB64 }, async (hub, url) => {
      const topic = `t${"x".repeat(199)}`;
      const pub = await connect(url, { name: "p".repeat(200), reconnect: false });
      const sub = await connect(url, { name: "s", reconnect: false });
      const got: bigint[] = [];
      await sub.subscribe(topic, {}, (m) => {
        got.push(m.seq);
      });
      // The publish frame is exactly the hub's limit: taken off the wire, but as a message frame (seq,
      // time and a 207-byte label added) it would be over it.
      const payload = Buffer.alloc(payloadFor(topic, KIB64), 1);
      assert.equal(publishFrameBytes(topic, payload.length), KIB64);
      await assert.rejects(pub.publish(topic, payload), tooLarge);
      // Fire-and-forget: dropped and counted, the connection goes on.
      const before = hub.stats().rejected;
      pub.publishAndForget(topic, payload);
      await until(
        () => hub.stats().rejected === before + 1,
        "the fire-and-forget publish counted as rejected",
      );
      // Nothing was numbered or kept: the next publish is seq 1, and the subscriber gets just it.
      assert.equal((await pub.publish(topic, "small")).seq, 1n);
      await until(() => got.length === 1, "the small message");
      assert.deepEqual(got, [1n]);
      const [info] = await sub.topics(topic);
      assert.equal(info!.count, 1);
      assert.equal(pub.status, "connected");
      // The largest that fits is delivered whole.
      const fits = Buffer.alloc(payloadFor(topic, KIB64 - 16 - 2 - 207 - 1), 2);
      assert.equal((await pub.publish(topic, fits)).seq, 2n);
      await until(() => got.length === 2, "the largest message that fits");
      await pub.close();
      await sub.close();
    });
  });

  it("a request the hub cannot forward fails alone with EZIPC_MESSAGE_TOO_LARGE; the call is not left behind", async () => {
    await withHub({ maxFrameBytes: KIB64, maxCallsPerClient: 1 }, async (_hub, url) => {
      const server = await connect(url, { name: "server", reconnect: false });
      await server.serve("echo", (req) => String(req.payload.length));
      const caller = await connect(url, { name: "c".repeat(200), reconnect: false, directRpc: false });
      // A request frame under the hub's limit whose call frame (with the caller's label) is over it.
      const payload = Buffer.alloc(KIB64 - 100, 3);
      await assert.rejects(caller.request("echo", payload), tooLarge);
      // With one call allowed per client, a leaked call would refuse this one (EZIPC_TOO_MANY_REQUESTS).
      assert.equal((await caller.request("echo", Buffer.alloc(10))).text(), "10");
      assert.equal(caller.status, "connected");
      assert.equal(server.status, "connected");
      await caller.close();
      await server.close();
    });
  });

  it("clients refuse, before sending, a publish or request leaving less than FORWARD_RESERVE_BYTES of the frame", async () => {
    await withHub({ maxFrameBytes: KIB64 }, async (hub, url) => {
      const c = await connect(url, { maxFrameBytes: KIB64, reconnect: false });
      await c.serve("len", (req) => String(req.payload.length));
      const limit = KIB64 - FORWARD_RESERVE_BYTES;
      const over = Buffer.alloc(payloadFor("t", limit + 1));
      const fits = Buffer.alloc(payloadFor("t", limit));
      const before = hub.stats();
      await assert.rejects(c.publish("t", over), tooLarge);
      assert.throws(() => c.publishAndForget("t", over), tooLarge, "synchronously");
      await assert.rejects(c.request("len", Buffer.alloc(limit)), tooLarge);
      await assert.rejects(c.requestStream("len", Buffer.alloc(limit)), tooLarge);
      const after = hub.stats();
      assert.deepEqual(
        [after.published, after.calls],
        [before.published, before.calls],
        "nothing reached the hub",
      );
      // What leaves the reserve free goes, through the hub, whoever published it.
      assert.equal((await c.publish("t", fits)).seq, 1n);
      assert.equal(c.publishAndForget("t", fits), true);
      await c.drain();
      assert.equal((await c.request("len", Buffer.alloc(limit - 400))).text(), String(limit - 400));
      await c.close();
    });
  });

  it("a listing over one frame: `topics` and `list` are refused with EZIPC_MESSAGE_TOO_LARGE, a client lists it a page at a time; the connection goes on", async () => {
    await withHub({ maxFrameBytes: KIB64, maxBlockBytes: 16 }, async (_hub, url) => {
      const c = await connect(url, { reconnect: false });
      const long = "k".repeat(240);
      for (let i = 0; i < 300; i++) c.publishAndForget(`${long}.${i}`, "x");
      await c.drain();
      const ptrs = [];
      for (let i = 0; i < 300; i++) ptrs.push(await c.allocate(`${long}.${i}`, 8, "request"));
      const raw = await rawClient(url);
      for (const type of ["topics", "list"]) {
        raw.conn.send(proto.encode(type, { rid: 3, pattern: "" }));
        const m = await raw.next();
        assert.deepEqual([m.type, m.body.code], ["error", "EZIPC_MESSAGE_TOO_LARGE"], type);
      }
      await raw.conn.close();
      assert.equal((await c.topics("")).length, 301); // (with $hub.topics)
      assert.equal((await c.list("")).length, 300);
      assert.equal(ptrs.length, 300);
      // A narrower pattern fits.
      assert.equal((await c.topics(`${long}.1`)).length, 1);
      assert.equal((await c.list(`${long}.1*`)).length, 111);
      assert.equal(c.status, "connected");
      await c.close();
    });
  });

  it("history kept by a run with a larger maxFrameBytes: what no longer fits a frame reaches subscribers as a gap", async () => {
    const tmp = tempDir();
    try {
      const dir = path.join(tmp.dir, "data");
      let hub = await Hub.listen({ urls: ["tcp://127.0.0.1:0"], store: SqliteStore.inDir(dir) });
      let c = await connect(hub.urls[0]!, { reconnect: false });
      await c.configureTopic("journal", { persist: true });
      await c.publish("journal", Buffer.alloc(100 * 1024, 7));
      await c.publish("journal", "small");
      await c.close();
      await hub.close();
      hub = await Hub.listen({
        urls: ["tcp://127.0.0.1:0"],
        store: SqliteStore.inDir(dir),
        maxFrameBytes: KIB64,
      });
      c = await connect(hub.urls[0]!, { reconnect: false });
      const gaps: [bigint, bigint][] = [];
      const got: string[] = [];
      await c.subscribe("journal", { init: "oldest", onGap: (g) => gaps.push([g.first, g.last]) }, (m) => {
        got.push(`${m.seq}:${m.text()}`);
      });
      await within(
        until(() => got.length === 1, "the small message"),
        10_000,
        "delivery",
      );
      assert.deepEqual(gaps, [[1n, 1n]]);
      assert.deepEqual(got, ["2:small"]);
      assert.equal(c.status, "connected");
      await c.close();
      await hub.close();
    } finally {
      tmp.cleanup();
    }
  });

  it("a route list of the most servers fits one frame: serve refuses a host over 255 bytes or a direct URL over 1024", async () => {
    await withHub({}, async (_hub, url) => {
      const { conn, next } = await rawClient(url, "server");
      const serve = (rid: number, host: string, direct: string) =>
        conn.send(proto.encode("serve", { rid, topic: "svc", host, direct }));
      serve(1, "h".repeat(256), "unix:///tmp/x.sock");
      serve(2, "host", `unix:///${"d".repeat(1100)}`);
      for (const rid of [1, 2]) {
        const m = await next();
        assert.deepEqual([m.type, m.body.rid, m.body.code], ["error", rid, "EZIPC_BAD_REQUEST"]);
      }
      serve(3, "h".repeat(255), `unix:///${"d".repeat(1000)}`);
      const ok = await next();
      assert.deepEqual([ok.type, ok.body.rid], ["ok", 3]);
      await conn.close();
    });
  });

  it("maxBlockBytes is bounded by maxFrameBytes - FORWARD_RESERVE_BYTES (a block travels in one frame)", async () => {
    await assert.rejects(
      Hub.listen({ urls: ["tcp://127.0.0.1:0"], maxFrameBytes: KIB64, maxBlockBytes: KIB64 }),
      (e) => e instanceof RangeError && e.message.startsWith("maxBlockBytes must be"),
    );
    await withHub({ maxFrameBytes: KIB64 }, async (_hub, url) => {
      const c = await connect(url, { reconnect: false });
      await assert.rejects(c.allocate("big", KIB64 - FORWARD_RESERVE_BYTES + 1, "request"), (e) =>
        isEzipcError(e, "EZIPC_BLOCK_TOO_LARGE"),
      );
      const p = await c.allocate("fits", KIB64 - FORWARD_RESERVE_BYTES, "request");
      await p.write(Buffer.alloc(KIB64 - FORWARD_RESERVE_BYTES, 5));
      await c.close();
    });
  });
});
