/**
 * History entries and the memory they hold (src/pubsub/topics.ts): an entry keeps the bytes it was given
 * (a view into a socket read, or the pieces of a batch split across reads) only while that memory stays
 * within twice (one view) or three times (pieces) its bytes, and counts pieces as at least half the memory
 * they hold; part of an entry kept in pieces is sent as views of its pieces, not joined.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { encodeMessageHead } from "../../src/pubsub/fast-frames.js";
import { encodeHeaders, encodeRecord } from "../../src/pubsub/records.js";
import {
  entry,
  MESSAGE_OVERHEAD_BYTES,
  offsetsOf,
  recordsOf,
  recordsSlice,
  Topic,
} from "../../src/pubsub/topics.js";

/** `n` records of `size`-byte payloads, encoded back to back. */
function records(n: number, size: number): Buffer {
  return Buffer.concat(
    Array.from({ length: n }, (_, i) => encodeRecord(encodeHeaders([]), Buffer.alloc(size, i))),
  );
}

/** `bytes` cut at `cuts`, each piece a view into a buffer of `room` bytes of its own (a socket read). */
function inReads(bytes: Buffer, cuts: number[], room = 0): Buffer[] {
  return [0, ...cuts].map((c, i) => {
    const part = bytes.subarray(c, i < cuts.length ? cuts[i] : bytes.length);
    const read = Buffer.allocUnsafeSlow(Math.max(room, part.length));
    part.copy(read);
    return read.subarray(0, part.length);
  });
}

const head = encodeMessageHead(Buffer.from("t"), 1, 0, Buffer.from("p#1"), 20);

describe("history entries", () => {
  const recs = records(20, 1000);
  const R = recs.length / 20; // bytes per record

  it("keep a view into a read at most twice their size, else copy it", () => {
    const [kept] = inReads(recs, [], recs.length * 2);
    assert.equal(entry(head, kept!, 20, 0).records.buffer, kept!.buffer);
    const [copied] = inReads(recs, [], recs.length * 2 + 1);
    const e = entry(head, copied!, 20, 0);
    assert.notEqual(e.records.buffer, copied!.buffer);
    assert.ok(e.records.equals(recs));
    assert.equal(e.bytes, head.length + recs.length + MESSAGE_OVERHEAD_BYTES);
  });

  it("keep pieces holding up to three times their size, counted as at least half of that", () => {
    const L = recs.length;
    // Two reads of 0.75 L each: 1.5× held, counted as the records.
    const pieces = inReads(recs, [7000], Math.ceil(0.75 * L));
    const e = entry(head, pieces[0]!, 20, 0, pieces.slice(1));
    assert.equal(e.records, pieces[0]);
    assert.deepEqual(e.more, pieces.slice(1));
    assert.equal(e.bytes, head.length + L + MESSAGE_OVERHEAD_BYTES);
    // Two reads of 1.5 L each: 3× held — kept, counted as half of what they hold.
    const room = Math.floor(1.5 * L);
    const big = inReads(recs, [7000], room);
    const b = entry(head, big[0]!, 20, 0, big.slice(1));
    assert.notEqual(b.more, null);
    assert.equal(b.bytes, head.length + room + MESSAGE_OVERHEAD_BYTES);
    // A little more than 3×: joined into one buffer of their own.
    const over = inReads(recs, [7000], room + 1);
    const j = entry(head, over[0]!, 20, 0, over.slice(1));
    assert.equal(j.more, null);
    assert.ok(j.records.equals(recs));
    assert.ok(j.records.buffer !== over[0]!.buffer && j.records.buffer !== over[1]!.buffer);
    assert.equal(j.bytes, head.length + L + MESSAGE_OVERHEAD_BYTES);
  });

  it("kept in pieces, give their record offsets and parts as views of the pieces, not joined", () => {
    // Cuts inside headers, lengths and payloads, at record boundaries, and a one-byte piece.
    for (const cuts of [
      [1500, 1501, 9000],
      [R, 2 * R],
      [1, R + 1, 5 * R - 1],
      [3 * R + 2, 3 * R + 3],
    ]) {
      const pieces = inReads(recs, cuts);
      const e = entry(head, pieces[0]!, 20, 0, pieces.slice(1));
      assert.equal(e.more?.length, cuts.length);
      assert.deepEqual(
        [...offsetsOf(e)],
        Array.from({ length: 21 }, (_, i) => i * R),
      );
      assert.notEqual(e.more, null, "not joined");
      for (const [k, n] of [
        [0, 1],
        [0, 20],
        [1, 3],
        [2, 17],
        [19, 1],
        [5, 10],
      ] as const) {
        const part = recordsSlice(e, k!, n!);
        const views = [part.first, ...(part.rest ?? [])];
        assert.ok(
          Buffer.concat(views).equals(recs.subarray(k! * R, (k! + n!) * R)),
          `records ${k}..${k! + n!} at cuts ${cuts}`,
        );
        for (const v of views) {
          assert.ok(v.length > 0 || views.length === 1, "no empty views");
          assert.ok(
            pieces.some((p) => p.buffer === v.buffer),
            "a view of a piece",
          );
        }
      }
      assert.notEqual(e.more, null, "still not joined");
      assert.ok(recordsOf(e).equals(recs), "joined on demand");
    }
  });

  it("trim a count-bounded topic through entries kept in pieces, with the bytes they counted", () => {
    const t = new Topic("t", { maxBytes: 1 << 30, maxCount: 25 });
    const pieces = inReads(recs, [5000]);
    for (let k = 0; k < 2; k++) {
      const e = entry(head, pieces[0]!, 20, 0, pieces.slice(1));
      t.append(e);
    }
    assert.equal(t.count, 40);
    t.enforce();
    assert.equal(t.count, 25);
    const first = t.locate(t.firstIndex)!;
    assert.equal(first.count, 5);
    assert.ok(recordsOf(first).equals(recs.subarray(15 * R)));
    // The bytes left are exactly those of the two entries now held.
    assert.equal(t.bytes, first.bytes + t.locate(t.lastIndex)!.bytes);
  });
});
