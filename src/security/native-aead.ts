/**
 * Noise's AEAD ciphers on this package's addon (native/aead.c) instead of node:crypto's cipher objects:
 * the same OpenSSL code, but one long-lived context per cipher, no object per record, a record's pieces
 * sealed into one buffer, and records opened in place. On 64 KiB records that is several times faster
 * (see the README's encryption table). Where the addon is missing (not Linux, not built) {@link nativeAead}
 * is undefined and suite.ts uses node:crypto; both produce the same bytes (test/security/noise-vectors).
 */
import { addonPath, loadAddon } from "../native-addon.js";
import type { CipherFn } from "./suite.js";

interface AeadAddon {
  /** Bytes written to `out`: the ciphertext of `parts` joined, then the 16-byte tag. */
  seal(
    alg: 0 | 1,
    key: Uint8Array,
    n: number | bigint,
    ad: Uint8Array,
    parts: Uint8Array | readonly Uint8Array[],
    out: Uint8Array,
  ): number;
  /** True when `sealed` authenticates; its plaintext is then in `out` (which may be `sealed` itself). */
  open(
    alg: 0 | 1,
    key: Uint8Array,
    n: number | bigint,
    ad: Uint8Array,
    sealed: Uint8Array,
    out: Uint8Array,
  ): boolean;
  /** {@link open} of a record lying in `parts` (at most 64), each opened where it lies. */
  openParts(alg: 0 | 1, key: Uint8Array, n: number, ad: Uint8Array, parts: readonly Uint8Array[]): boolean;
}

const TAG = 16;

function load(): AeadAddon | undefined {
  if (process.platform !== "linux") return undefined;
  const file = addonPath("ezipc_aead");
  if (file === undefined) return undefined;
  try {
    return loadAddon<AeadAddon>(file);
  } catch {
    return undefined; // suite.ts falls back to node:crypto
  }
}

const addon = load();

function nativeCipher(addon: AeadAddon, name: string, alg: 0 | 1): CipherFn {
  return {
    name,
    encrypt(k, n, ad, plaintext) {
      const out = Buffer.allocUnsafe(plaintext.length + TAG);
      addon.seal(alg, k, n, ad, plaintext, out);
      return out;
    },
    encryptParts(k, n, ad, parts, length) {
      const out = Buffer.allocUnsafe(length + TAG);
      addon.seal(alg, k, n, ad, parts, out);
      return [out];
    },
    decrypt(k, n, ad, ciphertext, inPlace = false) {
      if (ciphertext.length < TAG) return null;
      const c = Buffer.isBuffer(ciphertext)
        ? ciphertext
        : Buffer.from(ciphertext.buffer, ciphertext.byteOffset, ciphertext.byteLength);
      const out = inPlace ? c.subarray(0, c.length - TAG) : Buffer.allocUnsafe(c.length - TAG);
      return addon.open(alg, k, n, ad, c, out) ? out : null;
    },
    encryptInto(k, n, ad, parts, out) {
      addon.seal(alg, k, n, ad, parts, out);
    },
    decryptPartsInPlace(k, n, ad, parts) {
      return addon.openParts(alg, k, n, ad, parts);
    },
  };
}

/** The two ciphers on the addon, or undefined where it cannot load. */
export const nativeAead: { readonly chaChaPoly: CipherFn; readonly aesGcm: CipherFn } | undefined = addon && {
  chaChaPoly: nativeCipher(addon, "ChaChaPoly", 0),
  aesGcm: nativeCipher(addon, "AESGCM", 1),
};
