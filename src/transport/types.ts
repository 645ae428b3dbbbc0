import type { EventEmitter } from "node:events";
import type { Duplex } from "node:stream";
import type { ConnectionOptions as TlsConnectionOptions, TlsOptions } from "node:tls";
import type { EzipcError } from "../errors.js";
import type { FrameBudget } from "./frame-budget.js";

/** Who the peer of a connection is, as an upgrade (an authenticated handshake) established it. */
export interface PeerIdentity {
  /** The name the listener knows the peer by (an ACL entry's name), or its public key. */
  readonly name: string;
  /** The peer's static public key (base64), if it has one. */
  readonly publicKey?: string;
}

/**
 * Turns a dialled or accepted byte stream into the stream the connection runs on, e.g. after an encrypted
 * handshake. Resolves with the new stream (which may carry a `peer` identity); rejecting drops the stream.
 */
export type StreamUpgrade = (
  stream: Duplex,
  context: { readonly side: "dial" | "listen"; readonly remoteUrl: string },
) => Promise<Duplex & { peer?: PeerIdentity }>;

/** Options of one connection, on either side. Every size is in bytes, every duration in milliseconds. */
export interface ConnectionOptions {
  /** Largest data frame accepted from the peer (and sent). Default 16 MiB; at most 2^31 - 1. */
  maxFrameBytes?: number;
  /** `send()` returns false once this many bytes are queued; `drain` follows below it. Default 1 MiB. */
  sendHighWaterMarkBytes?: number;
  /** A peer whose unsent bytes exceed this is cut as a slow consumer. Default 64 MiB. */
  maxQueuedBytes?: number;
  /** A peer that does not drain queued bytes for this long is cut as a slow consumer. Default 10 s. */
  stallTimeoutMs?: number;
  /** Send a ping after this long without sending anything. 0 disables heartbeats. Default 5 s. */
  heartbeatIntervalMs?: number;
  /** Declare the peer dead after this long without receiving anything. Default 15 s. */
  heartbeatTimeoutMs?: number;
  /** Messages buffered for an async-iterator consumer before the socket is paused. Default 1 MiB. */
  receiveHighWaterMarkBytes?: number;
  /**
   * A bound on incomplete frames shared with other connections (a hub gives one to all of its connections,
   * `maxIncompleteFrameBytes`): see frame-budget.ts. Default: none beyond `maxFrameBytes` per connection.
   */
  frameBudget?: FrameBudget;
}

/** udp:// options (docs/transport.md). */
export interface UdpOptions {
  /** Largest datagram sent or expected, header included. Default 1472 (no IP fragmentation on Ethernet); at most 65,507. */
  maxDatagramBytes?: number;
  /** Number each data datagram, so the receiver drops duplicates and ones older than the newest. Default false. */
  sequence?: boolean;
  /** listen(): most renters (peer addresses) at once; datagrams from further addresses are ignored. Default 1024. */
  maxRenters?: number;
  /**
   * Encrypted datagrams: a handshake, then every datagram sealed (security layer: `secureDatagramDial` /
   * `secureDatagramListen`, docs/security.md "Datagrams"). Default: plain.
   */
  secure?: DatagramSecurity;
}

/**
 * What seals a udp:// connection's datagrams (implemented by the security layer). The transport sends and
 * resends the handshake datagrams and routes the answers; the security layer does the cryptography.
 */
export interface DatagramSecurity {
  /** Which side this is for: a dialling one starts handshakes, a listening one answers them. */
  readonly side: "dial" | "listen";
  /** A dial gives up a handshake not answered by then. */
  readonly handshakeTimeoutMs: number;
  /** Dial: the first datagram is sent again this often until answered. */
  readonly retransmitMs: number;
  /** A handshake with the peer at `remoteUrl`; null when the listening side takes no more handshakes now. */
  begin(remoteUrl: string): DatagramHandshake | null;
}

/** One handshake, as a state machine fed the peer's handshake datagrams. */
export interface DatagramHandshake {
  /** Dialling side: the first datagram (sent, then resent until an answer). */
  readonly hello: Buffer | null;
  /** A handshake datagram from the peer: what to send back, and the session or refusal it ends with. */
  receive(datagram: Buffer): DatagramHandshakeStep;
}

/** What one handshake datagram led to. All fields may be absent (the datagram was ignored). */
export interface DatagramHandshakeStep {
  /** Send this to the peer (unsealed). */
  reply?: Buffer;
  /** The handshake is done: seal with this. */
  session?: DatagramSession;
  /** The peer refused, authenticated: the handshake is over (EZIPC_AUTH). */
  refused?: EzipcError;
  /** An unauthenticated refusal (anyone could forge it): a dial reports it only if nothing better comes. */
  hint?: EzipcError;
}

/** The keys of one established datagram session. */
export interface DatagramSession {
  /** Who the peer is, as the handshake proved. */
  readonly peer: PeerIdentity;
  /** Bytes sealing adds to a datagram. */
  readonly overheadBytes: number;
  /** The sealed datagram carrying `inner` (a plain-format datagram). */
  seal(inner: Buffer): Buffer;
  /** The inner datagram, or why the sealed one is dropped. */
  open(sealed: Buffer): Buffer | "replayed" | "forged" | "tooOld";
}

/** Options of `dial()`. */
export interface DialOptions extends ConnectionOptions {
  /** Give up a connect attempt after this long (`EZIPC_CONNECTION_REFUSED`). Default 10 s. */
  connectTimeoutMs?: number;
  /** Cancels the dial (`EZIPC_CONNECT_ABORTED`). */
  signal?: AbortSignal;
  /** Runs on the connected stream before it becomes a connection (security.ts: `secureDial`). */
  upgrade?: StreamUpgrade;
  /** tls:// only: `node:tls` options (ca, cert, key, servername…), over the URL's `ca`/`cert`/`key` files. */
  tls?: TlsConnectionOptions;
  /** udp:// only. */
  udp?: UdpOptions;
}

/** Options of `listen()`. */
export interface ListenOptions extends ConnectionOptions {
  /** TCP: listen queue length. Default 511. */
  backlog?: number;
  /** Runs on each accepted stream before it becomes a connection (security.ts: `secureListen`). */
  upgrade?: StreamUpgrade;
  /** tls:// only: `node:tls` server options (cert, key, ca, requestCert…), over the URL's files. */
  tls?: TlsOptions;
  /** udp:// only. */
  udp?: UdpOptions;
  /**
   * ws:// and wss:// only: web pages of other origins that may open a WebSocket (`"http://host:port"`, or
   * `"*"` for any). Pages of this machine (localhost, 127.0.0.0/8, [::1]) and clients that are not browsers
   * are always admitted; others get `403 Forbidden` (ws-origins.ts says why).
   */
  allowOrigins?: string[];
}

/** Why a connection closed, given to its `close` event and by {@link Connection.closed}. */
export interface CloseInfo {
  /** Who closed it: this side, or the peer / the network. */
  initiator: "local" | "remote";
  /** A human-readable reason: the one passed to close(), the peer's, or the error's message. */
  reason: string;
  /** Set when the close was caused by a fault (protocol violation, heartbeat timeout, reset, slow consumer). */
  error?: EzipcError;
}

/** Why a slow consumer was cut. */
export interface SlowConsumerInfo {
  reason: "maxQueuedBytes" | "stall";
  queuedBytes: number;
}

/** Counters of one connection. */
export interface ConnectionStats {
  framesIn: number;
  framesOut: number;
  bytesIn: number;
  bytesOut: number;
  /** Heartbeat pings sent and pongs received. */
  pingsOut: number;
  pongsIn: number;
}

/** Events of a {@link Connection}. */
export interface ConnectionEvents {
  /** A data frame arrived. The buffer may be a view into the received chunk; it is the receiver's to keep. */
  message: [frame: Buffer];
  /** The queue went back below sendHighWaterMarkBytes after send() returned false. */
  drain: [];
  /**
   * The connection stopped taking frames (close() or destroy() was called, the peer asked to close, or a
   * fault): send() throws from now on. Emitted at most once, before `close`.
   */
  closing: [];
  /** The connection is closed; emitted exactly once. */
  close: [info: CloseInfo];
  /** A fault; emitted only if someone listens (the same error is also in the close info). */
  error: [error: EzipcError];
  /** The peer was too slow and is being cut; `close` follows. */
  slowConsumer: [info: SlowConsumerInfo];
}

/**
 * A framed, bidirectional connection. Created by `dial()` or delivered by a {@link Listener}.
 *
 * Frames arrive in order as `message` events or through the async iterator (which pauses reading while
 * its consumer lags); they leave in order through {@link send}.
 */
export interface Connection extends EventEmitter<ConnectionEvents>, AsyncIterable<Buffer> {
  /** Unique over the life of the process, never reused; starts at 1. */
  readonly id: number;
  /** URL of this end, e.g. `tcp://127.0.0.1:40123`. */
  readonly localUrl: string;
  /** URL of the peer, e.g. `tcp://127.0.0.1:7700` or `unix:///tmp/hub.sock`. */
  readonly remoteUrl: string;
  /** The peer as an upgrade authenticated it; null on a plain connection. */
  readonly peer: PeerIdentity | null;
  /** `open` until close() or a fault; `closing` while flushing; then `closed`. */
  readonly state: "open" | "closing" | "closed";
  /** Bytes accepted by send() and not yet written to the operating system. */
  readonly queuedBytes: number;
  readonly stats: Readonly<ConnectionStats>;
  /** Resolves with the close info once the connection is closed; never rejects. */
  readonly closed: Promise<CloseInfo>;
  /**
   * Queues one frame: `frame`, or its first `length` bytes. Returns false when the queue is at or over
   * `sendHighWaterMarkBytes`: wait for {@link drain} before sending more. A frame under 16 KiB
   * (`COPY_THRESHOLD_BYTES`) is copied before send() returns, so its buffer may be reused at once; a larger
   * one is written as it is when the current callback returns: do not modify it after the call. Throws
   * `EZIPC_CONNECTION_CLOSED` once the connection is closing or closed, and `EZIPC_MESSAGE_TOO_LARGE` for a
   * frame over maxFrameBytes (nothing is sent; the connection goes on).
   */
  send(frame: Uint8Array, length?: number): boolean;
  /**
   * Queues one frame made of `head` then `body`, as {@link send} does with their concatenation, without
   * concatenating: `head` is copied before sendParts() returns; `body` is copied too when under 16 KiB,
   * else written as it is when the current callback returns (do not modify it after the call). For
   * forwarding a payload behind a new header without copying it. `more`: further parts of the body, after
   * `body`, treated as `body` is (a body that arrived in pieces, sent on as it is).
   */
  sendParts(head: Uint8Array, body: Uint8Array, more?: readonly Uint8Array[]): boolean;
  /**
   * Optional (tcp://, unix://): true when the connection holds none of the buffers given to
   * {@link send} and {@link sendParts} any more (each was copied, or written to the operating system), so
   * that the caller may write into them again now. False, or absent, means: do not.
   */
  released?(): boolean;
  /**
   * Optional (stream transports): from now on, a data frame of at least 16 KiB that arrived split across
   * reads goes to `handler` as its pieces (views into the reads, in order, `length` bytes in all) instead of
   * being joined and emitted as `message`. `null` goes back to `message` for every frame.
   */
  setPiecesHandler?(handler: ((pieces: Buffer[], length: number) => void) | null): void;
  /** Resolves once the queue is below sendHighWaterMarkBytes (at once if it is); rejects if it closes first. */
  drain(): Promise<void>;
  /**
   * Graceful close: flushes what is queued, tells the peer `reason`, and ends the connection. Resolves
   * once closed (a peer that does not answer is cut after 2 s).
   */
  close(reason?: string): Promise<void>;
  /** Abrupt close: drops whatever is queued. */
  destroy(error?: EzipcError): void;
  /** Stops delivering messages (the transport stops reading, so the peer is back-pressured). */
  pause(): void;
  /** Resumes delivering messages. */
  resume(): void;
}

/** Accepts connections at one address. */
export interface ListenerEvents {
  connection: [conn: Connection];
  error: [error: Error];
  close: [];
}

export interface Listener extends EventEmitter<ListenerEvents>, AsyncIterable<Connection> {
  /** The bound address as a URL; for `tcp://host:0` it holds the port the system chose. */
  readonly url: string;
  /** Connections accepted and still open. */
  readonly connections: ReadonlySet<Connection>;
  /** Stops accepting, closes every accepted connection gracefully, and resolves once all are closed. */
  close(): Promise<void>;
}

/**
 * A transport: one URL scheme's way to listen and dial. Register one with `registerTransport()`; the layers
 * above only ever call `listen(url)` and `dial(url)`.
 */
export interface Transport {
  /** URL scheme without the colon, e.g. `tcp`. */
  readonly scheme: string;
  /** Resolves with a listening {@link Listener}; rejects with `EZIPC_ADDRESS_IN_USE` or `EZIPC_INVALID_URL`. */
  listen(url: URL, options: ListenOptions): Promise<Listener>;
  /** Resolves with an open {@link Connection}; rejects with `EZIPC_CONNECTION_REFUSED` or `EZIPC_CONNECT_ABORTED`. */
  dial(url: URL, options: DialOptions): Promise<Connection>;
}
