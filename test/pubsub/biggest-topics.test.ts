// The heap behind the hub's total history bound, against a plain maximum: any order of growth, shrinking,
// new topics, sleeping and waking, and the biggest it gives is the biggest there is.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import fc from "fast-check";
import { BiggestTopics } from "../../src/pubsub/biggest-topics.js";

type Op = { kind: "set"; i: number; bytes: number } | { kind: "look" } | { kind: "sleep" };
const op: fc.Arbitrary<Op> = fc.oneof(
  {
    arbitrary: fc.record({ kind: fc.constant("set" as const), i: fc.nat(30), bytes: fc.nat(1000) }),
    weight: 6,
  },
  { arbitrary: fc.constant({ kind: "look" as const }), weight: 3 },
  { arbitrary: fc.constant({ kind: "sleep" as const }), weight: 1 },
);

describe("BiggestTopics", () => {
  it("gives the topic with the most bytes, whatever changed since it was built", () => {
    fc.assert(
      fc.property(fc.array(op, { minLength: 20, maxLength: 300 }), (ops) => {
        const topics: { bytes: number }[] = [];
        const heap = new BiggestTopics<{ bytes: number }>();
        for (const o of ops) {
          if (o.kind === "set") {
            let t = topics[o.i];
            if (!t) {
              t = { bytes: 0 };
              topics[o.i] = t;
            }
            t.bytes = o.bytes;
            heap.changed(t);
          } else if (o.kind === "sleep") heap.sleep();
          else {
            const all = topics.filter((t) => t !== undefined);
            const got = heap.biggest(all);
            if (all.length === 0) assert.equal(got, undefined);
            else assert.equal(got!.bytes, Math.max(...all.map((t) => t.bytes)));
          }
        }
      }),
      { numRuns: 500, seed: 3 },
    );
  });
});
