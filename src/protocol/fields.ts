/**
 * Field schemas every capability's wire messages share (keys, names, headers, records), and the limits they
 * carry. Capabilities build their message tables from these; src/wire/hub-protocol.ts composes the tables.
 */
import { t } from "../codec/schema.js";

/** Longest key or topic, in bytes (keys are printable ASCII). */
export const MAX_KEY_LENGTH = 255;

/** A key, topic, pattern or token name. */
export const key = t.string({ maxBytes: MAX_KEY_LENGTH });
/** A short text: a name, a label, an error message. */
export const str = t.string({ maxBytes: 4096 });
/** Pointer counts per sync policy (request, lazy, poll). */
export const counts = t.fixedArray(t.u32, 3);
/** Message headers: at most 64 pairs. */
export const headers = t.array(
  t.struct({ key: t.string({ maxBytes: 256 }), value: t.string({ maxBytes: 4096 }) }),
  { maxLength: 64 },
);
/** One message of a publish or message frame. */
export const record = t.struct({ headers, payload: t.bytes() });
/** The messages of a publish or message frame, in order (at most 65,536). */
export const records = t.array(record, { maxLength: 65_536 });
