/**
 * The hub (the seed's `ipc_server`): one process that clients reach over any transport, holding named
 * blocks of memory that it keeps in sync with every client that holds a pointer on them.
 *
 * Design:
 * - The hub is the single owner of every value. A write is applied here, in arrival order, and gets the
 *   next version; the hub then pushes the new value to clients holding the key under `poll`, and a small
 *   `stale` notice (once, until they read) to clients under `lazy`. `request` holders get nothing pushed.
 * - Reference counts live here ({@link BlockTable}): one per pointer, per client, per policy. A client's
 *   effective policy for a key is the highest it holds.
 * - Slow clients: when a client's send queue is over its high-water mark, updates for it are coalesced —
 *   the hub marks the holding dirty and sends the latest value once the queue drains. So a client that
 *   never reads costs at most its queue limit plus one flag per key, and never delays anyone else.
 * - A client that disconnects keeps its holdings for `reconnectWindowMs`; if it comes back (resume token
 *   from `welcome`) it resynchronises, otherwise its pointers are released.
 * - Persistent keys are written through a {@link BlockStore}; a write to one is acknowledged only after the
 *   store has made it durable (writes of one event-loop turn are committed as one batch).
 *
 * Over 600 lines: the hub still carries the shared-variable service inline; issue 13 moves it (and each
 * capability) into its own folder.
 */
import { randomBytes } from "node:crypto";
import { EventEmitter } from "node:events";
import type { Infer } from "../codec/schema.js";
import { Deadmen } from "../deadman/deadman-hub.js";
import { EzipcError, isEzipcError } from "../errors.js";
import { log } from "../log.js";
import {
  HUB_FEATURES,
  HUB_PROTOCOL_VERSION,
  type HubMessage,
  type hubMessages,
  hubProtocol,
  INFO_DISPOSED,
  INFO_GRACE,
  INFO_LIVE,
  INFO_NONE,
  KIND_BYTES,
  KIND_JSON,
  STATE_GRACE,
  STATE_LIVE,
} from "../protocol/hub-messages.js";
import { PUBLISH_INDEX, parsePublish } from "../pubsub/fast-frames.js";
import { type HistoryStore, PubSub, type PubSubOptions } from "../pubsub/pubsub-hub.js";
import { removeStaleDirs } from "../rpc/direct.js";
import { END_ERROR, Rpc, type RpcOptions, SIDE_CALLER } from "../rpc/rpc-hub.js";
import { AccessPolicy, type AllowedClient, allowList, type Operation } from "../security/access.js";
import { type HandshakeFailure, secureListen } from "../security/channel.js";
import type { KeyPair } from "../security/suite.js";
import type { Message, Protocol } from "../service/protocol.js";
import { type BlockStore, MemoryStore } from "../store/store.js";
import { listen } from "../transport/registry.js";
import { sendTo } from "../transport/send.js";
import type { CloseInfo, Connection, ConnectionOptions, Listener } from "../transport/types.js";
import { BlockCommits, type BlockValue } from "../vars/block-commits.js";
import {
  type Block,
  BlockTable,
  type BlockTableOptions,
  type Clock,
  checkKey,
  systemClock,
} from "../vars/block-table.js";
import { globMatcher } from "../vars/glob.js";
import { mergePatch } from "../vars/merge-patch.js";
import { CLIENT_MESSAGES, subjectOf } from "./admission.js";

const REQUEST = 0;
const LAZY = 1;
const NO_BYTES = new Uint8Array(0);
const POLL = 2;

/** Options of {@link Hub.listen}. Connection options apply to every accepted connection. */
export interface HubOptions extends BlockTableOptions, PubSubOptions, RpcOptions, ConnectionOptions {
  /** Addresses to listen on, e.g. `["tcp://127.0.0.1:7700", "unix:///tmp/ezipc.sock"]`. */
  urls: string[];
  /** Name sent to clients in `welcome`. Default `ezipc-hub`. */
  name?: string;
  /** Where persistent keys are kept. Default {@link MemoryStore} (nothing survives the process). */
  store?: BlockStore;
  /** How long a disconnected client's pointers are kept for it to come back. Default 5 s. */
  reconnectWindowMs?: number;
  /** Most pointers one client may hold (`EZIPC_TOO_MANY_POINTERS`). Default 10,000. */
  maxPointersPerClient?: number;
  /** Whether clients may create persistent keys (`EZIPC_PERMISSION_DENIED` otherwise). Default true. */
  allowClientPersistent?: boolean;
  /** A connection that has not sent `hello` by then is closed. Default 5 s. */
  handshakeTimeoutMs?: number;
  /** Timers for the block lifecycle (tests inject a fake clock). */
  clock?: Clock;
  /**
   * Encrypt and authenticate every connection (docs/security.md): the hub's static key and the clients
   * it admits. Without it, connections are plain.
   */
  security?: HubSecurity;
}

/**
 * The name a client goes by (in `ls`, as a publisher, as an RPC caller): the name it gave, and on an
 * authenticated connection the identity the handshake proved (`name@identity`; a bare public key shortened).
 */
function displayName(name: string, conn: Connection): string {
  const id = conn.peer?.name;
  if (!id) return name;
  return `${name}@${id === conn.peer?.publicKey ? id.slice(0, 8) : id}`;
}

/** Throws `EZIPC_PERMISSION_DENIED` if `conn`'s client may not do `op` on `subject`. */
export type AccessCheck = (conn: Connection, op: Operation, subject: string) => void;

/** A secure hub's identity and the clients it admits. */
export interface HubSecurity {
  /** The hub's static key pair (`loadOrCreateKeyFile`, `ezipc keygen`). */
  staticKey: KeyPair;
  /** The clients admitted; empty or absent: every client that completes the handshake. */
  clients?: readonly AllowedClient[];
  /** A secure handshake not finished by then is dropped. Default 2 s. */
  handshakeTimeoutMs?: number;
  /** Handshakes in progress per remote address (the oldest gives way). Default 32. */
  maxPendingPerAddress?: number;
}

/** What {@link Hub.stats} reports. */
export interface HubStats {
  name: string;
  uptimeMs: number;
  urls: string[];
  store: string;
  clients: number;
  connectedClients: number;
  keys: number;
  persistentKeys: number;
  totalBytes: number;
  tombstones: number;
  pointers: number;
  writes: number;
  reads: number;
  updatesSent: number;
  updatesCoalesced: number;
  staleSent: number;
  /** Bytes queued to clients and not yet written to the OS, in total and for the most backed-up client. */
  queuedBytes: number;
  maxClientQueuedBytes: number;
  topics: number;
  historyBytes: number;
  published: number;
  delivered: number;
  gaps: number;
  /** Fire-and-forget publishes the hub could not store (bad topic, a limit), dropped. */
  rejected: number;
  callsInFlight: number;
  calls: number;
  noResponders: number;
  serverGone: number;
  deadmanTokens: number;
  /** Connections closed for a protocol violation (a bad frame or message, a missing hello). */
  protocolErrors: number;
  /** Connections closed for a frame over maxFrameBytes. */
  framesTooLarge: number;
  /** Slow consumers cut (maxQueuedBytes or stallTimeoutMs). */
  slowConsumerCuts: number;
  /** Connections closed for silence past heartbeatTimeoutMs. */
  heartbeatTimeouts: number;
  /** Secure connections closed for a record that failed authentication. */
  decryptErrors: number;
  /** Secure handshakes that failed, by reason (docs/security.md). */
  handshakeFailures: Partial<Record<HandshakeFailure, number>>;
  rssBytes: number;
  heapUsedBytes: number;
}

/** One client's pointers on one block. */
interface Holding {
  readonly block: Block;
  /** Pointers per policy: request, lazy, poll. */
  readonly counts: [number, number, number];
  /** Highest policy with a pointer. */
  policy: number;
  /** A `stale` was sent and the client has not read since (lazy). */
  staleSent: boolean;
  /** An update is owed (poll, coalesced while the client's queue was full). */
  dirty: boolean;
}

/** A client as the hub knows it; outlives a connection during the reconnect window. */
class ClientState {
  conn: Connection | null = null;
  readonly holdings = new Map<number, Holding>();
  pointers = 0;
  /** Poll holdings owed an update. */
  readonly dirty = new Set<Holding>();
  congested = false;
  windowTimer: NodeJS.Timeout | null = null;
  /** Block ids resynchronised since the last reconnect (null outside a resync). */
  resynced: Set<number> | null = null;
  /** `name#id`, as subscribers see the publisher, and its UTF-8 bytes. */
  label = "";
  labelBytes: Buffer = Buffer.alloc(0);

  constructor(
    readonly id: string,
    name: string,
  ) {
    this.name = name;
  }

  get name(): string {
    return this.nameValue;
  }
  set name(name: string) {
    this.nameValue = name;
    this.label = `${name}#${this.id.slice(0, 6)}`;
    this.labelBytes = Buffer.from(this.label, "utf8");
  }
  private nameValue = "";
}

export interface HubEvents {
  /** A client finished its handshake (`resumed` when it came back within its window). */
  client: [info: { id: string; name: string; resumed: boolean }];
  /** A client's pointers were released (it left and its window passed). */
  clientGone: [info: { id: string; name: string }];
  /** A block was invalidated. */
  invalidated: [info: { key: string; reason: "disposed" | "deleted" }];
}

function policyOf(counts: readonly number[]): number {
  return counts[POLL]! > 0 ? POLL : counts[LAZY]! > 0 ? LAZY : counts[REQUEST]! > 0 ? REQUEST : -1;
}

/**
 * The hub server. Start one with {@link Hub.listen}; stop it with {@link Hub.close}.
 *
 * @example
 * const hub = await Hub.listen({ urls: ["tcp://127.0.0.1:7700"] });
 * console.log(hub.urls); // ["tcp://127.0.0.1:7700"]
 */
export class Hub extends EventEmitter<HubEvents> {
  readonly name: string;
  /** The bound addresses (with the chosen port for `:0`). */
  readonly urls: string[] = [];
  private readonly servers: Listener[] = [];
  private readonly table: BlockTable;
  private readonly store: BlockStore;
  private pubsub!: PubSub;
  private readonly rpc: Rpc;
  /** Checks an operation against the client's permissions; undefined when no client is restricted. */
  private readonly access: AccessCheck | undefined;
  private readonly deadmen: Deadmen;
  private readonly protocol: Protocol = hubProtocol();
  private readonly clients = new Map<string, ClientState>();
  private readonly byConn = new Map<Connection, ClientState>();
  private readonly holders = new Map<Block, Map<ClientState, Holding>>();
  private readonly commits: BlockCommits;
  private readonly startedAt = Date.now();
  private closing = false;
  private readonly counters = { writes: 0, reads: 0, updatesSent: 0, updatesCoalesced: 0, staleSent: 0 };
  /** Connections this hub lost to faults, by kind, and failed secure handshakes by reason. */
  private readonly faults = {
    protocolErrors: 0,
    framesTooLarge: 0,
    slowConsumerCuts: 0,
    heartbeatTimeouts: 0,
    decryptErrors: 0,
    handshakeFailures: {} as Partial<Record<HandshakeFailure, number>>,
  };
  private readonly reconnectWindowMs: number;
  private readonly maxPointersPerClient: number;
  private readonly allowClientPersistent: boolean;
  private readonly handshakeTimeoutMs: number;

  private constructor(private readonly options: HubOptions) {
    super();
    this.name = options.name ?? "ezipc-hub";
    this.store = options.store ?? new MemoryStore();
    this.reconnectWindowMs = options.reconnectWindowMs ?? 5_000;
    this.maxPointersPerClient = options.maxPointersPerClient ?? 10_000;
    this.allowClientPersistent = options.allowClientPersistent ?? true;
    this.handshakeTimeoutMs = options.handshakeTimeoutMs ?? 5_000;
    const policy = new AccessPolicy(options.security?.clients ?? []);
    const restricted = (options.security?.clients ?? []).some((c) => c.allow);
    this.access = restricted
      ? (conn, op, subject) => policy.check(conn.peer?.name ?? null, op, subject)
      : undefined;
    this.rpc = new Rpc(options, this.protocol);
    this.deadmen = new Deadmen(this.protocol);
    this.commits = new BlockCommits(this.store, (b, v) => this.applyCommitted(b, v));
    this.table = new BlockTable(options, options.clock ?? systemClock, (block, reason) =>
      this.onInvalidate(block, reason),
    );
  }

  /**
   * Loads persistent keys from the store, then listens on every URL. Resolves once all listen; rejects
   * (closing whatever was opened) with `EZIPC_ADDRESS_IN_USE`, `EZIPC_INVALID_URL` or `EZIPC_STORE`.
   */
  static async listen(options: HubOptions): Promise<Hub> {
    const hub = new Hub(options);
    try {
      const history = "saveMessages" in hub.store ? (hub.store as BlockStore & HistoryStore) : null;
      hub.pubsub = new PubSub(options, hub.protocol, history, hub.access);
      for (const s of hub.store.load()) {
        hub.table.create(s.key, s.data.length, {
          kind: s.kind,
          data: Buffer.from(s.data),
          version: s.version,
          persistent: true,
        });
      }
      const sec = options.security;
      const upgrade = sec
        ? secureListen({
            staticKey: sec.staticKey,
            authorize: allowList(sec.clients ?? []),
            handshakeTimeoutMs: sec.handshakeTimeoutMs,
            maxPendingPerAddress: sec.maxPendingPerAddress,
            plainRefusal: hub.protocol.encode("error", {
              rid: 0,
              code: "EZIPC_AUTH",
              message:
                "this hub requires encryption: connect with its public key (secure.hubKey, or EZIPC_HUB_KEY for the CLI)",
            }),
            onFailure: (reason) => {
              hub.faults.handshakeFailures[reason] = (hub.faults.handshakeFailures[reason] ?? 0) + 1;
            },
          })
        : undefined;
      for (const url of options.urls) {
        const listener = await listen(url, upgrade ? { ...options, upgrade } : options);
        hub.servers.push(listener);
        hub.urls.push(listener.url);
        listener.on("connection", (conn) => hub.accept(conn));
      }
    } catch (err) {
      await hub.close();
      throw isEzipcError(err) ? err : new EzipcError("EZIPC_STORE", (err as Error).message, { cause: err });
    }
    removeStaleDirs(); // direct-RPC folders of clients killed on this host (direct.ts)
    log("info", "hub", "listening", { urls: hub.urls, store: hub.store.name, keys: hub.table.size });
    return hub;
  }

  /**
   * Creates a key from the hub side (no client holds it). `persistent` keys are never disposed; others
   * start their grace period at once. Throws like a client's allocate (`EZIPC_KEY_EXISTS`, limits).
   */
  allocate(key: string, size: number, options: { persistent?: boolean; json?: boolean } = {}): void {
    const json = options.json ?? false;
    if (!json) checkSize(size);
    const block = this.table.create(key, json ? 0 : size, {
      kind: json ? KIND_JSON : KIND_BYTES,
      persistent: options.persistent ?? false,
    });
    if (block.persistent) this.persistNow(block);
  }

  /** Deletes a key now, whoever holds it: their pointers are invalidated. Returns false if there was none. */
  delete(key: string): boolean {
    const found = this.table.lookup(key);
    if (!("found" in found)) return false;
    this.table.delete(found.found);
    return true;
  }

  /** The current value and version of a key, or undefined. */
  peek(key: string): { data: Buffer; version: number; refcount: number; persistent: boolean } | undefined {
    const found = this.table.lookup(key);
    if (!("found" in found)) return undefined;
    const b = found.found;
    return { data: Buffer.from(b.data), version: b.version, refcount: b.refcount, persistent: b.persistent };
  }

  stats(): HubStats {
    let persistentKeys = 0;
    for (const b of this.table.blocks()) if (b.persistent) persistentKeys++;
    let pointers = 0;
    let connected = 0;
    let queued = 0;
    let maxQueued = 0;
    for (const c of this.clients.values()) {
      pointers += c.pointers;
      if (c.conn) {
        connected++;
        queued += c.conn.queuedBytes;
        maxQueued = Math.max(maxQueued, c.conn.queuedBytes);
      }
    }
    const mem = process.memoryUsage();
    return {
      name: this.name,
      uptimeMs: Date.now() - this.startedAt,
      urls: [...this.urls],
      store: this.store.name,
      clients: this.clients.size,
      connectedClients: connected,
      keys: this.table.size,
      persistentKeys,
      totalBytes: this.table.totalBytes,
      tombstones: this.table.tombstoneCount,
      pointers,
      ...this.counters,
      topics: this.pubsub.topicCount,
      historyBytes: this.pubsub.historyBytes,
      ...this.pubsub.counters,
      callsInFlight: this.rpc.callsInFlight,
      ...this.rpc.counters,
      deadmanTokens: this.deadmen.size,
      ...this.faults,
      handshakeFailures: { ...this.faults.handshakeFailures },
      queuedBytes: queued,
      maxClientQueuedBytes: maxQueued,
      rssBytes: mem.rss,
      heapUsedBytes: mem.heapUsed,
    };
  }

  /**
   * Stops listening, closes every connection gracefully, commits pending persistent writes and closes the
   * store. Resolves once done; never rejects.
   */
  async close(): Promise<void> {
    if (this.closing) return;
    this.closing = true;
    await Promise.all(this.servers.map((l) => l.close().catch(() => {})));
    for (const c of this.clients.values()) if (c.windowTimer) clearTimeout(c.windowTimer);
    this.commits.flush();
    this.commits.stop();
    this.pubsub?.flush();
    this.pubsub?.stop();
    this.table.close();
    this.store.close();
  }

  // ---- connections ------------------------------------------------------------------------------------

  private accept(conn: Connection): void {
    if (this.closing) {
      conn.destroy();
      return;
    }
    const timer = setTimeout(() => {
      conn.destroy(new EzipcError("EZIPC_HANDSHAKE", `no hello within ${this.handshakeTimeoutMs} ms`));
    }, this.handshakeTimeoutMs);
    timer.unref();
    conn.on("message", (frame) => {
      // The hot path: publish frames are parsed in place (a malformed one falls through to the decoder).
      if (frame[0] === PUBLISH_INDEX && frame[1] === 0) {
        const client = this.byConn.get(conn);
        const v = client ? parsePublish(frame) : null;
        if (client && v) {
          try {
            this.pubsub.publishFrame(conn, client.labelBytes, v, frame);
          } catch (err) {
            conn.destroy(isEzipcError(err) ? err : new EzipcError("EZIPC_PROTOCOL", (err as Error).message));
          }
          return;
        }
      }
      let msg: HubMessage;
      try {
        msg = this.protocol.decode(frame) as Message as HubMessage;
      } catch (err) {
        log("warn", "hub", "undecodable frame, closing connection", { conn: conn.id, error: err });
        conn.destroy(err as EzipcError);
        return;
      }
      const client = this.byConn.get(conn);
      if (!client) {
        clearTimeout(timer);
        this.handshake(conn, msg);
        return;
      }
      try {
        this.dispatch(client, msg);
      } catch (err) {
        if (isEzipcError(err) && (err.code === "EZIPC_PROTOCOL" || err.code === "EZIPC_HANDSHAKE")) {
          conn.destroy(err);
        } else {
          log("error", "hub", "handler failed", { conn: conn.id, type: msg.type, error: err });
          conn.destroy(
            new EzipcError("EZIPC_PROTOCOL", `hub failed on ${msg.type}: ${(err as Error).message}`),
          );
        }
      }
    });
    conn.once("close", (info) => {
      clearTimeout(timer);
      this.onConnectionClosed(conn, info);
    });
    conn.on("error", () => {}); // reported through close
  }

  private handshake(conn: Connection, msg: HubMessage): void {
    if (msg.type !== "hello") {
      conn.destroy(new EzipcError("EZIPC_PROTOCOL", `expected hello, got ${msg.type}`));
      return;
    }
    const hello = msg.body;
    if (hello.protocol !== HUB_PROTOCOL_VERSION) {
      const error = `hub speaks protocol ${HUB_PROTOCOL_VERSION}, client ${hello.protocol}`;
      sendTo(conn, this.protocol.encode("error", { rid: 0, code: "EZIPC_HANDSHAKE", message: error }));
      void conn.close(error);
      return;
    }
    let client = hello.resume ? this.clients.get(hello.resume) : undefined;
    const resumed = client !== undefined;
    if (client) {
      if (client.windowTimer) clearTimeout(client.windowTimer);
      client.windowTimer = null;
      if (client.conn) {
        this.byConn.delete(client.conn);
        client.conn.destroy(new EzipcError("EZIPC_CONNECTION_RESET", "replaced by a resumed connection"));
      }
      client.name = displayName(hello.name, conn);
    } else {
      client = new ClientState(randomBytes(12).toString("hex"), displayName(hello.name, conn));
      this.clients.set(client.id, client);
    }
    client.conn = conn;
    client.congested = false;
    client.resynced = new Set();
    this.byConn.set(conn, client);
    sendTo(
      conn,
      this.protocol.encode("welcome", {
        protocol: HUB_PROTOCOL_VERSION,
        clientId: client.id,
        resumed,
        hub: this.name,
        features: [...HUB_FEATURES],
        maxBlockBytes: this.table.options.maxBlockBytes,
        label: client.label,
      }),
    );
    log("debug", "hub", "client", { id: client.id, name: client.name, resumed });
    this.emit("client", { id: client.id, name: client.name, resumed });
  }

  private onConnectionClosed(conn: Connection, info: CloseInfo): void {
    this.countFault(info.error?.code);
    this.pubsub.connectionClosed(conn);
    this.rpc.connectionClosed(conn);
    this.deadmen.connectionClosed(conn);
    const client = this.byConn.get(conn);
    if (!client) return;
    this.byConn.delete(conn);
    if (client.conn !== conn) return;
    client.conn = null;
    log("debug", "hub", "client disconnected", { id: client.id, reason: info.reason });
    if (this.closing) return;
    // A client that closed gracefully said goodbye: it will not resume, so its pointers go at once. Only a
    // lost connection (a fault, a reset, silence) keeps them for the reconnect window.
    const goodbye = info.initiator === "remote" && info.error === undefined;
    if (goodbye || client.holdings.size === 0 || this.reconnectWindowMs === 0) {
      this.forget(client);
      return;
    }
    client.windowTimer = setTimeout(() => this.forget(client), this.reconnectWindowMs);
    client.windowTimer.unref();
  }

  private countFault(code: string | undefined): void {
    const f = this.faults;
    if (
      code === "EZIPC_PROTOCOL" ||
      code === "EZIPC_HANDSHAKE" ||
      code === "EZIPC_DECODE" ||
      code === "EZIPC_UNKNOWN_MESSAGE"
    )
      f.protocolErrors++;
    else if (code === "EZIPC_FRAME_TOO_LARGE") f.framesTooLarge++;
    else if (code === "EZIPC_SLOW_CONSUMER") f.slowConsumerCuts++;
    else if (code === "EZIPC_HEARTBEAT_TIMEOUT") f.heartbeatTimeouts++;
    else if (code === "EZIPC_DECRYPT") f.decryptErrors++;
  }

  /** Releases everything a client held and forgets it. */
  private forget(client: ClientState): void {
    client.windowTimer = null;
    this.clients.delete(client.id);
    for (const h of [...client.holdings.values()]) this.dropHolding(client, h);
    this.emit("clientGone", { id: client.id, name: client.name });
  }

  // ---- messages ---------------------------------------------------------------------------------------

  private send(client: ClientState, type: string, body: unknown): void {
    const conn = client.conn;
    if (conn) sendTo(conn, this.protocol.encode(type, body));
  }

  private fail(client: ClientState, rid: number, err: unknown): void {
    if (!isEzipcError(err)) throw err;
    this.send(client, "error", { rid, code: err.code, message: err.message });
  }

  private dispatch(client: ClientState, msg: HubMessage): void {
    // One permission check for every message (admission.ts), before any handler runs.
    const admission = CLIENT_MESSAGES[msg.type];
    if (!admission) throw new EzipcError("EZIPC_PROTOCOL", `a client may not send ${msg.type}`);
    if (this.access && client.conn && "op" in admission) {
      const body = msg.body as Record<string, unknown>;
      const subject = subjectOf(admission, body);
      if (subject !== undefined) {
        try {
          this.access(client.conn, admission.op, subject);
        } catch (err) {
          if (!isEzipcError(err) || typeof body.rid !== "number") throw err;
          const { code, message } = err;
          if (admission.refuse === "end") {
            this.send(client, "end", {
              side: SIDE_CALLER,
              id: body.rid,
              status: END_ERROR,
              code,
              message,
              payload: NO_BYTES,
            });
          } else this.send(client, "error", { rid: body.rid, code, message });
          return;
        }
      }
    }
    switch (msg.type) {
      case "allocate":
        this.onAllocate(client, msg.body);
        return;
      case "watch":
        this.onWatch(client, msg.body);
        return;
      case "release":
        this.onRelease(client, msg.body);
        return;
      case "read":
        this.onRead(client, msg.body);
        return;
      case "write":
        this.onWrite(client, msg.body);
        return;
      case "config":
        this.onConfig(client, msg.body);
        return;
      case "resync":
        this.onResync(client, msg.body);
        return;
      case "resyncDone":
        this.onResyncDone(client, msg.body);
        return;
      case "list":
        this.onList(client, msg.body);
        return;
      case "stats":
        this.send(client, "statsReply", { rid: msg.body.rid, json: JSON.stringify(this.stats()) });
        return;
      case "peek":
        this.onPeek(client, msg.body);
        return;
      case "info":
        this.onInfo(client, msg.body);
        return;
      default:
        if (client.conn) {
          const label = client.label;
          for (const feature of [this.pubsub, this.rpc, this.deadmen]) {
            if (feature.handle(client.conn, label, msg.type, msg.body)) return;
          }
        }
        throw new EzipcError("EZIPC_PROTOCOL", `a client may not send ${msg.type}`);
    }
  }

  /** Whether `conn`'s client may do `op` on `subject` (listings show only what it may see). */
  private permits(conn: Connection, op: Operation, subject: string): boolean {
    try {
      this.access?.(conn, op, subject);
      return true;
    } catch {
      return false;
    }
  }

  /** Throws `EZIPC_PERMISSION_DENIED` if the client's permissions (docs/security.md) do not allow it. */
  private checkAccess(client: ClientState, op: Operation, subject: string): void {
    if (this.access && client.conn) this.access(client.conn, op, subject);
  }

  private onAllocate(client: ClientState, m: Infer<typeof hubMessages.allocate>): void {
    try {
      checkKey(m.key);
      checkPolicy(m.policy);
      if (m.kind !== KIND_BYTES && m.kind !== KIND_JSON) {
        throw new EzipcError("EZIPC_BAD_REQUEST", `unknown block kind ${m.kind}`);
      }
      if (m.kind === KIND_BYTES) checkSize(m.size);
      if (m.persistent && !this.allowClientPersistent) {
        throw new EzipcError(
          "EZIPC_PERMISSION_DENIED",
          "this hub does not let clients create persistent keys",
        );
      }
      this.checkPointerLimit(client);
      const found = this.table.lookup(m.key);
      let block: Block;
      let created = false;
      if ("found" in found) {
        if (m.ifExists !== 1) throw new EzipcError("EZIPC_KEY_EXISTS", `key ${m.key} already exists`);
        block = found.found;
        if (block.kind !== m.kind) {
          throw new EzipcError(
            "EZIPC_BAD_REQUEST",
            `key ${m.key} holds ${kindName(block.kind)}, not ${kindName(m.kind)}`,
          );
        }
        if (m.kind === KIND_BYTES && block.data.length !== m.size) {
          throw new EzipcError(
            "EZIPC_BAD_REQUEST",
            `key ${m.key} has ${block.data.length} bytes, not ${m.size}`,
          );
        }
      } else {
        block = this.table.create(m.key, m.kind === KIND_JSON ? 0 : m.size, {
          kind: m.kind,
          persistent: m.persistent,
        });
        created = true;
        if (block.persistent) this.persistNow(block);
      }
      this.addPointers(client, block, m.policy, 1);
      this.sendOpened(client, m.rid, block, created);
    } catch (err) {
      this.fail(client, m.rid, err);
    }
  }

  private onWatch(client: ClientState, m: Infer<typeof hubMessages.watch>): void {
    try {
      checkKey(m.key);
      checkPolicy(m.policy);
      this.checkPointerLimit(client);
      const block = this.find(m.key);
      this.addPointers(client, block, m.policy, 1);
      this.sendOpened(client, m.rid, block, false);
    } catch (err) {
      this.fail(client, m.rid, err);
    }
  }

  private onPeek(client: ClientState, m: Infer<typeof hubMessages.peek>): void {
    try {
      checkKey(m.key);
      const b = this.find(m.key);
      this.send(client, "opened", {
        rid: m.rid,
        id: b.id,
        kind: b.kind,
        size: b.data.length,
        version: BigInt(b.version),
        persistent: b.persistent,
        created: false,
        data: b.data,
      });
    } catch (err) {
      this.fail(client, m.rid, err);
    }
  }

  /** What the hub knows of a key, with no side effect (a key in grace stays in grace). */
  private onInfo(client: ClientState, m: Infer<typeof hubMessages.info>): void {
    try {
      checkKey(m.key);
      const found = this.table.lookup(m.key);
      const none = { rid: m.rid, kind: 0, size: 0, version: 0n, refcount: 0, persistent: false };
      if ("disposed" in found) this.send(client, "keyInfo", { ...none, state: INFO_DISPOSED });
      else if ("missing" in found) this.send(client, "keyInfo", { ...none, state: INFO_NONE });
      else {
        const b = found.found;
        this.send(client, "keyInfo", {
          rid: m.rid,
          state: b.refcount === 0 && !b.persistent ? INFO_GRACE : INFO_LIVE,
          kind: b.kind,
          size: b.data.length,
          version: BigInt(b.version),
          refcount: b.refcount,
          persistent: b.persistent,
        });
      }
    } catch (err) {
      this.fail(client, m.rid, err);
    }
  }

  private onRelease(client: ClientState, m: Infer<typeof hubMessages.release>): void {
    const h = client.holdings.get(m.id);
    // A release can cross an invalidation or a resync on the wire: nothing left to release is fine.
    if (!h || m.policy > POLL || h.counts[m.policy]! === 0) return;
    h.counts[m.policy]!--;
    client.pointers--;
    this.table.release(h.block);
    h.policy = policyOf(h.counts);
    if (h.policy === -1) this.removeHolding(client, h);
    else if (h.policy !== POLL && h.dirty) {
      h.dirty = false;
      client.dirty.delete(h);
    }
  }

  private onRead(client: ClientState, m: Infer<typeof hubMessages.read>): void {
    try {
      const h = this.holding(client, m.id);
      this.counters.reads++;
      h.staleSent = false;
      this.send(client, "value", {
        rid: m.rid,
        id: m.id,
        version: BigInt(h.block.version),
        data: h.block.data,
      });
    } catch (err) {
      this.fail(client, m.rid, err);
    }
  }

  private onWrite(client: ClientState, m: Infer<typeof hubMessages.write>): void {
    try {
      const h = this.holding(client, m.id);
      const b = h.block;
      this.checkAccess(client, "write", b.key);
      if (b.kind !== KIND_BYTES) {
        throw new EzipcError("EZIPC_BAD_REQUEST", `${b.key} is a JSON config; use its config operations`);
      }
      const cur = b.persistent ? this.commits.current(b) : b;
      if (m.offset + m.data.length > cur.data.length) {
        throw new EzipcError(
          "EZIPC_BAD_REQUEST",
          `${b.key}: write of ${m.data.length} bytes at ${m.offset} is outside its ${cur.data.length} bytes`,
        );
      }
      if (m.expect !== undefined && Number(m.expect) !== cur.version) {
        this.send(client, "conflict", { rid: m.rid, version: BigInt(b.version) });
        return;
      }
      if (b.persistent) {
        const data = Buffer.from(cur.data);
        data.set(m.data, m.offset);
        this.stage(client, m.rid, b, data, cur.version + 1);
        return;
      }
      b.data.set(m.data, m.offset);
      this.changed(b);
      this.send(client, "ok", { rid: m.rid, version: BigInt(b.version) });
    } catch (err) {
      this.fail(client, m.rid, err);
    }
  }

  private onConfig(client: ClientState, m: Infer<typeof hubMessages.config>): void {
    try {
      const h = this.holding(client, m.id);
      const b = h.block;
      this.checkAccess(client, "write", b.key);
      if (b.kind !== KIND_JSON) throw new EzipcError("EZIPC_BAD_REQUEST", `${b.key} is not a JSON config`);
      let value: unknown;
      try {
        value = JSON.parse(m.json);
      } catch (err) {
        throw new EzipcError("EZIPC_BAD_REQUEST", `${b.key}: invalid JSON: ${(err as Error).message}`);
      }
      const cur = b.persistent ? this.commits.current(b) : b;
      let next: unknown;
      if (m.op === 0) next = value;
      else if (m.op === 1) {
        if (cur.data.length > 0) {
          this.send(client, "conflict", { rid: m.rid, version: BigInt(b.version) });
          return;
        }
        next = value;
      } else if (m.op === 2) {
        const current = cur.data.length > 0 ? JSON.parse(cur.data.toString("utf8")) : undefined;
        next = mergePatch(current, value);
      } else throw new EzipcError("EZIPC_BAD_REQUEST", `unknown config operation ${m.op}`);
      const data = Buffer.from(JSON.stringify(next), "utf8");
      this.table.checkSize(b.key, data.length, b.data.length);
      if (b.persistent) {
        this.stage(client, m.rid, b, data, cur.version + 1);
        return;
      }
      this.table.replaceData(b, data);
      this.changed(b);
      this.send(client, "ok", { rid: m.rid, version: BigInt(b.version) });
    } catch (err) {
      this.fail(client, m.rid, err);
    }
  }

  private onResync(client: ClientState, m: Infer<typeof hubMessages.resync>): void {
    try {
      checkKey(m.key);
      const counts = m.counts as [number, number, number];
      const total = counts[0] + counts[1] + counts[2];
      if (total === 0) throw new EzipcError("EZIPC_BAD_REQUEST", "resync with no pointers");
      let h = client.holdings.get(m.id);
      let block: Block;
      if (h && h.block.key === m.key) block = h.block;
      else {
        block = this.find(m.key);
        h = client.holdings.get(block.id);
      }
      const before = h ? h.counts[0] + h.counts[1] + h.counts[2] : 0;
      // The same bound as allocate/watch: the pointers this client will hold after the resync.
      if (client.pointers - before + total > this.maxPointersPerClient) {
        throw new EzipcError(
          "EZIPC_TOO_MANY_POINTERS",
          `resync of ${m.key} with ${total} pointers is over this client's maximum of ${this.maxPointersPerClient}`,
        );
      }
      if (h) {
        for (let p = 0; p < 3; p++) h.counts[p] = 0;
        client.pointers -= before;
        this.table.hold(block, total); // hold first so the block never passes through refcount 0
        this.table.release(block, before);
        h.policy = -1;
      } else this.table.hold(block, total);
      this.addPointers(client, block, -1, 0, counts);
      client.resynced?.add(block.id);
      this.sendOpened(client, m.rid, block, false);
    } catch (err) {
      this.fail(client, m.rid, err);
    }
  }

  private onResyncDone(client: ClientState, m: Infer<typeof hubMessages.resyncDone>): void {
    const kept = client.resynced;
    client.resynced = null;
    if (kept) {
      for (const h of [...client.holdings.values()]) if (!kept.has(h.block.id)) this.dropHolding(client, h);
    }
    this.send(client, "ok", { rid: m.rid, version: 0n });
  }

  private onList(client: ClientState, m: Infer<typeof hubMessages.list>): void {
    const match = globMatcher(m.pattern);
    const keys = [];
    for (const b of this.table.blocks()) {
      if (!match(b.key)) continue;
      if (this.access && client.conn && !this.permits(client.conn, "watch", b.key)) continue;
      const holders = [];
      for (const [c, h] of this.holders.get(b) ?? []) {
        holders.push({ client: `${c.name}#${c.id.slice(0, 6)}`, counts: [...h.counts] });
      }
      keys.push({
        key: b.key,
        kind: b.kind,
        size: b.data.length,
        version: BigInt(b.version),
        refcount: b.refcount,
        persistent: b.persistent,
        state: b.refcount === 0 && !b.persistent ? STATE_GRACE : STATE_LIVE,
        holders,
      });
    }
    keys.sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
    this.send(client, "listing", { rid: m.rid, keys });
  }

  // ---- holdings and propagation -----------------------------------------------------------------------

  private find(key: string): Block {
    const found = this.table.lookup(key);
    if ("found" in found) return found.found;
    if ("disposed" in found) throw new EzipcError("EZIPC_KEY_DISPOSED", `key ${key} has been disposed`);
    throw new EzipcError("EZIPC_KEY_NOT_FOUND", `no key ${key}`);
  }

  private holding(client: ClientState, id: number): Holding {
    const h = client.holdings.get(id);
    if (!h) throw new EzipcError("EZIPC_BAD_REQUEST", `this client holds no pointer on block ${id}`);
    return h;
  }

  private checkPointerLimit(client: ClientState): void {
    if (client.pointers >= this.maxPointersPerClient) {
      throw new EzipcError(
        "EZIPC_TOO_MANY_POINTERS",
        `this client holds its maximum of ${this.maxPointersPerClient} pointers`,
      );
    }
  }

  /**
   * Adds pointers to a client's holding: `n` of `policy`, or the given per-policy `counts` (already held
   * in the table by the caller).
   */
  private addPointers(
    client: ClientState,
    block: Block,
    policy: number,
    n: number,
    counts?: readonly number[],
  ): void {
    let h = client.holdings.get(block.id);
    if (!h) {
      h = { block, counts: [0, 0, 0], policy: -1, staleSent: false, dirty: false };
      client.holdings.set(block.id, h);
      let m = this.holders.get(block);
      if (!m) {
        m = new Map();
        this.holders.set(block, m);
      }
      m.set(client, h);
    }
    if (counts) {
      for (let p = 0; p < 3; p++) {
        h.counts[p]! += counts[p]!;
        client.pointers += counts[p]!;
      }
    } else {
      h.counts[policy]! += n;
      client.pointers += n;
      this.table.hold(block, n);
    }
    h.policy = policyOf(h.counts);
    h.staleSent = false;
  }

  private sendOpened(client: ClientState, rid: number, b: Block, created: boolean): void {
    const h = client.holdings.get(b.id);
    const withData = h !== undefined && h.policy >= LAZY;
    if (h?.dirty) {
      h.dirty = false;
      client.dirty.delete(h);
    }
    this.send(client, "opened", {
      rid,
      id: b.id,
      kind: b.kind,
      size: b.data.length,
      version: BigInt(b.version),
      persistent: b.persistent,
      created,
      data: withData ? b.data : undefined,
    });
  }

  /** Removes a holding whose counts are all 0. */
  private removeHolding(client: ClientState, h: Holding): void {
    client.holdings.delete(h.block.id);
    client.dirty.delete(h);
    const m = this.holders.get(h.block);
    m?.delete(client);
    if (m && m.size === 0) this.holders.delete(h.block);
  }

  /** Releases every pointer of a holding. */
  private dropHolding(client: ClientState, h: Holding): void {
    const n = h.counts[0] + h.counts[1] + h.counts[2];
    h.counts.fill(0);
    client.pointers -= n;
    this.removeHolding(client, h);
    if (this.table.byId(h.block.id) === h.block) this.table.release(h.block, n);
  }

  /** A block's value changed in place: bump its version and tell its holders. */
  private changed(b: Block): void {
    b.version++;
    this.counters.writes++;
    this.notifyHolders(b);
  }

  /**
   * A write to a persistent key: staged until the store commits it (block-commits.ts), then applied, pushed
   * to the holders and acknowledged.
   */
  private stage(client: ClientState, rid: number, b: Block, data: Buffer, version: number): void {
    this.counters.writes++;
    this.commits.stage(b, { data, version }, (err) => {
      if (err) this.send(client, "error", { rid, code: err.code, message: err.message });
      else this.send(client, "ok", { rid, version: BigInt(version) });
    });
  }

  /** A persistent key's staged write was committed. */
  private applyCommitted(b: Block, value: BlockValue): void {
    this.table.replaceData(b, value.data);
    b.version = value.version;
    this.notifyHolders(b);
  }

  /** Tells a block's holders of its new value (poll: the value; lazy: a stale notice). */
  private notifyHolders(b: Block): void {
    const holders = this.holders.get(b);
    if (!holders) return;
    let update: Uint8Array | undefined;
    let stale: Uint8Array | undefined;
    for (const [client, h] of holders) {
      const conn = client.conn;
      if (h.policy === POLL) {
        if (!conn || client.congested || conn.state !== "open") {
          if (!h.dirty) {
            h.dirty = true;
            client.dirty.add(h);
          }
          this.counters.updatesCoalesced++;
          continue;
        }
        update ??= this.protocol.encode("update", { id: b.id, version: BigInt(b.version), data: b.data });
        this.counters.updatesSent++;
        if (!sendTo(conn, update)) this.congest(client, conn);
      } else if (h.policy === LAZY && !h.staleSent) {
        h.staleSent = true;
        if (conn?.state !== "open") continue;
        stale ??= this.protocol.encode("stale", { id: b.id, version: BigInt(b.version) });
        this.counters.staleSent++;
        sendTo(conn, stale);
      }
    }
  }

  /** The client's queue is full: coalesce its updates until it drains. */
  private congest(client: ClientState, conn: Connection): void {
    if (client.congested) return;
    client.congested = true;
    conn.drain().then(
      () => this.flushDirty(client, conn),
      () => {},
    );
  }

  private flushDirty(client: ClientState, conn: Connection): void {
    if (client.conn !== conn) return;
    client.congested = false;
    for (const h of client.dirty) {
      if (conn.state !== "open") return;
      client.dirty.delete(h);
      h.dirty = false;
      const b = h.block;
      this.counters.updatesSent++;
      const ok = sendTo(
        conn,
        this.protocol.encode("update", { id: b.id, version: BigInt(b.version), data: b.data }),
      );
      if (!ok) {
        this.congest(client, conn);
        return;
      }
    }
  }

  /** Commits a new persistent key at once; if the store fails, the key is removed and `EZIPC_STORE` thrown. */
  private persistNow(block: Block): void {
    try {
      this.store.save([{ key: block.key, kind: block.kind, version: block.version, data: block.data }]);
    } catch (err) {
      this.table.delete(block);
      throw new EzipcError("EZIPC_STORE", `persisting ${block.key} failed: ${(err as Error).message}`, {
        cause: err,
      });
    }
  }

  private onInvalidate(block: Block, reason: "disposed" | "deleted"): void {
    this.commits.drop(block);
    if (block.persistent) {
      try {
        this.store.remove(block.key);
      } catch (err) {
        log("error", "hub", "store remove failed", { key: block.key, error: err });
      }
    }
    const holders = this.holders.get(block);
    if (holders) {
      for (const [client, h] of [...holders]) {
        const n = h.counts[0] + h.counts[1] + h.counts[2];
        client.pointers -= n;
        h.counts.fill(0);
        this.removeHolding(client, h);
        this.send(client, "invalidated", { id: block.id, code: "EZIPC_KEY_DISPOSED" });
      }
    }
    log("debug", "hub", "invalidated", { key: block.key, reason });
    this.emit("invalidated", { key: block.key, reason });
  }
}

function checkPolicy(p: number): void {
  if (p !== REQUEST && p !== LAZY && p !== POLL) {
    throw new EzipcError("EZIPC_BAD_REQUEST", `unknown sync policy ${p} (0 request, 1 lazy, 2 poll)`);
  }
}

function checkSize(size: number): void {
  if (!Number.isInteger(size) || size < 1) {
    throw new EzipcError("EZIPC_BAD_REQUEST", `a block needs a size of at least 1 byte, got ${size}`);
  }
}

function kindName(kind: number): string {
  return kind === KIND_JSON ? "a JSON config" : "bytes";
}
