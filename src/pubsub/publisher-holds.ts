/**
 * Publisher flow control on the hub (docs/pubsub.md, "No message lost by default").
 *
 * A topic's history never evicts a message that a live `next` subscriber has not been sent yet. When a
 * publish would make it, the topic is *held*: it stays over its bound, and each of its publishers that speaks
 * feature "flow" gets `publishFlow { topic, held: true }` and stops publishing to it — its
 * `publishAndForget` returns false, `drain()` and `publish()` wait — until the subscribers have been sent
 * enough that the history is back under 7/8 of its bound; then `publishFlow { held: false }`.
 *
 * The hub keeps reading every connection meanwhile (a held publisher still sends credit, acknowledgements
 * and everything else), so a process that both publishes and subscribes cannot stall itself; a held topic
 * grows by what its publishers had sent before they heard (up to 16 MiB over twice its bound). A publisher
 * that goes on beyond that (one without the feature, or one that ignores it) is no longer read from until
 * the hold ends — TCP backpressure — unless it subscribes to the topic itself (it would stall its own
 * credit). A hold lasts at most `holdPublishersMs`, and the history grows to at most twice its bound plus
 * 32 MiB, so memory stays bounded whatever a peer does; past either bound the topic is given up: its
 * oldest messages go as they did without flow control, and the laggards get a `gap`.
 */
import type { Connection } from "../transport/types.js";
import type { Topic } from "./topics.js";

/**
 * Beyond twice its bound, a held topic may grow by this much more before its publishers are no longer read
 * from: publishes already on their way when the hold began (a publisher hears of it when it next yields,
 * after up to its send high-water mark and what the sockets hold), and a small topic's bound may be
 * smaller than one 64 KiB batch. Twice this, and the hold is given up.
 */
const SLACK_BYTES = 16 * 1024 * 1024;
/** The same for a count bound: one publish frame carries up to 65,536 messages. */
const SLACK_COUNT = 65_536;

interface Held {
  readonly timer: NodeJS.Timeout;
  /** Publishers told to hold (flow-capable connections that published while held). */
  readonly conns: Set<Connection>;
  /** Publishers no longer read from (they went on past the slack). */
  readonly paused: Set<Connection>;
}

export class PublisherHolds {
  private readonly held = new Map<Topic, Held>();
  /** Connections that announced feature "flow" in their hello. */
  private readonly flow = new WeakSet<Connection>();
  /** For each publisher no longer read from, the held topics it is paused for. */
  private readonly pausedFor = new Map<Connection, Set<Topic>>();
  readonly counters = { publisherHolds: 0, holdsGivenUp: 0, publishersPaused: 0 };

  /**
   * `send(conn, topic, held)` sends `publishFlow`; `giveUp(topic)` evicts the held topic to its bound
   * regardless of its subscribers (then {@link release} follows).
   */
  constructor(
    private readonly maxHoldMs: number,
    private readonly send: (conn: Connection, topic: Topic, held: boolean) => void,
    private readonly giveUp: (topic: Topic) => void,
  ) {}

  /** Whether holds are on at all (`holdPublishersMs` > 0). */
  get enabled(): boolean {
    return this.maxHoldMs > 0;
  }

  /** Topics held now. */
  get size(): number {
    return this.held.size;
  }

  isHeld(t: Topic): boolean {
    return this.held.has(t);
  }

  /** `conn` said in its hello that it understands `publishFlow`. */
  flowCapable(conn: Connection): void {
    this.flow.add(conn);
  }

  /**
   * `t` is over its bound and a subscriber still needs its oldest message: holds it, telling `from` (the
   * publisher whose publish got it there, if it speaks "flow") to stop, and no longer reading from it if it
   * went on past the slack (unless `fromSubscribes`: it reads `t` on the same connection). Returns false
   * when `t` may not be held any more: the caller evicts instead.
   */
  hold(t: Topic, from: Connection | null, fromSubscribes: () => boolean): boolean {
    const over = this.overBy(t);
    // A publisher paused already may still deliver what the hub had read before (the rest of one read).
    const paused = from !== null && this.pausedFor.get(from)?.has(t) === true;
    if (over > 1 || (over > 0 && !paused && (from === null || from.state !== "open" || fromSubscribes()))) {
      this.counters.holdsGivenUp++;
      return false;
    }
    let h = this.held.get(t);
    if (!h) {
      const timer = setTimeout(() => {
        if (this.held.get(t) !== h) return;
        this.counters.holdsGivenUp++;
        this.giveUp(t);
      }, this.maxHoldMs);
      timer.unref();
      h = { timer, conns: new Set(), paused: new Set() };
      this.held.set(t, h);
    }
    if (from && from.state === "open" && this.flow.has(from) && !h.conns.has(from)) {
      h.conns.add(from);
      this.counters.publisherHolds++;
      this.send(from, t, true);
    }
    if (over > 0 && from && !paused) {
      // Past the slack: stop reading it (TCP backpressure) until the hold ends.
      h.paused.add(from);
      let topics = this.pausedFor.get(from);
      if (!topics) {
        topics = new Set();
        this.pausedFor.set(from, topics);
        from.pause();
        this.counters.publishersPaused++;
      }
      topics.add(t);
    }
    return true;
  }

  /** 0 within twice its bound plus the slack; 1 past that; 2 past twice the slack (give up at once). */
  private overBy(t: Topic): number {
    const { maxBytes, maxCount } = t.limits;
    const bytes = t.bytes - 2 * maxBytes;
    const count = maxCount > 0 ? t.count - 2 * maxCount : 0;
    if (bytes > 2 * SLACK_BYTES || count > 2 * SLACK_COUNT) return 2;
    return bytes > SLACK_BYTES || count > SLACK_COUNT ? 1 : 0;
  }

  /** `t` is back under its bound (or was given up): its held publishers may go on. */
  release(t: Topic): void {
    const h = this.held.get(t);
    if (!h) return;
    this.held.delete(t);
    clearTimeout(h.timer);
    for (const conn of h.conns) if (conn.state === "open") this.send(conn, t, false);
    for (const conn of h.paused) {
      const topics = this.pausedFor.get(conn);
      topics?.delete(t);
      if (topics?.size === 0) {
        this.pausedFor.delete(conn);
        if (conn.state === "open") conn.resume();
      }
    }
  }

  /** A closed connection is no longer told anything. */
  connectionClosed(conn: Connection): void {
    for (const h of this.held.values()) {
      h.conns.delete(conn);
      h.paused.delete(conn);
    }
    this.pausedFor.delete(conn);
  }

  /** Ends every hold (the hub is closing). */
  stop(): void {
    for (const t of [...this.held.keys()]) this.release(t);
  }
}
