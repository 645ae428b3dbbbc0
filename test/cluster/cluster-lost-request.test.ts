/**
 * A hub's request to JetStream for a topic's stream that gets no answer (its NATS node froze) is made again
 * after a short wait, within the cluster timeout, and the publish that makes the topic succeeds. With the
 * whole timeout for one attempt, a request lost with its node (or sent during an election) used the bound
 * up, and the publish failed ("making the stream of topic …: TIMEOUT").
 *
 * The node is let go on rather than killed: killing it can cost a leader election, which on two loaded cores
 * took longer than any bound this test could wait for. What it checks is the retry.
 */
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { Hub } from "../../src/hub/hub.js";
import { connect, type HubClient } from "../../src/index.js";
import { until, within } from "../helpers.js";
import { type NatsCluster, natsCluster } from "./nats-cluster.js";

describe("a cluster request that gets no answer", () => {
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
});
