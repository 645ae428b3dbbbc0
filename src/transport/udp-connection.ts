/**
 * One udp:// connection: a dialled socket's, or a *renter* of a listening socket (the seed's lessor and
 * renter, src/transport/udp.ts). The same {@link Connection} as the stream transports, over datagrams
 * (src/transport/datagram.ts): one frame per datagram; heartbeats (PING/PONG) and a CLOSE datagram with the
 * reason, as on streams — but nothing is retransmitted, so datagrams may be lost, duplicated or reordered
 * (docs/transport.md says what ezipc adds: sequence numbers that drop duplicates and late datagrams, and
 * counters of every drop).
 *
 * - `send` throws `EZIPC_MESSAGE_TOO_LARGE` for a frame that does not fit one datagram (`maxDatagramBytes`
 *   minus the header). Backpressure is the local send queue: `send` returns false at
 *   `sendHighWaterMarkBytes` queued, `drain` follows; more than `maxQueuedBytes` queued cuts the
 *   connection (`EZIPC_SLOW_CONSUMER`).
 * - A datagram cannot be refused: while paused, frames are held up to `receiveHighWaterMarkBytes`, and
 *   later ones are dropped (counted as `overflow`). Malformed datagrams are dropped and counted; they do not
 *   close the connection (anyone can send one from a forged address).
 */
import { EventEmitter } from "node:events";
import { EzipcError } from "../errors.js";
import { newConnectionStats } from "./counters.js";
import {
  datagramHeaderBytes,
  KIND_CLOSE,
  KIND_DATA,
  KIND_HANDSHAKE,
  KIND_PING,
  KIND_PONG,
  KIND_SEALED,
  parseDatagram,
  SequenceWindow,
  writeDatagramHeader,
} from "./datagram.js";
import { eventsUntilClosed, nextDrain } from "./events.js";
import { partsLength, payloadParts } from "./frame.js";
import { nextConnectionId } from "./ids.js";
import { type ResolvedConnectionOptions, remoteCloseInfo } from "./stream-connection.js";
import type {
  CloseInfo,
  Connection,
  ConnectionEvents,
  ConnectionStats,
  DatagramHandshake,
  DatagramSession,
  PeerIdentity,
} from "./types.js";

/** udp:// options, resolved. */
export interface ResolvedUdpOptions {
  maxDatagramBytes: number;
  sequence: boolean;
}

/** Datagrams a connection dropped, by reason. */
export interface DatagramDrops {
  /** Not a datagram of this format. */
  malformed: number;
  /** A sequence number seen before. */
  duplicate: number;
  /** A sequence number older than the newest delivered (reordered or late). */
  stale: number;
  /** Arrived while paused with `receiveHighWaterMarkBytes` already held. */
  overflow: number;
  /** Encrypted connections: a nonce already delivered. */
  replayed: number;
  /** Encrypted connections: failed authentication (tampered, or not from the peer). */
  forged: number;
  /** Encrypted connections: a nonce older than the anti-replay window remembers. */
  tooOld: number;
  /** Encrypted connections: a datagram that was not sealed (a plain PING or CLOSE, a stray hello: from anyone). */
  unsealed: number;
}

/** An encrypted connection's keys, and (a renter) the handshake that made them, to answer a repeated hello. */
export interface DatagramSecuring {
  session: DatagramSession;
  handshake: DatagramHandshake | null;
}

/** How a connection reaches its socket. */
export interface DatagramIo {
  /** Sends one datagram; `done` when the socket has taken it (or failed). */
  send(datagram: Buffer, done: (err?: Error | null) => void): void;
  /** The connection is closed: forget it (a renter) or close the socket (a dialled connection). */
  release(): void;
}

const ENCODER = new TextEncoder();
const DECODER = new TextDecoder();

export class UdpConnection extends EventEmitter<ConnectionEvents> implements Connection {
  readonly id = nextConnectionId();
  readonly peer: PeerIdentity | null;
  state: "open" | "closing" | "closed" = "open";
  readonly stats: ConnectionStats = newConnectionStats();
  readonly drops: DatagramDrops = {
    malformed: 0,
    duplicate: 0,
    stale: 0,
    overflow: 0,
    replayed: 0,
    forged: 0,
    tooOld: 0,
    unsealed: 0,
  };
  readonly closed: Promise<CloseInfo>;
  queuedBytes = 0;

  private resolveClosed!: (info: CloseInfo) => void;
  private nextSeq = 1;
  private readonly window = new SequenceWindow();
  private held: Buffer[] = [];
  private heldBytes = 0;
  private paused = false;
  private lastRxAt = Date.now();
  private sentSinceTick = false;
  private wantsDrain = false;
  /** Datagrams handed to the socket and not yet taken; the socket is released once none is left. */
  private pendingSends = 0;
  private releasePending = false;
  private readonly heartbeat: ReturnType<typeof setInterval> | null = null;
  /** Largest payload of one DATA datagram. */
  readonly maxPayloadBytes: number;

  /** @internal made by the udp:// transport */
  constructor(
    private readonly io: DatagramIo,
    readonly localUrl: string,
    readonly remoteUrl: string,
    private readonly opts: ResolvedConnectionOptions,
    private readonly udp: ResolvedUdpOptions,
    private readonly securing: DatagramSecuring | null = null,
  ) {
    super();
    this.peer = securing?.session.peer ?? null;
    this.maxPayloadBytes = Math.min(
      opts.maxFrameBytes,
      udp.maxDatagramBytes - datagramHeaderBytes(udp.sequence) - (securing?.session.overheadBytes ?? 0),
    );
    this.closed = new Promise((resolve) => {
      this.resolveClosed = resolve;
    });
    if (opts.heartbeatIntervalMs > 0) {
      this.heartbeat = setInterval(() => this.onHeartbeatTick(), opts.heartbeatIntervalMs);
      this.heartbeat.unref();
    }
  }

  send(frame: Uint8Array, length = frame.length): boolean {
    return this.sendData([length === frame.length ? frame : frame.subarray(0, length)], length);
  }

  sendParts(head: Uint8Array, body: Uint8Array, more?: readonly Uint8Array[]): boolean {
    const parts = payloadParts(head, body, more);
    return this.sendData(parts, partsLength(parts));
  }

  private sendData(parts: readonly Uint8Array[], size: number): boolean {
    if (this.state !== "open") {
      throw new EzipcError("EZIPC_CONNECTION_CLOSED", `connection ${this.id} is ${this.state}`);
    }
    if (size > this.maxPayloadBytes) {
      throw new EzipcError(
        "EZIPC_MESSAGE_TOO_LARGE",
        `a frame of ${size} bytes does not fit one datagram (at most ${this.maxPayloadBytes} bytes: maxDatagramBytes ${this.udp.maxDatagramBytes})`,
      );
    }
    const seq = this.udp.sequence ? this.nextSeq++ : 0;
    const d = Buffer.allocUnsafe(datagramHeaderBytes(this.udp.sequence) + size);
    let at = writeDatagramHeader(d, KIND_DATA, seq);
    for (const p of parts) {
      d.set(p, at);
      at += p.length;
    }
    this.stats.framesOut++;
    this.stats.bytesOut += d.length;
    this.put(d);
    if (this.queuedBytes > this.opts.maxQueuedBytes) {
      this.emit("slowConsumer", { reason: "maxQueuedBytes", queuedBytes: this.queuedBytes });
      this.fail(
        new EzipcError(
          "EZIPC_SLOW_CONSUMER",
          `connection ${this.id}: send queue over maxQueuedBytes (${this.queuedBytes} bytes queued)`,
        ),
      );
      return false;
    }
    if (this.queuedBytes < this.opts.sendHighWaterMarkBytes) return true;
    this.wantsDrain = true;
    return false;
  }

  /**
   * Hands one datagram to the socket (sealed first on an encrypted connection, unless `raw`), counting it as
   * queued until the socket has taken it.
   */
  private put(plain: Buffer, raw = false): void {
    const d = this.securing && !raw ? this.securing.session.seal(plain) : plain;
    this.sentSinceTick = true;
    this.queuedBytes += d.length;
    this.pendingSends++;
    this.io.send(d, () => {
      this.queuedBytes -= d.length;
      if (--this.pendingSends === 0 && this.releasePending) {
        this.releasePending = false;
        this.io.release();
      }
      if (this.wantsDrain && this.queuedBytes < this.opts.sendHighWaterMarkBytes && this.state === "open") {
        this.wantsDrain = false;
        this.emit("drain");
      }
    });
  }

  private sendControl(kind: number, arg: Uint8Array = new Uint8Array(0)): void {
    const d = Buffer.allocUnsafe(1 + arg.length);
    writeDatagramHeader(d, kind, 0);
    d.set(arg, 1);
    this.put(d);
  }

  drain(): Promise<void> {
    if (this.state === "closed") {
      return Promise.reject(new EzipcError("EZIPC_CONNECTION_CLOSED", `connection ${this.id} is closed`));
    }
    if (this.queuedBytes < this.opts.sendHighWaterMarkBytes) return Promise.resolve();
    this.wantsDrain = true;
    return nextDrain(this);
  }

  /** Tells the peer `reason` (one CLOSE datagram, not retransmitted) and closes. */
  async close(reason = ""): Promise<void> {
    if (this.state === "open") {
      let bytes = ENCODER.encode(reason);
      if (bytes.length > 255) bytes = bytes.subarray(0, 255);
      this.sendControl(KIND_CLOSE, bytes);
      this.finish({ initiator: "local", reason });
    }
    await this.closed;
  }

  destroy(error?: EzipcError): void {
    if (this.state === "closed") return;
    if (error) this.fail(error);
    else this.finish({ initiator: "local", reason: "destroyed" });
  }

  pause(): void {
    this.paused = true;
  }

  resume(): void {
    this.paused = false;
    while (!this.paused && this.held.length > 0 && this.state === "open") {
      const frame = this.held.shift()!;
      this.heldBytes -= frame.length;
      this.emit("message", frame);
    }
  }

  [Symbol.asyncIterator](): AsyncIterator<Buffer> {
    return eventsUntilClosed<Buffer>(this, "message", () => this.state === "closed");
  }

  /**
   * @internal A dialled connection says hello with one PING: the lessor makes its renter at once (without
   * waiting for data), and the PONG is the first sign the peer is there.
   */
  announce(): void {
    this.stats.pingsOut++;
    this.sendControl(KIND_PING);
  }

  /** @internal One datagram from the peer (the socket's owner routes it here). */
  receive(datagram: Buffer): void {
    if (this.state === "closed") return;
    let d = datagram;
    if (this.securing) {
      if (d[0] === KIND_SEALED) {
        const opened = this.securing.session.open(d);
        if (typeof opened === "string") {
          this.drops[opened]++;
          return;
        }
        d = opened;
      } else if (d[0] === KIND_HANDSHAKE && this.securing.handshake) {
        // The peer did not get the answer to its hello: the same answer again (a different hello is ignored).
        const step = this.securing.handshake.receive(d);
        if (!step.reply) this.drops.unsealed++;
        else if (this.state === "open") this.put(step.reply, true);
        return;
      } else {
        this.drops.unsealed++;
        return;
      }
    }
    const parsed = parseDatagram(d);
    if (!parsed) {
      this.drops.malformed++;
      return;
    }
    if (parsed.seq !== 0) {
      const verdict = this.window.accept(parsed.seq);
      if (verdict !== "new") {
        this.drops[verdict]++;
        return;
      }
    }
    this.lastRxAt = Date.now();
    this.stats.bytesIn += datagram.length;
    switch (parsed.kind) {
      case KIND_DATA:
        if (this.state !== "open") return;
        this.stats.framesIn++;
        if (!this.paused) {
          this.emit("message", parsed.body);
          return;
        }
        if (this.heldBytes + parsed.body.length > this.opts.receiveHighWaterMarkBytes) {
          this.drops.overflow++;
          return;
        }
        this.held.push(parsed.body);
        this.heldBytes += parsed.body.length;
        return;
      case KIND_PING:
        if (this.state === "open") this.sendControl(KIND_PONG);
        return;
      case KIND_PONG:
        this.stats.pongsIn++;
        return;
      default:
        this.finish(remoteCloseInfo(DECODER.decode(parsed.body)));
    }
  }

  private onHeartbeatTick(): void {
    if (this.state !== "open") return;
    const silent = Date.now() - this.lastRxAt;
    if (silent >= this.opts.heartbeatTimeoutMs) {
      this.fail(
        new EzipcError(
          "EZIPC_HEARTBEAT_TIMEOUT",
          `connection ${this.id}: nothing heard from ${this.remoteUrl} for ${silent} ms`,
        ),
      );
      return;
    }
    if (!this.sentSinceTick) {
      this.stats.pingsOut++;
      this.sendControl(KIND_PING);
    }
    this.sentSinceTick = false;
  }

  /** Closes for a fault, telling the peer the code first (a CLOSE datagram `EZIPC_…: message`). */
  private fail(error: EzipcError): void {
    if (this.state === "closed") return;
    if (this.state === "open") {
      let reason = ENCODER.encode(`${error.code}: ${error.message}`);
      if (reason.length > 255) reason = reason.subarray(0, 255);
      this.sendControl(KIND_CLOSE, reason);
    }
    this.finish({ initiator: "local", reason: error.message, error });
  }

  private finish(info: CloseInfo): void {
    if (this.state === "closed") return;
    const was = this.state;
    this.state = "closed";
    if (was === "open") this.emit("closing");
    if (this.heartbeat) clearInterval(this.heartbeat);
    this.held = [];
    this.heldBytes = 0;
    // The last datagrams (a CLOSE) go out before the socket does.
    if (this.pendingSends === 0) this.io.release();
    else this.releasePending = true;
    if (info.error && this.listenerCount("error") > 0) this.emit("error", info.error);
    this.emit("close", info);
    this.resolveClosed(info);
  }
}
