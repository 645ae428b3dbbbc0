/**
 * The client part of pub/sub: acknowledged and fire-and-forget publishes (batched per tick into one
 * `publish` frame, sent before any other frame so the hub sees every message in call order), subscriptions
 * with their credit, the hot path that parses `message` frames in place, and the resubscription with
 * per-topic resume points after a reconnect, and publisher flow control: while the hub holds a topic
 * (`publishFlow`, publisher-holds.ts), `publishAndForget` to it returns false and `publish` and `drain`
 * wait. The hub side is pubsub-hub.ts.
 */
import { EzipcError } from "../errors.js";
import { allPages } from "../listing-pages.js";
import {
  type ClientLink,
  type ClientPart,
  jsonSafe,
  type MessageHandlers,
  unexpected,
  type WireMessages,
} from "../protocol/client-link.js";
import type { coreMessages } from "../protocol/core-messages.js";
import { checkForwardable, headerList } from "../protocol/fields.js";
import { checkTopic, topicMatcher } from "../protocol/names.js";
import { checkRange } from "../ranges.js";
import { COPY_THRESHOLD_BYTES } from "../transport/frame-writer.js";
import type { Connection } from "../transport/types.js";
import { MESSAGE_INDEX, PublishBatcher, parseMessage, parseMessagePieces } from "./fast-frames.js";
import type { flowMessages, pubsubMessages, topicPageMessages } from "./pubsub-messages.js";
import { encodeHeaderList, encodeHeaders, lebSize, recordSize } from "./records.js";
import {
  type Gap,
  type SubscribeOptions,
  Subscription,
  type SubscriptionHost,
  subscribeDefaults,
  type TopicMessage,
} from "./subscription.js";

/** What the hub may send this part. */
export type PubSubMessage = WireMessages<
  typeof coreMessages & typeof pubsubMessages & typeof flowMessages & typeof topicPageMessages
>;

/** One topic as `topics()` reports it. */
export interface TopicInfo {
  name: string;
  firstSeq: bigint;
  lastSeq: bigint;
  count: number;
  bytes: number;
  subscribers: number;
  persist: boolean;
}

/** Publish options. */
export interface PublishOptions {
  headers?: Record<string, string>;
}

/** A payload: bytes, or a string sent as UTF-8. */
export type Payload = Uint8Array | string;

function payloadBytes(p: Payload): Uint8Array {
  if (typeof p === "string") return Buffer.from(p, "utf8");
  if (p instanceof Uint8Array) return p;
  throw new TypeError("a payload is a Uint8Array or a string");
}

const INIT_CODES = { oldest: 0, mostRecent: 1, awaitNew: 2 } as const;
const EMPTY_HEADER_LIST = encodeHeaders([]);

export class PubSubClient implements ClientPart<PubSubMessage> {
  /** Topics already validated, as frame bytes (bounded). */
  private readonly topicBytes = new Map<string, Buffer>();
  /** Fire-and-forget publishes waiting to leave as one frame, for `batchConn`. */
  private readonly batcher = new PublishBatcher(
    (frame) => {
      const conn = this.batchConn;
      this.batchOk = conn !== null && conn.state === "open" && conn.send(frame);
      return this.batchOk;
    },
    COPY_THRESHOLD_BYTES,
    undefined,
    () => this.batchConn?.released?.() === true,
  );
  private batchConn: Connection | null = null;
  /** What the connection said to the last batch sent (false: over its high-water mark). */
  private batchOk = true;
  private batchScheduled = false;
  private readonly flushTick = () => {
    this.batchScheduled = false;
    this.beforeSend();
  };
  /** Topics the hub asked this client to stop publishing to (`publishFlow`), until it says go on. */
  private readonly held = new Set<string>();
  /** Waiting for `held` to empty (or the connection to close). */
  private heldWaiters: (() => void)[] = [];
  private readonly subs = new Map<number, Subscription>();
  /** Where each concrete subscription started (its topic's next seq then), for resuming before any message. */
  private readonly subStart = new Map<Subscription, bigint>();
  private nextSid = 1;
  private readonly subHost: SubscriptionHost = {
    // Sent whenever connected, also during a resync: a credit the hub gets before the subscription is
    // re-made is ignored there, and re-subscribing resets the subscription's outstanding credit.
    credit: (sub, n) => this.link.send("credit", { sid: sub.sid, n }),
    unsubscribe: (sub) => {
      this.subs.delete(sub.sid);
      this.subStart.delete(sub);
      if (this.link.ready) this.link.send("unsubscribe", { sid: sub.sid });
    },
  };

  readonly handles: MessageHandlers<PubSubMessage> = {
    publishFlow: (b) => {
      if (b.held) this.held.add(b.topic);
      else if (this.held.delete(b.topic) && this.held.size === 0) this.wakeHeld();
    },
    gap: (b) => {
      const g: Gap = { topic: b.topic, first: b.first, last: b.last };
      this.subs.get(b.sid)?.gap(g);
      return;
    },
  };

  constructor(private readonly link: ClientLink<PubSubMessage>) {}

  readonly frameIndex = MESSAGE_INDEX;

  /** The hot path: a `message` frame is parsed in place (a malformed one falls through to the decoder). */
  onFrame(frame: Buffer): boolean {
    const m = parseMessage(frame);
    if (!m) return false;
    this.subs.get(m.sid)?.deliver(m.messages);
    return true;
  }

  /** {@link onFrame} for a `message` frame that arrived in pieces: payloads are views into them. */
  onFramePieces(pieces: Buffer[]): boolean {
    const m = parseMessagePieces(pieces);
    if (!m) return false;
    this.subs.get(m.sid)?.deliver(m.messages);
    return true;
  }

  /** Sends the fire-and-forget publishes waiting (before any other frame, to keep the order). */
  beforeSend(): void {
    if (this.batcher.pending > 0) this.batcher.flush();
  }

  /** See HubClient.publish. */
  async publish(
    topic: string,
    payload: Payload,
    options: PublishOptions = {},
  ): Promise<{ seq: bigint; time: number }> {
    checkTopic(topic);
    if (this.held.has(topic)) await this.whileHeld(topic);
    const r = await this.link.request("publish", {
      topic,
      records: [{ headers: headerList(options.headers), payload: payloadBytes(payload) }],
    });
    if (r.type !== "published") throw unexpected(r);
    return jsonSafe({ seq: r.body.seq, time: r.body.time });
  }

  /** See HubClient.publishAndForget. */
  publishAndForget(topic: string, payload: Payload, options?: PublishOptions): boolean {
    // (A publisher's usual case: the topic of its last publish, without the map's lookup.)
    const topicBytes = topic === this.lastTopic ? this.lastTopicBytes : this.topicFrameBytes(topic);
    const conn = this.link.sendable();
    if (conn === null) throw new EzipcError("EZIPC_CONNECTION_CLOSED", "not connected to the hub");
    const bytes = typeof payload === "string" ? Buffer.from(payload, "utf8") : payloadBytes(payload);
    const headers = options?.headers ? encodeHeaderList(options.headers) : EMPTY_HEADER_LIST;
    // Alone in a frame (u16 index, u32 rid, topic, one record): over the forward limit, refused here.
    const alone =
      2 + 4 + lebSize(topicBytes.length) + topicBytes.length + 1 + recordSize(headers, bytes.length);
    if (alone > this.link.forwardLimit)
      checkForwardable(`publish to ${topic}`, alone, this.link.forwardLimit);
    if (this.batchConn !== conn) {
      this.batcher.discard();
      this.batchConn = conn;
      this.batchOk = true;
    }
    this.batcher.add(topicBytes, headers, bytes);
    if (!this.batchScheduled) {
      this.batchScheduled = true;
      process.nextTick(this.flushTick);
    }
    return this.batchOk && (this.held.size === 0 || !this.held.has(topic));
  }

  /** See HubClient.drain. */
  async drain(): Promise<void> {
    await this.link.whenReady();
    this.link.beforeSend();
    await this.link.conn?.drain();
    this.batchOk = true;
    while (this.held.size > 0) await new Promise<void>((resolve) => this.heldWaiters.push(resolve));
  }

  /** See HubClient.subscribe. */
  async subscribe(
    pattern: string,
    options: SubscribeOptions = {},
    handler?: (m: TopicMessage) => unknown,
  ): Promise<Subscription> {
    const { wildcard } = topicMatcher(pattern);
    const { init, iter, prefetch, prefetchBytes } = subscribeDefaults(options);
    await this.link.whenReady();
    let sid = this.nextSid;
    while (this.subs.has(sid)) sid = sid >= 0xffffffff ? 1 : sid + 1;
    this.nextSid = sid >= 0xffffffff ? 1 : sid + 1;
    const sub = new Subscription(
      sid,
      pattern,
      init,
      iter,
      prefetch,
      this.subHost,
      handler,
      options.onGap,
      prefetchBytes,
    );
    this.subs.set(sid, sub);
    try {
      const start = await this.sendSubscribe(this.link.conn!, sub, []);
      if (!wildcard) this.subStart.set(sub, start);
    } catch (err) {
      this.subs.delete(sid);
      throw err;
    }
    return sub;
  }

  /** See HubClient.topics. */
  async topics(pattern = ""): Promise<TopicInfo[]> {
    if (!this.link.hubFeatures.has("pages")) {
      const r = await this.link.request("topics", { pattern });
      if (r.type !== "topicList") throw unexpected(r);
      return r.body.topics.map((t) => ({ ...t }));
    }
    // A page at a time (each answer a bounded frame), at the rate the hub's listing budget allows.
    return allPages(
      async (after) => {
        const r = await this.link.request("topicsPage", { pattern, after, maxBytes: this.link.forwardLimit });
        if (r.type !== "topicPage") throw unexpected(r);
        return { entries: r.body.topics.map((t) => ({ ...t })), more: r.body.more };
      },
      (t) => t.name,
    );
  }

  /** See HubClient.configureTopic. */
  async configureTopic(
    topic: string,
    options: { maxBytes?: number; maxCount?: number; persist?: boolean },
  ): Promise<void> {
    checkTopic(topic);
    // (out of range: a RangeError naming the option, as on shm://, not the encoder's error)
    if (options.maxBytes !== undefined) checkRange("maxBytes", options.maxBytes, 0, 0xffffffff);
    if (options.maxCount !== undefined) checkRange("maxCount", options.maxCount, 0, 0xffffffff);
    const r = await this.link.request("topicConfig", {
      topic,
      maxBytes: options.maxBytes ?? 16 * 1024 * 1024,
      maxCount: options.maxCount ?? 0,
      persist: options.persist ?? false,
    });
    if (r.type !== "ok") throw unexpected(r);
  }

  /** After a welcome: re-makes every subscription, resuming each topic after the last seq it received. */
  async resync(conn: Connection): Promise<{ settled: Promise<unknown> }> {
    const resubscribed = [...this.subs.values()].map((sub) => {
      const resume = [...sub.lastSeq].map(([topic, seq]) => ({ topic, seq: seq + 1n }));
      const start = this.subStart.get(sub);
      if (start !== undefined && !sub.lastSeq.has(sub.pattern))
        resume.push({ topic: sub.pattern, seq: start });
      return this.sendSubscribe(conn, sub, resume).catch((err: EzipcError) => {
        if (conn !== this.link.conn) return;
        this.subs.delete(sub.sid);
        sub.fail(err);
      });
    });
    return { settled: Promise.all(resubscribed) };
  }

  /** The client closes: every subscription ends (an iterator finishes, as after unsubscribe). */
  close(): void {
    for (const sub of [...this.subs.values()]) sub.unsubscribe();
    this.wakeHeld();
  }

  connectionClosed(conn: Connection, _error: EzipcError, current: boolean): void {
    if (this.batchConn === conn) this.batcher.discard();
    if (!current) return;
    // The next connection starts unheld: the hub tells it again if it must wait.
    this.held.clear();
    this.wakeHeld();
  }

  /** Resolves once the hub lets this client publish to `topic` again (or the connection closes). */
  private async whileHeld(topic: string): Promise<void> {
    while (this.held.has(topic)) await new Promise<void>((resolve) => this.heldWaiters.push(resolve));
  }

  private wakeHeld(): void {
    const waiters = this.heldWaiters;
    this.heldWaiters = [];
    for (const w of waiters) w();
  }

  private async sendSubscribe(
    conn: Connection,
    sub: Subscription,
    resume: { topic: string; seq: bigint }[],
  ): Promise<bigint> {
    const credit = sub.resetCredit();
    const init = sub.init;
    const r = await this.link.requestOn(conn, "subscribe", {
      sid: sub.sid,
      pattern: sub.pattern,
      init: typeof init === "object" ? 3 : INIT_CODES[init],
      fromSeq: typeof init === "object" ? init.fromSeq : 0n,
      iter: sub.iter === "newest" ? 1 : 0,
      credit,
      resume,
    });
    if (r.type !== "ok") throw unexpected(r);
    return r.body.version;
  }

  private topicFrameBytes(topic: string): Buffer {
    let b = this.topicBytes.get(topic);
    if (!b) {
      checkTopic(topic);
      if (this.topicBytes.size >= 10_000) this.topicBytes.clear();
      b = Buffer.from(topic, "latin1");
      this.topicBytes.set(topic, b);
    }
    this.lastTopic = topic;
    this.lastTopicBytes = b;
    return b;
  }
  /** The topic {@link topicFrameBytes} last returned, and its bytes. */
  private lastTopic = "";
  private lastTopicBytes: Buffer = Buffer.alloc(0);
}
