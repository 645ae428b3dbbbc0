/**
 * Publishers held for slow readers, per topic and process: when the ring would have to evict a message a
 * `next` subscriber has not read (src/shm/holds.ts), the publish waits here, in order, instead. Readers
 * that move on wake the process; so does a timer (a reader that died holds nobody). After
 * `holdPublishersMs`, or past {@link MAX_HELD_BYTES}, the held messages are written anyway and the slow
 * reader gets a gap: memory stays bounded and publishers are never stuck.
 */
import type { EzipcError } from "../errors.js";
import { clearWriterWaiting, holdFloor, markWriterWaiting } from "../shm/holds.js";
import type { PackedMessages } from "../shm/packed.js";
import type { LocalTopic, ShmNamespace } from "./shm-namespace.js";

/** Bytes a process may hold back per topic before it stops waiting. */
export const MAX_HELD_BYTES = 64 * 1024 * 1024;
/** Appends that reuse a topic's floor before it is looked up again. */
const FLOOR_REUSE = 256;
/** How often held publishes look again without a wake-up (readers that died). */
const RETRY_MS = 20;
/** A held writer asks to be woken once readers have moved this fraction of the ring's messages on. */
const WAKE_FRACTION = 16;
/** Marks a retry makes before it leaves it to the timer (readers that kept passing them). */
const MARK_LOOKS = 4;

/** One held publish. */
interface Pending {
  batch?: undefined;
  meta: Buffer;
  body: Uint8Array;
  resolve?: (r: { seq: number; time: number }) => void;
  reject?: (e: EzipcError) => void;
}

/**
 * Held fire-and-forget publishes: the rest of a batch, copied out whole (one copy, not one per message) and
 * appended again as a batch, from `from` on.
 */
interface PendingBatch {
  batch: PackedMessages;
  from: number;
}

class Held {
  readonly queue: (Pending | PendingBatch)[] = [];
  bytes = 0;
  readonly since = Date.now();
}

export class PublisherHolds {
  private readonly topics = new Set<LocalTopic>();
  private timer: NodeJS.Timeout | null = null;
  private drainWaiters: (() => void)[] = [];

  constructor(
    private readonly ns: ShmNamespace,
    private readonly holdMs: number,
  ) {
    ns.wakeListeners.add(this.retryAll);
  }

  /** Whether `t` has publishes waiting (new ones must queue behind them). */
  isHeld(t: LocalTopic): boolean {
    return t.held !== null;
  }

  /**
   * Appends to `t` with time `time`, or holds the message if a reader needs what the append would evict.
   * Returns the seq, or -1 if held (then `resolve` is called once it is written).
   */
  append(
    t: LocalTopic,
    meta: Buffer,
    body: Uint8Array,
    time: number,
    resolve?: Pending["resolve"],
    reject?: Pending["reject"],
  ): number {
    const held = t.held as Held | null;
    if (held) {
      this.enqueue(held, { meta, body, resolve, reject });
      return -1;
    }
    const seq = t.ring.append(meta, body, time, this.holdMs > 0 ? this.floorOf(t) : undefined);
    if (seq >= 0) {
      this.ns.waker.wakeSleepers(t.ring.file);
      return seq;
    }
    const h = new Held();
    t.held = h;
    this.topics.add(t);
    this.enqueue(h, { meta, body, resolve, reject });
    this.ns.slotFor(t);
    this.timer ??= setInterval(this.retryAll, RETRY_MS);
    this.retry(t); // (marks the slot: a reader that moves on wakes it)
    return -1;
  }

  /**
   * The floor of `t` for one append. Readers only move forward, so a floor found earlier is still a safe
   * bound: it is looked up again only when the ring's tail reaches it, or every {@link FLOOR_REUSE}
   * appends (so that a reader that arrived since is seen soon).
   */
  private floorOf(t: LocalTopic): (evicting: number) => number {
    let c = this.floors.get(t);
    if (!c) {
      c = { floor: 0, uses: 0, fn: () => 0 };
      const cache = c;
      cache.fn = (evicting) => {
        if (cache.uses++ < FLOOR_REUSE && evicting < cache.floor) return cache.floor;
        cache.uses = 0;
        cache.floor = holdFloor(t.ring.file);
        return cache.floor;
      };
      this.floors.set(t, c);
    }
    return c.fn;
  }

  private readonly floors = new Map<
    LocalTopic,
    { floor: number; uses: number; fn: (evicting: number) => number }
  >();

  /**
   * Appends a batch to `t` under one lock; what a reader's hold stops (and everything after it) waits,
   * in order, like a held {@link append} (copied out: the batch is reused).
   */
  appendBatch(t: LocalTopic, batch: PackedMessages, time: number): void {
    const count = batch.count;
    if (count === 0) return;
    let n = 0;
    if (t.held === null) {
      n = t.ring.appendMany(batch, 0, count, time, this.holdMs > 0 ? this.floorOf(t) : undefined);
      if (n > 0) this.ns.waker.wakeSleepers(t.ring.file);
      if (n === count) return;
    }
    let h = t.held as Held | null;
    const created = h === null;
    if (!h) {
      h = new Held();
      t.held = h;
      this.topics.add(t);
      this.ns.slotFor(t);
      this.timer ??= setInterval(this.retryAll, RETRY_MS);
    }
    const rest = batch.rest(n);
    h.queue.push({ batch: rest, from: 0 });
    h.bytes += rest.bytes;
    if (created) this.retry(t); // (marks the slot: a reader that moves on wakes it)
  }

  private enqueue(h: Held, p: Pending): void {
    h.queue.push(p);
    h.bytes += p.body.length + p.meta.length;
  }

  private readonly retryAll = (): void => {
    for (const t of [...this.topics]) this.retry(t);
  };

  /**
   * Writes what `t` holds, in order, as far as readers allow (or all of it once the hold expired); if some
   * still waits, marks the topic's slot so that readers wake this process once they have moved on.
   */
  private retry(t: LocalTopic): void {
    for (let look = 0; look < MARK_LOOKS; look++) {
      if (!this.writeHeld(t)) return;
      // Readers that moved past the mark before it was visible did not wake us: look again now.
      if (this.markWaiting(t)) return;
    }
    // (Readers that keep moving just past each mark: the retry timer looks again.)
  }

  /**
   * Marks `t`'s slot as a writer waiting until the holding readers are a sixteenth of the ring's messages
   * past where the ring stopped (see src/shm/holds.ts). Returns false if they are there already.
   */
  private markWaiting(t: LocalTopic): boolean {
    const file = t.ring.file;
    let wakeAt = 0; // (a ring whose state cannot be read: woken at any move; its appends report it)
    try {
      const s = t.ring.state();
      wakeAt = s.tailSeq + Math.max(1, Math.floor((s.next - s.tailSeq) / WAKE_FRACTION));
    } catch {}
    markWriterWaiting(file, t.slot, wakeAt);
    return holdFloor(file) < wakeAt;
  }

  /** Writes what `t` holds, as far as readers allow; returns true if some still waits. */
  private writeHeld(t: LocalTopic): boolean {
    const h = t.held as Held | null;
    if (!h) return false;
    const file = t.ring.file;
    clearWriterWaiting(file, t.slot);
    const expired = Date.now() - h.since >= this.holdMs || h.bytes > MAX_HELD_BYTES;
    const floor = expired ? undefined : () => holdFloor(file);
    this.floors.delete(t); // look again after a hold
    let wrote = false;
    while (h.queue.length > 0) {
      const p = h.queue[0]!;
      const time = Date.now();
      if (p.batch !== undefined) {
        const before = p.batch.bytesFrom(p.from);
        let k: number;
        try {
          k = t.ring.appendMany(p.batch, p.from, p.batch.count, time, floor);
        } catch {
          k = p.batch.count - p.from; // (fire-and-forget: nobody to tell; the ring refused them)
        }
        p.from += k;
        h.bytes -= before - p.batch.bytesFrom(p.from);
        if (k > 0) wrote = true;
        if (p.from < p.batch.count) {
          if (wrote) this.ns.waker.wakeSleepers(file);
          return true;
        }
        h.queue.shift();
        continue;
      }
      let seq: number;
      try {
        seq = t.ring.append(p.meta, p.body, time, floor);
      } catch (err) {
        h.queue.shift();
        h.bytes -= p.body.length + p.meta.length;
        p.reject?.(err as EzipcError);
        continue;
      }
      if (seq < 0) {
        if (wrote) this.ns.waker.wakeSleepers(file);
        return true;
      }
      wrote = true;
      h.queue.shift();
      h.bytes -= p.body.length + p.meta.length;
      p.resolve?.({ seq, time });
    }
    if (wrote) this.ns.waker.wakeSleepers(file);
    t.held = null;
    this.topics.delete(t);
    this.ns.releaseIfIdle(t);
    if (this.topics.size === 0) {
      if (this.timer) clearInterval(this.timer);
      this.timer = null;
      const waiters = this.drainWaiters;
      this.drainWaiters = [];
      for (const w of waiters) w();
    }
    return false;
  }

  /** Resolves once nothing is held. */
  drain(): Promise<void> {
    if (this.topics.size === 0) return Promise.resolve();
    return new Promise((resolve) => this.drainWaiters.push(resolve));
  }

  /** Fails what is held (the client closes). */
  close(error: EzipcError): void {
    this.ns.wakeListeners.delete(this.retryAll);
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    for (const t of this.topics) {
      const h = t.held as Held;
      for (const p of h.queue) if (p.batch === undefined) p.reject?.(error);
      t.held = null;
    }
    this.topics.clear();
    for (const w of this.drainWaiters) w();
    this.drainWaiters = [];
  }
}
