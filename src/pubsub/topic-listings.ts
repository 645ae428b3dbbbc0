/**
 * What the hub answers about its topics: `topics` (every match in one answer), `topicsPage` (a page at a
 * time, listing-pages.ts) and the monitor view's list. Each shows only the topics the asking client may
 * subscribe to, and what may be delivered (a persisted topic's uncommitted tail is not shown).
 *
 * Every listing is charged to the hub's budget (listing-budget.ts): the entries it builds, and a fraction of
 * those it only looks at. An answer over one frame is refused before it is built.
 */
import type { Infer } from "../codec/schema.js";
import type { ListingBudget } from "../listing-budget.js";
import { listingTooLarge } from "../listing-budget.js";
import { ANSWER_HEAD_BYTES, firstByName, listingPage } from "../listing-pages.js";
import type { TopicView } from "../protocol/core-messages.js";
import type { Connection } from "../transport/types.js";
import type { pubsubMessages } from "./pubsub-messages.js";
import type { Topic } from "./topics.js";

/** A topic as `topicList` and `topicPage` carry it. */
export type ListedTopic = Infer<typeof pubsubMessages.topicList>["topics"][number];

/** Bytes of a listed topic besides its name (its length, seqs, counts, flag), at most. */
const LISTED_TOPIC_BYTES = 35;

/** What the listings read from the hub's pub/sub. */
export interface TopicSource {
  /** The topics matching `pattern` (topic syntax; empty: all), in no order. */
  matching(pattern: string): Iterable<Topic>;
  /** Whether `conn` may subscribe to `name` (listings show only those). */
  mayList(conn: Connection, name: string): boolean;
  subscribers(t: Topic): number;
  readonly listings: ListingBudget;
  readonly maxFrameBytes: number;
}

function listed(t: Topic, src: TopicSource): ListedTopic {
  return {
    name: t.name,
    firstSeq: t.firstSeq,
    lastSeq: t.seqOf(t.lastVisible),
    count: Math.max(0, t.visible - t.firstIndex),
    bytes: t.bytes,
    subscribers: src.subscribers(t),
    persist: t.durable,
  };
}

const byName = (t: Topic) => t.name;

/**
 * Every topic matching `pattern` that `conn` may see, in name order. Throws `EZIPC_TOO_MANY_REQUESTS` (the
 * budget) or `EZIPC_MESSAGE_TOO_LARGE` (over one frame: found before anything is built).
 */
export function listTopics(src: TopicSource, conn: Connection, pattern: string): ListedTopic[] {
  src.listings.check("topics");
  const found: Topic[] = [];
  let walked = 0;
  let bytes = ANSWER_HEAD_BYTES;
  for (const t of src.matching(pattern)) {
    walked++;
    if (!src.mayList(conn, t.name)) continue;
    found.push(t);
    bytes += LISTED_TOPIC_BYTES + t.name.length;
  }
  src.listings.charge(walked);
  if (bytes > src.maxFrameBytes) throw listingTooLarge("topics", found.length, bytes, src.maxFrameBytes);
  return firstByName(found, found.length, byName).map((t) => listed(t, src));
}

/**
 * The topics matching `pattern` that `conn` may see and whose names sort after `after` ("": from the first),
 * in name order, as many as a page holds; `more` if others follow. Throws `EZIPC_TOO_MANY_REQUESTS`.
 */
export function topicsPage(
  src: TopicSource,
  conn: Connection,
  pattern: string,
  after: string,
  maxBytes: number,
): { topics: ListedTopic[]; more: boolean } {
  const page = listingPage(
    {
      items: src.matching(pattern),
      keep: (t) => src.mayList(conn, t.name),
      name: byName,
      bytesOf: (t) => LISTED_TOPIC_BYTES + t.name.length,
      entriesOf: () => 1,
      build: (t) => listed(t, src),
      listings: src.listings,
      what: "topics",
      maxFrameBytes: src.maxFrameBytes,
    },
    after,
    maxBytes,
  );
  return { topics: page.entries, more: page.more };
}

/** The first `limit` topics matching `match` by name (the monitor view), and how many more there were. */
export function describeTopics(
  src: TopicSource,
  all: Iterable<Topic>,
  match: (name: string) => boolean,
  limit: number,
): { topics: TopicView[]; more: number } {
  const found: Topic[] = [];
  for (const t of all) if (match(t.name)) found.push(t);
  const topics = firstByName(found, limit, byName).map((t) => ({
    name: t.name,
    firstSeq: Number(t.firstSeq),
    lastSeq: Number(t.seqOf(t.lastVisible)),
    count: Math.max(0, t.visible - t.firstIndex),
    historyBytes: t.bytes,
    subscribers: src.subscribers(t),
    persist: t.durable,
    delivered: t.delivered,
  }));
  return { topics, more: found.length - topics.length };
}
