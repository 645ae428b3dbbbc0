/**
 * The hub client (`connect()`): a {@link ClientConnection} (connection.ts: dial, hello, reconnect, request
 * ids, the resync) with one part per capability plugged in — shared variables (src/vars/vars-client.ts),
 * pub/sub (src/pubsub/pubsub-client.ts), RPC (src/rpc/rpc-client.ts) and deadman tokens
 * (src/deadman/deadman-client.ts). Each part speaks through the connection's {@link ClientLink}; the
 * public methods below only document the API and delegate to a part.
 */
import type { Infer, SchemaType } from "../codec/schema.js";
import { type Deadman, DeadmanClient } from "../deadman/deadman-client.js";
import type { AnyMessage, ClientLink, ClientPart } from "../protocol/client-link.js";
import { type Payload, type PublishOptions, PubSubClient, type TopicInfo } from "../pubsub/pubsub-client.js";
import type { SubscribeOptions, Subscription, TopicMessage } from "../pubsub/subscription.js";
import type {
  Body,
  Channel,
  RequestOptions,
  RpcHandler,
  RpcSession,
  Server,
  StreamOptions,
} from "../rpc/rpc-calls.js";
import { RpcClient } from "../rpc/rpc-client.js";
import type { ConfigVar } from "../vars/config-var.js";
import type { IpcPtr } from "../vars/pointer.js";
import { type AllocateOptions, type KeyDescription, type KeyInfo, VarsClient } from "../vars/vars-client.js";
import type { SyncPolicy } from "../vars/vars-messages.js";
import { ClientConnection } from "./connection.js";
import type { ClientSecurity, ConnectOptions } from "./options.js";

export type { ClientStatus, HubClientEvents } from "./connection.js";
export type {
  AllocateOptions,
  ClientSecurity,
  ConnectOptions,
  KeyDescription,
  KeyInfo,
  PublishOptions,
  TopicInfo,
};

/**
 * A connection to a hub (the seed's `ipc_client`). Make one with {@link connect}. It reconnects by
 * itself, resynchronising every pointer it holds; {@link close} releases everything.
 */
export class HubClient extends ClientConnection {
  private readonly vars: VarsClient;
  private readonly pubsub: PubSubClient;
  private readonly rpc: RpcClient;
  private readonly deadmen: DeadmanClient;

  /** @internal use {@link connect} */
  constructor(url: string, options: ConnectOptions = {}) {
    super(url, options);
    // Each part types the replies as its own messages; a part checks each reply's type and throws
    // EZIPC_PROTOCOL on any other, so the narrowing below is checked at run time.
    const link = this.link as unknown as ClientLink<never>;
    this.vars = new VarsClient(link);
    this.pubsub = new PubSubClient(link);
    this.rpc = new RpcClient(
      link,
      (options.directRpc ?? true) && process.platform !== "win32",
      (topic, servers) => this.emit("directRoutes", topic, servers),
    );
    this.deadmen = new DeadmanClient(link);
    this.plug([this.vars, this.pubsub, this.rpc, this.deadmen] as ClientPart<AnyMessage>[]);
  }

  // ---- shared variables (src/vars/vars-client.ts) ------------------------------------------------------

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
    return this.vars.allocate(key, sizeOrSchema, policy, options);
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
    return this.vars.watch(key, policy, options);
  }

  /**
   * A JSON config variable (AlephZero's cfg): created empty if missing (persistent unless told
   * otherwise), then held under `policy` (default `poll`).
   */
  config(key: string, options: { policy?: SyncPolicy; persistent?: boolean } = {}): Promise<ConfigVar> {
    return this.vars.config(key, options);
  }

  /**
   * Keys matching `pattern` (`*` any run, `?` one character; default all), sorted by key. Rejects with
   * `EZIPC_TOO_MANY_REQUESTS` while the hub's listings are over their budget (`listingEntriesPerSecond`; the
   * message says when to ask again), `EZIPC_MESSAGE_TOO_LARGE` if the answer would not fit one frame.
   */
  list(pattern = ""): Promise<KeyInfo[]> {
    return this.vars.list(pattern);
  }

  /** The value of `key` without holding it (one round trip), or null if there is no such key. */
  peek(key: string): Promise<{ kind: "bytes" | "json"; version: number; data: Uint8Array } | null> {
    return this.vars.peek(key);
  }

  /**
   * What the hub knows of `key`, without holding it: unlike `watch`, it never revives a key in its grace
   * period, and unlike `peek` it tells a key never created (`none`) from one disposed (`disposed`). Rejects
   * with `EZIPC_PERMISSION_DENIED` (no `watch` permission) or `EZIPC_INVALID_KEY`.
   */
  info(key: string): Promise<KeyDescription> {
    return this.vars.info(key);
  }

  /** Whether `key` exists now (live or in its grace period), without side effects (see {@link info}). */
  async exists(key: string): Promise<boolean> {
    const i = await this.info(key);
    return i.state === "live" || i.state === "grace";
  }

  // ---- pub/sub (src/pubsub/pubsub-client.ts) -----------------------------------------------------------

  /**
   * Publishes to `topic`. Resolves once the hub stored the message, with its per-topic seq and the hub's
   * time (for a persisted topic, once it is durable). Rejects with `EZIPC_INVALID_TOPIC`,
   * `EZIPC_TOO_MANY_TOPICS`, `EZIPC_PERMISSION_DENIED` (`$hub.…` topics), or `EZIPC_CONNECTION_CLOSED` if the
   * connection was lost before the reply (the message may or may not have been stored). `seq` is a bigint;
   * `JSON.stringify` of the result writes it as a decimal string.
   */
  publish(
    topic: string,
    payload: Payload,
    options: PublishOptions = {},
  ): Promise<{ seq: bigint; time: number }> {
    return this.pubsub.publish(topic, payload, options);
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
    return this.pubsub.publishAndForget(topic, payload, options);
  }

  /** Resolves once the connection's send queue is below its high-water mark. */
  drain(): Promise<void> {
    return this.pubsub.drain();
  }

  /**
   * Subscribes to a topic or a pattern (`sensors.*` matches one token, `sensors.>` one or more). Resolves
   * once the hub registered it. Consume with `for await (const m of sub)`, or pass `handler` (called one
   * message at a time; an async handler is awaited before the next). See {@link SubscribeOptions}.
   */
  subscribe(
    pattern: string,
    options: SubscribeOptions = {},
    handler?: (m: TopicMessage) => unknown,
  ): Promise<Subscription> {
    return this.pubsub.subscribe(pattern, options, handler);
  }

  /**
   * Topics matching `pattern` (default all), with their history bounds and subscriber counts. Rejects as
   * {@link list} does when listings are over their budget or the answer would not fit one frame.
   */
  topics(pattern = ""): Promise<TopicInfo[]> {
    return this.pubsub.topics(pattern);
  }

  /**
   * Sets a topic's history bounds (bytes; messages, 0 for none) and whether the hub persists it (needs a
   * hub with `--data`). Resolves once applied.
   */
  configureTopic(
    topic: string,
    options: { maxBytes?: number; maxCount?: number; persist?: boolean },
  ): Promise<void> {
    return this.pubsub.configureTopic(topic, options);
  }

  // ---- RPC (src/rpc/rpc-client.ts) ---------------------------------------------------------------------

  /**
   * Serves `topic`: each request is passed to `handler`, whose return value (a Uint8Array, a string, or
   * nothing) is the reply; a thrown error reaches the caller (`EZIPC_REMOTE`, or the error's own EZIPC code).
   * Return an async iterable (e.g. from an async generator) to answer `requestStream` with chunks. Several
   * clients serving one topic share its requests round robin. `req.signal` aborts when the caller cancels,
   * its deadline passes, or it leaves. Resolves once the hub registered the server.
   */
  serve(topic: string, handler: RpcHandler): Promise<Server> {
    return this.rpc.serve(topic, handler);
  }

  /**
   * Calls a server of `topic`. Resolves with its reply; rejects with `EZIPC_NO_RESPONDERS` (at once, nobody
   * serves it), `EZIPC_TIMEOUT`, `EZIPC_CANCELLED` (signal), `EZIPC_SERVER_GONE` (the server died during the
   * call), `EZIPC_REMOTE` (the handler threw) or `EZIPC_TOO_MANY_REQUESTS`.
   */
  request(topic: string, payload?: Payload, options: RequestOptions = {}): Promise<Body> {
    return this.rpc.request(topic, payload, options);
  }

  /**
   * A streaming call (AlephZero's progressive RPC): iterate the chunks; the iterator ends when the server's
   * handler finishes and throws its error if it failed. `stream.cancel()` or the signal cancel it: the
   * handler's signal aborts and no more chunks come. At most `prefetch` chunks are in flight: a slow
   * consumer pauses the producer.
   *
   * Resolves once the call is sent (while the hub is away, once it is back, within the timeout); what
   * happens after — nobody serves the topic (`EZIPC_NO_RESPONDERS`), the timeout, the server's error — ends
   * the iterator with that error (also `stream.closed()`). Rejects only when the call cannot be sent: an
   * invalid topic or header (`EZIPC_INVALID_TOPIC`, `EZIPC_ENCODE`), a payload over the frame limit
   * (`EZIPC_MESSAGE_TOO_LARGE`), a closed client (`EZIPC_CONNECTION_CLOSED`).
   */
  requestStream(topic: string, payload?: Payload, options: StreamOptions = {}): Promise<Channel> {
    return this.rpc.requestStream(topic, payload, options);
  }

  /** Accepts sessions opened on `topic`; `handler` gets each session (send, iterate, close). */
  acceptSessions(topic: string, handler: (session: RpcSession) => unknown): Promise<Server> {
    return this.rpc.acceptSessions(topic, handler);
  }

  /**
   * Opens a two-way session with an acceptor of `topic`. Resolves once accepted; rejects with
   * `EZIPC_NO_RESPONDERS` if nobody accepts sessions there.
   */
  openSession(topic: string, options: { prefetch?: number; payload?: Payload } = {}): Promise<RpcSession> {
    return this.rpc.openSession(topic, options);
  }

  // ---- deadman tokens (src/deadman/deadman-client.ts) --------------------------------------------------

  /** The deadman token `name` (one object per name and client). */
  deadman(name: string): Deadman {
    return this.deadmen.deadman(name);
  }
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
