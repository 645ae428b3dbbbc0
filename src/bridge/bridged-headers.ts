/**
 * The headers the bridge (bridge.ts) adds to what it forwards: where a message came from, its seq there and
 * its publisher there.
 */
import { MAX_HEADERS } from "../protocol/fields.js";
import type { TopicMessage } from "../pubsub/subscription.js";

/** `shm` or `hub`: the side a forwarded message came from. A message that has it is never forwarded. */
export const BRIDGED_HEADER = "ezipc-bridged";
/** The forwarded message's seq on the side it came from. */
export const BRIDGED_SEQ_HEADER = "ezipc-bridged-seq";
/** The forwarded message's publisher on the side it came from. */
export const ORIGIN_HEADER = "ezipc-origin";

/**
 * The headers of `m` forwarded from side `from`: its own, and the bridge's three as the limit of
 * {@link MAX_HEADERS} allows (`ezipc-bridged` first: without it the forward would come back; then its seq,
 * then its publisher). Null when not even `ezipc-bridged` fits.
 */
export function bridgedHeaders(m: TopicMessage, from: "shm" | "hub"): Record<string, string> | null {
  const h: Record<string, string> = {
    ...m.headers,
    [BRIDGED_HEADER]: from,
    [BRIDGED_SEQ_HEADER]: String(m.seq),
    [ORIGIN_HEADER]: m.publisher,
  };
  let n = 0;
  for (const _ in h) n++;
  if (n <= MAX_HEADERS) return h; // (the usual case: one object, nothing else made)
  for (const key of [ORIGIN_HEADER, BRIDGED_SEQ_HEADER]) {
    if (n > MAX_HEADERS && !Object.hasOwn(m.headers, key)) {
      delete h[key];
      n--;
    }
  }
  return n <= MAX_HEADERS ? h : null;
}
