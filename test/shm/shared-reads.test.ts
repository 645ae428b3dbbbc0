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
    reads.keep(run(1, 4, 0));
    assert.equal(reads.keptBytes, 0);
    assert.equal(reads.take({ seq: 1, offset: 0 }, 10, []), null);
  });

  it("followers that take part of a run each leave the rest for the next, and the last drops both", () => {
    const reads = new TopicReads();
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

  it("a run's takers are the other followers at its seq or a little behind it, not those past it or far behind", () => {
    const reads = new TopicReads();
    const me = { seq: 10_000 };
    const level = { seq: 10_000 };
    const justBehind = { seq: 9_000 };
    const ahead = { seq: 10_001 };
    const farBehind = { seq: 1 };
    for (const f of [me, level, justBehind, ahead, farBehind]) reads.add(f);
    assert.equal(reads.users, 5);
    assert.equal(reads.takersAt(10_000, me), 2, "the one level with it and the one just behind");
    reads.remove(level);
    reads.remove(justBehind);
    assert.equal(reads.takersAt(10_000, me), 0, "one past it and one far behind: nobody takes what it reads");
    assert.equal(reads.takersAt(1, me), 1, "reading where the far one is: it takes");
    assert.ok(reads.hasNeighbour(me), "the one just past it is close (it keeps runs that this one takes)");
    reads.remove(ahead);
    assert.ok(!reads.hasNeighbour(me), "only one far behind: it reads in long turns");
  });
});
