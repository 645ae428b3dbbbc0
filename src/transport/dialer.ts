import { EventEmitter } from "node:events";
import { EzipcError } from "../errors.js";
import { log } from "../log.js";
import { checkDurationMs } from "../ranges.js";
import { dial } from "./registry.js";
import type { CloseInfo, Connection, DialOptions } from "./types.js";

/** Backoff between reconnect attempts: `initialDelayMs · factor^(n-1)`, capped, minus up to `jitter` of it. */
export interface ReconnectOptions {
  /** Delay before the first retry. Default 100 ms. */
  initialDelayMs?: number;
  /** Largest delay. Default 5 s. */
  maxDelayMs?: number;
  /** Growth per attempt. Default 2. */
  factor?: number;
  /** Fraction of each delay drawn at random and taken off (0 to 1), so clients do not retry in step. Default 0.3. */
  jitter?: number;
  /** Attempts after which the dialer gives up and closes (counting from the last success). Default: unbounded. */
  maxAttempts?: number;
}

/** Options of a {@link Dialer}. */
export interface DialerOptions extends DialOptions {
  /** Backoff settings, or `false` to never reconnect. */
  reconnect?: ReconnectOptions | false;
  /**
   * Whether a connection counts as a success (resetting the backoff and the attempt count) once it opens
   * (default), or only once the layer above calls {@link Dialer.established} — after its own handshake, so
   * that a server that accepts and closes at once is retried with a growing delay, not every 100 ms.
   */
  resetOnConnect?: boolean;
}

/** The lifecycle of a {@link Dialer}, as a discriminated union (nats.js style). */
export type DialerStatus =
  | { type: "connecting"; attempt: number }
  | { type: "connected"; connection: Connection }
  | { type: "disconnected"; info: CloseInfo }
  | { type: "reconnecting"; attempt: number; delayMs: number; error: EzipcError }
  | { type: "closed"; error?: EzipcError };

export interface DialerEvents {
  status: [status: DialerStatus];
  /** A new connection is open (the first, or after a reconnect). */
  connection: [conn: Connection];
}

/** Computes the delay before reconnect attempt `attempt` (1-based). */
export function backoffDelay(attempt: number, o: Required<ReconnectOptions>, random = Math.random): number {
  const base = Math.min(o.maxDelayMs, o.initialDelayMs * o.factor ** (attempt - 1));
  return Math.round(base * (1 - o.jitter * random()));
}

/**
 * A connector (seed 003) that keeps one connection to `url` open: it dials, and after every loss dials
 * again with exponential backoff and jitter until {@link close} (or maxAttempts). `url` may list several
 * addresses separated by commas (the hubs of a cluster, docs/cluster.md): each attempt dials the next one
 * in turn, so a failed or lost address is followed by another.
 *
 * Each open connection is a new {@link Connection} (`connection` event); what was queued on a lost one is
 * gone, and the layer above resynchronises. Status changes come as `status` events and from
 * {@link statuses}.
 *
 * @example
 * const dialer = new Dialer("tcp://127.0.0.1:7700");
 * dialer.on("connection", (conn) => conn.send(hello));
 * for await (const s of dialer.statuses()) console.log(s.type);
 */
export class Dialer extends EventEmitter<DialerEvents> {
  /** The open connection, or null between connections. */
  connection: Connection | null = null;
  /** The latest status. */
  status: DialerStatus = { type: "connecting", attempt: 1 };

  private readonly backoff: Required<ReconnectOptions> | null;
  private readonly abort = new AbortController();
  private retryTimer: NodeJS.Timeout | null = null;
  private attempt = 0;
  private closedFlag = false;
  /** The addresses `url` lists, dialled in turn. */
  readonly urls: readonly string[];
  private turn = 0;

  constructor(
    readonly url: string,
    private readonly options: DialerOptions = {},
  ) {
    super();
    this.urls = url
      .split(",")
      .map((u) => u.trim())
      .filter((u) => u !== "");
    if (this.urls.length === 0) throw new EzipcError("EZIPC_INVALID_URL", "no address to dial");
    const r = options.reconnect;
    this.backoff =
      r === false
        ? null
        : {
            initialDelayMs: r?.initialDelayMs ?? 100,
            maxDelayMs: r?.maxDelayMs ?? 5_000,
            factor: r?.factor ?? 2,
            jitter: r?.jitter ?? 0.3,
            maxAttempts: r?.maxAttempts ?? Number.POSITIVE_INFINITY,
          };
    if (this.backoff) {
      const b = this.backoff;
      if (!(b.jitter >= 0 && b.jitter <= 1)) throw new RangeError("reconnect.jitter must be between 0 and 1");
      checkDurationMs("reconnect.initialDelayMs", b.initialDelayMs);
      checkDurationMs("reconnect.maxDelayMs", b.maxDelayMs);
      if (!(Number.isFinite(b.factor) && b.factor >= 1)) {
        throw new RangeError(`reconnect.factor must be a finite number ≥ 1, got ${b.factor}`);
      }
      if (
        !(
          b.maxAttempts === Number.POSITIVE_INFINITY ||
          (Number.isInteger(b.maxAttempts) && b.maxAttempts >= 0)
        )
      ) {
        throw new RangeError(`reconnect.maxAttempts must be a non-negative integer, got ${b.maxAttempts}`);
      }
    }
    if (options.connectTimeoutMs !== undefined) checkDurationMs("connectTimeoutMs", options.connectTimeoutMs);
    options.signal?.addEventListener("abort", () => void this.close(), { once: true });
    queueMicrotask(() => void this.connect());
  }

  /** The open connection is a success (see `resetOnConnect`): the next loss starts the backoff afresh. */
  established(): void {
    this.attempt = 0;
  }

  /** Resolves with the open connection, now or when the next one opens; rejects if the dialer closes first. */
  connected(): Promise<Connection> {
    if (this.connection) return Promise.resolve(this.connection);
    if (this.status.type === "closed") return Promise.reject(this.closedError());
    return new Promise((resolve, reject) => {
      const onStatus = (s: DialerStatus) => {
        if (s.type === "connected") {
          this.off("status", onStatus);
          resolve(s.connection);
        } else if (s.type === "closed") {
          this.off("status", onStatus);
          reject(this.closedError());
        }
      };
      this.on("status", onStatus);
    });
  }

  /** Every status from now on, ending after `closed`. */
  async *statuses(): AsyncIterable<DialerStatus> {
    const queue: DialerStatus[] = [];
    let wake: (() => void) | null = null;
    const onStatus = (s: DialerStatus) => {
      queue.push(s);
      wake?.();
    };
    this.on("status", onStatus);
    try {
      if (this.status.type === "closed") {
        yield this.status;
        return;
      }
      while (true) {
        const s = queue.shift();
        if (s) {
          yield s;
          if (s.type === "closed") return;
          continue;
        }
        await new Promise<void>((resolve) => {
          wake = resolve;
        });
        wake = null;
      }
    } finally {
      this.off("status", onStatus);
    }
  }

  /** Stops reconnecting, aborts a dial in progress, closes the open connection; resolves once done. */
  async close(): Promise<void> {
    if (this.closedFlag) return;
    this.closedFlag = true;
    if (this.retryTimer) clearTimeout(this.retryTimer);
    this.abort.abort();
    const conn = this.connection;
    this.connection = null;
    if (conn) await conn.close("dialer closed");
    this.setStatus({ type: "closed" });
  }

  private closedError(): EzipcError {
    const s = this.status;
    return s.type === "closed" && s.error
      ? s.error
      : new EzipcError("EZIPC_CONNECT_ABORTED", "dialer closed");
  }

  private setStatus(s: DialerStatus): void {
    this.status = s;
    this.emit("status", s);
  }

  private async connect(): Promise<void> {
    if (this.closedFlag) return;
    this.attempt++;
    this.setStatus({ type: "connecting", attempt: this.attempt });
    const target = this.urls[this.turn % this.urls.length]!;
    let conn: Connection;
    try {
      conn = await dial(target, { ...this.options, signal: this.abort.signal });
    } catch (err) {
      if (this.closedFlag) return;
      this.turn++;
      this.scheduleRetry(err as EzipcError);
      return;
    }
    if (this.closedFlag) {
      conn.destroy();
      return;
    }
    if (this.options.resetOnConnect !== false) this.attempt = 0;
    this.connection = conn;
    log("info", "transport", "dialer connected", { url: target, id: conn.id });
    conn.once("close", (info) => {
      if (this.connection !== conn) return;
      this.connection = null;
      if (this.urls.length > 1) this.turn++; // another address first: this one just failed
      this.setStatus({ type: "disconnected", info });
      if (!this.closedFlag) {
        this.scheduleRetry(info.error ?? new EzipcError("EZIPC_CONNECTION_CLOSED", `closed: ${info.reason}`));
      }
    });
    this.setStatus({ type: "connected", connection: conn });
    this.emit("connection", conn);
  }

  private scheduleRetry(error: EzipcError): void {
    const b = this.backoff;
    if (!b || this.attempt + 1 > b.maxAttempts) {
      this.closedFlag = true;
      this.setStatus({ type: "closed", error });
      return;
    }
    const delayMs = backoffDelay(Math.max(1, this.attempt), b);
    log("debug", "transport", "dialer retry", { url: this.url, attempt: this.attempt + 1, delayMs });
    this.setStatus({ type: "reconnecting", attempt: this.attempt + 1, delayMs, error });
    this.retryTimer = setTimeout(() => {
      this.retryTimer = null;
      void this.connect();
    }, delayMs);
  }
}
