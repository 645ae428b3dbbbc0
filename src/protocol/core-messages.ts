/**
 * The messages of the hub protocol that belong to no capability: the handshake, the generic replies and the
 * hub's statistics. Wire indexes: {@link CORE_BASE} (hello … ok) and {@link STATS_BASE} (stats, statsReply).
 */
import { t } from "../codec/schema.js";
import type { HandshakeFailure } from "../security/channel.js";
import { str } from "./fields.js";

/** The hub protocol's version, sent in `hello` and `welcome`. */
export const HUB_PROTOCOL_VERSION = 2;

/** Feature names this implementation speaks (sent in `hello` and `welcome`). */
export const HUB_FEATURES = [
  "vars",
  "config",
  "pubsub",
  "rpc",
  "deadman",
  "direct",
  "info",
  "flow",
  "monitor",
  "pages",
] as const;

export const CORE_BASE = 0;
/** The handshake and the generic replies (`rid` is the requester's id, echoed in the reply). */
export const coreMessages = {
  /** c→h, first frame: protocol version, client name, resume token from an earlier welcome. */
  hello: t.struct({
    protocol: t.u16,
    name: str,
    resume: t.optional(t.string({ maxBytes: 64 })),
    features: t.array(str, { maxLength: 64 }),
  }),
  /** h→c, reply to hello. */
  welcome: t.struct({
    protocol: t.u16,
    clientId: t.string({ maxBytes: 64 }),
    resumed: t.bool,
    hub: str,
    features: t.array(str, { maxLength: 64 }),
    maxBlockBytes: t.u32,
    /** How the hub names this client (`name#id`, or `name@identity#id` on an authenticated connection). */
    label: str,
  }),
  /** h→c: request `rid` failed. */
  error: t.struct({ rid: t.u32, code: str, message: str }),
  /** h→c: request `rid` succeeded; `version` is the block's version after it. */
  ok: t.struct({ rid: t.u32, version: t.u64 }),
} as const;

export const STATS_BASE = 20;
/** The hub's statistics. */
export const statsMessages = {
  /** c→h: hub statistics. */
  stats: t.struct({ rid: t.u32 }),
  /** h→c: reply to stats, a JSON object (see HubStats). */
  statsReply: t.struct({ rid: t.u32, json: t.string() }),
} as const;

/** The JSON object of a `statsReply` (what `ezipc stats` prints). */
export interface HubStats {
  name: string;
  uptimeMs: number;
  urls: string[];
  store: string;
  clients: number;
  connectedClients: number;
  keys: number;
  persistentKeys: number;
  totalBytes: number;
  tombstones: number;
  pointers: number;
  writes: number;
  reads: number;
  updatesSent: number;
  updatesCoalesced: number;
  staleSent: number;
  /** Bytes queued to clients and not yet written to the OS, in total and for the most backed-up client. */
  queuedBytes: number;
  maxClientQueuedBytes: number;
  topics: number;
  historyBytes: number;
  published: number;
  delivered: number;
  gaps: number;
  /** Fire-and-forget publishes the hub could not store (bad topic, a limit), dropped. */
  rejected: number;
  /** Publishers told to wait (`publishFlow`) because a subscriber had not been sent a full topic's oldest messages. */
  publisherHolds: number;
  /** Holds given up (held past `holdPublishersMs`, or twice over the bound): subscribers were left behind. */
  holdsGivenUp: number;
  /** Publishers the hub stopped reading from during a hold: they went on publishing past its slack. */
  publishersPaused: number;
  callsInFlight: number;
  calls: number;
  noResponders: number;
  serverGone: number;
  deadmanTokens: number;
  /** Connections closed for a protocol violation (a bad frame or message, a missing hello). */
  protocolErrors: number;
  /** Connections closed for a frame over maxFrameBytes. */
  framesTooLarge: number;
  /** Slow consumers cut (maxQueuedBytes or stallTimeoutMs). */
  slowConsumerCuts: number;
  /** Connections closed for silence past heartbeatTimeoutMs. */
  heartbeatTimeouts: number;
  /** Secure connections closed for a record that failed authentication. */
  decryptErrors: number;
  /** Connections refused because the hub had `maxConnections` open. */
  connectionsRefused: number;
  /** Listings (`topics`, `list`, `monitor`) refused because they took more than `listingEntriesPerSecond`. */
  listingsRefused: number;
  /** Secure handshakes that failed, by reason (docs/security.md). */
  handshakeFailures: Partial<Record<HandshakeFailure, number>>;
  rssBytes: number;
  heapUsedBytes: number;
}

export const MONITOR_BASE = 47;
/** The hub's state for dashboards (feature "monitor"; permission `monitor`). */
export const monitorMessages = {
  /**
   * c→h: what the hub holds — clients, and the keys, topics, RPC topics and deadman tokens matching
   * `pattern` (topic syntax; empty: all) that the client may monitor. Replied with `monitorReply`.
   */
  monitor: t.struct({ rid: t.u32, pattern: t.string({ maxBytes: 255 }) }),
  /** h→c: reply to monitor, a JSON object (see HubView). */
  monitorReply: t.struct({ rid: t.u32, json: t.string() }),
} as const;

/** A client in a {@link HubView}. */
export interface ClientView {
  /** `name#id`, as publishers and callers are shown. */
  label: string;
  name: string;
  /** The identity a secure handshake proved (an allow-list name or a public key), or "". */
  identity: string;
  /** The connection's remote URL (its transport is the scheme), or "" while disconnected. */
  remote: string;
  /** When it connected (ms since the epoch), or when it lost its connection if `remote` is "". */
  since: number;
  connected: boolean;
  pointers: { request: number; lazy: number; poll: number };
  subscriptions: number;
  servedTopics: number;
  queuedBytes: number;
  /** Its connections cut as a slow consumer while the hub knew it (a client that resumes keeps its count). */
  slowConsumerCuts: number;
}

/** A key in a {@link HubView}. */
export interface KeyView {
  key: string;
  kind: "bytes" | "json";
  size: number;
  version: number;
  refcount: number;
  persistent: boolean;
  /** Its holders, at most 50 (a key held by every process of a fleet would make the view as large as them all). */
  holders: { client: string; request: number; lazy: number; poll: number }[];
  /** Holders left out of `holders`. */
  moreHolders: number;
  /** Milliseconds left before it is disposed (nobody holds it), else null. */
  graceLeftMs: number | null;
  /** Its first bytes (at most 64) as hex. */
  hex: string;
  /** Its value as JSON text when it is JSON (at most 1 KiB), else null. */
  json: string | null;
}

/** A topic in a {@link HubView}. */
export interface TopicView {
  name: string;
  firstSeq: number;
  lastSeq: number;
  count: number;
  historyBytes: number;
  subscribers: number;
  persist: boolean;
  /** Messages delivered to subscribers so far (a counter: rates are its differences). */
  delivered: number;
}

/** The reply to `monitor`: what a dashboard shows. Lists are cut at `limit` entries each (`truncated`). */
export interface HubView {
  stats: HubStats;
  /** The hub's clock when the view was taken (ms since the epoch). */
  now: number;
  clients: ClientView[];
  keys: KeyView[];
  topics: TopicView[];
  rpc: { topic: string; servers: string[]; inFlight: number }[];
  deadman: { name: string; holder: string; waiting: number }[];
  /** Entries left out of each list past the limit. */
  truncated: { clients: number; keys: number; topics: number; rpc: number; deadman: number };
}
