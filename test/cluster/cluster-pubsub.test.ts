/**
 * Pub/sub across the hubs of a cluster (three NATS nodes on loopback, three hubs): one order and one seq per
 * topic on every hub, each publisher's order kept; a wildcard subscriber sees a topic made on another hub; a
 * subscriber whose hub is killed with -9 resumes on another hub from its last seq with no loss and no
 * duplicate; a publish acknowledged by the killed hub is not lost. (Every init × iter across two hubs:
 * test/pubsub/pubsub.test.ts, backend "cluster".)
 */
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { connect as natsConnect } from "nats";
import { topicSuffix } from "../../src/cluster/js-topics.js";
import type { Hub } from "../../src/hub/hub.js";
import { connect, type HubClient, isEzipcError, type TopicMessage } from "../../src/index.js";
import { exited, until, within } from "../helpers.js";
import { hubProcess, hubsOn, type NatsCluster, natsCluster } from "./nats-cluster.js";

describe("pub/sub across a cluster of hubs", () => {
  let nats: NatsCluster;
  const hubs: Hub[] = [];
  const clients: HubClient[] = [];

  const client = async (url: string, name: string) => {
    const c = await connect(url, {
      name,
      // Above the hubs' cluster timeout (20 s, hubsOn), so that a hub still retrying JetStream answers in time.
      requestTimeoutMs: 30_000,
      reconnect: { initialDelayMs: 20, maxDelayMs: 200 },
    });
    clients.push(c);
    return c;
  };

  /** Collects a subscription's messages. */
  const collect = async (c: HubClient, topic: string) => {
    const got: TopicMessage[] = [];
    const s = await c.subscribe(topic, { init: "oldest" }, (m) => {
      got.push(m);
    });
    return { got, s };
  };

  before(async () => {
    nats = await natsCluster(3);
    // (hubsOn gives the hubs a 20 s cluster timeout: a fresh stream's election can be slow on a busy host.)
    hubs.push(...(await hubsOn(nats, 3)));
  });

  after(async () => {
    await Promise.all(clients.map((c) => c.close()));
    await Promise.all(hubs.map((h) => h.close()));
    await nats?.close();
  });

  it("publishers on three hubs: every hub's subscribers see one order with the same seqs, each publisher's order kept", async () => {
    const topic = "cl.order";
    const subs = await Promise.all(
      hubs.map(async (h, i) => collect(await client(h.urls[0]!, `s${i}`), topic)),
    );
    const pubs = await Promise.all(hubs.map((h, i) => client(h.urls[0]!, `p${i}`)));
    const n = 60;
    // Acknowledged publishes from every hub at once, and fire-and-forget ones from one.
    const acked = pubs.map(async (p, i) => {
      const seqs: bigint[] = [];
      for (let k = 0; k < n; k++) seqs.push((await p.publish(topic, `p${i}-${k}`)).seq);
      return seqs;
    });
    for (let k = 0; k < n; k++) pubs[0]!.publishAndForget(topic, `f-${k}`);
    await pubs[0]!.drain();
    const seqs = await Promise.all(acked);
    const total = 4 * n;
    for (const [i, s] of subs.entries()) {
      await until(() => s.got.length >= total, `hub ${i}'s subscriber has all ${total} messages`, 20_000);
    }
    const order = subs[0]!.got.map((m) => `${m.seq}:${m.text()}`);
    assert.deepEqual(
      order.map((_, i) => BigInt(i + 1)),
      subs[0]!.got.map((m) => m.seq),
      "seqs 1, 2, … with no hole",
    );
    for (const s of subs.slice(1)) {
      assert.deepEqual(
        s.got.map((m) => `${m.seq}:${m.text()}`),
        order,
        "the same messages, seqs and order on every hub",
      );
    }
    for (let i = 0; i < 3; i++) {
      const mine = subs[0]!.got.filter((m) => m.text().startsWith(`p${i}-`));
      assert.deepEqual(
        mine.map((m) => m.text()),
        Array.from({ length: n }, (_, k) => `p${i}-${k}`),
        `publisher ${i}'s order`,
      );
      assert.deepEqual(
        mine.map((m) => m.seq),
        seqs[i],
        "each acknowledged seq names that publish everywhere",
      );
      assert.ok(
        mine.every((m) => m.publisher.startsWith(`p${i}#`)),
        "publisher identity kept",
      );
    }
    const forgotten = subs[0]!.got.filter((m) => m.text().startsWith("f-")).map((m) => m.text());
    assert.deepEqual(
      forgotten,
      Array.from({ length: n }, (_, k) => `f-${k}`),
      "fire-and-forget in order",
    );
    for (const s of subs) s.s.unsubscribe();
  });

  it("a wildcard subscriber on one hub sees a topic made on another, from its first message", async () => {
    const watcher = await client(hubs[1]!.urls[0]!, "watcher");
    const got: TopicMessage[] = [];
    await watcher.subscribe("wild.>", { init: "oldest" }, (m) => {
      got.push(m);
    });
    const p = await client(hubs[2]!.urls[0]!, "maker");
    await p.publish("wild.new.one", "first");
    await p.publish("wild.new.one", "second");
    await until(() => got.length >= 2, "the new topic's messages on another hub", 20_000);
    assert.deepEqual(
      got.map((m) => [m.topic, m.seq, m.text()]),
      [
        ["wild.new.one", 1n, "first"],
        ["wild.new.one", 2n, "second"],
      ],
    );
    const listed = await watcher.topics("wild.>");
    assert.deepEqual(
      listed.map((t) => [t.name, t.lastSeq]),
      [["wild.new.one", 2n]],
      "listed on the other hub with its seqs",
    );
  });

  it("configureTopic on one hub bounds the topic's history on every hub", async () => {
    const topic = "cl.bounded";
    const a = await client(hubs[0]!.urls[0]!, "configurer");
    await a.configureTopic(topic, { maxCount: 2 });
    for (let i = 1; i <= 5; i++) await a.publish(topic, `m${i}`);
    const b = await client(hubs[2]!.urls[0]!, "late-reader");
    await until(
      async () => (await b.topics(topic))[0]?.count === 2,
      "two messages kept on another hub",
      20_000,
    );
    const { got } = await collect(b, topic);
    await until(() => got.length >= 2, "the two kept messages", 20_000);
    assert.deepEqual(
      got.map((m) => [m.seq, m.text()]),
      [
        [4n, "m4"],
        [5n, "m5"],
      ],
    );
  });

  it("a publish bigger than NATS carries (max_payload, 1 MiB by default) fails alone with EZIPC_CLUSTER", async () => {
    const p = await client(hubs[0]!.urls[0]!, "big");
    await assert.rejects(p.publish("cl.big", Buffer.alloc(2 * 1024 * 1024)), (err: unknown) => {
      assert.ok(isEzipcError(err) && err.code === "EZIPC_CLUSTER", String(err));
      return true;
    });
    assert.equal((await p.publish("cl.big", "small")).seq, 1n, "the connection goes on; nothing was stored");
  });

  it("garbage on a topic's subject (from anyone who can publish there) keeps its seq as a marked empty message on every hub", async () => {
    const topic = "cl.garbage";
    const subs = await Promise.all(
      [hubs[0]!, hubs[2]!].map(async (h, i) => collect(await client(h.urls[0]!, `g${i}`), topic)),
    );
    const p = await client(hubs[1]!.urls[0]!, "good");
    await p.publish(topic, "before");
    const nc = await natsConnect({ servers: new URL(nats.urls[1]!).host });
    try {
      await nc.jetstream().publish(`ezipc.t.${topicSuffix(topic)}`, Buffer.from("not ezipc's"));
    } finally {
      await nc.close();
    }
    await p.publish(topic, "after");
    for (const [i, s] of subs.entries()) {
      await until(() => s.got.length >= 3, `hub ${i}'s subscriber has three messages`, 20_000);
      assert.deepEqual(
        s.got.map((m) => [m.seq, m.text(), m.headers["ezipc-malformed"] ?? ""]),
        [
          [1n, "before", ""],
          [2n, "", "1"],
          [3n, "after", ""],
        ],
      );
    }
  });

  it("kill -9 a hub: its subscriber resumes on another hub from its last seq, and its publisher's acknowledged publishes are all there", async () => {
    const topic = "cl.failover";
    const { child, url } = await hubProcess(nats.urls[2]!);
    try {
      const sub = await client(`${url},${hubs[0]!.urls[0]}`, "mover-sub");
      const pub = await client(`${url},${hubs[1]!.urls[0]}`, "mover-pub");
      const far = await client(hubs[2]!.urls[0]!, "far-pub");
      const { got } = await collect(sub, topic);
      const acked = new Map<bigint, string>();
      const publishing = (async () => {
        for (let k = 0; k < 400; k++) {
          for (const [p, label] of [
            [pub, "near"],
            [far, "far"],
          ] as const) {
            const text = `${label}-${k}`;
            try {
              acked.set((await p.publish(topic, text)).seq, text);
            } catch {
              // A publish in flight when the hub died: it may or may not be stored (never acknowledged).
            }
          }
        }
      })();
      await until(() => got.length >= 100, "messages before the kill", 20_000);
      child.kill("SIGKILL");
      await exited(child);
      await within(publishing, 60_000, "the publishers end");
      let last = 0n;
      for (const seq of acked.keys()) if (seq > last) last = seq;
      await until(
        () => got.length > 0 && got.at(-1)!.seq >= last,
        "the subscriber has the last publish",
        20_000,
      );
      const seen = got.map((m) => m.seq);
      assert.deepEqual(
        seen,
        seen.map((_, i) => BigInt(i + 1)),
        "resumed on another hub: every seq once, in order, none missing",
      );
      const text = new Map(got.map((m) => [m.seq, m.text()]));
      for (const [seq, t] of acked) assert.equal(text.get(seq), t, `acknowledged seq ${seq} is there`);
      assert.ok(
        [...acked.values()].some((t) => t.startsWith("near-")),
        "the killed hub's publisher went on",
      );
    } finally {
      if (child.exitCode === null) child.kill("SIGKILL");
    }
  });
});
