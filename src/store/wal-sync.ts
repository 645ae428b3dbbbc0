/**
 * Durable SQLite commits that never stop the event loop on a slow disk. The database runs in WAL mode with
 * its checkpoints in this class's hands (`wal_autocheckpoint` off), in one of two modes:
 *
 * - **A fast disk** (a sync under {@link INLINE_SYNC_MS}): `synchronous=FULL`, SQLite syncs the log in each
 *   commit, on the event loop; {@link WalSync.afterDurable} calls back at once. Measured here: 117 µs a
 *   commit, against 175 µs for a commit then a sync of our own.
 * - **A slow disk**: `synchronous=OFF`, a commit writes the log and returns (what it wrote survives a kill of
 *   the process, being in the kernel's cache), and `afterDurable` syncs it with fdatasync on Node's thread
 *   pool, so that only what waits for the disk waits. Commits made while a sync runs share the next one.
 *
 * Commits go through {@link WalSync.commit}, which times them: a commit slower than INLINE_SYNC_MS (the
 * disk got slow) switches to the thread pool; {@link FAST_SYNCS} fast syncs in a row switch back. The mode is
 * first chosen by timing two syncs of the database file at open.
 *
 * Checkpoints run every {@link CHECKPOINT_SYNCS} syncs or {@link CHECKPOINT_WAL_BYTES} of log, at open and at
 * close, with `synchronous=FULL` (the database file is synced before the log is written over), and restart
 * the log in place rather than truncate it: a sync of a log written over its own blocks need not commit the
 * file's size too. A checkpoint is the one moment the event loop waits on a slow disk: once per thousand
 * syncs, not once per commit.
 */
import { closeSync, constants, fdatasync, fstatSync, fsyncSync, openSync } from "node:fs";
import type Database from "better-sqlite3";
import { log } from "../log.js";

export const CHECKPOINT_WAL_BYTES = 4 * 1024 * 1024;
const CHECKPOINT_SYNCS = 1000;
/**
 * A commit or sync this short is a fast disk's (a VM's disk has hiccups of a few ms: one of those must not
 * change the mode; a commit that takes longer held the event loop that long, once).
 */
const INLINE_SYNC_MS = 10;
/** Syncs on the thread pool under half of INLINE_SYNC_MS in a row that bring commits back to FULL. */
const FAST_SYNCS = 100;

export class WalSync {
  /** The WAL, opened at the first sync on the thread pool. */
  private walFd: number | null = null;
  /** Callbacks waiting for the sync in flight, and those for the next one (slow disk). */
  private syncing: ((err?: unknown) => void)[] | null = null;
  private queued: ((err?: unknown) => void)[] = [];
  /** Commits sync in SQLite (a fast disk), or on the thread pool (a slow one). */
  private inline = true;
  /** Syncs on the thread pool in a row that were fast. */
  private fastSyncs = 0;
  /** Syncs (or synced commits) since the last checkpoint, and the WAL file's size then. */
  private syncs = 0;
  private walBytes = 0;

  /** Puts `db` (just opened, at `file`) in WAL mode, its checkpoints its own, in the mode the disk's speed asks. */
  constructor(
    private readonly db: Database.Database,
    private readonly file: string,
  ) {
    db.pragma("journal_mode = WAL");
    db.pragma("wal_autocheckpoint = 0");
    const fd = openSync(file, constants.O_RDONLY);
    let fastest = Number.POSITIVE_INFINITY;
    try {
      // (The faster of two: a new file's first sync also writes its metadata.)
      for (let i = 0; i < 2; i++) {
        const t0 = performance.now();
        fsyncSync(fd);
        fastest = Math.min(fastest, performance.now() - t0);
      }
    } finally {
      closeSync(fd);
    }
    this.setInline(fastest < INLINE_SYNC_MS);
  }

  private setInline(inline: boolean): void {
    this.inline = inline;
    this.fastSyncs = 0;
    this.db.pragma(inline ? "synchronous = FULL" : "synchronous = OFF");
  }

  /** Runs `write` (a transaction), timed: a slow one sends syncs to the thread pool from now on. */
  commit<T>(write: () => T): T {
    if (!this.inline) return write();
    const t0 = performance.now();
    const out = write();
    if (performance.now() - t0 > INLINE_SYNC_MS) {
      this.setInline(false);
      log("info", "store", "the disk is slow: syncs go to the thread pool", { file: this.file });
    }
    if (++this.syncs >= CHECKPOINT_SYNCS) this.checkpointQuietly();
    return out;
  }

  /**
   * Calls `done` once everything committed before this call is on disk, or with the sync's error; in call
   * order. At once while commits sync themselves.
   */
  afterDurable(done: (err?: unknown) => void): void {
    if (this.inline && this.syncing === null && this.queued.length === 0) {
      done();
      return;
    }
    this.queued.push(done);
    if (this.syncing === null) this.startSync();
  }

  /** {@link afterDurable} as a promise. */
  durable(): Promise<void> {
    return new Promise((resolve, reject) =>
      this.afterDurable((err) => (err === undefined ? resolve() : reject(err))),
    );
  }

  private startSync(): void {
    const batch = this.queued;
    this.queued = [];
    this.syncing = batch;
    let fd: number;
    try {
      this.walFd ??= openSync(`${this.file}-wal`, constants.O_RDONLY);
      fd = this.walFd;
    } catch (err) {
      // No WAL: nothing was committed since the last checkpoint (which synced everything).
      this.synced(batch, (err as NodeJS.ErrnoException).code === "ENOENT" ? undefined : err);
      return;
    }
    const t0 = performance.now();
    fdatasync(fd, (err) => {
      this.fastSyncs = performance.now() - t0 < INLINE_SYNC_MS / 2 ? this.fastSyncs + 1 : 0;
      this.synced(batch, err ?? undefined);
    });
  }

  private synced(batch: ((err?: unknown) => void)[], err?: unknown): void {
    this.syncing = null;
    if (err === undefined && this.db.open) {
      const grown = this.walFd !== null && fstatSync(this.walFd).size > this.walBytes + CHECKPOINT_WAL_BYTES;
      if (++this.syncs >= CHECKPOINT_SYNCS || grown) this.checkpointQuietly();
      if (this.fastSyncs >= FAST_SYNCS && this.queued.length === 0) this.setInline(true);
    }
    for (const done of batch) done(err);
    if (this.queued.length > 0) this.startSync();
  }

  private checkpointQuietly(): void {
    try {
      this.checkpoint();
    } catch (e) {
      log("warn", "store", "checkpoint failed; tried again later", { file: this.file, error: e });
    }
  }

  /**
   * Copies the WAL into the database file, synced, and has the next commit write the log from its start
   * (the event loop waits).
   */
  checkpoint(): void {
    const inline = this.inline;
    if (!inline) this.db.pragma("synchronous = FULL");
    try {
      this.db.pragma("wal_checkpoint(RESTART)");
    } finally {
      if (!inline) this.db.pragma("synchronous = OFF");
    }
    this.syncs = 0;
    this.walBytes = this.walFd !== null ? fstatSync(this.walFd).size : 0;
  }

  /**
   * Before the database closes: checkpoints (everything committed is synced), then calls the callbacks still
   * waiting (with the checkpoint's error, if it failed). The caller closes the database after.
   */
  close(): void {
    let err: unknown;
    try {
      this.checkpoint();
    } catch (e) {
      err = e;
    }
    if (this.walFd !== null) closeSync(this.walFd);
    this.walFd = null;
    const waiting = [...(this.syncing ?? []), ...this.queued];
    this.syncing = null;
    this.queued = [];
    for (const done of waiting) done(err);
  }
}
