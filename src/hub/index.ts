/**
 * The hub layer: {@link Hub} (the server) and {@link connect} (the client) with shared variables kept in
 * sync per sync policy, server-side reference counts, grace period, tombstones and persistent keys.
 * See docs/shared-variables.md for the semantics and docs/protocol.md for the wire protocol.
 */
export {
  type Block,
  BlockTable,
  type BlockTableOptions,
  type Clock,
  checkKey,
  systemClock,
} from "./blocks.js";
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
} from "./client.js";
export { ConfigVar } from "./config-var.js";
export { Deadman, type DeadmanEvents, type DeadmanState } from "./deadman-client.js";
export { globMatcher } from "./glob.js";
export { Hub, type HubEvents, type HubOptions, type HubSecurity, type HubStats } from "./hub.js";
export { mergePatch } from "./merge-patch.js";
export { type Change, IpcPtr, type IpcPtrEvents, type PointerStatus, type ReadResult } from "./pointer.js";
export { HUB_PROTOCOL_VERSION, hubMessages, MAX_KEY_LENGTH, POLICIES, type SyncPolicy } from "./protocol.js";
export { NEW_TOPICS, type PubSubOptions } from "./pubsub.js";
export type { RpcOptions } from "./rpc.js";
export {
  type Body,
  Channel,
  type RequestOptions,
  type RpcHandler,
  type RpcRequest,
  RpcSession,
  Server,
  type StreamOptions,
} from "./rpc-client.js";
export { type BlockStore, MemoryStore, SqliteStore, type StoredBlock } from "./store.js";
export {
  type Gap,
  type SubscribeInit,
  type SubscribeIter,
  type SubscribeOptions,
  Subscription,
  type TopicMessage,
} from "./subscription.js";
export { checkTopic, topicMatcher } from "./topics.js";
