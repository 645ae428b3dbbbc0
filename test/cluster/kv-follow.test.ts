/**
 * Following a bucket (src/cluster/kv-follow.ts) against a real NATS node: the current entries, then every
 * change, each revision once and in order; and a watch that hears nothing while the bucket moves on (a
 * stall: here, a watch whose filter matches no key) is caught by the stall check, which reads the missing
 * revisions from the stream — only the follower's keys — and watches again.
 */
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { type JetStreamManager, type KV, type NatsConnection, connect as natsConnect } from "nats";
import { BucketFollower, type FollowedEntry } from "../../src/cluster/kv-follow.js";
import { until } from "../helpers.js";
import { type NatsCluster, natsCluster } from "./nats-cluster.js";

describe("following a key-value bucket", () => {
  let nats: NatsCluster;
  let nc: NatsConnection;
  let kv: KV;
  let jsm: JetStreamManager;
  const followers: BucketFollower[] = [];

  before(async () => {
    nats = await natsCluster(1);
    nc = await natsConnect({ servers: new URL(nats.urls[0]!).host });
    jsm = await nc.jetstreamManager();
    kv = await nc.jetstream().views.kv("follow", { history: 1 });
  });

  after(async () => {
    for (const f of followers) f.stop();
    await nc?.close();
    await nats?.close();
  });

  const follower = (key: string | undefined, owns: (k: string) => boolean, got: FollowedEntry[]) => {
    const f = new BucketFollower({
      kv,
      jsm,
      streamName: "KV_follow",
      ...(key ? { key } : {}),
      owns,
      newest: async () => (await jsm.streams.info("KV_follow")).state.last_seq,
      onEntry: (e) => got.push(e),
      what: "test",
    });
    followers.push(f);
    return f;
  };

  it("reports the current entries, then each change once, in order", async () => {
    await kv.put("a", new TextEncoder().encode("1"));
    await kv.put("b", new TextEncoder().encode("2"));
    const got: FollowedEntry[] = [];
    await follower(undefined, () => true, got).start();
    assert.deepEqual(
      got.map((e) => e.key),
      ["a", "b"],
    );
    const r = await kv.put("a", new TextEncoder().encode("3"));
    await kv.delete("b");
    await until(() => got.length === 4, "the put and the delete", 10_000);
    assert.equal(got[2]!.revision, r);
    assert.equal(got[3]!.operation, "DEL");
    const revisions = got.map((e) => e.revision);
    assert.deepEqual(
      revisions,
      [...revisions].sort((x, y) => x - y),
    );
  });

  it("a watch that hears nothing while the bucket moves on is caught: the follower's revisions read from the stream", async () => {
    const got: FollowedEntry[] = [];
    // The watch's filter matches no key: it stays silent, as a stalled consumer does.
    const f = follower("nothing.*", (k) => k.startsWith("mine."), got);
    await f.start();
    const mine = [
      await kv.put("mine.x", new TextEncoder().encode("x")),
      await kv.put("other", new TextEncoder().encode("o")),
      await kv.put("mine.y", new TextEncoder().encode("y")),
    ];
    await until(() => got.length === 2, "the stalled watch's revisions read from the stream", 10_000);
    assert.ok(f.stalls >= 1, "counted as a stall");
    assert.deepEqual(
      got.map((e) => [e.key, e.revision]),
      [
        ["mine.x", mine[0]],
        ["mine.y", mine[2]],
      ],
    );
    assert.equal(new TextDecoder().decode(got[1]!.value), "y");
  });
});
