/**
 * Curve25519 (X25519) on node:crypto: key pairs as raw 32-byte keys, and Noise's DH function. Its own
 * module so that reading and writing key files (keys.ts) loads no cipher.
 */
import crypto from "node:crypto";
import { EzipcError } from "../errors.js";

/** A Curve25519 key pair as raw 32-byte keys. */
export interface KeyPair {
  readonly publicKey: Buffer;
  readonly privateKey: Buffer;
}

const PKCS8_X25519 = Buffer.from("302e020100300506032b656e04220420", "hex");
const SPKI_X25519 = Buffer.from("302a300506032b656e032100", "hex");

function privateKeyObject(raw: Uint8Array): crypto.KeyObject {
  return crypto.createPrivateKey({ key: Buffer.concat([PKCS8_X25519, raw]), format: "der", type: "pkcs8" });
}

/** Curve25519 (X25519). */
export const dh25519 = {
  name: "25519",
  dhLen: 32,
  generateKeyPair(): KeyPair {
    const { privateKey } = crypto.generateKeyPairSync("x25519");
    const raw = privateKey.export({ format: "der", type: "pkcs8" }).subarray(PKCS8_X25519.length);
    return keyPairFromPrivate(raw);
  },
  /** DH(priv, pub). Throws `EZIPC_HANDSHAKE` for a public key that is not one (e.g. of the wrong size). */
  dh(privateKey: Uint8Array, publicKey: Uint8Array): Buffer {
    if (publicKey.length !== 32)
      throw new EzipcError("EZIPC_HANDSHAKE", "a Curve25519 public key is 32 bytes");
    try {
      return crypto.diffieHellman({
        privateKey: privateKeyObject(privateKey),
        publicKey: crypto.createPublicKey({
          key: Buffer.concat([SPKI_X25519, publicKey]),
          format: "der",
          type: "spki",
        }),
      });
    } catch (err) {
      // OpenSSL refuses low-order points (an all-zero shared secret).
      throw new EzipcError("EZIPC_HANDSHAKE", `Diffie-Hellman failed: ${(err as Error).message}`);
    }
  },
};

/** The key pair of a raw 32-byte Curve25519 private key. */
export function keyPairFromPrivate(privateKey: Uint8Array): KeyPair {
  const pub = crypto
    .createPublicKey(privateKeyObject(privateKey))
    .export({ format: "der", type: "spki" })
    .subarray(SPKI_X25519.length);
  return { publicKey: Buffer.from(pub), privateKey: Buffer.from(privateKey) };
}
