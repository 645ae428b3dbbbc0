/**
 * ezipc — easy, robust, fast communication between processes.
 *
 * This file is the whole public surface: every export is listed by name.
 */

export {
  BRIDGED_HEADER,
  BRIDGED_SEQ_HEADER,
  Bridge,
  type BridgeCounters,
  type BridgeOptions,
  ORIGIN_HEADER,
  shmBridge,
} from "./bridge/bridge.js";
// codec
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
} from "./codec/index.js";
// connect: a hub client or a shared-memory client, by URL
export { connect, type MessagingClient } from "./connect.js";
// errors
export { type ErrorCode, ErrorCodes, EzipcError, isEzipcError } from "./errors.js";
export type { HistogramSnapshot } from "./histogram.js";
// hub
export {
  type AllocateOptions,
  type BlockStore,
  type Body,
  type Change,
  Channel,
  type ClientSecurity,
  type ClientStatus,
  ConfigVar,
  type ConnectOptions,
  Deadman,
  type DeadmanEvents,
  type DeadmanState,
  type Gap,
  HUB_PROTOCOL_VERSION,
  Hub,
  type HubBridge,
  HubClient,
  type HubClientEvents,
  type HubEvents,
  type HubMetrics,
  type HubOptions,
  type HubSecurity,
  type HubStats,
  IpcPtr,
  type IpcPtrEvents,
  type KeyDescription,
  type KeyInfo,
  MemoryStore,
  mergePatch,
  NEW_TOPICS,
  type PointerStatus,
  type PublishOptions,
  type PubSubOptions,
  type ReadResult,
  type RequestOptions,
  type RpcHandler,
  type RpcOptions,
  type RpcRequest,
  RpcSession,
  Server,
  SqliteStore,
  type StoredBlock,
  type StreamOptions,
  type SubscribeInit,
  type SubscribeIter,
  type SubscribeOptions,
  Subscription,
  type SyncPolicy,
  type TopicInfo,
  type TopicMessage,
  topicMatcher,
} from "./hub/index.js";
// logging
export { type Logger, type LogLevel, type LogRecord, setLogger, stderrLogger } from "./log.js";
// monitoring
export { METRICS_CONTENT_TYPE, renderMetrics } from "./monitor/metrics.js";
export { serveMonitoring } from "./monitor/serve.js";
// security
export {
  AccessPolicy,
  type AllowedClient,
  allowList,
  dh25519,
  generateKeyFile,
  type HandshakeOptions,
  HandshakeState,
  type KeyPair,
  keyPairFromPrivate,
  knownHosts,
  loadOrCreateKeyFile,
  OPERATIONS,
  type Operation,
  type Permissions,
  parsePublicKey,
  patternCovers,
  readKeyFile,
  type SecureDialOptions,
  type SecureListenOptions,
  SecureStream,
  secureDial,
  secureListen,
  type Verdict,
} from "./security/index.js";
// service
export {
  type Connector,
  codecProtocol,
  type Message,
  type MessageHandler,
  type Protocol,
  type ProtocolFactory,
  registerProtocol,
  type SchemaMap,
  type SchemaMessages,
  Service,
  type ServiceEvents,
  Session,
  type SessionEvents,
  schemaProtocol,
} from "./service/index.js";
// shared memory (shm://)
export { ShmClient, type ShmConnectOptions, type ShmOptions } from "./shm-client/shm-client.js";
// transport
export {
  backoffDelay,
  type CloseInfo,
  type Connection,
  type ConnectionEvents,
  type ConnectionOptions,
  type ConnectionStats,
  DEFAULT_MAX_FRAME_BYTES,
  Dialer,
  type DialerEvents,
  type DialerOptions,
  type DialerStatus,
  type DialOptions,
  dial,
  FrameDecoder,
  type FrameSink,
  type Listener,
  type ListenerEvents,
  type ListenOptions,
  listen,
  type PeerIdentity,
  type ReconnectOptions,
  registerTransport,
  type SlowConsumerInfo,
  type StreamUpgrade,
  type Transport,
  type TransportCounters,
  transportCounters,
} from "./transport/index.js";
