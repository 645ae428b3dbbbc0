/**
 * The plug between the client connection (src/client/client.ts) and each capability's client part
 * (vars-client.ts, pubsub-client.ts, rpc-client.ts, deadman-client.ts). The connection owns dialling, hello, request ids,
 * deadlines and the resync's order; a part owns its capability's state and speaks through a
 * {@link ClientLink}. The connection hands each part the hub messages it declared in `handles`, and calls
 * the part's hooks when the connection changes. A second backend (shared memory, another language) gives
 * the same parts another link.
 *
 * Generic in `M`, the messages a part may receive (its own table's and the core replies, see
 * {@link WireMessages}), so a capability types its replies without importing the composed protocol above it.
 */
import type { Infer } from "../codec/schema.js";
import { type ErrorCode, ErrorCodes, EzipcError } from "../errors.js";
import type { SchemaMap } from "../service/protocol.js";
import type { Connection } from "../transport/types.js";

/** The decoded messages of a table: type and body, discriminated by type. */
export type WireMessages<T extends SchemaMap> = {
  [K in keyof T & string]: { type: K; body: Infer<T[K]> };
}[keyof T & string];

/** Any decoded message. */
export interface AnyMessage {
  type: string;
  body: unknown;
}

/** The error a part throws for a reply of the wrong type. */
export function unexpected(m: AnyMessage): EzipcError {
  return new EzipcError("EZIPC_PROTOCOL", `unexpected reply ${m.type} from the hub`);
}

/** The error of an `error` frame from the hub (an unknown code becomes `EZIPC_PROTOCOL`). */
export function wireError(code: string, message: string): EzipcError {
  const known = code in ErrorCodes ? (code as ErrorCode) : "EZIPC_PROTOCOL";
  return new EzipcError(known, known === code ? message : `${code}: ${message}`);
}

/**
 * Makes an object with bigint fields serialisable: `JSON.stringify` writes each bigint as a decimal string
 * (a non-enumerable `toJSON`, so the object still compares and prints as its fields).
 */
export function jsonSafe<T extends object>(o: T): T {
  Object.defineProperty(o, "toJSON", {
    value: () =>
      Object.fromEntries(Object.entries(o).map(([k, v]) => [k, typeof v === "bigint" ? v.toString() : v])),
    enumerable: false,
  });
  return o;
}

/** What the connection offers a capability's client part. */
export interface ClientLink<M extends AnyMessage = AnyMessage> {
  /** Connected, and the resync after the last welcome is done. */
  readonly ready: boolean;
  /** The current connection, or null while disconnected. */
  readonly conn: Connection | null;
  /** How long a request waits for its reply (ms). */
  readonly timeoutMs: number;
  /** How the hub names this client (`name#id`), from its welcome. */
  readonly label: string;
  /** The features the hub named in its last welcome (`pages`: listings a page at a time). */
  readonly hubFeatures: ReadonlySet<string>;
  /**
   * Bytes a `publish` or `request` frame may take (maxFrameBytes minus FORWARD_RESERVE_BYTES, fields.ts):
   * {@link send} and {@link request} refuse a larger one with `EZIPC_MESSAGE_TOO_LARGE`, sending nothing.
   */
  readonly forwardLimit: number;
  /**
   * The current connection if ready and open, else null: `ready` and `conn` in one call, for a part that
   * checks them per message (a fire-and-forget publish).
   */
  sendable(): Connection | null;
  /**
   * Sends a request once ready (waiting through a reconnect, up to `timeoutMs`). Resolves with the reply;
   * rejects with the hub's error, `EZIPC_TIMEOUT`, or `EZIPC_CONNECTION_CLOSED`. `onReply` runs
   * synchronously when the reply arrives, before any later frame is handled.
   */
  request(type: string, body: Record<string, unknown>, onReply?: (m: M) => void): Promise<M>;
  /** Sends a request on `conn` now, ready or not (the resync's requests). Settles like {@link request}. */
  requestOn(
    conn: Connection,
    type: string,
    body: Record<string, unknown>,
    onReply?: (m: M) => void,
    timeoutMs?: number,
  ): Promise<M>;
  /** Sends a message that has no reply, if connected (dropped otherwise: the resync restores state). */
  send(type: string, body: Record<string, unknown>): void;
  /**
   * Encodes a hub message (for a part that sends and counts backpressure itself). Throws
   * `EZIPC_MESSAGE_TOO_LARGE` for a publish or request over {@link forwardLimit}.
   */
  encode(type: string, body: Record<string, unknown>): Uint8Array;
  /** A request id no pending request uses. */
  nextRid(): number;
  /** Resolves once ready (at once if so); rejects if the client closes first. */
  whenReady(): Promise<void>;
  /** Resolves once ready; rejects with `EZIPC_TIMEOUT` after `timeoutMs`, or with the close error. */
  readyWithin(what: string): Promise<void>;
  /** Calls the other parts' `beforeSend` (a part that sends on the connection itself calls it first). */
  beforeSend(): void;
}

/** Handlers of hub messages by type; one returning `false` leaves the message to be settled as a reply. */
export type MessageHandlers<M extends AnyMessage = AnyMessage> = {
  [K in M["type"]]?: (body: Extract<M, { type: K }>["body"]) => unknown;
};

/** A capability's client part, as the connection drives it. Every hook is optional. */
export interface ClientPart<M extends AnyMessage = AnyMessage> {
  /** The hub messages (not replies) this part takes. */
  readonly handles?: MessageHandlers<M>;
  /** The wire index (below 256) of the frames {@link onFrame} takes before they are decoded. */
  readonly frameIndex?: number;
  /** A raw frame of index `frameIndex`, before decoding (the hot path); true if the part took it. */
  onFrame?(frame: Buffer): boolean;
  /**
   * {@link onFrame} for a long frame of index `frameIndex` that arrived split across reads, as its pieces
   * (views, in order; see `Connection.setPiecesHandler`); true if the part took it, else it is joined.
   */
  onFramePieces?(pieces: Buffer[]): boolean;
  /** Runs before the connection sends any frame (pub/sub sends its batched publishes first, in order). */
  beforeSend?(): void;
  /** A welcome arrived, before the resync. */
  welcomed?(): void;
  /**
   * After a welcome: sends this part's re-registrations on `conn`. Resolves once they are sent, with the
   * promise of their outcome (which never rejects: a part logs or fails its own objects), and how many
   * pointer holdings it re-registered (the client emits `resynced` when there were any).
   */
  resync?(conn: Connection): Promise<{ settled: Promise<unknown>; held?: number }>;
  /**
   * `conn` closed. `current`: it was the client's connection (its requests in flight were rejected with
   * `error`, and the client waits for the next welcome); false for an older connection closing late.
   */
  connectionClosed?(conn: Connection, error: EzipcError, current: boolean): void;
  /** The client closes for good. */
  close?(error: EzipcError): Promise<void> | void;
}
