/**
 * The client's connection to a hub: dial, hello, reconnect, request ids and deadlines, the dispatch of hub
 * messages to the capability parts, and the resync after every welcome. {@link HubClient} (client.ts) adds
 * the public API and plugs the parts; this class knows them only as {@link ClientPart}s.
 *
 * The resync after a welcome runs each part's re-registrations in plug order (keys, subscriptions, served
 * topics), then `resyncDone`; the client is ready once every reply is in.
 */
import { EventEmitter } from "node:events";
import { type CallDeadline, CallDeadlines } from "../call-deadlines.js";
import { withTimeout } from "../deadline.js";
import { EzipcError } from "../errors.js";
import { IdMap } from "../id-map.js";
import { log } from "../log.js";
import { type AnyMessage, type ClientLink, type ClientPart, wireError } from "../protocol/client-link.js";
import {
  HUB_FEATURES,
  HUB_PROTOCOL_VERSION,
  type HubStats,
  type HubView,
} from "../protocol/core-messages.js";
import { checkForwardable, FORWARD_RESERVE_BYTES } from "../protocol/fields.js";
import { checkDurationMs } from "../ranges.js";
import type { Message, Protocol } from "../service/protocol.js";
import { Dialer } from "../transport/dialer.js";
import { DEFAULT_MAX_FRAME_BYTES } from "../transport/frame.js";
import type { Connection } from "../transport/types.js";
import { type HubMessage, hubProtocol } from "../wire/hub-protocol.js";
import { type ConnectOptions, secureUpgrade } from "./options.js";

/** Frames whose contents the hub forwards with fields added: they leave FORWARD_RESERVE_BYTES free. */
const FORWARDED = new Set(["publish", "request"]);

/** The client's link to the hub. */
export type ClientStatus = "connecting" | "connected" | "reconnecting" | "closed";

export interface HubClientEvents {
  /** The client's status changed; `resumed`: see {@link HubClient.resumed} (meaningful with `connected`). */
  status: [status: ClientStatus, info: { resumed: boolean }];
  /** A reconnect finished: every pointer is resynchronised (or invalidated). */
  resynced: [];
  /**
   * The direct routes of an RPC topic changed: `servers` is how many servers its requests now go to
   * directly (0: through the hub).
   */
  directRoutes: [topic: string, servers: number];
}

interface Pending {
  resolve: (m: HubMessage) => void;
  /** Runs synchronously when the reply arrives, before any later frame of the same chunk is handled. */
  onReply?: ((m: HubMessage) => void) | undefined;
  reject: (e: EzipcError) => void;
  deadline: CallDeadline;
}

/** Deadlines of requests to the hub (they do not keep the process alive: the connection does). */
const requestDeadlines = new CallDeadlines(false);

export abstract class ClientConnection extends EventEmitter<HubClientEvents> {
  readonly name: string;
  /** The id the hub gave this client (changes if the hub restarts). */
  clientId = "";
  /**
   * Whether the current connection resumed this client's identity on the hub (same `clientId`: its pointers
   * kept through the reconnect window). False on the first connection, and after a reconnect the hub did not
   * recognise (it restarted, or the window passed): then pointers were re-made by the resync and
   * `clientId` changed. Also given with each `status` event of `connected`.
   */
  resumed = false;
  /** How the hub names this client (`name#id`; `name@identity#id` on a secure hub), from its welcome. */
  label = "";
  /** The features the hub named in its last welcome (`pages`: listings a page at a time). */
  hubFeatures: ReadonlySet<string> = new Set();
  status: ClientStatus = "connecting";
  private readonly dialer: Dialer;
  private readonly protocol: Protocol = hubProtocol();
  private conn: Connection | null = null;
  private ready = false;
  private readyWaiters: { resolve: () => void; reject: (e: EzipcError) => void }[] = [];
  /** Requests awaiting their reply, by rid (IdMap: one entry added and removed per request). */
  private readonly pending = new IdMap<Pending>();
  private nextRid = 1;
  protected readonly timeoutMs: number;
  /** Bytes a publish or request frame may take (ClientLink.forwardLimit). */
  private readonly forwardLimit: number;
  private closedError: EzipcError | null = null;

  /** What the capability parts speak through (see src/protocol/client-link.ts). */
  protected readonly link: ClientLink<HubMessage>;
  /** The parts in resync order (keys, subscriptions, served topics). */
  private parts: readonly ClientPart<AnyMessage>[] = [];
  /** Which part takes each hub message that is not a reply. */
  private readonly handlers = new Map<string, (body: unknown) => unknown>();
  /** The part taking each frame index below 256 before decoding (`ClientPart.frameIndex`). */
  private readonly framers: (ClientPart<AnyMessage> | undefined)[] = new Array(256).fill(undefined);
  private senders: ClientPart<AnyMessage>[] = [];

  /** Dials `url` (the subclass plugs its parts right after, before any connection can be established). */
  constructor(
    readonly url: string,
    options: ConnectOptions = {},
  ) {
    super();
    this.name = options.name ?? `pid:${process.pid}`;
    this.timeoutMs = options.requestTimeoutMs ?? 10_000;
    checkDurationMs("requestTimeoutMs", this.timeoutMs);
    this.forwardLimit = (options.maxFrameBytes ?? DEFAULT_MAX_FRAME_BYTES) - FORWARD_RESERVE_BYTES;
    this.link = this.makeLink();
    // A connection is a success once the hub welcomed it (a server that accepts and closes at once is
    // retried with a growing delay, and fails a first connect).
    this.dialer = new Dialer(url, {
      ...options,
      ...(options.secure ? { upgrade: secureUpgrade(url, options.secure) } : {}),
      resetOnConnect: false,
    });
    this.dialer.on("connection", (conn) => this.onConnection(conn));
    this.dialer.on("status", (s) => {
      if (s.type === "reconnecting" || s.type === "disconnected") {
        if (this.status !== "closed") this.setStatus(this.clientId ? "reconnecting" : "connecting");
        // A first connection fails once every address was tried (unless told to wait).
        const triedAll = s.type === "reconnecting" && s.attempt > this.dialer.urls.length;
        if (!this.clientId && !options.waitOnFirstConnect && triedAll) {
          void this.closeWith(s.error);
        }
      } else if (s.type === "closed") {
        void this.closeWith(s.error ?? new EzipcError("EZIPC_CONNECTION_CLOSED", "client closed"));
      }
    });
  }

  /** Plugs the capability parts, in resync order; called once, by the constructor of the subclass. */
  protected plug(parts: readonly ClientPart<AnyMessage>[]): void {
    this.parts = parts;
    for (const part of parts) {
      for (const [type, handler] of Object.entries(part.handles ?? {})) {
        this.handlers.set(type, handler as (body: unknown) => unknown);
      }
    }
    for (const part of parts) {
      if (part.onFrame && part.frameIndex !== undefined && part.frameIndex < 256)
        this.framers[part.frameIndex] = part;
    }
    this.senders = parts.filter((p) => p.beforeSend);
  }

  private makeLink(): ClientLink<HubMessage> {
    const client = this;
    return {
      get ready() {
        return client.ready;
      },
      get conn() {
        return client.conn;
      },
      get timeoutMs() {
        return client.timeoutMs;
      },
      get label() {
        return client.label;
      },
      get hubFeatures() {
        return client.hubFeatures;
      },
      forwardLimit: this.forwardLimit,
      sendable: () => {
        const conn = this.conn;
        return this.ready && conn !== null && conn.state === "open" ? conn : null;
      },
      request: (type, body, onReply) => this.hubRequest(type, body, onReply),
      requestOn: (conn, type, body, onReply, timeoutMs) =>
        this.rawRequest(conn, type, body, onReply, timeoutMs),
      send: (type, body) => this.send(type, body),
      encode: (type, body) => this.encode(type, body),
      nextRid: () => this.allocRid(),
      whenReady: () => this.whenReady(),
      readyWithin: (what) => this.readyWithin(what),
      beforeSend: () => this.beforeSend(),
    };
  }

  /** Resolves once connected and resynchronised (at once if so); rejects if the client closes first. */
  whenReady(): Promise<void> {
    if (this.ready) return Promise.resolve();
    if (this.closedError) return Promise.reject(this.closedError);
    return new Promise((resolve, reject) => this.readyWaiters.push({ resolve, reject }));
  }
  // ---- the hub -----------------------------------------------------------------------------------------

  /** The hub's statistics. */
  async stats(): Promise<HubStats> {
    const r = await this.hubRequest("stats", {});
    if (r.type !== "statsReply")
      throw new EzipcError("EZIPC_PROTOCOL", `unexpected reply ${r.type} from the hub`);
    return JSON.parse(r.body.json) as HubStats;
  }

  /**
   * What the hub holds (the dashboard's data, docs/monitoring.md): its counters, its clients, and the keys,
   * topics, RPC topics and deadman tokens matching `pattern` (topic syntax, applied to keys too; default all).
   * Rejects with `EZIPC_PERMISSION_DENIED` without the `monitor` permission on `pattern`,
   * `EZIPC_INVALID_TOPIC` for a malformed pattern, `EZIPC_TOO_MANY_REQUESTS` while the hub's listings are
   * over their budget (`listingEntriesPerSecond`), `EZIPC_TIMEOUT`, or `EZIPC_CONNECTION_CLOSED`.
   */
  async monitor(pattern = ""): Promise<HubView> {
    const r = await this.hubRequest("monitor", { pattern });
    if (r.type !== "monitorReply")
      throw new EzipcError("EZIPC_PROTOCOL", `unexpected reply ${r.type} from the hub`);
    return JSON.parse(r.body.json) as HubView;
  }

  /**
   * Closes the connection: fire-and-forget publishes made before it are sent first; the hub releases every
   * pointer this client held (after its grace rules). Pending requests reject with
   * `EZIPC_CONNECTION_CLOSED`; subscriptions end (their iterators finish). Resolves once closed.
   */
  async close(): Promise<void> {
    await this.closeWith(new EzipcError("EZIPC_CONNECTION_CLOSED", "client closed"));
  }
  // ---- the connection ----------------------------------------------------------------------------------

  private setStatus(s: ClientStatus): void {
    if (this.status === s) return;
    this.status = s;
    this.emit("status", s, { resumed: this.resumed });
  }

  private async closeWith(error: EzipcError): Promise<void> {
    if (this.closedError) {
      await this.dialer.close();
      return;
    }
    // What was published and forgotten before close() leaves first (a batch waits for the end of the
    // tick): the connection's graceful close writes it, then its CLOSE, so the hub gets it all.
    if (this.conn?.state === "open") this.beforeSend();
    this.closedError = error;
    this.ready = false;
    for (const part of this.parts) await part.close?.(error);
    for (const w of this.readyWaiters) w.reject(error);
    this.readyWaiters = [];
    this.rejectAll(error);
    this.setStatus("closed");
    await this.dialer.close();
  }

  private rejectAll(error: EzipcError): void {
    const pending = [...this.pending.values()];
    this.pending.clear();
    for (const p of pending) {
      requestDeadlines.cancel(p.deadline);
      p.reject(error);
    }
  }

  /** Takes request `rid` off the pending list, and its deadline with it; undefined if it is not pending. */
  private takePending(rid: number): Pending | undefined {
    const p = this.pending.get(rid);
    if (!p) return undefined;
    this.pending.delete(rid);
    requestDeadlines.cancel(p.deadline);
    return p;
  }

  private onConnection(conn: Connection): void {
    this.conn = conn;
    const framers = this.framers;
    const onMessage = (frame: Buffer): void => {
      // The hot path: a part may take a frame before it is decoded (pub/sub's message frames).
      if (frame[1] === 0) {
        const part = framers[frame[0]!];
        if (part?.onFrame?.(frame)) return;
      }
      let msg: HubMessage;
      try {
        msg = this.protocol.decode(frame) as Message as HubMessage;
      } catch (err) {
        log("warn", "client", "undecodable frame from hub", { error: err });
        conn.destroy(err as EzipcError);
        return;
      }
      this.onMessage(conn, msg);
    };
    conn.on("message", onMessage);
    // A long frame split across reads: a part may take it in its pieces, else it is joined.
    conn.setPiecesHandler?.((pieces, length) => {
      const first = pieces[0]!;
      if (first.length >= 2 && first[1] === 0) {
        const part = framers[first[0]!];
        if (part?.onFramePieces?.(pieces)) return;
      }
      onMessage(Buffer.concat(pieces, length));
    });
    conn.on("error", () => {});
    // The hub is closing this connection (a graceful shutdown): not ready from now on, so the status changes
    // before operations start failing and whenReady() waits for the next connection.
    conn.once("closing", () => {
      if (this.conn !== conn || !this.ready) return;
      this.ready = false;
      if (this.status !== "closed") this.setStatus("reconnecting");
    });
    conn.once("close", (info) => {
      const current = this.conn === conn;
      const lost = new EzipcError(
        "EZIPC_CONNECTION_CLOSED",
        `connection to the hub lost before the reply (${info.reason})`,
      );
      if (current) {
        this.conn = null;
        this.ready = false;
        this.rejectAll(lost);
      }
      for (const part of this.parts) part.connectionClosed?.(conn, lost, current);
    });
    conn.send(
      this.protocol.encode("hello", {
        protocol: HUB_PROTOCOL_VERSION,
        name: this.name,
        resume: this.clientId || undefined,
        features: [...HUB_FEATURES],
      }),
    );
  }

  private onMessage(conn: Connection, msg: HubMessage): void {
    if (msg.type === "welcome") {
      this.dialer.established();
      this.clientId = msg.body.clientId;
      this.resumed = msg.body.resumed;
      this.label = msg.body.label;
      this.hubFeatures = new Set(msg.body.features);
      for (const part of this.parts) part.welcomed?.();
      void this.resync(conn);
      return;
    }
    if (msg.type === "error") {
      if (msg.body.rid === 0) {
        const err = wireError(msg.body.code, msg.body.message);
        // A full hub is a passing state: this connection fails, and the dialer's rules decide (a connected
        // client retries with its backoff; a first connect fails unless told to wait).
        if (err.code === "EZIPC_TOO_MANY_CONNECTIONS") conn.destroy(err);
        else void this.closeWith(err);
        return;
      }
      this.takePending(msg.body.rid)?.reject(wireError(msg.body.code, msg.body.message));
      return;
    }
    const handler = this.handlers.get(msg.type);
    if (handler && handler(msg.body) !== false) return;
    // A reply to a request.
    const rid = (msg.body as { rid?: number }).rid;
    if (rid === undefined) {
      conn.destroy(new EzipcError("EZIPC_PROTOCOL", `unexpected ${msg.type} from the hub`));
      return;
    }
    const p = this.takePending(rid);
    if (!p) return;
    p.onReply?.(msg);
    p.resolve(msg);
  }

  /**
   * After a welcome: each part sends its re-registrations (keys, subscriptions, served topics, in that
   * order), then `resyncDone` tells the hub to release what was not resynchronised. Ready once all replied.
   */
  private async resync(conn: Connection): Promise<void> {
    let held = 0;
    const settled: Promise<unknown>[] = [];
    for (const part of this.parts) {
      if (!part.resync) continue;
      const r = await part.resync(conn);
      settled.push(r.settled);
      held += r.held ?? 0;
    }
    const done = this.rawRequest(conn, "resyncDone", {});
    try {
      await done;
      await Promise.all(settled);
    } catch {
      return;
    }
    if (conn !== this.conn) return;
    this.ready = true;
    this.setStatus("connected");
    const waiters = this.readyWaiters;
    this.readyWaiters = [];
    for (const w of waiters) w.resolve();
    if (held > 0) this.emit("resynced");
  }

  protected async readyWithin(what: string): Promise<void> {
    if (this.ready) return;
    if (this.closedError) throw this.closedError;
    await withTimeout(
      this.whenReady(),
      this.timeoutMs,
      () => new EzipcError("EZIPC_TIMEOUT", `${what}: not connected to the hub within ${this.timeoutMs} ms`),
    );
  }

  /** Sends a request once ready (at once if so, waiting through a reconnect if not); resolves with the reply. */
  protected hubRequest(
    type: string,
    body: Record<string, unknown>,
    onReply?: (m: HubMessage) => void,
  ): Promise<HubMessage> {
    if (this.ready) return this.rawRequest(this.conn!, type, body, onReply);
    return this.readyWithin(type).then(() => this.rawRequest(this.conn!, type, body, onReply));
  }

  private rawRequest(
    conn: Connection,
    type: string,
    body: Record<string, unknown>,
    onReply?: (m: HubMessage) => void,
    timeoutMs = this.timeoutMs,
  ): Promise<HubMessage> {
    if (conn.state !== "open") {
      return Promise.reject(new EzipcError("EZIPC_CONNECTION_CLOSED", "not connected to the hub"));
    }
    const rid = this.allocRid();
    body.rid = rid;
    let frame: Uint8Array;
    try {
      frame = this.encode(type, body);
    } catch (err) {
      return Promise.reject(err);
    }
    return new Promise<HubMessage>((resolve, reject) => {
      const deadline = requestDeadlines.add(timeoutMs, () => {
        if (!this.pending.delete(rid)) return;
        reject(new EzipcError("EZIPC_TIMEOUT", `${type}: no reply from the hub within ${timeoutMs} ms`));
      });
      this.pending.set(rid, { resolve, reject, onReply, deadline });
      this.beforeSend();
      conn.send(frame);
    });
  }

  private allocRid(): number {
    let rid = this.nextRid;
    while (this.pending.has(rid)) rid = rid >= 0xffffffff ? 1 : rid + 1;
    this.nextRid = rid >= 0xffffffff ? 1 : rid + 1;
    return rid;
  }

  /** Lets every part send what it holds back (pub/sub's batch) before another frame leaves. */
  private beforeSend(): void {
    for (const part of this.senders) part.beforeSend!();
  }

  /**
   * A message's frame; throws `EZIPC_MESSAGE_TOO_LARGE` for a publish or request that leaves less than
   * FORWARD_RESERVE_BYTES of the frame (the one place every part's frames are made: ClientLink.encode too).
   */
  private encode(type: string, body: Record<string, unknown>): Uint8Array {
    const frame = this.protocol.encode(type, body);
    if (FORWARDED.has(type)) checkForwardable(type, frame.length, this.forwardLimit);
    return frame;
  }

  private send(type: string, body: Record<string, unknown>): void {
    const conn = this.conn;
    if (conn && conn.state === "open") {
      const frame = this.encode(type, body);
      this.beforeSend();
      conn.send(frame);
    }
  }
}
