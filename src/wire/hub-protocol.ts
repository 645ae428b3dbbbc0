/**
 * The hub wire protocol as both ends speak it: every frame is `u16 LE message index` then the message's
 * schema-codec body (docs/protocol.md). This file only composes — the handshake and generic replies from
 * src/protocol, then each capability's own table — in wire-index order. Each table names its first index;
 * {@link checkSegments} verifies at load that the composition puts every message at that index, so indexes
 * never shift when a capability changes its file. New messages are appended at the end with a feature name.
 *
 * Imported by the hub and the client (which compose the capabilities), never by a capability.
 */
import type { Infer } from "../codec/schema.js";
import { DEADMAN_BASE, deadmanMessages } from "../deadman/deadman-messages.js";
import {
  CORE_BASE,
  coreMessages,
  MONITOR_BASE,
  monitorMessages,
  STATS_BASE,
  statsMessages,
} from "../protocol/core-messages.js";
import {
  FLOW_BASE,
  flowMessages,
  PUBSUB_BASE,
  pubsubMessages,
  TOPIC_PAGES_BASE,
  topicPageMessages,
} from "../pubsub/pubsub-messages.js";
import { DIRECT_BASE, directMessages, RPC_BASE, rpcMessages } from "../rpc/rpc-messages.js";
import type { Protocol, SchemaMap } from "../service/protocol.js";
import { schemaProtocol } from "../service/protocol.js";
import {
  KEY_INFO_BASE,
  KEY_PAGES_BASE,
  keyInfoMessages,
  keyPageMessages,
  PEEK_BASE,
  peekMessages,
  VARS_BASE,
  varsMessages,
} from "../vars/vars-messages.js";

/** The tables in wire order, each with the index of its first message. */
export const HUB_SEGMENTS: readonly { readonly base: number; readonly messages: SchemaMap }[] = [
  { base: CORE_BASE, messages: coreMessages },
  { base: VARS_BASE, messages: varsMessages },
  { base: STATS_BASE, messages: statsMessages },
  { base: PEEK_BASE, messages: peekMessages },
  { base: PUBSUB_BASE, messages: pubsubMessages },
  { base: RPC_BASE, messages: rpcMessages },
  { base: DEADMAN_BASE, messages: deadmanMessages },
  { base: DIRECT_BASE, messages: directMessages },
  { base: KEY_INFO_BASE, messages: keyInfoMessages },
  { base: FLOW_BASE, messages: flowMessages },
  { base: MONITOR_BASE, messages: monitorMessages },
  { base: TOPIC_PAGES_BASE, messages: topicPageMessages },
  { base: KEY_PAGES_BASE, messages: keyPageMessages },
];

/** Every hub message, in wire-index order. */
export const hubMessages = {
  ...coreMessages,
  ...varsMessages,
  ...statsMessages,
  ...peekMessages,
  ...pubsubMessages,
  ...rpcMessages,
  ...deadmanMessages,
  ...directMessages,
  ...keyInfoMessages,
  ...flowMessages,
  ...monitorMessages,
  ...topicPageMessages,
  ...keyPageMessages,
} as const;

/** Throws unless every segment's messages sit at its base in `all`, one after another, with no gaps. */
export function checkSegments(all: SchemaMap, segments: typeof HUB_SEGMENTS): void {
  const names = Object.keys(all);
  let next = 0;
  for (const { base, messages } of segments) {
    const own = Object.keys(messages);
    if (base !== next) throw new Error(`hub protocol: a segment starts at ${base}, expected ${next}`);
    own.forEach((n, i) => {
      if (names[base + i] !== n) throw new Error(`hub protocol: ${n} is not at index ${base + i}`);
    });
    next = base + own.length;
  }
  if (next !== names.length) throw new Error(`hub protocol: ${names.length - next} messages in no segment`);
}
checkSegments(hubMessages, HUB_SEGMENTS);

/** The body of hub message `K`. */
export type HubBody<K extends keyof typeof hubMessages> = Infer<(typeof hubMessages)[K]>;

/** A decoded hub message: its type and body, discriminated by type. */
export type HubMessage = {
  [K in keyof typeof hubMessages]: { type: K; body: HubBody<K> };
}[keyof typeof hubMessages];

/** Makes a hub protocol instance (compile once per process and share it). */
export const hubProtocol: () => Protocol = schemaProtocol(hubMessages, "ezipc-hub");
