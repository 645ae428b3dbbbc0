/**
 * Following a JetStream key-value bucket in revision order, through NATS failovers (docs/cluster.md): the
 * shared variables (kv-vars.ts) and the deadman tokens (kv-tokens.ts) each follow their keys of the vars
 * bucket this way.
 *
 * - The current entries are reported first, then every change, each revision once and in order (one at or
 *   below the last reported is ignored).
 * - A watch that ends (its node failed over) is made again from the revision after the last reported.
 * - A watch that stalls without ending (a consumer made while a NATS node fails can stay silent): every
 *   second the follower compares the newest revision there is to follow with the last it reported; behind
 *   and not moving for two checks in a row, it reads the missing revisions one by one from the bucket's
 *   stream (up to 1,000) and makes the watch again after them.
 */
import type { JetStreamManager, KV, KvEntry, StoredMsg } from "nats";
import { log } from "../log.js";

/** How often a watch is checked for a stall (two checks behind in a row restart it). */
const STALL_CHECK_MS = 1_000;
/** Most revisions read one by one after a stall. */
const READ_ON_MAX = 1_000;

/** One revision of a bucket entry. */
export type FollowedEntry = Pick<KvEntry, "key" | "value" | "revision" | "operation">;

export interface FollowOptions {
  kv: KV;
  jsm: JetStreamManager;
  /** The bucket's stream (`KV_` and the bucket's name). */
  streamName: string;
  /** The keys followed, as a bucket key filter (`dm.*`); every key when absent. */
  key?: string;
  /** Whether a key is one of those followed (for revisions read one by one from the stream). */
  owns(key: string): boolean;
  /** The newest revision there is for this follower to report (0: none known). */
  newest(): Promise<number>;
  /** Called with each revision, in order. */
  onEntry(e: FollowedEntry): void;
  /** What is followed, for the log. */
  what: string;
}

export class BucketFollower {
  /** The last revision reported. */
  last = 0;
  /** Watches made again after a stall. */
  stalls = 0;
  private stopped = false;
  private current: { stop(): void } | null = null;
  private stallCheck: NodeJS.Timeout | null = null;
  /** A {@link readOn} in progress: the watch is made again after it. */
  private reading: Promise<void> | null = null;

  constructor(private readonly o: FollowOptions) {}

  /** Starts following; resolves once the current entries have been reported. */
  start(): Promise<void> {
    let initialized!: () => void;
    const ready = new Promise<void>((r) => (initialized = r));
    const run = async (): Promise<void> => {
      while (!this.stopped) {
        try {
          if (this.reading) await this.reading;
          const it = await this.o.kv.watch({
            ...(this.o.key ? { key: this.o.key } : {}),
            ...(this.last > 0 ? { resumeFromRevision: this.last + 1 } : {}),
            initializedFn: () => initialized(),
          });
          this.current = it;
          if (this.last > 0) initialized();
          for await (const e of it) {
            if (this.stopped) break;
            this.report(e);
          }
        } catch (err) {
          if (this.stopped) return;
          log("warn", "cluster", `${this.o.what} watch ended; watching again`, { error: err });
          await new Promise((r) => setTimeout(r, 100));
        }
      }
    };
    void run();
    let seen = this.last;
    let behind = 0;
    this.stallCheck = setInterval(() => {
      this.o
        .newest()
        .then((newest) => {
          behind = newest > this.last && this.last === seen ? behind + 1 : 0;
          seen = this.last;
          if (behind < 2 || this.reading) return;
          log("warn", "cluster", `${this.o.what} watch stalled; reading on and watching again`, {
            last: this.last,
            newest,
          });
          behind = 0;
          this.stalls++;
          this.reading = this.readOn(newest)
            .catch((err: unknown) =>
              log("warn", "cluster", "reading a stalled watch's revisions failed", { error: err }),
            )
            .finally(() => {
              this.reading = null;
            });
          this.current?.stop();
        })
        .catch(() => {});
    }, STALL_CHECK_MS);
    this.stallCheck.unref();
    return ready;
  }

  private report(e: FollowedEntry): void {
    if (e.revision <= this.last) return;
    this.last = e.revision;
    this.o.onEntry(e);
  }

  /** Reads the revisions after the last reported, up to `newest`, one by one from the bucket's stream. */
  private async readOn(newest: number): Promise<void> {
    const prefix = `$KV.${this.o.streamName.slice("KV_".length)}.`;
    for (let seq = this.last + 1, n = 0; seq <= newest && n < READ_ON_MAX && !this.stopped; seq++, n++) {
      let m: StoredMsg;
      try {
        m = await this.o.jsm.streams.getMessage(this.o.streamName, { seq });
      } catch {
        continue; // replaced since (history 1), or deleted: a later revision of that key follows
      }
      const key = m.subject.slice(prefix.length);
      if (!this.o.owns(key)) continue;
      const op = m.header?.get("KV-Operation");
      this.report({
        key,
        value: m.data,
        revision: m.seq,
        operation: (op === "DEL" || op === "PURGE" ? op : "PUT") as KvEntry["operation"],
      });
    }
  }

  stop(): void {
    this.stopped = true;
    if (this.stallCheck) clearInterval(this.stallCheck);
    this.current?.stop();
  }
}
