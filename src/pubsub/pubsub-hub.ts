/**
 * Pub/sub on the hub: topics with a bounded history, and subscriptions that are cursors into it.
 *
 * - A publish is stored in its topic's history and gets the next sequence number (a bigint, 1, 2, …).
 *   History is bounded per topic (bytes, optionally count) and in total; the oldest go first — but never
 *   one a `next` subscriber has not been sent: then the topic is held and its publishers wait
 *   (publisher-holds.ts), for at most `holdPublishersMs`.
 * - A subscription holds, per matching topic, the next seq to deliver, and a credit: how many more
 *   messages its client has asked for. The hub sends while there is credit and the connection's queue is
 *   below its high-water mark, and otherwise simply stops: the messages stay in the history, so a slow
 *   subscriber costs no queue. One that falls behind eviction gets a `gap` notice and goes on.
 * - `iter = newest` jumps to the latest message before each delivery (AlephZero's ITER_NEWEST): with
 *   credit given one at a time, as the reader asks, it sees the newest message each time.
 * - Subscriptions belong to a connection; a client that reconnects subscribes again with `resume` cursors.
 * - Bounds over all connections, not only per connection: subscriptions, and the (subscription, topic)
 *   pairs wildcard subscriptions make. Patterns find their topics, and new topics their wildcard
 *   subscriptions, through token indexes (topic-index.ts); the total bound finds the biggest topic in a heap
 *   (biggest-topics.ts): no subscribe or publish walks every topic.
 *
 * - On a clustered hub, topics are mirrors of the cluster's and the cluster numbers publishes
 *   (topic-mirrors.ts).
 *
 * Over 600 lines: topics, subscriptions, the commit rule of persisted topics and the eviction floor of
 * publisher holds in one unit: cursors, credit, commits and holds meet in every delivery and eviction.
 */

import type { Infer } from "../codec/schema.js";
import { CommitRetry } from "../commit-retry.js";
import { EzipcError, isEzipcError } from "../errors.js";
import { Histogram } from "../histogram.js";
import { ListingBudget } from "../listing-budget.js";
import { log } from "../log.js";
import type { TopicView } from "../protocol/core-messages.js";
import type { HubPart } from "../protocol/hub-part.js";
import type { Protocol } from "../service/protocol.js";
import { DEFAULT_MAX_FRAME_BYTES } from "../transport/frame.js";
import { sendPartsTo, sendTo } from "../transport/send.js";
import type { Connection } from "../transport/types.js";
import { BiggestTopics } from "./biggest-topics.js";
import {
  encodeMessageHead,
  MESSAGE_SID_OFFSET,
  messageHeadBytes,
  type PublishView,
  sliceHead,
} from "./fast-frames.js";
import { PublisherHolds } from "./publisher-holds.js";
import type { pubsubMessages, topicPageMessages } from "./pubsub-messages.js";
import { encodeHeaders, encodeRecord } from "./records.js";
import { PatternIndex, TopicIndex } from "./topic-index.js";
import { describeTopics, listTopics, type TopicSource, topicsPage } from "./topic-listings.js";
import { TopicMirrors } from "./topic-mirrors.js";
import type { TopicReplica } from "./topic-replica.js";
import {
  checkTopic,
  type Entry,
  entry,
  recordsOf,
  recordsSlice,
  type StoredMessage,
  Topic,
  type TopicLimits,
  topicMatcher,
} from "./topics.js";

export const INIT_OLDEST = 0;
export const INIT_MOST_RECENT = 1;
export const INIT_AWAIT_NEW = 2;
export const INIT_FROM_SEQ = 3;
export const ITER_NEXT = 0;
export const ITER_NEWEST = 1;

/** The hub topic that announces every new topic (payload: its name). Clients cannot publish to `$hub.…`. */
export const NEW_TOPICS = "$hub.topics";

/** Options of the pub/sub part of a hub. */
export interface PubSubOptions {
  /** Default history bound per topic, in bytes. Default 16 MiB. */
  topicMaxBytes?: number;
  /** Default history bound per topic, in messages (0: none). Default 0. */
  topicMaxCount?: number;
  /** Bound of all topics' history together; the biggest topic gives up its oldest first. Default 256 MiB. */
  maxHistoryBytes?: number;
  /** Most topics (`EZIPC_TOO_MANY_TOPICS`). Default 100,000. */
  maxTopics?: number;
  /** Most subscriptions per connection (`EZIPC_TOO_MANY_SUBSCRIPTIONS`). Default 10,000. */
  maxSubscriptionsPerClient?: number;
  /**
   * Most subscriptions in the hub, over all connections (`EZIPC_TOO_MANY_SUBSCRIPTIONS`): about 1.1 KiB of
   * hub memory each. Default 250,000.
   */
  maxSubscriptions?: number;
  /**
   * Most (subscription, topic) pairs in the hub: a subscription to one topic is one, a wildcard one counts
   * once for each topic it follows (each costs the hub a cursor, about 100 bytes). A wildcard subscribe that
   * would go over fails with `EZIPC_TOO_MANY_SUBSCRIPTIONS`; a new topic that wildcard subscriptions would
   * take over fails the operation creating it with `EZIPC_TOO_MANY_TOPICS`. Default 1,000,000.
   */
  maxSubscriptionTopics?: number;
  /**
   * Publisher flow control (publisher-holds.ts): a topic whose full history still holds messages a `next`
   * subscriber has not been sent makes its publishers wait, for at most this long; then its oldest
   * messages go and the laggards get a gap. 0: never wait (evict at once, as a lossy broker does).
   * Default 5,000 ms (under the 10 s a client waits on a hub that does not read before it gives up).
   */
  holdPublishersMs?: number;
  /**
   * The hub's frame limit (its connections' option, 16 MiB by default): a publish whose `message` frame
   * would be larger is refused with `EZIPC_MESSAGE_TOO_LARGE`.
   */
  maxFrameBytes?: number;
}

/**
 * Persisting topic history (implemented by the SQLite store). Durable when the calls return, or (with
 * `afterDurable`) once it calls back.
 */
export interface HistoryStore {
  /** Calls `done` once what was saved before the call is durable (or with the error), in call order. */
  afterDurable?(done: (err?: unknown) => void): void;
  loadTopics(): { name: string; limits: TopicLimits; messages: StoredMessage[]; nextSeq: bigint }[];
  saveTopic(name: string, limits: TopicLimits): void;
  /**
   * Commits a batch: new messages, evictions (messages below `below` go) and each topic's next seq (its
   * high-water mark, kept even when every message is evicted), in one transaction.
   */
  saveMessages(
    batch: readonly { topic: string; message: StoredMessage }[],
    evicted: readonly { topic: string; below: bigint }[],
    marks: readonly { topic: string; next: bigint }[],
  ): void;
}

/** Backlog of messages not yet committed beyond which publishes to persisted topics are refused. */
const MAX_UNCOMMITTED_BYTES = 64 * 1024 * 1024;

interface Sub {
  readonly sid: number;
  readonly conn: Connection;
  readonly pattern: string;
  readonly iter: number;
  credit: number;
  /** Index of the next message to deliver, per topic. */
  readonly cursors: Map<Topic, number>;
  /** Topics with something to deliver (cursor ≤ lastVisible), in round-robin order. */
  readonly ready: Set<Topic>;
  /**
   * Topics whose next delivery is their starting position even under `newest` (AlephZero: the first read
   * after INIT_OLDEST returns the oldest; after the other inits, `newest` takes the newest at once).
   */
  readonly noJump: Set<Topic>;
  waitingDrain: boolean;
  /** The topic of a single-topic subscription (skips iterating `ready`). */
  only: Topic | null;
  /**
   * Topics where this subscription was left behind (a hold on its account was given up): it holds no
   * publisher back there until it has caught up.
   */
  readonly behind: Set<Topic>;
}

function firstOf(set: Set<Topic>): Topic {
  for (const t of set) return t;
  throw new Error("empty set");
}

type Msg<K extends keyof typeof pubsubMessages> = Infer<(typeof pubsubMessages)[K]>;
type PageMsg<K extends keyof typeof topicPageMessages> = Infer<(typeof topicPageMessages)[K]>;

export class PubSub implements HubPart {
  private readonly topics = new Map<string, Topic>();
  /** Subscriptions per topic (concrete and matching wildcard ones). */
  private readonly subsOf = new Map<Topic, Set<Sub>>();
  /** Topics by their tokens, for the patterns that look for them. */
  private readonly index = new TopicIndex<Topic>();
  /** Wildcard subscriptions by their patterns' tokens, for the topics made after them. */
  private readonly wildcards = new PatternIndex<Sub>();
  private readonly byConn = new Map<Connection, Map<number, Sub>>();
  /** Subscriptions, and (subscription, topic) pairs, over all connections (the hub-wide bounds). */
  private subscriptions = 0;
  private pairs = 0;
  private totalBytes = 0;
  /** The topics by their history's bytes, kept while the history is near maxHistoryBytes. */
  private readonly biggest = new BiggestTopics<Topic>();
  private readonly limits: Required<PubSubOptions>;
  private pendingSave: { topic: string; seq: bigint; entry: Entry }[] = [];
  private readonly pendingEvict = new Map<string, bigint>();
  private pendingAcks: { conn: Connection; rid: number; seq: bigint; time: number; t0: number }[] = [];
  private saveScheduled = false;
  /** Bytes appended to persisted topics and not yet committed. */
  private uncommittedBytes = 0;
  private readonly retry = new CommitRetry("messages", () => this.flush());
  private readonly holds: PublisherHolds;
  readonly counters = { published: 0, delivered: 0, gaps: 0, rejected: 0 };
  /** From an acknowledged publish's arrival to its `published` (after the commit, for a persisted topic). */
  readonly publishAckLatency = new Histogram();
  /** Clustered: the topics' mirrors of the cluster (topic-mirrors.ts). */
  private readonly mirrors: TopicMirrors | null;
  /** Connections of clients that resume from an earlier run of the hub (fromEarlierHub). */
  private readonly earlierHub = new WeakSet<Connection>();

  constructor(
    options: PubSubOptions,
    private readonly protocol: Protocol,
    private readonly store: HistoryStore | null,
    /**
     * Throws `EZIPC_PERMISSION_DENIED` for an operation the client may not do (secure hubs). The hub checks
     * every decoded message (admission.ts); this is for the publish frames parsed in place and for listings.
     */
    private readonly access?: (conn: Connection, op: "publish" | "subscribe", subject: string) => void,
    /**
     * A clustered hub's topics (topic-replica.ts): publishes are numbered by the cluster and every topic's
     * history here is a mirror the replica feeds. Publishers are not held (the cluster's history bounds
     * are the bound), and there is no local store.
     */
    replica: TopicReplica | null = null,
  ) {
    this.limits = {
      topicMaxBytes: options.topicMaxBytes ?? 16 * 1024 * 1024,
      topicMaxCount: options.topicMaxCount ?? 0,
      maxHistoryBytes: options.maxHistoryBytes ?? 256 * 1024 * 1024,
      maxTopics: options.maxTopics ?? 100_000,
      maxSubscriptionsPerClient: options.maxSubscriptionsPerClient ?? 10_000,
      maxSubscriptions: options.maxSubscriptions ?? 250_000,
      maxSubscriptionTopics: options.maxSubscriptionTopics ?? 1_000_000,
      holdPublishersMs: replica ? 0 : (options.holdPublishersMs ?? 5_000),
      maxFrameBytes: options.maxFrameBytes ?? DEFAULT_MAX_FRAME_BYTES,
    };
    this.mirrors = replica
      ? new TopicMirrors(replica, {
          protocol,
          topic: (name) => this.topic(name, true),
          append: (t, m) => {
            const freed = t.skipTo(m.seq);
            if (freed < 0) return;
            this.totalBytes -= freed;
            const head = encodeMessageHead(t.nameBytes, m.seq, m.time, m.publisher, 1);
            this.appendEntry(t, m.seq, entry(head, m.record, 1, m.time), null);
          },
          bound: (t) => {
            if (t.over) this.bound(t, null, Number.POSITIVE_INFINITY);
          },
          subscribe: (conn, m) => this.onSubscribe(conn, m),
          handle: (conn, type, body) => this.handle(conn, "", type, body),
          publishFailed: (conn, rid, err) => this.reject(conn, rid, err),
          acknowledged: (t0) => this.publishAckLatency.since(t0),
        })
      : null;
    this.holds = new PublisherHolds(
      this.limits.holdPublishersMs,
      (conn, t, held) => sendTo(conn, this.protocol.encode("publishFlow", { topic: t.name, held })),
      (t) => this.leaveBehind(t),
    );
    if (store) {
      for (const t of store.loadTopics()) {
        const topic = this.topic(t.name, true);
        topic.limits = t.limits;
        for (const m of t.messages) topic.restore(m.seq, this.entryOf(t.name, m));
        topic.reserve(t.nextSeq);
        topic.durable = true;
        this.totalBytes += topic.bytes;
      }
    }
  }

  /** Whether `conn` may `op` on `topic` (listings show only what the client may see). */
  private permits(conn: Connection, op: "publish" | "subscribe", topic: string): boolean {
    if (!this.access) return true;
    try {
      this.access(conn, op, topic);
      return true;
    } catch {
      return false;
    }
  }

  get topicCount(): number {
    return this.topics.size;
  }
  get historyBytes(): number {
    return this.totalBytes;
  }
  /** Publishers told to hold or no longer read from (publisher-holds.ts), and holds given up. */
  get holdCounters(): Readonly<{ publisherHolds: number; holdsGivenUp: number; publishersPaused: number }> {
    return this.holds.counters;
  }

  /** `conn` said in its hello that it understands `publishFlow` (feature "flow"). */
  /**
   * `conn` is a client coming back from an earlier run of this hub (or from another hub): the seqs it
   * resumes topics from were not given by this run, so its `resume` cursors on topics this hub did not keep
   * (not persisted, not clustered: their seqs began again at 1) start at their oldest message instead.
   */
  fromEarlierHub(conn: Connection): void {
    this.earlierHub.add(conn);
  }

  flowCapable(conn: Connection): void {
    this.holds.flowCapable(conn);
  }

  /**
   * Handles a pub/sub message; returns false if `type` is not one of them. (`publish` frames never come
   * here: the hub parses them in place and calls {@link publishFrame}; one that does not parse does not
   * decode either.)
   */
  handle(conn: Connection, _client: string, type: string, body: unknown): boolean {
    if (this.mirrors?.holds(conn, type, body)) return true;
    switch (type) {
      case "subscribe":
        if (this.mirrors?.waitForMirror(conn, body as Msg<"subscribe">)) return true;
        this.onSubscribe(conn, body as Msg<"subscribe">);
        return true;
      case "credit":
        this.onCredit(conn, body as Msg<"credit">);
        return true;
      case "unsubscribe":
        this.removeSub(this.byConn.get(conn)?.get((body as Msg<"unsubscribe">).sid));
        return true;
      case "topics":
        this.onTopics(conn, body as Msg<"topics">);
        return true;
      case "topicsPage":
        this.onTopicsPage(conn, body as PageMsg<"topicsPage">);
        return true;
      case "topicConfig":
        this.onTopicConfig(conn, body as Msg<"topicConfig">);
        return true;
      default:
        return false;
    }
  }

  /** Drops a closed connection's subscriptions. */
  connectionClosed(conn: Connection): void {
    this.mirrors?.connectionClosed(conn);
    this.forgetPublisher(conn);
    const subs = this.byConn.get(conn);
    if (!subs) return;
    for (const s of [...subs.values()]) this.removeSub(s);
    this.byConn.delete(conn);
  }

  /** Forgets a closed connection as a publisher told to hold. */
  private forgetPublisher(conn: Connection): void {
    this.holds.connectionClosed(conn);
  }

  /**
   * Commits pending persisted messages now; on success makes them deliverable and acknowledges their
   * publishers. A failed commit (a locked or failing disk) keeps everything pending and is retried with
   * backoff: nothing uncommitted is ever delivered or acknowledged, so a crash takes back only seqs nobody
   * saw. Returns false if the commit failed.
   */
  flush(): boolean {
    this.saveScheduled = false;
    if (this.store && (this.pendingSave.length > 0 || this.pendingEvict.size > 0)) {
      const batch = this.pendingSave.flatMap((p) =>
        this.stored(p.seq, p.entry).map((message) => ({ topic: p.topic, message })),
      );
      const evicted = [...this.pendingEvict].map(([topic, below]) => ({ topic, below }));
      const touched = new Set<Topic>();
      for (const p of this.pendingSave) touched.add(this.topics.get(p.topic)!);
      const marks = [...touched].map((t) => ({ topic: t.name, next: t.nextSeq }));
      try {
        this.store.saveMessages(batch, evicted, marks);
      } catch (err) {
        this.retry.failed(err);
        return false;
      }
      const saved = { save: this.pendingSave, evict: [...this.pendingEvict], acks: this.pendingAcks };
      const upTo = [...touched].map((t) => [t, t.next] as const);
      this.pendingSave = [];
      this.pendingEvict.clear();
      this.pendingAcks = [];
      const store = this.store;
      if (store.afterDurable) {
        // In the store, not yet on disk: shown and acknowledged once the store's sync says so.
        store.afterDurable((err) => {
          if (err === undefined) {
            this.uncommittedBytes = Math.max(
              0,
              this.uncommittedBytes - saved.save.reduce((n, p) => n + p.entry.bytes, 0),
            );
            this.durable(upTo, saved.acks);
            return;
          }
          // Saved again on the retry (the same rows: idempotent); their publishers still wait.
          this.pendingSave = [...saved.save, ...this.pendingSave];
          for (const [topic, below] of saved.evict)
            if (!this.pendingEvict.has(topic)) this.pendingEvict.set(topic, below);
          this.pendingAcks = [...saved.acks, ...this.pendingAcks];
          this.retry.failed(err);
        });
        return true;
      }
      this.uncommittedBytes = 0;
      this.durable(upTo, saved.acks);
      return true;
    }
    this.retry.succeeded(); // nothing left to commit: nothing is failing
    this.acknowledge(this.pendingAcks);
    this.pendingAcks = [];
    return true;
  }

  /** Saved messages are durable: shown up to where each topic was, their publishers answered. */
  private durable(upTo: readonly (readonly [Topic, number])[], acks: PubSub["pendingAcks"]): void {
    this.retry.succeeded();
    for (const [t, index] of upTo) this.reveal(t, index);
    this.acknowledge(acks);
  }

  private acknowledge(acks: PubSub["pendingAcks"]): void {
    for (const a of acks) {
      sendTo(a.conn, this.protocol.encode("published", { rid: a.rid, seq: a.seq, time: a.time }));
      this.publishAckLatency.since(a.t0);
    }
  }

  /** Stops retrying (the hub is closing). */
  stop(): void {
    this.retry.stop();
    this.holds.stop();
  }

  /** A durable topic's appends below `upTo` were committed: they may now be delivered. */
  private reveal(t: Topic, upTo: number): void {
    t.commit(upTo);
    for (const s of this.subsOf.get(t) ?? []) {
      const cursor = s.cursors.get(t);
      if (cursor === undefined || cursor >= t.visible) continue;
      s.ready.add(t);
      if (s.credit > 0 && !s.waitingDrain) this.pump(s);
    }
  }

  // ---- entries --------------------------------------------------------------------------------------

  /** Encodes one message as the entry every subscriber gets (its sid patched in). */
  private entryOf(topic: string, m: Omit<StoredMessage, "bytes">): Entry {
    const head = encodeMessageHead(
      Buffer.from(topic, "latin1"),
      m.seq,
      m.time,
      Buffer.from(m.publisher, "utf8"),
      1,
    );
    return entry(head, encodeRecord(encodeHeaders(m.headers), m.payload), 1, m.time);
  }

  /** The messages an entry holds, the first with `seq` (decoded from its frame; for the store). */
  private stored(seq: bigint, e: Entry): StoredMessage[] {
    const m = this.protocol.decode(Buffer.concat([e.head, recordsOf(e)])).body as Msg<"message">;
    return m.records.map((r, i) => ({
      seq: seq + BigInt(i),
      time: m.time,
      publisher: m.publisher,
      headers: r.headers,
      payload: r.payload,
      bytes: 0,
    }));
  }

  // ---- publish --------------------------------------------------------------------------------------

  /**
   * `publish`, parsed in place: its records are copied as they are into one `message` frame, stored as one
   * history entry and sent on to subscribers whole where their credit allows. `publisher` is the client's
   * label as UTF-8. `more`: the rest of a frame that arrived in pieces (`frame` is then its first piece,
   * which holds at least the frame's head); its records are kept as those pieces, not joined.
   */
  publishFrame(conn: Connection, publisher: Buffer, v: PublishView, frame: Buffer, more?: Buffer[]): void {
    const t0 = v.rid === 0 ? 0 : performance.now(); // (fire-and-forget publishes are not timed)
    let topic = this.topics.get(v.topic);
    try {
      this.checkForwardable(v, publisher, frame, more);
      if (!topic || topic.name === NEW_TOPICS) {
        checkTopic(v.topic);
        if (v.topic.startsWith("$hub.")) {
          throw new EzipcError(
            "EZIPC_PERMISSION_DENIED",
            `${v.topic}: $hub.… topics are published by the hub only`,
          );
        }
        this.access?.(conn, "publish", v.topic); // before the topic is created
        topic = this.topic(v.topic, true);
      } else this.access?.(conn, "publish", v.topic);
      if (v.count === 0) throw new EzipcError("EZIPC_BAD_REQUEST", "a publish without messages");
      if (topic.durable) this.retry.refuseWhileFailing(`publishing to ${v.topic}`);
      if (topic.durable && this.uncommittedBytes > MAX_UNCOMMITTED_BYTES) {
        throw new EzipcError(
          "EZIPC_STORE",
          `${v.topic}: the store has not committed the last ${this.uncommittedBytes} bytes; try again later`,
        );
      }
    } catch (err) {
      if (!isEzipcError(err)) throw err;
      this.reject(conn, v.rid, err);
      return;
    }
    const time = Date.now();
    if (this.mirrors) {
      if (more !== undefined) frame = Buffer.concat([frame, ...more]);
      this.mirrors.publish(conn, topic, publisher, v, frame, time, t0);
      return;
    }
    // The seq as a plain number while it is exact (base 0, the usual case): no bigint per publish.
    const seq: bigint | number = topic.base === 0n && topic.next < 2 ** 53 ? topic.next : topic.nextSeq;
    const head = encodeMessageHead(topic.nameBytes, seq, time, publisher, v.count);
    this.appendEntry(topic, seq, entry(head, frame.subarray(v.recordsStart), v.count, time, more), conn);
    if (v.rid === 0) return;
    const seqBig = BigInt(seq);
    if (topic.durable) {
      this.pendingAcks.push({ conn, rid: v.rid, seq: seqBig, time, t0 });
      this.scheduleSave();
    } else {
      sendTo(conn, this.protocol.encode("published", { rid: v.rid, seq: seqBig, time }));
      this.publishAckLatency.since(t0);
    }
  }

  /**
   * Throws `EZIPC_MESSAGE_TOO_LARGE` if the `message` frame carrying this publish's records to subscribers
   * (its head adds seq, time and the publisher's label) would be over maxFrameBytes: checked before anything
   * is made or numbered, so a publish the hub cannot deliver fails alone, and its seq is never given out.
   */
  private checkForwardable(v: PublishView, publisher: Buffer, frame: Buffer, more?: Buffer[]): void {
    let bytes = frame.length - v.recordsStart;
    if (more !== undefined) for (const p of more) bytes += p.length;
    bytes += messageHeadBytes(v.topic.length, publisher.length, v.count);
    if (bytes <= this.limits.maxFrameBytes) return;
    throw new EzipcError(
      "EZIPC_MESSAGE_TOO_LARGE",
      `${v.topic}: delivered, this publish would be a frame of ${bytes} bytes, over the hub's maxFrameBytes ${this.limits.maxFrameBytes} (a publish frame may take at most maxFrameBytes - 1 KiB)`,
    );
  }

  /** A publish that cannot be stored: its caller gets the error; a fire-and-forget one is dropped and counted. */
  private reject(conn: Connection, rid: number, err: EzipcError): void {
    if (rid !== 0) {
      sendTo(conn, this.protocol.encode("error", { rid, code: err.code, message: err.message }));
      return;
    }
    this.counters.rejected++;
    log("warn", "hub", "fire-and-forget publish dropped", { error: err });
  }

  /** Publishes from the hub itself (topic announcements on `$hub.topics`). */
  private announce(topic: Topic, payload: Uint8Array): void {
    const time = Date.now();
    const seq = topic.nextSeq;
    this.appendEntry(
      topic,
      seq,
      this.entryOf(topic.name, { seq, time, publisher: "hub", headers: [], payload }),
      null,
    );
  }

  /** Appends a publish of `from` (null: the hub's own) to `topic`, keeps the bounds, and delivers it. */
  private appendEntry(topic: Topic, seq: bigint | number, e: Entry, from: Connection | null): void {
    const index = topic.append(e);
    this.totalBytes += e.bytes;
    this.biggest.changed(topic);
    this.counters.published += e.count;
    const subs = this.subsOf.get(topic);
    // New subscribers of the topic start at this publish; those with credit are sent it at once (a
    // persisted topic waits for its commit: flush → reveal). Then the bound is kept, knowing what was sent.
    if (subs) {
      for (const s of subs) {
        if (!s.cursors.has(topic)) s.cursors.set(topic, index);
        if (topic.durable) continue;
        s.ready.add(topic);
        if (s.credit > 0 && !s.waitingDrain) this.pump(s);
      }
    }
    if (topic.over) this.bound(topic, from);
    if (this.totalBytes > this.limits.maxHistoryBytes) this.shrinkTotal();
    else if (this.biggest.awake && this.totalBytes < (this.limits.maxHistoryBytes / 8) * 7)
      this.biggest.sleep();
    if (topic.durable) {
      this.pendingSave.push({ topic: topic.name, seq: BigInt(seq), entry: e });
      this.uncommittedBytes += e.bytes;
      this.scheduleSave();
    }
  }

  /**
   * Keeps `t` within its bounds without evicting what a `next` subscriber has not been sent (publisher
   * flow control, publisher-holds.ts): evicts what everyone has, and holds the topic — telling `from` to
   * wait — while that is not enough. `floor` Infinity evicts regardless (a hold given up, holds off).
   */
  private bound(
    t: Topic,
    from: Connection | null,
    floor = this.holds.enabled ? this.unsentFloor(t) : Infinity,
  ): void {
    const bytes = t.bytes;
    const first = t.firstIndex;
    t.enforce(floor);
    if (t.over && !this.holds.hold(t, from, () => this.subscribes(from, t))) {
      this.leaveBehind(t);
      return;
    }
    this.evicted(t, bytes, first);
  }

  /**
   * Gives up a hold on `t`: its oldest messages go to its bounds, the subscribers that had not been sent
   * them are left behind (they get a gap, and hold nobody back until they catch up), and its publishers go on.
   */
  private leaveBehind(t: Topic): void {
    const bytes = t.bytes;
    const first = t.firstIndex;
    t.enforce();
    for (const s of this.subsOf.get(t) ?? []) {
      const c = s.cursors.get(t);
      if (c !== undefined && c < t.firstIndex) s.behind.add(t);
    }
    this.evicted(t, bytes, first);
    this.holds.release(t);
  }

  /** A held topic's subscribers were sent more: evicts what all have, and lets its publishers go once under 7/8 of the bound. */
  private retryHeld(t: Topic): void {
    const bytes = t.bytes;
    const first = t.firstIndex;
    t.enforce(this.unsentFloor(t), Math.floor((t.limits.maxBytes * 7) / 8));
    if (!t.over) this.holds.release(t);
    this.evicted(t, bytes, first);
  }

  /** Whether connection `conn` holds a subscription that reads `t`. */
  private subscribes(conn: Connection | null, t: Topic): boolean {
    for (const s of (conn && this.byConn.get(conn)?.values()) || []) if (s.cursors.has(t)) return true;
    return false;
  }

  /** The lowest index a `next` subscriber of `t` has not been sent (Infinity when none waits). */
  private unsentFloor(t: Topic): number {
    let floor = Number.POSITIVE_INFINITY;
    for (const s of this.subsOf.get(t) ?? []) {
      if (s.iter !== ITER_NEXT || (s.behind.size > 0 && s.behind.has(t))) continue;
      const c = s.cursors.get(t);
      if (c !== undefined && c < floor) floor = c;
    }
    return floor;
  }

  /** Accounts for what `t` evicted since it held `bytes` from index `first` (and tells the store). */
  private evicted(t: Topic, bytes: number, first: number): void {
    if (t.firstIndex === first) return;
    this.totalBytes -= bytes - t.bytes;
    this.biggest.changed(t);
    if (t.durable) {
      this.pendingEvict.set(t.name, t.firstSeq);
      this.scheduleSave();
    }
  }

  /** Over the total bound: the topic holding the most bytes gives up its oldest messages. */
  private shrinkTotal(): void {
    while (this.totalBytes > this.limits.maxHistoryBytes) {
      const biggest = this.biggest.biggest(this.topics.values());
      if (!biggest || biggest.count === 0) return;
      this.totalBytes -= biggest.evictOldest();
      this.biggest.changed(biggest);
      if (biggest.durable) this.pendingEvict.set(biggest.name, biggest.firstSeq);
    }
  }

  private scheduleSave(): void {
    if (this.saveScheduled || this.retry.waiting) return;
    this.saveScheduled = true;
    setImmediate(() => this.flush());
  }

  // ---- subscribe ------------------------------------------------------------------------------------

  private onSubscribe(conn: Connection, m: Msg<"subscribe">): void {
    let registered: Sub | undefined;
    try {
      const { wildcard } = topicMatcher(m.pattern);
      if (m.init > INIT_FROM_SEQ) throw new EzipcError("EZIPC_BAD_REQUEST", `unknown init ${m.init}`);
      if (m.iter > ITER_NEWEST) throw new EzipcError("EZIPC_BAD_REQUEST", `unknown iter ${m.iter}`);
      let subs = this.byConn.get(conn);
      if (!subs) {
        subs = new Map();
        this.byConn.set(conn, subs);
      }
      if (subs.has(m.sid)) throw new EzipcError("EZIPC_BAD_REQUEST", `subscription id ${m.sid} is in use`);
      if (subs.size >= this.limits.maxSubscriptionsPerClient) {
        throw new EzipcError(
          "EZIPC_TOO_MANY_SUBSCRIPTIONS",
          `at most ${this.limits.maxSubscriptionsPerClient} subscriptions per client`,
        );
      }
      if (this.subscriptions >= this.limits.maxSubscriptions) {
        throw new EzipcError(
          "EZIPC_TOO_MANY_SUBSCRIPTIONS",
          `the hub holds its maximum of ${this.limits.maxSubscriptions} subscriptions`,
        );
      }
      const sub: Sub = {
        sid: m.sid,
        conn,
        pattern: m.pattern,
        iter: m.iter,
        credit: m.credit,
        cursors: new Map(),
        ready: new Set(),
        noJump: new Set(),
        waitingDrain: false,
        only: null,
        behind: new Set(),
      };
      const resume = new Map(m.resume.map((r) => [r.topic, r.seq]));
      // Topics whose seqs this run began again (kept only in memory) and that the client saw in an earlier
      // run: every seq it resumes from names another message here, so it starts at the topic's oldest.
      const earlier = this.earlierHub.has(conn) && !this.mirrors;
      const startsAgain = (t: Topic): boolean => earlier && !t.durable && resume.has(t.name);
      const start = (t: Topic): number => {
        const r = resume.get(t.name);
        // A resume seq beyond what this topic ever gave out: the hub restarted without its history (a
        // topic not persisted), so its seqs began again: start at its oldest rather than skip them.
        if (r !== undefined) return startsAgain(t) || r > t.seqOf(t.visible) ? t.firstIndex : t.indexOf(r);
        switch (m.init) {
          case INIT_OLDEST:
            return t.firstIndex;
          case INIT_MOST_RECENT:
            return t.visible > t.firstIndex ? t.lastVisible : t.visible;
          case INIT_AWAIT_NEW:
            return t.visible;
          default:
            return t.indexOf(m.fromSeq);
        }
      };
      let matched: Topic[];
      if (wildcard) {
        matched = this.index.matching(m.pattern);
        this.checkPairs(matched.length, `subscription to ${m.pattern}`, "EZIPC_TOO_MANY_SUBSCRIPTIONS");
      } else {
        sub.only = this.topic(m.pattern, true);
        this.checkPairs(1, `subscription to ${m.pattern}`, "EZIPC_TOO_MANY_SUBSCRIPTIONS");
        matched = [sub.only];
      }
      subs.set(m.sid, sub);
      this.subscriptions++;
      registered = sub;
      if (wildcard) this.wildcards.add(m.pattern, sub);
      for (const t of matched) {
        this.addSubToTopic(sub, t);
        const cursor = start(t);
        sub.cursors.set(t, cursor);
        if (startsAgain(t) || (!resume.has(t.name) && (m.init === INIT_OLDEST || m.init === INIT_FROM_SEQ)))
          sub.noJump.add(t);
        if (cursor < t.visible) sub.ready.add(t);
      }
      // For a single topic, `ok.version` carries the seq the subscription starts at (for resuming later).
      const single = wildcard ? undefined : this.topics.get(m.pattern)!;
      const origin = single ? single.seqOf(sub.cursors.get(single)!) : 0n;
      sendTo(conn, this.protocol.encode("ok", { rid: m.rid, version: origin }));
      this.pump(sub);
    } catch (err) {
      if (!isEzipcError(err)) throw err;
      this.removeSub(registered); // an answered error leaves no subscription behind
      sendTo(conn, this.protocol.encode("error", { rid: m.rid, code: err.code, message: err.message }));
    }
  }

  private onCredit(conn: Connection, m: Msg<"credit">): void {
    const sub = this.byConn.get(conn)?.get(m.sid);
    if (!sub) return; // crossed an unsubscribe
    sub.credit = Math.min(sub.credit + m.n, 0xffffffff);
    this.pump(sub);
  }

  private removeSub(sub: Sub | undefined): void {
    if (!sub) return;
    if (this.byConn.get(sub.conn)?.delete(sub.sid)) this.subscriptions--;
    if (sub.only === null) this.wildcards.remove(sub.pattern, sub);
    for (const t of sub.cursors.keys()) if (this.subsOf.get(t)?.delete(sub)) this.pairs--;
    // A topic it held back may go on.
    if (this.holds.size > 0) for (const t of sub.cursors.keys()) if (this.holds.isHeld(t)) this.retryHeld(t);
    sub.cursors.clear();
    sub.behind.clear();
    sub.ready.clear();
    sub.noJump.clear();
  }

  private addSubToTopic(sub: Sub, t: Topic): void {
    let set = this.subsOf.get(t);
    if (!set) {
      set = new Set();
      this.subsOf.set(t, set);
    }
    if (!set.has(sub)) {
      set.add(sub);
      this.pairs++;
    }
  }

  /** Throws `code` if `more` (subscription, topic) pairs would take the hub over `maxSubscriptionTopics`. */
  private checkPairs(
    more: number,
    what: string,
    code: "EZIPC_TOO_MANY_SUBSCRIPTIONS" | "EZIPC_TOO_MANY_TOPICS",
  ): void {
    if (this.pairs + more <= this.limits.maxSubscriptionTopics) return;
    throw new EzipcError(
      code,
      `${what} would take the hub over its maximum of ${this.limits.maxSubscriptionTopics} (subscription, topic) pairs (maxSubscriptionTopics): wildcard subscriptions follow every topic they match`,
    );
  }

  /** Sends what `sub` has credit for, round-robin over its ready topics, until its queue is full. */
  private pump(sub: Sub): void {
    const conn = sub.conn;
    while (sub.credit > 0 && sub.ready.size > 0 && !sub.waitingDrain) {
      if (conn.state !== "open") return;
      const t = sub.ready.size === 1 && sub.only ? sub.only : firstOf(sub.ready);
      let cursor = sub.cursors.get(t)!;
      const atStart = sub.noJump.size > 0 && sub.noJump.delete(t);
      if (sub.iter === ITER_NEWEST && !atStart && t.lastVisible > cursor) cursor = t.lastVisible;
      if (cursor < t.firstIndex) {
        this.counters.gaps++;
        sendTo(
          conn,
          this.protocol.encode("gap", {
            sid: sub.sid,
            topic: t.name,
            first: t.seqOf(cursor),
            last: t.seqOf(t.firstIndex - 1),
          }),
        );
        cursor = t.firstIndex;
      }
      const e = cursor < t.visible ? t.locate(cursor) : undefined;
      if (!e) {
        sub.cursors.set(t, cursor);
        sub.ready.delete(t);
        continue;
      }
      // The rest of the entry from the cursor, as far as the credit goes: the stored records as they are.
      const k = cursor - e.first;
      const n = Math.min(e.count - k, sub.credit);
      let head = e.head;
      let records = e.records;
      let more = e.more ?? undefined;
      if (k !== 0 || n !== e.count) {
        // Part of the entry: views of the records it keeps, in pieces or not (no copy).
        const part = recordsSlice(e, k, n);
        head = sliceHead(head, n, t.seqOf(cursor));
        records = part.first;
        more = part.rest;
      }
      // sendParts copies the head before it returns: patching the shared one is safe.
      head.writeUInt32LE(sub.sid, MESSAGE_SID_OFFSET);
      sub.credit -= n;
      cursor += n;
      sub.cursors.set(t, cursor);
      if (cursor >= t.visible) {
        sub.ready.delete(t);
        if (sub.behind.size > 0) sub.behind.delete(t); // caught up
      } else if (sub.ready.size > 1) {
        // Round robin: a topic with more to send goes to the back.
        sub.ready.delete(t);
        sub.ready.add(t);
      }
      this.counters.delivered += n;
      t.delivered += n;
      if (this.holds.size > 0 && this.holds.isHeld(t)) this.retryHeld(t);
      let sent: boolean;
      try {
        sent = sendPartsTo(conn, head, records, more);
      } catch (err) {
        // Over this connection's frame limit (history kept by a run with a larger maxFrameBytes): the
        // subscriber is told it missed them, and nobody else is affected.
        if (!isEzipcError(err, "EZIPC_MESSAGE_TOO_LARGE")) throw err;
        this.counters.delivered -= n;
        t.delivered -= n;
        this.counters.gaps++;
        const first = t.seqOf(cursor - n);
        sent = sendTo(
          conn,
          this.protocol.encode("gap", { sid: sub.sid, topic: t.name, first, last: first + BigInt(n - 1) }),
        );
      }
      if (!sent) {
        sub.waitingDrain = true;
        conn.drain().then(
          () => {
            sub.waitingDrain = false;
            this.pump(sub);
          },
          () => {},
        );
      }
    }
  }

  // ---- topics ---------------------------------------------------------------------------------------

  /** The topic named `name`, created (and announced) if `create`. Throws `EZIPC_TOO_MANY_TOPICS`. */
  private topic(name: string, create: boolean): Topic {
    let t = this.topics.get(name);
    if (t || !create) return t!;
    // The topic announcing new topics first: a failure to make it leaves no topic unannounced.
    const announce = name === NEW_TOPICS ? null : this.topic(NEW_TOPICS, true);
    if (this.topics.size >= this.limits.maxTopics) {
      throw new EzipcError(
        "EZIPC_TOO_MANY_TOPICS",
        `the hub holds its maximum of ${this.limits.maxTopics} topics`,
      );
    }
    // The wildcard subscriptions that will follow it, counted before anything is made.
    const followers = this.wildcards.matching(name);
    this.checkPairs(followers.length, `topic ${name}`, "EZIPC_TOO_MANY_TOPICS");
    t = new Topic(name, { maxBytes: this.limits.topicMaxBytes, maxCount: this.limits.topicMaxCount });
    this.topics.set(name, t);
    this.index.add(name, t);
    if (this.mirrors && !name.startsWith("$hub.")) this.mirrors.follow(t);
    for (const sub of followers) {
      this.addSubToTopic(sub, t);
      sub.cursors.set(t, t.next);
    }
    if (announce) this.announce(announce, Buffer.from(name, "utf8"));
    return t;
  }

  /** The first `limit` topics by name matching `match` that `conn` may subscribe to (monitor view). */
  describeTopics(
    conn: Connection | null,
    match: (name: string) => boolean,
    limit: number,
  ): { topics: TopicView[]; more: number } {
    const may = conn ? (name: string) => match(name) && this.permits(conn, "subscribe", name) : match;
    return describeTopics(this.listed, this.topics.values(), may, limit);
  }

  /** How many subscriptions `conn` has. */
  subscriptionCount(conn: Connection): number {
    return this.byConn.get(conn)?.size ?? 0;
  }

  /** The hub's budget for listings (listing-budget.ts), shared with the other capabilities; set by the hub. */
  listings = new ListingBudget(0);

  /** What the topic listings (topic-listings.ts) read. */
  private readonly listed: TopicSource = ((hub: PubSub) => ({
    matching: (pattern: string) => (pattern === "" ? hub.topics.values() : hub.index.matching(pattern)),
    mayList: (conn: Connection, name: string) => hub.permits(conn, "subscribe", name),
    subscribers: (t: Topic) => hub.subsOf.get(t)?.size ?? 0,
    get listings() {
      return hub.listings;
    },
    get maxFrameBytes() {
      return hub.limits.maxFrameBytes;
    },
  }))(this);

  private onTopics(conn: Connection, m: Msg<"topics">): void {
    try {
      if (m.pattern !== "") topicMatcher(m.pattern); // (throws EZIPC_INVALID_TOPIC)
      const topics = listTopics(this.listed, conn, m.pattern);
      sendTo(conn, this.protocol.encode("topicList", { rid: m.rid, topics }));
    } catch (err) {
      if (!isEzipcError(err)) throw err;
      sendTo(conn, this.protocol.encode("error", { rid: m.rid, code: err.code, message: err.message }));
    }
  }

  private onTopicsPage(conn: Connection, m: PageMsg<"topicsPage">): void {
    try {
      if (m.pattern !== "") topicMatcher(m.pattern);
      const page = topicsPage(this.listed, conn, m.pattern, m.after, m.maxBytes);
      sendTo(conn, this.protocol.encode("topicPage", { rid: m.rid, ...page }));
    } catch (err) {
      if (!isEzipcError(err)) throw err;
      sendTo(conn, this.protocol.encode("error", { rid: m.rid, code: err.code, message: err.message }));
    }
  }

  private onTopicConfig(conn: Connection, m: Msg<"topicConfig">): void {
    try {
      checkTopic(m.topic);
      if (this.mirrors) {
        this.mirrors.configure(conn, m);
        return;
      }
      if (m.persist && !this.store) {
        throw new EzipcError(
          "EZIPC_BAD_REQUEST",
          "this hub has no store (run it with --data) to persist topics in",
        );
      }
      const t = this.topic(m.topic, true);
      t.limits = { maxBytes: m.maxBytes, maxCount: m.maxCount };
      if (t.over) this.bound(t, null);
      if (m.persist && !t.durable) {
        t.durable = true;
        for (const e of t.retained())
          this.pendingSave.push({ topic: t.name, seq: t.seqOf(e.first), entry: e });
      }
      if (t.durable) this.store!.saveTopic(t.name, t.limits);
      this.flush();
      const ok = () => sendTo(conn, this.protocol.encode("ok", { rid: m.rid, version: 0n }));
      // A persisted topic's settings are answered once synced (after a failed sync too: they are in the
      // store, and the failing store refuses new durable publishes meanwhile).
      if (t.durable && this.store?.afterDurable) this.store.afterDurable(ok);
      else ok();
    } catch (err) {
      if (!isEzipcError(err)) throw err;
      sendTo(conn, this.protocol.encode("error", { rid: m.rid, code: err.code, message: err.message }));
    }
  }

  /** Clustered: follows the cluster's topics; resolves once every existing one is mirrored to its end. */
  startReplica(): Promise<void> {
    return this.mirrors?.start() ?? Promise.resolve();
  }
}
