import { EzipcError } from "../errors.js";
import type { Codec } from "./codec.js";

/**
 * JSON as UTF-8. Encodes anything `JSON.stringify` accepts (not `undefined`, functions or bigints at the top
 * level: `EZIPC_ENCODE`); decoding invalid UTF-8 or JSON throws `EZIPC_DECODE`.
 */
export const jsonCodec: Codec<unknown> = {
  name: "json",
  reusesBuffer: false,
  encode(value: unknown): Uint8Array {
    let text: string | undefined;
    try {
      text = JSON.stringify(value);
    } catch (err) {
      throw new EzipcError("EZIPC_ENCODE", `json: ${(err as Error).message}`, { cause: err });
    }
    if (text === undefined) throw new EzipcError("EZIPC_ENCODE", `json: cannot encode ${typeof value}`);
    return Buffer.from(text, "utf8");
  },
  decode(bytes: Uint8Array): unknown {
    const buf = Buffer.isBuffer(bytes)
      ? bytes
      : Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    try {
      return JSON.parse(buf.toString("utf8"));
    } catch (err) {
      throw new EzipcError("EZIPC_DECODE", `json: ${(err as Error).message}`, { cause: err });
    }
  },
};
