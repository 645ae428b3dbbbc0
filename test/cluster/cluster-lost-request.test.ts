/**
 * A hub's request to JetStream for a topic's stream that gets no answer (its NATS node froze) is made again
 * after a short wait, within the cluster timeout, and the publish that makes the topic succeeds. With the
 * whole timeout for one attempt, a request lost with its node (or sent during an election) used the bound
 * up, and the publish failed ("making the stream of topic …: TIMEOUT").
 *
 * Likewise for the reference counts: a key's grace whose end gets no answer (whether another hub holds the
 * key, or the delete) is ended again, and the key is disposed once the node answers. Dropped, the key was
 * never disposed. And a hold a hub could not put (JetStream refused it when a client took a pointer) is put
 * again until it is: dropped, another hub letting go of the key disposed it under that client.
 *
 * The node is let go on rather than killed: killing it can cost a leader election, which on two loaded cores
 * took longer than any bound this test could wait for. What it checks is the retry.
 */
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { DiscardPolicy, connect as natsConnect } from "nats";
import { Hub } from "../../src/hub/hub.js";
import { connect, type HubClient, isEzipcError } from "../../src/index.js";
import { eventWhere, until, within } from "../helpers.js";
import { proto, rawClient } from "../hub/raw-client.js";
import { type NatsCluster, natsCluster, untilHolds } from "./nats-cluster.js";

describe("a cluster request that gets no answer", () => {
  let nats: NatsCluster;
  let hub: Hub | undefined;
  let client: HubClient | undefined;
  const more: { close(): Promise<unknown> }[] = [];

  before(async () => {
    nats = await natsCluster(3);
  });

  /** Hubs a (seeded with node 0) and b (node 1), short windows and graces, and a client of each. */
  const twoHubs = async (name: string) => {
    const hub = async (suffix: string, node: number) => {
      const h = await Hub.listen({
        urls: ["tcp://127.0.0.1:0"],
        name: `${name}-${suffix}`,
        reconnectWindowMs: 200,
        disposeGraceMs: 300,
        cluster: { servers: [nats.urls[node]!], timeoutMs: 30_000 },
      });
      more.push(h);
      const c = await connect(h.urls[0]!, {
        name: `on-${suffix}`,
        requestTimeoutMs: 60_000,
        reconnect: false,
      });
      more.push(c);
      return [h, c] as const;
    };
    const [a, ca] = await hub("a", 0);
    const [b, cb] = await hub("b", 1);
    return { a, b, ca, cb };
  };

  /**
   * Makes the holds' stream refuse every new entry (full, discarding new), as JetStream refuses a write it
   * cannot take; resolves with the function that makes it take them again.
   */
  const refuseHolds = async (): Promise<() => Promise<void>> => {
    const nc = await natsConnect({ servers: new URL(nats.urls[2]!).host });
    more.push({ close: () => nc.close() });
    const jsm = await nc.jetstreamManager();
    const stream = "KV_ezipc_holds";
    const { config, state } = await jsm.streams.info(stream);
    await jsm.streams.update(stream, { ...config, discard: DiscardPolicy.New, max_msgs: state.messages });
    return async () => {
      await jsm.streams.update(stream, config);
    };
  };

  after(async () => {
    for (const c of more.reverse()) await c.close();
    await client?.close();
    await hub?.close();
    await nats?.close();
  });

  it("is made again after a short wait, within the cluster timeout: the publish making the topic succeeds", async () => {
    // Node 0 is the hub's only seed, so its requests go there.
    hub = await Hub.listen({
      urls: ["tcp://127.0.0.1:0"],
      name: "lost",
      cluster: { servers: [nats.urls[0]!], timeoutMs: 30_000 },
    });
    client = await connect(hub.urls[0]!, { name: "p", requestTimeoutMs: 60_000 });
    assert.equal((await client.publish("lost.warm", "the hub's cluster link works")).seq, 1n);

    nats.freeze(0);
    const retried = hub.clusterCounters()!.topicRequestsRetried;
    const published = client.publish("lost.topic", "made while the hub's node hangs");
    // The first request for the new topic's stream went to the frozen node and gets no answer: it is made
    // again after its own wait (2 s), not after the whole 30 s.
    await until(
      () => hub!.clusterCounters()!.topicRequestsRetried > retried,
      "the unanswered request is made again",
      8_000,
    );
    nats.thaw(0);
    const r = await within(published, 40_000, "the publish that makes the topic");
    assert.equal(r.seq, 1n);
    assert.ok(hub.clusterCounters()!.topicRequestsRetried > retried);
  });

  it("a key's grace whose end gets no answer is ended again: the key is disposed once the node answers", async () => {
    const h = await Hub.listen({
      urls: ["tcp://127.0.0.1:0"],
      name: "graces",
      reconnectWindowMs: 200,
      disposeGraceMs: 300,
      // Slow heartbeats: the other hub, frozen with it, is not to sweep it and dispose the key in its place.
      cluster: { servers: [nats.urls[0]!], timeoutMs: 30_000, heartbeatMs: 5_000 },
    });
    more.push(h);
    const c = await connect(h.urls[0]!, { name: "holder", requestTimeoutMs: 60_000, reconnect: false });
    more.push(c);
    const p = await c.allocate("lost.grace", 4, "poll");
    const before = h.clusterCounters()!;
    nats.freeze(0);
    const invalidated = eventWhere<[{ key: string }]>(
      h,
      "invalidated",
      (e) => e.key === "lost.grace",
      60_000,
    );
    p.dispose();
    // The grace ends after 300 ms; asking the frozen node who else holds the key gets no answer in 2 s.
    await until(
      () => h.clusterCounters()!.disposeRetries > before.disposeRetries,
      "the grace whose end failed is ended again",
      10_000,
    );
    nats.thaw(0);
    const [info] = await within(invalidated, 40_000, "the key disposed once the node answers");
    assert.equal(info.key, "lost.grace");
    // The delete's answer may come after the watch brought the deletion here.
    await until(
      () => h.clusterCounters()!.disposed === before.disposed + 1,
      "the hub counts it disposed",
      10_000,
    );
    assert.equal(h.peek("lost.grace"), undefined);
  });

  it("a hold that could not be put is put again: another hub letting go does not dispose the key under it", async () => {
    const { a, b, ca, cb } = await twoHubs("holds");
    const pb = await cb.allocate("lost.hold", 4, "poll");
    await until(() => a.peek("lost.hold") !== undefined, "hub a has the key", 20_000);
    const before = a.clusterCounters()!.holdRetries;
    // The holds' stream refuses every new entry for a while: a put gets an error.
    const takeAgain = await refuseHolds();
    let watching!: ReturnType<typeof ca.watch>;
    try {
      // Hub a's hold is refused: the watch's answer waits for it (the next test).
      watching = ca.watch("lost.hold", "poll");
      await until(() => a.clusterCounters()!.holdRetries > before, "the refused put is made again", 10_000);
    } finally {
      await takeAgain();
    }
    const pa = await within(watching, 20_000, "the watch on hub a, once its hold is put");
    assert.ok(pa);
    // Read from the cluster, as hub b will: hub a's hold is there once its put is made again.
    await untilHolds(nats, "lost.hold", 2, "both hubs' holds are in the cluster");
    const graces = b.clusterCounters()!.gracesEnded;
    pb.dispose();
    await until(() => b.clusterCounters()!.gracesEnded > graces, "hub b's grace ends", 20_000);
    assert.equal(b.clusterCounters()!.disposed, 0, "hub b did not dispose a key hub a holds");
    assert.equal(pa.status, "live");
    assert.ok(a.peek("lost.hold"));
  });

  it("a pointer is handed out only once its hub's hold is in the cluster: the key is never disposed under it", async () => {
    const { a, b, ca, cb } = await twoHubs("first");
    const pa = await ca.allocate("lost.first", 4, "poll");
    await until(() => b.peek("lost.first") !== undefined, "hub b has the key", 20_000);
    // Hub b cannot put its hold (the stream refuses new entries) while its client watches the key.
    const takeAgain = await refuseHolds();
    let watched!: Promise<{ pointer: unknown } | { err: unknown }>;
    try {
      const before = b.clusterCounters()!.holdRetries;
      watched = cb.watch("lost.first", "poll").then(
        (p) => ({ pointer: p }),
        (err: unknown) => ({ err }),
      );
      await until(() => b.clusterCounters()!.holdRetries > before, "hub b's hold refused", 10_000);
      // Hub a lets go; its grace ends and no hold of hub b is in the cluster: the key is disposed.
      // (Keys of earlier tests, disposed in the cluster meanwhile, are invalidated on every hub too.)
      const invalidated = eventWhere<[{ key: string }]>(
        a,
        "invalidated",
        (e) => e.key === "lost.first",
        20_000,
      );
      pa.dispose();
      assert.equal((await within(invalidated, 20_000, "hub a disposes the key"))[0].key, "lost.first");
    } finally {
      await takeAgain();
    }
    // The watch never had a pointer to the key disposed under it: it is told the key is gone.
    const r = await within(watched, 20_000, "the watch's answer");
    assert.ok("err" in r, "no pointer was handed out before the hold was in the cluster");
    assert.ok(isEzipcError(r.err, "EZIPC_KEY_DISPOSED"), String(r.err));
  });

  it("a key created for a client that left before its answer is held by nobody: it is disposed after the grace", async () => {
    const h = await Hub.listen({
      urls: ["tcp://127.0.0.1:0"],
      name: "left",
      reconnectWindowMs: 0,
      disposeGraceMs: 300,
      cluster: { servers: [nats.urls[1]!], timeoutMs: 30_000 },
    });
    more.push(h);
    const before = h.clusterCounters()!.disposed;
    const { conn } = await rawClient(h.urls[0]!, "leaves");
    // The allocate is sent and the connection closed at once: the create in the cluster ends after it.
    conn.send(
      proto.encode("allocate", {
        rid: 1,
        key: "lost.left",
        kind: 0,
        size: 4,
        policy: 2,
        persistent: false,
        ifExists: 0,
      }),
    );
    void conn.close();
    await until(() => h.peek("lost.left") !== undefined, "the key created", 20_000);
    await until(
      () => h.clusterCounters()!.disposed > before,
      "the key nobody holds disposed after its grace",
      20_000,
    );
    // The deletion reaches this hub's copy through its watch, which may come after the delete's answer.
    await until(() => h.peek("lost.left") === undefined, "the hub's copy dropped", 10_000);
  });
});
