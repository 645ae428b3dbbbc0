import assert from "node:assert/strict";
import { describe, it } from "node:test";
import * as wsModule from "ws";
import { encodeMessages } from "../../src/transport/ws-stream.js";

/** ws's frame parser (exported by the package, not by its type definitions). */
const Receiver = (
  wsModule as unknown as { Receiver: new (o: object) => NodeJS.WritableStream & NodeJS.EventEmitter }
).Receiver;

/** The messages ws's own parser reads from `bytes` (as a server when the frames are masked). */
function parse(bytes: Buffer, masked: boolean, chunk = bytes.length): Buffer[] {
  const got: Buffer[] = [];
  const r = new Receiver({ isServer: masked, maxPayload: 0 });
  r.on("message", (data: Buffer, isBinary: boolean) => {
    assert.equal(isBinary, true);
    got.push(Buffer.from(data));
  });
  r.on("error", (err: Error) => assert.fail(err));
  // (copies: the parser unmasks in place)
  for (let at = 0; at < bytes.length; at += chunk) r.write(Buffer.from(bytes.subarray(at, at + chunk)));
  return got;
}

describe("ws:// frame encoding (RFC 6455 §5.2), checked by the ws library's own parser", () => {
  // The length forms: 7-bit (0–125), 16-bit (126–65535), 64-bit (65536 and over).
  const sizes = [0, 1, 3, 4, 5, 125, 126, 127, 65535, 65536, 70000];
  const payloads = sizes.map((n) => Buffer.from(Array.from({ length: n }, (_, i) => (i * 31 + n) & 0xff)));
  const all = Buffer.concat(payloads);
  const bounds: number[] = [];
  let at = 0;
  for (const p of payloads) {
    bounds.push(at, at + p.length);
    at += p.length;
  }

  for (const masked of [false, true]) {
    it(`${masked ? "masked (client to server)" : "unmasked (server to client)"}: every length form, whole and fed byte by byte`, () => {
      const bytes = encodeMessages({ buf: all, bounds, count: bounds.length }, masked);
      assert.deepEqual(parse(bytes, masked), payloads);
      // Headers and bodies split anywhere: the first 300 bytes one at a time, the rest in 7-byte chunks.
      const small = encodeMessages({ buf: all, bounds: bounds.slice(0, 16), count: 16 }, masked);
      assert.deepEqual(parse(small, masked, 1), payloads.slice(0, 8));
      assert.deepEqual(parse(bytes, masked, 7), payloads);
    });
  }

  it("masks with a fresh key per frame: the same payload twice is sent differently", () => {
    const p = Buffer.alloc(32, 0x41);
    const bytes = encodeMessages({ buf: Buffer.concat([p, p]), bounds: [0, 32, 32, 64], count: 4 }, true);
    const first = bytes.subarray(2, 2 + 4 + 32);
    const second = bytes.subarray(2 + 4 + 32 + 2);
    assert.notDeepEqual(first, second);
    assert.deepEqual(parse(bytes, true), [p, p]);
  });
});
