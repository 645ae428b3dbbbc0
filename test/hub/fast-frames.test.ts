import assert from "node:assert/strict";
import { describe, it } from "node:test";
import fc from "fast-check";
import {
  encodeHeaders,
  encodeMessage,
  encodeMessageFromPublish,
  encodePublish,
  MESSAGE_SID_OFFSET,
  parseMessage,
  parsePublish,
} from "../../src/hub/fast-frames.js";
import { hubProtocol } from "../../src/hub/protocol.js";

const proto = hubProtocol();
const topic = fc.stringMatching(/^[a-z0-9]{1,8}(\.[a-z0-9]{1,8}){0,3}$/);
const headers = fc.array(
  fc.record({ key: fc.string({ maxLength: 20 }), value: fc.string({ maxLength: 60 }) }),
  { maxLength: 4 },
);
const payload = fc.uint8Array({ maxLength: 3000 });

describe("fast publish/message frames match the schema codec byte for byte", () => {
  it("encodePublish == protocol.encode('publish'), and parsePublish reads it back", () => {
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 0xffffffff }), topic, headers, payload, (rid, t, h, p) => {
        const generic = Buffer.from(proto.encode("publish", { rid, topic: t, headers: h, payload: p }));
        const fast = encodePublish(
          Buffer.alloc(8192),
          16384,
          rid,
          Buffer.from(t, "latin1"),
          encodeHeaders(h),
          p,
        );
        assert.deepEqual(fast, generic);
        const v = parsePublish(generic);
        assert.ok(v);
        assert.equal(v.rid, rid);
        assert.equal(v.topic, t);
        assert.equal(v.headerCount, h.length);
        assert.deepEqual(generic.subarray(v.payloadStart), Buffer.from(p));
        // The message built from the publish frame equals the codec's message.
        const seq = BigInt(rid) * 3n;
        const message = encodeMessageFromPublish(
          Buffer.from(t, "latin1"),
          seq,
          2.5,
          Buffer.from("pub#1"),
          generic,
          v,
        );
        const expected = proto.encode("message", {
          sid: 0,
          topic: t,
          seq,
          time: 2.5,
          publisher: "pub#1",
          headers: h,
          payload: p,
        });
        assert.deepEqual(message, Buffer.from(expected));
      }),
      { numRuns: 300, seed: 11 },
    );
  });

  it("encodeMessage == protocol.encode('message') (sid 0), and parseMessage reads what the codec wrote", () => {
    fc.assert(
      fc.property(
        topic,
        fc.bigUint64Array({ minLength: 1, maxLength: 1 }),
        fc.double({ noNaN: true }),
        fc.string({ maxLength: 30 }),
        headers,
        payload,
        fc.integer({ min: 0, max: 0xffffffff }),
        (t, [seq], time, publisher, h, p, sid) => {
          const body = { sid: 0, topic: t, seq: seq!, time, publisher, headers: h, payload: p };
          const generic = Buffer.from(proto.encode("message", body));
          const fast = encodeMessage(
            Buffer.from(t, "latin1"),
            seq!,
            time,
            Buffer.from(publisher, "utf8"),
            encodeHeaders(h),
            p,
          );
          assert.deepEqual(fast, generic);
          fast.writeUInt32LE(sid, MESSAGE_SID_OFFSET);
          const m = parseMessage(fast);
          assert.ok(m);
          assert.equal(m.sid, sid);
          assert.equal(m.topic, t);
          assert.equal(m.seq, seq);
          assert.equal(Object.is(m.time, time) || m.time === time, true);
          assert.equal(m.publisher, publisher);
          assert.deepEqual({ ...m.headers }, Object.fromEntries(h.map((x) => [x.key, x.value])));
          assert.deepEqual(Buffer.from(m.payload), Buffer.from(p));
        },
      ),
      { numRuns: 300, seed: 12 },
    );
  });

  it("every truncation and random corruption is rejected or parsed without throwing", () => {
    const frame = Buffer.from(
      proto.encode("publish", {
        rid: 5,
        topic: "a.b",
        headers: [{ key: "k", value: "v" }],
        payload: new Uint8Array(20),
      }),
    );
    for (let n = 0; n < frame.length; n++)
      assert.equal(parsePublish(frame.subarray(0, n)), null, `prefix ${n}`);
    const msg = encodeMessage(
      Buffer.from("a.b"),
      7n,
      1.5,
      Buffer.from("p"),
      encodeHeaders([]),
      new Uint8Array(20),
    );
    for (let n = 0; n < msg.length; n++) assert.equal(parseMessage(msg.subarray(0, n)), null, `prefix ${n}`);
    fc.assert(
      fc.property(fc.uint8Array({ minLength: 2, maxLength: 80 }), (bytes) => {
        const b = Buffer.from(bytes);
        b.writeUInt16LE(23, 0);
        parsePublish(b);
        b.writeUInt16LE(26, 0);
        parseMessage(b);
      }),
      { numRuns: 2000, seed: 13 },
    );
  });
});
