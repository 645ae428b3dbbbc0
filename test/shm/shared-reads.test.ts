import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { PACKET_HEAD } from "../../src/shm/layout.js";
import { RingMessage } from "../../src/shm/ring.js";
import { TopicReads } from "../../src/shm-client/shared-reads.js";

/** A run of `n` 8 B messages from `seq`, as a read of the ring from offset 0 would give it. */
function run(seq: number, n: number, takers: number) {
  const data = Buffer.alloc(n * (PACKET_HEAD + 8));
  const messages = Array.from({ length: n }, (_, i) => {
    const at = i * (PACKET_HEAD + 8) + PACKET_HEAD;
    return new RingMessage(seq + i, data.subarray(at, at + 8), 0);
  });
  return { seq, messages, data, ringStart: 0, nextSeq: seq + n, nextOffset: data.length, takers };
}

/** The seqs of what a take handed over (null: nothing kept there). */
const seqs = (ms: readonly RingMessage[] | null) => ms?.map((m) => m.seqNumber) ?? null;

describe("shared reads", () => {
  it("a run every other follower has taken is dropped at once, not kept until the byte bound", () => {
    const reads = new TopicReads();
    reads.users = 3;
    const r = run(1, 4, 2);
    reads.keep(r);
    assert.ok(reads.keptBytes > 0);
    const a = { seq: 1, offset: 0 };
    const first = reads.take(a, 10, []);
    assert.equal(first, r.messages, "a run taken whole is handed over as it is (no copy of its array)");
    assert.ok(reads.keptBytes > 0, "kept for the second taker");
    const b = { seq: 1, offset: 0 };
    assert.deepEqual(seqs(reads.take(b, 10, [])), [1, 2, 3, 4]);
    assert.equal(reads.keptBytes, 0, "dropped after the last taker");
    assert.deepEqual(b, { seq: 5, offset: r.nextOffset });
    assert.equal(reads.take({ seq: 1, offset: 0 }, 10, []), null, "nothing left to take");
  });

  it("a run no other follower wants is not kept", () => {
    const reads = new TopicReads();
    reads.users = 1;
    reads.keep(run(1, 4, 0));
    assert.equal(reads.keptBytes, 0);
    assert.equal(reads.take({ seq: 1, offset: 0 }, 10, []), null);
  });

  it("followers that take part of a run each leave the rest for the next, and the last drops both", () => {
    const reads = new TopicReads();
    reads.users = 3;
    reads.keep(run(1, 4, 2));
    const a = { seq: 1, offset: 0 };
    const b = { seq: 1, offset: 0 };
    const gotA: RingMessage[] = [];
    const gotB: RingMessage[] = [];
    const outA: RingMessage[] = [];
    const partA = reads.take(a, 2, outA);
    assert.equal(partA, outA, "a part is taken into the follower's own array");
    gotA.push(...partA!);
    assert.equal(a.seq, 3);
    assert.equal(a.offset, 2 * (PACKET_HEAD + 8), "the cursor is at the rest's packet");
    gotB.push(...reads.take(b, 2, [])!);
    gotA.push(...reads.take(a, 2, [])!); // the rest, kept by the first partial take
    gotB.push(...reads.take(b, 2, [])!);
    assert.equal(reads.keptBytes, 0, "the run and its rest are dropped");
    assert.deepEqual(
      gotA.map((m) => m.seqNumber),
      [1, 2, 3, 4],
    );
    assert.deepEqual(gotA, gotB, "the same message objects");
    for (let i = 0; i < 4; i++) assert.equal(gotA[i], gotB[i]);
  });
});
