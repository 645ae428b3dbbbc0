import { EventEmitter } from "node:events";
import type { Duplex } from "node:stream";
import { type ErrorCode, ErrorCodes, EzipcError, isEzipcError } from "../errors.js";
import { log } from "../log.js";
import { checkDurationMs } from "../ranges.js";
import { counters, newConnectionStats } from "./counters.js";
import { nextDrain } from "./events.js";
import { ControlType, DEFAULT_MAX_FRAME_BYTES, MAX_FRAME_BYTES_LIMIT } from "./frame.js";
import type { FrameBudget } from "./frame-budget.js";
import { FrameDecoder } from "./frame-decoder.js";
import { FrameWriter } from "./frame-writer.js";
import { nextConnectionId } from "./ids.js";
import type {
  CloseInfo,
  Connection,
  ConnectionEvents,
  ConnectionOptions,
  ConnectionStats,
  PeerIdentity,
  StreamUpgrade,
} from "./types.js";

/** Options resolved to numbers. */
export interface ResolvedConnectionOptions {
  maxFrameBytes: number;
  sendHighWaterMarkBytes: number;
  maxQueuedBytes: number;
  stallTimeoutMs: number;
  heartbeatIntervalMs: number;
  heartbeatTimeoutMs: number;
  receiveHighWaterMarkBytes: number;
  frameBudget: FrameBudget | null;
}

/** Fills in defaults and validates option values (RangeError on nonsense). */
export function resolveConnectionOptions(o: ConnectionOptions = {}): ResolvedConnectionOptions {
  const r: ResolvedConnectionOptions = {
    maxFrameBytes: o.maxFrameBytes ?? DEFAULT_MAX_FRAME_BYTES,
    sendHighWaterMarkBytes: o.sendHighWaterMarkBytes ?? 1024 * 1024,
    maxQueuedBytes: o.maxQueuedBytes ?? 64 * 1024 * 1024,
    stallTimeoutMs: o.stallTimeoutMs ?? 10_000,
    heartbeatIntervalMs: o.heartbeatIntervalMs ?? 5_000,
    heartbeatTimeoutMs: o.heartbeatTimeoutMs ?? 15_000,
    receiveHighWaterMarkBytes: o.receiveHighWaterMarkBytes ?? 1024 * 1024,
    frameBudget: o.frameBudget ?? null,
  };
  for (const [k, v] of Object.entries(r)) {
    if (typeof v === "object") continue; // (the budget)
    if (k.endsWith("Ms")) checkDurationMs(k, v);
    else if (!Number.isInteger(v) || v < 0)
      throw new RangeError(`${k} must be a non-negative integer, got ${v}`);
  }
  if (r.maxFrameBytes > MAX_FRAME_BYTES_LIMIT) {
    throw new RangeError(`maxFrameBytes must be at most ${MAX_FRAME_BYTES_LIMIT}`);
  }
  if (r.heartbeatIntervalMs > 0 && r.heartbeatTimeoutMs <= r.heartbeatIntervalMs) {
    throw new RangeError("heartbeatTimeoutMs must be greater than heartbeatIntervalMs");
  }
  return r;
}

/** How long close() waits for the peer before cutting the connection. */
const CLOSE_TIMEOUT_MS = 2_000;
const ENCODER = new TextEncoder();

/** Streams known to let go of a chunk once its write has completed (see {@link markReleasesChunks}). */
const releasing = new WeakSet<Duplex>();

/**
 * Marks `stream` as holding a written chunk no longer once the write's callback has run, so that nothing
 * of what was written is referenced when its `writableLength` is 0: then the connection over it rewrites
 * its write segment, and tells senders they may reuse their buffers (Connection.released). True of a
 * plain `net.Socket` (tcp://, unix://: it copies into the kernel, or keeps the chunk until then), marked by
 * those transports, and of the secure channel, which encrypts into buffers of its own. Not assumed of TLS
 * sockets (OpenSSL's write path is theirs), nor of the in-memory pair, which hands chunks to its peer as
 * they are.
 */
export function markReleasesChunks(stream: Duplex): void {
  releasing.add(stream);
}

/**
 * A {@link Connection} over any byte stream: a `net.Socket` for tcp:// and unix://, or one end of an
 * in-memory pair. Framing, write coalescing, backpressure, slow-consumer cuts and heartbeats live here,
 * once, for every stream transport.
 */
export class StreamConnection extends EventEmitter<ConnectionEvents> implements Connection {
  readonly id = nextConnectionId();
  readonly stats: ConnectionStats = newConnectionStats();
  readonly closed: Promise<CloseInfo>;
  state: "open" | "closing" | "closed" = "open";

  private readonly opts: ResolvedConnectionOptions;
  private readonly decoder: FrameDecoder;
  private readonly writer: FrameWriter;
  private flushScheduled = false;
  private piecesHandler: ((pieces: Buffer[], length: number) => void) | null = null;
  private needDrain = false;
  private drainPromise: Promise<void> | null = null;
  private socketQueued = 0;
  private closeInfo: CloseInfo | null = null;
  private resolveClosed!: (info: CloseInfo) => void;
  private remoteCloseReason: string | null = null;
  private userPaused = false;
  private iteratorPaused = false;
  private closeTimer: NodeJS.Timeout | null = null;
  // heartbeats
  private heartbeatTimer: NodeJS.Timeout | null = null;
  /** Fires when the peer has been silent for heartbeatTimeoutMs (re-armed for what is left otherwise). */
  private silenceTimer: NodeJS.Timeout | null = null;
  private txTicks = 0;
  private lastTxSeen = -1;
  private lastRxAt = Date.now();
  // stall detection
  private stallTimer: NodeJS.Timeout | null = null;
  private handedToSocket = 0;
  private lastDrained = 0;
  private lastProgressAt = 0;

  readonly peer: PeerIdentity | null;

  constructor(
    private readonly socket: Duplex,
    readonly localUrl: string,
    readonly remoteUrl: string,
    options: ResolvedConnectionOptions,
  ) {
    super();
    this.peer = (socket as { peer?: PeerIdentity }).peer ?? null;
    this.opts = options;
    this.decoder = new FrameDecoder(this.opts.maxFrameBytes, undefined, this.opts.frameBudget, (error) => {
      counters.framesTooLarge++;
      log("warn", "transport", "cut to keep incomplete frames within the budget", { id: this.id, error });
      this.fail(error);
    });
    this.releases = releasing.has(socket);
    this.writer = new FrameWriter({
      write: (chunk) => {
        this.handedToSocket += chunk.length;
        this.stats.bytesOut += chunk.length;
        const ok = socket.write(chunk);
        this.socketQueued = socket.writableLength;
        return ok;
      },
      cork: () => socket.cork(),
      uncork: () => socket.uncork(),
      idle: this.releases ? () => socket.writableLength === 0 : undefined,
    });
    this.closed = new Promise((resolve) => {
      this.resolveClosed = resolve;
    });
    socket.on("data", this.onData);
    socket.on("drain", this.onSocketDrain);
    socket.on("end", this.onEnd);
    socket.on("error", this.onSocketError);
    socket.on("close", this.onSocketClose);
    if (this.opts.heartbeatIntervalMs > 0) {
      this.heartbeatTimer = setInterval(this.onHeartbeatTick, this.opts.heartbeatIntervalMs);
      this.heartbeatTimer.unref();
      this.armSilence(this.opts.heartbeatTimeoutMs);
    }
    log("debug", "transport", "connection open", { id: this.id, local: localUrl, remote: remoteUrl });
  }

  get queuedBytes(): number {
    return this.writer.pendingBytes + this.socket.writableLength;
  }

  /** Whether the stream lets go of a chunk once its write has completed (see {@link releasesChunks}). */
  private readonly releases: boolean;

  released(): boolean {
    return this.releases && !this.writer.holdsChunks && this.socket.writableLength === 0;
  }

  send(frame: Uint8Array, length = frame.length): boolean {
    this.checkSend(length);
    if (length > frame.length || length < 0) throw new RangeError(`length ${length} is outside the frame`);
    return this.queued(this.writer.writeData(frame, length));
  }

  sendParts(head: Uint8Array, body: Uint8Array, more?: readonly Uint8Array[]): boolean {
    let size = head.length + body.length;
    if (more !== undefined) for (const m of more) size += m.length;
    this.checkSend(size);
    return this.queued(this.writer.writeParts(head, body, more));
  }

  setPiecesHandler(handler: ((pieces: Buffer[], length: number) => void) | null): void {
    this.piecesHandler = handler;
  }

  private checkSend(length: number): void {
    if (this.state !== "open") {
      throw new EzipcError("EZIPC_CONNECTION_CLOSED", `connection ${this.id} is ${this.state}`);
    }
    if (length > this.opts.maxFrameBytes) {
      throw new EzipcError(
        "EZIPC_MESSAGE_TOO_LARGE",
        `a frame of ${length} bytes exceeds maxFrameBytes ${this.opts.maxFrameBytes}; nothing was sent`,
      );
    }
  }

  /** After a frame was given to the writer (`written`: what a flush it did returned): the send() result. */
  private queued(written: boolean): boolean {
    this.stats.framesOut++;
    this.txTicks++;
    if (!written) this.watchStall(); // the writer flushed and the socket is full
    if (!this.flushScheduled) {
      this.flushScheduled = true;
      process.nextTick(this.flushNow);
    }
    // socketQueued is the socket's buffer as of the last flush: it only shrinks between flushes, so this
    // over-estimates at worst, and costs no getter per message.
    let queued = this.writer.pendingBytes + this.socketQueued;
    if (queued < this.opts.sendHighWaterMarkBytes) return true;
    queued = this.queuedBytes;
    if (queued < this.opts.sendHighWaterMarkBytes) return true;
    if (queued > this.opts.maxQueuedBytes) {
      this.cutSlowConsumer("maxQueuedBytes", queued);
    } else {
      this.needDrain = true;
      this.flushNow(); // hand it to the socket now so its 'drain' will tell us when it is gone
    }
    return false;
  }

  drain(): Promise<void> {
    if (this.state === "closed") {
      return Promise.reject(new EzipcError("EZIPC_CONNECTION_CLOSED", `connection ${this.id} is closed`));
    }
    if (this.queuedBytes < this.opts.sendHighWaterMarkBytes) return Promise.resolve();
    this.needDrain = true;
    // One shared promise however many callers wait.
    this.drainPromise ??= nextDrain(this).finally(() => {
      this.drainPromise = null;
    });
    return this.drainPromise;
  }

  close(reason = ""): Promise<void> {
    if (this.state === "open") {
      this.beginClosing();
      this.writer.writeControl(ControlType.CLOSE, ENCODER.encode(reason.slice(0, 256)));
      this.flushNow();
      this.closeInfo = { initiator: "local", reason };
      this.socket.end();
      this.socket.resume(); // read on to the peer's end, even if the consumer had paused
      // Kept referenced: a close in progress holds the process for at most CLOSE_TIMEOUT_MS.
      this.closeTimer = setTimeout(() => this.socket.destroy(), CLOSE_TIMEOUT_MS);
    }
    return this.closed.then(() => undefined);
  }

  destroy(error?: EzipcError): void {
    if (this.state === "closed") return;
    if (error) this.lastWords(error);
    if (!this.closeInfo || error) {
      this.closeInfo = error
        ? { initiator: "local", reason: error.message, error }
        : { initiator: "local", reason: "destroyed" };
    }
    this.beginClosing();
    this.socket.destroy();
  }

  pause(): void {
    this.userPaused = true;
    this.socket.pause();
  }

  resume(): void {
    this.userPaused = false;
    if (!this.iteratorPaused) this.socket.resume();
  }

  /** Frames in order; reading pauses while more than receiveHighWaterMarkBytes wait for the consumer. */
  async *[Symbol.asyncIterator](): AsyncIterator<Buffer> {
    const queue: Buffer[] = [];
    let head = 0;
    let queuedBytes = 0;
    let wake: (() => void) | null = null;
    const onMessage = (frame: Buffer) => {
      queue.push(frame);
      queuedBytes += frame.length;
      if (queuedBytes >= this.opts.receiveHighWaterMarkBytes && !this.iteratorPaused) {
        this.iteratorPaused = true;
        this.socket.pause();
      }
      wake?.();
    };
    const onClose = () => wake?.();
    this.on("message", onMessage);
    this.on("close", onClose);
    try {
      while (true) {
        if (head < queue.length) {
          const frame = queue[head]!;
          queue[head++] = undefined as unknown as Buffer;
          if (head > 1024 && head * 2 > queue.length) {
            queue.splice(0, head);
            head = 0;
          }
          queuedBytes -= frame.length;
          if (this.iteratorPaused && queuedBytes < this.opts.receiveHighWaterMarkBytes / 2) {
            this.iteratorPaused = false;
            if (!this.userPaused) this.socket.resume();
          }
          yield frame;
          continue;
        }
        if (this.state === "closed") return;
        await new Promise<void>((resolve) => {
          wake = resolve;
        });
        wake = null;
      }
    } finally {
      this.off("message", onMessage);
      this.off("close", onClose);
      if (this.iteratorPaused) {
        this.iteratorPaused = false;
        if (!this.userPaused && this.state !== "closed") this.socket.resume();
      }
    }
  }

  // ---- internals -------------------------------------------------------------------------------

  private readonly flushNow = (): void => {
    this.flushScheduled = false;
    if (this.writer.pendingBytes === 0) return;
    if (!this.writer.flush()) this.watchStall();
    else if (this.needDrain) this.checkDrain();
  };

  /** Emits `drain` (on the next tick, never inside send) once the queue is below the high-water mark. */
  private checkDrain(): void {
    if (this.needDrain && this.state !== "closed" && this.queuedBytes < this.opts.sendHighWaterMarkBytes) {
      this.needDrain = false;
      process.nextTick(() => this.emit("drain"));
    }
  }

  private readonly onData = (chunk: Buffer): void => {
    this.lastRxAt = Date.now();
    this.stats.bytesIn += chunk.length;
    try {
      this.decoder.push(chunk, this.onFrame, this.piecesHandler === null ? undefined : this.onPieces);
    } catch (err) {
      if (
        err instanceof EzipcError &&
        (err.code === "EZIPC_FRAME_TOO_LARGE" || err.code === "EZIPC_PROTOCOL")
      ) {
        if (err.code === "EZIPC_FRAME_TOO_LARGE") counters.framesTooLarge++;
        else counters.protocolErrors++;
        log("warn", "transport", "bad frame from peer", { id: this.id, remote: this.remoteUrl, error: err });
        this.fail(err);
        return;
      }
      throw err;
    }
  };

  private readonly onFrame = (payload: Buffer, control: number): void => {
    if (control === 0) {
      this.stats.framesIn++;
      if (this.state !== "closed") this.emit("message", payload);
      return;
    }
    if (control === ControlType.PING) {
      if (this.state === "open") {
        this.writer.writeControl(ControlType.PONG);
        this.flushNow();
      }
    } else if (control === ControlType.PONG) {
      this.stats.pongsIn++;
    } else if (control === ControlType.CLOSE) {
      this.remoteCloseReason = payload.toString("utf8");
      if (this.state === "open") {
        this.beginClosing();
        this.flushNow();
        this.socket.end();
      }
    }
  };

  private readonly onPieces = (pieces: Buffer[], length: number): void => {
    this.stats.framesIn++;
    if (this.state === "closed") return;
    if (this.piecesHandler !== null) this.piecesHandler(pieces, length);
    else this.emit("message", Buffer.concat(pieces, length));
  };

  private readonly onSocketDrain = (): void => {
    this.stopStallWatch();
    this.checkDrain();
  };

  private readonly onEnd = (): void => {
    // The peer finished writing. Without a CLOSE frame first, it died or was cut.
    if (this.state === "open") {
      this.beginClosing();
      this.flushNow();
      this.socket.end();
    }
  };

  private readonly onSocketError = (err: NodeJS.ErrnoException): void => {
    // A reset after the peer's CLOSE (a peer that closed for a fault resets at once): the CLOSE says why.
    if (!this.closeInfo && this.remoteCloseReason !== null)
      this.closeInfo = remoteCloseInfo(this.remoteCloseReason);
    if (!this.closeInfo) {
      // An upgraded stream's own coded error (e.g. EZIPC_DECRYPT) is kept; socket errors are resets.
      const error = isEzipcError(err)
        ? err
        : new EzipcError("EZIPC_CONNECTION_RESET", `connection ${this.id}: ${err.message}`, {
            cause: err,
          });
      this.closeInfo = { initiator: "remote", reason: error.message, error };
    }
  };

  private readonly onSocketClose = (): void => {
    if (this.state === "closed") return;
    this.state = "closed";
    if (this.heartbeatTimer) clearInterval(this.heartbeatTimer);
    if (this.silenceTimer) clearTimeout(this.silenceTimer);
    if (this.closeTimer) clearTimeout(this.closeTimer);
    this.stopStallWatch();
    this.decoder.release(); // an incomplete frame's bytes go back to a shared budget
    const info = this.closeInfo ?? peerEnded(this.id, this.remoteCloseReason);
    this.closeInfo = info;
    log("debug", "transport", "connection closed", { id: this.id, remote: this.remoteUrl, ...info });
    if (info.error && this.listenerCount("error") > 0) this.emit("error", info.error);
    this.emit("close", info);
    this.resolveClosed(info);
  };

  private armSilence(ms: number): void {
    this.silenceTimer = setTimeout(this.onSilence, ms);
    this.silenceTimer.unref();
  }

  /** The silence bound is checked when it can first be reached, not on the next heartbeat tick. */
  private readonly onSilence = (): void => {
    this.silenceTimer = null;
    if (this.state === "closed") return;
    const now = Date.now();
    // While we do not read (paused), the peer's silence is ours: it does not count.
    if (this.userPaused || this.iteratorPaused) this.lastRxAt = now;
    const silent = now - this.lastRxAt;
    if (silent < this.opts.heartbeatTimeoutMs) {
      this.armSilence(this.opts.heartbeatTimeoutMs - silent);
      return;
    }
    counters.heartbeatTimeouts++;
    this.fail(
      new EzipcError(
        "EZIPC_HEARTBEAT_TIMEOUT",
        `connection ${this.id}: nothing heard from ${this.remoteUrl} for ${silent} ms`,
      ),
    );
  };

  private readonly onHeartbeatTick = (): void => {
    if (this.txTicks === this.lastTxSeen && this.state === "open") {
      this.stats.pingsOut++;
      this.writer.writeControl(ControlType.PING);
      this.flushNow();
    }
    this.lastTxSeen = this.txTicks;
  };

  private watchStall(): void {
    if (this.stallTimer || this.opts.stallTimeoutMs === 0) return;
    this.lastDrained = this.handedToSocket - this.socket.writableLength;
    this.lastProgressAt = Date.now();
    const period = Math.max(10, Math.floor(this.opts.stallTimeoutMs / 4));
    this.stallTimer = setInterval(() => {
      const drained = this.handedToSocket - this.socket.writableLength;
      const now = Date.now();
      if (drained > this.lastDrained) {
        this.lastDrained = drained;
        this.lastProgressAt = now;
      } else if (now - this.lastProgressAt >= this.opts.stallTimeoutMs) {
        this.cutSlowConsumer("stall", this.queuedBytes);
      }
    }, period);
    this.stallTimer.unref();
  }

  private stopStallWatch(): void {
    if (this.stallTimer) {
      clearInterval(this.stallTimer);
      this.stallTimer = null;
    }
  }

  private cutSlowConsumer(reason: "maxQueuedBytes" | "stall", queuedBytes: number): void {
    if (this.state === "closed") return;
    counters.slowConsumers++;
    log("warn", "transport", "slow consumer cut", {
      id: this.id,
      remote: this.remoteUrl,
      reason,
      queuedBytes,
    });
    this.emit("slowConsumer", { reason, queuedBytes });
    this.fail(
      new EzipcError(
        "EZIPC_SLOW_CONSUMER",
        `connection ${this.id}: ${reason === "stall" ? "peer stopped reading" : "queue over maxQueuedBytes"} (${queuedBytes} bytes queued)`,
      ),
    );
  }

  /** Stops taking frames: `closing` tells the owner at once (close follows once the socket is done). */
  private beginClosing(): void {
    const was = this.state;
    this.state = "closing";
    if (was === "open") this.emit("closing");
  }

  /**
   * Before closing for a fault, tells the peer why, best effort: a CLOSE whose reason starts with the code
   * (`EZIPC_DECODE: …`), so that a client in any language can report it. What the socket cannot take at
   * once is dropped with the connection.
   */
  private lastWords(error: EzipcError): void {
    if (this.state !== "open") return;
    let reason = `${error.code}: ${error.message}`;
    while (Buffer.byteLength(reason) > 255) reason = reason.slice(0, -1);
    this.writer.writeControl(ControlType.CLOSE, ENCODER.encode(reason));
    this.flushNow();
  }

  /** Closes at once because of a fault. */
  private fail(error: EzipcError): void {
    if (this.state === "closed") return;
    this.lastWords(error);
    this.closeInfo = { initiator: "local", reason: error.message, error };
    this.beginClosing();
    this.decoder.release(error); // at once: the socket's close event comes later
    this.socket.destroy();
  }
}

/**
 * How a CLOSE from the peer ends the connection: gracefully, unless its reason starts with an error code
 * (`EZIPC_DECODE: …`, see {@link StreamConnection.lastWords}): then the peer closed it for that fault.
 */
/**
 * How a connection ended by its peer closed: as the peer's CLOSE said (`reason`), or, without one, reset
 * (`EZIPC_CONNECTION_RESET`: the peer died or was cut).
 */
export function peerEnded(id: number, reason: string | null): CloseInfo {
  if (reason !== null) return remoteCloseInfo(reason);
  const error = new EzipcError(
    "EZIPC_CONNECTION_RESET",
    `connection ${id}: the peer ended the connection without closing it`,
  );
  return { initiator: "remote", reason: error.message, error };
}

export function remoteCloseInfo(reason: string): CloseInfo {
  const coded = /^(EZIPC_[A-Z_]+): ([\s\S]*)$/.exec(reason);
  if (coded && Object.hasOwn(ErrorCodes, coded[1]!)) {
    return { initiator: "remote", reason, error: new EzipcError(coded[1] as ErrorCode, coded[2]!) };
  }
  return { initiator: "remote", reason };
}

/**
 * A dialled stream as a connection: through `upgrade` first, if given (the stream is destroyed if the
 * upgrade fails).
 */
export async function dialledConnection(
  stream: Duplex,
  localUrl: string,
  remoteUrl: string,
  options: ResolvedConnectionOptions,
  upgrade: StreamUpgrade | undefined,
): Promise<StreamConnection> {
  if (!upgrade) return new StreamConnection(stream, localUrl, remoteUrl, options);
  let upgraded: Duplex;
  try {
    upgraded = await upgrade(stream, { side: "dial", remoteUrl });
  } catch (err) {
    stream.destroy();
    throw err;
  }
  return new StreamConnection(upgraded, localUrl, remoteUrl, options);
}
