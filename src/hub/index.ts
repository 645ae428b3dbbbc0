/**
 * `ezipc/hub`: what a program that runs a hub uses — {@link Hub}, its options and stores, key files and
 * access rules — and the client API beside it (`connect`, the same as `ezipc`'s). A process that imports
 * only this entry loads neither the shared-memory client and rings (until it connects to an `shm://` URL)
 * nor the bridge, monitoring, the apps or the CLI: about 3 MiB less resident memory than `ezipc` for an idle
 * hub (README, "Idle processes"). Everything here is also exported by `ezipc`, the very same values.
 * See docs/shared-variables.md for the semantics and docs/protocol.md for the wire protocol.
 */

export {
  type AllocateOptions,
  type ClientSecurity,
  type ClientStatus,
  type ConnectOptions,
  HubClient,
  type HubClientEvents,
  type KeyDescription,
  type KeyInfo,
  type PublishOptions,
  type TopicInfo,
} from "../client/client.js";
export { connect, type MessagingClient } from "../connect.js";
export { Deadman, type DeadmanEvents, type DeadmanState } from "../deadman/deadman-client.js";
export { type ErrorCode, ErrorCodes, EzipcError, isEzipcError } from "../errors.js";
export { type Logger, type LogLevel, type LogRecord, setLogger, stderrLogger } from "../log.js";
export {
  type ClientView,
  HUB_PROTOCOL_VERSION,
  type KeyView,
  type TopicView,
} from "../protocol/core-messages.js";
export { FORWARD_RESERVE_BYTES } from "../protocol/fields.js";
export { NEW_TOPICS, type PubSubOptions } from "../pubsub/pubsub-hub.js";
export {
  type Gap,
  type SubscribeInit,
  type SubscribeIter,
  type SubscribeOptions,
  Subscription,
  type TopicMessage,
} from "../pubsub/subscription.js";
export { topicMatcher } from "../pubsub/topics.js";
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
export {
  AccessPolicy,
  type AllowedClient,
  allowList,
  OPERATIONS,
  type Operation,
  type Permissions,
  patternCovers,
} from "../security/access.js";
export {
  generateKeyFile,
  knownHosts,
  loadOrCreateKeyFile,
  parsePublicKey,
  readKeyFile,
} from "../security/keys.js";
export { type KeyPair, keyPairFromPrivate } from "../security/x25519.js";
export { type BlockStore, MemoryStore, SqliteStore, type StoredBlock } from "../store/store.js";
export { ConfigVar } from "../vars/config-var.js";
export { mergePatch } from "../vars/merge-patch.js";
export {
  type Change,
  IpcPtr,
  type IpcPtrEvents,
  type PointerStatus,
  type ReadResult,
} from "../vars/pointer.js";
export type { SyncPolicy } from "../vars/vars-messages.js";
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
