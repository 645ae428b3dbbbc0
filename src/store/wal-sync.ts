/**
 * Durable SQLite commits that never stop the event loop. The database runs in WAL mode with
 * `synchronous=OFF`: a commit writes the log and returns (what it wrote survives a kill of the process,
 * being in the kernel's cache), and {@link WalSync.afterDurable} makes it survive a crash of the machine with an
 * fdatasync of the log on Node's thread pool. Commits made while a sync runs share the next one (group
 * commit). Checkpoints are this class's own (`wal_autocheckpoint` off): after a sync that leaves more than
 * {@link CHECKPOINT_WAL_BYTES} in the log, at open and at close, run with `synchronous=FULL`, so that the
 * database file is synced before the log is truncated. A checkpoint is the one moment the event loop waits on
 * the disk: once per 4 MiB of commits, not once per commit.
 */
import { closeSync, constants, fdatasync, fstatSync, openSync } from "node:fs";
import type Database from "better-sqlite3";
import { log } from "../log.js";

/** WAL bytes past which a sync is followed by a checkpoint (SQLite's own default is about 4 MiB). */
export const CHECKPOINT_WAL_BYTES = 4 * 1024 * 1024;

export class WalSync {
  /** The WAL, opened at the first sync (syncing it makes every commit in it durable). */
  private walFd: number | null = null;
  /** Callbacks waiting for the sync in flight, and those for the next one. */
  private syncing: ((err?: unknown) => void)[] | null = null;
  private queued: ((err?: unknown) => void)[] = [];

  /** Puts `db` (just opened, at `file`) in WAL mode with unsynced commits, and checkpoints what it holds. */
  constructor(
    private readonly db: Database.Database,
    private readonly file: string,
  ) {
    db.pragma("journal_mode = WAL");
    db.pragma("synchronous = OFF");
    db.pragma("wal_autocheckpoint = 0");
  }

  /**
   * Calls `done` once everything committed before this call is on disk, or with the sync's error. Calls
   * come back in the order they were made.
   */
  afterDurable(done: (err?: unknown) => void): void {
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
    fdatasync(fd, (err) => this.synced(batch, err ?? undefined));
  }

  private synced(batch: ((err?: unknown) => void)[], err?: unknown): void {
    this.syncing = null;
    if (err === undefined && this.db.open) {
      try {
        if (this.walFd !== null && fstatSync(this.walFd).size > CHECKPOINT_WAL_BYTES) this.checkpoint();
      } catch (e) {
        log("warn", "store", "checkpoint failed; tried again after the next sync", {
          file: this.file,
          error: e,
        });
      }
    }
    for (const done of batch) done(err);
    if (this.queued.length > 0) this.startSync();
  }

  /** Copies the WAL into the database file and truncates it, synced (the event loop waits). */
  checkpoint(): void {
    this.db.pragma("synchronous = FULL");
    try {
      this.db.pragma("wal_checkpoint(TRUNCATE)");
    } finally {
      this.db.pragma("synchronous = OFF");
    }
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
