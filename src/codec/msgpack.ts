import { createRequire } from "node:module";
import type { Packr } from "msgpackr";
import { EzipcError } from "../errors.js";
import type { Codec } from "./codec.js";

/**
 * msgpackr (and its native string extractor) is loaded by the first msgpack encode or decode, not by importing
 * ezipc: it adds about 9 MiB to a process's resident memory, which a client that never uses MessagePack
 * should not pay.
 */
let PackrClass: typeof Packr | undefined;
function packrClass(): typeof Packr {
  PackrClass ??= (createRequire(import.meta.url)("msgpackr") as typeof import("msgpackr")).Packr;
  return PackrClass;
}

/** Options of {@link msgpackCodec}. */
export interface MsgpackCodecOptions {
  /** The codec's name. Default `msgpack`. */
  name?: string;
}

/**
 * MessagePack through msgpackr (records off, so any MessagePack implementation can read it). Bigints encode
 * as 64-bit integers; `Map`s decode as plain objects when their keys are strings.
 */
export function msgpackCodec(options: MsgpackCodecOptions = {}): Codec<unknown> {
  let made: Packr | undefined;
  const packr = () =>
    (made ??= new (packrClass())({
      useRecords: false,
      mapsAsObjects: true,
      int64AsType: "bigint",
      moreTypes: false,
    }));
  return {
    name: options.name ?? "msgpack",
    reusesBuffer: false,
    encode(value: unknown): Uint8Array {
      try {
        return packr().pack(value);
      } catch (err) {
        throw new EzipcError("EZIPC_ENCODE", `msgpack: ${(err as Error).message}`, { cause: err });
      }
    },
    decode(bytes: Uint8Array): unknown {
      if (bytes.length === 0) throw new EzipcError("EZIPC_DECODE", "msgpack: empty input");
      try {
        return packr().unpack(bytes);
      } catch (err) {
        throw new EzipcError("EZIPC_DECODE", `msgpack: ${(err as Error).message}`, { cause: err });
      }
    },
  };
}
