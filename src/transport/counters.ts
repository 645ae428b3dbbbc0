import type { ConnectionStats } from "./types.js";

/** Process-wide counts of connection faults, read with `transportCounters()`. */
export interface TransportCounters {
  /** Connections closed because a frame exceeded maxFrameBytes. */
  framesTooLarge: number;
  /** Connections closed because of a malformed frame. */
  protocolErrors: number;
  /** Connections cut as slow consumers. */
  slowConsumers: number;
  /** Connections closed because the peer went silent. */
  heartbeatTimeouts: number;
}

/** @internal The live counters; the transport increments them. */
export const counters: TransportCounters = {
  framesTooLarge: 0,
  protocolErrors: 0,
  slowConsumers: 0,
  heartbeatTimeouts: 0,
};

/** A snapshot of the process-wide transport fault counters. */
export function transportCounters(): TransportCounters {
  return { ...counters };
}

/** A connection's counters, all zero (every transport's connections start with these). */
export function newConnectionStats(): ConnectionStats {
  return { framesIn: 0, framesOut: 0, bytesIn: 0, bytesOut: 0, pingsOut: 0, pongsIn: 0 };
}
