import assert from "node:assert/strict";
import { describe, it } from "node:test";
import fc from "fast-check";
import { schemaCodec } from "../../src/codec/schema.js";
import { headers as headersSchema } from "../../src/protocol/fields.js";
import {
  encodeMessageHead,
  encodePublish,
  MESSAGE_SID_OFFSET,
  PublishBatcher,
  parseMessage,
  parseMessagePieces,
  parsePublish,
  parsePublishPieces,
  sliceHead,
} from "../../src/pubsub/fast-frames.js";
import {
  checkRecords,
  checkRecordsInPieces,
  encodeHeaderList,
  encodeHeaders,
  lebEnd,
  payloadStart,
  readLeb,
  recordEnd,
  recordOffsets,
  skipHeaderList,
} from "../../src/pubsub/records.js";
import { hubProtocol } from "../../src/wire/hub-protocol.js";

const proto = hubProtocol();
const topic = fc.stringMatching(/^[a-z0-9]{1,8}(\.[a-z0-9]{1,8}){0,3}$/);
const headers = fc.array(
  fc.record({ key: fc.string({ maxLength: 20 }), value: fc.string({ maxLength: 60 }) }),
  { maxLength: 4 },
);
const payload = fc.uint8Array({ maxLength: 3000 });
const record = fc.record({ headers, payload });
type Rec = { headers: { key: string; value: string }[]; payload: Uint8Array };

/** The generic codec's records of a decoded frame, as plain values. */
function plain(records: readonly Rec[]): { headers: { key: string; value: string }[]; payload: Buffer }[] {
  return records.map((r) => ({ headers: r.headers.map((h) => ({ ...h })), payload: Buffer.from(r.payload) }));
}

describe("fast publish/message frames match the schema codec byte for byte", () => {
  it("encodePublish == protocol.encode('publish') of one record, and parsePublish reads it back", () => {
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 0xffffffff }), topic, headers, payload, (rid, t, h, p) => {
        const generic = Buffer.from(
          proto.encode("publish", { rid, topic: t, records: [{ headers: h, payload: p }] }),
        );
        const fast = encodePublish(rid, Buffer.from(t, "latin1"), encodeHeaders(h), p);
        assert.deepEqual(fast, generic);
        const v = parsePublish(generic);
        assert.ok(v);
        assert.equal(v.rid, rid);
        assert.equal(v.topic, t);
        assert.equal(v.count, 1);
      }),
      { numRuns: 300, seed: 11 },
    );
  });

  it("PublishBatcher packs consecutive publishes to one topic into codec-identical frames, in order", () => {
    fc.assert(
      fc.property(
        fc.array(fc.record({ topic: fc.constantFrom("a", "b.c", "d"), rec: record }), { maxLength: 40 }),
        fc.integer({ min: 16, max: 8192 }),
        fc.integer({ min: 64, max: 20_000 }),
        (publishes, batchBytes, copyBelow) => {
          const frames: Buffer[] = [];
          // Like the transport: frames under copyBelow are copied before send returns; others are kept.
          const batcher = new PublishBatcher(
            (f) => frames.push(f.length < copyBelow ? Buffer.from(f) : f) > 0,
            copyBelow,
            batchBytes,
          );
          const topics = new Map(["a", "b.c", "d"].map((t) => [t, Buffer.from(t)]));
          for (const p of publishes) {
            batcher.add(topics.get(p.topic)!, encodeHeaders(p.rec.headers), p.rec.payload);
          }
          batcher.flush();
          assert.equal(batcher.pending, 0);
          const got: { topic: string; rec: Rec }[] = [];
          for (const f of frames) {
            const decoded = proto.decode(f);
            assert.equal(decoded.type, "publish");
            const body = decoded.body as { rid: number; topic: string; records: Rec[] };
            assert.equal(body.rid, 0);
            assert.ok(body.records.length > 0);
            assert.deepEqual(f, Buffer.from(proto.encode("publish", body)));
            const v = parsePublish(f);
            assert.ok(v);
            assert.equal(v.topic, body.topic);
            assert.equal(v.count, body.records.length);
            for (const rec of body.records) got.push({ topic: body.topic, rec });
          }
          assert.deepEqual(
            got.map((g) => ({ topic: g.topic, rec: plain([g.rec])[0] })),
            publishes.map((p) => ({ topic: p.topic, rec: plain([p.rec])[0] })),
          );
          // A frame ends only where the topic changes or the next record would not fit.
          for (let i = 0; i + 1 < frames.length; i++) {
            const a = proto.decode(frames[i]!).body as { topic: string; records: Rec[] };
            const b = proto.decode(frames[i + 1]!).body as { topic: string; records: Rec[] };
            if (a.topic !== b.topic) continue;
            // Topic and count lengths fit one LEB128 byte here.
            const head = 2 + 4 + 1 + a.topic.length + 1;
            const next = proto.encode("publish", { rid: 0, topic: a.topic, records: [b.records[0]!] });
            assert.ok(
              frames[i]!.length - head + (next.length - head) > batchBytes,
              `frame ${i} was sent while the next record fit`,
            );
          }
        },
      ),
      { numRuns: 200, seed: 14 },
    );
  });

  it("encodeMessageHead + the records of a publish == protocol.encode('message'); parseMessage and sliceHead agree", () => {
    fc.assert(
      fc.property(
        topic,
        fc.bigUint64Array({ minLength: 1, maxLength: 1 }),
        fc.double({ noNaN: true }),
        fc.string({ maxLength: 30 }),
        fc.array(record, { minLength: 1, maxLength: 12 }),
        fc.integer({ min: 0, max: 0xffffffff }),
        fc.nat(),
        fc.nat(),
        (t, [big], time, publisher, records, sid, a, b) => {
          const seq = big! % (2n ** 64n - 100n);
          const publish = Buffer.from(proto.encode("publish", { rid: 0, topic: t, records }));
          const v = parsePublish(publish);
          assert.ok(v);
          const head = encodeMessageHead(
            Buffer.from(t, "latin1"),
            seq,
            time,
            Buffer.from(publisher, "utf8"),
            v.count,
          );
          const recordBytes = publish.subarray(v.recordsStart);
          const fast = Buffer.concat([head, recordBytes]);
          const body = { sid: 0, topic: t, seq, time, publisher, records };
          assert.deepEqual(fast, Buffer.from(proto.encode("message", body)));
          const k = a % records.length;
          const n = 1 + (b % (records.length - k));
          const offsets = recordOffsets(recordBytes, records.length);
          const slice = Buffer.concat([
            sliceHead(head, n, seq + BigInt(k)),
            recordBytes.subarray(offsets[k], offsets[k + n]),
          ]);
          assert.deepEqual(
            slice,
            Buffer.from(
              proto.encode("message", { ...body, seq: seq + BigInt(k), records: records.slice(k, k + n) }),
            ),
          );
          fast.writeUInt32LE(sid, MESSAGE_SID_OFFSET);
          const m = parseMessage(fast);
          assert.ok(m);
          assert.equal(m.sid, sid);
          assert.equal(m.messages.length, records.length);
          m.messages.forEach((x, i) => {
            assert.equal(x.topic, t);
            assert.equal(x.seq, seq + BigInt(i));
            assert.equal(Object.is(x.time, time) || x.time === time, true);
            assert.equal(x.publisher, publisher);
            assert.deepEqual(
              { ...x.headers },
              Object.fromEntries(records[i]!.headers.map((h) => [h.key, h.value])),
            );
            assert.deepEqual(Buffer.from(x.payload), Buffer.from(records[i]!.payload));
          });
        },
      ),
      { numRuns: 300, seed: 12 },
    );
  });

  it("every truncation and random corruption is rejected or parsed without throwing", () => {
    const records = [
      { headers: [{ key: "k", value: "v" }], payload: new Uint8Array(20) },
      { headers: [], payload: new Uint8Array(3) },
    ];
    const frame = Buffer.from(proto.encode("publish", { rid: 5, topic: "a.b", records }));
    for (let n = 0; n < frame.length; n++)
      assert.equal(parsePublish(frame.subarray(0, n)), null, `prefix ${n}`);
    const msg = Buffer.from(
      proto.encode("message", { sid: 0, topic: "a.b", seq: 7n, time: 1.5, publisher: "p", records }),
    );
    for (let n = 0; n < msg.length; n++) assert.equal(parseMessage(msg.subarray(0, n)), null, `prefix ${n}`);
    // A count that claims one record more or less than the frame holds.
    for (const delta of [-1, 1]) {
      const f = Buffer.from(frame);
      f[6 + 1 + 3] = 2 + delta;
      assert.equal(parsePublish(f), null, `count ${2 + delta}`);
    }
    fc.assert(
      fc.property(fc.uint8Array({ minLength: 2, maxLength: 80 }), (bytes) => {
        const b = Buffer.from(bytes);
        b.writeUInt16LE(frame.readUInt16LE(0), 0);
        parsePublish(b);
        b.writeUInt16LE(msg.readUInt16LE(0), 0);
        parseMessage(b);
      }),
      { numRuns: 2000, seed: 13 },
    );
  });

  it("parsePublishPieces and parseMessagePieces read a frame in pieces as the parsers read it whole", () => {
    /** `frame` cut at `cuts` (ascending) into pieces, each copied into memory of its own (as reads are). */
    const cut = (frame: Buffer, cuts: number[]) =>
      [0, ...cuts].map((c, i) => {
        const part = frame.subarray(c, i < cuts.length ? cuts[i] : frame.length);
        const own = Buffer.allocUnsafeSlow(part.length);
        part.copy(own);
        return own;
      });
    const records = [
      { headers: [{ key: "k", value: "v".repeat(200) }], payload: new Uint8Array(300).fill(1) },
      { headers: [], payload: new Uint8Array(0) },
      {
        headers: [
          { key: "a", value: "b" },
          { key: "c", value: "" },
        ],
        payload: new Uint8Array(200).fill(2),
      },
      { headers: [], payload: new Uint8Array(129).fill(3) },
    ];
    const publish = Buffer.from(proto.encode("publish", { rid: 9, topic: "pieces.t", records }));
    const whole = parsePublish(publish)!;
    const recordsStart = whole.recordsStart;
    const msg = Buffer.from(
      proto.encode("message", { sid: 4, topic: "pieces.t", seq: 70n, time: 2.5, publisher: "p#1", records }),
    );
    const expected = parseMessage(msg)!;
    const same = (got: ReturnType<typeof parseMessage>, what: string) => {
      assert.ok(got, what);
      assert.equal(got.sid, 4);
      assert.equal(got.messages.length, records.length);
      got.messages.forEach((m, i) => {
        const e = expected.messages[i]!;
        assert.deepEqual([m.topic, m.seq, m.time, m.publisher], [e.topic, e.seq, e.time, e.publisher], what);
        assert.deepEqual({ ...m.headers }, { ...e.headers }, what);
        assert.deepEqual(Buffer.from(m.payload), Buffer.from(e.payload), what);
      });
    };
    for (let c = 1; c < publish.length; c++) {
      const v = parsePublishPieces(cut(publish, [c]));
      // The head must be whole in the first piece; past it, every cut parses.
      if (c < recordsStart) assert.equal(v, null, `publish cut at ${c} (inside the head)`);
      else assert.deepEqual({ ...v! }, { ...whole }, `publish cut at ${c}`);
    }
    for (let c = 1; c < msg.length; c++) {
      const got = parseMessagePieces(cut(msg, [c]));
      if (got !== null) same(got, `message cut at ${c}`);
      else assert.ok(c < 40, `only a cut inside the head is refused (at ${c})`);
    }
    // Three and more pieces, some inside one record.
    for (const cuts of [
      [60, 61, 62],
      [100, 400, 700],
      [200, 201, 500, 501, 800],
    ]) {
      assert.deepEqual({ ...parsePublishPieces(cut(publish, cuts))! }, { ...whole }, `publish ${cuts}`);
      same(parseMessagePieces(cut(msg, cuts)), `message ${cuts}`);
    }
    // Payloads wholly inside a piece are views of it (no copy); one that crosses a cut is a copy.
    const pieces = cut(msg, [msg.length - 100]);
    const got = parseMessagePieces(pieces)!;
    assert.equal(got.messages[0]!.payload.buffer, pieces[0]!.buffer);
    assert.notEqual(got.messages[3]!.payload.buffer, pieces[0]!.buffer);
    assert.notEqual(got.messages[3]!.payload.buffer, pieces[1]!.buffer);
    // Truncated, or with bytes left over, or a record cut short inside its headers: refused.
    for (const n of [1, 50, 129]) {
      assert.equal(parsePublishPieces(cut(publish.subarray(0, publish.length - n), [100])), null);
      assert.equal(parseMessagePieces(cut(msg.subarray(0, msg.length - n), [100])), null);
    }
    const longer = Buffer.concat([publish, Buffer.from([0])]);
    assert.equal(parsePublishPieces(cut(longer, [100])), null);
    assert.equal(parseMessagePieces(cut(Buffer.concat([msg, Buffer.from([0])]), [100])), null);
  });
});

describe("header lists", () => {
  it("encodeHeaderList and encodeHeaders write header lists the schema codec reads back as they were, for any strings within the limits", () => {
    const codec = schemaCodec(headersSchema);
    const fixed: Record<string, string>[] = [
      {},
      { a: "" },
      { "": "v" },
      { "ezipc-bridged": "shm", "ezipc-bridged-seq": "12345678901234567890", "ezipc-origin": "pub#1234" },
      { ["k".repeat(64)]: "v".repeat(64), ["k".repeat(65)]: "v".repeat(65) }, // around the short-string loop
      { é: "ü".repeat(63), emoji: "🙂".repeat(40), cjk: "漢".repeat(85) },
      { ["k".repeat(256)]: "x".repeat(4096) },
    ];
    const check = (h: Record<string, string>) => {
      const list = Object.entries(h).map(([key, value]) => ({ key, value }));
      // (The schema codec writes string lengths in a padded LEB128 of its own: compare what it reads.)
      const what = JSON.stringify(h).slice(0, 80);
      for (const bytes of [encodeHeaderList(h), encodeHeaders(list)]) {
        assert.deepEqual(codec.decode(bytes), list, what);
        assert.equal(skipHeaderList(bytes, 0, bytes.length), bytes.length, what);
      }
    };
    for (const h of fixed) check(h);
    fc.assert(
      fc.property(
        fc.dictionary(
          fc.string({ maxLength: 80, unit: "binary" }),
          fc.string({ maxLength: 300, unit: "binary" }),
          {
            maxKeys: 8,
          },
        ),
        (h) => {
          check(h);
        },
      ),
      { numRuns: 500, seed: 20261201 },
    );
  });
});

describe("records", () => {
  /** A record's end and payload start the long way: the header list, then the payload's length. */
  function slowRecordEnd(buf: Uint8Array, pos: number, end: number): [number, number] | -1 {
    const h = skipHeaderList(buf, pos, end);
    if (h < 0) return -1;
    const len = readLeb(buf, h, end);
    if (len < 0 || lebEnd + len > end) return -1;
    return [lebEnd, lebEnd + len];
  }
  const read = (buf: Uint8Array, pos: number, end: number): [number, number] | -1 => {
    const e = recordEnd(buf, pos, end);
    return e < 0 ? -1 : [payloadStart, e];
  };

  it("recordEnd's inline path reads every record as the header list and length readers do", () => {
    const fixed = [
      [0, 0], // no headers, empty payload, at the very end
      [0, 1, 9],
      [0, 0x7f, ...new Array(0x7f).fill(1)],
      [0, 0x80, 0x01, ...new Array(128).fill(2)], // a two-byte length
      [0, 0x80, 0x00], // a two-byte length of 0 (not minimal, still read)
      [0, 0xff, 0x7f, ...new Array(16383).fill(3)], // the largest two-byte length
      [0, 0x80, 0x80, 0x01, ...new Array(16384).fill(4)], // three bytes: the long way
      [1, 1, 0x6b, 1, 0x76, 2, 7, 7], // one header
      [0, 5, 1, 2], // cut short
      [0, 0x80], // a length cut short
      [0x80], // a count cut short
    ];
    for (const bytes of fixed) {
      const buf = Uint8Array.from(bytes);
      for (let end = 0; end <= buf.length; end++) {
        assert.deepEqual(read(buf, 0, end), slowRecordEnd(buf, 0, end), `${bytes.slice(0, 6)} to ${end}`);
      }
    }
    fc.assert(
      fc.property(
        fc.uint8Array({ maxLength: 40 }),
        fc.nat(40),
        fc.nat(40),
        fc.boolean(),
        (bytes, a, b, plain) => {
          // Half of them a record without headers (the inline path), the rest any bytes.
          const buf = plain ? Uint8Array.from([0, ...bytes]) : bytes;
          const pos = plain ? 0 : Math.min(a, buf.length);
          const end = Math.min(Math.max(pos, b), buf.length);
          assert.deepEqual(read(buf, pos, end), slowRecordEnd(buf, pos, end));
        },
      ),
      { numRuns: 5000, seed: 20261201 },
    );
  });

  it("checkRecords and checkRecordsInPieces (their loop over plain records) agree with reading record by record", () => {
    /** Whether `count` records from 0 end exactly at the end of `buf`, read one by one the long way. */
    const slowCheck = (buf: Uint8Array, count: number): boolean => {
      let pos = 0;
      for (let i = 0; i < count; i++) {
        const r = slowRecordEnd(buf, pos, buf.length);
        if (r === -1) return false;
        pos = r[1];
      }
      return pos === buf.length;
    };
    const record = fc.oneof(
      // plain: no headers, payloads around the one-, two- and three-byte lengths
      fc
        .integer({ min: 0, max: 20_000 })
        .map((n) => Buffer.concat([Buffer.from([0]), leb(n), Buffer.alloc(n, 7)])),
      fc
        .integer({ min: 0, max: 200 })
        .map((n) => Buffer.concat([Buffer.from([0]), leb(n), Buffer.alloc(n, 1)])),
      fc.constant(Buffer.from([0, 0x80, 0x00])), // a two-byte length of 0
      fc.constant(Buffer.from([1, 1, 0x6b, 1, 0x76, 2, 7, 7])), // one header
    );
    fc.assert(
      fc.property(
        fc.array(record, { minLength: 1, maxLength: 12 }),
        fc.integer({ min: -2, max: 2 }),
        fc.nat(),
        fc.integer({ min: -1, max: 255 }),
        fc.array(fc.integer({ min: 1, max: 30_000 }), { minLength: 1, maxLength: 5 }),
        (records, countDelta, at, byte, cuts) => {
          const frame = Buffer.concat(records);
          // Sometimes a byte changed (byte -1: none), sometimes the count claimed off by a little.
          if (byte >= 0 && frame.length > 0) frame[at % frame.length] = byte;
          const count = Math.max(1, records.length + countDelta);
          const want = slowCheck(frame, count);
          assert.equal(checkRecords(frame, 0, frame.length, count), want);
          const pieces: Buffer[] = [];
          for (let pos = 0, k = 0; pos < frame.length; k++) {
            const n = cuts[k % cuts.length]!;
            pieces.push(frame.subarray(pos, pos + n));
            pos += n;
          }
          if (pieces.length > 0) assert.equal(checkRecordsInPieces(pieces, 0, count), want);
        },
      ),
      { numRuns: 3000, seed: 20261201, endOnFailure: true },
    );
  });
});

/** An unsigned LEB128 length. */
function leb(n: number): Buffer {
  const out: number[] = [];
  while (n >= 0x80) {
    out.push((n & 0x7f) | 0x80);
    n >>>= 7;
  }
  out.push(n);
  return Buffer.from(out);
}
