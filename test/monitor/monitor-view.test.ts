/**
 * The hub's `monitor` message (the dashboard's data, src/hub/monitor-view.ts) over a real connection: what
 * each list holds, the grace countdown, a bad pattern answered alone, the `monitor` permission on a secure
 * hub, and the bound on each list.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { connect } from "../../src/client/client.js";
import { isEzipcError } from "../../src/errors.js";
import { Hub } from "../../src/hub/hub.js";
import { dh25519 } from "../../src/security/suite.js";
import { until } from "../helpers.js";
import { proto, rawClient } from "../hub/raw-client.js";

describe("the hub's monitor view", () => {
  it("lists clients, keys (holders, grace countdown, value), topics, RPC topics and deadman tokens", async () => {
    const hub = await Hub.listen({ urls: ["tcp://127.0.0.1:0"], disposeGraceMs: 60_000 });
    const a = await connect(hub.urls[0]!, { name: "alpha" });
    const b = await connect(hub.urls[0]!, { name: "beta" });
    try {
      const k = await a.allocate("m.k", 4, "request");
      await k.write(Buffer.from([0xde, 0xad, 0xbe, 0xef]));
      // Kept in variables and released at the end: a pointer nobody references may be collected, and its
      // finalizer releases its reference at the hub (the view would then count one holder fewer).
      const watched = (await b.watch("m.k", "poll"))!;
      const cfg = await a.config("m.cfg", { persistent: false });
      await cfg.write({ on: true });
      const gone = await a.allocate("m.gone", 2, "lazy");
      gone.dispose();
      await a.publish("m.news", "one");
      await a.publish("m.news", "two");
      const sub = await b.subscribe("m.news", { init: "oldest" });
      const it = sub[Symbol.asyncIterator]();
      await it.next();
      await it.next();
      await b.serve("m.rpc", () => "ok");
      await a.deadman("m.token").take();
      // A released key's grace shows once the hub has the release (the release has no reply, and a view is
      // reused for 200 ms: ask until then).
      let v = await b.monitor();
      await until(async () => {
        v = await b.monitor();
        return v.keys.find((x) => x.key === "m.gone")?.graceLeftMs != null;
      }, "the released key's grace in the view");

      const labels = v.clients.map((c) => c.name).sort();
      assert.deepEqual(labels, ["alpha", "beta"]);
      const alpha = v.clients.find((c) => c.name === "alpha")!;
      assert.equal(alpha.connected, true);
      assert.match(alpha.remote, /^tcp:\/\/127\.0\.0\.1:/);
      assert.deepEqual(alpha.pointers, { request: 1, lazy: 0, poll: 1 });
      const beta = v.clients.find((c) => c.name === "beta")!;
      assert.equal(beta.subscriptions, 1);
      assert.equal(beta.servedTopics, 1);

      const key = v.keys.find((x) => x.key === "m.k")!;
      assert.equal(key.hex, "deadbeef");
      assert.equal(key.refcount, 2);
      assert.equal(key.graceLeftMs, null);
      assert.deepEqual(key.holders.map((h) => [h.client.split("#")[0], h.request, h.lazy, h.poll]).sort(), [
        ["alpha", 1, 0, 0],
        ["beta", 0, 0, 1],
      ]);
      assert.equal(v.keys.find((x) => x.key === "m.cfg")!.json, '{"on":true}');
      const grace = v.keys.find((x) => x.key === "m.gone")!.graceLeftMs!;
      assert.ok(grace > 50_000 && grace <= 60_000, `grace left ${grace}`);

      const topic = v.topics.find((t) => t.name === "m.news")!;
      assert.deepEqual([topic.firstSeq, topic.lastSeq, topic.count, topic.subscribers], [1, 2, 2, 1]);
      assert.equal(topic.delivered, 2);
      assert.deepEqual(v.rpc, [{ topic: "m.rpc", servers: [beta.label], inFlight: 0 }]);
      assert.deepEqual(v.deadman, [{ name: "m.token", holder: alpha.label, waiting: 0 }]);
      assert.equal(v.stats.connectedClients, 2);

      // A pattern narrows keys, topics, RPC topics and tokens (not clients).
      const narrow = await b.monitor("m.rpc");
      assert.deepEqual(
        [
          narrow.keys.length,
          narrow.topics.length,
          narrow.rpc.length,
          narrow.deadman.length,
          narrow.clients.length,
        ],
        [0, 0, 1, 0, 2],
      );
      // A malformed pattern is refused alone; the connection goes on.
      await assert.rejects(b.monitor("m.>.x"), (e) => isEzipcError(e, "EZIPC_INVALID_TOPIC"));
      assert.equal((await b.monitor("m.k")).keys.length, 1);
      k.dispose();
      watched.dispose();
      cfg.dispose();
    } finally {
      await a.close();
      await b.close();
      await hub.close();
    }
  });

  it("one view serves every client asking within 200 ms; a later ask sees later state", async () => {
    const hub = await Hub.listen({ urls: ["tcp://127.0.0.1:0"] });
    const a = await connect(hub.urls[0]!);
    const b = await connect(hub.urls[0]!);
    try {
      const first = await a.monitor();
      await a.publish("later.topic", "x");
      const shared = await b.monitor();
      if (Date.now() - first.now < 150) assert.equal(shared.now, first.now, "the same view");
      await until(
        async () => (await b.monitor()).topics.some((t) => t.name === "later.topic"),
        "a fresh view",
      );
    } finally {
      await a.close();
      await b.close();
      await hub.close();
    }
  });

  it("counts a client's slow-consumer cuts, and shows it away while its window runs", async () => {
    const hub = await Hub.listen({
      urls: ["tcp://127.0.0.1:0"],
      maxQueuedBytes: 256 * 1024,
      reconnectWindowMs: 30_000,
    });
    const publisher = await connect(hub.urls[0]!, { name: "pub" });
    const slow = await rawClient(hub.urls[0]!, "slow");
    try {
      // It holds a pointer (so the hub keeps it for its window) and subscribes, then stops reading.
      slow.conn.send(
        proto.encode("allocate", {
          rid: 1,
          key: "cut.k",
          kind: 0,
          size: 4,
          policy: 0,
          persistent: false,
          ifExists: 0,
        }),
      );
      assert.equal((await slow.next()).type, "opened");
      slow.conn.send(
        proto.encode("subscribe", {
          rid: 2,
          sid: 1,
          pattern: "cut.flood",
          init: 2,
          fromSeq: 0n,
          iter: 0,
          credit: 1_000_000,
          resume: [],
        }),
      );
      assert.equal((await slow.next()).type, "ok");
      slow.conn.pause();
      const chunk = Buffer.alloc(64 * 1024);
      for (let i = 0; i < 2_000 && slow.conn.state === "open"; i++) {
        if (!publisher.publishAndForget("cut.flood", chunk)) await publisher.drain();
        if (i % 50 === 0) await new Promise((r) => setImmediate(r));
      }
      await until(
        async () => {
          const c = (await publisher.monitor("cut.>")).clients.find((x) => x.name === "slow");
          return c !== undefined && !c.connected && c.slowConsumerCuts === 1;
        },
        "the cut client shown away with one cut",
        10_000,
      );
      assert.equal(hub.stats().slowConsumerCuts, 1);
    } finally {
      slow.conn.destroy();
      await publisher.close();
      await hub.close();
    }
  });

  it("bounds each list at 500 entries and counts the rest", async () => {
    const hub = await Hub.listen({ urls: ["tcp://127.0.0.1:0"] });
    for (let i = 0; i < 620; i++)
      hub.allocate(`bulk.k${String(i).padStart(4, "0")}`, 1, { persistent: true });
    const c = await connect(hub.urls[0]!);
    try {
      const v = await c.monitor();
      assert.equal(v.keys.length, 500);
      assert.equal(v.truncated.keys, 120);
      assert.deepEqual(
        v.keys.map((k) => k.key),
        [...v.keys.map((k) => k.key)].sort(),
      );
    } finally {
      await c.close();
      await hub.close();
    }
  });

  it("needs the monitor permission on the pattern (secure hub)", async () => {
    const hubKey = dh25519.generateKeyPair();
    const hub = await Hub.listen({
      urls: ["tcp://127.0.0.1:0"],
      security: {
        staticKey: hubKey,
        clients: [
          { name: "ops", token: "ops", allow: { monitor: ["plant.>"] } },
          { name: "app", token: "app", allow: { publish: [">"] } },
        ],
      },
    });
    const secure = (token: string) => ({ secure: { hubKey: hubKey.publicKey, token } });
    const ops = await connect(hub.urls[0]!, secure("ops"));
    const app = await connect(hub.urls[0]!, secure("app"));
    try {
      await app.publish("plant.a", "x");
      await app.publish("office.b", "y");
      const v = await ops.monitor("plant.>");
      assert.deepEqual(
        v.topics.map((t) => t.name),
        ["plant.a"],
      );
      await assert.rejects(ops.monitor(""), (e) => isEzipcError(e, "EZIPC_PERMISSION_DENIED"));
      await assert.rejects(ops.monitor(">"), (e) => isEzipcError(e, "EZIPC_PERMISSION_DENIED"));
      await assert.rejects(app.monitor("plant.>"), (e) => isEzipcError(e, "EZIPC_PERMISSION_DENIED"));
      // Refusals leave the connections usable.
      assert.equal((await ops.monitor("plant.>")).topics.length, 1);
      await app.publish("plant.c", "z");
    } finally {
      await ops.close();
      await app.close();
      await hub.close();
    }
  });
});
