/**
 * One end of a call's data channel, for streams and sessions: chunks in, with a credit window granted to the
 * peer, and chunks out, spending the peer's credit ({@link Channel}); a session is a channel each way
 * ({@link RpcSession}). The call machinery that opens and ends them is rpc-calls.ts.
 */
import { type ErrorCode, EzipcError } from "../errors.js";
import { END_CANCEL, END_ERROR } from "./rpc-hub.js";
import { type Payload, toBytes } from "./rpc-request.js";

/** What the RPC client needs from its HubClient (kept internal). */
export interface RpcLink {
  nextRid(): number;
  /** Sends now; throws `EZIPC_CONNECTION_CLOSED` when not connected. */
  send(type: string, body: Record<string, unknown>): boolean;
  /** Sends if connected; drops otherwise. */
  trySend(type: string, body: Record<string, unknown>): void;
  serveRequest(topic: string): Promise<void>;
  /** This client stopped serving `topic` (its direct listener closes when it serves nothing). */
  unserved(topic: string): void;
}

/**
 * One end of a call's data channel: chunks in (with a credit window granted to the peer) and, for
 * sessions, chunks out (spending the peer's credit). Used by streams and sessions alike.
 */
export class Channel implements AsyncIterable<Uint8Array> {
  private readonly queue: Uint8Array[] = [];
  private wake: (() => void) | null = null;
  private consumed = 0;
  /** Chunks this end may still send. */
  private sendCredit: number;
  private creditWaiters: (() => void)[] = [];
  private doneFlag = false;
  private error: EzipcError | null = null;
  private closeWaiters: ((e: EzipcError | null) => void)[] = [];

  constructor(
    private readonly link: RpcLink,
    /** The side this end speaks as (its own id space). */
    readonly side: number,
    readonly id: number,
    readonly prefetch: number,
    initialSendCredit: number,
    private readonly onFinish: () => void,
  ) {
    this.sendCredit = initialSendCredit;
  }

  get done(): boolean {
    return this.doneFlag;
  }

  /** Resolves when the channel ends: with null if it ended normally, else the error. */
  closed(): Promise<EzipcError | null> {
    if (this.doneFlag) return Promise.resolve(this.error);
    return new Promise((resolve) => this.closeWaiters.push(resolve));
  }

  /** @internal */
  onChunk(payload: Uint8Array): void {
    if (this.doneFlag) return;
    this.queue.push(payload);
    this.wake?.();
  }

  /** @internal */
  onFlow(n: number): void {
    this.sendCredit += n;
    const waiters = this.creditWaiters;
    this.creditWaiters = [];
    for (const w of waiters) w();
  }

  /** @internal The peer (or the hub) ended the channel. */
  onEnd(error: EzipcError | null): void {
    if (this.doneFlag) return;
    this.doneFlag = true;
    this.error = error;
    this.onFinish();
    this.wake?.();
    for (const w of this.creditWaiters) w();
    this.creditWaiters = [];
    for (const w of this.closeWaiters) w(error);
    this.closeWaiters = [];
  }

  /** Sends one chunk, waiting for the peer's credit first. Rejects once the channel has ended. */
  async send(data: Payload): Promise<void> {
    const payload = toBytes(data);
    while (this.sendCredit <= 0 && !this.doneFlag) {
      await new Promise<void>((resolve) => this.creditWaiters.push(resolve));
    }
    if (this.doneFlag) throw this.error ?? new EzipcError("EZIPC_CONNECTION_CLOSED", "the channel is closed");
    this.sendCredit--;
    this.link.send("chunk", { side: this.side, id: this.id, payload });
  }

  /** Cancels a stream (or closes a session) from this side; the other side's signal/iterator ends. */
  cancel(): void {
    this.end(END_CANCEL, "EZIPC_CANCELLED", "cancelled by the caller");
  }

  /** Ends the channel from this side: `END_OK` with a payload, or a cancel/close. */
  end(status: number, code = "", message = "", payload: Uint8Array = new Uint8Array(0)): void {
    if (this.doneFlag) return;
    // Ended from this side: chunks that arrived but were not read yet are dropped (no more come).
    this.queue.length = 0;
    this.link.trySend("end", { side: this.side, id: this.id, status, code, message, payload });
    this.onEnd(status === END_ERROR ? new EzipcError(code as ErrorCode, message) : null);
  }

  async *[Symbol.asyncIterator](): AsyncGenerator<Uint8Array> {
    while (true) {
      const c = this.queue.shift();
      if (c) {
        this.consumed++;
        if (this.consumed >= Math.max(1, this.prefetch >> 1) && !this.doneFlag) {
          this.link.trySend("flow", { side: this.side, id: this.id, n: this.consumed });
          this.consumed = 0;
        }
        yield c;
        continue;
      }
      if (this.doneFlag) {
        if (this.error) throw this.error;
        return;
      }
      await new Promise<void>((resolve) => {
        this.wake = resolve;
      });
      this.wake = null;
    }
  }
}

/** A two-way, ordered, flow-controlled channel between two clients (AlephZero never built it). */
export class RpcSession implements AsyncIterable<Uint8Array> {
  /** @internal */
  constructor(
    /** @internal */ readonly channel: Channel,
    /** The topic it was opened on. */
    readonly topic: string,
    /** `name#id` of the peer (acceptor side only; empty for the opener). */
    readonly peer: string,
  ) {}

  /** Sends a message; resolves once sent, waiting while the peer's window is full (its reader is slow). */
  send(data: Payload): Promise<void> {
    return this.channel.send(data);
  }

  /** Closes the session from this side; the peer's iterator ends. */
  close(): void {
    this.channel.end(END_CANCEL, "EZIPC_CANCELLED", "session closed by the peer");
  }

  /** Resolves when the session ends: null when closed by either side, an error when the peer died. */
  closed(): Promise<EzipcError | null> {
    return this.channel.closed();
  }

  [Symbol.asyncIterator](): AsyncIterator<Uint8Array> {
    return this.channel[Symbol.asyncIterator]();
  }
}
