/**
 * Retrying a failed store commit: the same rule for persisted topics and persistent keys. A commit that
 * fails (a locked or failing disk) keeps what it was committing and runs again after a delay doubling from
 * 10 ms to 1 s, one timer at a time, so the hub's event loop never waits on the disk in between.
 */
import { EzipcError } from "./errors.js";
import { log } from "./log.js";

const FIRST_MS = 10;
const LAST_MS = 1_000;

export class CommitRetry {
  private delayMs = 0;
  private timer: NodeJS.Timeout | null = null;

  constructor(
    /** What is committed, for the log. */
    private readonly what: string,
    /** Runs the commit again. */
    private readonly run: () => void,
  ) {}

  /** A retry is scheduled: commits wait for it rather than run on their own. */
  get waiting(): boolean {
    return this.timer !== null;
  }

  /**
   * Why the last commit failed, until one succeeds (null while commits succeed, or failed only because the
   * database was busy: a slow or locked disk, which queues work rather than refuses it). New durable work is
   * refused meanwhile (`EZIPC_STORE`) rather than left waiting for a store that may stay failed (a full disk,
   * an I/O error).
   */
  get failing(): unknown {
    return this.lastError;
  }
  private lastError: unknown = null;

  /** Throws `EZIPC_STORE` while the store is failing (see {@link failing}), naming `what` was refused. */
  refuseWhileFailing(what: string): void {
    if (this.lastError === null) return;
    const reason = this.lastError instanceof Error ? this.lastError.message : String(this.lastError);
    throw new EzipcError(
      "EZIPC_STORE",
      `${what}: the store is failing (${reason}); nothing was written; try again later`,
    );
  }

  /** The commit failed with `err`: schedule the next attempt. */
  failed(err: unknown): void {
    this.lastError = isContention(err) ? null : err;
    this.delayMs = Math.min(Math.max(this.delayMs * 2, FIRST_MS), LAST_MS);
    if (this.stopped) {
      log("error", "hub", `committing ${this.what} failed as the hub closed`, { error: err });
      return;
    }
    log("error", "hub", `committing ${this.what} failed; retrying`, { error: err, retryMs: this.delayMs });
    this.timer ??= setTimeout(() => {
      this.timer = null;
      this.run();
    }, this.delayMs);
  }

  /** The commit succeeded: the next failure starts again at the first delay. */
  succeeded(): void {
    this.delayMs = 0;
    this.lastError = null;
  }

  /** Stops retrying (the hub is closing): a failure reported after this is logged, not retried. */
  stop(): void {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
  }
  private stopped = false;
}

/** SQLite's "busy" and "locked": another connection holds the database for now (not a failing store). */
function isContention(err: unknown): boolean {
  const code = (err as { code?: unknown }).code;
  return typeof code === "string" && (code.startsWith("SQLITE_BUSY") || code.startsWith("SQLITE_LOCKED"));
}
