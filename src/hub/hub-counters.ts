/**
 * The hub's counters as {@link Hub.stats} and {@link Hub.metrics} report them (`/metrics` exports the latter,
 * src/monitor/metrics.ts): added up from the hub's registry, its capabilities and its fault counters when
 * asked, never kept per message.
 */
import type { ClusterDeadmen } from "../deadman/deadman-cluster.js";
import type { Deadmen } from "../deadman/deadman-hub.js";
import type { HubStats } from "../protocol/core-messages.js";
import type { PubSub } from "../pubsub/pubsub-hub.js";
import type { Rpc } from "../rpc/rpc-hub.js";
import type { Connection } from "../transport/types.js";
import type { VarsHub } from "../vars/vars-hub.js";
import type { ClientState } from "./client-state.js";
import type { HubMetrics } from "./hub-types.js";

/** Connections the hub lost to faults, by kind, and failed secure handshakes by reason (as stats() names them). */
export type HubFaults = Pick<
  HubStats,
  | "protocolErrors"
  | "framesTooLarge"
  | "slowConsumerCuts"
  | "heartbeatTimeouts"
  | "decryptErrors"
  | "connectionsRefused"
  | "handshakeFailures"
>;

/** Counts a connection closed for `code` among the faults it is one of (others are not faults). */
export function countFault(f: HubFaults, code: string | undefined): void {
  if (
    code === "EZIPC_PROTOCOL" ||
    code === "EZIPC_HANDSHAKE" ||
    code === "EZIPC_DECODE" ||
    code === "EZIPC_UNKNOWN_MESSAGE"
  )
    f.protocolErrors++;
  else if (code === "EZIPC_FRAME_TOO_LARGE") f.framesTooLarge++;
  else if (code === "EZIPC_SLOW_CONSUMER") f.slowConsumerCuts++;
  else if (code === "EZIPC_HEARTBEAT_TIMEOUT") f.heartbeatTimeouts++;
  else if (code === "EZIPC_DECRYPT") f.decryptErrors++;
}

/** Bytes and frames in and out. */
export interface Traffic {
  bytesIn: number;
  bytesOut: number;
  framesIn: number;
  framesOut: number;
}

/** What the counters are added up from. */
export interface CountersSource {
  name: string;
  startedAt: number;
  urls: readonly string[];
  /** The store's name. */
  store: string;
  /** The registry: clients by id. */
  clients: ReadonlyMap<string, ClientState>;
  vars: VarsHub;
  pubsub: PubSub;
  rpc: Rpc;
  deadmen: Deadmen | ClusterDeadmen;
  faults: HubFaults;
  listingsRefused: number;
  /** Open connections (handshaken or not). */
  live: ReadonlySet<Connection>;
  /** The traffic of the connections closed so far. */
  closedTraffic: Traffic;
  connectionsAccepted: number;
}

/** See {@link Hub.stats}. */
export function hubStats(src: CountersSource): HubStats {
  let pointers = 0;
  let connected = 0;
  let queued = 0;
  let maxQueued = 0;
  for (const c of src.clients.values()) {
    pointers += c.vars.pointers;
    if (c.conn) {
      connected++;
      queued += c.conn.queuedBytes;
      maxQueued = Math.max(maxQueued, c.conn.queuedBytes);
    }
  }
  const mem = process.memoryUsage();
  return {
    name: src.name,
    uptimeMs: Date.now() - src.startedAt,
    urls: [...src.urls],
    store: src.store,
    clients: src.clients.size,
    connectedClients: connected,
    ...src.vars.stats(),
    pointers,
    ...src.vars.counters,
    topics: src.pubsub.topicCount,
    historyBytes: src.pubsub.historyBytes,
    ...src.pubsub.counters,
    ...src.pubsub.holdCounters,
    callsInFlight: src.rpc.callsInFlight,
    ...src.rpc.counters,
    deadmanTokens: src.deadmen.size,
    ...src.faults,
    handshakeFailures: { ...src.faults.handshakeFailures },
    listingsRefused: src.listingsRefused,
    queuedBytes: queued,
    maxClientQueuedBytes: maxQueued,
    rssBytes: mem.rss,
    heapUsedBytes: mem.heapUsed,
  };
}

/** See {@link Hub.metrics}. */
export function hubMetrics(src: CountersSource): HubMetrics {
  const traffic = { ...src.closedTraffic };
  for (const c of src.live) addTraffic(traffic, c);
  const byPolicy: [number, number, number] = [0, 0, 0];
  for (const c of src.clients.values()) {
    for (const h of c.vars.holdings.values()) {
      byPolicy[0] += h.counts[0];
      byPolicy[1] += h.counts[1];
      byPolicy[2] += h.counts[2];
    }
  }
  return {
    stats: hubStats(src),
    connectionsAccepted: src.connectionsAccepted,
    connectionsOpen: src.live.size,
    ...traffic,
    pointersByPolicy: { request: byPolicy[0], lazy: byPolicy[1], poll: byPolicy[2] },
    writeAckLatency: src.vars.writeAckLatency.snapshot(),
    publishAckLatency: src.pubsub.publishAckLatency.snapshot(),
  };
}

/** Adds `conn`'s traffic so far to `into`. */
export function addTraffic(into: Traffic, conn: Connection): void {
  into.bytesIn += conn.stats.bytesIn;
  into.bytesOut += conn.stats.bytesOut;
  into.framesIn += conn.stats.framesIn;
  into.framesOut += conn.stats.framesOut;
}
