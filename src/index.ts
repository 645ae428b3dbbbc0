/**
 * ezipc — easy, robust, fast communication between processes.
 *
 * This file is the whole public surface: every export is listed by name.
 */

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
// errors
export { type ErrorCode, ErrorCodes, EzipcError, isEzipcError } from "./errors.js";
// hub
export {
  type AllocateOptions,
  type BlockStore,
  type Change,
  type ClientStatus,
  ConfigVar,
  type ConnectOptions,
  connect,
  HUB_PROTOCOL_VERSION,
  Hub,
  HubClient,
  type HubClientEvents,
  type HubEvents,
  type HubOptions,
  type HubStats,
  IpcPtr,
  type IpcPtrEvents,
  type KeyInfo,
  MemoryStore,
  mergePatch,
  type PointerStatus,
  type ReadResult,
  SqliteStore,
  type StoredBlock,
  type SyncPolicy,
} from "./hub/index.js";
// logging
export { type Logger, type LogLevel, type LogRecord, setLogger, stderrLogger } from "./log.js";
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
  type ReconnectOptions,
  registerTransport,
  type SlowConsumerInfo,
  type Transport,
  type TransportCounters,
  transportCounters,
} from "./transport/index.js";
