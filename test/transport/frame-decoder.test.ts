import assert from "node:assert/strict";
import { describe, it } from "node:test";
import fc from "fast-check";
import { isEzipcError } from "../../src/errors.js";
import { FrameDecoder, MIN_PIECES_FRAME_BYTES } from "../../src/transport/frame-decoder.js";
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

  it("a stream whose first bytes are another protocol's says what they were; later oversized headers do not", () => {
    const first = (bytes: Buffer, before: Buffer[] = []) => {
      const d = new FrameDecoder(16 * 1024 * 1024);
      for (const b of before) d.push(b, () => {});
      try {
        // Byte by byte: the header may arrive split.
        for (const byte of bytes) d.push(Buffer.from([byte]), () => {});
      } catch (err) {
        return (err as Error).message;
      }
      return assert.fail("refused");
    };
    assert.match(
      first(Buffer.from("HTTP/1.1 400 Bad Request\r\n")),
      /first bytes received, "HTTP", are not an ezipc frame/,
    );
    assert.match(first(Buffer.from("INFO {}\r\n")), /"INFO"/);
    assert.match(first(Buffer.from([0x16, 0x03, 0x01, 0x02, 0x00])), /0x16030102/); // a TLS record
    assert.match(first(Buffer.from([0xff, 0xff, 0xff, 0xff])), /^control frame .*0xffffffff/);
    assert.doesNotMatch(first(Buffer.from("HTTP"), [wireFrames([Buffer.from("ok")])]), /first bytes/);
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

describe("FrameDecoder, long frames in pieces", () => {
  const long = Buffer.alloc(MIN_PIECES_FRAME_BYTES + 1000);
  for (let i = 0; i < long.length; i++) long[i] = (i * 7) & 0xff;
  const frames = [Buffer.from("a"), long, Buffer.from("bc"), Buffer.alloc(MIN_PIECES_FRAME_BYTES - 1, 3)];
  const wire = wireFrames(frames);

  /** Decodes `chunks`, each copied into a buffer of its own (as socket reads are), with a pieces sink. */
  function decodeWithPieces(chunks: Buffer[]) {
    const d = new FrameDecoder(1 << 20);
    const out: { bytes: Buffer; pieces: Buffer[] | null }[] = [];
    const own = chunks.map((c) => Buffer.from(c));
    for (const c of own) {
      d.push(
        c,
        (p, control) => {
          assert.equal(control, 0);
          out.push({ bytes: Buffer.from(p), pieces: null });
        },
        (pieces, length) => {
          const bytes = Buffer.concat(pieces);
          assert.equal(bytes.length, length);
          out.push({ bytes, pieces });
        },
      );
    }
    assert.equal(d.bufferedBytes, 0);
    return { out, own };
  }

  it("delivers a long split data frame as views into the chunks it came in, at every split point", () => {
    const longStart = 4 + 1 + 4; // "a" framed, then the long frame's header
    for (let k = 0; k <= wire.length; k += k < longStart + 8 || k > wire.length - 40 ? 1 : 997) {
      const { out, own } = decodeWithPieces([wire.subarray(0, k), wire.subarray(k)]);
      assert.deepEqual(
        out.map((o) => o.bytes),
        frames,
        `split at ${k}`,
      );
      // (A header that ends a chunk counts: the body then comes as one piece.)
      const split = k >= longStart && k < longStart + long.length;
      assert.equal(out[1]!.pieces !== null, split, `the long frame in pieces only when split (at ${k})`);
      if (split) {
        // No copy: every piece is a view of one of the chunks.
        for (const p of out[1]!.pieces!) assert.ok(own.some((c) => c.buffer === p.buffer));
      }
      assert.equal(out[3]!.pieces, null, "a frame under MIN_PIECES_FRAME_BYTES is joined");
    }
  });

  it("splits across many chunks keep the pieces in order", () => {
    const chunks: Buffer[] = [];
    for (let pos = 0; pos < wire.length; pos += 5000) chunks.push(wire.subarray(pos, pos + 5000));
    const { out } = decodeWithPieces(chunks);
    assert.deepEqual(
      out.map((o) => o.bytes),
      frames,
    );
    assert.ok(out[1]!.pieces!.length >= 3);
  });

  it("joins a frame whose chunks hold far more memory than the frame (a peer trickling bytes)", () => {
    const d = new FrameDecoder(1 << 20);
    const got: Buffer[] = [];
    let inPieces = 0;
    // Each chunk a 1000-byte view into a 64 KiB buffer: keeping them would hold 64× the frame.
    for (let pos = 0; pos < wire.length; pos += 1000) {
      const big = Buffer.alloc(65536);
      const n = wire.copy(big, 0, pos, pos + 1000);
      d.push(
        big.subarray(0, n),
        (p) => got.push(Buffer.from(p)),
        (pieces) => {
          inPieces++;
          got.push(Buffer.concat(pieces));
        },
      );
      assert.ok(d.bufferedBytes <= long.length + 4);
    }
    assert.deepEqual(got, frames);
    assert.equal(inPieces, 0);
  });

  it("joins a frame begun in pieces when the next chunk comes without a pieces sink", () => {
    const cut = 4 + 1 + 4 + 100;
    const d = new FrameDecoder(1 << 20);
    const got: Buffer[] = [];
    const sink = (p: Buffer) => got.push(Buffer.from(p));
    d.push(Buffer.from(wire.subarray(0, cut)), sink, () => assert.fail("not complete yet"));
    d.push(Buffer.from(wire.subarray(cut)), sink);
    assert.deepEqual(got, frames);
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

  it("an idle sink's bytes are written again from the segment's start; a busy sink's are never rewritten", () => {
    for (const idle of [true, false]) {
      // The sink keeps the chunks themselves (views), and a copy of what each held when it was written.
      const views: Buffer[] = [];
      const copies: Buffer[] = [];
      const w = new FrameWriter({
        write: (c) => {
          views.push(c);
          copies.push(Buffer.from(c));
          return true;
        },
        cork() {},
        uncork() {},
        idle: () => idle,
      });
      const frames: Buffer[] = [];
      for (let i = 0; i < 3000; i++) {
        const f = Buffer.alloc(1 + (i % 100), i);
        frames.push(f);
        w.writeData(f);
        if (i % 7 === 0) w.flush(); // flushes in mid-segment and at its end
        if (i % 500 === 0) w.writeData(Buffer.alloc(20_000, i)); // a chunk by reference between them
      }
      w.flush();
      const segments = new Set(views.filter((v) => v.length < 16 * 1024).map((v) => v.buffer));
      if (idle) {
        assert.equal(segments.size, 1, "one segment, written again after every flush");
      } else {
        assert.ok(segments.size > 1, "segments used up, then fresh ones");
        for (let i = 0; i < views.length; i++) {
          assert.deepEqual(views[i], copies[i], `chunk ${i} was rewritten after it was handed on`);
        }
      }
      const { frames: got } = decodeAll(new FrameDecoder(64 * 1024), copies);
      const want: Buffer[] = [];
      for (let i = 0; i < 3000; i++) {
        want.push(frames[i]!);
        if (i % 500 === 0) want.push(Buffer.alloc(20_000, i));
      }
      assert.deepEqual(got, want);
    }
  });
});
