/**
 * A subscription's handler gets every message once, in order, whatever the batches and the handler do:
 * a batch handed over straight to an idle handler (no queue), a handler that returns a promise mid-batch
 * (the rest waits behind it, later batches too), a handler that throws (the next message still comes), one
 * that causes a delivery while it runs (queued, delivered after the batch), one that unsubscribes. Credit
 * is asked back as the window frees. The subscription is driven directly: its host records the credit.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { Subscription, type SubscriptionHost, type TopicMessage } from "../../src/pubsub/subscription.js";

function message(seq: number): TopicMessage {
  return {
    topic: "t",
    seq: BigInt(seq),
    time: 0,
    publisher: "p#1",
    headers: {},
    payload: new Uint8Array(8),
    text: () => "",
    json: <T>() => null as T,
  };
}
const batch = (from: number, to: number) =>
  Array.from({ length: to - from + 1 }, (_, i) => message(from + i));

function subscription(handler: (m: TopicMessage) => unknown, prefetch = 16) {
  const credit: number[] = [];
  let unsubscribed = 0;
  const host: SubscriptionHost = {
    credit: (_s, n) => credit.push(n),
    unsubscribe: () => unsubscribed++,
  };
  const sub = new Subscription(1, "t", "oldest", "next", prefetch, host, handler);
  sub.resetCredit();
  return { sub, credit, unsubscribed: () => unsubscribed };
}

describe("subscription handler", () => {
  it("gets a batch in order, straight from the batch, and asks credit back once half the window is free", () => {
    const seen: number[] = [];
    const { sub, credit } = subscription((m) => seen.push(Number(m.seq)));
    sub.deliver(batch(1, 8));
    sub.deliver(batch(9, 16));
    assert.deepEqual(
      seen,
      batch(1, 16).map((m) => Number(m.seq)),
    );
    assert.ok(credit.length > 0 && credit.every((n) => n > 0), `credit asked: ${credit}`);
    assert.ok(sub.outstanding <= 16, "never more outstanding than the window");
  });

  it("a handler's promise holds the rest of its batch and later batches until it settles, in order", async () => {
    const seen: number[] = [];
    let release!: () => void;
    const { sub } = subscription((m) => {
      seen.push(Number(m.seq));
      if (m.seq === 3n) return new Promise<void>((r) => (release = r));
      if (m.seq === 7n) return Promise.reject(new Error("a rejected handler does not stop the subscription"));
      return undefined;
    });
    sub.deliver(batch(1, 5));
    sub.deliver(batch(6, 9));
    assert.deepEqual(seen, [1, 2, 3], "nothing after 3 while its promise is pending");
    release();
    await new Promise((r) => setImmediate(r));
    assert.deepEqual(seen, [1, 2, 3, 4, 5, 6, 7, 8, 9]);
  });

  it("a throwing handler still gets the next message", () => {
    const seen: number[] = [];
    const { sub } = subscription((m) => {
      seen.push(Number(m.seq));
      if (m.seq % 2n === 0n) throw new Error("boom");
    });
    sub.deliver(batch(1, 6));
    assert.deepEqual(seen, [1, 2, 3, 4, 5, 6]);
  });

  it("a delivery while the handler runs waits for the batch in hand, then comes, in order", () => {
    const seen: number[] = [];
    let sub!: Subscription;
    ({ sub } = subscription((m) => {
      seen.push(Number(m.seq));
      if (m.seq === 2n) sub.deliver(batch(6, 8)); // e.g. the handler published to its own topic
    }));
    sub.deliver(batch(1, 5));
    assert.deepEqual(seen, [1, 2, 3, 4, 5, 6, 7, 8]);
  });

  it("unsubscribing in the handler stops the deliveries", () => {
    const seen: number[] = [];
    let sub!: Subscription;
    const host = subscription((m) => {
      seen.push(Number(m.seq));
      if (m.seq === 3n) sub.unsubscribe();
    });
    sub = host.sub;
    sub.deliver(batch(1, 6));
    sub.deliver(batch(7, 8));
    assert.deepEqual(seen, [1, 2, 3]);
    assert.equal(host.unsubscribed(), 1);
  });
});
