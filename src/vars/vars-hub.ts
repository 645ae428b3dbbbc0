/**
 * Shared variables, hub side: named blocks kept in sync with every client that holds a pointer on them.
 *
 * - The hub is the single owner of every value. A write is applied here, in arrival order, and gets the
 *   next version; the new value is then pushed to clients holding the key under `poll`, and a small `stale`
 *   notice (once, until they read) to clients under `lazy`. `request` holders get nothing pushed.
 * - Reference counts live here ({@link BlockTable}): one per pointer, per client, per policy. A client's
 *   effective policy for a key is the highest it holds.
 * - Slow clients: when a client's send queue is over its high-water mark, updates for it are coalesced —
 *   the holding is marked dirty and the latest value sent once the queue drains. So a client that never
 *   reads costs at most its queue limit plus one flag per key, and never delays anyone else.
 * - Persistent keys are staged until the store commits them (block-commits.ts): nothing uncommitted is
 *   shown, and a write is acknowledged only once durable.
 * The hub (src/hub/hub.ts) owns the clients and their connections; this part keeps, per client, only its
 * pointers (`PeerVars`). Who holds what, and the pushing of new values to holders, is vars-holdings.ts.
 *
 * Over 600 lines: the handlers of the twelve message types, each with its checks (key, size, kind,
 * permission, pointer limit), share the block table, the staged commits and the hand-overs to a clustered
 * hub (vars-cluster.ts: allocateInCluster, writeInCluster); split further, each would reach back into
 * those. The holdings and their propagation, and the listings (key-listings.ts), are in their own files.
 */
import type { Infer } from "../codec/schema.js";
import { EzipcError, isEzipcError } from "../errors.js";
import { Histogram } from "../histogram.js";
import { ListingBudget } from "../listing-budget.js";
import { log } from "../log.js";
import type { KeyView } from "../protocol/core-messages.js";
import type { Operation } from "../security/access.js";
import type { Protocol } from "../service/protocol.js";
import { DEFAULT_MAX_FRAME_BYTES } from "../transport/frame.js";
import { sendTo } from "../transport/send.js";
import type { Connection } from "../transport/types.js";
import { BlockCommits, type BlockValue } from "./block-commits.js";
import type { BlockStore } from "./block-store.js";
import { type Block, BlockTable, type BlockTableOptions, type Clock, checkKey } from "./block-table.js";
import { checkConfigDepth } from "./json-depth.js";
import { describeKeys, type KeySource, keysPage, listingGlob, listKeys } from "./key-listings.js";
import { mergePatch } from "./merge-patch.js";
import { VarsCluster } from "./vars-cluster.js";
import { type Holding, LAZY, POLL, policyOf, REQUEST, VarsHolders, type VarsPeer } from "./vars-holdings.js";
import {
  INFO_DISPOSED,
  INFO_GRACE,
  INFO_LIVE,
  INFO_NONE,
  KIND_BYTES,
  KIND_JSON,
  type keyInfoMessages,
  type keyPageMessages,
  type peekMessages,
  type varsMessages,
} from "./vars-messages.js";
import type { VarsReplica } from "./vars-replica.js";

/** Options of the shared-variable part of a hub. */
export interface VarsOptions extends BlockTableOptions {
  /** Most pointers one client may hold (`EZIPC_TOO_MANY_POINTERS`). Default 10,000. */
  maxPointersPerClient?: number;
  /** Most pointers in the hub, over all clients (`EZIPC_TOO_MANY_POINTERS`): about 460 bytes each. Default 500,000. */
  maxPointers?: number;
  /** Whether clients may create persistent keys (`EZIPC_PERMISSION_DENIED` otherwise). Default true. */
  allowClientPersistent?: boolean;
  /** The hub's frame limit: a `list` answer over it is refused (`EZIPC_MESSAGE_TOO_LARGE`). Default 16 MiB. */
  maxFrameBytes?: number;
}

/** Messages this part handles. */
const TYPES = new Set([
  "allocate",
  "watch",
  "release",
  "read",
  "write",
  "config",
  "resync",
  "resyncDone",
  "list",
  "listPage",
  "peek",
  "info",
]);

export class VarsHub {
  readonly table: BlockTable;
  private readonly commits: BlockCommits;
  readonly counters = { writes: 0, reads: 0, updatesSent: 0, updatesCoalesced: 0, staleSent: 0 };
  /** Who holds which block, and the pushing of new values to them (vars-holdings.ts). */
  private readonly holders: VarsHolders;
  /** From a write's (or config op's) arrival to its `ok` (after the store's commit, for a persistent key). */
  readonly writeAckLatency = new Histogram();
  private readonly maxPointersPerClient: number;
  private readonly maxPointers: number;
  private readonly allowClientPersistent: boolean;
  private readonly maxFrameBytes: number;

  constructor(
    options: VarsOptions,
    clock: Clock,
    private readonly store: BlockStore,
    private readonly protocol: Protocol,
    /** Throws `EZIPC_PERMISSION_DENIED` for an operation the client may not do (secure hubs). */
    private readonly access: ((conn: Connection, op: Operation, subject: string) => void) | undefined,
    /** Told of every invalidated key. */
    private readonly onInvalidated: (info: { key: string; reason: "disposed" | "deleted" }) => void,
    /** A clustered hub's authority on values and versions (vars-cluster.ts). */
    replica?: VarsReplica,
  ) {
    this.holders = new VarsHolders(protocol, this.counters);
    this.maxPointersPerClient = options.maxPointersPerClient ?? 10_000;
    this.maxPointers = options.maxPointers ?? 500_000;
    this.allowClientPersistent = options.allowClientPersistent ?? true;
    this.maxFrameBytes = options.maxFrameBytes ?? DEFAULT_MAX_FRAME_BYTES;
    this.commits = new BlockCommits(store, (b, v) => this.applyCommitted(b, v));
    this.table = new BlockTable(options, clock, (block, reason) => this.onInvalidate(block, reason));
    this.clock = clock;
    this.cluster = replica
      ? new VarsCluster(replica, { table: this.table, notifyHolders: (b) => this.holders.notify(b) }, clock)
      : null;
  }

  /** The cluster side (null on a hub of its own). */
  readonly cluster: VarsCluster | null;

  /** A clustered hub: loads the cluster's keys and follows them (before listening). */
  async start(): Promise<void> {
    await this.cluster?.start();
  }

  private readonly clock: Clock;

  /**
   * The first `limit` keys by name matching `match` that `conn` may watch (for the hub's monitor view), each
   * with at most 50 of its holders, and how many more keys there were (key-listings.ts).
   */
  describeKeys(
    conn: Connection | null,
    match: (key: string) => boolean,
    limit: number,
  ): { keys: KeyView[]; more: number } {
    return describeKeys(this.listed(conn), match, limit, this.clock.now(), this.table.options.disposeGraceMs);
  }

  /** What the key listings (key-listings.ts) read, for a client on `conn`. */
  private listed(conn: Connection | null): KeySource {
    const hub = this;
    return {
      blocks: () => hub.table.blocks(),
      get keyCount() {
        return hub.table.size;
      },
      mayList: (key) => !hub.access || !conn || hub.permits(conn, "watch", key),
      holdersOf: (b) => hub.holders.of(b),
      listings: hub.listings,
      maxFrameBytes: hub.maxFrameBytes,
    };
  }

  /** Loads the persistent keys the store holds (once, before listening). */
  load(): void {
    for (const s of this.store.load()) {
      this.table.create(s.key, s.data.length, {
        kind: s.kind,
        data: Buffer.from(s.data),
        version: s.version,
        persistent: true,
      });
    }
  }

  /** Handles a shared-variable message of `peer`; false if `type` is not one. */
  handle(peer: VarsPeer, type: string, body: unknown): boolean {
    if (!TYPES.has(type)) return false;
    const m = body as never;
    switch (type) {
      case "allocate":
        this.onAllocate(peer, m);
        break;
      case "watch":
        this.onWatch(peer, m);
        break;
      case "release":
        this.onRelease(peer, m);
        break;
      case "read":
        this.onRead(peer, m);
        break;
      case "write":
        this.onWrite(peer, m);
        break;
      case "config":
        this.onConfig(peer, m);
        break;
      case "resync":
        this.onResync(peer, m);
        break;
      case "resyncDone":
        this.onResyncDone(peer, m);
        break;
      case "list":
        this.onList(peer, m);
        break;
      case "listPage":
        this.onListPage(peer, m);
        break;
      case "peek":
        this.onPeek(peer, m);
        break;
      default:
        this.onInfo(peer, m);
    }
    return true;
  }

  /**
   * A client (re)connected: it resynchronises its pointers next. `fromEarlierRun`: it held them on an
   * earlier run of the hub (its resume token is of another run).
   */
  attach(peer: VarsPeer, fromEarlierRun = false): void {
    peer.vars.congested = false;
    peer.vars.resynced = new Set();
    peer.vars.fromEarlierRun = fromEarlierRun && !this.cluster;
  }

  /** Releases every pointer of a client that is gone for good. */
  forget(peer: VarsPeer): void {
    peer.vars.gone = true;
    for (const h of [...peer.vars.holdings.values()]) this.dropHolding(peer, h);
  }

  /**
   * Creates a key from the hub side (no client holds it). `persistent` keys are never disposed; others
   * start their grace period at once. Throws like a client's allocate (`EZIPC_KEY_EXISTS`, limits).
   */
  allocate(key: string, size: number, options: { persistent?: boolean; json?: boolean } = {}): void {
    if (this.cluster) {
      throw new EzipcError(
        "EZIPC_NOT_SUPPORTED",
        "hub.allocate() on a clustered hub: allocate the key from a client (docs/cluster.md)",
      );
    }
    const json = options.json ?? false;
    if (!json) checkSize(size);
    const block = this.table.create(key, json ? 0 : size, {
      kind: json ? KIND_JSON : KIND_BYTES,
      persistent: options.persistent ?? false,
    });
    if (block.persistent) this.persistNow(block);
  }

  /** Deletes a key now, whoever holds it: their pointers are invalidated. Returns false if there was none. */
  delete(key: string): boolean {
    const found = this.table.lookup(key);
    if (!("found" in found)) return false;
    if (this.cluster) {
      // Every hub invalidates it when the cluster reports the deletion (this one too).
      this.cluster.replica
        .delete(key)
        .catch((err: unknown) => log("warn", "cluster", "delete failed", { key, error: err }));
      return true;
    }
    this.table.delete(found.found);
    return true;
  }

  /** The current value and version of a key, or undefined. */
  peek(key: string): { data: Buffer; version: number; refcount: number; persistent: boolean } | undefined {
    const found = this.table.lookup(key);
    if (!("found" in found)) return undefined;
    const b = found.found;
    return { data: Buffer.from(b.data), version: b.version, refcount: b.refcount, persistent: b.persistent };
  }

  /** Key counts for the hub's stats. */
  stats(): { keys: number; persistentKeys: number; totalBytes: number; tombstones: number } {
    let persistentKeys = 0;
    for (const b of this.table.blocks()) if (b.persistent) persistentKeys++;
    return {
      keys: this.table.size,
      persistentKeys,
      totalBytes: this.table.totalBytes,
      tombstones: this.table.tombstoneCount,
    };
  }

  /** Commits what is staged and stops (the hub is closing). */
  close(): void {
    this.commits.flush();
    this.commits.stop();
    this.cluster?.stop();
    this.table.close();
  }

  private send(client: VarsPeer, type: string, body: unknown): void {
    const conn = client.conn;
    if (conn) sendTo(conn, this.protocol.encode(type, body));
  }

  private fail(client: VarsPeer, rid: number, err: unknown): void {
    if (!isEzipcError(err)) throw err;
    this.send(client, "error", { rid, code: err.code, message: err.message });
  }

  /** Whether `conn`'s client may do `op` on `subject` (listings show only what it may see). */
  private permits(conn: Connection, op: Operation, subject: string): boolean {
    try {
      this.access?.(conn, op, subject);
      return true;
    } catch {
      return false;
    }
  }

  /** Throws `EZIPC_PERMISSION_DENIED` if the client's permissions (docs/security.md) do not allow it. */
  private checkAccess(client: VarsPeer, op: Operation, subject: string): void {
    if (this.access && client.conn) this.access(client.conn, op, subject);
  }

  private onAllocate(client: VarsPeer, m: Infer<typeof varsMessages.allocate>): void {
    try {
      checkKey(m.key);
      checkPolicy(m.policy);
      if (m.kind !== KIND_BYTES && m.kind !== KIND_JSON) {
        throw new EzipcError("EZIPC_BAD_REQUEST", `unknown block kind ${m.kind}`);
      }
      if (m.kind === KIND_BYTES) checkSize(m.size);
      if (m.persistent && !this.allowClientPersistent) {
        throw new EzipcError(
          "EZIPC_PERMISSION_DENIED",
          "this hub does not let clients create persistent keys",
        );
      }
      this.checkPointerLimit(client);
      const found = this.table.lookup(m.key);
      let block: Block;
      let created = false;
      if ("found" in found) {
        block = found.found;
        checkExisting(block, m);
      } else if (this.cluster) {
        this.allocateInCluster(client, m);
        return;
      } else {
        block = this.table.create(m.key, m.kind === KIND_JSON ? 0 : m.size, {
          kind: m.kind,
          persistent: m.persistent,
        });
        created = true;
        if (block.persistent) this.persistNow(block);
      }
      this.addPointers(client, block, m.policy, 1);
      this.sendOpened(client, m.rid, block, created);
    } catch (err) {
      this.fail(client, m.rid, err);
    }
  }

  /** allocate of a key this hub has no copy of: created in the cluster (or opened, if another hub won). */
  private allocateInCluster(client: VarsPeer, m: Infer<typeof varsMessages.allocate>): void {
    const data = Buffer.alloc(m.kind === KIND_JSON ? 0 : m.size);
    const cluster = this.cluster!;
    cluster.holdAhead(m.key);
    cluster
      .create(m.key, { kind: m.kind, persistent: m.persistent, data })
      .then(
        ({ block, created }) => {
          if (client.vars.gone) return;
          try {
            if (!created) checkExisting(block, m);
            this.checkPointerLimit(client);
            this.addPointers(client, block, m.policy, 1);
            this.sendOpened(client, m.rid, block, created);
          } catch (err) {
            this.fail(client, m.rid, err);
          }
        },
        (err: unknown) => this.fail(client, m.rid, err),
      )
      .finally(() => cluster.holdAheadDone(m.key));
  }

  private onWatch(client: VarsPeer, m: Infer<typeof varsMessages.watch>): void {
    try {
      checkKey(m.key);
      checkPolicy(m.policy);
      this.checkPointerLimit(client);
      if (this.cluster && !("found" in this.table.lookup(m.key))) {
        // Not here yet (another hub created it a moment ago), or in no hub: the cluster says which.
        this.cluster.fetch(m.key).then(
          () => {
            if (!client.vars.gone) this.onWatchFound(client, m);
          },
          (err: unknown) => this.fail(client, m.rid, err),
        );
        return;
      }
      this.onWatchFound(client, m);
    } catch (err) {
      this.fail(client, m.rid, err);
    }
  }

  private onWatchFound(client: VarsPeer, m: Infer<typeof varsMessages.watch>): void {
    try {
      this.checkPointerLimit(client);
      const block = this.find(m.key);
      this.addPointers(client, block, m.policy, 1);
      this.sendOpened(client, m.rid, block, false);
    } catch (err) {
      this.fail(client, m.rid, err);
    }
  }

  private onPeek(client: VarsPeer, m: Infer<typeof peekMessages.peek>): void {
    try {
      checkKey(m.key);
      const b = this.find(m.key);
      this.send(client, "opened", {
        rid: m.rid,
        id: b.id,
        kind: b.kind,
        size: b.data.length,
        version: BigInt(b.version),
        persistent: b.persistent,
        created: false,
        data: b.data,
      });
    } catch (err) {
      this.fail(client, m.rid, err);
    }
  }

  /** What the hub knows of a key, with no side effect (a key in grace stays in grace). */
  private onInfo(client: VarsPeer, m: Infer<typeof keyInfoMessages.info>): void {
    try {
      checkKey(m.key);
      const found = this.table.lookup(m.key);
      const none = { rid: m.rid, kind: 0, size: 0, version: 0n, refcount: 0, persistent: false };
      if ("disposed" in found) this.send(client, "keyInfo", { ...none, state: INFO_DISPOSED });
      else if ("missing" in found) this.send(client, "keyInfo", { ...none, state: INFO_NONE });
      else {
        const b = found.found;
        this.send(client, "keyInfo", {
          rid: m.rid,
          state: b.refcount === 0 && !b.persistent ? INFO_GRACE : INFO_LIVE,
          kind: b.kind,
          size: b.data.length,
          version: BigInt(b.version),
          refcount: b.refcount,
          persistent: b.persistent,
        });
      }
    } catch (err) {
      this.fail(client, m.rid, err);
    }
  }

  private onRelease(client: VarsPeer, m: Infer<typeof varsMessages.release>): void {
    const h = client.vars.holdings.get(m.id);
    // A release can cross an invalidation or a resync on the wire: nothing left to release is fine.
    if (!h || m.policy > POLL || h.counts[m.policy]! === 0) return;
    h.counts[m.policy]!--;
    this.holders.count(client, -1);
    this.table.release(h.block);
    h.policy = policyOf(h.counts);
    if (h.policy === -1) this.holders.remove(client, h);
    else if (h.policy !== POLL && h.dirty) {
      h.dirty = false;
      client.vars.dirty.delete(h);
    }
  }

  private onRead(client: VarsPeer, m: Infer<typeof varsMessages.read>): void {
    try {
      const h = this.holding(client, m.id);
      this.counters.reads++;
      h.staleSent = false;
      this.send(client, "value", {
        rid: m.rid,
        id: m.id,
        version: BigInt(h.block.version),
        data: h.block.data,
      });
    } catch (err) {
      this.fail(client, m.rid, err);
    }
  }

  private onWrite(client: VarsPeer, m: Infer<typeof varsMessages.write>): void {
    const t0 = performance.now();
    try {
      const h = this.holding(client, m.id);
      const b = h.block;
      this.checkAccess(client, "write", b.key);
      if (b.kind !== KIND_BYTES) {
        throw new EzipcError("EZIPC_BAD_REQUEST", `${b.key} is a JSON config; use its config operations`);
      }
      const cur = b.persistent ? this.commits.writable(b) : b;
      if (m.offset + m.data.length > cur.data.length) {
        throw new EzipcError(
          "EZIPC_BAD_REQUEST",
          `${b.key}: write of ${m.data.length} bytes at ${m.offset} is outside its ${cur.data.length} bytes`,
        );
      }
      if (this.cluster) {
        this.writeInCluster(
          client,
          m.rid,
          b,
          m.expect === undefined ? undefined : Number(m.expect),
          t0,
          (c) => {
            if (m.offset + m.data.length > c.data.length) return "conflict";
            const data = Buffer.from(c.data);
            data.set(m.data, m.offset);
            return data;
          },
        );
        return;
      }
      if (m.expect !== undefined && Number(m.expect) !== cur.version) {
        this.send(client, "conflict", { rid: m.rid, version: BigInt(b.version) });
        return;
      }
      if (b.persistent) {
        const data = Buffer.from(cur.data);
        data.set(m.data, m.offset);
        this.stage(client, m.rid, b, data, cur.version + 1, t0);
        return;
      }
      b.data.set(m.data, m.offset);
      this.changed(b);
      this.send(client, "ok", { rid: m.rid, version: BigInt(b.version) });
      this.writeAckLatency.since(t0);
    } catch (err) {
      this.fail(client, m.rid, err);
    }
  }

  private onConfig(client: VarsPeer, m: Infer<typeof varsMessages.config>): void {
    const t0 = performance.now();
    try {
      const h = this.holding(client, m.id);
      const b = h.block;
      this.checkAccess(client, "write", b.key);
      if (b.kind !== KIND_JSON) throw new EzipcError("EZIPC_BAD_REQUEST", `${b.key} is not a JSON config`);
      checkConfigDepth(b.key, m.json);
      let value: unknown;
      try {
        value = JSON.parse(m.json);
      } catch (err) {
        throw new EzipcError("EZIPC_BAD_REQUEST", `${b.key}: invalid JSON: ${(err as Error).message}`);
      }
      if (m.op !== 0 && m.op !== 1 && m.op !== 2) {
        throw new EzipcError("EZIPC_BAD_REQUEST", `unknown config operation ${m.op}`);
      }
      if (this.cluster) {
        this.writeInCluster(client, m.rid, b, undefined, t0, (c) => {
          const next = configValue(m.op, value, c.data);
          return next === CONFLICT ? "conflict" : Buffer.from(JSON.stringify(next), "utf8");
        });
        return;
      }
      const cur = b.persistent ? this.commits.writable(b) : b;
      const next = configValue(m.op, value, cur.data);
      if (next === CONFLICT) {
        this.send(client, "conflict", { rid: m.rid, version: BigInt(b.version) });
        return;
      }
      const data = Buffer.from(JSON.stringify(next), "utf8");
      this.table.checkSize(b.key, data.length, b.data.length);
      if (b.persistent) {
        this.stage(client, m.rid, b, data, cur.version + 1, t0);
        return;
      }
      this.table.replaceData(b, data);
      this.changed(b);
      this.send(client, "ok", { rid: m.rid, version: BigInt(b.version) });
      this.writeAckLatency.since(t0);
    } catch (err) {
      this.fail(client, m.rid, err);
    }
  }

  /** A write through the cluster (vars-cluster.ts): `ok` with the cluster's version, or `conflict`. */
  private writeInCluster(
    client: VarsPeer,
    rid: number,
    b: Block,
    expect: number | undefined,
    t0: number,
    next: (current: Block) => Buffer | "conflict",
  ): void {
    this.counters.writes++;
    this.cluster!.write(b, next, expect).then(
      (r) => {
        if ("conflict" in r) this.send(client, "conflict", { rid, version: BigInt(r.conflict) });
        else {
          this.send(client, "ok", { rid, version: BigInt(r.version) });
          this.writeAckLatency.since(t0);
        }
      },
      (err: unknown) => this.fail(client, rid, err),
    );
  }

  private onResync(client: VarsPeer, m: Infer<typeof varsMessages.resync>): void {
    try {
      checkKey(m.key);
      const counts = m.counts as [number, number, number];
      const total = counts[0] + counts[1] + counts[2];
      if (total === 0) throw new EzipcError("EZIPC_BAD_REQUEST", "resync with no pointers");
      let h = client.vars.holdings.get(m.id);
      let block: Block;
      if (h && h.block.key === m.key) block = h.block;
      else {
        block = this.find(m.key);
        h = client.vars.holdings.get(block.id);
      }
      // The key this client held on an earlier run went with it (only persistent keys are kept, with their
      // versions): one of the same name made since is another key, whose versions began again.
      if (client.vars.fromEarlierRun && !block.persistent) {
        throw new EzipcError(
          "EZIPC_KEY_DISPOSED",
          `key ${m.key} was not kept across the hub's restart (not persistent): the one there now is another`,
        );
      }
      const before = h ? h.counts[0] + h.counts[1] + h.counts[2] : 0;
      // The same bound as allocate/watch: the pointers this client will hold after the resync.
      if (client.vars.pointers - before + total > this.maxPointersPerClient) {
        throw new EzipcError(
          "EZIPC_TOO_MANY_POINTERS",
          `resync of ${m.key} with ${total} pointers is over this client's maximum of ${this.maxPointersPerClient}`,
        );
      }
      if (this.holders.pointers - before + total > this.maxPointers) {
        throw new EzipcError(
          "EZIPC_TOO_MANY_POINTERS",
          `resync of ${m.key} with ${total} pointers is over the hub's maximum of ${this.maxPointers}`,
        );
      }
      if (h) {
        for (let p = 0; p < 3; p++) h.counts[p] = 0;
        this.holders.count(client, -before);
        this.table.hold(block, total); // hold first so the block never passes through refcount 0
        this.table.release(block, before);
        h.policy = -1;
      } else this.table.hold(block, total);
      this.addPointers(client, block, -1, 0, counts);
      client.vars.resynced?.add(block.id);
      this.sendOpened(client, m.rid, block, false);
    } catch (err) {
      this.fail(client, m.rid, err);
    }
  }

  private onResyncDone(client: VarsPeer, m: Infer<typeof varsMessages.resyncDone>): void {
    const kept = client.vars.resynced;
    client.vars.resynced = null;
    client.vars.fromEarlierRun = false;
    if (kept) {
      for (const h of [...client.vars.holdings.values()])
        if (!kept.has(h.block.id)) this.dropHolding(client, h);
    }
    this.send(client, "ok", { rid: m.rid, version: 0n });
  }

  /** The hub's budget for listings (listing-budget.ts), shared with the other capabilities; set by the hub. */
  listings = new ListingBudget(0);

  private onList(client: VarsPeer, m: Infer<typeof varsMessages.list>): void {
    try {
      const keys = listKeys(this.listed(client.conn), listingGlob(m.pattern));
      this.send(client, "listing", { rid: m.rid, keys });
    } catch (err) {
      this.fail(client, m.rid, err); // (the budget, or an answer over one frame: EZIPC_MESSAGE_TOO_LARGE)
    }
  }

  private onListPage(client: VarsPeer, m: Infer<typeof keyPageMessages.listPage>): void {
    try {
      const page = keysPage(this.listed(client.conn), listingGlob(m.pattern), m.after, m.maxBytes);
      this.send(client, "listingPage", { rid: m.rid, ...page });
    } catch (err) {
      this.fail(client, m.rid, err);
    }
  }

  // ---- holdings and propagation -----------------------------------------------------------------------

  private find(key: string): Block {
    const found = this.table.lookup(key);
    if ("found" in found) return found.found;
    if ("disposed" in found) throw new EzipcError("EZIPC_KEY_DISPOSED", `key ${key} has been disposed`);
    throw new EzipcError("EZIPC_KEY_NOT_FOUND", `no key ${key}`);
  }

  private holding(client: VarsPeer, id: number): Holding {
    const h = client.vars.holdings.get(id);
    if (!h) throw new EzipcError("EZIPC_BAD_REQUEST", `this client holds no pointer on block ${id}`);
    return h;
  }

  private checkPointerLimit(client: VarsPeer): void {
    if (client.vars.pointers >= this.maxPointersPerClient) {
      throw new EzipcError(
        "EZIPC_TOO_MANY_POINTERS",
        `this client holds its maximum of ${this.maxPointersPerClient} pointers`,
      );
    }
    if (this.holders.pointers >= this.maxPointers) {
      throw new EzipcError(
        "EZIPC_TOO_MANY_POINTERS",
        `the hub holds its maximum of ${this.maxPointers} pointers`,
      );
    }
  }

  /**
   * Adds pointers to a client's holding: `n` of `policy`, or the given per-policy `counts` (already held
   * in the table by the caller).
   */
  private addPointers(
    client: VarsPeer,
    block: Block,
    policy: number,
    n: number,
    counts?: readonly number[],
  ): void {
    this.holders.add(client, block, policy, n, counts);
    if (!counts) this.table.hold(block, n);
  }

  /**
   * Answers an allocate or watch with the pointer. On a clustered hub whose hold on the key is not yet in
   * the cluster (this hub's first pointer on it, put in the background), the answer waits for it: another
   * hub whose grace ends after the client has its pointer sees the hold and does not dispose the key. If
   * the key was disposed meanwhile, the answer is `EZIPC_KEY_DISPOSED`.
   */
  private sendOpened(client: VarsPeer, rid: number, b: Block, created: boolean): void {
    const wait = this.cluster?.whenHeld(b);
    if (!wait) {
      this.sendOpenedNow(client, rid, b, created);
      return;
    }
    void wait.then(() => {
      if (client.vars.gone) return;
      if (this.table.byId(b.id) !== b || !client.vars.holdings.has(b.id)) {
        this.fail(client, rid, new EzipcError("EZIPC_KEY_DISPOSED", `${b.key} was disposed`));
        return;
      }
      this.sendOpenedNow(client, rid, b, created);
    });
  }

  private sendOpenedNow(client: VarsPeer, rid: number, b: Block, created: boolean): void {
    const h = client.vars.holdings.get(b.id);
    const withData = h !== undefined && h.policy >= LAZY;
    if (h?.dirty) {
      h.dirty = false;
      client.vars.dirty.delete(h);
    }
    this.send(client, "opened", {
      rid,
      id: b.id,
      kind: b.kind,
      size: b.data.length,
      version: BigInt(b.version),
      persistent: b.persistent,
      created,
      data: withData ? b.data : undefined,
    });
  }

  /** Releases every pointer of a holding. */
  private dropHolding(client: VarsPeer, h: Holding): void {
    const n = h.counts[0] + h.counts[1] + h.counts[2];
    h.counts.fill(0);
    this.holders.count(client, -n);
    this.holders.remove(client, h);
    if (this.table.byId(h.block.id) === h.block) this.table.release(h.block, n);
  }

  /** A block's value changed in place: bump its version and tell its holders. */
  private changed(b: Block): void {
    b.version++;
    this.counters.writes++;
    this.holders.notify(b);
  }

  /**
   * A write to a persistent key: staged until the store commits it (block-commits.ts), then applied, pushed
   * to the holders and acknowledged.
   */
  private stage(client: VarsPeer, rid: number, b: Block, data: Buffer, version: number, t0: number): void {
    this.counters.writes++;
    this.commits.stage(b, { data, version }, (err) => {
      if (err) this.send(client, "error", { rid, code: err.code, message: err.message });
      else {
        this.send(client, "ok", { rid, version: BigInt(version) });
        this.writeAckLatency.since(t0);
      }
    });
  }

  /** A persistent key's staged write was committed. */
  private applyCommitted(b: Block, value: BlockValue): void {
    this.table.replaceData(b, value.data);
    b.version = value.version;
    this.holders.notify(b);
  }

  /** Commits a new persistent key at once; if the store fails, the key is removed and `EZIPC_STORE` thrown. */
  private persistNow(block: Block): void {
    try {
      this.store.save([{ key: block.key, kind: block.kind, version: block.version, data: block.data }]);
      // In the store now (it survives a kill of the hub); on disk with the sync this starts (a failed one is
      // logged: the next sync that succeeds covers the key too, as it covers the whole log).
      this.store.afterDurable?.((err) => {
        if (err !== undefined)
          log("warn", "hub", "syncing a new persistent key failed", { key: block.key, error: err });
      });
    } catch (err) {
      this.table.delete(block);
      throw new EzipcError("EZIPC_STORE", `persisting ${block.key} failed: ${(err as Error).message}`, {
        cause: err,
      });
    }
  }

  private onInvalidate(block: Block, reason: "disposed" | "deleted"): void {
    this.commits.drop(block);
    if (block.persistent) {
      try {
        this.store.remove(block.key);
      } catch (err) {
        log("error", "hub", "store remove failed", { key: block.key, error: err });
      }
    }
    const holders = this.holders.of(block);
    if (holders) {
      for (const [client, h] of [...holders]) {
        const n = h.counts[0] + h.counts[1] + h.counts[2];
        this.holders.count(client, -n);
        h.counts.fill(0);
        this.holders.remove(client, h);
        this.send(client, "invalidated", { id: block.id, code: "EZIPC_KEY_DISPOSED" });
      }
    }
    log("debug", "hub", "invalidated", { key: block.key, reason });
    this.onInvalidated({ key: block.key, reason });
  }
}

function checkPolicy(p: number): void {
  if (p !== REQUEST && p !== LAZY && p !== POLL) {
    throw new EzipcError("EZIPC_BAD_REQUEST", `unknown sync policy ${p} (0 request, 1 lazy, 2 poll)`);
  }
}

function checkSize(size: number): void {
  if (!Number.isInteger(size) || size < 1) {
    throw new EzipcError("EZIPC_BAD_REQUEST", `a block needs a size of at least 1 byte, got ${size}`);
  }
}

/** Throws if an existing block is not what an `allocate` with `ifExists` asked for. */
function checkExisting(block: Block, m: Infer<typeof varsMessages.allocate>): void {
  if (m.ifExists !== 1) throw new EzipcError("EZIPC_KEY_EXISTS", `key ${m.key} already exists`);
  if (block.kind !== m.kind) {
    throw new EzipcError(
      "EZIPC_BAD_REQUEST",
      `key ${m.key} holds ${kindName(block.kind)}, not ${kindName(m.kind)}`,
    );
  }
  if (m.kind === KIND_BYTES && block.data.length !== m.size) {
    throw new EzipcError("EZIPC_BAD_REQUEST", `key ${m.key} has ${block.data.length} bytes, not ${m.size}`);
  }
}

/** What {@link configValue} gives when a write-if-empty finds a document (never a value: a document may be any). */
const CONFLICT: unique symbol = Symbol("conflict");

/** A config operation's result on `current` (0 set, 1 set if empty, 2 merge patch), or {@link CONFLICT}. */
function configValue(op: number, value: unknown, current: Buffer): unknown {
  if (op === 0) return value;
  if (op === 1) return current.length > 0 ? CONFLICT : value;
  return mergePatch(current.length > 0 ? JSON.parse(current.toString("utf8")) : undefined, value);
}

function kindName(kind: number): string {
  return kind === KIND_JSON ? "a JSON config" : "bytes";
}
