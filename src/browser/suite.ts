/**
 * The Noise suite of src/security/suite.ts for the browser build, on the audited pure-JS @noble
 * libraries instead of `node:crypto`: X25519 (@noble/curves), ChaCha20-Poly1305 (@noble/ciphers),
 * SHA-256 with HMAC (@noble/hashes) — what `Noise_{IK,XX}_25519_ChaChaPoly_SHA256` needs, the protocol a
 * page speaks (AES-GCM is left out: in JavaScript it is the slower of the two, and it would add to every
 * page). The same results as the Node suite (test/transport/browser-secure.test.ts checks them);
 * scripts/build-browser.mjs puts this file in its place, so src/security/noise.ts, handshake.ts and
 * records.ts run unchanged in a page.
 */
import { chacha20poly1305 } from "@noble/ciphers/chacha.js";
import { x25519 } from "@noble/curves/ed25519.js";
import { hmac as nobleHmac } from "@noble/hashes/hmac.js";
import { sha256 as nobleSha256 } from "@noble/hashes/sha2.js";
import { EzipcError } from "../errors.js";
import { noiseHkdf } from "../security/hkdf.js";
import type { CipherFn, HashFn, KeyPair } from "../security/suite.js";

export type { CipherFn, HashFn, KeyPair };

const buf = (u: Uint8Array): Buffer => Buffer.from(u.buffer, u.byteOffset, u.byteLength);

/** The key pair of a raw 32-byte Curve25519 private key. */
export function keyPairFromPrivate(privateKey: Uint8Array): KeyPair {
  return { publicKey: buf(x25519.getPublicKey(privateKey)), privateKey: Buffer.from(privateKey) };
}

/** Curve25519 (X25519). */
export const dh25519 = {
  name: "25519",
  dhLen: 32,
  generateKeyPair(): KeyPair {
    return keyPairFromPrivate(x25519.utils.randomSecretKey());
  },
  /** DH(priv, pub). Throws `EZIPC_HANDSHAKE` for a public key that is not one, or a low-order point. */
  dh(privateKey: Uint8Array, publicKey: Uint8Array): Buffer {
    if (publicKey.length !== 32)
      throw new EzipcError("EZIPC_HANDSHAKE", "a Curve25519 public key is 32 bytes");
    try {
      return buf(x25519.getSharedSecret(privateKey, publicKey));
    } catch (err) {
      throw new EzipcError("EZIPC_HANDSHAKE", `Diffie-Hellman failed: ${(err as Error).message}`);
    }
  },
};

type Aead = (
  key: Uint8Array,
  nonce: Uint8Array,
  aad?: Uint8Array,
) => {
  encrypt(p: Uint8Array): Uint8Array;
  decrypt(c: Uint8Array): Uint8Array;
};

function aead(name: string, make: Aead, bigEndian: boolean): CipherFn {
  // (bigEndian: AES-GCM's nonce; kept so that a second cipher is one line)
  const nonce = (n: number | bigint): Uint8Array => {
    const iv = new Uint8Array(12);
    new DataView(iv.buffer).setBigUint64(4, BigInt(n), !bigEndian);
    return iv;
  };
  const encrypt = (k: Uint8Array, n: number | bigint, ad: Uint8Array, plaintext: Uint8Array) =>
    buf(make(k, nonce(n), ad).encrypt(plaintext));
  return {
    name,
    encrypt,
    encryptParts(k, n, ad, parts, length) {
      const joined = new Uint8Array(length);
      let at = 0;
      for (const p of parts) {
        joined.set(p, at);
        at += p.length;
      }
      return [encrypt(k, n, ad, joined)];
    },
    decrypt(k, n, ad, ciphertext) {
      if (ciphertext.length < 16) return null;
      try {
        return buf(make(k, nonce(n), ad).decrypt(ciphertext));
      } catch {
        return null;
      }
    },
  };
}

/** ChaCha20-Poly1305: nonce is 4 zero bytes and the counter, little-endian. */
export const chaChaPoly = aead("ChaChaPoly", chacha20poly1305 as unknown as Aead, false);

type NobleHash = typeof nobleSha256;

function hashFn(name: string, h: NobleHash, hashLen: number, blockLen: number): HashFn {
  const hash = (...data: Uint8Array[]): Buffer => {
    const s = h.create();
    for (const d of data) s.update(d);
    return buf(s.digest());
  };
  const hmac = (key: Uint8Array, ...data: Uint8Array[]): Buffer => {
    const s = nobleHmac.create(h, key);
    for (const d of data) s.update(d);
    return buf(s.digest());
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

export const sha256 = hashFn("SHA256", nobleSha256, 32, 64);

export const CIPHERS: Record<string, CipherFn> = { ChaChaPoly: chaChaPoly };
export const HASHES: Record<string, HashFn> = { SHA256: sha256 };
