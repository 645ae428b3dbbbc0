/**
 * Deadlines of calls in flight with one timer per duration instead of one per call. A call's timer used to
 * be set and cleared around every round trip: with nothing else pending, that empties Node's list for the
 * duration, so each call also removed and re-added it to the timer heap and re-armed libuv's timer,
 * ~0.4 µs a side of a round trip that takes a few µs over shared memory.
 *
 * Calls with the same duration expire in the order they started, so each duration keeps a FIFO of its
 * deadlines and one timer for the oldest: a finished call is marked done (and popped when it is at the
 * head, the usual case); the timer, when it fires, expires what is due and re-arms for the new oldest.
 * Done entries behind a slow one are swept once they outnumber the live ones, so memory stays within a
 * small multiple of the calls in flight. A deadline never fires early.
 */

import { MAX_TIMER_MS } from "./ranges.js";

/** A deadline from {@link CallDeadlines.add}; {@link CallDeadlines.cancel} it when the call ends first. */
export interface CallDeadline {
  /** performance.now() when it expires. */
  readonly at: number;
  /** Undefined once it expired or was cancelled. */
  onExpire: (() => void) | undefined;
  readonly queue: Queue;
}

/** Durations kept while empty (so a steady caller does not add and remove its queue per call). */
const KEPT_QUEUES = 64;

class Queue {
  readonly items: CallDeadline[] = [];
  head = 0;
  /** Done entries at or after `head`. */
  done = 0;
  timer: ReturnType<typeof setTimeout> | null = null;
  /** When the armed timer fires (performance.now()). */
  armedFor = Number.POSITIVE_INFINITY;

  constructor(
    readonly ms: number,
    private readonly owner: CallDeadlines,
  ) {}

  get live(): number {
    return this.items.length - this.head - this.done;
  }

  /** Pops done entries off the head; empties the array when nothing is left. */
  trim(): void {
    const items = this.items;
    while (this.head < items.length && items[this.head]!.onExpire === undefined) {
      this.head++;
      this.done--;
    }
    if (this.head === items.length) {
      items.length = 0;
      this.head = 0;
      this.done = 0;
    } else if (this.head > 1024 && this.head * 2 > items.length) {
      items.splice(0, this.head);
      this.head = 0;
    }
  }

  /** Drops done entries from the middle (they outnumber the live ones). */
  sweep(): void {
    const kept = this.items.slice(this.head).filter((d) => d.onExpire !== undefined);
    this.items.length = 0;
    this.items.push(...kept);
    this.head = 0;
    this.done = 0;
  }

  arm(now: number): void {
    const first = this.items[this.head];
    if (!first) return;
    if (this.timer !== null && this.armedFor <= first.at) return; // fires in time; re-checks then
    if (this.timer !== null) clearTimeout(this.timer);
    // A timer holds at most 2^31-1 ms (Node fires a longer one after 1 ms): a farther deadline is
    // re-armed when that passes.
    const wait = Math.min(Math.max(1, Math.ceil(first.at - now)), MAX_TIMER_MS);
    this.armedFor = now + wait;
    this.timer = setTimeout(this.fire, wait);
    if (!this.owner.keepAlive) this.timer.unref?.(); // (absent in browsers)
  }

  readonly fire = (): void => {
    this.timer = null;
    this.armedFor = Number.POSITIVE_INFINITY;
    const now = performance.now();
    const items = this.items;
    while (this.head < items.length) {
      const d = items[this.head]!;
      if (d.onExpire !== undefined && d.at > now) break;
      this.head++;
      const f = d.onExpire;
      if (f === undefined) {
        this.done--;
        continue;
      }
      d.onExpire = undefined;
      f();
    }
    this.trim();
    if (this.live > 0) this.arm(performance.now());
    else this.owner.emptied(this);
  };
}

/** The queue of deadlines that never come (their handles are born cancelled). */
const NEVER = new Queue(Number.POSITIVE_INFINITY, null as unknown as CallDeadlines);

export class CallDeadlines {
  private readonly queues = new Map<number, Queue>();

  /** `keepAlive`: whether a pending deadline keeps the process alive (a caller waiting for its answer). */
  constructor(readonly keepAlive: boolean) {}

  /**
   * Calls `onExpire` once `ms` have passed, unless {@link cancel}led first. `ms` of Infinity: never (a
   * handle to cancel all the same, and no timer).
   */
  add(ms: number, onExpire: () => void): CallDeadline {
    if (!(ms < Number.POSITIVE_INFINITY)) return { at: ms, onExpire: undefined, queue: NEVER };
    let q = this.queues.get(ms);
    if (!q) {
      q = new Queue(ms, this);
      this.queues.set(ms, q);
    }
    const now = performance.now();
    const d: CallDeadline = { at: now + ms, onExpire, queue: q };
    if (q.live === 0 && q.timer !== null && this.keepAlive) q.timer.ref?.();
    q.items.push(d);
    q.arm(now);
    return d;
  }

  /** Cancels `d` (the call ended first); nothing if it already expired. */
  cancel(d: CallDeadline): void {
    if (d.onExpire === undefined) return;
    d.onExpire = undefined;
    const q = d.queue;
    q.done++;
    q.trim();
    if (q.live === 0) this.emptied(q);
    else if (q.done > 64 && q.done > q.live) q.sweep();
  }

  /** A queue with nothing live: its timer stops holding the process; kept for reuse unless there are many. */
  emptied(q: Queue): void {
    if (q.timer !== null) q.timer.unref?.();
    if (this.queues.size > KEPT_QUEUES) {
      if (q.timer !== null) clearTimeout(q.timer);
      q.timer = null;
      q.armedFor = Number.POSITIVE_INFINITY;
      this.queues.delete(q.ms);
    }
  }
}

/** Deadlines of calls this process makes (they keep it alive while it waits). */
export const callerDeadlines = new CallDeadlines(true);
/** Deadlines of calls this process serves (they do not keep it alive). */
export const serverDeadlines = new CallDeadlines(false);
