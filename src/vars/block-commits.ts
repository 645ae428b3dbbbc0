/**
 * Writes to persistent keys, staged until the store has committed them.
 *
 * Rule (the same as for persisted topics): nothing a crash could take back is ever shown. A write to a
 * persistent key builds on the key's staged value (or its committed one) and gets the next version at
 * once, but holders, readers and listings keep seeing the committed value and version until the store has
 * made the write durable; only then is it applied to the block, pushed to holders and acknowledged to the
 * writer. A crash before the commit therefore takes back a version nobody saw, and the version given out
 * after the restart is the same one, for the first time.
 *
 * Writes of one event-loop turn are committed as one batch. A failed commit (a locked or failing disk)
 * keeps everything staged and is retried with backoff, without blocking the event loop in between; the
 * writers' acknowledgements wait (their own deadlines apply). New writes are refused (`EZIPC_STORE`) until a
 * commit succeeds again.
 */

import { CommitRetry } from "../commit-retry.js";
import { EzipcError } from "../errors.js";
import type { BlockStore } from "./block-store.js";
import type { Block } from "./block-table.js";

/** A value as committed or staged. */
export interface BlockValue {
  readonly data: Buffer;
  readonly version: number;
}

export class BlockCommits {
  private readonly staged = new Map<Block, BlockValue>();
  private acks: { block: Block; version: number; done: (err?: EzipcError) => void }[] = [];
  private scheduled = false;
  private readonly retry = new CommitRetry("persistent keys", () => this.flush());

  constructor(
    private readonly store: BlockStore,
    /** Called for each block once its staged value is committed: apply it and tell the holders. */
    private readonly committed: (block: Block, value: BlockValue) => void,
  ) {}

  /**
   * Values saved to the store but not yet durable (a store with afterDurable), in save order: applied and
   * acknowledged when it calls back.
   */
  private readonly saved = new Map<Block, BlockValue>();

  /** The value the next write to `block` builds on: its staged value, else its saved one, else its committed one. */
  current(block: Block): BlockValue {
    return this.staged.get(block) ?? this.saved.get(block) ?? block;
  }

  /**
   * {@link current} for a new write; throws `EZIPC_STORE` while the store is failing (a full disk): the
   * write is refused at once rather than staged to wait for its writer's deadline.
   */
  writable(block: Block): BlockValue {
    this.retry.refuseWhileFailing(`writing ${block.key}`);
    return this.current(block);
  }

  /**
   * Stages `value` (whose version is `current(block).version + 1`); `done` runs once it is committed (no
   * argument) or the block was invalidated first (`EZIPC_KEY_DISPOSED`).
   */
  stage(block: Block, value: BlockValue, done: (err?: EzipcError) => void): void {
    this.staged.set(block, value);
    this.acks.push({ block, version: value.version, done });
    if (!this.scheduled && !this.retry.waiting) {
      this.scheduled = true;
      setImmediate(() => this.flush());
    }
  }

  /** The block was invalidated: its staged value is dropped (its writers get `EZIPC_KEY_DISPOSED`). */
  drop(block: Block): void {
    this.staged.delete(block);
    this.saved.delete(block);
  }

  /** Commits what is staged now. Returns false if the store failed (a retry is scheduled). */
  flush(): boolean {
    this.scheduled = false;
    if (this.staged.size > 0) {
      const batch = [...this.staged].map(([b, v]) => ({
        key: b.key,
        kind: b.kind,
        version: v.version,
        data: v.data,
      }));
      try {
        this.store.save(batch);
      } catch (err) {
        this.retry.failed(err);
        return false;
      }
      const done = [...this.staged];
      this.staged.clear();
      const acks = this.acks;
      this.acks = [];
      if (this.store.afterDurable) {
        for (const [b, v] of done) this.saved.set(b, v);
        this.store.afterDurable((err) => this.durable(done, acks, err));
        return true;
      }
      this.retry.succeeded();
      for (const [b, v] of done) this.committed(b, v);
      this.acknowledge(acks);
    } else {
      this.retry.succeeded(); // nothing left to commit (what failed was dropped): nothing is failing
      const acks = this.acks;
      this.acks = [];
      // (Writes to blocks invalidated before their commit, or put back by a failed sync while a later
      // batch is being synced: answered after it, in order.)
      if (this.store.afterDurable && this.saved.size > 0)
        this.store.afterDurable(() => this.acknowledge(acks));
      else this.acknowledge(acks);
    }
    return true;
  }

  /**
   * A saved batch is durable (applied, its writers answered), or its sync failed: then it is staged again
   * (unless a newer value was staged meanwhile) and retried, its writers still waiting.
   */
  private durable(done: [Block, BlockValue][], acks: BlockCommits["acks"], err: unknown): void {
    // (A block invalidated meanwhile is no longer in `saved`: nothing of it is applied or staged again.)
    const live = done.map(([b, v]) => {
      const alive = this.saved.has(b);
      if (this.saved.get(b) === v) this.saved.delete(b);
      return alive;
    });
    if (err !== undefined) {
      done.forEach(([b, v], i) => {
        if (live[i] && !this.staged.has(b) && !this.saved.has(b)) this.staged.set(b, v);
      });
      this.acks = [...acks, ...this.acks];
      this.retry.failed(err);
      return;
    }
    this.retry.succeeded();
    done.forEach(([b, v], i) => {
      if (live[i] && b.version < v.version) this.committed(b, v);
    });
    this.acknowledge(acks);
  }

  private acknowledge(acks: BlockCommits["acks"]): void {
    for (const a of acks) {
      if (a.block.version >= a.version) a.done();
      else
        a.done(
          new EzipcError(
            "EZIPC_KEY_DISPOSED",
            `key ${a.block.key} was invalidated before the write was committed`,
          ),
        );
    }
  }

  /** Stops retrying (the hub is closing). */
  stop(): void {
    this.retry.stop();
  }
}
