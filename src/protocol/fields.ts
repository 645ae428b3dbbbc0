/**
 * Field schemas every capability's wire messages share (keys, names, headers, records), and the limits they
 * carry. Capabilities build their message tables from these; src/wire/hub-protocol.ts composes the tables.
 */
import { t } from "../codec/schema.js";
import { EzipcError } from "../errors.js";

/**
 * Bytes a client leaves free in each `publish` and `request` frame under maxFrameBytes. The hub forwards
 * what they carry in frames of its own with fields added (seq, time and the publisher's label; the caller's
 * label): under 600 bytes, since a label is a client name (≤ 255 bytes), an identity and an id. A frame that
 * leaves this much is always forwarded; a larger one may be refused (`EZIPC_MESSAGE_TOO_LARGE`).
 */
export const FORWARD_RESERVE_BYTES = 1024;

/**
 * Throws `EZIPC_MESSAGE_TOO_LARGE` if a `publish` or `request` frame of `bytes` is over `limit` (a
 * connection's maxFrameBytes minus {@link FORWARD_RESERVE_BYTES}).
 */
export function checkForwardable(what: string, bytes: number, limit: number): void {
  if (bytes <= limit) return;
  throw new EzipcError(
    "EZIPC_MESSAGE_TOO_LARGE",
    `${what}: a frame of ${bytes} bytes is over the ${limit} a publish or request may take (maxFrameBytes - ${FORWARD_RESERVE_BYTES}, room for what the hub adds when it forwards it); nothing was sent`,
  );
}

/** Longest key or topic, in bytes (keys are printable ASCII). */
export const MAX_KEY_LENGTH = 255;

/** A key, topic, pattern or token name. */
export const key = t.string({ maxBytes: MAX_KEY_LENGTH });
/** A short text: a name, a label, an error message. */
export const str = t.string({ maxBytes: 4096 });
/** Pointer counts per sync policy (request, lazy, poll). */
export const counts = t.fixedArray(t.u32, 3);
/** Most headers on one message. */
export const MAX_HEADERS = 64;
/** Bytes of a header key (UTF-8). */
export const MAX_HEADER_KEY = 256;
/** Bytes of a header value (UTF-8). */
export const MAX_HEADER_VALUE = 4096;

/** Message headers: at most {@link MAX_HEADERS} pairs. */
export const headers = t.array(
  t.struct({ key: t.string({ maxBytes: MAX_HEADER_KEY }), value: t.string({ maxBytes: MAX_HEADER_VALUE }) }),
  { maxLength: MAX_HEADERS },
);

/**
 * A message's header names, checked with their values against the limits of {@link headers}: every value a
 * string, at most {@link MAX_HEADERS}, keys of at most {@link MAX_HEADER_KEY} bytes and values of at most
 * {@link MAX_HEADER_VALUE} (UTF-8). Throws `EZIPC_ENCODE` otherwise. Every path that sends headers (publish,
 * fire-and-forget publish, request; hub or shm://) checks them here before anything is queued: a
 * fire-and-forget publish with a bad header must fail alone, not reach the hub inside a batch it would
 * refuse whole.
 */
export function checkedHeaders(h: Record<string, string>): string[] {
  const keys = Object.keys(h);
  if (keys.length > MAX_HEADERS) {
    throw new EzipcError("EZIPC_ENCODE", `${keys.length} headers: at most ${MAX_HEADERS}`);
  }
  for (let i = 0; i < keys.length; i++) {
    const key = keys[i]!;
    const value = h[key];
    if (typeof value !== "string") {
      throw new EzipcError("EZIPC_ENCODE", `header ${key.slice(0, 64)}: the value must be a string`);
    }
    // (A UTF-16 unit takes at most 3 UTF-8 bytes: short strings need no count.)
    if (key.length * 3 > MAX_HEADER_KEY && Buffer.byteLength(key) > MAX_HEADER_KEY) {
      throw new EzipcError("EZIPC_ENCODE", `header key ${key.slice(0, 64)}…: over ${MAX_HEADER_KEY} bytes`);
    }
    if (value.length * 3 > MAX_HEADER_VALUE && Buffer.byteLength(value) > MAX_HEADER_VALUE) {
      throw new EzipcError(
        "EZIPC_ENCODE",
        `header ${key.slice(0, 64)}: the value is over ${MAX_HEADER_VALUE} bytes`,
      );
    }
  }
  return keys;
}

/** {@link checkedHeaders} as the key/value list the schema codec takes (none: empty). */
export function headerList(h: Record<string, string> | undefined): { key: string; value: string }[] {
  return h ? checkedHeaders(h).map((key) => ({ key, value: h[key]! })) : [];
}
/** One message of a publish or message frame. */
export const record = t.struct({ headers, payload: t.bytes() });
/** The messages of a publish or message frame, in order (at most 65,536). */
export const records = t.array(record, { maxLength: 65_536 });
