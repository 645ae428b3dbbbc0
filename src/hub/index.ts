/**
 * The hub layer: {@link Hub} (the server) and {@link connect} (the client) with shared variables kept in
 * sync per sync policy, server-side reference counts, grace period, tombstones and persistent keys.
 * See docs/shared-variables.md for the semantics and docs/protocol.md for the wire protocol.
 */

export {
  type AllocateOptions,
  type ClientSecurity,
  type ClientStatus,
  type ConnectOptions,
  connect,
  HubClient,
  type HubClientEvents,
  type KeyDescription,
  type KeyInfo,
  type PublishOptions,
  type TopicInfo,
} from "../client/client.js";
export { Deadman, type DeadmanEvents, type DeadmanState } from "../deadman/deadman-client.js";
export {
  type ClientView,
  HUB_PROTOCOL_VERSION,
  type KeyView,
  type TopicView,
} from "../protocol/core-messages.js";
export { MAX_KEY_LENGTH } from "../protocol/fields.js";
export { NEW_TOPICS, type PubSubOptions } from "../pubsub/pubsub-hub.js";
export {
  type Gap,
  type SubscribeInit,
  type SubscribeIter,
  type SubscribeOptions,
  Subscription,
  type TopicMessage,
} from "../pubsub/subscription.js";
export { checkTopic, topicMatcher } from "../pubsub/topics.js";
export {
  type Body,
  Channel,
  type RequestOptions,
  type RpcHandler,
  type RpcRequest,
  RpcSession,
  Server,
  type StreamOptions,
} from "../rpc/rpc-calls.js";
export type { RpcOptions } from "../rpc/rpc-hub.js";
export { type BlockStore, MemoryStore, SqliteStore, type StoredBlock } from "../store/store.js";
export {
  type Block,
  BlockTable,
  type BlockTableOptions,
  type Clock,
  checkKey,
  systemClock,
} from "../vars/block-table.js";
export { ConfigVar } from "../vars/config-var.js";
export { globMatcher } from "../vars/glob.js";
export { mergePatch } from "../vars/merge-patch.js";
export {
  type Change,
  IpcPtr,
  type IpcPtrEvents,
  type PointerStatus,
  type ReadResult,
} from "../vars/pointer.js";
export { POLICIES, type SyncPolicy } from "../vars/vars-messages.js";
export { hubMessages } from "../wire/hub-protocol.js";
export {
  Hub,
  type HubBridge,
  type HubEvents,
  type HubMetrics,
  type HubOptions,
  type HubSecurity,
  type HubStats,
  type HubView,
} from "./hub.js";
