/**
 * The hub's numeric options, checked before it opens anything: a negative, fractional or non-finite value
 * is refused with a RangeError naming the option (as connection options are), never taken as some other
 * behaviour or reported as a store failure.
 */

import { checkRange, MAX_TIMER_MS } from "../ranges.js";

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
export function checkHubOptions(options: Checked & { security?: Checked }): void {
  for (const o of [options, options.security ?? {}]) {
    for (const key of INTEGERS) if (o[key] !== undefined) checkRange(key, o[key], 0, Number.MAX_SAFE_INTEGER);
    for (const key of DURATIONS) if (o[key] !== undefined) checkRange(key, o[key], 0, MAX_TIMER_MS, false);
  }
}
