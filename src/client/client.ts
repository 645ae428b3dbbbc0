/**
 * The hub client (`connect()`): the connection to a hub, hello and resync after every reconnect, and the
 * facade of every capability (shared variables, pub/sub, RPC, deadman).
 *
 * Over 600 lines: the client still composes every capability inline; issue 13 splits it by capability.
 */
import { EventEmitter } from "node:events";
import os from "node:os";
import type { Infer, SchemaCodec, SchemaType } from "../codec/schema.js";
import { schemaCodec } from "../codec/schema.js";
import { withTimeout } from "../deadline.js";
import { cancelled, Deadman, type DeadmanState } from "../deadman/deadman-client.js";
import { OP_CANCEL } from "../deadman/deadman-hub.js";
import { type ErrorCode, ErrorCodes, EzipcError, isEzipcError } from "../errors.js";
import type { HubStats } from "../hub/hub.js";
import { log } from "../log.js";
import {
  HUB_FEATURES,
  HUB_PROTOCOL_VERSION,
  type HubMessage,
  type hubMessages,
  hubProtocol,
  KIND_BYTES,
  KIND_JSON,
  type SyncPolicy,
} from "../protocol/hub-messages.js";
import { encodeHeaders, MESSAGE_INDEX, PublishBatcher, parseMessage } from "../pubsub/fast-frames.js";
import {
  type Gap,
  type SubscribeOptions,
  Subscription,
  type SubscriptionHost,
  type TopicMessage,
} from "../pubsub/subscription.js";
import { checkTopic, topicMatcher } from "../pubsub/topics.js";
import { DirectRoutes, DirectServer } from "../rpc/direct.js";
import {
  type Body,
  type Channel,
  type RequestOptions,
  RpcClient,
  type RpcHandler,
  type RpcLink,
  type RpcSession,
  type Server,
  type StreamOptions,
} from "../rpc/rpc-client.js";
import { secureDial } from "../security/channel.js";
import { knownHosts, parsePublicKey } from "../security/keys.js";
import type { KeyPair } from "../security/suite.js";
import type { Message, Protocol } from "../service/protocol.js";
import { Dialer, type DialerOptions } from "../transport/dialer.js";
import { COPY_THRESHOLD_BYTES } from "../transport/frame-writer.js";
import type { Connection, StreamUpgrade } from "../transport/types.js";
import { checkKey } from "../vars/block-table.js";
import { ConfigVar } from "../vars/config-var.js";
import { IpcPtr, KeyState, type Versioned } from "../vars/pointer.js";

/** One topic as `topics()` reports it. */
export interface TopicInfo {
  name: string;
  /** Oldest retained seq (equal to lastSeq + 1 when the history is empty). */
  firstSeq: bigint;
  /** Newest seq, 0 if nothing was ever published. */
  lastSeq: bigint;
  count: number;
  bytes: number;
  subscribers: number;
  persist: boolean;
}

/** Publish options. */
export interface PublishOptions {
  headers?: Record<string, string>;
}

type Payload = Uint8Array | string;

function payloadBytes(p: Payload): Uint8Array {
  if (typeof p === "string") return Buffer.from(p, "utf8");
  if (p instanceof Uint8Array) return p;
  throw new TypeError("a payload is a Uint8Array or a string");
}

function headerList(h: Record<string, string> | undefined): { key: string; value: string }[] {
  if (!h) return [];
  return Object.entries(h).map(([key, value]) => {
    if (typeof value !== "string") throw new TypeError(`header ${key} must be a string`);
    return { key, value };
  });
}

const INIT_CODES = { oldest: 0, mostRecent: 1, awaitNew: 2 } as const;
const EMPTY_HEADER_LIST = encodeHeaders([]);

/** Options of {@link connect}. Dial and reconnect options apply to every (re)connection. */
export interface ConnectOptions extends DialerOptions {
  /** This client's name, shown by `ezipc ls`. Default `pid:<pid>`. */
  name?: string;
  /** A request with no reply by then rejects with `EZIPC_TIMEOUT`. Default 10 s. */
  requestTimeoutMs?: number;
  /** Keep retrying when the first connection fails, instead of rejecting. Default false. */
  waitOnFirstConnect?: boolean;
  /**
   * Direct RPC (docs/rpc.md): serve requests on a private Unix socket too, and call servers on this host
   * directly once the hub named them. Default true; false sends every call through the hub.
   */
  directRpc?: boolean;
  /** Connect to a secure hub (docs/security.md): how to check its key, and this client's credentials. */
  secure?: ClientSecurity;
}

/** How a client checks a secure hub and proves itself to it. */
export interface ClientSecurity {
  /** The hub's public key (base64 or bytes), pinned: only that hub can complete the handshake. */
  hubKey?: string | Uint8Array;
  /** Without `hubKey`: a known-hosts file the hub's key must be listed in. */
  knownHosts?: string;
  /** With `knownHosts`: add an unknown hub's key to it instead of refusing. */
  trustOnFirstUse?: boolean;
  /** This client's static key pair (`readKeyFile`). Default: one per process. */
  staticKey?: KeyPair;
  /** A token the hub admits this client by. */
  token?: string;
}

/** The upgrade that makes a connection to `url` secure with `s`. */
function secureUpgrade(url: string, s: ClientSecurity): StreamUpgrade {
  const hubKey = typeof s.hubKey === "string" ? parsePublicKey(s.hubKey) : s.hubKey;
  if (!hubKey && !s.knownHosts) {
    throw new TypeError("secure: give hubKey (pinned) or knownHosts (with trustOnFirstUse to learn it)");
  }
  return secureDial({
    hubKey,
    verifyHubKey: s.knownHosts
      ? knownHosts(s.knownHosts, url, { trustOnFirstUse: s.trustOnFirstUse ?? false })
      : undefined,
    staticKey: s.staticKey,
    token: s.token,
  });
}

/** Options of {@link HubClient.allocate}. */
export interface AllocateOptions {
  /** Never disposed by the hub; with a store, survives a hub restart. Default false. */
  persistent?: boolean;
  /** Open the key if it exists (same kind and size) instead of failing with `EZIPC_KEY_EXISTS`. */
  openExisting?: boolean;
}

/** One key as `list()` reports it. */
export interface KeyInfo {
  key: string;
  kind: "bytes" | "json";
  size: number;
  version: number;
  refcount: number;
  persistent: boolean;
  /** `grace`: no pointer left, invalidated when the grace period ends. */
  state: "live" | "grace";
  /** Each client holding pointers, with its pointer counts per policy. */
  holders: { client: string; request: number; lazy: number; poll: number }[];
}

/** The client's link to the hub. */
export type ClientStatus = "connecting" | "connected" | "reconnecting" | "closed";

/** What {@link HubClient.info} reports of a key. */
export type KeyDescription =
  | { state: "none" | "disposed" }
  | {
      state: "live" | "grace";
      kind: "bytes" | "json";
      size: number;
      version: number;
      refcount: number;
      persistent: boolean;
    };

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
  deadline: number;
  type: string;
}

const POLICY_INDEX = { request: 0, lazy: 1, poll: 2 } as const;

function checkPolicyName(policy: string): asserts policy is SyncPolicy {
  if (!(policy in POLICY_INDEX))
    throw new TypeError(`sync policy must be request, lazy or poll, got ${policy}`);
}

function wireError(code: string, message: string): EzipcError {
  const known = code in ErrorCodes ? (code as ErrorCode) : "EZIPC_PROTOCOL";
  return new EzipcError(known, known === code ? message : `${code}: ${message}`);
}

/**
 * A connection to a hub (the seed's `ipc_client`). Make one with {@link connect}. It reconnects by
 * itself, resynchronising every pointer it holds; {@link close} releases everything.
 */
export class HubClient extends EventEmitter<HubClientEvents> {
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
  status: ClientStatus = "connecting";
  private readonly dialer: Dialer;
  private readonly protocol: Protocol = hubProtocol();
  private conn: Connection | null = null;
  private ready = false;
  private readyWaiters: { resolve: () => void; reject: (e: EzipcError) => void }[] = [];
  private readonly pending = new Map<number, Pending>();
  private nextRid = 1;
  private sweep: NodeJS.Timeout | null = null;
  private readonly byKey = new Map<string, KeyState>();
  private readonly deadmen = new Map<string, Deadman>();
  /** Topics already validated, as frame bytes (bounded). */
  private readonly topicBytes = new Map<string, Buffer>();
  /** Fire-and-forget publishes waiting to leave as one frame, for `batchConn`. */
  private readonly batcher = new PublishBatcher((frame) => {
    const conn = this.batchConn;
    this.batchOk = conn !== null && conn.state === "open" && conn.send(frame);
    return this.batchOk;
  }, COPY_THRESHOLD_BYTES);
  private batchConn: Connection | null = null;
  /** What the connection said to the last batch sent (false: over its high-water mark). */
  private batchOk = true;
  private batchScheduled = false;
  private readonly flushTick = () => {
    this.batchScheduled = false;
    this.flushPublishes();
  };
  private readonly rpcLink: RpcLink = {
    nextRid: () => this.allocRid(),
    send: (type, body) => {
      const conn = this.conn;
      if (!this.ready || !conn || conn.state !== "open") {
        throw new EzipcError("EZIPC_CONNECTION_CLOSED", "not connected to the hub");
      }
      this.flushPublishes();
      return conn.send(this.protocol.encode(type, body));
    },
    trySend: (type, body) => {
      this.send(type, body);
    },
    serveRequest: async (topic) => {
      const r = await this.hubRequest("serve", { topic, ...(await this.directAddress()) });
      if (r.type !== "ok") throw unexpected(r);
    },
    unserved: () => {
      // Listen only while serving: the direct listener (and its folder) goes with the last topic.
      if (this.rpc.servedTopics().length > 0 || !this.directServer) return;
      const server = this.directServer;
      this.directServer = null;
      void server.then((d) => d?.close());
    },
  };
  private readonly rpc = new RpcClient(this.rpcLink);
  private readonly directRpc: boolean;
  /** This client's direct listener, opened on its first serve. */
  private directServer: Promise<DirectServer | null> | null = null;
  private readonly routes = new DirectRoutes(
    (topic) => {
      this.hubRequest("routes", { topic }).then(
        (r) => {
          if (r.type === "routeList") this.routes.update(topic, r.body.routes);
        },
        () => {},
      );
    },
    () => this.label,
    (topic, servers) => this.emit("directRoutes", topic, servers),
  );
  private readonly subs = new Map<number, Subscription>();
  /** Where each concrete subscription started (its topic's next seq then), for resuming before any message. */
  private readonly subStart = new Map<Subscription, bigint>();
  private nextSid = 1;
  private readonly subHost: SubscriptionHost = {
    // Sent whenever connected, also during a resync: a credit the hub gets before the subscription is
    // re-made is ignored there, and re-subscribing resets the subscription's outstanding credit.
    credit: (sub, n) => this.send("credit", { sid: sub.sid, n }),
    unsubscribe: (sub) => {
      this.subs.delete(sub.sid);
      this.subStart.delete(sub);
      if (this.ready) this.send("unsubscribe", { sid: sub.sid });
    },
  };
  private readonly byId = new Map<number, KeyState>();
  private readonly timeoutMs: number;
  private closedError: EzipcError | null = null;
  private readonly finalizer = new FinalizationRegistry<{ state: KeyState; policy: number }>((held) =>
    this.releaseHeld(held.state, held.policy),
  );
  private readonly host = {
    read: (s: KeyState) => this.readState(s),
    write: (s: KeyState, data: Uint8Array, offset: number, expect?: number) =>
      this.writeState(s, data, offset, expect),
    release: (ptr: IpcPtr<SyncPolicy, unknown>, s: KeyState, policy: number) => {
      this.finalizer.unregister(ptr);
      this.releaseHeld(s, policy);
    },
  };

  /** @internal use {@link connect} */
  constructor(
    readonly url: string,
    options: ConnectOptions = {},
  ) {
    super();
    this.name = options.name ?? `pid:${process.pid}`;
    this.directRpc = (options.directRpc ?? true) && process.platform !== "win32";
    this.timeoutMs = options.requestTimeoutMs ?? 10_000;
    this.dialer = new Dialer(
      url,
      options.secure ? { ...options, upgrade: secureUpgrade(url, options.secure) } : options,
    );
    this.dialer.on("connection", (conn) => this.onConnection(conn));
    this.dialer.on("status", (s) => {
      if (s.type === "reconnecting" || s.type === "disconnected") {
        if (this.status !== "closed") this.setStatus(this.clientId ? "reconnecting" : "connecting");
        if (!this.clientId && !options.waitOnFirstConnect && s.type === "reconnecting") {
          void this.closeWith(s.error);
        }
      } else if (s.type === "closed") {
        void this.closeWith(s.error ?? new EzipcError("EZIPC_CONNECTION_CLOSED", "client closed"));
      }
    });
  }

  /** Resolves once connected and resynchronised (at once if so); rejects if the client closes first. */
  whenReady(): Promise<void> {
    if (this.ready) return Promise.resolve();
    if (this.closedError) return Promise.reject(this.closedError);
    return new Promise((resolve, reject) => this.readyWaiters.push({ resolve, reject }));
  }

  /**
   * Creates `key` on the hub and returns a pointer holding one reference: `size` zero-filled bytes, or a
   * typed block laid out by a fixed-size schema (`t.struct({...})` of numbers). Rejects with
   * `EZIPC_KEY_EXISTS` when the key is live (of several racing clients exactly one wins),
   * `EZIPC_INVALID_KEY`, `EZIPC_PERMISSION_DENIED` (persistent), or a limit
   * (`EZIPC_BLOCK_TOO_LARGE`, `EZIPC_TOO_MANY_KEYS`, `EZIPC_HUB_FULL`, `EZIPC_TOO_MANY_POINTERS`).
   */
  async allocate<P extends SyncPolicy>(
    key: string,
    size: number,
    policy: P,
    options?: AllocateOptions,
  ): Promise<IpcPtr<P>>;
  async allocate<P extends SyncPolicy, S extends SchemaType<unknown>>(
    key: string,
    schema: S,
    policy: P,
    options?: AllocateOptions,
  ): Promise<IpcPtr<P, Infer<S>>>;
  async allocate<P extends SyncPolicy>(
    key: string,
    sizeOrSchema: number | SchemaType<unknown>,
    policy: P,
    options: AllocateOptions = {},
  ): Promise<IpcPtr<P, unknown>> {
    checkKey(key);
    checkPolicyName(policy);
    const codec = typeof sizeOrSchema === "number" ? undefined : fixedCodec(sizeOrSchema);
    const size = codec ? codec.fixedSize! : (sizeOrSchema as number);
    if (!Number.isInteger(size) || size < 1)
      throw new RangeError(`size must be a positive integer, got ${size}`);
    const opened = this.opener(key, policy);
    await this.hubRequest(
      "allocate",
      {
        key,
        kind: KIND_BYTES,
        size,
        policy: POLICY_INDEX[policy],
        persistent: options.persistent ?? false,
        ifExists: options.openExisting ? 1 : 0,
      },
      undefined,
      opened.onReply,
    );
    return this.pointerFor(opened.state(), policy, codec);
  }

  /**
   * A pointer on an existing key, holding one reference. Resolves with `null` if the key was never created;
   * rejects with `EZIPC_KEY_DISPOSED` if it existed and was invalidated. Pass the block's schema for typed
   * `get()`/`set()`.
   */
  async watch<P extends SyncPolicy>(key: string, policy: P): Promise<IpcPtr<P> | null>;
  async watch<P extends SyncPolicy, S extends SchemaType<unknown>>(
    key: string,
    policy: P,
    options: { schema: S },
  ): Promise<IpcPtr<P, Infer<S>> | null>;
  async watch<P extends SyncPolicy>(
    key: string,
    policy: P,
    options: { schema?: SchemaType<unknown> } = {},
  ): Promise<IpcPtr<P, unknown> | null> {
    checkKey(key);
    checkPolicyName(policy);
    const codec = options.schema ? fixedCodec(options.schema) : undefined;
    const opened = this.opener(key, policy);
    try {
      await this.hubRequest("watch", { key, policy: POLICY_INDEX[policy] }, undefined, opened.onReply);
    } catch (err) {
      if (isEzipcError(err, "EZIPC_KEY_NOT_FOUND")) return null;
      throw err;
    }
    const state = opened.state();
    if (codec && state.size !== codec.fixedSize) {
      this.releaseHeld(state, POLICY_INDEX[policy]);
      throw new EzipcError(
        "EZIPC_BAD_REQUEST",
        `${key} has ${state.size} bytes; the schema needs ${codec.fixedSize}`,
      );
    }
    return this.pointerFor(state, policy, codec);
  }

  /**
   * A JSON config variable (AlephZero's cfg): created empty if missing (persistent unless told
   * otherwise), then held under `policy` (default `poll`).
   */
  async config(key: string, options: { policy?: SyncPolicy; persistent?: boolean } = {}): Promise<ConfigVar> {
    checkKey(key);
    const policy = options.policy ?? "poll";
    checkPolicyName(policy);
    const opened = this.opener(key, policy);
    await this.hubRequest(
      "allocate",
      {
        key,
        kind: KIND_JSON,
        size: 0,
        policy: POLICY_INDEX[policy],
        persistent: options.persistent ?? true,
        ifExists: 1,
      },
      undefined,
      opened.onReply,
    );
    const ptr = this.pointerFor(opened.state(), policy, undefined);
    return new ConfigVar(ptr as IpcPtr<SyncPolicy>, (op, json) => this.configOp(ptr.state, op, json));
  }

  // ---- pub/sub -------------------------------------------------------------------------------------------

  /**
   * Publishes to `topic`. Resolves once the hub stored the message, with its per-topic seq and the hub's
   * time (for a persisted topic, once it is durable). Rejects with `EZIPC_INVALID_TOPIC`,
   * `EZIPC_TOO_MANY_TOPICS`, `EZIPC_PERMISSION_DENIED` (`$hub.…` topics), or `EZIPC_CONNECTION_CLOSED` if the
   * connection was lost before the reply (the message may or may not have been stored). `seq` is a bigint;
   * `JSON.stringify` of the result writes it as a decimal string.
   */
  async publish(
    topic: string,
    payload: Payload,
    options: PublishOptions = {},
  ): Promise<{ seq: bigint; time: number }> {
    checkTopic(topic);
    const r = await this.hubRequest("publish", {
      topic,
      records: [{ headers: headerList(options.headers), payload: payloadBytes(payload) }],
    });
    if (r.type !== "published") throw unexpected(r);
    return jsonSafe({ seq: r.body.seq, time: r.body.time });
  }

  /**
   * Publishes without waiting for an acknowledgement (for throughput). Consecutive calls to one topic
   * within a tick leave as one frame (up to 64 KiB), sent at the end of the tick or before anything else
   * this client sends, so the hub sees every message in call order. Returns false when the connection's
   * send queue is over its high-water mark: wait for {@link drain} before publishing more. Throws
   * `EZIPC_CONNECTION_CLOSED` while disconnected (nothing is buffered across a reconnect: messages not yet
   * sent when the connection drops are lost).
   */
  publishAndForget(topic: string, payload: Payload, options?: PublishOptions): boolean {
    const topicBytes = this.topicFrameBytes(topic);
    const conn = this.conn;
    if (!this.ready || !conn || conn.state !== "open") {
      throw new EzipcError("EZIPC_CONNECTION_CLOSED", "not connected to the hub");
    }
    const bytes = typeof payload === "string" ? Buffer.from(payload, "utf8") : payloadBytes(payload);
    const headers = options?.headers ? encodeHeaders(headerList(options.headers)) : EMPTY_HEADER_LIST;
    if (this.batchConn !== conn) {
      this.batcher.discard();
      this.batchConn = conn;
      this.batchOk = true;
    }
    this.batcher.add(topicBytes, headers, bytes);
    if (!this.batchScheduled) {
      this.batchScheduled = true;
      process.nextTick(this.flushTick);
    }
    return this.batchOk;
  }

  /** Sends the fire-and-forget publishes waiting (before any other frame, to keep the order). */
  private flushPublishes(): void {
    if (this.batcher.pending > 0) this.batcher.flush();
  }

  private topicFrameBytes(topic: string): Buffer {
    let b = this.topicBytes.get(topic);
    if (!b) {
      checkTopic(topic);
      if (this.topicBytes.size >= 10_000) this.topicBytes.clear();
      b = Buffer.from(topic, "latin1");
      this.topicBytes.set(topic, b);
    }
    return b;
  }

  /** Resolves once the connection's send queue is below its high-water mark. */
  async drain(): Promise<void> {
    await this.whenReady();
    this.flushPublishes();
    await this.conn?.drain();
    this.batchOk = true;
  }

  /**
   * Subscribes to a topic or a pattern (`sensors.*` matches one token, `sensors.>` one or more). Resolves
   * once the hub registered it. Consume with `for await (const m of sub)`, or pass `handler` (called one
   * message at a time; an async handler is awaited before the next). See {@link SubscribeOptions}.
   */
  async subscribe(
    pattern: string,
    options: SubscribeOptions = {},
    handler?: (m: TopicMessage) => unknown,
  ): Promise<Subscription> {
    const { wildcard } = topicMatcher(pattern);
    const init = options.init ?? "awaitNew";
    const iter = options.iter ?? "next";
    const prefetch = options.prefetch ?? 256;
    if (!Number.isInteger(prefetch) || prefetch < 1 || prefetch > 65_536) {
      throw new RangeError("prefetch must be an integer 1..65536");
    }
    if (typeof init === "object" && typeof init.fromSeq !== "bigint")
      throw new TypeError("init.fromSeq must be a bigint");
    await this.whenReady();
    let sid = this.nextSid;
    while (this.subs.has(sid)) sid = sid >= 0xffffffff ? 1 : sid + 1;
    this.nextSid = sid >= 0xffffffff ? 1 : sid + 1;
    const sub = new Subscription(sid, pattern, init, iter, prefetch, this.subHost, handler, options.onGap);
    this.subs.set(sid, sub);
    try {
      const start = await this.sendSubscribe(this.conn!, sub, []);
      if (!wildcard) this.subStart.set(sub, start);
    } catch (err) {
      this.subs.delete(sid);
      throw err;
    }
    return sub;
  }

  private async sendSubscribe(
    conn: Connection,
    sub: Subscription,
    resume: { topic: string; seq: bigint }[],
  ): Promise<bigint> {
    const credit = sub.resetCredit();
    const init = sub.init;
    const r = await this.rawRequest(conn, "subscribe", {
      sid: sub.sid,
      pattern: sub.pattern,
      init: typeof init === "object" ? 3 : INIT_CODES[init],
      fromSeq: typeof init === "object" ? init.fromSeq : 0n,
      iter: sub.iter === "newest" ? 1 : 0,
      credit,
      resume,
    });
    if (r.type !== "ok") throw unexpected(r);
    return r.body.version;
  }

  /** Topics matching `pattern` (default all), with their history bounds and subscriber counts. */
  async topics(pattern = ""): Promise<TopicInfo[]> {
    const r = await this.hubRequest("topics", { pattern });
    if (r.type !== "topicList") throw unexpected(r);
    return r.body.topics.map((t) => ({ ...t }));
  }

  /**
   * Sets a topic's history bounds (bytes; messages, 0 for none) and whether the hub persists it (needs a
   * hub with `--data`). Resolves once applied.
   */
  async configureTopic(
    topic: string,
    options: { maxBytes?: number; maxCount?: number; persist?: boolean },
  ): Promise<void> {
    checkTopic(topic);
    const r = await this.hubRequest("topicConfig", {
      topic,
      maxBytes: options.maxBytes ?? 16 * 1024 * 1024,
      maxCount: options.maxCount ?? 0,
      persist: options.persist ?? false,
    });
    if (r.type !== "ok") throw unexpected(r);
  }

  // ---- RPC ---------------------------------------------------------------------------------------------

  /**
   * Serves `topic`: each request is passed to `handler`, whose return value (a Uint8Array, a string, or
   * nothing) is the reply; a thrown error reaches the caller (`EZIPC_REMOTE`, or the error's own EZIPC code).
   * Return an async iterable (e.g. from an async generator) to answer `requestStream` with chunks. Several
   * clients serving one topic share its requests round robin. `req.signal` aborts when the caller cancels,
   * its deadline passes, or it leaves. Resolves once the hub registered the server.
   */
  async serve(topic: string, handler: RpcHandler): Promise<Server> {
    checkTopic(topic);
    return this.rpc.serve(topic, handler);
  }

  /**
   * Calls a server of `topic`. Resolves with its reply; rejects with `EZIPC_NO_RESPONDERS` (at once, nobody
   * serves it), `EZIPC_TIMEOUT`, `EZIPC_CANCELLED` (signal), `EZIPC_SERVER_GONE` (the server died during the
   * call), `EZIPC_REMOTE` (the handler threw) or `EZIPC_TOO_MANY_REQUESTS`.
   */
  async request(topic: string, payload?: Payload, options: RequestOptions = {}): Promise<Body> {
    checkTopic(topic);
    const direct = this.directRpc ? this.routes.pick(topic) : undefined;
    if (direct) {
      try {
        return await direct.request(topic, payload, options);
      } catch (err) {
        // The server left the topic's pool before the hub's update reached us: ask the pool through the hub.
        if (!isEzipcError(err, "EZIPC_NO_RESPONDERS")) throw err;
      }
    }
    await this.readyWithin(topic);
    return this.rpc.request(topic, payload, options);
  }

  /** The `host` and `direct` fields of a `serve`: this client's direct listener, opened on first use. */
  private async directAddress(): Promise<{ host: string; direct: string }> {
    if (!this.directRpc) return { host: "", direct: "" };
    this.directServer ??= DirectServer.open(this.rpc.handlers).catch((err: unknown) => {
      log("warn", "client", "direct RPC listener not available; serving through the hub only", {
        error: err,
      });
      return null;
    });
    const server = await this.directServer;
    return server ? { host: os.hostname(), direct: server.url } : { host: "", direct: "" };
  }

  /**
   * A streaming call (AlephZero's progressive RPC): iterate the chunks; the iterator ends when the server's
   * handler finishes and throws its error if it failed. `stream.cancel()` or the signal cancel it: the
   * handler's signal aborts and no more chunks come. At most `prefetch` chunks are in flight: a slow
   * consumer pauses the producer.
   */
  async requestStream(topic: string, payload?: Payload, options: StreamOptions = {}): Promise<Channel> {
    checkTopic(topic);
    await this.readyWithin(topic);
    return this.rpc.stream(topic, payload, options);
  }

  /** Accepts sessions opened on `topic`; `handler` gets each session (send, iterate, close). */
  async acceptSessions(topic: string, handler: (session: RpcSession) => unknown): Promise<Server> {
    checkTopic(topic);
    return this.rpc.acceptSessions(topic, handler);
  }

  /**
   * Opens a two-way session with an acceptor of `topic`. Resolves once accepted; rejects with
   * `EZIPC_NO_RESPONDERS` if nobody accepts sessions there.
   */
  async openSession(
    topic: string,
    options: { prefetch?: number; payload?: Payload } = {},
  ): Promise<RpcSession> {
    checkTopic(topic);
    await this.readyWithin(topic);
    return this.rpc.openSession(topic, options.payload, options.prefetch ?? 16);
  }

  /** The deadman token `name` (one object per name and client). */
  deadman(name: string): Deadman {
    checkKey(name);
    let d = this.deadmen.get(name);
    if (!d) {
      d = new Deadman(name, (n, op, signal) => this.deadmanOp(n, op, signal));
      this.deadmen.set(name, d);
    }
    return d;
  }

  private async deadmanOp(name: string, op: number, signal?: AbortSignal): Promise<DeadmanState> {
    if (signal?.aborted) throw cancelled(signal.reason);
    await this.readyWithin(name);
    const conn = this.conn!;
    const waits = op === 0 || op === 3 || op === 4;
    const body: Record<string, unknown> = { name, op };
    const reply = this.rawRequest(
      conn,
      "deadman",
      body,
      undefined,
      waits ? Number.POSITIVE_INFINITY : this.timeoutMs,
    );
    const onAbort = () => this.send("deadman", { rid: body.rid, name, op: OP_CANCEL });
    signal?.addEventListener("abort", onAbort, { once: true });
    if (signal?.aborted) onAbort(); // aborted while this call was getting ready
    try {
      const r = await reply;
      if (r.type !== "deadmanState") throw unexpected(r);
      return jsonSafe({ taken: r.body.taken, holder: r.body.holder, mine: r.body.mine, epoch: r.body.epoch });
    } catch (err) {
      if (signal?.aborted) throw cancelled(signal.reason);
      throw err;
    } finally {
      signal?.removeEventListener("abort", onAbort);
    }
  }

  private async readyWithin(what: string): Promise<void> {
    if (this.ready) return;
    if (this.closedError) throw this.closedError;
    await withTimeout(
      this.whenReady(),
      this.timeoutMs,
      () => new EzipcError("EZIPC_TIMEOUT", `${what}: not connected to the hub within ${this.timeoutMs} ms`),
    );
  }

  /** Keys matching `pattern` (`*` any run, `?` one character; default all), sorted by key. */
  async list(pattern = ""): Promise<KeyInfo[]> {
    const reply = await this.hubRequest("list", { pattern });
    if (reply.type !== "listing") throw unexpected(reply);
    return reply.body.keys.map((k) => ({
      key: k.key,
      kind: k.kind === KIND_JSON ? "json" : "bytes",
      size: k.size,
      version: Number(k.version),
      refcount: k.refcount,
      persistent: k.persistent,
      state: k.state === 1 ? "grace" : "live",
      holders: k.holders.map((h) => ({
        client: h.client,
        request: h.counts[0]!,
        lazy: h.counts[1]!,
        poll: h.counts[2]!,
      })),
    }));
  }

  /** The value of `key` without holding it (one round trip), or null if there is no such key. */
  async peek(key: string): Promise<{ kind: "bytes" | "json"; version: number; data: Uint8Array } | null> {
    checkKey(key);
    try {
      const r = await this.hubRequest("peek", { key });
      if (r.type !== "opened") throw unexpected(r);
      return {
        kind: r.body.kind === KIND_JSON ? "json" : "bytes",
        version: Number(r.body.version),
        data: r.body.data!,
      };
    } catch (err) {
      if (isEzipcError(err, "EZIPC_KEY_NOT_FOUND") || isEzipcError(err, "EZIPC_KEY_DISPOSED")) return null;
      throw err;
    }
  }

  /**
   * What the hub knows of `key`, without holding it: unlike `watch`, it never revives a key in its grace
   * period, and unlike `peek` it tells a key never created (`none`) from one disposed (`disposed`). Rejects
   * with `EZIPC_PERMISSION_DENIED` (no `watch` permission) or `EZIPC_INVALID_KEY`.
   */
  async info(key: string): Promise<KeyDescription> {
    checkKey(key);
    const r = await this.hubRequest("info", { key });
    if (r.type !== "keyInfo") throw unexpected(r);
    const b = r.body;
    const state = (["none", "live", "grace", "disposed"] as const)[b.state] ?? "none";
    if (state === "none" || state === "disposed") return { state };
    return {
      state,
      kind: b.kind === KIND_JSON ? "json" : "bytes",
      size: b.size,
      version: Number(b.version),
      refcount: b.refcount,
      persistent: b.persistent,
    };
  }

  /** Whether `key` exists now (live or in its grace period), without side effects (see {@link info}). */
  async exists(key: string): Promise<boolean> {
    const i = await this.info(key);
    return i.state === "live" || i.state === "grace";
  }

  /** The hub's statistics. */
  async stats(): Promise<HubStats> {
    const r = await this.hubRequest("stats", {});
    if (r.type !== "statsReply") throw unexpected(r);
    return JSON.parse(r.body.json) as HubStats;
  }

  /**
   * Closes the connection: the hub releases every pointer this client held (after its grace rules). Pending
   * requests reject with `EZIPC_CONNECTION_CLOSED`. Resolves once closed.
   */
  async close(): Promise<void> {
    await this.closeWith(new EzipcError("EZIPC_CONNECTION_CLOSED", "client closed"));
  }

  // ---- internals ----------------------------------------------------------------------------------------

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
    this.closedError = error;
    this.ready = false;
    this.routes.close();
    const direct = this.directServer;
    this.directServer = Promise.resolve(null);
    await (await direct)?.close();
    for (const w of this.readyWaiters) w.reject(error);
    this.readyWaiters = [];
    this.rejectAll(error);
    for (const s of this.byKey.values()) this.setKeyStatus(s, "stale");
    this.setStatus("closed");
    await this.dialer.close();
  }

  private rejectAll(error: EzipcError): void {
    const pending = [...this.pending.values()];
    this.pending.clear();
    for (const p of pending) p.reject(error);
  }

  private onConnection(conn: Connection): void {
    this.conn = conn;
    conn.on("message", (frame) => {
      // The hot path: message frames are parsed in place (a malformed one falls through to the decoder).
      if (frame[0] === MESSAGE_INDEX && frame[1] === 0) {
        const m = parseMessage(frame);
        if (m) {
          this.subs.get(m.sid)?.deliver(m.messages);
          return;
        }
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
      if (this.batchConn === conn) this.batcher.discard();
      if (this.conn !== conn) return;
      this.conn = null;
      this.ready = false;
      const lost = new EzipcError(
        "EZIPC_CONNECTION_CLOSED",
        `connection to the hub lost before the reply (${info.reason})`,
      );
      this.rejectAll(lost);
      this.rpc.connectionLost(lost);
      for (const d of this.deadmen.values()) d.connectionLost();
      for (const s of this.byKey.values()) this.setKeyStatus(s, "stale");
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
    switch (msg.type) {
      case "welcome": {
        this.clientId = msg.body.clientId;
        this.resumed = msg.body.resumed;
        this.label = msg.body.label;
        this.routes.reset();
        void this.resync(conn);
        return;
      }
      case "routeList":
        if (msg.body.rid === 0) {
          this.routes.update(msg.body.topic, msg.body.routes);
          return;
        }
        break; // a reply: settled below
      case "update": {
        const s = this.byId.get(msg.body.id);
        if (!s) return;
        const version = Number(msg.body.version);
        if (version < s.version) return;
        s.version = version;
        if (s.policy >= 1) {
          s.data = Buffer.from(msg.body.data.buffer, msg.body.data.byteOffset, msg.body.data.byteLength);
          s.size = s.data.length;
          s.fresh = true;
        }
        const change = { version, data: s.data ?? undefined };
        s.notify((p) => p.emit("change", change));
        return;
      }
      case "stale": {
        const s = this.byId.get(msg.body.id);
        if (!s) return;
        const version = Number(msg.body.version);
        if (version <= s.version && s.fresh) return;
        s.version = Math.max(s.version, version);
        s.fresh = false;
        s.notify((p) => p.emit("change", { version: s.version }));
        return;
      }
      case "invalidated": {
        const s = this.byId.get(msg.body.id);
        if (s) this.invalidate(s);
        return;
      }
      case "call":
        this.rpc.onCall(msg.body);
        return;
      case "chunk":
        this.rpc.onChunk(msg.body);
        return;
      case "flow":
        this.rpc.onFlow(msg.body);
        return;
      case "end":
        this.rpc.onEnd(msg.body);
        return;
      case "gap": {
        const g: Gap = { topic: msg.body.topic, first: msg.body.first, last: msg.body.last };
        this.subs.get(msg.body.sid)?.gap(g);
        return;
      }
      case "error": {
        if (msg.body.rid === 0) {
          void this.closeWith(wireError(msg.body.code, msg.body.message));
          return;
        }
        const p = this.pending.get(msg.body.rid);
        if (!p) return;
        this.pending.delete(msg.body.rid);
        p.reject(wireError(msg.body.code, msg.body.message));
        return;
      }
      default:
        break;
    }
    // A reply to a request.
    const rid = (msg.body as { rid?: number }).rid;
    if (rid === undefined) {
      conn.destroy(new EzipcError("EZIPC_PROTOCOL", `unexpected ${msg.type} from the hub`));
      return;
    }
    const p = this.pending.get(rid);
    if (!p) return;
    this.pending.delete(rid);
    p.onReply?.(msg);
    p.resolve(msg);
  }

  /** After a welcome: re-registers every held key, then tells the hub it is done. */
  private async resync(conn: Connection): Promise<void> {
    const states = [...this.byKey.values()].filter((s) => s.total > 0 && s.status !== "invalidated");
    const replies = states.map((s) => {
      const sent = [...s.counts];
      // Applied synchronously on arrival (updates for the new id may follow in the same chunk).
      const onReply = (r: HubMessage) => {
        if (r.type !== "opened") return;
        if (this.byId.get(s.id) === s) this.byId.delete(s.id);
        s.id = r.body.id;
        // Pointers disposed while the resync was in flight: release them now, with the new id.
        for (let p = 0; p < 3; p++) {
          for (let n = sent[p]! - s.counts[p]!; n > 0; n--) this.send("release", { id: s.id, policy: p });
        }
        if (s.total === 0) return;
        this.byKey.set(s.key, s);
        this.byId.set(s.id, s);
        this.applyOpened(s, r.body);
        this.setKeyStatus(s, "live");
      };
      return this.rawRequest(
        conn,
        "resync",
        { key: s.key, id: s.id, counts: sent, version: BigInt(s.version) },
        onReply,
      );
    });
    const resubscribed = [...this.subs.values()].map((sub) => {
      const resume = [...sub.lastSeq].map(([topic, seq]) => ({ topic, seq: seq + 1n }));
      const start = this.subStart.get(sub);
      if (start !== undefined && !sub.lastSeq.has(sub.pattern))
        resume.push({ topic: sub.pattern, seq: start });
      return this.sendSubscribe(conn, sub, resume).catch((err: EzipcError) => {
        if (conn !== this.conn) return;
        this.subs.delete(sub.sid);
        sub.fail(err);
      });
    });
    // Only a client that serves listens for direct calls (and opens its folder).
    const served = this.rpc.servedTopics();
    const address = served.length > 0 ? await this.directAddress() : { host: "", direct: "" };
    const reserved = served.map((topic) =>
      this.rawRequest(conn, "serve", { topic, ...address }).catch((err: EzipcError) => {
        log("warn", "client", "serving again after a reconnect failed", { topic, error: err });
      }),
    );
    const done = this.rawRequest(conn, "resyncDone", {});
    for (let i = 0; i < states.length; i++) {
      const s = states[i]!;
      try {
        const r = await replies[i]!;
        if (r.type !== "opened") throw unexpected(r);
      } catch (err) {
        if (isEzipcError(err, "EZIPC_KEY_DISPOSED") || isEzipcError(err, "EZIPC_KEY_NOT_FOUND"))
          this.invalidate(s);
        else if (conn !== this.conn)
          return; // lost again: the next welcome resyncs
        else log("warn", "client", "resync failed", { key: s.key, error: err });
      }
    }
    try {
      await done;
      await Promise.all(resubscribed);
      await Promise.all(reserved);
    } catch {
      return;
    }
    if (conn !== this.conn) return;
    this.ready = true;
    this.setStatus("connected");
    const waiters = this.readyWaiters;
    this.readyWaiters = [];
    for (const w of waiters) w.resolve();
    if (states.length > 0) this.emit("resynced");
  }

  private applyOpened(s: KeyState, o: Infer<typeof hubMessages.opened>): void {
    s.size = o.size;
    s.persistent = o.persistent;
    const version = Number(o.version);
    if (o.data) {
      s.data = Buffer.from(o.data.buffer, o.data.byteOffset, o.data.byteLength);
      s.fresh = true;
      const changed = version !== s.version;
      s.version = version;
      if (changed) s.notify((p) => p.emit("change", { version, data: s.data ?? undefined }));
    } else if (version !== s.version) {
      s.version = version;
      s.fresh = false;
      s.notify((p) => p.emit("change", { version }));
    }
  }

  private setKeyStatus(s: KeyState, status: "live" | "stale"): void {
    if (s.status === "invalidated" || s.status === status) return;
    s.status = status;
    s.notify((p) => p.emit("status", status));
  }

  private invalidate(s: KeyState): void {
    if (s.status === "invalidated") return;
    s.status = "invalidated";
    s.listened.clear();
    s.counts.fill(0);
    s.data = null;
    if (this.byKey.get(s.key) === s) this.byKey.delete(s.key);
    if (this.byId.get(s.id) === s) this.byId.delete(s.id);
    s.notify((p) => p.emit("status", "invalidated"));
  }

  /**
   * The synchronous half of opening a pointer: when the `opened` reply arrives, the key's state is
   * registered (and its count raised) before any later frame is handled, so an `update` right behind the
   * reply is never missed.
   */
  private opener(
    key: string,
    policy: SyncPolicy,
  ): { onReply: (m: HubMessage) => void; state: () => KeyState } {
    let state: KeyState | undefined;
    return {
      onReply: (m) => {
        if (m.type === "opened") state = this.openState(key, m.body, POLICY_INDEX[policy]);
      },
      state: () => {
        if (!state) throw new EzipcError("EZIPC_PROTOCOL", `no opened reply for ${key}`);
        return state;
      },
    };
  }

  private openState(key: string, o: Infer<typeof hubMessages.opened>, policy: number): KeyState {
    let s = this.byKey.get(key);
    if (s && s.id !== o.id) {
      // The key was recreated on the hub since: the old state is gone.
      this.invalidate(s);
      s = undefined;
    }
    if (!s) {
      s = new KeyState(key, o.kind, o.id, o.size, Number(o.version), o.persistent);
      this.byKey.set(key, s);
      this.byId.set(o.id, s);
    }
    s.counts[policy]!++;
    this.applyOpened(s, o);
    return s;
  }

  private pointerFor<P extends SyncPolicy>(
    s: KeyState,
    policy: P,
    codec: SchemaCodec<unknown> | undefined,
  ): IpcPtr<P, unknown> {
    const ptr = new IpcPtr<P, unknown>(s, policy, this.host, codec);
    s.pointers.add(new WeakRef(ptr as IpcPtr<SyncPolicy, unknown>));
    this.finalizer.register(ptr, { state: s, policy: POLICY_INDEX[policy] }, ptr);
    return ptr;
  }

  private releaseHeld(s: KeyState, policy: number): void {
    if (s.status === "invalidated" || s.counts[policy]! === 0) return;
    s.counts[policy]!--;
    if (s.policy < 1) {
      s.data = null;
      s.fresh = false;
    }
    if (s.total === 0) {
      if (this.byKey.get(s.key) === s) this.byKey.delete(s.key);
      if (this.byId.get(s.id) === s) this.byId.delete(s.id);
    }
    // While disconnected there is nothing to send: the resync tells the hub the new counts.
    if (this.ready) this.send("release", { id: s.id, policy });
  }

  private async readState(s: KeyState): Promise<Versioned> {
    const r = await this.hubRequest("read", { id: s.id }, s);
    if (r.type !== "value") throw unexpected(r);
    const data = Buffer.from(r.body.data.buffer, r.body.data.byteOffset, r.body.data.byteLength);
    const version = Number(r.body.version);
    if (version >= s.version) {
      s.version = version;
      if (s.policy >= 1) {
        s.data = data;
        s.fresh = true;
      }
    }
    return { data, version };
  }

  private async writeState(
    s: KeyState,
    data: Uint8Array,
    offset: number,
    expect?: number,
  ): Promise<{ ok: boolean; version: number }> {
    const r = await this.hubRequest(
      "write",
      { id: s.id, offset, expect: expect === undefined ? undefined : BigInt(expect), data },
      s,
    );
    if (r.type === "conflict") return { ok: false, version: Number(r.body.version) };
    if (r.type !== "ok") throw unexpected(r);
    return { ok: true, version: Number(r.body.version) };
  }

  private async configOp(s: KeyState, op: number, json: string): Promise<{ ok: boolean; version: number }> {
    const r = await this.hubRequest("config", { id: s.id, op, json }, s);
    if (r.type === "conflict") return { ok: false, version: Number(r.body.version) };
    if (r.type !== "ok") throw unexpected(r);
    return { ok: true, version: Number(r.body.version) };
  }

  /** Sends a request once ready (waiting through a reconnect) and resolves with the reply. */
  private async hubRequest(
    type: string,
    body: Record<string, unknown>,
    state?: KeyState,
    onReply?: (m: HubMessage) => void,
  ): Promise<HubMessage> {
    await this.readyWithin(type);
    if (state) {
      if (state.status === "invalidated")
        throw new EzipcError("EZIPC_KEY_DISPOSED", `key ${state.key} has been invalidated`);
      body.id = state.id;
    }
    return this.rawRequest(this.conn!, type, body, onReply);
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
    const frame = this.protocol.encode(type, body);
    return new Promise<HubMessage>((resolve, reject) => {
      this.pending.set(rid, { resolve, reject, onReply, deadline: Date.now() + timeoutMs, type });
      this.flushPublishes();
      conn.send(frame);
      this.armSweep();
    });
  }

  private allocRid(): number {
    let rid = this.nextRid;
    while (this.pending.has(rid)) rid = rid >= 0xffffffff ? 1 : rid + 1;
    this.nextRid = rid >= 0xffffffff ? 1 : rid + 1;
    return rid;
  }

  private send(type: string, body: Record<string, unknown>): void {
    const conn = this.conn;
    if (conn && conn.state === "open") {
      this.flushPublishes();
      conn.send(this.protocol.encode(type, body));
    }
  }

  /** One timer checks every deadline (pending requests are in deadline order: one timeout for all). */
  private armSweep(): void {
    if (this.sweep) return;
    const period = Math.max(10, Math.min(250, Math.floor(this.timeoutMs / 4)));
    this.sweep = setInterval(() => {
      const now = Date.now();
      for (const [rid, p] of this.pending) {
        if (p.deadline > now) continue;
        this.pending.delete(rid);
        p.reject(
          new EzipcError("EZIPC_TIMEOUT", `${p.type}: no reply from the hub within ${this.timeoutMs} ms`),
        );
      }
      if (this.pending.size === 0 && this.sweep) {
        clearInterval(this.sweep);
        this.sweep = null;
      }
    }, period);
    this.sweep.unref();
  }
}

/**
 * Makes an object with bigint fields serialisable: `JSON.stringify` writes each bigint as a decimal string
 * (a non-enumerable `toJSON`, so the object still compares and prints as its fields).
 */
function jsonSafe<T extends object>(o: T): T {
  Object.defineProperty(o, "toJSON", {
    value: () =>
      Object.fromEntries(Object.entries(o).map(([k, v]) => [k, typeof v === "bigint" ? v.toString() : v])),
    enumerable: false,
  });
  return o;
}

function unexpected(m: HubMessage): EzipcError {
  return new EzipcError("EZIPC_PROTOCOL", `unexpected reply ${m.type} from the hub`);
}

function fixedCodec(schema: SchemaType<unknown>): SchemaCodec<unknown> {
  const codec = schemaCodec(schema);
  if (codec.fixedSize === undefined || codec.fixedSize < 1) {
    throw new TypeError(
      "a typed block needs a fixed-size schema (numbers, bools, fixed arrays, structs of them)",
    );
  }
  return codec;
}

/**
 * Connects to a hub. Resolves once the handshake is done; rejects with the dial error
 * (`EZIPC_CONNECTION_REFUSED`…) if the first connection fails (unless `waitOnFirstConnect`), or
 * `EZIPC_HANDSHAKE` if the hub speaks another protocol version.
 *
 * @example
 * const client = await connect("tcp://127.0.0.1:7700", { name: "sensor" });
 * const temp = await client.allocate("room.temp", 8, "poll");
 */
export async function connect(url: string, options: ConnectOptions = {}): Promise<HubClient> {
  const client = new HubClient(url, options);
  await client.whenReady();
  return client;
}
