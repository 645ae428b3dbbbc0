/**
 * What every message a client may send needs before the hub acts on it: the one table the hub's dispatch
 * checks permissions against, so no path (a resync, a future message) can skip the check its plain
 * counterpart makes.
 *
 * - `op` + `subject`: the permission (docs/security.md) and the body field it applies to. A key, topic,
 *   pattern or token name is checked before the handler runs; `holding` means the key of the pointer the
 *   message names, checked by the handler once it has found the holding.
 * - `own`: the message acts only on what this connection already holds or started (its pointers, its
 *   subscriptions, its calls) — admitted when those were — or reveals only what the client may see (listings
 *   are filtered by the `watch` / `subscribe` permission).
 *
 * Messages the hub sends (welcome, opened, update, …) are in {@link HUB_TO_CLIENT}: a client sending one is
 * a protocol error. The test suite walks every message of the protocol against this table.
 */

import type { Operation } from "../security/access.js";
import type { hubMessages } from "../wire/hub-protocol.js";

type MessageType = keyof typeof hubMessages;

export type Admission =
  | {
      readonly op: Operation;
      readonly subject: "key" | "topic" | "pattern" | "name" | "holding";
      /** How a refusal is answered: `error` with the rid (default), or `end` of the call (a request). */
      readonly refuse?: "end";
    }
  | { readonly own: string };

/** Every message a client may send after `hello`, and what admits it. */
export const CLIENT_MESSAGES: Readonly<Partial<Record<MessageType, Admission>>> = {
  allocate: { op: "allocate", subject: "key" },
  watch: { op: "watch", subject: "key" },
  peek: { op: "watch", subject: "key" },
  info: { op: "watch", subject: "key" },
  resync: { op: "watch", subject: "key" },
  resyncDone: { own: "drops this client's pointers that were not resynchronised" },
  release: { own: "releases one of this client's pointers" },
  read: { own: "reads a key this client holds (admitted by its watch or allocate)" },
  write: { op: "write", subject: "holding" },
  config: { op: "write", subject: "holding" },
  list: { own: "lists only the keys this client may watch" },
  stats: { own: "the hub's counters, no keys or payloads" },
  publish: { op: "publish", subject: "topic" },
  subscribe: { op: "subscribe", subject: "pattern" },
  credit: { own: "credits one of this client's subscriptions" },
  unsubscribe: { own: "ends one of this client's subscriptions" },
  topics: { own: "lists only the topics this client may subscribe to" },
  topicConfig: { op: "publish", subject: "topic" },
  serve: { op: "serve", subject: "topic" },
  unserve: { own: "stops this client serving a topic" },
  routes: { op: "request", subject: "topic" },
  request: { op: "request", subject: "topic", refuse: "end" },
  chunk: { own: "data on one of this client's calls" },
  flow: { own: "credit on one of this client's calls" },
  end: { own: "ends one of this client's calls" },
  deadman: { op: "deadman", subject: "name" },
  monitor: { op: "monitor", subject: "pattern" },
  topicsPage: { own: "lists only the topics this client may subscribe to" },
  listPage: { own: "lists only the keys this client may watch" },
};

/** Messages only the hub sends. */
export const HUB_TO_CLIENT: readonly MessageType[] = [
  "welcome",
  "error",
  "ok",
  "opened",
  "value",
  "conflict",
  "update",
  "stale",
  "invalidated",
  "listing",
  "statsReply",
  "published",
  "message",
  "gap",
  "topicList",
  "call",
  "deadmanState",
  "routeList",
  "publishFlow",
  "keyInfo",
  "monitorReply",
  "topicPage",
  "listingPage",
];

/** The subject a message's permission applies to, or undefined for `holding` and `own` entries. */
export function subjectOf(a: Admission, body: Record<string, unknown>): string | undefined {
  if (!("op" in a)) return undefined;
  switch (a.subject) {
    case "key":
      return body.key as string;
    case "topic":
      return body.topic as string;
    case "pattern":
      return body.pattern as string;
    case "name":
      return body.name as string;
    default:
      return undefined;
  }
}
