import { EzipcError } from "../errors.js";
import { FORWARD_RESERVE_BYTES } from "../protocol/fields.js";
import { checkKey } from "../protocol/names.js";
import { DEFAULT_MAX_FRAME_BYTES } from "../transport/frame.js";
import { KIND_BYTES } from "./vars-messages.js";

export { checkKey };

/** One named block on the hub. */
export interface Block {
  readonly key: string;
  /** Hub-wide id, never reused in this hub process (0 is never an id). */
  readonly id: number;
  readonly kind: number;
  /** The value. For bytes blocks its length is fixed; a JSON block's length changes with its document. */
  data: Buffer;
  /** 1 at creation, +1 per applied write. */
  version: number;
  persistent: boolean;
  /** Pointers held on this block, over all clients. */
  refcount: number;
  /** When refcount reached 0 (grace running), else 0. */
  graceSince: number;
}

/** Timers the table uses; injected so tests can drive time. */
export interface Clock {
  now(): number;
  setTimeout(fn: () => void, ms: number): unknown;
  clearTimeout(handle: unknown): void;
}

export const systemClock: Clock = {
  now: () => Date.now(),
  setTimeout: (fn, ms) => {
    const h = setTimeout(fn, ms);
    h.unref();
    return h;
  },
  clearTimeout: (h) => clearTimeout(h as NodeJS.Timeout),
};

/** Limits and timings of a {@link BlockTable}. */
export interface BlockTableOptions {
  /** How long a block with no pointer stays revivable before it is invalidated. Default 5 s. */
  disposeGraceMs?: number;
  /** How long an invalidated key is remembered (so `watch` reports it disposed). Default 10 min. */
  tombstoneTtlMs?: number;
  /** How many invalidated keys are remembered at most (oldest forgotten first). Default 100,000. */
  maxTombstones?: number;
  /** Most blocks at once (`EZIPC_TOO_MANY_KEYS`). Default 100,000. */
  maxKeys?: number;
  /**
   * Largest block (`EZIPC_BLOCK_TOO_LARGE`). Default 1 MiB, or less with a `maxFrameBytes` under 1 MiB + 1 KiB
   * (a block travels whole in one frame: at most maxFrameBytes - 1 KiB).
   */
  maxBlockBytes?: number;
  /** The hub's frame limit (its connections' option): bounds the default maxBlockBytes. */
  maxFrameBytes?: number;
  /** Most bytes over all blocks (`EZIPC_HUB_FULL`). Default 256 MiB. */
  maxTotalBytes?: number;
}

export type ResolvedBlockTableOptions = Required<Omit<BlockTableOptions, "maxFrameBytes">>;

export function resolveBlockTableOptions(o: BlockTableOptions = {}): ResolvedBlockTableOptions {
  const r = {
    disposeGraceMs: o.disposeGraceMs ?? 5_000,
    tombstoneTtlMs: o.tombstoneTtlMs ?? 600_000,
    maxTombstones: o.maxTombstones ?? 100_000,
    maxKeys: o.maxKeys ?? 100_000,
    maxBlockBytes:
      o.maxBlockBytes ??
      Math.max(
        0,
        Math.min(1024 * 1024, (o.maxFrameBytes ?? DEFAULT_MAX_FRAME_BYTES) - FORWARD_RESERVE_BYTES),
      ),
    maxTotalBytes: o.maxTotalBytes ?? 256 * 1024 * 1024,
  };
  for (const [k, v] of Object.entries(r)) {
    if (!Number.isInteger(v) || v < 0) throw new RangeError(`${k} must be a non-negative integer, got ${v}`);
  }
  return r;
}

/** What a lookup found. */
export type Lookup = { found: Block } | { disposed: true } | { missing: true };

/**
 * The hub's blocks and their lifecycle, without any networking: reference counts, the grace period after
 * the last release, invalidation into a bounded tombstone list, revival during grace, and the size limits.
 * `onInvalidate` runs when a block is invalidated (grace over, or deleted).
 */
export class BlockTable {
  readonly options: ResolvedBlockTableOptions;
  private readonly byKey = new Map<string, Block>();
  private readonly byIdMap = new Map<number, Block>();
  /** key → expiry time, oldest first. */
  private readonly tombstones = new Map<string, number>();
  private readonly graceTimers = new Map<Block, unknown>();
  private nextId = 1;
  private bytes = 0;

  constructor(
    options: BlockTableOptions = {},
    private readonly clock: Clock = systemClock,
    private readonly onInvalidate: (block: Block, reason: "disposed" | "deleted") => void = () => {},
  ) {
    this.options = resolveBlockTableOptions(options);
  }

  get size(): number {
    return this.byKey.size;
  }
  get totalBytes(): number {
    return this.bytes;
  }
  get tombstoneCount(): number {
    this.sweepTombstones();
    return this.tombstones.size;
  }

  blocks(): IterableIterator<Block> {
    return this.byKey.values();
  }

  byId(id: number): Block | undefined {
    return this.byIdMap.get(id);
  }

  lookup(key: string): Lookup {
    const b = this.byKey.get(key);
    if (b) return { found: b };
    const until = this.tombstones.get(key);
    if (until !== undefined) {
      if (until > this.clock.now()) return { disposed: true };
      this.tombstones.delete(key);
    }
    return { missing: true };
  }

  /**
   * Creates a block (refcount 0: the caller holds it next). Throws `EZIPC_KEY_EXISTS`, `EZIPC_INVALID_KEY`,
   * `EZIPC_BLOCK_TOO_LARGE`, `EZIPC_TOO_MANY_KEYS`, `EZIPC_HUB_FULL`. A tombstone of the key is dropped.
   */
  create(
    key: string,
    size: number,
    opts: { kind?: number; persistent?: boolean; data?: Buffer; version?: number } = {},
  ): Block {
    checkKey(key);
    if (this.byKey.has(key)) throw new EzipcError("EZIPC_KEY_EXISTS", `key ${key} already exists`);
    const data = opts.data ?? Buffer.alloc(size);
    this.checkSize(key, data.length, 0);
    if (this.byKey.size >= this.options.maxKeys) {
      throw new EzipcError(
        "EZIPC_TOO_MANY_KEYS",
        `the hub holds its maximum of ${this.options.maxKeys} keys`,
      );
    }
    this.tombstones.delete(key);
    const block: Block = {
      key,
      id: this.nextId++,
      kind: opts.kind ?? KIND_BYTES,
      data,
      version: opts.version ?? 1,
      persistent: opts.persistent ?? false,
      refcount: 0,
      graceSince: 0,
    };
    this.byKey.set(key, block);
    this.byIdMap.set(block.id, block);
    this.bytes += data.length;
    // A new non-persistent block nobody holds yet starts its grace at once (the creator holds it next). A
    // clustered hub's blocks are disposed cluster-wide (holdsHook).
    if (!block.persistent && !this.holdsHook) this.startGrace(block);
    return block;
  }

  /** Throws `EZIPC_BLOCK_TOO_LARGE` / `EZIPC_HUB_FULL` if `key` growing from `oldSize` to `newSize` breaks a limit. */
  checkSize(key: string, newSize: number, oldSize: number): void {
    if (newSize > this.options.maxBlockBytes) {
      throw new EzipcError(
        "EZIPC_BLOCK_TOO_LARGE",
        `${key}: ${newSize} bytes is over the hub's maxBlockBytes (${this.options.maxBlockBytes})`,
      );
    }
    if (this.bytes - oldSize + newSize > this.options.maxTotalBytes) {
      throw new EzipcError(
        "EZIPC_HUB_FULL",
        `${key}: the hub's blocks would exceed maxTotalBytes (${this.options.maxTotalBytes})`,
      );
    }
  }

  /** Replaces a block's data (a JSON document changing size); the caller checked the size. */
  replaceData(block: Block, data: Buffer): void {
    this.bytes += data.length - block.data.length;
    block.data = data;
  }

  /** Adds `n` pointers; a block in grace is revived. */
  hold(block: Block, n = 1): void {
    const was = block.refcount;
    block.refcount += n;
    if (this.holdsHook) {
      if (was === 0 && block.refcount > 0) this.holdsHook.held(block);
      return;
    }
    if (block.refcount > 0) this.stopGrace(block);
  }

  /** Drops `n` pointers; at 0 a non-persistent block starts its grace period. */
  release(block: Block, n = 1): void {
    if (n > block.refcount) throw new Error(`refcount of ${block.key} would go below 0`);
    block.refcount -= n;
    if (block.refcount !== 0 || n === 0 || this.byKey.get(block.key) !== block) return;
    if (this.holdsHook) this.holdsHook.unheld(block);
    else if (!block.persistent) this.startGrace(block);
  }

  /** Makes a block persistent (never disposed) or not. */
  setPersistent(block: Block, persistent: boolean): void {
    block.persistent = persistent;
    if (persistent) this.stopGrace(block);
    else if (block.refcount === 0 && !this.holdsHook) this.startGrace(block);
  }

  /** Removes a block now (any refcount), leaving a tombstone. */
  delete(block: Block): void {
    this.invalidate(block, "deleted");
  }

  /** Stops every timer (the table is unusable afterwards). */
  close(): void {
    for (const h of this.graceTimers.values()) this.clock.clearTimeout(h);
    this.graceTimers.clear();
  }

  /**
   * Set by a clustered hub, whose keys are disposed cluster-wide (docs/cluster.md): told when a block's
   * pointers here leave 0 and come back to 0, instead of this table running its grace period.
   */
  holdsHook: { held(block: Block): void; unheld(block: Block): void } | null = null;

  private startGrace(block: Block): void {
    if (this.graceTimers.has(block)) return;
    block.graceSince = this.clock.now();
    const h = this.clock.setTimeout(() => {
      this.graceTimers.delete(block);
      if (block.refcount === 0 && !block.persistent) this.invalidate(block, "disposed");
    }, this.options.disposeGraceMs);
    this.graceTimers.set(block, h);
  }

  private stopGrace(block: Block): void {
    const h = this.graceTimers.get(block);
    if (h !== undefined) {
      this.clock.clearTimeout(h);
      this.graceTimers.delete(block);
    }
    block.graceSince = 0;
  }

  private invalidate(block: Block, reason: "disposed" | "deleted"): void {
    if (this.byKey.get(block.key) !== block) return;
    this.stopGrace(block);
    this.byKey.delete(block.key);
    this.byIdMap.delete(block.id);
    this.bytes -= block.data.length;
    this.sweepTombstones();
    if (this.options.maxTombstones > 0 && this.options.tombstoneTtlMs > 0) {
      this.tombstones.delete(block.key);
      this.tombstones.set(block.key, this.clock.now() + this.options.tombstoneTtlMs);
      while (this.tombstones.size > this.options.maxTombstones) {
        const oldest = this.tombstones.keys().next().value as string;
        this.tombstones.delete(oldest);
      }
    }
    this.onInvalidate(block, reason);
  }

  private sweepTombstones(): void {
    const now = this.clock.now();
    for (const [k, until] of this.tombstones) {
      if (until > now) break; // insertion order = expiry order (same TTL)
      this.tombstones.delete(k);
    }
  }
}
