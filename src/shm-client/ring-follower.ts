/**
 * Reading a ring from this process as messages arrive: batches while there is something to read (and the
 * reader wants it), parking on the namespace's wake-up pipe when there is not. Subscriptions, RPC servers
 * (their request rings) and callers (their inboxes) are followers.
 */
import type { EzipcError } from "../errors.js";
import { type RingCursor, type RingMessage, type RingMessageFactory, ringMessage } from "../shm/ring.js";
import { acquireReads, releaseReads, type TopicReads } from "./shared-reads.js";
import type { LocalTopic, ShmNamespace } from "./shm-namespace.js";
import { spinLoop } from "./spin-loop.js";

/**
 * Messages, and bytes, read per turn of the event loop, per follower, before yielding to other work. The
 * byte bound is well below what shared-reads.ts keeps, so that the process's other subscriptions of the
 * topic, reading in the same turn, find the runs this one read.
 */
const TURN_MESSAGES = 16_384;
/**
 * The same while other followers in this process share this one's reads: they take what it read in the
 * same round of turns, so a short turn keeps the runs held for them small enough to die young (with
 * 16 384, a 64 B fan-out to ten subscriptions spent a quarter of its time in the garbage collector, and
 * delivered 14 M/s with 512 against 10 M/s).
 */
const SHARED_TURN_MESSAGES = 512;
const TURN_BYTES = 1024 * 1024;
const BATCH = 1_024;
/**
 * How long a watch ({@link RingFollower.watchFor}) looks in the process's spin loop (microtasks: the event
 * loop waits) before it looks once per event-loop turn: most answers come within it, and one turn of the
 * event loop costs more than a look.
 */
const TIGHT_WATCH_MS = 0.02;

export abstract class RingFollower<M extends RingMessage = RingMessage> {
  private pumping = false;
  private scheduled = false;
  protected closed = false;
  private readonly out: M[] = [];
  private readonly onGap = (first: number, last: number): void => this.gap(first, last);
  /** Makes the message objects handed to {@link deliver}. */
  protected make: RingMessageFactory<M> = ringMessage as RingMessageFactory<M>;
  /**
   * Set by followers that share their reads with the process's other sharing followers of the topic file
   * (same factory, so the same message objects: subscriptions; see shared-reads.ts).
   */
  private shared: TopicReads | null = null;
  /** Until when (`performance.now()`) the follower keeps looking before it parks ({@link watchFor}). */
  private watchUntil = 0;
  /** Until when it looks in the process's spin loop instead (the first {@link TIGHT_WATCH_MS} of a watch). */
  private tightUntil = 0;

  constructor(
    protected readonly ns: ShmNamespace,
    readonly topic: LocalTopic,
    protected readonly cursor: RingCursor,
  ) {}

  /** Shares reads with the process's other sharing followers of the file (call before {@link start}). */
  protected shareReads(): void {
    this.shared ??= acquireReads(this.topic.ring.file.identity, this.cursor);
  }

  /** Starts following (takes this process's reader slot in the file if it has none). */
  protected start(): void {
    this.ns.addReader(this.topic, this);
    this.moved();
    this.schedule();
  }

  /** The next seq this follower reads. */
  get nextSeq(): number {
    return this.cursor.seq;
  }

  /** Whether writers must keep what this follower has not read (subscriptions with `iter: next`). */
  get holds(): boolean {
    return false;
  }

  /** How many messages the follower takes now (0: none until it asks again). */
  protected abstract limit(): number;
  /** Called before each read (e.g. to jump to the newest). */
  protected beforeRead(): void {}
  /** Takes the messages read (copies; the array is reused after the call: keep its elements, not it). */
  protected abstract deliver(ms: readonly M[]): void;
  protected abstract gap(first: number, last: number): void;
  /** After each delivery: where the follower now is, published for the writers' holds. */
  protected moved(): void {
    this.ns.readerMoved(this.topic);
  }
  /** The ring cannot be read (corrupted): the follower is closed first. */
  protected abstract failed(err: EzipcError): void;

  /**
   * Keeps looking for new messages for the next `ms` instead of sleeping, because an answer is due soon (a
   * reply to the call just written, the next request after a reply): what arrives meanwhile costs its writer
   * no wake-up to make and this process none to take. The first {@link TIGHT_WATCH_MS} in the process's spin
   * loop, then once per turn of the event loop (I/O, timers run between looks). No-op in spin mode, which
   * always looks.
   */
  watchFor(ms: number): void {
    if (this.closed || this.ns.spin || ms <= 0) return;
    const now = performance.now();
    const until = now + ms;
    if (until <= this.watchUntil) return;
    this.watchUntil = until;
    this.tightUntil = now + Math.min(ms, TIGHT_WATCH_MS);
    this.tight = true;
    // Our process's slot in the file is shared by its followers of it: unparked only if no other relies on it.
    if (this.topic.readers.size === 1) this.ns.waker.unpark(this.topic.ring.file, this.topic.slot);
    // Into the spin loop now: a scheduled look would wait for the event loop, which the spin loop holds
    // while the process's other followers watch (a caller and a server in one process).
    spinLoop.add(this);
  }

  get wantsMore(): boolean {
    return !this.closed && this.limit() > 0;
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    spinLoop.remove(this);
    this.ns.removeReader(this.topic, this);
    if (this.shared) releaseReads(this.topic.ring.file.identity, this.cursor);
    this.shared = null;
  }

  protected schedule(): void {
    if (this.scheduled || this.closed || this.pumping) return;
    this.scheduled = true;
    setImmediate(() => {
      this.scheduled = false;
      this.pump();
    });
  }

  /** Whether the ring has a message past this follower (Spinner.hasNews). */
  hasNews(): boolean {
    return !this.closed && this.topic.ring.nextSeq() > this.cursor.seq;
  }

  /** Messages the last {@link pump} delivered (the spin loop's sign of traffic). */
  delivered = 0;
  /** Whether the spin loop looks at it without event-loop turns between looks (Spinner.tight). */
  tight = false;

  /**
   * The messages of the last read, to deliver: `out`, or a run another follower read, taken whole (handed
   * over as it is: a copy of its array per subscription was a measurable part of a fan-out).
   */
  private batch: readonly M[] = this.out;

  /** Reads up to `max` messages (into {@link batch}), from a run another follower read from here if there is one. */
  private readShared(reads: TopicReads, max: number): number {
    const cursor = this.cursor;
    const out = this.out;
    const run = reads.take(cursor, max, out as RingMessage[]);
    if (run !== null) {
      if (run !== out) this.batch = run as readonly RingMessage[] as readonly M[];
      return this.batch.length;
    }
    const seq = cursor.seq;
    const n = this.topic.ring.read(cursor, max, out, this.onGap, this.make);
    // Kept only for a run of consecutive messages from where it started (none skipped in a gap), and
    // only when another follower may take it soon.
    if (n === 0 || out[0]!.seqNumber !== seq || out[n - 1]!.seqNumber !== seq + n - 1) return n;
    const takers = reads.takersAt(seq, cursor);
    if (takers > 0) {
      reads.keep({
        seq,
        messages: out.slice(0, n),
        data: this.topic.ring.lastRunCopy,
        ringStart: this.topic.ring.lastRunStart,
        nextSeq: cursor.seq,
        nextOffset: cursor.offset,
        takers,
      });
    }
    return n;
  }

  /** Reads what the follower wants; parks when the ring has nothing more. */
  pump(): void {
    if (this.pumping || this.closed) return;
    this.pumping = true;
    this.delivered = 0;
    const ring = this.topic.ring;
    const out = this.out;
    let turn = 0;
    let turnBytes = 0;
    // Short turns while another follower is close enough to share reads with (see SHARED_TURN_MESSAGES).
    const turnMessages =
      this.shared?.hasNeighbour(this.cursor) === true ? SHARED_TURN_MESSAGES : TURN_MESSAGES;
    try {
      for (let want = this.limit(); !this.closed && want > 0; want = this.limit()) {
        if (turn >= turnMessages || turnBytes >= TURN_BYTES) {
          this.pumping = false;
          this.schedule(); // let the event loop breathe; go on next turn
          return;
        }
        this.beforeRead();
        if (out.length !== 0) out.length = 0;
        this.batch = out;
        let n: number;
        try {
          n = this.shared
            ? this.readShared(this.shared, Math.min(want, BATCH, turnMessages))
            : ring.read(this.cursor, Math.min(want, BATCH), out, this.onGap, this.make);
        } catch (err) {
          this.close();
          this.failed(err as EzipcError);
          return;
        }
        if (n === 0) {
          if (this.ns.spin) {
            this.delivered = turn;
            this.tight = true;
            spinLoop.add(this); // looks again soon, with the process's other spinning followers
            return;
          }
          if (this.watchUntil !== 0) {
            const now = performance.now();
            if (now < this.watchUntil) {
              // Watching (watchFor): in the spin loop at first, then once per event-loop turn.
              this.delivered = turn;
              this.tight = now < this.tightUntil;
              spinLoop.add(this);
              return;
            }
            this.watchUntil = 0;
            this.tight = false;
            spinLoop.remove(this);
          }
          // Park, then look once more (a writer that committed meanwhile may not have seen us park).
          this.ns.waker.park(ring.file, this.topic.slot);
          if (ring.nextSeq() <= this.cursor.seq) return;
          continue;
        }
        turn += n;
        this.delivered = turn;
        const batch = this.batch;
        // (The turn's bytes are a bound on the work of a turn: estimated from the first and last message.)
        const a = batch[0]!;
        const z = batch[n - 1]!;
        turnBytes += (n * (a.metaLength + a.bodyLength + z.metaLength + z.bodyLength)) / 2;
        this.deliver(batch);
        this.batch = out; // (lets a shared run go once every subscription has taken it)
        this.moved();
      }
    } finally {
      this.pumping = false;
    }
  }
}
