import { type Infer, t } from "../codec/schema.js";
import type { Protocol } from "../service/protocol.js";
import { schemaProtocol } from "../service/protocol.js";

/**
 * The hub wire protocol, version {@link HUB_PROTOCOL_VERSION}: every frame is `u16 LE message index` then
 * the message's schema-codec body (see docs/protocol.md). Indexes are the declaration order below and never
 * change: new messages are appended, and a feature name in `hello`/`welcome` says a peer knows them.
 */
export const HUB_PROTOCOL_VERSION = 2;

/** Feature names this implementation speaks (sent in `hello` and `welcome`). */
export const HUB_FEATURES = ["vars", "config", "pubsub", "rpc", "deadman", "direct", "info"] as const;

/** Sync policies in wire order: the higher, the more the hub pushes. */
export const POLICIES = ["request", "lazy", "poll"] as const;
export type SyncPolicy = (typeof POLICIES)[number];

/** Block kinds: raw bytes of a fixed size, or a JSON document of variable size. */
export const KIND_BYTES = 0;
export const KIND_JSON = 1;

/** Longest key, in bytes (keys are printable ASCII). */
export const MAX_KEY_LENGTH = 255;

const key = t.string({ maxBytes: MAX_KEY_LENGTH });
const str = t.string({ maxBytes: 4096 });
const counts = t.fixedArray(t.u32, 3);
const headers = t.array(t.struct({ key: t.string({ maxBytes: 256 }), value: t.string({ maxBytes: 4096 }) }), {
  maxLength: 64,
});
/** One message of a publish or message frame. */
export const record = t.struct({ headers, payload: t.bytes() });
/** The messages of a publish or message frame, in order (at most 65,536). */
const records = t.array(record, { maxLength: 65_536 });

/** Every hub message, in wire-index order. `rid` is the requester's id, echoed in the reply. */
export const hubMessages = {
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
  /** c→h: create `key` (ifExists 0: fail with EZIPC_KEY_EXISTS; 1: open it) and hold one pointer. */
  allocate: t.struct({
    rid: t.u32,
    key,
    kind: t.u8,
    size: t.u32,
    policy: t.u8,
    persistent: t.bool,
    ifExists: t.u8,
  }),
  /** c→h: hold one pointer on an existing key. */
  watch: t.struct({ rid: t.u32, key, policy: t.u8 }),
  /** h→c: reply to allocate/watch/resync. `data` is present when the client's policy keeps a copy. */
  opened: t.struct({
    rid: t.u32,
    id: t.u32,
    kind: t.u8,
    size: t.u32,
    version: t.u64,
    persistent: t.bool,
    created: t.bool,
    data: t.optional(t.bytes()),
  }),
  /** c→h: drop one pointer of `policy` on block `id` (no reply). */
  release: t.struct({ id: t.u32, policy: t.u8 }),
  /** c→h: fetch the value. */
  read: t.struct({ rid: t.u32, id: t.u32 }),
  /** h→c: reply to read. */
  value: t.struct({ rid: t.u32, id: t.u32, version: t.u64, data: t.bytes() }),
  /** c→h: write `data` at `offset`; with `expect`, only if the version is still `expect`. */
  write: t.struct({ rid: t.u32, id: t.u32, offset: t.u32, expect: t.optional(t.u64), data: t.bytes() }),
  /** h→c: a compare-and-write found another version (the current one). */
  conflict: t.struct({ rid: t.u32, version: t.u64 }),
  /** h→c, to poll holders: the whole new value. */
  update: t.struct({ id: t.u32, version: t.u64, data: t.bytes() }),
  /** h→c, to lazy holders: the copy is out of date (sent once until the client reads again). */
  stale: t.struct({ id: t.u32, version: t.u64 }),
  /** h→c: block `id` was deleted on the hub; every pointer on it is invalidated. */
  invalidated: t.struct({ id: t.u32, code: str }),
  /** c→h after a reconnect: the pointers this client holds on `key` (per policy) and the version it has. */
  resync: t.struct({ rid: t.u32, key, id: t.u32, counts, version: t.u64 }),
  /** c→h: resync is complete; the hub releases every holding the client did not resync. */
  resyncDone: t.struct({ rid: t.u32 }),
  /** c→h: a JSON config operation (0 write, 1 writeIfEmpty, 2 mergePatch) with a JSON text. */
  config: t.struct({ rid: t.u32, id: t.u32, op: t.u8, json: t.string() }),
  /** c→h: list keys matching a glob (`*` any run, `?` one character; empty = all). */
  list: t.struct({ rid: t.u32, pattern: t.string({ maxBytes: 1024 }) }),
  /** h→c: reply to list. */
  listing: t.struct({
    rid: t.u32,
    keys: t.array(
      t.struct({
        key,
        kind: t.u8,
        size: t.u32,
        version: t.u64,
        refcount: t.u32,
        persistent: t.bool,
        state: t.u8,
        holders: t.array(t.struct({ client: str, counts })),
      }),
    ),
  }),
  /** c→h: hub statistics. */
  stats: t.struct({ rid: t.u32 }),
  /** h→c: reply to stats, a JSON object (see HubStats). */
  statsReply: t.struct({ rid: t.u32, json: t.string() }),
  /** c→h: read a key by name without holding it (for tools: `ezipc get`). */
  peek: t.struct({ rid: t.u32, key }),

  // ---- pub/sub (feature "pubsub") ----
  /**
   * c→h: publish one or more messages to `topic`, in order; `rid` 0 asks for no acknowledgement (clients
   * batch fire-and-forget publishes this way).
   */
  publish: t.struct({ rid: t.u32, topic: key, records }),
  /**
   * h→c: the publish was stored; `seq` is its first message's (after it was made durable, for a persisted
   * topic).
   */
  published: t.struct({ rid: t.u32, seq: t.u64, time: t.f64 }),
  /**
   * c→h: subscribe `sid` (chosen by the client) to a topic or pattern. init: 0 oldest, 1 mostRecent,
   * 2 awaitNew, 3 fromSeq; iter: 0 next, 1 newest; `credit`: messages the hub may send before more credit;
   * `resume`: per-topic next seq, overriding init (after a reconnect). Replied with `ok`.
   */
  subscribe: t.struct({
    rid: t.u32,
    sid: t.u32,
    pattern: key,
    init: t.u8,
    fromSeq: t.u64,
    iter: t.u8,
    credit: t.u32,
    resume: t.array(t.struct({ topic: key, seq: t.u64 }), { maxLength: 100_000 }),
  }),
  /**
   * h→c: consecutive messages of `topic` for subscription `sid`, from one publish: the first has `seq`,
   * the next seq + 1, and so on; all share the publish time and publisher.
   */
  message: t.struct({
    sid: t.u32,
    topic: key,
    seq: t.u64,
    time: t.f64,
    publisher: str,
    records,
  }),
  /** h→c: messages first..last of `topic` were evicted before `sid` got them. */
  gap: t.struct({ sid: t.u32, topic: key, first: t.u64, last: t.u64 }),
  /** c→h: `sid` may receive `n` more messages. */
  credit: t.struct({ sid: t.u32, n: t.u32 }),
  /** c→h: end subscription `sid` (no reply). */
  unsubscribe: t.struct({ sid: t.u32 }),
  /** c→h: list topics matching a pattern (empty: all). */
  topics: t.struct({ rid: t.u32, pattern: t.string({ maxBytes: 255 }) }),
  /** h→c: reply to topics. */
  topicList: t.struct({
    rid: t.u32,
    topics: t.array(
      t.struct({
        name: key,
        firstSeq: t.u64,
        lastSeq: t.u64,
        count: t.u32,
        bytes: t.f64,
        subscribers: t.u32,
        persist: t.bool,
      }),
    ),
  }),
  /** c→h: set a topic's history bounds and whether it is persisted (needs a store). Replied with `ok`. */
  topicConfig: t.struct({ rid: t.u32, topic: key, maxBytes: t.u32, maxCount: t.u32, persist: t.bool }),

  // ---- RPC, streaming RPC and sessions (feature "rpc") ----
  /**
   * c→h: serve `topic` (one pool per topic: requests go round-robin to its servers). `direct`: the URL where
   * this client also takes calls directly ("" for none), on host `host`. Replied with `ok`.
   */
  serve: t.struct({ rid: t.u32, topic: key, host: str, direct: str }),
  /** c→h: stop serving `topic` (calls in flight go on). No reply. */
  unserve: t.struct({ topic: key }),
  /**
   * c→h: a call. kind: 0 request (one reply), 1 stream (chunks then end), 2 session (chunks both ways).
   * `timeoutMs` (0: none) reaches the server; `credit`: chunks the caller accepts before more `flow`.
   */
  request: t.struct({
    rid: t.u32,
    topic: key,
    kind: t.u8,
    timeoutMs: t.u32,
    credit: t.u32,
    headers,
    payload: t.bytes(),
  }),
  /** h→server: a call for a topic it serves, identified by `cid` on this connection. */
  call: t.struct({
    cid: t.u32,
    topic: key,
    kind: t.u8,
    timeoutMs: t.u32,
    credit: t.u32,
    caller: str,
    headers,
    payload: t.bytes(),
  }),
  /**
   * Both ways: data of a call. `side` says whose id `id` is, from the receiver's view of the sender:
   * 0 the caller's rid, 1 the server's cid.
   */
  chunk: t.struct({ side: t.u8, id: t.u32, payload: t.bytes() }),
  /** Both ways: the receiver of chunks allows `n` more. */
  flow: t.struct({ side: t.u8, id: t.u32, n: t.u32 }),
  /**
   * Both ways: the end of a call. status 0 ok (with the reply payload for a request), 1 error (`code`,
   * `message`), 2 cancelled (by the caller) or closed (a session, by either side).
   */
  end: t.struct({ side: t.u8, id: t.u32, status: t.u8, code: str, message: str, payload: t.bytes() }),

  // ---- deadman tokens (feature "deadman") ----
  /**
   * c→h: op 0 take (reply when taken), 1 tryTake, 2 release, 3 waitTaken, 4 waitReleased, 5 state,
   * 6 cancel the waiting op `rid` of this client.
   */
  deadman: t.struct({ rid: t.u32, name: key, op: t.u8 }),
  /** h→c: the token's state when the op completed. */
  deadmanState: t.struct({ rid: t.u32, taken: t.bool, holder: str, mine: t.bool, epoch: t.u64 }),

  // ---- direct RPC routes (feature "direct") ----
  /**
   * c→h: the direct routes of `topic`, now and whenever its pool changes (until this connection closes).
   * Replied with `routeList`.
   */
  routes: t.struct({ rid: t.u32, topic: key }),
  /**
   * h→c: the servers of `topic`, when every one of them takes direct calls (else none). `rid` 0: an update
   * after the pool changed.
   */
  routeList: t.struct({
    rid: t.u32,
    topic: key,
    routes: t.array(t.struct({ server: str, host: str, url: str }), { maxLength: 4096 }),
  }),

  // ---- key information (feature "info") ----
  /** c→h: what the hub knows of `key`, without holding it or reviving it. Replied with `keyInfo`. */
  info: t.struct({ rid: t.u32, key }),
  /**
   * h→c: `state` 0 none (never created, or forgotten), 1 live, 2 grace (no holder; disposed when its grace
   * ends unless held again), 3 disposed (a tombstone: watch fails with EZIPC_KEY_DISPOSED). The other
   * fields are 0 / false unless live or in grace.
   */
  keyInfo: t.struct({
    rid: t.u32,
    state: t.u8,
    kind: t.u8,
    size: t.u32,
    version: t.u64,
    refcount: t.u32,
    persistent: t.bool,
  }),
} as const;

/** The body of hub message `K`. */
export type HubBody<K extends keyof typeof hubMessages> = Infer<(typeof hubMessages)[K]>;

/** A decoded hub message: its type and body, discriminated by type. */
export type HubMessage = {
  [K in keyof typeof hubMessages]: { type: K; body: HubBody<K> };
}[keyof typeof hubMessages];

/** Block states in `listing`: live, counting down its grace period. */
export const STATE_LIVE = 0;
export const STATE_GRACE = 1;

/** Key states in `keyInfo`. */
export const INFO_NONE = 0;
export const INFO_LIVE = 1;
export const INFO_GRACE = 2;
export const INFO_DISPOSED = 3;

/** Makes a hub protocol instance (compile once per process and share it). */
export const hubProtocol: () => Protocol = schemaProtocol(hubMessages, "ezipc-hub");
