/**
 * Reading a ring from this process as messages arrive: batches while there is something to read (and the
 * reader wants it), parking on the namespace's wake-up pipe when there is not. Subscriptions, RPC servers
 * (their request rings) and callers (their inboxes) are followers.
 */
import type { EzipcError } from "../errors.js";
import type { RingCursor, RingMessage } from "../shm/ring.js";
import type { LocalTopic, ShmNamespace } from "./shm-namespace.js";

/** Messages read per turn of the event loop, per follower, before yielding to other work. */
const TURN_MESSAGES = 16_384;
const BATCH = 1_024;
/** Spin mode: how long a reader watches its ring in a tight loop before it lets the event loop turn. */
const SPIN_MS = 0.2;

export abstract class RingFollower {
  private pumping = false;
  private scheduled = false;
  protected closed = false;
  private readonly out: RingMessage[] = [];

  constructor(
    protected readonly ns: ShmNamespace,
    readonly topic: LocalTopic,
    protected readonly cursor: RingCursor,
  ) {}

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
  /** Takes the messages read (copies; the array is reused after the call). */
  protected abstract deliver(ms: RingMessage[]): void;
  protected abstract gap(first: number, last: number): void;
  /** After each delivery: where the follower now is, published for the writers' holds. */
  protected moved(): void {
    this.ns.readerMoved(this.topic);
  }
  /** The ring cannot be read (corrupted): the follower is closed first. */
  protected abstract failed(err: EzipcError): void;

  get wantsMore(): boolean {
    return !this.closed && this.limit() > 0;
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.ns.removeReader(this.topic, this);
  }

  protected schedule(): void {
    if (this.scheduled || this.closed || this.pumping) return;
    this.scheduled = true;
    setImmediate(() => {
      this.scheduled = false;
      this.pump();
    });
  }

  /** Reads what the follower wants; parks when the ring has nothing more. */
  pump(): void {
    if (this.pumping || this.closed) return;
    this.pumping = true;
    const ring = this.topic.ring;
    const out = this.out;
    let turn = 0;
    try {
      for (let want = this.limit(); !this.closed && want > 0; want = this.limit()) {
        if (turn >= TURN_MESSAGES) {
          this.pumping = false;
          this.schedule(); // let the event loop breathe; go on next turn
          return;
        }
        this.beforeRead();
        out.length = 0;
        let n: number;
        try {
          n = ring.read(this.cursor, Math.min(want, BATCH), out, (first, last) => this.gap(first, last));
        } catch (err) {
          this.close();
          this.failed(err as EzipcError);
          return;
        }
        if (n === 0) {
          if (this.ns.spin) {
            // Spin mode: watch the ring in a tight loop for a while (a few µs to see a message), then
            // let the event loop turn once and come back; never sleep. Not right after delivering: what
            // the messages set off (promise reactions, the next request) must run first.
            if (turn > 0) {
              this.pumping = false;
              this.schedule();
              return;
            }
            const until = performance.now() + SPIN_MS;
            let arrived = false;
            while (performance.now() < until) {
              if (ring.state().next > this.cursor.seq) {
                arrived = true;
                break;
              }
            }
            if (arrived) continue;
            this.pumping = false;
            this.schedule();
            return;
          }
          // Park, then look once more (a writer that committed meanwhile may not have seen us park).
          this.ns.waker.park(ring.file, this.topic.slot);
          if (ring.state().next <= this.cursor.seq) return;
          continue;
        }
        turn += n;
        this.deliver(out);
        this.moved();
      }
    } finally {
      this.pumping = false;
    }
  }
}
