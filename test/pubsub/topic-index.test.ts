// The token indexes against the one definition of matching (topicMatcher), on random topics and patterns:
// the same results, in the order added; removed patterns leave nothing behind.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import fc from "fast-check";
import { topicMatcher } from "../../src/protocol/names.js";
import { PatternIndex, TopicIndex } from "../../src/pubsub/topic-index.js";

const token = fc.constantFrom("a", "b", "c", "$sys", "$hub");
const topic = fc.array(token, { minLength: 1, maxLength: 4 }).map((ts) => ts.join("."));
const pattern = fc
  .tuple(fc.array(fc.constantFrom("a", "b", "$sys", "*"), { minLength: 0, maxLength: 3 }), fc.boolean())
  .filter(([ts, more]) => ts.length > 0 || more)
  .map(([ts, more]) => [...ts, ...(more ? [">"] : [])].join("."));

describe("topic indexes", () => {
  it("TopicIndex finds exactly the topics topicMatcher matches, in the order they were added", () => {
    fc.assert(
      fc.property(
        fc.uniqueArray(topic, { maxLength: 40 }),
        fc.array(pattern, { maxLength: 20 }),
        (topics, patterns) => {
          const index = new TopicIndex<string>();
          for (const t of topics) index.add(t, t);
          for (const p of patterns) {
            const { match } = topicMatcher(p);
            assert.deepEqual(index.matching(p), topics.filter(match), p);
          }
        },
      ),
      { numRuns: 300, seed: 7 },
    );
  });

  it("PatternIndex finds exactly the live patterns a topic matches; removing every pattern leaves no node", () => {
    fc.assert(
      fc.property(
        fc.array(fc.tuple(pattern, fc.boolean()), { maxLength: 30 }),
        fc.array(topic, { maxLength: 20 }),
        (ops, topics) => {
          const index = new PatternIndex<number>();
          const live: { id: number; p: string }[] = [];
          ops.forEach(([p, remove], id) => {
            index.add(p, id);
            live.push({ id, p });
            if (remove && live.length > 1) {
              const gone = live.splice(id % live.length, 1)[0]!;
              index.remove(gone.p, gone.id);
            }
          });
          for (const t of topics) {
            const want = live.filter(({ p }) => topicMatcher(p).match(t)).map(({ id }) => id);
            assert.deepEqual(index.matching(t), want, t);
          }
          for (const { id, p } of live) index.remove(p, id);
          const root = (index as unknown as { root: { children: Map<string, unknown> | null } }).root;
          assert.equal(root.children?.size ?? 0, 0, "no node left");
        },
      ),
      { numRuns: 300, seed: 11 },
    );
  });
});
