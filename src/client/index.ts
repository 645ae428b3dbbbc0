/**
 * `ezipc/client`: what a client program uses, and nothing of the hub. `import { connect } from "ezipc/client"`
 * gives the same `connect` as `ezipc`, with the same types; a process that imports only this entry loads
 * about half of the package's modules (no hub, no cluster, no stores, no monitoring; the shared-memory
 * client only once it connects to an `shm://` URL), which shows in its resident memory (README, "Idle
 * processes"). Everything here is also exported by `ezipc`.
 */

export {
  type ArrayType,
  type BigIntType,
  type BoolType,
  type BytesType,
  bytesCodec,
  type Codec,
  type Fields,
  type FixedArrayType,
  type Infer,
  type InferStruct,
  jsonCodec,
  type MsgpackCodecOptions,
  msgpackCodec,
  type NumberType,
  type OptionalType,
  type SchemaCodec,
  type SchemaType,
  type StringType,
  type StructType,
  schemaCodec,
  t,
} from "../codec/index.js";
export { connect, type MessagingClient } from "../connect.js";
export { Deadman, type DeadmanEvents, type DeadmanState } from "../deadman/deadman-client.js";
export { type ErrorCode, ErrorCodes, EzipcError, isEzipcError } from "../errors.js";
export { type Logger, type LogLevel, type LogRecord, setLogger, stderrLogger } from "../log.js";
export { topicMatcher } from "../protocol/names.js";
export {
  type Gap,
  type SubscribeInit,
  type SubscribeIter,
  type SubscribeOptions,
  Subscription,
  type TopicMessage,
} from "../pubsub/subscription.js";
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
export {
  generateKeyFile,
  knownHosts,
  loadOrCreateKeyFile,
  parsePublicKey,
  readKeyFile,
} from "../security/keys.js";
export type { KeyPair } from "../security/x25519.js";
export type { ShmClient, ShmConnectOptions, ShmOptions } from "../shm-client/shm-client.js";
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
} from "./client.js";
