/**
 * # Transport layer
 *
 * Framed, bidirectional connections chosen by URL scheme: `tcp://host:port`, `unix:///path`,
 * `memory://name`. The layers above call only {@link listen}, {@link dial} and {@link Dialer}; a new scheme
 * plugs in through {@link registerTransport} without touching them.
 *
 * Invariants of every connection:
 * - **Order**: frames arrive in the order they were sent, each whole (see `frame.ts` for the wire format:
 *   a 4-byte big-endian length, then the payload).
 * - **Bounded receive memory**: a frame's length is checked against `maxFrameBytes` before a byte is
 *   allocated for it; an oversized or malformed frame closes that connection only (`EZIPC_FRAME_TOO_LARGE`,
 *   `EZIPC_PROTOCOL`) and is counted in {@link transportCounters}. Connections given one
 *   {@link FrameBudget} also bound their incomplete frames together. An async-iterator consumer that lags
 *   pauses the socket.
 * - **Bounded send memory**: `send()` returns false past `sendHighWaterMarkBytes` (then `drain()`); past
 *   `maxQueuedBytes`, or with no progress for `stallTimeoutMs`, the peer is cut as a slow consumer.
 * - **Few system calls**: small frames are copied into 64 KiB segments flushed when the current
 *   callback returns (process.nextTick: a synchronous burst is one write, a lone reply goes out at once);
 *   large frames are written as they are, under cork/uncork (one writev).
 * - **Liveness**: pings after `heartbeatIntervalMs` of sending nothing; a peer silent for
 *   `heartbeatTimeoutMs` is closed with `EZIPC_HEARTBEAT_TIMEOUT` (half-open TCP is detected).
 * - **Close**: `close(reason)` flushes, sends the reason in a CLOSE control frame and ends; a peer that ends
 *   without a CLOSE frame (killed, cut) is reported with `EZIPC_CONNECTION_RESET`.
 */
export { type TransportCounters, transportCounters } from "./counters.js";
export {
  backoffDelay,
  Dialer,
  type DialerEvents,
  type DialerOptions,
  type DialerStatus,
  type ReconnectOptions,
} from "./dialer.js";
export { DEFAULT_MAX_FRAME_BYTES } from "./frame.js";
export { type BudgetHolder, FrameBudget } from "./frame-budget.js";
export { FrameDecoder, type FrameSink } from "./frame-decoder.js";
export { dial, listen, registerTransport } from "./registry.js";
export type {
  CloseInfo,
  Connection,
  ConnectionEvents,
  ConnectionOptions,
  ConnectionStats,
  DatagramHandshake,
  DatagramHandshakeStep,
  DatagramSecurity,
  DatagramSession,
  DialOptions,
  Listener,
  ListenerEvents,
  ListenOptions,
  PeerIdentity,
  SlowConsumerInfo,
  StreamUpgrade,
  Transport,
  UdpOptions,
} from "./types.js";
export type { LessorCounters, UdpListener } from "./udp.js";
export type { DatagramDrops, UdpConnection } from "./udp-connection.js";
