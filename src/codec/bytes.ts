import type { Codec } from "./codec.js";

/** The identity codec: payloads are raw bytes. `decode` returns a Buffer view of the same memory. */
export const bytesCodec: Codec<Uint8Array> = {
  name: "bytes",
  reusesBuffer: false,
  encode(value: Uint8Array): Uint8Array {
    if (!(value instanceof Uint8Array)) throw new TypeError("bytes codec encodes Uint8Array values only");
    return value;
  },
  decode(bytes: Uint8Array): Uint8Array {
    return bytes;
  },
};
