/**
 * The cryptographic functions of a Noise protocol name (`Noise_XX_25519_ChaChaPoly_SHA256`): the DH
 * function (25519, in `x25519.ts`, re-exported here), the cipher (ChaChaPoly, AESGCM) and the hash
 * (SHA256, SHA512, BLAKE2s, BLAKE2b), all on OpenSSL: the ciphers on this package's addon where it loads (`native-aead.ts`, several times faster on
 * large records), else on `node:crypto` like everything else here. Noise revision 34, sections 4 and 12.
 */
import crypto from "node:crypto";
import { noiseHkdf } from "./hkdf.js";
import { nativeAead } from "./native-aead.js";

export { dh25519, type KeyPair, keyPairFromPrivate } from "./x25519.js";

/** An AEAD cipher with Noise's 64-bit nonce. */
export interface CipherFn {
  readonly name: string;
  /** `ENCRYPT(k, n, ad, plaintext)`: the ciphertext with its 16-byte tag appended. */
  encrypt(k: Uint8Array, n: number | bigint, ad: Uint8Array, plaintext: Uint8Array): Buffer;
  /**
   * ENCRYPT of the concatenation of `parts` (`length` bytes in all), without concatenating: the
   * ciphertext in pieces, the tag last.
   */
  encryptParts(
    k: Uint8Array,
    n: number,
    ad: Uint8Array,
    parts: readonly Uint8Array[],
    length: number,
  ): Buffer[];
  /**
   * `DECRYPT(k, n, ad, ciphertext)`; null if authentication fails. `inPlace`: the plaintext may be
   * written over `ciphertext` (which is then garbage if authentication fails); an implementation that
   * cannot returns a new buffer.
   */
  decrypt(k: Uint8Array, n: number, ad: Uint8Array, ciphertext: Uint8Array, inPlace?: boolean): Buffer | null;
  /**
   * Optional (the addon's ciphers have it): ENCRYPT of `parts` joined, written to `out` (ciphertext, then
   * the tag; `out` holds at least their length + 16 bytes), so a record needs no buffer of its own.
   */
  encryptInto?(k: Uint8Array, n: number, ad: Uint8Array, parts: readonly Uint8Array[], out: Uint8Array): void;
  /**
   * Optional, with {@link encryptInto}: DECRYPT of a ciphertext (tag last) that lies in `parts`, the
   * plaintext written over it where it lies; false if authentication fails (the parts are then garbage).
   */
  decryptPartsInPlace?(k: Uint8Array, n: number, ad: Uint8Array, parts: readonly Uint8Array[]): boolean;
}

const TAG = 16;

function aead(name: string, algorithm: "chacha20-poly1305" | "aes-256-gcm", bigEndian: boolean): CipherFn {
  const nonce = (n: number | bigint): Buffer => {
    const iv = Buffer.alloc(12);
    if (typeof n === "bigint") {
      if (bigEndian) iv.writeBigUInt64BE(n, 4);
      else iv.writeBigUInt64LE(n, 4);
      return iv;
    }
    // A number (below 2^53): two 32-bit halves, without a BigInt per record.
    const high = Math.floor(n / 2 ** 32);
    const low = n >>> 0;
    if (bigEndian) {
      iv.writeUInt32BE(high, 4);
      iv.writeUInt32BE(low, 8);
    } else {
      iv.writeUInt32LE(low, 4);
      iv.writeUInt32LE(high, 8);
    }
    return iv;
  };
  return {
    name,
    encrypt(k, n, ad, plaintext) {
      const c = crypto.createCipheriv(algorithm as crypto.CipherGCMTypes, k, nonce(n), {
        authTagLength: TAG,
      }) as crypto.CipherGCM;
      c.setAAD(ad, { plaintextLength: plaintext.length });
      const body = c.update(plaintext);
      c.final();
      return Buffer.concat([body, c.getAuthTag()]);
    },
    encryptParts(k, n, ad, parts, length) {
      const c = crypto.createCipheriv(algorithm as crypto.CipherGCMTypes, k, nonce(n), {
        authTagLength: TAG,
      });
      c.setAAD(ad, { plaintextLength: length });
      const out = parts.map((p) => c.update(p));
      c.final();
      out.push(c.getAuthTag());
      return out;
    },
    decrypt(k, n, ad, ciphertext) {
      if (ciphertext.length < TAG) return null;
      const d = crypto.createDecipheriv(algorithm as crypto.CipherGCMTypes, k, nonce(n), {
        authTagLength: TAG,
      }) as crypto.DecipherGCM;
      d.setAAD(ad, { plaintextLength: ciphertext.length - TAG });
      d.setAuthTag(ciphertext.subarray(ciphertext.length - TAG));
      const body = d.update(ciphertext.subarray(0, ciphertext.length - TAG));
      try {
        d.final();
      } catch {
        return null;
      }
      return body;
    },
  };
}

/** The ciphers on node:crypto: what {@link chaChaPoly} and {@link aesGcm} are where the addon is missing. */
export const nodeCryptoAead = {
  /** ChaCha20-Poly1305: nonce is 4 zero bytes and the counter, little-endian. */
  chaChaPoly: aead("ChaChaPoly", "chacha20-poly1305", false),
  /** AES-256-GCM: nonce is 4 zero bytes and the counter, big-endian. */
  aesGcm: aead("AESGCM", "aes-256-gcm", true),
};

/** ChaCha20-Poly1305 (on the addon where it loads, else node:crypto). */
export const chaChaPoly: CipherFn = nativeAead?.chaChaPoly ?? nodeCryptoAead.chaChaPoly;
/** AES-256-GCM (on the addon where it loads, else node:crypto). */
export const aesGcm: CipherFn = nativeAead?.aesGcm ?? nodeCryptoAead.aesGcm;

/** A hash function with the HMAC and HKDF Noise builds on it. */
export interface HashFn {
  readonly name: string;
  readonly hashLen: number;
  readonly blockLen: number;
  hash(...data: Uint8Array[]): Buffer;
  hmac(key: Uint8Array, ...data: Uint8Array[]): Buffer;
  /** HKDF(chainingKey, ikm, numOutputs) of the Noise specification, section 4.3. */
  hkdf(chainingKey: Uint8Array, ikm: Uint8Array, outputs: 2 | 3): Buffer[];
}

function hashFn(name: string, algorithm: string, hashLen: number, blockLen: number): HashFn {
  const hash = (...data: Uint8Array[]): Buffer => {
    const h = crypto.createHash(algorithm);
    for (const d of data) h.update(d);
    return h.digest();
  };
  // HMAC (RFC 2104) by hand: OpenSSL's HMAC does not take every BLAKE2 variant.
  const hmac = (key: Uint8Array, ...data: Uint8Array[]): Buffer => {
    const k = Buffer.alloc(blockLen);
    if (key.length > blockLen) hash(key).copy(k);
    else k.set(key);
    const ipad = Buffer.allocUnsafe(blockLen);
    const opad = Buffer.allocUnsafe(blockLen);
    for (let i = 0; i < blockLen; i++) {
      ipad[i] = k[i]! ^ 0x36;
      opad[i] = k[i]! ^ 0x5c;
    }
    return hash(opad, hash(ipad, ...data));
  };
  return {
    name,
    hashLen,
    blockLen,
    hash,
    hmac,
    hkdf: noiseHkdf(hmac),
  };
}

export const sha256 = hashFn("SHA256", "sha256", 32, 64);
export const sha512 = hashFn("SHA512", "sha512", 64, 128);
export const blake2s = hashFn("BLAKE2s", "blake2s256", 32, 64);
export const blake2b = hashFn("BLAKE2b", "blake2b512", 64, 128);

export const CIPHERS: Record<string, CipherFn> = { ChaChaPoly: chaChaPoly, AESGCM: aesGcm };
export const HASHES: Record<string, HashFn> = {
  SHA256: sha256,
  SHA512: sha512,
  BLAKE2s: blake2s,
  BLAKE2b: blake2b,
};
