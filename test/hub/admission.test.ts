// Every message of the hub protocol, walked against the admission table: each one a client may send is
// permission-checked (or acts only on what the client owns), and each is bounded; a denied or over-limit
// message fails only itself.
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { MAX_WAITS_PER_CONNECTION } from "../../src/deadman/deadman-hub.js";
import { CLIENT_MESSAGES, HUB_TO_CLIENT } from "../../src/hub/admission.js";
import { connect, dh25519, Hub, type HubClient, secureDial } from "../../src/index.js";
import { hubMessages } from "../../src/wire/hub-protocol.js";
import { proto, type RawMessage, rawClient } from "./raw-client.js";

/** A body for each message with a permission, naming the subjects the root client created. */
const BODIES: Record<string, Record<string, unknown>> = {
  allocate: { key: "k.new", kind: 0, size: 4, policy: 0, persistent: false, ifExists: 0 },
  watch: { key: "k.secret", policy: 2 },
  peek: { key: "k.secret" },
  info: { key: "k.secret" },
  resync: { key: "k.secret", id: 1, counts: [0, 0, 1], version: 0n },
  write: { id: 0, offset: 0, data: Buffer.from("evil") },
  config: { id: 0, op: 0, json: '{"evil":true}' },
  publish: { topic: "t.secret", records: [{ headers: [], payload: Buffer.from("x") }] },
  subscribe: { sid: 1, pattern: "t.secret", init: 0, fromSeq: 0n, iter: 0, credit: 10, resume: [] },
  topicConfig: { topic: "t.secret", maxBytes: 1024, maxCount: 0, persist: false },
  serve: { topic: "svc.secret", host: "", direct: "" },
  routes: { topic: "svc.secret" },
  request: {
    topic: "svc.secret",
    kind: 0,
    timeoutMs: 1000,
    credit: 0,
    headers: [],
    payload: Buffer.from("x"),
  },
  deadman: { name: "d.secret", op: 1 },
  monitor: { pattern: ">" },
};

/** Messages that act only on the sender's own things, with ids it does not own: they must change nothing. */
const OWN_BODIES: Record<string, Record<string, unknown>> = {
  resyncDone: {},
  release: { id: 1, policy: 2 },
  read: { id: 1 },
  list: { pattern: "" },
  listPage: { pattern: "", after: "", maxBytes: 0 },
  stats: {},
  credit: { sid: 77, n: 5 },
  unsubscribe: { sid: 77 },
  topics: { pattern: "" },
  topicsPage: { pattern: "", after: "", maxBytes: 0 },
  unserve: { topic: "svc.secret" },
  chunk: { side: 1, id: 1, payload: Buffer.from("x") },
  flow: { side: 0, id: 1, n: 3 },
  end: { side: 1, id: 1, status: 0, code: "", message: "", payload: Buffer.alloc(0) },
};

describe("admission: every hub message is permission-checked and bounded", () => {
  const hubKey = dh25519.generateKeyPair();
  let hub: Hub;
  let url: string;
  let root: HubClient;
  const held: unknown[] = []; // pointers kept alive (a collected pointer releases its reference)

  function raw(name: string, token: string) {
    return rawClient(url, name, { upgrade: secureDial({ hubKey: hubKey.publicKey, token }) });
  }

  before(async () => {
    hub = await Hub.listen({
      urls: ["tcp://127.0.0.1:0"],
      maxPointersPerClient: 100,
      security: {
        staticKey: hubKey,
        clients: [
          { name: "root", token: "root-token" },
          { name: "mallory", token: "mallory-token", allow: {} },
          { name: "reader", token: "reader-token", allow: { watch: [">"] } },
        ],
      },
    });
    url = hub.urls[0]!;
    root = await connect(url, { name: "root", secure: { hubKey: hubKey.publicKey, token: "root-token" } });
    held.push(await root.allocate("k.secret", 4, "poll"));
    held.push(await root.config("k.json", { persistent: false }));
    await root.publish("t.secret", "secret message");
    await root.serve("svc.secret", () => "secret reply");
    await root.deadman("d.secret").take();
  });

  after(async () => {
    await root.close();
    await hub.close();
  });

  it("the table names every message of the protocol, once", () => {
    for (const type of Object.keys(hubMessages)) {
      const places = [type === "hello", type in CLIENT_MESSAGES, HUB_TO_CLIENT.includes(type as never)];
      assert.equal(places.filter(Boolean).length, 1, `${type} is in exactly one place`);
    }
    for (const [type, a] of Object.entries(CLIENT_MESSAGES)) {
      if ("op" in a!) assert.ok(BODIES[type], `${type} has a permission test below`);
      else assert.ok(OWN_BODIES[type], `${type} has an ownership test below`);
    }
  });

  it("a client allowed nothing is refused every operation with a permission, and its connection carries on", async () => {
    const m = await raw("mallory", "mallory-token");
    let rid = 100;
    for (const [type, body] of Object.entries(BODIES)) {
      const a = CLIENT_MESSAGES[type as keyof typeof CLIENT_MESSAGES]!;
      if ("op" in a && a.subject === "holding") continue; // below: needs a holding first
      m.conn.send(proto.encode(type, { ...body, rid: ++rid }));
      const reply = await m.next();
      const code =
        reply.type === "end"
          ? (reply.body.code as string)
          : reply.type === "error"
            ? reply.body.code
            : reply.type;
      assert.equal(code, "EZIPC_PERMISSION_DENIED", `${type} was refused`);
      assert.equal(
        reply.type === "end" ? reply.body.id : reply.body.rid,
        rid,
        `${type}: the refusal answers it`,
      );
    }
    m.conn.send(proto.encode("stats", { rid: ++rid }));
    assert.equal((await m.next()).type, "statsReply", "still connected");
    assert.equal(hub.peek("k.secret")!.refcount, 1, "the resync took no reference");
    assert.equal((await root.deadman("d.secret").state()).mine, true);
    await m.conn.close();
  });

  it("holding-based operations check the holding's key: a reader may watch but not write", async () => {
    const r = await raw("reader", "reader-token");
    let rid = 1;
    const ids: Record<string, number> = {};
    for (const key of ["k.secret", "k.json"]) {
      r.conn.send(proto.encode("watch", { rid: ++rid, key, policy: 0 }));
      const opened = await r.next();
      assert.equal(opened.type, "opened");
      ids[key] = opened.body.id as number;
    }
    r.conn.send(proto.encode("write", { ...BODIES.write, id: ids["k.secret"], rid: ++rid }));
    assert.equal((await r.next()).body.code, "EZIPC_PERMISSION_DENIED");
    r.conn.send(proto.encode("config", { ...BODIES.config, id: ids["k.json"], rid: ++rid }));
    assert.equal((await r.next()).body.code, "EZIPC_PERMISSION_DENIED");
    assert.notEqual(hub.peek("k.secret")!.data.toString(), "evil");
    await r.conn.close();
  });

  it("own-only messages with ids the client does not own change nothing and reveal nothing", async () => {
    const m = await raw("mallory", "mallory-token");
    let rid = 1;
    const before = hub.stats();
    for (const [type, body] of Object.entries(OWN_BODIES))
      m.conn.send(proto.encode(type, { ...body, rid: ++rid }));
    // Replies come for the ones that have a rid; listings are empty for a client allowed nothing.
    const seen: RawMessage[] = [];
    m.conn.send(proto.encode("stats", { rid: 999 }));
    for (let r = await m.next(); r.body.rid !== 999; r = await m.next()) seen.push(r);
    const listing = seen.find((r) => r.type === "listing");
    assert.deepEqual(listing?.body.keys, [], "no key names");
    const topicList = seen.find((r) => r.type === "topicList");
    assert.deepEqual(topicList?.body.topics, [], "no topic names");
    const listingPage = seen.find((r) => r.type === "listingPage");
    assert.deepEqual(
      [listingPage?.body.keys, listingPage?.body.more],
      [[], false],
      "no key names, a page at a time",
    );
    const topicPage = seen.find((r) => r.type === "topicPage");
    assert.deepEqual(
      [topicPage?.body.topics, topicPage?.body.more],
      [[], false],
      "no topic names, a page at a time",
    );
    assert.ok(!seen.some((r) => r.type === "value" || r.type === "message"), "no values or messages");
    const now = hub.stats();
    assert.equal(now.pointers, before.pointers);
    assert.equal(now.callsInFlight, before.callsInFlight);
    assert.equal(
      (await root.request("svc.secret", "x")).text(),
      "secret reply",
      "the root's server still serves",
    );
    await m.conn.close();
  });

  it("resync is bounded like allocate and watch: counts beyond the pointer limit are refused", async () => {
    const r = await raw("root", "root-token");
    const before = hub.stats().pointers;
    for (const counts of [
      [0xffffffff, 0, 0],
      [0, 60, 60],
      [101, 0, 0],
    ]) {
      r.conn.send(proto.encode("resync", { rid: 5, key: "k.secret", id: 0, counts, version: 0n }));
      assert.equal((await r.next()).body.code, "EZIPC_TOO_MANY_POINTERS", `counts ${counts}`);
    }
    assert.equal(hub.stats().pointers, before);
    // Within the bound it works, and listing the key (u32 counts) answers other clients as usual.
    r.conn.send(proto.encode("resync", { rid: 6, key: "k.secret", id: 0, counts: [0, 0, 100], version: 0n }));
    assert.equal((await r.next()).type, "opened");
    const listed = await root.list("k.secret");
    assert.equal(listed[0]!.refcount, 101);
    await r.conn.close();
  });

  it("deadman waits are bounded per connection", async () => {
    const r = await raw("root", "root-token");
    for (let i = 0; i < MAX_WAITS_PER_CONNECTION; i++) {
      r.conn.send(proto.encode("deadman", { rid: 10 + i, name: `d.w${i % 10}`, op: 3 })); // waitTaken
    }
    r.conn.send(proto.encode("deadman", { rid: 5, name: "d.free", op: 3 }));
    let reply = await r.next();
    while (reply.body.rid !== 5) reply = await r.next();
    assert.equal(reply.body.code, "EZIPC_TOO_MANY_REQUESTS");
    await r.conn.close();
  });
});
