/**
 * The ciphers on the addon (native/aead.c) against node:crypto's, byte for byte: both seal every size
 * from empty to a full record the same way, with associated data, with the plaintext in pieces and with the
 * largest nonces; each opens what the other sealed; a changed byte fails; opening in place gives the same
 * plaintext. The cacophony vectors (noise-vectors.test.ts) run on the default ciphers, the addon's here.
 */
import assert from "node:assert/strict";
import crypto from "node:crypto";
import { describe, it } from "node:test";
import { nativeAead } from "../../src/security/native-aead.js";
import { CipherState } from "../../src/security/noise.js";
import { RecordReader, sealRecords } from "../../src/security/records.js";
import { aesGcm, chaChaPoly, nodeCryptoAead } from "../../src/security/suite.js";

const SIZES = [0, 1, 15, 16, 17, 63, 64, 1000, 1024, 4096, 16_384, 65_519];
const NONCES: (number | bigint)[] = [0, 1, 255, 2 ** 32 - 1, 2 ** 32, 2 ** 53 - 1, 2n ** 64n - 1n];

describe("AEAD on the addon", () => {
  it("loads on Linux, and is what the suite uses", () => {
    assert.equal(process.platform, "linux", "these tests run where the addon is built");
    assert.ok(nativeAead, "build/Release/ezipc_aead.node did not load");
    assert.equal(chaChaPoly, nativeAead.chaChaPoly);
    assert.equal(aesGcm, nativeAead.aesGcm);
  });

  for (const name of ["chaChaPoly", "aesGcm"] as const) {
    it(`${name}: seals as node:crypto does, opens what it sealed, refuses a changed byte`, () => {
      const native = nativeAead![name];
      const ref = nodeCryptoAead[name];
      for (const size of SIZES) {
        for (const n of NONCES) {
          const key = crypto.randomBytes(32);
          const ad = crypto.randomBytes(size % 3 === 0 ? 0 : 32);
          const plain = crypto.randomBytes(size);
          const sealed = native.encrypt(key, n, ad, plain);
          assert.deepEqual(sealed, ref.encrypt(key, n, ad, plain), `size ${size}, n ${n}`);
          if (typeof n === "bigint") continue; // decrypt takes the counter as a number
          // In pieces, split anywhere (and with empty pieces).
          const cut = Math.floor(size / 3);
          const parts = [plain.subarray(0, cut), plain.subarray(cut, cut), plain.subarray(cut)];
          assert.deepEqual(Buffer.concat(native.encryptParts(key, n, ad, parts, size)), sealed);
          assert.deepEqual(native.decrypt(key, n, ad, sealed), plain);
          assert.deepEqual(ref.decrypt(key, n, ad, sealed), plain);
          const copy = Buffer.from(sealed);
          assert.deepEqual(native.decrypt(key, n, ad, copy, true), plain, "in place");
          for (const at of [0, Math.floor(sealed.length / 2), sealed.length - 1]) {
            const bad = Buffer.from(sealed);
            bad[at]! ^= 0x40;
            assert.equal(native.decrypt(key, n, ad, bad), null, `byte ${at} changed`);
          }
          assert.equal(native.decrypt(key, n === 0 ? 1 : n - 1, ad, sealed), null, "another nonce");
          assert.equal(native.decrypt(crypto.randomBytes(32), n, ad, sealed), null, "another key");
        }
      }
      assert.equal(
        native.decrypt(Buffer.alloc(32), 0, Buffer.alloc(0), Buffer.alloc(15)),
        null,
        "shorter than a tag",
      );
    });
  }

  it("refuses bad arguments with a TypeError or RangeError, not a crash", () => {
    const c = nativeAead!.aesGcm;
    const k = Buffer.alloc(32);
    assert.throws(() => c.encrypt(Buffer.alloc(31), 0, Buffer.alloc(0), Buffer.alloc(4)), RangeError);
    assert.throws(() => c.encrypt(k, -1, Buffer.alloc(0), Buffer.alloc(4)), RangeError);
    assert.throws(() => c.encrypt(k, 0.5, Buffer.alloc(0), Buffer.alloc(4)), RangeError);
    assert.throws(() => c.encrypt(k, 2 ** 53, Buffer.alloc(0), Buffer.alloc(4)), RangeError);
    assert.throws(() => c.encrypt(k, 2n ** 64n, Buffer.alloc(0), Buffer.alloc(4)), RangeError);
    assert.throws(() => c.encrypt(k, 0, Buffer.alloc(0), "text" as unknown as Uint8Array), TypeError);
    assert.throws(
      () =>
        c.encryptParts(
          k,
          0,
          Buffer.alloc(0),
          Array.from({ length: 65 }, () => Buffer.alloc(1)),
          65,
        ),
      RangeError,
    );
    assert.throws(
      () =>
        c.decryptPartsInPlace!(
          k,
          0,
          Buffer.alloc(0),
          Array.from({ length: 65 }, () => Buffer.alloc(1)),
        ),
      RangeError,
    );
    assert.equal(
      c.decryptPartsInPlace!(k, 0, Buffer.alloc(0), [Buffer.alloc(7), Buffer.alloc(8)]),
      false,
      "< a tag",
    );
    assert.throws(
      () => c.encryptInto!(k, 0, Buffer.alloc(0), [Buffer.alloc(10)], Buffer.alloc(25)),
      RangeError,
    );
  });

  it("records opened in place carry the same plaintexts, split anywhere; a changed record still fails", () => {
    // Each side on the addon or on node:crypto (the fallback: records in pieces, opened by copy), and the
    // reader owning its chunks or not: the same bytes come out of every pairing.
    const impls = { addon: aesGcm, "node:crypto": nodeCryptoAead.aesGcm };
    for (const [sender, sendCipher] of Object.entries(impls)) {
      for (const [receiver, receiveCipher] of Object.entries(impls)) {
        for (const owns of [false, true]) {
          const key = crypto.randomBytes(32);
          const send = new CipherState(sendCipher);
          const receive = new CipherState(receiveCipher);
          send.initializeKey(key);
          receive.initializeKey(Buffer.from(key));
          const plains = SIZES.filter((s) => s > 0).map((s) => crypto.randomBytes(s));
          // A rekey every 3 records: both sides must agree on it whatever the implementation.
          const stream = Buffer.concat(sealRecords(send, plains, 3));
          const reader = new RecordReader(receive, 3, owns);
          const got: Buffer[] = [];
          for (let pos = 0, step = 1; pos < stream.length; pos += step, step = ((step * 7) % 9000) + 1) {
            reader.push(stream.subarray(pos, pos + step), (p) => got.push(Buffer.from(p)));
          }
          assert.deepEqual(
            Buffer.concat(got),
            Buffer.concat(plains),
            `${sender} -> ${receiver}, ownsChunks ${owns}`,
          );
        }
      }
    }
    const key = crypto.randomBytes(32);
    const send = new CipherState(chaChaPoly);
    const receive = new CipherState(chaChaPoly);
    send.initializeKey(key);
    receive.initializeKey(Buffer.from(key));
    const stream = Buffer.concat(sealRecords(send, [crypto.randomBytes(500)], 1000));
    stream[100]! ^= 1;
    assert.throws(
      () =>
        new RecordReader(receive, 1000, true).push(stream, () =>
          assert.fail("a changed record was delivered"),
        ),
      { code: "EZIPC_DECRYPT" },
    );
  });
});
