// A budget of incomplete frames shared by decoders, byte by byte: a frame that comes whole costs nothing, a
// split one holds its length until whole, and over the bound the holders of larger frames are cut first.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { type EzipcError, isEzipcError } from "../../src/errors.js";
import { FrameBudget } from "../../src/transport/frame-budget.js";
import { FrameDecoder } from "../../src/transport/frame-decoder.js";
import { wireFrames } from "../helpers.js";

function header(length: number): Buffer {
  const h = Buffer.alloc(4);
  h.writeUInt32BE(length);
  return h;
}

/** A decoder on `budget` that records its frames and whether the budget cut it. */
function decoder(budget: FrameBudget) {
  const frames: Buffer[] = [];
  const cut: EzipcError[] = [];
  const d = new FrameDecoder(1_000, undefined, budget, (e) => cut.push(e));
  return { d, frames, cut, push: (b: Buffer) => d.push(b, (p) => frames.push(Buffer.from(p))) };
}

describe("FrameBudget", () => {
  it("whole frames cost nothing; a split frame holds its length until its last byte", () => {
    const budget = new FrameBudget(100);
    const a = decoder(budget);
    a.push(wireFrames([Buffer.alloc(90, 1), Buffer.alloc(90, 2)])); // whole, in one chunk
    assert.equal(budget.heldBytes, 0);
    const wire = wireFrames([Buffer.alloc(80, 3)]);
    for (let i = 0; i < wire.length - 1; i++) {
      a.push(wire.subarray(i, i + 1));
      assert.equal(budget.heldBytes, i >= 3 ? 80 : 0, `after byte ${i}`);
    }
    a.push(wire.subarray(wire.length - 1));
    assert.equal(budget.heldBytes, 0);
    assert.equal(a.frames.length, 3);
  });

  it("over the bound, the decoder holding the largest frame is cut, and the smaller frame goes on", () => {
    const budget = new FrameBudget(100);
    const big = decoder(budget);
    const small = decoder(budget);
    big.push(Buffer.concat([header(80), Buffer.alloc(10)]));
    assert.equal(budget.heldBytes, 80);
    small.push(Buffer.concat([header(30), Buffer.alloc(5)]));
    assert.equal(big.cut.length, 1, "the larger holder was cut");
    assert.ok(isEzipcError(big.cut[0], "EZIPC_FRAME_TOO_LARGE"));
    assert.match(big.cut[0]!.message, /incomplete frame of 80 bytes/);
    assert.throws(
      () => big.push(Buffer.alloc(1)),
      (e) => isEzipcError(e, "EZIPC_FRAME_TOO_LARGE"),
    );
    assert.equal(budget.heldBytes, 30);
    small.push(Buffer.alloc(25));
    assert.equal(small.frames.length, 1);
    assert.equal(budget.heldBytes, 0);
    assert.equal(budget.evictions, 1);
  });

  it("a frame that does not fit once every larger one is cut is refused; holders of equal or smaller ones stay", () => {
    const budget = new FrameBudget(100);
    const one = decoder(budget);
    const two = decoder(budget);
    one.push(Buffer.concat([header(50), Buffer.alloc(1)]));
    two.push(Buffer.concat([header(50), Buffer.alloc(1)]));
    const three = decoder(budget);
    assert.throws(
      () => three.push(Buffer.concat([header(50), Buffer.alloc(1)])),
      (e) => isEzipcError(e, "EZIPC_FRAME_TOO_LARGE") && /maxIncompleteFrameBytes/.test((e as Error).message),
    );
    assert.equal(one.cut.length + two.cut.length, 0);
    assert.equal(budget.heldBytes, 100);
    // A decoder released (its connection closed) gives its frame's bytes back.
    one.d.release();
    assert.equal(budget.heldBytes, 50);
    const four = decoder(budget);
    four.push(Buffer.concat([header(50), Buffer.alloc(50)]));
    assert.equal(four.frames.length, 1);
    assert.equal(budget.heldBytes, 50);
  });

  it("a frame split into pieces (the hub's long publishes) holds its length too", () => {
    const budget = new FrameBudget(10_000);
    const d = new FrameDecoder(100_000, 16, budget);
    const pieces: Buffer[][] = [];
    const wire = wireFrames([Buffer.alloc(4_000, 9)]);
    d.push(
      wire.subarray(0, 1_000),
      () => {},
      (p) => pieces.push(p),
    );
    assert.equal(budget.heldBytes, 4_000);
    d.push(
      wire.subarray(1_000),
      () => {},
      (p) => pieces.push(p),
    );
    assert.equal(pieces.length, 1);
    assert.equal(budget.heldBytes, 0);
  });
});
