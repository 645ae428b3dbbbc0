/**
 * The hub's numeric options, checked before it opens anything: a negative, fractional or non-finite value
 * is refused with a RangeError naming the option (as connection options are), never taken as some other
 * behaviour or reported as a store failure.
 */

import { FORWARD_RESERVE_BYTES } from "../protocol/fields.js";
import { checkRange, MAX_TIMER_MS } from "../ranges.js";
import { DEFAULT_MAX_FRAME_BYTES } from "../transport/frame.js";

/** Counts and byte sizes: integers ≥ 0. */
const INTEGERS = [
  "topicMaxBytes",
  "topicMaxCount",
  "maxHistoryBytes",
  "maxTopics",
  "maxSubscriptionsPerClient",
  "maxSubscriptions",
  "maxSubscriptionTopics",
  "maxPointersPerClient",
  "maxPointers",
  "maxCalls",
  "maxConnections",
  "maxIncompleteFrameBytes",
  "maxTotalQueuedBytes",
  "maxCallsPerClient",
  "maxTombstones",
  "maxKeys",
  "maxBlockBytes",
  "maxTotalBytes",
  "maxPendingPerAddress",
  "listingEntriesPerSecond",
] as const;

/** Durations in ms: numbers in 0..2^31-1 (what a timer takes). */
const DURATIONS = [
  "holdPublishersMs",
  "disposeGraceMs",
  "tombstoneTtlMs",
  "reconnectWindowMs",
  "handshakeTimeoutMs",
] as const;

type Checked = Partial<Record<(typeof INTEGERS)[number] | (typeof DURATIONS)[number], unknown>>;

/** Throws a RangeError for the first hub option out of its range (`security` options included). */
export function checkHubOptions(
  options: Checked & { security?: Checked; maxFrameBytes?: number; maxBlockBytes?: number },
): void {
  for (const o of [options, options.security ?? {}]) {
    for (const key of INTEGERS) if (o[key] !== undefined) checkRange(key, o[key], 0, Number.MAX_SAFE_INTEGER);
    for (const key of DURATIONS) if (o[key] !== undefined) checkRange(key, o[key], 0, MAX_TIMER_MS, false);
  }
  // A block travels whole in one frame (`opened`, `update`), with room for the fields around it.
  const frame = options.maxFrameBytes ?? DEFAULT_MAX_FRAME_BYTES;
  if (options.maxBlockBytes !== undefined && options.maxBlockBytes > frame - FORWARD_RESERVE_BYTES) {
    throw new RangeError(
      `maxBlockBytes must be at most maxFrameBytes - ${FORWARD_RESERVE_BYTES} (${frame - FORWARD_RESERVE_BYTES}): a block travels in one frame`,
    );
  }
}
