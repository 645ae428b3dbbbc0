/**
 * A hub's request to JetStream for a topic's stream that gets no answer (its NATS node froze, then died with
 * the request) is made again within the cluster timeout, so the publish that made the topic succeeds. With
 * the whole timeout for one attempt, that publish failed ("making the stream of topic …: TIMEOUT").
 */
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { Hub } from "../../src/hub/hub.js";
import { connect, type HubClient } from "../../src/index.js";
import { until, within } from "../helpers.js";
import { type NatsCluster, natsCluster } from "./nats-cluster.js";

describe("a cluster request lost with its NATS node", () => {
  let nats: NatsCluster;
  let hub: Hub | undefined;
  let client: HubClient | undefined;

  before(async () => {
    nats = await natsCluster(3);
  });

  after(async () => {
    await client?.close();
    await hub?.close();
    await nats?.close();
  });

  it("is made again on another node within the cluster timeout: the publish making the topic succeeds", async () => {
    // Node 0 is the hub's only seed, so its requests go there; it learns the others from the cluster.
    // One replica: the topic's stream can be placed while node 0 is down.
    hub = await Hub.listen({
      urls: ["tcp://127.0.0.1:0"],
      name: "lost",
      cluster: { servers: [nats.urls[0]!], replicas: 1, timeoutMs: 15_000 },
    });
    client = await connect(hub.urls[0]!, { name: "p", requestTimeoutMs: 30_000 });
    assert.equal((await client.publish("lost.warm", "the hub's cluster link works")).seq, 1n);

    nats.freeze(0);
    const retried = hub.clusterCounters()!.topicRequestsRetried;
    const published = client.publish("lost.topic", "made while the hub's node hangs");
    // The first request for the new topic's stream went to the frozen node and gets no answer: it is made
    // again after its own wait (2 s), not after the whole 15 s.
    await until(
      () => hub!.clusterCounters()!.topicRequestsRetried > retried,
      "the unanswered request is made again",
      8_000,
    );
    // The node dies with what it was sent; the hub reconnects to another node, where the next attempt is answered.
    await nats.stop(0, true);
    const r = await within(published, 14_000, "the publish that makes the topic");
    assert.equal(r.seq, 1n);
    assert.ok(hub.clusterCounters()!.topicRequestsRetried > retried);
  });
});
