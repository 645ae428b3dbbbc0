/**
 * A client of a shared-memory namespace (`connect("shm://")`, `connect("shm:///NAME")`): the hub client's
 * API for shared variables, pub/sub, RPC and deadman tokens, with no hub. Processes on one machine meet by topic name in `/dev/shm/ezipc.NAME/`; none of
 * them is special, and any of them may die at any instruction without leaving a topic inconsistent
 * (src/shm/ring.ts). See docs/shm.md.
 */
import { EventEmitter } from "node:events";
import type { Infer, SchemaType } from "../codec/schema.js";
import type { Deadman } from "../deadman/deadman-client.js";
import { EzipcError } from "../errors.js";
import { clientNameProblem } from "../protocol/names.js";
import type { PublishOptions, TopicInfo } from "../pubsub/pubsub-client.js";
import type { SubscribeOptions, Subscription, TopicMessage } from "../pubsub/subscription.js";
import { checkRange, MAX_TIMER_MS } from "../ranges.js";
import type { Body, Channel, RequestOptions, RpcHandler, Server, StreamOptions } from "../rpc/rpc-calls.js";
import { MAX_RING_BYTES, MIN_RING_BYTES } from "../shm/layout.js";
import { shmNative } from "../shm/native.js";
import type { ConfigVar } from "../vars/config-var.js";
import type { IpcPtr } from "../vars/pointer.js";
import type { AllocateOptions, KeyDescription, KeyInfo } from "../vars/vars-client.js";
import type { SyncPolicy } from "../vars/vars-messages.js";
import { ShmDeadmen } from "./shm-deadman.js";
import { ShmNamespace, type ShmOptions } from "./shm-namespace.js";
import { type Payload, ShmPubSub } from "./shm-pubsub.js";
import { ShmRpc } from "./shm-rpc.js";
import { ShmVars, type ShmVarsOptions } from "./shm-vars.js";

export type { ShmOptions };

/** Options of `connect("shm://…")`; a value out of its range is refused with a RangeError naming it. */
export interface ShmConnectOptions extends ShmOptions, ShmVarsOptions {
  /** The name this client publishes under (`name#pid`). Default `client`. */
  name?: string;
}

/** Throws a RangeError naming the first option out of its range. */
function checkOptions(o: ShmConnectOptions): void {
  const inRange = (key: keyof ShmConnectOptions, min: number, max: number, integer = true): void => {
    if (o[key] !== undefined) checkRange(key, o[key], min, max, integer);
  };
  // File permission bits only (no setuid, setgid or sticky bit on a shared file).
  inRange("mode", 0, 0o777);
  inRange("ringBytes", MIN_RING_BYTES, MAX_RING_BYTES);
  inRange("maxCount", 0, 0xffffffff);
  inRange("holdPublishersMs", 0, MAX_TIMER_MS, false);
  inRange("watchUs", 0, 1_000_000, false);
  inRange("disposeGraceMs", 0, MAX_TIMER_MS, false);
  inRange("tombstoneTtlMs", 0, MAX_TIMER_MS, false);
  inRange("maxBlockBytes", 1, 1024 * 1024 * 1024);
}

/** Parses `shm://` (namespace `default`) or `shm:///NAME`. Throws `EZIPC_INVALID_URL`. */
export function shmNamespaceOf(url: string): string {
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    throw new EzipcError("EZIPC_INVALID_URL", `${url}: not a URL`);
  }
  if (u.protocol !== "shm:") throw new EzipcError("EZIPC_INVALID_URL", `${url}: not a shm:// URL`);
  if (u.host !== "" || u.search !== "" || u.hash !== "") {
    throw new EzipcError(
      "EZIPC_INVALID_URL",
      `${url}: a shm:// URL is shm:// or shm:///NAMESPACE (this machine only)`,
    );
  }
  const name = decodeURIComponent(u.pathname.replace(/^\/+/, ""));
  return name === "" ? "default" : name;
}

export class ShmClient extends EventEmitter {
  readonly namespace: string;
  /** `name#pid`: what subscribers see as the publisher. */
  readonly identity: string;
  private readonly ns: ShmNamespace;
  private readonly pubsub: ShmPubSub;
  private readonly rpc: ShmRpc;
  private readonly deadmen: ShmDeadmen;
  private readonly vars: ShmVars;
  private closed = false;

  /** @internal use `connect("shm://…")` */
  constructor(
    readonly url: string,
    options: ShmConnectOptions = {},
  ) {
    super();
    checkOptions(options);
    // The names a hub refuses (they would reach other processes' screens and logs): refused here too.
    const nameProblem = options.name === undefined ? null : clientNameProblem(options.name);
    if (nameProblem) throw new EzipcError("EZIPC_HANDSHAKE", nameProblem);
    this.namespace = shmNamespaceOf(url);
    shmNative(); // EZIPC_SHM_UNAVAILABLE, with the reason, before anything is created
    this.identity = `${options.name ?? "client"}#${process.pid}`;
    this.ns = new ShmNamespace(this.namespace, options);
    this.pubsub = new ShmPubSub(this.ns, this.identity);
    this.rpc = new ShmRpc(this.ns, this.identity);
    this.deadmen = new ShmDeadmen(this.ns, this.identity);
    this.vars = new ShmVars(this.ns, options);
  }

  /** The namespace's directory (`/dev/shm/ezipc.NAME`). */
  get dir(): string {
    return this.ns.dir;
  }

  // ---- shared variables (shm-vars.ts) ------------------------------------------------------------------

  /**
   * Creates `key` in the namespace and returns a pointer holding one reference (see HubClient.allocate):
   * `size` zero-filled bytes, or a typed block. Rejects with `EZIPC_KEY_EXISTS` when the key is live (of
   * several racing processes exactly one creates it), `EZIPC_INVALID_KEY`, `EZIPC_BLOCK_TOO_LARGE`
   * (`maxBlockBytes`), `EZIPC_TOO_MANY_POINTERS` (60 processes hold the key) or `EZIPC_SHM_BAD_FILE`.
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
   * rejects with `EZIPC_KEY_DISPOSED` if it was disposed (see HubClient.watch).
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

  /** A JSON config variable, created empty if missing (see HubClient.config). */
  config(key: string, options: { policy?: SyncPolicy; persistent?: boolean } = {}): Promise<ConfigVar> {
    return this.vars.config(key, options);
  }

  /** @internal A poll pointer that holds no reference (the hub bridge's view of a key); null if none. */
  observe(key: string): Promise<IpcPtr<"poll", unknown> | null> {
    return this.vars.observe(key);
  }

  /** @internal Replaces a key's whole value (a JSON config's document as UTF-8 JSON): the hub bridge's write. */
  replaceValue(ptr: IpcPtr<SyncPolicy, unknown>, data: Uint8Array): Promise<number> {
    return this.vars.replaceValue(ptr, data);
  }

  /** The namespace's keys matching `pattern` (`*`, `?`; default all), sorted by key. */
  list(pattern = ""): Promise<KeyInfo[]> {
    return this.vars.list(pattern);
  }

  /** The value of `key` without holding it, or null if there is no such key. */
  peek(key: string): Promise<{ kind: "bytes" | "json"; version: number; data: Uint8Array } | null> {
    return this.vars.peek(key);
  }

  /** What the namespace holds of `key`, without holding it (see HubClient.info). */
  info(key: string): Promise<KeyDescription> {
    return this.vars.info(key);
  }

  /** Whether `key` exists now (live or in its grace period). */
  async exists(key: string): Promise<boolean> {
    const i = await this.info(key);
    return i.state === "live" || i.state === "grace";
  }

  // ---- pub/sub, RPC, deadman -----------------------------------------------------------------------------

  /**
   * Publishes to `topic`: appends it to the topic's ring in shared memory (creating the topic if need
   * be). Resolves with its seq and time once it is there — readers can see it; while a `next` subscriber
   * has not read what the ring would overwrite, that is once it has (at most `holdPublishersMs`). Rejects with
   * `EZIPC_INVALID_TOPIC`, `EZIPC_PERMISSION_DENIED` (`$…` topics), `EZIPC_SHM_TOO_LARGE`,
   * `EZIPC_SHM_BAD_FILE` or `EZIPC_CONNECTION_CLOSED`.
   */
  publish(
    topic: string,
    payload: Payload,
    options: PublishOptions = {},
  ): Promise<{ seq: bigint; time: number }> {
    return this.pubsub.publish(topic, payload, options);
  }

  /**
   * Publishes without waiting: a tick's publishes to one topic are written together under one lock at the
   * tick's end (the payload is copied at once). Returns false while the topic's publishes wait behind a
   * slow `next` subscriber: wait for {@link drain} before publishing more (nothing is lost meanwhile).
   */
  publishAndForget(topic: string, payload: Payload, options?: PublishOptions): boolean {
    return this.pubsub.publishAndForget(topic, payload, options);
  }

  /** Resolves once every publish of this client is in shared memory (none waits for the tick or a reader). */
  drain(): Promise<void> {
    return this.pubsub.drain();
  }

  /**
   * Subscribes to one topic (wildcards: `EZIPC_NOT_SUPPORTED`), creating it if need be; every init × iter
   * of the hub, gaps included. Resolves once the subscription reads the ring.
   */
  subscribe(
    topic: string,
    options: SubscribeOptions = {},
    handler?: (m: TopicMessage) => unknown,
  ): Promise<Subscription> {
    return this.pubsub.subscribe(topic, options, handler);
  }

  /** The namespace's topics matching `pattern` (default all), with their bounds and live readers. */
  topics(pattern = ""): Promise<TopicInfo[]> {
    return this.pubsub.topics(pattern);
  }

  /** Creates `topic` with these bounds (`maxBytes` is its ring); see {@link ShmPubSub.configureTopic}. */
  configureTopic(
    topic: string,
    options: { maxBytes?: number; maxCount?: number; persist?: boolean },
  ): Promise<void> {
    return this.pubsub.configureTopic(topic, options);
  }

  /**
   * Serves `topic`: requests to it (from any process of the namespace) are passed to `handler`, as with a
   * hub (see HubClient.serve); several processes serving one topic share its requests (the first to claim
   * each runs it). Resolves once requests reach this process.
   */
  serve(topic: string, handler: RpcHandler): Promise<Server> {
    return this.rpc.serve(topic, handler);
  }

  /**
   * Calls `topic` and resolves with the reply. Rejects with `EZIPC_NO_RESPONDERS` (nobody serves it, at
   * once), `EZIPC_TIMEOUT` (default 10 s), `EZIPC_CANCELLED` (`signal`), `EZIPC_SERVER_GONE` (the serving
   * process died: noticed within 50 ms), `EZIPC_REMOTE` or the handler's own code.
   */
  request(topic: string, payload?: Payload, options: RequestOptions = {}): Promise<Body> {
    return this.rpc.request(topic, payload, options);
  }

  /** Calls `topic` for a stream of chunks (see HubClient.requestStream). */
  requestStream(topic: string, payload?: Payload, options: StreamOptions = {}): Promise<Channel> {
    return this.rpc.requestStream(topic, payload, options);
  }

  /**
   * The deadman token `name` (one object per name and client): at most one process holds it, and it is
   * released when the holder's process dies (a robust lock), with no hub. See HubClient.deadman.
   */
  deadman(name: string): Deadman {
    return this.deadmen.deadman(name);
  }

  /**
   * Writes what is still held for slow readers (resolves after at most `holdPublishersMs`), then stops
   * every subscription and server, fails calls in flight, releases the tokens and pointers this client holds
   * and this process's slots.
   */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    // As a hub keeps what a closing client published: publishes held for a slow reader are written once
    // the reader moves on or the hold ends (at most holdPublishersMs), not dropped.
    await this.pubsub.drain().catch(() => {});
    this.deadmen.close();
    this.vars.close();
    this.rpc.close();
    this.pubsub.close();
    this.ns.close();
  }
}

/** Opens a shm:// client. Rejects with `EZIPC_SHM_UNAVAILABLE` (and why) where shared memory cannot work. */
export async function connectShm(url: string, options: ShmConnectOptions = {}): Promise<ShmClient> {
  return new ShmClient(url, options);
}
