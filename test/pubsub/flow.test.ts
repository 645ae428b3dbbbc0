/**
 * Publisher flow control (src/pubsub/publisher-holds.ts): with the defaults, a fire-and-forget publisher
 * cannot make the hub evict what a `next` subscriber has not been sent. Publisher and subscriber are child
 * processes on loopback; the topic's history is made small so that it fills within the test.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { connect, type TopicMessage } from "../../src/index.js";
import { until, within } from "../helpers.js";
import { ChildClient } from "../hub/child-client.js";
import { withHub } from "../hub/hubs.js";
import { proto, rawClient } from "../hub/raw-client.js";

const N = 20_000;
/** 20 MB in all: the hub cannot just keep it (a hold lets a topic grow to twice its bound plus 1 MiB). */
const SIZE = 1024;
/** About 30 of these messages fill it. */
const SMALL_HISTORY = 32 * 1024;

/**
 * A slow default subscriber and a fire-and-forget publisher of N messages in two processes. `gated`: the
 * subscriber reads nothing after its first message until the publisher is done.
 */
async function slowSubscriberRun(
  url: string,
  gated = false,
): Promise<{ count: number; inOrder: boolean; lost: number }> {
  const sub = await ChildClient.start(url, "sub");
  const pub = await ChildClient.start(url, "pub");
  try {
    const result = sub.cmd<{ count: number; inOrder: boolean; lost: number }>(
      "subscribeAll",
      gated ? { key: "flow.t", gated } : { key: "flow.t", slow: true },
      60_000,
    );
    await sub.event((r) => r.event === "subscribed", 10_000, "subscribed");
    await pub.cmd("publishMany", { key: "flow.t", n: N, size: SIZE }, 60_000);
    if (gated) await sub.cmd("open", {}, 10_000);
    return await result;
  } finally {
    await sub.kill();
    await pub.kill();
  }
}

describe("publisher flow control", () => {
  it("a slow default subscriber gets every message of a fire-and-forget publisher: the publisher waits", async () => {
    await withHub({ topicMaxBytes: SMALL_HISTORY }, async (hub, url) => {
      const r = await slowSubscriberRun(url);
      assert.deepEqual(r, { count: N, inOrder: true, lost: 0 });
      const stats = hub.stats();
      assert.ok(stats.publisherHolds > 0, "the publisher was told to wait");
      assert.equal(stats.gaps, 0);
      assert.equal(stats.holdsGivenUp, 0);
    });
  });

  it("without it (holdPublishersMs: 0) a subscriber that reads nothing while the publisher runs loses messages in gaps", async () => {
    // The subscriber stops after its first message until the publisher is done: whatever the machine's
    // speed, the 20,000 messages cannot wait in its window and the history. (With flow control, the publisher
    // would wait for it instead: the first test.)
    await withHub({ topicMaxBytes: SMALL_HISTORY, holdPublishersMs: 0 }, async (hub, url) => {
      const r = await slowSubscriberRun(url, true);
      assert.ok(r.lost > 0, `lost ${r.lost}`);
      assert.equal(r.count + r.lost, N, "every message was either delivered or reported lost");
      assert.equal(hub.stats().publisherHolds, 0);
    });
  });

  it("a subscriber that stops reading holds publishers for holdPublishersMs at most, then is left behind with a gap", async () => {
    await withHub({ topicMaxBytes: SMALL_HISTORY, holdPublishersMs: 300 }, async (hub, url) => {
      const stuck = await connect(url, { name: "stuck" });
      let unblock: () => void = () => {};
      const blocked = new Promise<void>((r) => {
        unblock = r;
      });
      const gaps: bigint[] = [];
      let first = true;
      await stuck.subscribe(
        "flow.stuck",
        { prefetch: 1, onGap: (g) => gaps.push(g.last - g.first + 1n) },
        async (_m: TopicMessage) => {
          if (first) {
            first = false;
            await blocked; // the handler stops reading after its first message
          }
        },
      );
      const pub = await ChildClient.start(url, "pub");
      try {
        // Completes although the subscriber never reads on: the hold is given up (after 300 ms, or when the
        // topic reaches twice its bound plus 1 MiB).
        await pub.cmd("publishMany", { key: "flow.stuck", n: N, size: SIZE }, 30_000);
        await until(() => hub.stats().holdsGivenUp >= 1, "a hold given up", 10_000);
        unblock();
        await until(() => gaps.length > 0, "the stuck subscriber hears of its gap", 10_000);
        assert.ok(gaps[0]! > 0n);
      } finally {
        await pub.kill();
        await stuck.close();
      }
    });
  });

  it("a client that publishes to a topic it reads slowly, on one connection, does not stall itself", async () => {
    // A stall would last holdPublishersMs (60 s here): the test's 20 s bound would fail first.
    await withHub({ topicMaxBytes: SMALL_HISTORY, holdPublishersMs: 60_000 }, async (hub, url) => {
      const client = await connect(url, { name: "both" });
      try {
        let count = 0;
        let done: () => void = () => {};
        const all = new Promise<void>((r) => {
          done = r;
        });
        let lost = 0n;
        await client.subscribe("flow.self", { onGap: (g) => (lost += g.last - g.first + 1n) }, async () => {
          await new Promise((r) => setImmediate(r));
          if (++count === N) done();
        });
        for (let i = 0; i < N; i++)
          if (!client.publishAndForget("flow.self", String(i).padEnd(SIZE))) await client.drain();
        await within(all, 20_000, "every message read back");
        assert.equal(lost, 0n);
        assert.ok(hub.stats().publisherHolds > 0, "the client was told to wait");
      } finally {
        await client.close();
      }
    });
  });

  it("a publisher without the feature is no longer read from once past the slack: nothing is lost", async () => {
    await withHub({ topicMaxBytes: SMALL_HISTORY }, async (hub, url) => {
      const client = await connect(url, { name: "sub" });
      const { conn } = await rawClient(url, "no-flow"); // its hello names no features
      try {
        const total = 40_000; // 40 MB: past twice the bound plus the 16 MiB slack
        // The subscriber reads nothing until the hub has stopped reading the publisher, then everything.
        let open: () => void = () => {};
        const gate = new Promise<void>((r) => {
          open = r;
        });
        let count = 0;
        let inOrder = true;
        let lost = 0n;
        let done: () => void = () => {};
        const all = new Promise<void>((r) => {
          done = r;
        });
        await client.subscribe("flow.raw", { onGap: (g) => (lost += g.last - g.first + 1n) }, async (m) => {
          await gate;
          if (m.text().trimEnd() !== String(count)) inOrder = false;
          if (++count === total) done();
        });
        const headers: { key: string; value: string }[] = [];
        const publishing = (async () => {
          for (let i = 0; i < total; i += 50) {
            const records = Array.from({ length: 50 }, (_, k) => ({
              headers,
              payload: Buffer.from(String(i + k).padEnd(SIZE)),
            }));
            if (!conn.send(proto.encode("publish", { rid: 0, topic: "flow.raw", records })))
              await conn.drain();
          }
        })();
        await until(() => hub.stats().publishersPaused > 0, "the hub to stop reading the publisher", 20_000);
        open();
        await within(publishing, 30_000, "the publisher to send everything");
        await within(all, 30_000, "every message read");
        assert.deepEqual({ count, inOrder, lost }, { count: total, inOrder: true, lost: 0n });
        const stats = hub.stats();
        assert.equal(stats.holdsGivenUp, 0);
        assert.equal(stats.publisherHolds, 0, "a client without the feature is never sent publishFlow");
      } finally {
        conn.destroy();
        await client.close();
      }
    });
  });

  it("a subscriber's window shrinks to prefetchBytes once it has seen the messages' size", async () => {
    await withHub({}, async (_hub, url) => {
      const client = await connect(url, { name: "big" });
      try {
        const sub = await client.subscribe("flow.big", { prefetchBytes: 1024 * 1024 });
        const big = Buffer.alloc(64 * 1024, 1);
        for (let i = 0; i < 300; i++) if (!client.publishAndForget("flow.big", big)) await client.drain();
        let n = 0;
        for await (const m of sub) {
          assert.equal(m.payload.length, big.length);
          // Past the first window (256, sizes unknown), the hub may send at most 1 MiB / 64 KiB ahead.
          if (++n > 256) assert.ok(sub.outstanding <= 16, `outstanding ${sub.outstanding} after ${n}`);
          if (n === 300) break;
        }
      } finally {
        await client.close();
      }
    });
  });
});
