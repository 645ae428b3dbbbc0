/**
 * The hub's public types: its options ({@link HubOptions}, with the security and bridge it may run), its
 * events and its metrics. The hub itself is src/hub/hub.ts.
 */

import type { ClusterOptions } from "../cluster/cluster.js";
import type { HistogramSnapshot } from "../histogram.js";
import type { HubStats } from "../protocol/core-messages.js";
import type { PubSubOptions } from "../pubsub/pubsub-hub.js";
import type { RpcOptions } from "../rpc/rpc-hub.js";
import type { AllowedClient, Operation } from "../security/access.js";
import type { SecureCipher } from "../security/channel.js";
import type { KeyPair } from "../security/suite.js";
import type { BlockStore } from "../store/store.js";
import type { Connection, ConnectionOptions } from "../transport/types.js";
import type { Clock } from "../vars/block-table.js";
import type { VarsOptions } from "../vars/vars-hub.js";

/** {@link Hub.metrics}: the hub's counters for monitoring. */
export interface HubMetrics {
  stats: HubStats;
  /** Connections accepted since the hub started (handshaken or not). */
  connectionsAccepted: number;
  /** Connections open now (handshaken or not): what `maxConnections` bounds. */
  connectionsOpen: number;
  bytesIn: number;
  bytesOut: number;
  framesIn: number;
  framesOut: number;
  pointersByPolicy: { request: number; lazy: number; poll: number };
  writeAckLatency: HistogramSnapshot;
  publishAckLatency: HistogramSnapshot;
}

/**
 * Something the hub runs beside itself in its process and stops when it closes: the shared-memory bridge
 * (`shmBridge("shm:///NAME")` from src/bridge/). `start` gets the URL of a private in-process listener of
 * the hub whose connections skip encryption and per-client permissions (only this process can dial it).
 */
export interface HubBridge {
  start(hubUrl: string): Promise<{ close(): Promise<void> }>;
}

/** Options of {@link Hub.listen}. Connection options apply to every accepted connection. */
export interface HubOptions extends VarsOptions, PubSubOptions, RpcOptions, ConnectionOptions {
  /** A bridge run beside the hub (see {@link HubBridge}): e.g. `shmBridge("shm:///robot")`. */
  bridge?: HubBridge;
  /** Addresses to listen on, e.g. `["tcp://127.0.0.1:7700", "unix:///tmp/ezipc.sock"]`. */
  urls: string[];
  /** Name sent to clients in `welcome`. Default `ezipc-hub`. */
  name?: string;
  /** Where persistent keys are kept. Default {@link MemoryStore} (nothing survives the process). */
  store?: BlockStore;
  /** How long a disconnected client's pointers are kept for it to come back. Default 5 s. */
  reconnectWindowMs?: number;
  /** A connection that has not sent `hello` by then is closed. Default 5 s. */
  handshakeTimeoutMs?: number;
  /**
   * Most connections open at once, over every listener. One more is answered `EZIPC_TOO_MANY_CONNECTIONS`
   * and closed (a connected client retries with its backoff; a first `connect()` fails). Default 10,000.
   */
  maxConnections?: number;
  /**
   * Entries the hub walks per second for listings (`topics`, `list`, `monitor`), over all clients; past it
   * a listing is refused with `EZIPC_TOO_MANY_REQUESTS` until the budget has come back (bursts of twice
   * this go through: a full hub's 100,000 topics listed at once). A `monitor` view, which builds at most 500
   * entries of each kind, counts an eighth per item it looks at. 0: no bound. Default 100,000 (a tenth to a
   * fifth of the hub's time at most, on the 2-core machine measured).
   */
  listingEntriesPerSecond?: number;
  /**
   * Most bytes of incomplete frames (begun, not yet whole) over all connections: each may hold one of up to
   * `maxFrameBytes`, so many connections each starting a large frame would otherwise take connections ×
   * maxFrameBytes. Over it, the connections holding the largest ones are cut (`EZIPC_FRAME_TOO_LARGE`,
   * src/transport/frame-budget.ts). Default 256 MiB.
   */
  maxIncompleteFrameBytes?: number;
  /**
   * Most bytes queued to peers over all connections (each is bounded by `maxQueuedBytes`, 64 MiB). Over it,
   * the connections with the largest queues are cut as slow consumers (`EZIPC_SLOW_CONSUMER`; checked every
   * 100 ms, src/hub/queue-bound.ts). Default 1 GiB.
   */
  maxTotalQueuedBytes?: number;
  /**
   * ws:// and wss:// listeners: web pages of other origins that may connect (`"https://app.example"`, or
   * `"*"`). Pages of this machine (localhost, 127.0.0.0/8, [::1]), pages the hub serves at an IP address
   * and clients that are not browsers are always admitted; any other site's page gets `403 Forbidden`, so
   * a site the user visits cannot reach the hub through the browser (docs/security.md).
   */
  allowOrigins?: string[];
  /** Timers for the block lifecycle (tests inject a fake clock). */
  clock?: Clock;
  /**
   * Encrypt and authenticate every connection (docs/security.md): the hub's static key and the clients
   * it admits. Without it, connections are plain.
   */
  security?: HubSecurity;
  /**
   * Form one system with every hub given the same cluster (docs/cluster.md): NATS JetStream servers, which
   * then hold the shared variables. Without it, the hub is a system of its own.
   */
  cluster?: ClusterOptions;
}

/** Throws `EZIPC_PERMISSION_DENIED` if `conn`'s client may not do `op` on `subject`. */
export type AccessCheck = (conn: Connection, op: Operation, subject: string) => void;

/** A secure hub's identity and the clients it admits. */
export interface HubSecurity {
  /** The hub's static key pair (`loadOrCreateKeyFile`, `ezipc keygen`). */
  staticKey: KeyPair;
  /** The clients admitted; empty or absent: every client that completes the handshake. */
  clients?: readonly AllowedClient[];
  /** A secure handshake not finished by then is dropped. Default 2 s. */
  handshakeTimeoutMs?: number;
  /** Handshakes in progress per remote address (the oldest gives way). Default 32. */
  maxPendingPerAddress?: number;
  /** The AEAD ciphers clients may pick (docs/security.md). Default both: `ChaChaPoly` and `AESGCM`. */
  ciphers?: readonly SecureCipher[];
}

export interface HubEvents {
  /** A client finished its handshake (`resumed` when it came back within its window). */
  client: [info: { id: string; name: string; resumed: boolean }];
  /** A client's pointers were released (it left and its window passed). */
  clientGone: [info: { id: string; name: string }];
  /** A block was invalidated. */
  invalidated: [info: { key: string; reason: "disposed" | "deleted" }];
}

/** {@link Hub.clusterCounters}: a clustered hub's counters (docs/cluster.md). */
export interface ClusterCounters {
  applied: number;
  retries: number;
  gracesEnded: number;
  disposed: number;
  disposeRetries: number;
  holdRetries: number;
  sweepsFailed: number;
  holdsPutAgain: number;
  topicRequestsRetried: number;
}
