/**
 * Reads shared by the subscriptions of one process. Each subscription follows a topic's ring with its own
 * cursor; when several in one process (of one shm:// client or of several) follow the same topic, the
 * first to read a run of messages keeps it here, and the others, arriving at the same seq, take the same
 * message objects instead of reading and copying the ring again. Messages are immutable copies, so a kept
 * run stays right however far the ring has moved on. The newest runs are kept, up to a byte bound per
 * topic; a subscription further behind reads the ring itself.
 *
 * A run is kept only for the followers that may take it soon: those at its seq or a little behind it. A
 * follower reading history while another waits at the newest message keeps nothing (every run it kept for
 * the other was never taken, lived until the byte bound pushed it out, and made a replay of 64 B messages
 * 4–6 times slower per message than with no other subscription).
 */
import { PACKET_HEAD } from "../shm/layout.js";
import type { RingMessage } from "../shm/ring.js";

/** A run of messages read from a ring: from `seq`, and where the next run starts. */
export interface SharedRead {
  readonly seq: number;
  /** Consecutive messages from `seq`, views of one copy of the ring (`data`) from ring offset `ringStart` on. */
  readonly messages: readonly RingMessage[];
  readonly data: Buffer;
  readonly ringStart: number;
  readonly nextSeq: number;
  readonly nextOffset: number;
  /**
   * How many more followers may take it: the process's other sharing followers when it was kept. At 0 it
   * is dropped at once, so that a run every follower has taken is garbage while it is young (kept runs
   * that lived until the byte bound pushed them out were promoted, and cost a 64 B fan-out to ten
   * subscriptions a quarter of its time in the garbage collector).
   */
  takers: number;
}

/** Bytes of runs kept per topic file. */
const KEEP_BYTES = 4 * 1024 * 1024;
/**
 * How far behind a run's seq (messages) another follower may be and still count as one that takes it: a
 * few turns of a sharing follower (ring-follower.ts reads 512 a turn while others share its reads).
 */
const TAKE_DISTANCE = 4096;

/** Where a follower is (its cursor: the seq it reads next). */
export interface FollowerPlace {
  readonly seq: number;
}

export class TopicReads {
  private readonly runs = new Map<number, SharedRead>();
  private bytes = 0;
  /** The cursors of this process's subscriptions that share these runs. */
  private readonly followers = new Set<FollowerPlace>();

  /** Subscriptions of this process that share these runs. */
  get users(): number {
    return this.followers.size;
  }

  add(follower: FollowerPlace): void {
    this.followers.add(follower);
  }

  remove(follower: FollowerPlace): void {
    this.followers.delete(follower);
  }

  /**
   * How many followers other than `self` may soon take a run read from `seq`: those at it or at most
   * {@link TAKE_DISTANCE} behind. Followers past it never will; those far behind read the ring themselves
   * (the run would be pushed out by newer ones before they came to it).
   */
  takersAt(seq: number, self: FollowerPlace): number {
    let n = 0;
    for (const f of this.followers) if (f !== self && f.seq <= seq && f.seq >= seq - TAKE_DISTANCE) n++;
    return n;
  }

  /**
   * Whether another follower is within {@link TAKE_DISTANCE} of `self`, behind or ahead: one that may take
   * what `self` reads, or keep runs that `self` takes. Such followers read in short turns, to stay close.
   */
  hasNeighbour(self: FollowerPlace): boolean {
    for (const f of this.followers)
      if (f !== self && Math.abs(f.seq - self.seq) <= TAKE_DISTANCE) return true;
    return false;
  }

  /** Bytes the kept runs hold (each counted as in {@link keep}). */
  get keptBytes(): number {
    return this.bytes;
  }

  /**
   * Takes up to `max` messages of the run kept at `cursor.seq`, moving the cursor past them: the run's own
   * array when it is taken whole (read-only: shared with the others), else `out` with the part taken.
   * Returns null when no run is kept there. A follower that takes part of a run leaves the rest kept for
   * the others, who take the same part.
   */
  take(
    cursor: { seq: number; offset: number },
    max: number,
    out: RingMessage[],
  ): readonly RingMessage[] | null {
    const r = this.runs.get(cursor.seq);
    if (r === undefined) return null;
    const ms = r.messages;
    if (--r.takers <= 0) this.drop(r);
    if (ms.length <= max) {
      cursor.seq = r.nextSeq;
      cursor.offset = r.nextOffset;
      return ms;
    }
    for (let i = 0; i < max; i++) out.push(ms[i]!);
    const rest = ms[max]!;
    cursor.seq = r.seq + max;
    // The rest's packet, in the copy: its head, then its meta, then its body.
    const inCopy = rest.body.byteOffset - rest.metaLength - PACKET_HEAD - r.data.byteOffset;
    cursor.offset = r.ringStart + inCopy;
    if (!this.runs.has(cursor.seq)) {
      this.keep({
        seq: cursor.seq,
        messages: ms.slice(max),
        data: r.data,
        ringStart: r.ringStart,
        nextSeq: r.nextSeq,
        nextOffset: r.nextOffset,
        // This follower, and at most the followers still to take the run (those that take all of it never
        // come here).
        takers: r.takers + 1,
      });
    }
    return out;
  }

  private drop(r: SharedRead): void {
    if (this.runs.get(r.seq) !== r) return;
    this.runs.delete(r.seq);
    this.bytes -= retained(r);
  }

  /**
   * Keeps a run for the others (the oldest go past the bound). A run is counted at the size of the copy
   * its messages keep alive (a run and the rest of it left by a partial take count it twice: a bound
   * that errs on the safe side).
   */
  keep(r: SharedRead): void {
    if (r.takers <= 0 || this.runs.has(r.seq)) return;
    this.runs.set(r.seq, r);
    this.bytes += retained(r);
    for (const [seq, old] of this.runs) {
      if (this.bytes <= KEEP_BYTES || this.runs.size === 1) break;
      this.runs.delete(seq);
      this.bytes -= retained(old);
    }
  }
}

function retained(r: SharedRead): number {
  return r.data.length;
}

/** By file identity (MappedFile.identity): every mapping of one file in this process shares its runs. */
const byFile = new Map<string, TopicReads>();

/** The shared runs of the topic file `identity`, for one more subscription (`follower`: its cursor). */
export function acquireReads(identity: string, follower: FollowerPlace): TopicReads {
  let r = byFile.get(identity);
  if (!r) {
    r = new TopicReads();
    byFile.set(identity, r);
  }
  r.add(follower);
  return r;
}

/** One subscription fewer; the runs go with the last. */
export function releaseReads(identity: string, follower: FollowerPlace): void {
  const r = byFile.get(identity);
  if (!r) return;
  r.remove(follower);
  if (r.users === 0) byFile.delete(identity);
}

/** The shared runs of the topic file `identity` in this process, if any subscription shares them (for tests). */
export function readsOf(identity: string): TopicReads | undefined {
  return byFile.get(identity);
}
