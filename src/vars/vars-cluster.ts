/**
 * The shared-variable service of a clustered hub (docs/cluster.md): what changes when a {@link VarsReplica}
 * is the authority on values and versions.
 *
 * - Every change the replica reports — another hub's write, or this hub's own — is applied to the local
 *   copy if it is newer than it, and pushed to this hub's holders as a local write would be.
 * - A write goes through the replica's compare-and-write against the version this hub has; if another hub
 *   wrote first, the newer value is applied and the write is made again on top of it (a write with
 *   `expect` gets `conflict` instead). Writes to one key are made one at a time, in arrival order, so a
 *   client's writes land in the order it sent them. The writer's `ok` carries the version the replica gave.
 * - `allocate` of a key this hub does not have creates it in the replica (one hub wins a race; the others
 *   open the winner's key), and `watch` asks the replica before answering "no such key".
 * - Reference counts are cluster-wide (the replica's {@link HoldRegistry}): this hub says when its pointers on a
 *   key leave 0 and come back to 0; when they are 0 for the grace period and no other hub holds the key, it
 *   is deleted from the cluster, and every hub invalidates it. Without a registry, keys are never disposed.
 * Reads answer from the local copy, which follows the replica within the propagation delay.
 */
import { EzipcError } from "../errors.js";
import { log } from "../log.js";
import type { Block, BlockTable, Clock } from "./block-table.js";
import type { HoldRegistry, ReplicaChange, ReplicaEntry, VarsReplica } from "./vars-replica.js";

/** Most times a write is made again because other hubs kept writing the key first. */
const MAX_ATTEMPTS = 100;

/** Longest wait before a grace whose end failed is ended again. */
const DISPOSE_RETRY_MS = 1_000;

/** What the cluster side needs of the service. */
export interface VarsClusterHost {
  readonly table: BlockTable;
  /** Tells a block's holders of its new value. */
  notifyHolders(block: Block): void;
}

export class VarsCluster {
  private readonly queues = new Map<Block, Promise<void>>();
  /**
   * Changes reported by the replica and applied here; writes made again because another hub wrote first;
   * graces that ended here, and the keys they deleted from the cluster (the rest were held elsewhere);
   * graces whose end failed (the cluster did not answer) and were run again.
   */
  readonly counters = { applied: 0, retries: 0, gracesEnded: 0, disposed: 0, disposeRetries: 0 };

  /** Grace timers of keys no pointer of this hub holds. */
  private readonly graces = new Map<Block, unknown>();

  constructor(
    readonly replica: VarsReplica,
    private readonly host: VarsClusterHost,
    private readonly clock: Clock,
  ) {
    const holds = replica.holds;
    host.table.holdsHook = holds
      ? { held: (b) => this.held(holds, b), unheld: (b) => this.unheld(holds, b) }
      : { held: () => {}, unheld: () => {} };
    holds?.onOrphaned((key) => {
      const found = host.table.lookup(key);
      if ("found" in found && found.found.refcount === 0) this.startGrace(found.found);
    });
  }

  /** Allocates in progress per key, whose hold was put ahead of their create. */
  private readonly aheads = new Map<string, number>();

  /**
   * Puts this hub's hold on `key` now, alongside an allocate's create, rather than after it: the answer waits
   * for the hold ({@link whenHeld}), which is then made by the time the create is. Pair with
   * {@link holdAheadDone} once the allocate has its pointer or has failed.
   */
  holdAhead(key: string): void {
    const holds = this.replica.holds;
    if (!holds) return;
    this.aheads.set(key, (this.aheads.get(key) ?? 0) + 1);
    holds.setHeld(key, true);
  }

  /**
   * An allocate that put its hold ahead is answered (or its client went away, or it failed): unless a
   * pointer holds the key here, the hold is let go and a key this hub has starts its grace — one created for
   * a client that left before its answer would otherwise be held by nobody and never disposed.
   */
  holdAheadDone(key: string): void {
    const holds = this.replica.holds;
    const n = this.aheads.get(key);
    if (!holds || n === undefined) return;
    if (n > 1) {
      this.aheads.set(key, n - 1);
      return;
    }
    this.aheads.delete(key);
    const found = this.host.table.lookup(key);
    if (!("found" in found)) holds.setHeld(key, false);
    else if (found.found.refcount === 0) this.unheld(holds, found.found);
  }

  /** Null when this hub's hold on `b` is in the cluster; else resolves once it is (HoldRegistry.whenHeld). */
  whenHeld(b: Block): Promise<void> | null {
    return this.replica.holds?.whenHeld(b.key) ?? null;
  }

  /** Stops the grace timers (the hub is closing). */
  stop(): void {
    for (const t of this.graces.values()) this.clock.clearTimeout(t);
    this.graces.clear();
  }

  private held(holds: HoldRegistry, b: Block): void {
    this.stopGrace(b);
    holds.setHeld(b.key, true);
  }

  private unheld(holds: HoldRegistry, b: Block): void {
    holds.setHeld(b.key, false);
    this.startGrace(b);
  }

  /**
   * Starts `b`'s grace (or, `retry`, ends it again shortly: the last end failed). A grace whose end fails —
   * the cluster did not answer whether another hub holds the key, or the delete — is ended again until it
   * holds, while the key is still unheld here: dropped, the key would never be disposed.
   */
  private startGrace(b: Block, retry = false): void {
    if (b.persistent || this.graces.has(b)) return;
    if (this.host.table.byId(b.id) !== b || b.refcount > 0) return;
    const grace = this.host.table.options.disposeGraceMs;
    if (!retry) b.graceSince = this.clock.now();
    this.graces.set(
      b,
      this.clock.setTimeout(
        () => {
          this.graces.delete(b);
          this.graceEnded(b).catch((err: unknown) => {
            this.counters.disposeRetries++;
            log("warn", "cluster", "disposing a key failed: tried again", { key: b.key, error: err });
            this.startGrace(b, true);
          });
        },
        retry ? Math.min(grace, DISPOSE_RETRY_MS) : grace,
      ),
    );
  }

  private stopGrace(b: Block): void {
    const t = this.graces.get(b);
    if (t !== undefined) this.clock.clearTimeout(t);
    this.graces.delete(b);
    b.graceSince = 0;
  }

  /** The grace of a key this hub does not hold ended: deleted from the cluster unless another hub holds it. */
  private async graceEnded(b: Block): Promise<void> {
    const held = () => this.host.table.byId(b.id) !== b || b.refcount > 0 || b.persistent;
    try {
      if (held() || (await this.replica.holds!.heldElsewhere(b.key)) || held()) return;
      log("debug", "cluster", "disposing a key no hub holds", { key: b.key });
      await this.replica.delete(b.key);
      this.counters.disposed++;
    } finally {
      this.counters.gracesEnded++;
    }
  }

  /** Loads every key of the cluster, then follows their changes. */
  start(): Promise<void> {
    return this.replica.watch((c) => this.apply(c));
  }

  /** Applies a change if it is newer than what this hub has. Returns the block (undefined: none now). */
  apply(c: ReplicaChange | ReplicaEntry): Block | undefined {
    const table = this.host.table;
    const found = table.lookup(c.key);
    if ("deleted" in c) {
      if ("found" in found && found.found.version <= c.version) table.delete(found.found);
      return undefined;
    }
    if ("found" in found) {
      const b = found.found;
      if (c.version <= b.version) return b;
      table.replaceData(b, Buffer.from(c.data));
      b.version = c.version;
      if (b.persistent !== c.persistent) table.setPersistent(b, c.persistent);
      this.counters.applied++;
      this.host.notifyHolders(b);
      return b;
    }
    try {
      this.counters.applied++;
      return table.create(c.key, c.data.length, {
        kind: c.kind,
        data: Buffer.from(c.data),
        version: c.version,
        persistent: c.persistent,
      });
    } catch (err) {
      // This hub's own limits (maxKeys, maxTotalBytes) are lower than the cluster's contents.
      log("warn", "cluster", "a key of the cluster does not fit this hub", { key: c.key, error: err });
      return undefined;
    }
  }

  /**
   * `key` as the cluster has it, when this hub has no copy (yet): fetched from the replica and applied.
   * Resolves with the block, or undefined when the cluster has no such key either.
   */
  async fetch(key: string): Promise<Block | undefined> {
    const e = await this.replica.get(key);
    return e ? this.apply(e) : undefined;
  }

  /**
   * Creates `key` in the cluster. Resolves with the block and whether this hub created it (false: another
   * hub had — the caller checks it fits what was asked).
   */
  async create(
    key: string,
    record: { kind: number; persistent: boolean; data: Buffer },
  ): Promise<{ block: Block; created: boolean }> {
    const r = await this.replica.create(key, record);
    const entry = "version" in r ? { key, ...record, version: r.version } : r.exists;
    const block = this.apply(entry);
    if (!block) throw new EzipcError("EZIPC_HUB_FULL", `key ${key} does not fit this hub`);
    return { block, created: "version" in r };
  }

  /**
   * Writes `block` through the cluster, in turn with the other writes to it: `next` makes the new value
   * from the current one (or says `conflict`). Resolves with the new version, or `{ conflict }` with the
   * current one; rejects with `EZIPC_KEY_DISPOSED`, a size limit's error or `EZIPC_CLUSTER`.
   */
  write(
    block: Block,
    next: (current: Block) => Buffer | "conflict",
    expect: number | undefined,
  ): Promise<{ version: number } | { conflict: number }> {
    return this.inTurn(block, async () => {
      const table = this.host.table;
      for (let attempt = 0; ; attempt++) {
        if (table.byId(block.id) !== block) {
          throw new EzipcError("EZIPC_KEY_DISPOSED", `key ${block.key} has been disposed`);
        }
        if (expect !== undefined && block.version !== expect) {
          // This hub's copy may lag behind the cluster: ask before calling it a conflict.
          await this.fetch(block.key);
          if (block.version !== expect) return { conflict: block.version };
        }
        const data = next(block);
        if (data === "conflict") return { conflict: block.version };
        table.checkSize(block.key, data.length, block.data.length);
        const record = { kind: block.kind, persistent: block.persistent, data };
        const r = await this.replica.update(block.key, record, block.version);
        if ("version" in r) {
          this.apply({ key: block.key, version: r.version, ...record });
          return { version: r.version };
        }
        if (r.conflict === null) throw new EzipcError("EZIPC_KEY_DISPOSED", `key ${block.key} was deleted`);
        this.apply(r.conflict);
        if (expect !== undefined) return { conflict: r.conflict.version };
        this.counters.retries++;
        if (attempt >= MAX_ATTEMPTS) {
          throw new EzipcError(
            "EZIPC_CLUSTER",
            `writing ${block.key}: other hubs wrote it first ${MAX_ATTEMPTS} times in a row`,
          );
        }
      }
    });
  }

  /** Runs `task` after the tasks queued before it for `block`. */
  private inTurn<T>(block: Block, task: () => Promise<T>): Promise<T> {
    const before = this.queues.get(block) ?? Promise.resolve();
    const run = before.then(task);
    const tail = run.then(
      () => {},
      () => {},
    );
    this.queues.set(block, tail);
    void tail.then(() => {
      if (this.queues.get(block) === tail) this.queues.delete(block);
    });
    return run;
  }
}
