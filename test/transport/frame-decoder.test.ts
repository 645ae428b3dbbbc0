import assert from "node:assert/strict";
import { describe, it } from "node:test";
import fc from "fast-check";
import { isEzipcError } from "../../src/errors.js";
import { FrameDecoder } from "../../src/transport/frame-decoder.js";
import { FrameWriter } from "../../src/transport/frame-writer.js";
import { seededRandom, wireFrames } from "../helpers.js";

function decodeAll(decoder: FrameDecoder, chunks: Buffer[]): { frames: Buffer[]; controls: number[] } {
  const frames: Buffer[] = [];
  const controls: number[] = [];
  for (const c of chunks) {
    decoder.push(c, (p, control) => {
      if (control === 0) frames.push(Buffer.from(p));
      else controls.push(control);
    });
  }
  return { frames, controls };
}

const sample = [Buffer.from("hello"), Buffer.alloc(0), Buffer.from([0, 1, 2, 3, 255]), Buffer.alloc(300, 7)];

describe("FrameDecoder", () => {
  it("decodes a stream fed one byte at a time", () => {
    const wire = wireFrames(sample);
    const d = new FrameDecoder(1024);
    const chunks = [...wire].map((b) => Buffer.from([b]));
    const { frames } = decodeAll(d, chunks);
    assert.deepEqual(frames, sample);
    assert.equal(d.bufferedBytes, 0);
  });

  it("decodes a stream split at every byte offset", () => {
    const wire = wireFrames(sample);
    for (let k = 0; k <= wire.length; k++) {
      const { frames } = decodeAll(new FrameDecoder(1024), [wire.subarray(0, k), wire.subarray(k)]);
      assert.deepEqual(frames, sample, `split at ${k}`);
    }
  });

  it("delivers frames contiguous in one chunk as views without copying", () => {
    const wire = wireFrames(sample);
    const views: Buffer[] = [];
    new FrameDecoder(1024).push(wire, (p) => views.push(p));
    assert.equal(views.length, 4);
    for (const v of views) if (v.length > 0) assert.equal(v.buffer, wire.buffer);
  });

  it("decodes many frames in one chunk", () => {
    const payloads = Array.from({ length: 5000 }, (_, i) => Buffer.from(`m${i}`));
    const { frames } = decodeAll(new FrameDecoder(64), [wireFrames(payloads)]);
    assert.equal(frames.length, 5000);
    assert.equal(frames[4999]!.toString(), "m4999");
  });

  it("accepts maxFrameBytes and rejects maxFrameBytes + 1 before allocating", () => {
    const ok = decodeAll(new FrameDecoder(100), [wireFrames([Buffer.alloc(100, 1)])]);
    assert.equal(ok.frames[0]!.length, 100);
    const d = new FrameDecoder(100);
    const header = Buffer.alloc(4);
    header.writeUInt32BE(101);
    assert.throws(
      () => d.push(header, () => assert.fail("no frame")),
      (e) => isEzipcError(e, "EZIPC_FRAME_TOO_LARGE"),
    );
    assert.equal(d.bufferedBytes, 0, "nothing buffered for the oversized frame");
    assert.throws(
      () => d.push(Buffer.from([0]), () => {}),
      (e) => isEzipcError(e, "EZIPC_FRAME_TOO_LARGE"),
    );
  });

  it("rejects a header announcing 4 GiB without allocating", () => {
    const d = new FrameDecoder(16 * 1024 * 1024);
    assert.throws(
      () => d.push(Buffer.from([0x7f, 0xff, 0xff, 0xff]), () => {}),
      (e) => isEzipcError(e, "EZIPC_FRAME_TOO_LARGE"),
    );
  });

  it("rejects malformed control frames with EZIPC_PROTOCOL", () => {
    for (const bad of [
      [0x80, 0, 0, 0], // empty control frame
      [0x80, 0, 0x10, 0x00], // 4 KiB control frame
      [0x80, 0, 0, 1, 99], // unknown control type
    ]) {
      assert.throws(
        () => new FrameDecoder(1024).push(Buffer.from(bad), () => {}),
        (e) => isEzipcError(e, "EZIPC_PROTOCOL"),
      );
    }
  });

  it("passes control frames to the sink with their type", () => {
    const { controls, frames } = decodeAll(new FrameDecoder(16), [
      Buffer.from([0x80, 0, 0, 1, 1, 0x80, 0, 0, 1, 2, 0, 0, 0, 1, 42]),
    ]);
    assert.deepEqual(controls, [1, 2]);
    assert.deepEqual(frames, [Buffer.from([42])]);
  });

  it("round-trips FrameWriter output under random chunking (fast-check, seeded)", () => {
    fc.assert(
      fc.property(
        fc.array(fc.uint8Array({ maxLength: 40_000 }), { maxLength: 30 }),
        fc.array(fc.integer({ min: 1, max: 70_000 }), { minLength: 1, maxLength: 20 }),
        (payloads, cuts) => {
          const out: Buffer[] = [];
          const w = new FrameWriter({
            write: (c) => {
              out.push(Buffer.from(c));
              return true;
            },
            cork() {},
            uncork() {},
          });
          for (const p of payloads) w.writeData(p);
          w.flush();
          const wire = Buffer.concat(out);
          const chunks: Buffer[] = [];
          let pos = 0;
          for (let i = 0; pos < wire.length; i++) {
            const n = cuts[i % cuts.length]!;
            chunks.push(wire.subarray(pos, pos + n));
            pos += n;
          }
          const { frames } = decodeAll(new FrameDecoder(64 * 1024), chunks);
          assert.deepEqual(
            frames,
            payloads.map((p) => Buffer.from(p)),
          );
        },
      ),
      { seed: 20261126, numRuns: 200 },
    );
  });

  it("survives random and mutated input: only coded errors, never an allocation over maxFrameBytes", () => {
    const rnd = seededRandom(42);
    const max = 4096;
    const valid = wireFrames(sample);
    let errors = 0;
    for (let run = 0; run < 3000; run++) {
      const input = run % 2 === 0 ? Buffer.from(valid) : Buffer.alloc(1 + Math.floor(rnd() * 200));
      for (let i = 0; i < input.length; i++)
        if (run % 2 === 1 || rnd() < 0.05) input[i] = Math.floor(rnd() * 256);
      const d = new FrameDecoder(max);
      try {
        let pos = 0;
        while (pos < input.length) {
          const n = 1 + Math.floor(rnd() * 16);
          d.push(input.subarray(pos, pos + n), (p) => assert.ok(p.length <= max));
          assert.ok(d.bufferedBytes <= max + 4);
          pos += n;
        }
      } catch (err) {
        assert.ok(
          isEzipcError(err, "EZIPC_FRAME_TOO_LARGE") || isEzipcError(err, "EZIPC_PROTOCOL"),
          String(err),
        );
        errors++;
      }
    }
    assert.ok(errors > 0, "the mutated inputs produced some errors");
  });
});

describe("FrameWriter", () => {
  it("coalesces many small frames into few writes", () => {
    const writes: Buffer[] = [];
    const w = new FrameWriter({
      write: (c) => {
        writes.push(c);
        return true;
      },
      cork() {},
      uncork() {},
    });
    for (let i = 0; i < 10_000; i++) w.writeData(Buffer.alloc(64, i));
    w.flush();
    const total = writes.reduce((n, c) => n + c.length, 0);
    assert.equal(total, 10_000 * 68);
    assert.ok(writes.length <= Math.ceil(total / (64 * 1024)) + 1, `${writes.length} writes`);
  });

  it("writes a large payload as its own chunk without copying it", () => {
    const writes: Buffer[] = [];
    let corks = 0;
    const w = new FrameWriter({
      write: (c) => {
        writes.push(c);
        return true;
      },
      cork: () => corks++,
      uncork() {},
    });
    const big = Buffer.alloc(100_000, 9);
    w.writeData(Buffer.from("small"));
    w.writeData(big);
    assert.ok(writes.includes(big), "the payload itself was written");
    assert.equal(corks, 1, "header and payload went out under one cork");
  });
});
