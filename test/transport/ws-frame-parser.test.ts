/**
 * The WebSocket receiving state machine (src/transport/ws-frame-parser.ts), byte by byte, against frames
 * made by the `ws` library's own Sender: every length form, masked and unmasked, fragmented messages with
 * control frames between the fragments, split at every byte; and every violation RFC 6455 names.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import * as wsModule from "ws";
import { isEzipcError } from "../../src/errors.js";
import { WsFrameParser, type WsSink } from "../../src/transport/ws-frame-parser.js";
import { seededRandom } from "../helpers.js";

/** ws's frame encoder (exported by the package, not by its type definitions). */
const Sender = (
  wsModule as unknown as {
    Sender: {
      frame(
        data: Buffer,
        o: { fin: boolean; rsv1: boolean; opcode: number; mask: boolean; readOnly: boolean },
      ): Buffer[];
    };
  }
).Sender;

function frame(opcode: number, data: Buffer, mask: boolean, fin = true): Buffer {
  // readOnly: false lets ws mask in place; give it a copy.
  return Buffer.concat(Sender.frame(Buffer.from(data), { fin, rsv1: false, opcode, mask, readOnly: false }));
}

interface Seen {
  data: Buffer[];
  pings: string[];
  pongs: string[];
  close: [number, string] | null;
}

function sink(seen: Seen): WsSink {
  return {
    data: (b) => seen.data.push(Buffer.from(b)),
    ping: (p) => seen.pings.push(p.toString()),
    pong: (p) => seen.pongs.push(p.toString()),
    close: (code, reason) => {
      seen.close = [code, reason];
    },
  };
}

/** Feeds `bytes` (a copy: the parser writes into its chunks) in pieces at `cuts`. */
function parse(bytes: Buffer, masked: boolean, cuts: number[], max = 1 << 20): Seen {
  const seen: Seen = { data: [], pings: [], pongs: [], close: null };
  const p = new WsFrameParser({ expectMasked: masked, maxMessageBytes: max });
  let at = 0;
  for (const cut of [...cuts, bytes.length]) {
    p.push(Buffer.from(bytes.subarray(at, cut)), sink(seen));
    at = cut;
  }
  return seen;
}

describe("WebSocket frame parser (RFC 6455 §5)", () => {
  const random = seededRandom(41);
  // Messages of every length form, fragmented at random, with pings and pongs between fragments.
  const sizes = [0, 1, 5, 125, 126, 127, 1000, 65535, 65536, 70000];
  const messages = sizes.map((n) => Buffer.from(Array.from({ length: n }, (_, i) => (i * 7 + n) & 0xff)));

  for (const masked of [true, false]) {
    const wire: Buffer[] = [];
    let pings = 0;
    for (const m of messages) {
      const pieces = m.length > 10 ? 1 + Math.floor(random() * 3) : 1;
      const step = Math.ceil(m.length / pieces);
      for (let i = 0, at = 0; i < pieces; i++, at += step) {
        wire.push(frame(i === 0 ? 2 : 0, m.subarray(at, at + step), masked, i === pieces - 1));
        if (i < pieces - 1) wire.push(frame(9, Buffer.from(`ping ${pings++}`), masked));
      }
      wire.push(frame(10, Buffer.from("pong"), masked));
    }
    wire.push(frame(8, Buffer.concat([Buffer.from([0x03, 0xe8]), Buffer.from("bye ✓")]), masked));
    wire.push(frame(2, Buffer.from("after the close"), masked));
    const bytes = Buffer.concat(wire);
    const expected = Buffer.concat(messages);

    const check = (seen: Seen) => {
      assert.deepEqual(Buffer.concat(seen.data), expected);
      assert.deepEqual(
        seen.pings,
        Array.from({ length: pings }, (_, i) => `ping ${i}`),
      );
      assert.equal(seen.pongs.length, messages.length);
      assert.deepEqual(seen.close, [1000, "bye ✓"]);
    };

    it(`${masked ? "masked (at a server)" : "unmasked (at a client)"}: whole, in random pieces, and at every byte of the headers`, () => {
      check(parse(bytes, masked, []));
      for (let round = 0; round < 20; round++) {
        const cuts = Array.from({ length: 30 }, () => Math.floor(random() * bytes.length)).sort(
          (a, b) => a - b,
        );
        check(parse(bytes, masked, cuts));
      }
      // Every split of the first frames, one byte at a time.
      const head = Math.min(bytes.length, 400);
      check(
        parse(
          bytes,
          masked,
          Array.from({ length: head }, (_, i) => i + 1),
        ),
      );
    });
  }

  it("gives the payloads of one chunk as one run of bytes, moved over the headers in place", () => {
    const frames = Buffer.concat([frame(2, Buffer.from("abc"), true), frame(2, Buffer.from("defg"), true)]);
    const seen = parse(frames, true, []);
    assert.deepEqual(seen.data, [Buffer.from("abcdefg")]);
  });

  const violations: [string, (masked: boolean) => Buffer, string, number?][] = [
    ["a text message", (m) => frame(1, Buffer.from("hi"), m), "EZIPC_PROTOCOL"],
    [
      "reserved bits",
      (m) => {
        const f = frame(2, Buffer.from("x"), m);
        f[0] = f[0]! | 0x40;
        return f;
      },
      "EZIPC_PROTOCOL",
    ],
    ["an unknown opcode", (m) => frame(3, Buffer.from("x"), m), "EZIPC_PROTOCOL"],
    ["an unknown control opcode", (m) => frame(11, Buffer.from("x"), m), "EZIPC_PROTOCOL"],
    ["a fragmented control frame", (m) => frame(9, Buffer.from("x"), m, false), "EZIPC_PROTOCOL"],
    ["a control frame over 125 bytes", (m) => frame(9, Buffer.alloc(126), m), "EZIPC_PROTOCOL"],
    ["a continuation outside a message", (m) => frame(0, Buffer.from("x"), m), "EZIPC_PROTOCOL"],
    [
      "a new message inside a fragmented one",
      (m) => Buffer.concat([frame(2, Buffer.from("a"), m, false), frame(2, Buffer.from("b"), m)]),
      "EZIPC_PROTOCOL",
    ],
    ["a message over the limit", (m) => frame(2, Buffer.alloc(101), m), "EZIPC_FRAME_TOO_LARGE", 100],
    [
      "a fragmented message over the limit",
      (m) => Buffer.concat([frame(2, Buffer.alloc(60), m, false), frame(0, Buffer.alloc(60), m)]),
      "EZIPC_FRAME_TOO_LARGE",
      100,
    ],
    [
      "a 64-bit length beyond 2^53",
      (m) => Buffer.from([0x82, (m ? 0x80 : 0) | 127, 0xff, 0xff, 0, 0, 0, 0, 0, 0, 1, 2, 3, 4]),
      "EZIPC_FRAME_TOO_LARGE",
    ],
    ["a close frame of one byte", (m) => frame(8, Buffer.from([3]), m), "EZIPC_PROTOCOL"],
    ["a close reason that is not UTF-8", (m) => frame(8, Buffer.from([3, 0xe8, 0xff]), m), "EZIPC_PROTOCOL"],
  ];
  for (const [what, make, code, max] of violations) {
    it(`refuses ${what} with ${code}, and stays refused`, () => {
      for (const masked of [true, false]) {
        const p = new WsFrameParser({ expectMasked: masked, maxMessageBytes: max ?? 1 << 20 });
        const seen: Seen = { data: [], pings: [], pongs: [], close: null };
        assert.throws(
          () => p.push(make(masked), sink(seen)),
          (e) => isEzipcError(e, code as "EZIPC_PROTOCOL"),
        );
        assert.throws(
          () => p.push(frame(2, Buffer.from("ok"), masked), sink(seen)),
          (e) => isEzipcError(e, code as "EZIPC_PROTOCOL"),
        );
      }
    });
  }

  it("refuses unmasked frames at a server and masked ones at a client", () => {
    const atServer = new WsFrameParser({ expectMasked: true, maxMessageBytes: 1000 });
    const seen: Seen = { data: [], pings: [], pongs: [], close: null };
    assert.throws(
      () => atServer.push(frame(2, Buffer.from("x"), false), sink(seen)),
      (e) => isEzipcError(e, "EZIPC_PROTOCOL"),
    );
    const atClient = new WsFrameParser({ expectMasked: false, maxMessageBytes: 1000 });
    assert.throws(
      () => atClient.push(frame(2, Buffer.from("x"), true), sink(seen)),
      (e) => isEzipcError(e, "EZIPC_PROTOCOL"),
    );
  });
});
