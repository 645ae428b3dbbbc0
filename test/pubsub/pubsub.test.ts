import assert from "node:assert/strict";
import { rmSync } from "node:fs";
import path from "node:path";
import { after, before, describe, it } from "node:test";
import {
  type Connection,
  connect,
  type Gap,
  Hub,
  type HubClient,
  isEzipcError,
  type MessagingClient,
  SqliteStore,
  type SubscribeInit,
  type SubscribeIter,
  type TopicMessage,
} from "../../src/index.js";
import { type NatsCluster, natsCluster } from "../cluster/nats-cluster.js";
import { nextEvent, tempDir, until, within } from "../helpers.js";
import { restartedHub } from "../hub/hubs.js";

type Iter = AsyncIterator<TopicMessage>;

async function next(it: Iter, what = "a message"): Promise<TopicMessage> {
  const r = await within(it.next(), 5_000, what);
  assert.ok(!r.done, `subscription ended while waiting for ${what}`);
  return r.value;
}

// One suite, three backends: a hub over tcp://, shared memory (shm://, no hub), and two hubs of a cluster
// (three NATS nodes; the publisher on one hub, the subscriber on the other).
for (const backend of ["hub", "shm", "cluster"] as const)
  describe(`pub/sub: every init × iter behaves as AlephZero's reader (${backend})`, () => {
    let hub: Hub | undefined;
    let nats: NatsCluster | undefined;
    const hubs: Hub[] = [];
    let pub: MessagingClient;
    let sub: MessagingClient;
    let n = 0;
    /**
     * Waits until the subscriber's side has `seq` of `topic` (a cluster's hubs get each publish a moment
     * apart; `newest` reads what the subscriber's hub has). Nothing to wait for on one hub or shm://.
     */
    const settle = async (topic: string, seq: bigint) => {
      if (backend !== "cluster") return;
      const last = () => hubs[1]!.view(topic).topics.find((t) => t.name === topic)?.lastSeq ?? 0;
      await until(() => BigInt(last()) >= seq, `seq ${seq} of ${topic} on the subscriber's hub`, 10_000);
    };
    before(async () => {
      if (backend === "cluster") {
        nats = await natsCluster(3);
        for (const i of [0, 1]) {
          const servers = [nats.urls[i]!, ...nats.urls.filter((_, j) => j !== i)];
          hubs.push(await Hub.listen({ urls: ["tcp://127.0.0.1:0"], name: `hub${i}`, cluster: { servers } }));
        }
        pub = await connect(hubs[0]!.urls[0]!, { name: "pub" });
        sub = await connect(hubs[1]!.urls[0]!, { name: "sub" });
      } else if (backend === "hub") {
        hub = await Hub.listen({ urls: ["tcp://127.0.0.1:0"] });
        pub = await connect(hub.urls[0]!, { name: "pub" });
        sub = await connect(hub.urls[0]!, { name: "sub" });
      } else {
        const url = `shm:///test-a0-${process.pid}` as const;
        pub = await connect(url, { name: "pub", ringBytes: 65536 });
        sub = await connect(url, { name: "sub", ringBytes: 65536 });
      }
    });
    after(async () => {
      await pub.close();
      await sub.close();
      await hub?.close();
      await Promise.all(hubs.map((h) => h.close()));
      await nats?.close();
      if (backend === "shm")
        rmSync(`/dev/shm/ezipc.test-a0-${process.pid}`, { recursive: true, force: true });
    });

    /**
     * Runs one AlephZero reader case on a fresh topic: `pushes` before subscribing, then steps of
     * [payloads to publish, payloads the reader must get next]. After the last step a sentinel proves nothing
     * else was pending (AlephZero's `!has_next()`).
     */
    async function readerCase(
      init: SubscribeInit,
      iter: SubscribeIter,
      before: string[],
      steps: [publish: string[], expect: string[]][],
    ): Promise<void> {
      const topic = `a0.case${n++}`;
      let last = 0n;
      for (const p of before) last = (await pub.publish(topic, p)).seq;
      const s = await sub.subscribe(topic, { init, iter });
      const it = s[Symbol.asyncIterator]();
      try {
        for (const [publish, expect] of steps) {
          for (const p of publish) last = (await pub.publish(topic, p)).seq;
          await settle(topic, last);
          for (const e of expect) assert.equal((await next(it, e)).text(), e);
        }
        await pub.publish(topic, "sentinel");
        assert.equal((await next(it, "the sentinel")).text(), "sentinel", "nothing else was pending");
      } finally {
        s.unsubscribe();
      }
    }

    it("oldest-next", () =>
      readerCase(
        "oldest",
        "next",
        ["pkt_0", "pkt_1"],
        [
          [[], ["pkt_0", "pkt_1"]],
          [["pkt_2"], ["pkt_2"]],
        ],
      ));
    it("oldest-next, empty start", () =>
      readerCase(
        "oldest",
        "next",
        [],
        [
          [
            ["pkt_0", "pkt_1"],
            ["pkt_0", "pkt_1"],
          ],
          [["pkt_2"], ["pkt_2"]],
        ],
      ));
    it("oldest-newest", () =>
      readerCase(
        "oldest",
        "newest",
        ["pkt_0", "pkt_1", "pkt_2"],
        [
          [[], ["pkt_0"]],
          [[], ["pkt_2"]],
          [["pkt_3", "pkt_4"], ["pkt_4"]],
        ],
      ));
    it("oldest-newest, empty start", () =>
      readerCase(
        "oldest",
        "newest",
        [],
        [
          [["pkt_0", "pkt_1"], ["pkt_0"]],
          [[], ["pkt_1"]],
          [["pkt_2", "pkt_3"], ["pkt_3"]],
        ],
      ));
    it("most recent-next", () =>
      readerCase(
        "mostRecent",
        "next",
        ["pkt_0", "pkt_1"],
        [
          [[], ["pkt_1"]],
          [["pkt_2"], ["pkt_2"]],
        ],
      ));
    it("most recent-next, empty start", () =>
      readerCase(
        "mostRecent",
        "next",
        [],
        [
          [
            ["pkt_0", "pkt_1"],
            ["pkt_0", "pkt_1"],
          ],
          [["pkt_2"], ["pkt_2"]],
        ],
      ));
    it("most recent-newest", () =>
      readerCase(
        "mostRecent",
        "newest",
        ["pkt_0", "pkt_1"],
        [
          [[], ["pkt_1"]],
          [["pkt_2", "pkt_3"], ["pkt_3"]],
        ],
      ));
    it("most recent-newest, empty start", () =>
      readerCase(
        "mostRecent",
        "newest",
        [],
        [
          [["pkt_0", "pkt_1"], ["pkt_1"]],
          [["pkt_2", "pkt_3"], ["pkt_3"]],
        ],
      ));
    it("await new-next", () =>
      readerCase(
        "awaitNew",
        "next",
        ["pkt_0"],
        [
          [
            ["pkt_1", "pkt_2"],
            ["pkt_1", "pkt_2"],
          ],
          [
            ["pkt_3", "pkt_4"],
            ["pkt_3", "pkt_4"],
          ],
        ],
      ));
    it("await new-next, empty start", () =>
      readerCase(
        "awaitNew",
        "next",
        [],
        [
          [
            ["pkt_0", "pkt_1"],
            ["pkt_0", "pkt_1"],
          ],
          [
            ["pkt_2", "pkt_3"],
            ["pkt_2", "pkt_3"],
          ],
        ],
      ));
    it("await new-newest", () =>
      readerCase(
        "awaitNew",
        "newest",
        ["pkt_0"],
        [
          [["pkt_1", "pkt_2"], ["pkt_2"]],
          [["pkt_3", "pkt_4"], ["pkt_4"]],
        ],
      ));
    it("await new-newest, empty start", () =>
      readerCase(
        "awaitNew",
        "newest",
        [],
        [
          [["pkt_0", "pkt_1"], ["pkt_1"]],
          [["pkt_2", "pkt_3"], ["pkt_3"]],
        ],
      ));
    it("from seq-next", () =>
      readerCase(
        { fromSeq: 2n },
        "next",
        ["pkt_0", "pkt_1", "pkt_2"],
        [
          [[], ["pkt_1", "pkt_2"]],
          [["pkt_3"], ["pkt_3"]],
        ],
      ));

    it("a fromSeq outside u64 is refused with a RangeError on every backend; the largest u64 is taken", async () => {
      for (const fromSeq of [-1n, 1n << 64n]) {
        await assert.rejects(sub.subscribe("a0.range", { init: { fromSeq } }), RangeError, String(fromSeq));
      }
      const s = await sub.subscribe("a0.range", { init: { fromSeq: (1n << 64n) - 1n } });
      s.unsubscribe();
    });

    it("headers over the wire's limits fail their own publish with EZIPC_ENCODE; nothing around it is lost", async () => {
      const topic = `a0.case${n++}`;
      const got: string[] = [];
      const s = await sub.subscribe(topic, {}, (m) => {
        got.push(m.text());
      });
      const bad: Record<string, string>[] = [
        { big: "x".repeat(4097) },
        { big: "é".repeat(2049) }, // 4098 bytes in UTF-8
        { ["k".repeat(257)]: "v" },
        Object.fromEntries(Array.from({ length: 65 }, (_, i) => [`h${i}`, "v"])),
        { n: 1 as unknown as string },
      ];
      const encodeError = (e: unknown) => isEzipcError(e) && e.code === "EZIPC_ENCODE";
      try {
        pub.publishAndForget(topic, "a");
        for (const headers of bad) {
          // (a fire-and-forget publish used to put it in its batch: the hub refused the batch and the connection)
          assert.throws(() => pub.publishAndForget(topic, "bad", { headers }), encodeError);
          await assert.rejects(pub.publish(topic, "bad", { headers }), encodeError);
        }
        pub.publishAndForget(topic, "b", { headers: { ok: "x".repeat(4096), ["k".repeat(256)]: "" } });
        const last = await pub.publish(topic, "c");
        await settle(topic, last.seq);
        await until(() => got.length >= 3, "the three good messages", 10_000);
        assert.deepEqual(got, ["a", "b", "c"]);
      } finally {
        s.unsubscribe();
      }
    });
  });

describe("pub/sub semantics", () => {
  let hub: Hub;
  let url: string;
  let pub: HubClient;
  before(async () => {
    hub = await Hub.listen({ urls: ["tcp://127.0.0.1:0"], maxHistoryBytes: 1024 * 1024 });
    url = hub.urls[0]!;
    pub = await connect(url, { name: "pub" });
  });
  after(async () => {
    await pub.close();
    await hub.close();
  });

  it("messages carry seq, time, publisher and headers; seqs are bigints from 1", async () => {
    const c = await connect(url, { name: "meta" });
    try {
      const s = await c.subscribe("meta.t", { init: "oldest" });
      const before = Date.now();
      const r = await pub.publish("meta.t", Buffer.from([1, 2]), { headers: { kind: "test", n: "1" } });
      assert.equal(r.seq, 1n);
      const m = await next(s[Symbol.asyncIterator]());
      assert.equal(m.seq, 1n);
      assert.equal(m.topic, "meta.t");
      assert.deepEqual(m.headers, { kind: "test", n: "1" });
      assert.deepEqual([...m.payload], [1, 2]);
      assert.match(m.publisher, /^pub#/);
      assert.ok(m.time >= before - 1000 && m.time <= Date.now() + 1000);
      assert.equal(m.time, r.time);
    } finally {
      await c.close();
    }
  });

  it("a subscriber that falls behind eviction gets a gap notice and goes on", async () => {
    await pub.configureTopic("gappy", { maxCount: 5 });
    const c = await connect(url, { name: "slow" });
    try {
      const s = await c.subscribe("gappy", { init: "awaitNew", prefetch: 1 });
      const gaps: Gap[] = [];
      s.on("gap", (g) => gaps.push(g));
      for (let i = 1; i <= 20; i++) await pub.publish("gappy", `m${i}`);
      const it = s[Symbol.asyncIterator]();
      const seqs: bigint[] = [];
      for (let i = 0; i < 6; i++) seqs.push((await next(it)).seq);
      assert.deepEqual(seqs, [1n, 16n, 17n, 18n, 19n, 20n]);
      assert.deepEqual(gaps, [{ topic: "gappy", first: 2n, last: 15n }]);
      assert.equal(hub.stats().gaps >= 1, true);
    } finally {
      await c.close();
    }
  });

  it("1 slow and 10 fast subscribers: the fast get everything in order, the slow costs no queue", async () => {
    const fast: HubClient[] = [];
    const slow = await connect(url, { name: "slow" });
    try {
      for (let i = 0; i < 10; i++) fast.push(await connect(url, { name: `fast${i}` }));
      const slowSub = await slow.subscribe("fan", { prefetch: 8 }); // never consumed
      const counts = new Array(10).fill(0);
      const orderOk = new Array(10).fill(true);
      const total = 5_000;
      const done = Promise.all(
        fast.map(async (f, i) => {
          let last = 0n;
          await new Promise<void>((resolve) => {
            void f.subscribe("fan", {}, (m) => {
              if (m.seq !== last + 1n) orderOk[i] = false;
              last = m.seq;
              if (++counts[i] === total) resolve();
            });
          });
        }),
      );
      // Subscriptions are registered once subscribe() resolved; make sure all are in before publishing.
      await within(
        (async () => {
          while ((await pub.topics("fan"))[0]?.subscribers !== 11) await new Promise((r) => setImmediate(r));
        })(),
        5_000,
        "11 subscribers",
      );
      let maxQueued = 0;
      for (let i = 0; i < total; i++) {
        if (!pub.publishAndForget("fan", Buffer.alloc(100, i & 0xff))) await pub.drain();
        if (i % 500 === 0) maxQueued = Math.max(maxQueued, hub.stats().maxClientQueuedBytes);
      }
      await within(done, 20_000, "fast subscribers to get everything");
      assert.deepEqual(counts, new Array(10).fill(total));
      assert.deepEqual(orderOk, new Array(10).fill(true));
      const slowTopic = (await pub.topics("fan"))[0]!;
      assert.equal(slowTopic.lastSeq, BigInt(total));
      assert.ok(maxQueued < 2 * 1024 * 1024, `hub queues stayed bounded (${maxQueued} bytes)`);
      assert.ok(hub.stats().historyBytes <= 1024 * 1024, "history within maxHistoryBytes");
      slowSub.unsubscribe();
    } finally {
      await slow.close();
      await Promise.all(fast.map((f) => f.close()));
    }
  });

  it("wildcards: * matches one token, > one or more; new topics are announced on $hub.topics", async () => {
    const c = await connect(url, { name: "wild" });
    try {
      const star: string[] = [];
      const tail: string[] = [];
      const announced: string[] = [];
      await c.subscribe("sensors.*.temp", {}, (m) => {
        star.push(m.topic);
      });
      await c.subscribe("sensors.>", {}, (m) => {
        tail.push(m.topic);
      });
      await c.subscribe("$hub.topics", {}, (m) => {
        announced.push(m.text());
      });
      for (const t of [
        "sensors.a.temp",
        "sensors.b.temp",
        "sensors.a.humidity",
        "sensors.a.temp.raw",
        "other.a.temp",
      ]) {
        await pub.publish(t, "x");
      }
      await pub.publish("sensors.done", "x");
      await within(
        (async () => {
          while (tail.length < 5 || announced.length < 6) await new Promise((r) => setImmediate(r));
        })(),
        5_000,
        "wildcard deliveries",
      );
      assert.deepEqual(star, ["sensors.a.temp", "sensors.b.temp"]);
      assert.deepEqual(tail, [
        "sensors.a.temp",
        "sensors.b.temp",
        "sensors.a.humidity",
        "sensors.a.temp.raw",
        "sensors.done",
      ]);
      assert.deepEqual(announced, [
        "sensors.a.temp",
        "sensors.b.temp",
        "sensors.a.humidity",
        "sensors.a.temp.raw",
        "other.a.temp",
        "sensors.done",
      ]);
      const listed = (await c.topics("sensors.>")).map((t) => t.name);
      assert.deepEqual(listed, [
        "sensors.a.humidity",
        "sensors.a.temp",
        "sensors.a.temp.raw",
        "sensors.b.temp",
        "sensors.done",
      ]);
    } finally {
      await c.close();
    }
  });

  it("after the connection is cut mid-stream a subscription resumes with no loss and no duplicates", async () => {
    const c = await connect(url, { name: "resumer", reconnect: { initialDelayMs: 10, maxDelayMs: 50 } });
    try {
      const seen: bigint[] = [];
      const total = 2_000;
      let resolveDone: () => void = () => {};
      const done = new Promise<void>((r) => {
        resolveDone = r;
      });
      await c.subscribe("stream", { prefetch: 64 }, (m) => {
        seen.push(m.seq);
        if (m.seq === BigInt(total)) resolveDone();
      });
      for (let i = 1; i <= total; i++) {
        await pub.publish("stream", `m${i}`);
        if (i === 700) (c as unknown as { conn: Connection }).conn.destroy(); // cut under the subscriber
      }
      await within(done, 10_000, "the whole stream");
      assert.equal(seen.length, total, "no loss, no duplicates");
      assert.deepEqual(seen.slice(0, 5).concat(seen.slice(-2)), [
        1n,
        2n,
        3n,
        4n,
        5n,
        BigInt(total - 1),
        BigInt(total),
      ]);
      for (let i = 1; i < seen.length; i++) assert.equal(seen[i], seen[i - 1]! + 1n);
    } finally {
      await c.close();
    }
  });

  it("a fire-and-forget publish while disconnected throws EZIPC_CONNECTION_CLOSED, and works after the reconnect", async () => {
    const c = await connect(url, { name: "cut", reconnect: { initialDelayMs: 50, maxDelayMs: 100 } });
    try {
      const closed = (e: unknown) => isEzipcError(e) && e.code === "EZIPC_CONNECTION_CLOSED";
      let onAfter: (text: string) => void = () => {};
      const got = new Promise<string>((resolve) => {
        onAfter = resolve;
      });
      await pub.subscribe("cut.after", {}, (m) => onAfter(m.text()));
      c.publishAndForget("cut.before", "x");
      const reconnected = new Promise<void>((resolve) => {
        let cut = false;
        c.on("status", (st) => {
          if (st !== "connected") cut = true;
          else if (cut) resolve();
        });
      });
      (c as unknown as { conn: Connection }).conn.destroy();
      assert.throws(() => c.publishAndForget("cut.before", "y"), closed);
      await within(reconnected, 5_000, "the reconnect");
      c.publishAndForget("cut.after", "z");
      assert.equal(await within(got, 5_000, "the publish after the reconnect"), "z");
    } finally {
      await c.close();
    }
    assert.throws(
      () => c.publishAndForget("cut.after", "closed"),
      (e: unknown) => isEzipcError(e) && e.code === "EZIPC_CONNECTION_CLOSED",
    );
  });

  it("bad input fails only the call: invalid topics and patterns, $hub publishing", async () => {
    await assert.rejects(pub.publish("bad topic", "x"), { code: "EZIPC_INVALID_TOPIC" });
    await assert.rejects(pub.publish("a..b", "x"), { code: "EZIPC_INVALID_TOPIC" });
    await assert.rejects(pub.publish("a.*", "x"), { code: "EZIPC_INVALID_TOPIC" });
    await assert.rejects(pub.subscribe("a.>.b"), { code: "EZIPC_INVALID_TOPIC" });
    // Unknown init / iter names are the caller's mistake, said plainly (not a codec error from deep below).
    await assert.rejects(
      pub.subscribe("a.b", { init: "all" as never }),
      (e) => e instanceof TypeError && /init must be "oldest", "mostRecent", "awaitNew"/.test(e.message),
    );
    await assert.rejects(
      pub.subscribe("a.b", { iter: "last" as never }),
      (e) => e instanceof TypeError && /iter must be "next" or "newest"/.test(e.message),
    );
    await assert.rejects(pub.publish("$hub.topics", "x"), { code: "EZIPC_PERMISSION_DENIED" });
    await assert.rejects(pub.configureTopic("t", { persist: true }), { code: "EZIPC_BAD_REQUEST" });
    // A fire-and-forget publish that cannot be stored is dropped and counted; the connection carries on.
    const rejected = hub.stats().rejected;
    pub.publishAndForget("$hub.sneaky", "x");
    assert.equal((await pub.publish("still.fine", "x")).seq, 1n);
    assert.equal(hub.stats().rejected, rejected + 1);
  });
});

describe("pub/sub limits and persistence", () => {
  it("history is bounded per topic (bytes, count) and in total", async () => {
    const hub = await Hub.listen({
      urls: ["tcp://127.0.0.1:0"],
      topicMaxBytes: 10_000,
      maxHistoryBytes: 15_000,
    });
    const c = await connect(hub.urls[0]!);
    try {
      for (let i = 0; i < 100; i++) await c.publish("big", Buffer.alloc(500));
      const [big] = await c.topics("big");
      assert.ok(big!.bytes <= 10_000 && big!.count < 100 && big!.lastSeq === 100n);
      for (let i = 0; i < 100; i++) await c.publish("other", Buffer.alloc(500));
      assert.ok(hub.stats().historyBytes <= 15_000, `${hub.stats().historyBytes}`);
      await c.configureTopic("counted", { maxCount: 3 });
      for (let i = 0; i < 10; i++) await c.publish("counted", "x");
      const [counted] = await c.topics("counted");
      assert.deepEqual([counted!.count, counted!.firstSeq, counted!.lastSeq], [3, 8n, 10n]);
      await assert.rejects(
        (async () => {
          const h3 = await Hub.listen({ urls: ["tcp://127.0.0.1:0"], maxSubscriptionsPerClient: 2 });
          const d = await connect(h3.urls[0]!);
          try {
            await d.subscribe("a");
            await d.subscribe("b.>");
            await d.subscribe("c");
          } finally {
            await d.close();
            await h3.close();
          }
        })(),
        { code: "EZIPC_TOO_MANY_SUBSCRIPTIONS" },
      );
      await assert.rejects(
        (async () => {
          const h2 = await Hub.listen({ urls: ["tcp://127.0.0.1:0"], maxTopics: 2 });
          const d = await connect(h2.urls[0]!);
          try {
            await d.publish("one", "x"); // with $hub.topics, the second topic
            await d.publish("two", "x");
          } finally {
            await d.close();
            await h2.close();
          }
        })(),
        { code: "EZIPC_TOO_MANY_TOPICS" },
      );
    } finally {
      await c.close();
      await hub.close();
    }
  });

  it("a persisted topic's history survives a hub restart with its seqs", async () => {
    const tmp = tempDir();
    try {
      const dir = path.join(tmp.dir, "data");
      let hub = await Hub.listen({ urls: ["tcp://127.0.0.1:0"], store: SqliteStore.inDir(dir) });
      let c = await connect(hub.urls[0]!);
      await c.configureTopic("journal", { maxCount: 3, persist: true });
      for (let i = 1; i <= 5; i++) await c.publish("journal", `entry ${i}`, { headers: { i: String(i) } });
      await c.publish("volatile", "gone after restart");
      await c.close();
      await hub.close();

      hub = await Hub.listen({ urls: ["tcp://127.0.0.1:0"], store: SqliteStore.inDir(dir) });
      c = await connect(hub.urls[0]!);
      try {
        const s = await c.subscribe("journal", { init: "oldest" });
        const it = s[Symbol.asyncIterator]();
        const got = [];
        for (let i = 0; i < 3; i++) {
          const m = await next(it);
          got.push([m.seq, m.text(), m.headers.i]);
        }
        assert.deepEqual(got, [
          [3n, "entry 3", "3"],
          [4n, "entry 4", "4"],
          [5n, "entry 5", "5"],
        ]);
        assert.equal((await c.publish("journal", "entry 6")).seq, 6n);
        assert.deepEqual(await c.topics("volatile"), []);
      } finally {
        await c.close();
        await hub.close();
      }
    } finally {
      tmp.cleanup();
    }
  });

  it("a subscriber resuming after a hub restart gets everything published since: from seq 1 on a topic kept in memory, where it was on a persisted one", async () => {
    const tmp = tempDir();
    const dir = path.join(tmp.dir, "data");
    const sock = path.join(tmp.dir, "hub.sock");
    const hub = await Hub.listen({ urls: [`unix://${sock}`], store: SqliteStore.inDir(dir) });
    const sub = await connect(`unix://${sock}`, { reconnect: { initialDelayMs: 10, maxDelayMs: 50 } });
    let hub2: Hub | undefined;
    try {
      const got: string[] = [];
      for (const topic of ["mem", "kept"]) {
        await sub.subscribe(topic, {}, (m) => {
          got.push(`${topic} ${m.seq} ${m.text()}`);
        });
      }
      const pub = await connect(`unix://${sock}`);
      await pub.configureTopic("kept", { persist: true });
      for (let i = 1; i <= 5; i++) {
        await pub.publish("mem", `a${i}`);
        await pub.publish("kept", `a${i}`);
      }
      await until(() => got.length === 10, "the first ten messages");
      await pub.close();
      await hub.close();

      // The restarted hub takes publishes before the subscriber can reach it.
      hub2 = await restartedHub(sock, { store: SqliteStore.inDir(dir) }, async (url) => {
        const pub2 = await connect(url);
        for (let i = 1; i <= 8; i++) await pub2.publish("mem", `b${i}`);
        for (let i = 1; i <= 3; i++) await pub2.publish("kept", `b${i}`);
        await pub2.close();
      });
      await until(() => got.length === 21, "the messages published after the restart", 10_000);
      assert.deepEqual(
        got.slice(10).filter((g) => g.startsWith("mem")),
        Array.from({ length: 8 }, (_, i) => `mem ${i + 1} b${i + 1}`),
      );
      assert.deepEqual(
        got.slice(10).filter((g) => g.startsWith("kept")),
        ["kept 6 b1", "kept 7 b2", "kept 8 b3"],
      );
    } finally {
      await sub.close();
      await hub2?.close();
      tmp.cleanup();
    }
  });

  it("a subscriber's disconnect drops its subscriptions on the hub", async () => {
    const hub = await Hub.listen({ urls: ["tcp://127.0.0.1:0"] });
    const c = await connect(hub.urls[0]!, { reconnect: false });
    try {
      await c.subscribe("x.y");
      assert.equal((await c.topics("x.y"))[0]!.subscribers, 1);
      const closed = nextEvent(hub, "clientGone");
      await c.close();
      await closed;
      const d = await connect(hub.urls[0]!);
      assert.equal((await d.topics("x.y"))[0]!.subscribers, 0);
      await d.close();
    } finally {
      await hub.close();
    }
  });
});

describe("pub/sub batches: fire-and-forget publishes travel and are stored in batches", () => {
  let hub: Hub;
  let pub: HubClient;
  let sub: HubClient;
  before(async () => {
    hub = await Hub.listen({ urls: ["tcp://127.0.0.1:0"] });
    pub = await connect(hub.urls[0]!, { name: "pub" });
    sub = await connect(hub.urls[0]!, { name: "sub", reconnect: { initialDelayMs: 10, maxDelayMs: 50 } });
  });
  after(async () => {
    await pub.close();
    await sub.close();
    await hub.close();
  });
  const connOf = (c: HubClient) => (c as unknown as { conn: Connection }).conn;

  /** Collects what a handler subscription gets until `n` messages arrived. */
  async function collect(
    c: HubClient,
    pattern: string,
    n: number,
    options: Parameters<HubClient["subscribe"]>[1] = {},
    onMessage?: (m: TopicMessage, count: number) => void,
  ): Promise<{ done: Promise<TopicMessage[]> }> {
    const got: TopicMessage[] = [];
    let resolve: (ms: TopicMessage[]) => void = () => {};
    const done = new Promise<TopicMessage[]>((r) => {
      resolve = r;
    });
    await c.subscribe(pattern, options, (m) => {
      got.push(m);
      onMessage?.(m, got.length);
      if (got.length === n) resolve(got);
    });
    return { done };
  }

  it("a tick's publishes to one topic leave as one frame; subscribers get them in order, sliced by credit", async () => {
    const total = 1_000;
    const small = await collect(sub, "b.one", total + 1, { prefetch: 7 });
    const wide = await collect(sub, "b.>", total + 1, { prefetch: 1_000 });
    const framesBefore = connOf(pub).stats.framesOut;
    for (let i = 1; i <= total; i++) pub.publishAndForget("b.one", `m${i}`, { headers: { i: String(i) } });
    // The acknowledged publish leaves after the batch: it gets the next seq.
    assert.equal((await pub.publish("b.one", "last")).seq, BigInt(total + 1));
    assert.ok(connOf(pub).stats.framesOut - framesBefore <= 3, "one batch frame, then the publish");
    for (const { done } of [small, wide]) {
      const ms = await within(done, 10_000, "every message");
      assert.deepEqual(
        ms.map((m) => m.seq),
        Array.from({ length: total + 1 }, (_, i) => BigInt(i + 1)),
      );
      assert.equal(ms[41]!.text(), "m42");
      assert.deepEqual(ms[41]!.headers, { i: "42" });
      assert.equal(ms.at(-1)!.text(), "last");
    }
  });

  it("a publisher's batch buffer, written again once the socket took a batch, never changes a batch still queued", async () => {
    // Over unix:// (smaller socket buffers than tcp:// on loopback), in bursts larger than the socket takes
    // at once (the hub runs in this process: it reads only when the publisher waits): each payload says
    // which message it is.
    const tmp = tempDir();
    const local = await Hub.listen({ urls: [`unix://${tmp.dir}/reuse.sock`] });
    const p = await connect(local.urls[0]!, { name: "pub" });
    const s = await connect(local.urls[0]!, { name: "sub" });
    try {
      const total = 100_000;
      const all = await collect(s, "b.reuse", total);
      const payload = Buffer.alloc(64);
      let waits = 0;
      for (let i = 0; i < total; i++) {
        payload.writeUInt32LE(i, 0);
        payload.fill(i & 0xff, 4);
        if (!p.publishAndForget("b.reuse", payload)) {
          waits++;
          await p.drain();
        }
      }
      assert.ok(waits > 0, "the socket did not take every batch at once");
      const ms = await within(all.done, 20_000, "every message");
      ms.forEach((m, i) => {
        const b = Buffer.from(m.payload);
        assert.equal(b.readUInt32LE(0), i, `message ${i}`);
        assert.deepEqual(b.subarray(4), Buffer.alloc(60, i & 0xff), `message ${i}'s bytes`);
      });
    } finally {
      await p.close();
      await s.close();
      await local.close();
      tmp.cleanup();
    }
  });

  it("publishes to alternating topics keep their order per topic and across topics", async () => {
    const wide = await collect(sub, "alt.>", 300, { prefetch: 5 });
    for (let i = 0; i < 300; i++) pub.publishAndForget(i % 3 === 0 ? "alt.a" : "alt.b", `${i}`);
    const ms = await within(wide.done, 10_000, "300 messages");
    const a = ms.filter((m) => m.topic === "alt.a").map((m) => Number(m.text()));
    const b = ms.filter((m) => m.topic === "alt.b").map((m) => Number(m.text()));
    assert.deepEqual(
      a,
      Array.from({ length: 100 }, (_, i) => 3 * i),
    );
    assert.equal(b.length, 200);
    assert.ok(b.every((x, i) => i === 0 || x > b[i - 1]!));
    assert.deepEqual(
      ms.filter((m) => m.topic === "alt.b").map((m) => m.seq),
      Array.from({ length: 200 }, (_, i) => BigInt(i + 1)),
    );
  });

  it("a count bound cuts exactly inside a batch; newest reads the last message of a batch", async () => {
    await pub.configureTopic("trim", { maxCount: 10 });
    for (let i = 1; i <= 25; i++) pub.publishAndForget("trim", `t${i}`);
    assert.equal((await pub.publish("trim", "t26")).seq, 26n);
    const [t] = await pub.topics("trim");
    assert.deepEqual([t!.count, t!.firstSeq, t!.lastSeq], [10, 17n, 26n]);
    const oldest = await collect(sub, "trim", 10, { init: "oldest" });
    assert.deepEqual(
      (await within(oldest.done, 5_000, "the history")).map((m) => m.text()),
      Array.from({ length: 10 }, (_, i) => `t${17 + i}`),
    );
    for (let i = 1; i <= 50; i++) pub.publishAndForget("newest.batch", `n${i}`);
    await pub.publish("newest.batch", "n51");
    const s = await sub.subscribe("newest.batch", { init: "mostRecent", iter: "newest" });
    const m = await within(s[Symbol.asyncIterator]().next(), 5_000, "the newest");
    assert.equal(m.value!.text(), "n51");
    s.unsubscribe();
  });

  it("a connection cut while the cursor is inside a batch resumes there: no loss, no duplicates", async () => {
    const total = 500;
    const seqs: bigint[] = [];
    const resumed = await collect(sub, "cut", total, { prefetch: 5 }, (m, count) => {
      seqs.push(m.seq);
      if (count === 12) connOf(sub).destroy(); // under the subscriber, mid-batch
    });
    for (let i = 1; i <= total; i++) pub.publishAndForget("cut", `c${i}`);
    await within(resumed.done, 10_000, "the whole batch after the reconnect");
    assert.deepEqual(
      seqs,
      Array.from({ length: total }, (_, i) => BigInt(i + 1)),
    );
  });
});
