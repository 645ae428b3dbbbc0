/**
 * Retrying a failed store commit: the same rule for persisted topics and persistent keys. A commit that
 * fails (a locked or failing disk) keeps what it was committing and runs again after a delay doubling from
 * 10 ms to 1 s, one timer at a time, so the hub's event loop never waits on the disk in between.
 */
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

  /** The commit failed with `err`: schedule the next attempt. */
  failed(err: unknown): void {
    this.delayMs = Math.min(Math.max(this.delayMs * 2, FIRST_MS), LAST_MS);
    log("error", "hub", `committing ${this.what} failed; retrying`, { error: err, retryMs: this.delayMs });
    this.timer ??= setTimeout(() => {
      this.timer = null;
      this.run();
    }, this.delayMs);
  }

  /** The commit succeeded: the next failure starts again at the first delay. */
  succeeded(): void {
    this.delayMs = 0;
  }

  /** Stops retrying (the hub is closing). */
  stop(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
  }
}
