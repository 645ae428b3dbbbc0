import assert from "node:assert/strict";
import { describe, it } from "node:test";
import fc from "fast-check";
import { bytesCodec } from "../../src/codec/bytes.js";
import type { Codec } from "../../src/codec/codec.js";
import { jsonCodec } from "../../src/codec/json.js";
import { msgpackCodec } from "../../src/codec/msgpack.js";
import { type Infer, type SchemaType, schemaCodec, t } from "../../src/codec/schema.js";
import { isEzipcError } from "../../src/errors.js";
import { seededRandom } from "../helpers.js";

const Msg = t.struct({
  id: t.u32,
  topic: t.string({ maxBytes: 64 }),
  ts: t.f64,
  payload: t.struct({ user: t.string(), text: t.string(), room: t.u16 }),
  tags: t.array(t.i16, { maxLength: 100 }),
  big: t.u64,
  neg: t.i64,
  small: t.i8,
  flag: t.bool,
  blob: t.bytes({ maxBytes: 1000 }),
  grid: t.fixedArray(t.fixedArray(t.u8, 2), 2),
  note: t.optional(t.string()),
  f: t.f32,
  people: t.array(t.struct({ name: t.string(), age: t.optional(t.u8) })),
});
type Msg = Infer<typeof Msg>;

const sample: Msg = {
  id: 4_000_000_000,
  topic: "sensors.temp.001",
  ts: 1_795_000_000_123.5,
  payload: { user: "anné", text: "héllo wörld — ünïcode ✓ and emoji 🎉", room: 65535 },
  tags: [-32768, 0, 32767],
  big: 2n ** 64n - 1n,
  neg: -(2n ** 63n),
  small: -128,
  flag: true,
  blob: new Uint8Array([0, 1, 2, 255]),
  grid: [
    [1, 2],
    [3, 4],
  ],
  note: "x".repeat(300),
  f: 1.5,
  people: [{ name: "bo", age: 7 }, { name: "cy" }],
};

/** Every prefix shorter than the whole must fail with EZIPC_DECODE: truncated means error, never garbage. */
function assertEveryPrefixFails(codec: Codec<unknown>, bytes: Uint8Array): void {
  for (let i = 0; i < bytes.length; i++) {
    assert.throws(
      () => codec.decode(bytes.subarray(0, i)),
      (e) => isEzipcError(e, "EZIPC_DECODE"),
      `prefix ${i}`,
    );
  }
}

/** Random and mutated inputs: decode returns or throws EZIPC_DECODE; nothing else, and quickly. */
function fuzzDecode(codec: Codec<unknown>, valid: Uint8Array, runs: number): void {
  const rnd = seededRandom(1234);
  for (let run = 0; run < runs; run++) {
    const input =
      run % 2 === 0
        ? Buffer.from(valid)
        : Buffer.from(Array.from({ length: Math.floor(rnd() * 64) }, () => Math.floor(rnd() * 256)));
    if (run % 2 === 0)
      for (let k = 0; k < 1 + Math.floor(rnd() * 4); k++)
        input[Math.floor(rnd() * input.length)] = Math.floor(rnd() * 256);
    try {
      codec.decode(input);
    } catch (err) {
      assert.ok(isEzipcError(err, "EZIPC_DECODE"), `${codec.name}: ${String(err)}`);
    }
  }
}

describe("schema codec", () => {
  const codec = schemaCodec(Msg);

  it("round-trips every field type exactly", () => {
    const bytes = Buffer.from(codec.encode(sample));
    assert.deepEqual(codec.decode(bytes), {
      ...sample,
      people: [
        { name: "bo", age: 7 },
        { name: "cy", age: undefined },
      ],
    });
  });

  it("infers the TypeScript type (compile-time check)", () => {
    const v: Msg = codec.decode(codec.encode(sample));
    const big: bigint = v.big;
    const note: string | undefined = v.note;
    // @ts-expect-error id is a number, not a string
    const wrong: string = v.id;
    assert.equal(typeof big, "bigint");
    assert.equal(note?.length, 300);
    assert.equal(typeof wrong, "number");
  });

  it("fails every truncated input with EZIPC_DECODE, and trailing bytes too", () => {
    const bytes = Buffer.from(codec.encode(sample));
    assertEveryPrefixFails(codec as Codec<unknown>, bytes);
    assert.throws(
      () => codec.decode(Buffer.concat([bytes, Buffer.from([0])])),
      (e) => isEzipcError(e, "EZIPC_DECODE"),
    );
  });

  it("survives seeded random and mutated input without crash or huge allocation", () => {
    fuzzDecode(codec as Codec<unknown>, codec.encode(sample), 20_000);
  });

  it("bounds hostile lengths by the bytes present, before allocating", () => {
    const Arr = schemaCodec(t.array(t.struct({})));
    // count 2^32-1 with one byte left: the bound check must refuse before any allocation
    assert.throws(
      () => Arr.decode(Buffer.from([0xff, 0xff, 0xff, 0xff, 0x0f, 0])),
      (e) => isEzipcError(e, "EZIPC_DECODE"),
    );
    const Str = schemaCodec(t.string({ maxBytes: 10 }));
    assert.throws(
      () => Str.decode(Buffer.from([11, ...Buffer.alloc(11)])),
      (e) => isEzipcError(e, "EZIPC_DECODE"),
    );
    assert.throws(
      () => Str.decode(Buffer.from([0x80, 0x80, 0x80, 0x80, 0x80, 0x01])),
      (e) => isEzipcError(e, "EZIPC_DECODE"),
    );
    assert.throws(
      () => schemaCodec(t.bool).decode(Buffer.from([2])),
      (e) => isEzipcError(e, "EZIPC_DECODE"),
    );
  });

  it("rejects values that do not fit with EZIPC_ENCODE naming the field", () => {
    const bad: Array<[Partial<Msg>, string]> = [
      [{ id: -1 }, "id"],
      [{ id: 1.5 }, "id"],
      [{ small: 128 }, "small"],
      [{ big: -1n }, "big"],
      [{ topic: "x".repeat(65) }, "topic"],
      [{ tags: new Array(101).fill(0) }, "tags"],
      [{ grid: [[1, 2]] }, "grid"],
      [{ flag: 1 as unknown as boolean }, "flag"],
      [{ payload: null as unknown as Msg["payload"] }, "payload"],
    ];
    for (const [patch, field] of bad) {
      assert.throws(
        () => codec.encode({ ...sample, ...patch } as Msg),
        (e) => isEzipcError(e, "EZIPC_ENCODE") && e.message.includes(field),
        JSON.stringify(Object.keys(patch)),
      );
    }
  });

  it("knows the byte size of a fixed-size schema", () => {
    const Point = t.struct({
      x: t.f64,
      y: t.f64,
      tag: t.u8,
      ok: t.bool,
      id: t.u64,
      m: t.fixedArray(t.i16, 3),
    });
    assert.equal(Point.fixedSize, 8 + 8 + 1 + 1 + 8 + 6);
    const c = schemaCodec(Point);
    assert.equal(c.encode({ x: 1, y: 2, tag: 3, ok: false, id: 9n, m: [1, 2, 3] }).length, Point.fixedSize);
    assert.equal(Msg.fixedSize, undefined);
  });

  it("encodes into a reused buffer and grows it for large values", () => {
    const c = schemaCodec(t.struct({ s: t.string() }), { initialBytes: 16 });
    const a = c.encode({ s: "a" });
    const b = c.encode({ s: "b" });
    assert.equal(a.buffer, b.buffer, "the same buffer is reused");
    const long = "é".repeat(100_000);
    assert.equal(c.decode(Buffer.from(c.encode({ s: long }))).s, long);
  });

  it("32-bit integers decode exactly at their edges (read from bytes, not a DataView)", () => {
    const c = schemaCodec(t.struct({ u: t.u32, i: t.i32 }));
    const us = [0, 1, 255, 256, 0x7fffffff, 0x80000000, 0xfffffffe, 0xffffffff];
    const is = [-(2 ** 31), -1, 0, 1, 0x7fffffff, -256, 0x00ff00ff, -0x01020304];
    for (const u of us) {
      for (const i of is) {
        const bytes = Buffer.from(c.encode({ u, i }));
        assert.equal(bytes.readUInt32LE(0), u);
        assert.deepEqual(c.decode(bytes), { u, i });
      }
    }
  });

  it("decoded bytes are copies: they share no bytes with the input or with each other", () => {
    const c = schemaCodec(t.struct({ a: t.bytes(), b: t.bytes() }));
    const decoded: { a: Uint8Array; b: Uint8Array }[] = [];
    const sizes = [0, 1, 7, 64, 1000, 2047, 2048, 4096, 40_000];
    for (const n of sizes) {
      const input = Buffer.from(c.encode({ a: new Uint8Array(n).fill(1), b: new Uint8Array(n + 3).fill(2) }));
      const v = c.decode(input);
      input.fill(9); // the input (a socket's chunk, a ring's copy) is reused
      decoded.push(v);
    }
    // Write every value through its own view: each must still read back its own bytes only.
    decoded.forEach((v, i) => {
      v.a.fill(10 + i);
      v.b.fill(100 + i);
    });
    decoded.forEach((v, i) => {
      assert.equal(v.a.length, sizes[i]);
      assert.equal(v.b.length, sizes[i]! + 3);
      assert.ok(
        v.a.every((x) => x === 10 + i),
        `a of value ${i}`,
      );
      assert.ok(
        v.b.every((x) => x === 100 + i),
        `b of value ${i}`,
      );
    });
  });

  it("round-trips arbitrary schemas at every buffer boundary: variable fields followed by fixed ones, nested (fast-check, seeded)", () => {
    // A struct's fixed fields after a string were written without room checked: a list of topics (name, then
    // seqs and counts) failed with a RangeError once it crossed the encoder's buffer (about 100 entries).
    // Random shapes, encoded with a 16-byte first buffer, so that growth lands anywhere.
    type Shape = { s: SchemaType<unknown>; v: fc.Arbitrary<unknown> };
    const leaf = fc.constantFrom<Shape>(
      { s: t.u8, v: fc.integer({ min: 0, max: 255 }) },
      { s: t.u16, v: fc.integer({ min: 0, max: 65_535 }) },
      { s: t.u32, v: fc.integer({ min: 0, max: 2 ** 32 - 1 }) },
      { s: t.f64, v: fc.double({ noNaN: true }) },
      { s: t.u64, v: fc.bigInt({ min: 0n, max: 2n ** 64n - 1n }) },
      { s: t.bool, v: fc.boolean() },
      { s: t.string(), v: fc.string({ unit: "grapheme", maxLength: 12 }) },
      { s: t.bytes(), v: fc.uint8Array({ maxLength: 12 }) },
    );
    const { shape } = fc.letrec<{ shape: Shape }>((tie) => ({
      shape: fc.oneof(
        { depthSize: "small", withCrossShrink: true },
        leaf,
        fc.array(tie("shape"), { minLength: 1, maxLength: 5 }).map((fields) => ({
          s: t.struct(Object.fromEntries(fields.map((f, i) => [`f${i}`, f.s]))),
          v: fc
            .tuple(...fields.map((f) => f.v))
            .map((vs) => Object.fromEntries(vs.map((v, i) => [`f${i}`, v]))),
        })),
        tie("shape").map((e) => ({
          s: t.array(e.s, { maxLength: 40 }),
          v: fc.array(e.v, { maxLength: 40 }),
        })),
        tie("shape").map((e) => ({ s: t.optional(e.s), v: fc.option(e.v, { nil: undefined }) })),
      ),
    }));
    fc.assert(
      fc.property(
        shape.chain((sh) => fc.tuple(fc.constant(sh.s), fc.array(sh.v, { minLength: 1, maxLength: 4 }))),
        ([s, values]) => {
          const c = schemaCodec(s, { initialBytes: 16 });
          for (const v of values) assert.deepEqual(c.decode(Buffer.from(c.encode(v))), v);
        },
      ),
      { seed: 7, numRuns: 400 },
    );
  });

  it("round-trips arbitrary values (fast-check, seeded)", () => {
    const S = t.struct({ a: t.i32, b: t.string(), c: t.array(t.f64), d: t.optional(t.i64), e: t.bytes() });
    const c = schemaCodec(S);
    fc.assert(
      fc.property(
        fc.record({
          a: fc.integer({ min: -(2 ** 31), max: 2 ** 31 - 1 }),
          b: fc.string({ unit: "grapheme", maxLength: 200 }),
          c: fc.array(fc.double({ noNaN: true })),
          d: fc.option(fc.bigInt({ min: -(2n ** 63n), max: 2n ** 63n - 1n }), { nil: undefined }),
          e: fc.uint8Array({ maxLength: 100 }),
        }),
        (v) => {
          assert.deepEqual(c.decode(Buffer.from(c.encode(v))), { ...v });
        },
      ),
      { seed: 99, numRuns: 500 },
    );
  });
});

describe("json, msgpack and bytes codecs", () => {
  const value = { a: 1, b: "two", c: [true, null, 3.5], d: { e: "ünïcode" } };

  for (const codec of [jsonCodec, msgpackCodec()]) {
    it(`${codec.name}: round-trips, fails every truncation and survives fuzzing`, () => {
      const bytes = codec.encode(value);
      assert.deepEqual(codec.decode(bytes), value);
      // byte by byte: every strict prefix is an error (JSON: some prefixes like "1" are valid numbers, so use an object)
      assertEveryPrefixFails(codec, bytes);
      fuzzDecode(codec, bytes, 20_000);
    });
  }

  it("json and msgpack reject values they cannot encode", () => {
    assert.throws(
      () => jsonCodec.encode(undefined),
      (e) => isEzipcError(e, "EZIPC_ENCODE"),
    );
    assert.throws(
      () => jsonCodec.encode({ n: 1n }),
      (e) => isEzipcError(e, "EZIPC_ENCODE"),
    );
    const cyclic: Record<string, unknown> = {};
    cyclic.self = cyclic;
    assert.throws(
      () => jsonCodec.encode(cyclic),
      (e) => isEzipcError(e, "EZIPC_ENCODE"),
    );
  });

  it("msgpack carries 64-bit integers as bigint and bytes as binary", () => {
    const c = msgpackCodec();
    assert.deepEqual(c.decode(c.encode({ n: 2n ** 63n - 1n, b: Buffer.from([1, 2]) })), {
      n: 2n ** 63n - 1n,
      b: Buffer.from([1, 2]),
    });
  });

  it("bytes passes payloads through and refuses non-bytes", () => {
    const b = Buffer.from([1, 2, 3]);
    assert.equal(bytesCodec.decode(bytesCodec.encode(b)), b);
    assert.throws(() => bytesCodec.encode("x" as unknown as Uint8Array), TypeError);
  });
});
