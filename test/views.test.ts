import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { bufferView, viewAt } from "../src/views.js";

describe("bufferView and viewAt", () => {
  it("is the Buffer subarray makes: same bytes, same memory, Buffer methods", () => {
    // A pooled Buffer: its byteOffset into the pool is not 0.
    const buf = Buffer.from("a pooled buffer of some bytes");
    for (const [start, end] of [
      [0, 0],
      [0, buf.length],
      [2, 8],
      [buf.length, buf.length],
    ] as const) {
      const v = bufferView(buf, start, end);
      assert.ok(Buffer.isBuffer(v));
      assert.deepEqual(v, buf.subarray(start, end));
      assert.equal(v.buffer, buf.buffer);
      assert.equal(v.byteOffset, buf.byteOffset + start);
      assert.equal(v.toString("utf8"), buf.toString("utf8", start, end));
    }
    const w = viewAt(buf.buffer, buf.byteOffset + 3, 4);
    assert.ok(Buffer.isBuffer(w));
    assert.deepEqual(w, buf.subarray(3, 7));
    const v = bufferView(buf, 2, 8);
    v[0] = 0x5a;
    assert.equal(buf[2], 0x5a, "a view, not a copy");
    assert.ok(Buffer.isBuffer(v.subarray(1, 2)));
  });
});
