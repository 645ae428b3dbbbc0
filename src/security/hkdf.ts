/** Noise's HKDF (revision 34, section 4.3) over any HMAC: shared by the Node suite and the browser's. */
export type Hmac = (key: Uint8Array, ...data: Uint8Array[]) => Buffer;

/** HKDF(chainingKey, ikm, numOutputs) built on `hmac`. */
export function noiseHkdf(
  hmac: Hmac,
): (chainingKey: Uint8Array, ikm: Uint8Array, outputs: 2 | 3) => Buffer[] {
  return (chainingKey, ikm, outputs) => {
    const temp = hmac(chainingKey, ikm);
    const out1 = hmac(temp, Uint8Array.of(1));
    const out2 = hmac(temp, out1, Uint8Array.of(2));
    if (outputs === 2) return [out1, out2];
    return [out1, out2, hmac(temp, out2, Uint8Array.of(3))];
  };
}
