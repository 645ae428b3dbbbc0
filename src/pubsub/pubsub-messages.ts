/**
 * The pub/sub messages of the hub protocol (feature "pubsub"), wire indexes from {@link PUBSUB_BASE}, and
 * publisher flow control (feature "flow", from {@link FLOW_BASE}).
 * `publish` and `message` also have hand-written codecs in fast-frames.ts (a test checks both agree).
 */
import { t } from "../codec/schema.js";
import { key, records, str } from "../protocol/fields.js";

/** A topic in a listing (`topicList`, `topicPage`). */
const listedTopic = t.struct({
  name: key,
  firstSeq: t.u64,
  lastSeq: t.u64,
  count: t.u32,
  bytes: t.f64,
  subscribers: t.u32,
  persist: t.bool,
});

export const PUBSUB_BASE = 23;
export const pubsubMessages = {
  /**
   * c→h: publish one or more messages to `topic`, in order; `rid` 0 asks for no acknowledgement (clients
   * batch fire-and-forget publishes this way).
   */
  publish: t.struct({ rid: t.u32, topic: key, records }),
  /**
   * h→c: the publish was stored; `seq` is its first message's (after it was made durable, for a persisted
   * topic).
   */
  published: t.struct({ rid: t.u32, seq: t.u64, time: t.f64 }),
  /**
   * c→h: subscribe `sid` (chosen by the client) to a topic or pattern. init: 0 oldest, 1 mostRecent,
   * 2 awaitNew, 3 fromSeq; iter: 0 next, 1 newest; `credit`: messages the hub may send before more credit;
   * `resume`: per-topic next seq, overriding init (after a reconnect). Replied with `ok`.
   */
  subscribe: t.struct({
    rid: t.u32,
    sid: t.u32,
    pattern: key,
    init: t.u8,
    fromSeq: t.u64,
    iter: t.u8,
    credit: t.u32,
    resume: t.array(t.struct({ topic: key, seq: t.u64 }), { maxLength: 100_000 }),
  }),
  /**
   * h→c: consecutive messages of `topic` for subscription `sid`, from one publish: the first has `seq`,
   * the next seq + 1, and so on; all share the publish time and publisher.
   */
  message: t.struct({
    sid: t.u32,
    topic: key,
    seq: t.u64,
    time: t.f64,
    publisher: str,
    records,
  }),
  /** h→c: messages first..last of `topic` were evicted before `sid` got them. */
  gap: t.struct({ sid: t.u32, topic: key, first: t.u64, last: t.u64 }),
  /** c→h: `sid` may receive `n` more messages. */
  credit: t.struct({ sid: t.u32, n: t.u32 }),
  /** c→h: end subscription `sid` (no reply). */
  unsubscribe: t.struct({ sid: t.u32 }),
  /** c→h: list topics matching a pattern (empty: all). */
  topics: t.struct({ rid: t.u32, pattern: t.string({ maxBytes: 255 }) }),
  /** h→c: reply to topics. */
  topicList: t.struct({ rid: t.u32, topics: t.array(listedTopic) }),
  /** c→h: set a topic's history bounds and whether it is persisted (needs a store). Replied with `ok`. */
  topicConfig: t.struct({ rid: t.u32, topic: key, maxBytes: t.u32, maxCount: t.u32, persist: t.bool }),
} as const;

export const FLOW_BASE = 46;
/** Publisher flow control (feature "flow"; publisher-holds.ts). */
export const flowMessages = {
  /**
   * h→c: stop (`held` true) or go on (`held` false) publishing to `topic`: a subscriber still needs the
   * oldest messages of its full history. Sent only to clients that announced feature "flow".
   */
  publishFlow: t.struct({ topic: key, held: t.bool }),
} as const;

export const TOPIC_PAGES_BASE = 49;
/** Listing topics a page at a time (feature "pages"): any number of them, each answer a bounded frame. */
export const topicPageMessages = {
  /**
   * c→h: the topics matching `pattern` (empty: all) whose names sort after `after` (empty: from the first),
   * as many as one page holds: at most 10,000, and an answer of at most `maxBytes` (the asker's frame limit;
   * 0: the hub's choice) and 1 MiB. Replied with `topicPage`.
   */
  topicsPage: t.struct({
    rid: t.u32,
    pattern: t.string({ maxBytes: 255 }),
    after: t.string({ maxBytes: 255 }),
    maxBytes: t.u32,
  }),
  /** h→c: reply to topicsPage, in name order; `more`: there are others, ask again after the last one. */
  topicPage: t.struct({ rid: t.u32, topics: t.array(listedTopic), more: t.bool }),
} as const;
