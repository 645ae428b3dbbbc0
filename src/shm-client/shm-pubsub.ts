/**
 * Pub/sub over shared memory, with the hub client's API and semantics: a publish appends to the topic's
 * ring (under its robust lock) and wakes parked readers; a subscription is a cursor into the ring, read by
 * the subscribing process itself. Nobody is a server: the topic's file is the meeting point, created by
 * whoever comes first.
 *
 * As on the hub, a publish that would evict what an `iter: next` subscriber has not read waits for it (at
 * most `holdPublishersMs`, shm-holds.ts), then the reader gets a `gap`. Subscriptions of one process share
 * their reads (shared-reads.ts). Differences from the hub (docs/shm.md): patterns with wildcards are
 * refused with `EZIPC_NOT_SUPPORTED`; a topic's bounds are fixed when its file is created.
 */
import { EzipcError } from "../errors.js";
import { log } from "../log.js";
import { topicMatcher } from "../protocol/names.js";
import type { PublishOptions, TopicInfo } from "../pubsub/pubsub-client.js";
import {
  type SubscribeOptions,
  Subscription,
  type SubscriptionHost,
  subscribeDefaults,
  type TopicMessage,
} from "../pubsub/subscription.js";
import { checkRange } from "../ranges.js";
import { MAX_RING_BYTES, MIN_RING_BYTES } from "../shm/layout.js";
import { PackedMessages, packetBytes } from "../shm/packed.js";
import { type RingCursor, RingMessage, type RingState } from "../shm/ring.js";
import { isUnusableFile } from "../shm/shm-file.js";
import { Waker } from "../shm/waker.js";
import { decodeMeta, encodeMeta } from "./meta.js";
import { RingFollower } from "./ring-follower.js";
import { PublisherHolds } from "./shm-holds.js";
import type { LocalTopic, ShmNamespace } from "./shm-namespace.js";

/** Fire-and-forget publishes written together at most (bytes). */
const BATCH_BYTES = 256 * 1024;

/** A payload: bytes, or a string sent as UTF-8. */
export type Payload = Uint8Array | string;

function payloadBytes(p: Payload): Uint8Array {
  if (typeof p === "string") return Buffer.from(p, "utf8");
  if (p instanceof Uint8Array) return p;
  throw new TypeError("a payload is a Uint8Array or a string");
}

/** A message read from shared memory (headers decoded when first asked for). */
class ShmMessage extends RingMessage implements TopicMessage {
  private decoded: { publisher: string; headers: Record<string, string> } | undefined;

  constructor(
    readonly topic: string,
    seq: number,
    body: Buffer,
    metaLength: number,
  ) {
    super(seq, body, metaLength);
  }

  get seq(): bigint {
    return BigInt(this.seqNumber);
  }
  get payload(): Uint8Array {
    return this.body;
  }
  get publisher(): string {
    this.decoded ??= decodeMeta(this.meta);
    return this.decoded.publisher;
  }
  get headers(): Record<string, string> {
    this.decoded ??= decodeMeta(this.meta);
    return this.decoded.headers;
  }
  text(): string {
    return this.body.toString("utf8");
  }
  json<T = unknown>(): T {
    return JSON.parse(this.text()) as T;
  }
}

/** One subscription's reading of one topic: as much as the subscription asked for (its credit). */
class ShmReader extends RingFollower<ShmMessage> implements SubscriptionHost {
  sub!: Subscription;
  /** Messages the subscription asked for and has not been given. */
  private owed = 0;
  /** `oldest`/`fromSeq` with `newest`: the first delivery starts where asked, later ones jump. */
  private noJump: boolean;

  constructor(
    ns: ShmNamespace,
    topic: LocalTopic,
    cursor: RingCursor,
    private readonly newest: boolean,
    noJump: boolean,
    private readonly onClose: (r: ShmReader) => void,
  ) {
    super(ns, topic, cursor);
    this.noJump = noJump;
    this.shareReads();
    const name = topic.name;
    this.make = (seq, body, ml) => new ShmMessage(name, seq, body, ml);
  }

  begin(sub: Subscription): void {
    this.sub = sub;
    this.owed = sub.resetCredit();
    this.start();
  }

  /** SubscriptionHost: the subscription asks for `n` more. */
  credit(_sub: Subscription, n: number): void {
    this.owed += n;
    this.schedule();
  }

  unsubscribe(): void {
    this.close();
  }

  override close(): void {
    if (this.closed) return;
    super.close();
    this.onClose(this);
  }

  protected limit(): number {
    return this.owed;
  }

  /** `next` subscribers hold publishers; `newest` ones only want the latest. */
  override get holds(): boolean {
    return !this.newest;
  }

  protected override beforeRead(): void {
    if (!this.newest) return;
    if (this.noJump) {
      this.noJump = false;
      return;
    }
    const s = this.topic.ring.state();
    if (s.next > s.tailSeq && s.next - 1 > this.cursor.seq) {
      this.cursor.seq = s.next - 1;
      this.cursor.offset = s.last;
    }
  }

  protected deliver(ms: readonly ShmMessage[]): void {
    this.owed -= ms.length;
    this.sub.deliver(ms);
  }

  protected gap(first: number, last: number): void {
    this.sub.gap({ topic: this.topic.name, first: BigInt(first), last: BigInt(last) });
  }

  protected failed(err: EzipcError): void {
    this.onClose(this);
    this.sub.fail(err);
  }
}

export class ShmPubSub {
  private readonly publisherBytes: Buffer;
  private nextSid = 1;
  private readonly readers = new Set<ShmReader>();
  private closed = false;

  private readonly holds: PublisherHolds;

  constructor(
    private readonly ns: ShmNamespace,
    publisher: string,
  ) {
    this.holds = new PublisherHolds(ns, ns.holdPublishersMs);
    this.publisherBytes = Buffer.from(publisher, "utf8").subarray(0, 255);
    this.plainMeta = encodeMeta(this.publisherBytes, undefined);
  }

  /** The meta of a message without headers is the same every time: made once. */
  private readonly plainMeta: Buffer;

  private meta(headers: Record<string, string> | undefined): Buffer {
    if (!headers || Object.keys(headers).length === 0) return this.plainMeta;
    return encodeMeta(this.publisherBytes, headers);
  }

  private target(topic: string): LocalTopic {
    if (this.closed) throw closedError();
    if (topic === this.lastTopic && this.lastTarget !== null) return this.lastTarget; // (a publisher's usual case)
    if (topic.startsWith("$")) {
      throw new EzipcError("EZIPC_PERMISSION_DENIED", `${topic}: $… topics are reserved`);
    }
    const t = this.ns.topic(topic);
    this.lastTopic = topic;
    this.lastTarget = t;
    return t;
  }

  /** The last topic published to, and its file (the namespace keeps a topic's file while it is open). */
  private lastTopic = "";
  private lastTarget: LocalTopic | null = null;

  /**
   * See HubClient.publish: resolves once the message is in shared memory — at once, or, while a `next`
   * subscriber has not read what the ring would evict, once it has (at most `holdPublishersMs`).
   * Fire-and-forget publishes made before it are written first.
   */
  publish(
    topic: string,
    payload: Payload,
    options: PublishOptions = {},
  ): Promise<{ seq: bigint; time: number }> {
    try {
      const t = this.target(topic);
      const meta = this.meta(options.headers);
      const body = payloadBytes(payload);
      t.ring.checkFits(packetBytes(meta.length, body.length));
      this.flush();
      return new Promise((resolve, reject) => {
        const done = (r: { seq: number; time: number }) => resolve({ seq: BigInt(r.seq), time: r.time });
        const time = Date.now();
        const seq = this.holds.append(t, meta, body, time, done, reject);
        if (seq >= 0) done({ seq, time });
      });
    } catch (err) {
      return Promise.reject(err);
    }
  }

  /**
   * See HubClient.publishAndForget: consecutive calls to one topic within a tick are written together,
   * under one lock, at the end of the tick (or sooner: at 256 KiB, another topic, an acknowledged publish,
   * `drain`). The payload is copied at once. False means the topic's publishes wait in this process behind
   * a slow `next` subscriber: wait for {@link drain} before publishing more. Throws what made the last
   * end-of-tick write of this client's batch fail (e.g. `EZIPC_SHM_FULL`), once; that batch is lost.
   */
  publishAndForget(topic: string, payload: Payload, options?: PublishOptions): boolean {
    this.throwDeferred();
    const t = this.target(topic);
    const meta = this.meta(options?.headers);
    const src = payloadBytes(payload);
    t.ring.checkFits(packetBytes(meta.length, src.length));
    if (this.batchTopic !== t) {
      this.flush();
      this.batchTopic = t;
    }
    this.batch.add(meta, src);
    if (this.batch.bytes >= BATCH_BYTES) this.flush();
    else if (!this.flushScheduled) {
      this.flushScheduled = true;
      process.nextTick(this.flushSoon);
    }
    return t.held === null;
  }

  private batchTopic: LocalTopic | null = null;
  private readonly batch = new PackedMessages();
  private flushScheduled = false;
  private readonly flushSoon = (): void => {
    this.flushScheduled = false;
    try {
      this.flush();
    } catch (err) {
      // At the end of the tick nobody is there to catch it: the batch is lost, and the next
      // publishAndForget or drain of this client reports why (the process goes on).
      this.deferred ??= err as Error;
      log("warn", "shm", "fire-and-forget publishes could not be written", { error: err });
    }
  };

  /** Why the last end-of-tick write of fire-and-forget publishes failed, until reported. */
  private deferred: Error | null = null;

  private throwDeferred(): void {
    const err = this.deferred;
    if (err === null) return;
    this.deferred = null;
    throw err;
  }

  /** Writes the fire-and-forget publishes waiting for the end of the tick. */
  private flush(): void {
    const t = this.batchTopic;
    if (!t || this.batch.count === 0) return;
    try {
      this.holds.appendBatch(t, this.batch, Date.now());
    } finally {
      this.batch.clear();
    }
  }

  /**
   * Resolves once no publish of this client waits (for the end of the tick, or a slow subscriber). Rejects
   * with what made the last end-of-tick write of fire-and-forget publishes fail, once (see publishAndForget).
   */
  drain(): Promise<void> {
    try {
      if (this.closed) throw closedError();
      this.throwDeferred();
      this.flush();
    } catch (err) {
      return Promise.reject(err);
    }
    return this.holds.drain();
  }

  /** See HubClient.subscribe. Wildcard patterns: `EZIPC_NOT_SUPPORTED`. */
  async subscribe(
    pattern: string,
    options: SubscribeOptions = {},
    handler?: (m: TopicMessage) => unknown,
  ): Promise<Subscription> {
    if (this.closed) throw closedError();
    const { wildcard } = topicMatcher(pattern);
    if (wildcard) {
      throw new EzipcError(
        "EZIPC_NOT_SUPPORTED",
        `${pattern}: shm:// subscribes to one topic at a time (no wildcards); subscribe to each topic, or use a hub`,
      );
    }
    const { init, iter, prefetch, prefetchBytes } = subscribeDefaults(options);
    const t = this.ns.topic(pattern);
    const s = t.ring.state();
    const cursor: RingCursor =
      init === "oldest"
        ? { seq: s.tailSeq, offset: s.tail }
        : init === "mostRecent"
          ? s.next > s.tailSeq
            ? { seq: s.next - 1, offset: s.last }
            : { seq: s.next, offset: s.head }
          : init === "awaitNew"
            ? { seq: s.next, offset: s.head }
            : { seq: Math.max(1, Number(init.fromSeq)), offset: -1 };
    const noJump = init === "oldest" || typeof init === "object";
    const reader = new ShmReader(this.ns, t, cursor, iter === "newest", noJump, (r) =>
      this.readers.delete(r),
    );
    const sub = new Subscription(
      this.nextSid++,
      pattern,
      init,
      iter,
      prefetch,
      reader,
      handler,
      options.onGap,
      prefetchBytes,
    );
    this.readers.add(reader);
    reader.begin(sub);
    return sub;
  }

  /** See HubClient.topics: every topic file of the namespace matching `pattern`. */
  async topics(pattern = ""): Promise<TopicInfo[]> {
    if (this.closed) throw closedError();
    const match = pattern === "" ? () => true : topicMatcher(pattern).match;
    const out: TopicInfo[] = [];
    for (const name of this.ns.topicNames()) {
      if (!match(name)) continue;
      let t: LocalTopic | null;
      let s: RingState;
      try {
        t = this.ns.existing(name);
        if (!t) continue;
        s = t.ring.state();
      } catch (err) {
        if (!isUnusableFile(err)) throw err;
        log("warn", "shm", `topics: ${name} left out`, { error: (err as Error).message });
        continue; // one file that is not a usable topic does not hide the others
      }
      out.push({
        name,
        firstSeq: BigInt(s.tailSeq),
        lastSeq: BigInt(s.next - 1),
        count: s.next - s.tailSeq,
        bytes: s.used,
        subscribers: liveReaders(t),
        persist: false,
      });
    }
    return out;
  }

  /**
   * Creates `topic`'s file with these bounds (`maxBytes`: its ring). A topic whose file exists keeps its
   * bounds: asking for other ones fails with `EZIPC_BAD_REQUEST`. `persist` is not available.
   */
  async configureTopic(
    topic: string,
    options: { maxBytes?: number; maxCount?: number; persist?: boolean },
  ): Promise<void> {
    if (this.closed) throw closedError();
    if (options.persist) {
      throw new EzipcError("EZIPC_NOT_SUPPORTED", "shm:// topics live in memory only (persist needs a hub)");
    }
    const { maxBytes, maxCount } = options;
    if (maxBytes !== undefined) checkRange("maxBytes", maxBytes, MIN_RING_BYTES, MAX_RING_BYTES);
    if (maxCount !== undefined) checkRange("maxCount", maxCount, 0, 0xffffffff);
    const t = this.ns.topic(topic, { ringBytes: options.maxBytes, maxCount: options.maxCount });
    const f = t.ring.file;
    if (
      (options.maxBytes !== undefined && f.ringBytes !== ((options.maxBytes + 7) & ~7)) ||
      (options.maxCount !== undefined && f.maxCount !== options.maxCount)
    ) {
      throw new EzipcError(
        "EZIPC_BAD_REQUEST",
        `${topic} exists with a ring of ${f.ringBytes} bytes and maxCount ${f.maxCount}; a shm:// topic's bounds are fixed when it is created`,
      );
    }
  }

  close(): void {
    try {
      this.flush(); // what was published before close() goes out
    } catch {}
    this.closed = true;
    this.holds.close(closedError());
    for (const r of [...this.readers]) r.sub.unsubscribe(); // (its iterator finishes, as on a hub)
  }
}

function closedError(): EzipcError {
  return new EzipcError("EZIPC_CONNECTION_CLOSED", "this shm:// client is closed");
}

function liveReaders(t: LocalTopic): number {
  return Waker.liveReaders(t.ring.file);
}
