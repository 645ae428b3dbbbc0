/**
 * ws:// and wss:// over the WHATWG `WebSocket` of a browser: the transport of the browser entry
 * (`ezipc/browser`, src/browser/). It speaks the bytes of src/transport/ws.ts — one ezipc frame (4-byte
 * header and body) per binary message — with the same limits, heartbeats (PING/PONG control frames) and
 * coded CLOSE reasons as {@link StreamConnection}, without `node:stream` or `node:net`.
 *
 * What a browser WebSocket cannot do, and what this does instead:
 * - It cannot stop reading. `pause()` holds received frames here; more than `maxQueuedBytes` held closes the
 *   connection with `EZIPC_SLOW_CONSUMER` (memory stays bounded).
 * - It has no drain event. While `bufferedAmount` is at or over `sendHighWaterMarkBytes`, a timer checks it
 *   every 10 ms and emits `drain` once it is below; a peer that takes nothing for `stallTimeoutMs`, or a
 *   buffer over `maxQueuedBytes`, is cut as a slow consumer.
 *
 * It is also run in Node by the tests with the `ws` package's client, which has the same interface.
 */
import { EventEmitter } from "node:events";
import { EzipcError } from "../errors.js";
import { newConnectionStats } from "./counters.js";
import { eventsUntilClosed, nextDrain } from "./events.js";
import { CONTROL_BIT, ControlType, HEADER_BYTES, partsLength, payloadParts } from "./frame.js";
import { FrameDecoder } from "./frame-decoder.js";
import { nextConnectionId } from "./ids.js";
import { peerEnded, type ResolvedConnectionOptions, resolveConnectionOptions } from "./stream-connection.js";
import type {
  CloseInfo,
  Connection,
  ConnectionEvents,
  ConnectionStats,
  DialOptions,
  Listener,
  Transport,
} from "./types.js";

/** The part of the WHATWG WebSocket this transport uses. */
export interface WebSocketLike {
  binaryType: string;
  readonly readyState: number;
  readonly bufferedAmount: number;
  onopen: ((ev: unknown) => void) | null;
  onmessage: ((ev: { data: unknown }) => void) | null;
  onclose: ((ev: { code: number; reason: string }) => void) | null;
  onerror: ((ev: unknown) => void) | null;
  send(data: Uint8Array): void;
  close(code?: number, reason?: string): void;
}

/** A WebSocket class: the browser's `WebSocket`, or the `ws` package's in Node. */
export type WebSocketClass = new (url: string) => WebSocketLike;

/**
 * A layer between the frames and the WebSocket, set up by a {@link BrowserUpgrade} (the browser's Noise
 * handshake, src/browser/secure.ts): what to send for some bytes, and how to open what arrives.
 */
export interface ByteLayer {
  /** The messages that carry `bytes`. */
  seal(bytes: Uint8Array): Uint8Array[];
  /** Opens `chunk`, calling `deliver` with each plaintext; throws an EzipcError (e.g. EZIPC_DECRYPT). */
  open(chunk: Buffer, deliver: (plain: Buffer) => void): void;
  /** Bytes that arrived after the handshake, before the connection took over. */
  leftover: Buffer;
}

/** Runs on the open WebSocket before it becomes a connection; resolves with the layer to use. */
export type BrowserUpgrade = (io: {
  send(bytes: Uint8Array): void;
  /** Every chunk received until the upgrade resolves. */
  onData(fn: (chunk: Buffer) => void): void;
  /** The socket closed or failed during the upgrade. */
  onClose(fn: (error: EzipcError) => void): void;
}) => Promise<ByteLayer>;

/** A dial option's `upgrade` that carries a {@link BrowserUpgrade} (made by src/browser/options.ts). */
export type WithBrowserUpgrade = { browserUpgrade?: BrowserUpgrade };

const OPEN = 1;
const CLOSE_TIMEOUT_MS = 2_000;
const DRAIN_POLL_MS = 10;
const ENCODER = new TextEncoder();
const DECODER = new TextDecoder();

/** A frame's 4-byte header and body as one message. */
function frameMessage(word: number, parts: readonly Uint8Array[], size: number): Uint8Array {
  const out = new Uint8Array(HEADER_BYTES + size);
  new DataView(out.buffer).setUint32(0, word >>> 0);
  let at = HEADER_BYTES;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

/** One connection over a WHATWG WebSocket. Made by {@link browserWebSocketTransport}'s `dial`. */
export class BrowserWsConnection extends EventEmitter<ConnectionEvents> implements Connection {
  readonly id = nextConnectionId();
  readonly localUrl: string;
  readonly peer = null;
  state: "open" | "closing" | "closed" = "open";
  readonly stats: ConnectionStats = newConnectionStats();
  readonly closed: Promise<CloseInfo>;

  private resolveClosed!: (info: CloseInfo) => void;
  private readonly decoder: FrameDecoder;
  private closeInfo: CloseInfo | null = null;
  private remoteCloseReason: string | null = null;
  private held: Buffer[] = [];
  private heldBytes = 0;
  private paused = false;
  private lastRxAt = Date.now();
  private sentSinceTick = false;
  private heartbeat: ReturnType<typeof setInterval> | null = null;
  private drainPoll: ReturnType<typeof setInterval> | null = null;
  private closeTimer: ReturnType<typeof setTimeout> | null = null;
  private lastBuffered = 0;
  private lastProgressAt = 0;

  /** @internal made by the transport once the socket is open */
  constructor(
    private readonly ws: WebSocketLike,
    readonly remoteUrl: string,
    private readonly opts: ResolvedConnectionOptions,
    private readonly layer: ByteLayer | null = null,
  ) {
    super();
    this.localUrl = `${remoteUrl.split(":")[0]}://browser/${this.id}`;
    this.decoder = new FrameDecoder(opts.maxFrameBytes);
    this.closed = new Promise((resolve) => {
      this.resolveClosed = resolve;
    });
    ws.binaryType = "arraybuffer";
    ws.onmessage = (ev) => this.onData(ev.data);
    ws.onclose = () => this.onSocketClose();
    ws.onerror = () => {
      if (!this.closeInfo && this.remoteCloseReason === null) {
        const error = new EzipcError("EZIPC_CONNECTION_RESET", `connection ${this.id}: WebSocket error`);
        this.closeInfo = { initiator: "remote", reason: error.message, error };
      }
    };
    if (opts.heartbeatIntervalMs > 0) {
      this.heartbeat = setInterval(() => this.onHeartbeatTick(), opts.heartbeatIntervalMs);
    }
    if (layer && layer.leftover.length > 0) queueMicrotask(() => this.onBytes(layer.leftover));
  }

  /** Sends one frame's message, through the layer if there is one. */
  private put(message: Uint8Array): void {
    if (!this.layer) {
      this.ws.send(message);
      return;
    }
    for (const m of this.layer.seal(message)) this.ws.send(m);
  }

  get queuedBytes(): number {
    return this.ws.bufferedAmount;
  }

  send(frame: Uint8Array, length = frame.length): boolean {
    return this.sendFrame(length === frame.length ? [frame] : [frame.subarray(0, length)], length);
  }

  sendParts(head: Uint8Array, body: Uint8Array, more?: readonly Uint8Array[]): boolean {
    const parts = payloadParts(head, body, more);
    return this.sendFrame(parts, partsLength(parts));
  }

  private sendFrame(parts: readonly Uint8Array[], size: number): boolean {
    if (this.state !== "open") {
      throw new EzipcError("EZIPC_CONNECTION_CLOSED", `connection ${this.id} is ${this.state}`);
    }
    if (size > this.opts.maxFrameBytes) {
      throw new EzipcError(
        "EZIPC_MESSAGE_TOO_LARGE",
        `a frame of ${size} bytes exceeds maxFrameBytes ${this.opts.maxFrameBytes}; nothing was sent`,
      );
    }
    this.put(frameMessage(size, parts, size));
    this.sentSinceTick = true;
    this.stats.framesOut++;
    this.stats.bytesOut += HEADER_BYTES + size;
    const queued = this.ws.bufferedAmount;
    if (queued > this.opts.maxQueuedBytes) {
      this.cutSlowConsumer("maxQueuedBytes", queued);
      return false;
    }
    if (queued < this.opts.sendHighWaterMarkBytes) return true;
    this.watchDrain();
    return false;
  }

  private sendControl(type: number, arg: Uint8Array = new Uint8Array(0)): void {
    if (this.ws.readyState !== OPEN) return;
    this.put(frameMessage(CONTROL_BIT + 1 + arg.length, [Uint8Array.of(type), arg], 1 + arg.length));
    this.sentSinceTick = true;
  }

  drain(): Promise<void> {
    if (this.state === "closed") {
      return Promise.reject(new EzipcError("EZIPC_CONNECTION_CLOSED", `connection ${this.id} is closed`));
    }
    if (this.ws.bufferedAmount < this.opts.sendHighWaterMarkBytes) return Promise.resolve();
    this.watchDrain();
    return nextDrain(this);
  }

  /** Checks bufferedAmount until it is under the high-water mark (then `drain`), cutting a stalled peer. */
  private watchDrain(): void {
    if (this.drainPoll) return;
    this.lastBuffered = this.ws.bufferedAmount;
    this.lastProgressAt = Date.now();
    this.drainPoll = setInterval(() => {
      const queued = this.ws.bufferedAmount;
      const now = Date.now();
      if (queued < this.opts.sendHighWaterMarkBytes) {
        this.stopDrainPoll();
        if (this.state === "open") this.emit("drain");
        return;
      }
      if (queued < this.lastBuffered) {
        this.lastBuffered = queued;
        this.lastProgressAt = now;
      } else if (this.opts.stallTimeoutMs > 0 && now - this.lastProgressAt >= this.opts.stallTimeoutMs) {
        this.cutSlowConsumer("stall", queued);
      }
    }, DRAIN_POLL_MS);
  }

  private stopDrainPoll(): void {
    if (this.drainPoll) clearInterval(this.drainPoll);
    this.drainPoll = null;
  }

  close(reason = ""): Promise<void> {
    if (this.state === "open") {
      this.state = "closing";
      this.emit("closing");
      this.closeInfo ??= { initiator: "local", reason };
      let bytes = ENCODER.encode(reason);
      if (bytes.length > 255) bytes = bytes.subarray(0, 255);
      this.sendControl(ControlType.CLOSE, bytes);
      this.ws.close(1000);
      this.closeTimer = setTimeout(() => this.onSocketClose(), CLOSE_TIMEOUT_MS);
    }
    return this.closed.then(() => undefined);
  }

  destroy(error?: EzipcError): void {
    if (this.state === "closed") return;
    if (error) this.lastWords(error);
    this.closeInfo ??= { initiator: "local", reason: error?.message ?? "destroyed", error };
    this.ws.close(1000);
    this.onSocketClose();
  }

  pause(): void {
    this.paused = true;
  }

  resume(): void {
    this.paused = false;
    while (!this.paused && this.held.length > 0 && this.state !== "closed") {
      const frame = this.held.shift()!;
      this.heldBytes -= frame.length;
      this.emit("message", frame);
    }
  }

  [Symbol.asyncIterator](): AsyncIterator<Buffer> {
    return eventsUntilClosed<Buffer>(this, "message", () => this.state === "closed");
  }

  private onData(data: unknown): void {
    if (this.state === "closed") return;
    if (!(data instanceof ArrayBuffer)) {
      this.fail(new EzipcError("EZIPC_PROTOCOL", `connection ${this.id}: a text WebSocket message`));
      return;
    }
    this.lastRxAt = Date.now();
    this.stats.bytesIn += data.byteLength;
    this.onBytes(Buffer.from(data));
  }

  private readonly onPlain = (bytes: Buffer): void => {
    this.decoder.push(bytes, (payload, control) => this.onFrame(payload, control));
  };

  private onBytes(chunk: Buffer): void {
    try {
      if (this.layer) this.layer.open(chunk, this.onPlain);
      else this.onPlain(chunk);
    } catch (err) {
      this.fail(err as EzipcError);
    }
  }

  private onFrame(payload: Buffer, control: number): void {
    if (control === ControlType.PING) {
      this.sendControl(ControlType.PONG);
    } else if (control === ControlType.PONG) {
      this.stats.pongsIn++;
    } else if (control === ControlType.CLOSE) {
      this.remoteCloseReason = DECODER.decode(payload);
      if (this.state === "open") {
        this.state = "closing";
        this.emit("closing");
      }
      this.ws.close(1000);
    } else if (this.state === "open") {
      this.stats.framesIn++;
      if (this.paused) {
        this.held.push(payload);
        this.heldBytes += payload.length;
        if (this.heldBytes > this.opts.maxQueuedBytes) this.cutSlowConsumer("maxQueuedBytes", this.heldBytes);
      } else {
        this.emit("message", payload);
      }
    }
  }

  private onHeartbeatTick(): void {
    if (this.state !== "open") return;
    const silent = Date.now() - this.lastRxAt;
    if (!this.paused && silent >= this.opts.heartbeatTimeoutMs) {
      this.fail(
        new EzipcError(
          "EZIPC_HEARTBEAT_TIMEOUT",
          `connection ${this.id}: nothing heard from ${this.remoteUrl} for ${silent} ms`,
        ),
      );
      return;
    }
    if (this.paused) this.lastRxAt = Date.now();
    if (!this.sentSinceTick) {
      this.stats.pingsOut++;
      this.sendControl(ControlType.PING);
    }
    this.sentSinceTick = false;
  }

  private cutSlowConsumer(reason: "maxQueuedBytes" | "stall", queuedBytes: number): void {
    if (this.state === "closed") return;
    this.emit("slowConsumer", { reason, queuedBytes });
    this.fail(
      new EzipcError(
        "EZIPC_SLOW_CONSUMER",
        `connection ${this.id}: ${reason === "stall" ? "peer stopped reading" : "queue over maxQueuedBytes"} (${queuedBytes} bytes queued)`,
      ),
    );
  }

  /** Tells the peer why before closing for a fault (a coded CLOSE, as StreamConnection does). */
  private lastWords(error: EzipcError): void {
    if (this.state !== "open") return;
    let reason = ENCODER.encode(`${error.code}: ${error.message}`);
    if (reason.length > 255) reason = reason.subarray(0, 255);
    this.sendControl(ControlType.CLOSE, reason);
  }

  private fail(error: EzipcError): void {
    if (this.state === "closed") return;
    this.lastWords(error);
    this.closeInfo = { initiator: "local", reason: error.message, error };
    this.ws.close(1000);
    this.onSocketClose();
  }

  private onSocketClose(): void {
    if (this.state === "closed") return;
    const was = this.state;
    this.state = "closed";
    if (was === "open") this.emit("closing");
    if (this.heartbeat) clearInterval(this.heartbeat);
    if (this.closeTimer) clearTimeout(this.closeTimer);
    this.stopDrainPoll();
    this.ws.onmessage = null;
    this.held = [];
    this.heldBytes = 0;
    let info = this.closeInfo;
    if (!info || (info.initiator === "remote" && this.remoteCloseReason !== null)) {
      info = peerEnded(this.id, this.remoteCloseReason);
    }
    this.closeInfo = info;
    if (info.error && this.listenerCount("error") > 0) this.emit("error", info.error);
    this.emit("close", info);
    this.resolveClosed(info);
  }
}

/** Opens a WebSocket to `url`, runs the upgrade if any, and resolves with its connection. */
function dialWith(WebSocketImpl: WebSocketClass, url: URL, options: DialOptions): Promise<Connection> {
  const upgrade = (options.upgrade as WithBrowserUpgrade | undefined)?.browserUpgrade;
  if (options.upgrade && !upgrade) {
    return Promise.reject(
      new EzipcError("EZIPC_SECURE_UNAVAILABLE", "this stream upgrade needs node:stream: not in a browser"),
    );
  }
  const opts = resolveConnectionOptions(options);
  const href = url.href;
  return new Promise((resolve, reject) => {
    if (options.signal?.aborted) {
      reject(new EzipcError("EZIPC_CONNECT_ABORTED", `dial ${href} aborted`));
      return;
    }
    let ws: WebSocketLike;
    try {
      ws = new WebSocketImpl(href);
    } catch (err) {
      reject(new EzipcError("EZIPC_INVALID_URL", `${href}: ${(err as Error).message}`, { cause: err }));
      return;
    }
    ws.binaryType = "arraybuffer";
    let settled = false;
    const done = (err: EzipcError | null, layer: ByteLayer | null = null) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      options.signal?.removeEventListener("abort", onAbort);
      ws.onopen = ws.onerror = ws.onclose = ws.onmessage = null;
      if (err) {
        ws.close();
        reject(err);
      } else {
        resolve(new BrowserWsConnection(ws, href, opts, layer));
      }
    };
    const onAbort = () => done(new EzipcError("EZIPC_CONNECT_ABORTED", `dial ${href} aborted`));
    const timer = setTimeout(
      () => done(new EzipcError("EZIPC_CONNECTION_REFUSED", `${href}: no answer within connectTimeoutMs`)),
      options.connectTimeoutMs ?? 10_000,
    );
    options.signal?.addEventListener("abort", onAbort);
    ws.onerror = ws.onclose = () =>
      done(
        new EzipcError(
          "EZIPC_CONNECTION_REFUSED",
          `${href}: the WebSocket could not be opened (no hub there, or it does not admit pages of this origin: its allowOrigins, ezipc serve --allow-origin)`,
        ),
      );
    ws.onopen = () => {
      if (!upgrade) {
        done(null);
        return;
      }
      let onData: (chunk: Buffer) => void = () => {};
      let onClose: (error: EzipcError) => void = () => {};
      ws.onmessage = (ev) => {
        if (ev.data instanceof ArrayBuffer) onData(Buffer.from(ev.data));
        else onClose(new EzipcError("EZIPC_PROTOCOL", "a text WebSocket message during the handshake"));
      };
      ws.onerror = ws.onclose = () =>
        onClose(new EzipcError("EZIPC_HANDSHAKE", `${href}: the hub closed during the handshake`));
      upgrade({
        send: (bytes) => ws.send(bytes),
        onData: (fn) => {
          onData = fn;
        },
        onClose: (fn) => {
          onClose = fn;
        },
      }).then(
        (layer) => done(null, layer),
        (err: unknown) =>
          done(
            err instanceof EzipcError
              ? err
              : new EzipcError("EZIPC_HANDSHAKE", String((err as Error)?.message ?? err), { cause: err }),
          ),
      );
    };
  });
}

/** ws:// or wss:// over `WebSocketImpl` (default: the global `WebSocket`). Dial only: browsers cannot listen. */
export function browserWebSocketTransport(scheme: "ws" | "wss", WebSocketImpl?: WebSocketClass): Transport {
  return {
    scheme,
    listen(): Promise<Listener> {
      return Promise.reject(new EzipcError("EZIPC_INVALID_URL", `${scheme}://: a browser cannot listen`));
    },
    dial(url, options) {
      const impl = WebSocketImpl ?? (globalThis as { WebSocket?: WebSocketClass }).WebSocket;
      if (!impl) {
        return Promise.reject(
          new EzipcError("EZIPC_INVALID_URL", `${scheme}://: no WebSocket in this runtime`),
        );
      }
      return dialWith(impl, url, options);
    },
  };
}
