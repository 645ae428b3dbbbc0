/**
 * The shared-variable messages of the hub protocol (features "vars", "config", "info"), with their wire
 * indexes: {@link VARS_BASE} (allocate … listing), {@link PEEK_BASE} (peek) and {@link KEY_INFO_BASE}
 * (info, keyInfo). Indexes never change (src/wire/hub-protocol.ts checks them when it composes the tables).
 */
import { t } from "../codec/schema.js";
import { counts, key, str } from "../protocol/fields.js";

/** Sync policies in wire order: the higher, the more the hub pushes. */
export const POLICIES = ["request", "lazy", "poll"] as const;
export type SyncPolicy = (typeof POLICIES)[number];

/** Block kinds: raw bytes of a fixed size, or a JSON document of variable size. */
export const KIND_BYTES = 0;
export const KIND_JSON = 1;

/** Block states in `listing`: live, counting down its grace period. */
export const STATE_LIVE = 0;
export const STATE_GRACE = 1;

/** Key states in `keyInfo`. */
export const INFO_NONE = 0;
export const INFO_LIVE = 1;
export const INFO_GRACE = 2;
export const INFO_DISPOSED = 3;

export const VARS_BASE = 4;
/** A key in a listing (`listing`, `listingPage`). */
const listedKey = t.struct({
  key,
  kind: t.u8,
  size: t.u32,
  version: t.u64,
  refcount: t.u32,
  persistent: t.bool,
  state: t.u8,
  holders: t.array(t.struct({ client: str, counts })),
});

/** Pointers, reads, writes, config operations, listings and the resync after a reconnect. */
export const varsMessages = {
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
  listing: t.struct({ rid: t.u32, keys: t.array(listedKey) }),
} as const;

export const PEEK_BASE = 22;
/** Reading a key without holding it (for tools). */
export const peekMessages = {
  /** c→h: read a key by name without holding it (for tools: `ezipc get`). */
  peek: t.struct({ rid: t.u32, key }),
} as const;

export const KEY_INFO_BASE = 44;
/** What the hub knows of a key (feature "info"). */
export const keyInfoMessages = {
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

export const KEY_PAGES_BASE = 51;
/** Listing keys a page at a time (feature "pages"): any number of them, each answer a bounded frame. */
export const keyPageMessages = {
  /**
   * c→h: the keys matching the glob `pattern` (empty: all) whose names sort after `after` (empty: from the
   * first), as many as one page holds: at most 10,000 entries (keys and holders), and an answer of at most
   * `maxBytes` (the asker's frame limit; 0: the hub's choice) and 1 MiB, but always one key. Replied with
   * `listingPage`.
   */
  listPage: t.struct({ rid: t.u32, pattern: t.string({ maxBytes: 1024 }), after: key, maxBytes: t.u32 }),
  /** h→c: reply to listPage, in key order; `more`: there are others, ask again after the last one. */
  listingPage: t.struct({ rid: t.u32, keys: t.array(listedKey), more: t.bool }),
} as const;
