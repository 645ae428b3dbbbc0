/**
 * The hub (the seed's `ipc_server`): one process that clients reach over any transport. It accepts
 * connections, runs the hello, keeps the registry of clients (a client outlives its connection for
 * `reconnectWindowMs`, so a reconnect resumes it), checks every message against the admission table, and
 * hands each to its capability: shared variables (src/vars/vars-hub.ts), pub/sub (src/pubsub/pubsub-hub.ts),
 * RPC (src/rpc/rpc-hub.ts) and deadman tokens (src/deadman/deadman-hub.ts). It also keeps the limits, the
 * fault counters and the stats, and closes everything in order.
 *
 * Beside it: the admission table (admission.ts), the counters (hub-counters.ts), a secure hub's handshake
 * and permission check (hub-security.ts), the monitor view (monitor-view.ts), the registry's entry
 * (client-state.ts) and the public types (hub-types.ts).
 */

import { randomBytes } from "node:crypto";
import { EventEmitter } from "node:events";
import type { IncomingMessage, ServerResponse } from "node:http";
import type { ClusterLink } from "../cluster/cluster.js";
import { ClusterDeadmen } from "../deadman/deadman-cluster.js";
import { Deadmen } from "../deadman/deadman-hub.js";
import { EzipcError, isEzipcError } from "../errors.js";
import { ListingBudget } from "../listing-budget.js";
import { log } from "../log.js";
import {
  HUB_FEATURES,
  HUB_PROTOCOL_VERSION,
  type HubStats,
  type HubView,
} from "../protocol/core-messages.js";
import type { HubPart } from "../protocol/hub-part.js";
import { clientNameProblem } from "../protocol/names.js";
import { PUBLISH_INDEX, type PublishView, parsePublish, parsePublishPieces } from "../pubsub/fast-frames.js";
import { type HistoryStore, PubSub } from "../pubsub/pubsub-hub.js";
import { removeStaleDirs } from "../rpc/direct.js";
import { END_ERROR, Rpc, SIDE_CALLER } from "../rpc/rpc-hub.js";
import type { Message, Protocol } from "../service/protocol.js";
import { type BlockStore, MemoryStore } from "../store/store.js";
import { FrameBudget } from "../transport/frame-budget.js";
import { listen } from "../transport/registry.js";
import { sendTo } from "../transport/send.js";
import type { CloseInfo, Connection, Listener } from "../transport/types.js";
import type { WsListener } from "../transport/ws.js";
import { checkAllowOrigins } from "../transport/ws-origins.js";
import { systemClock } from "../vars/block-table.js";
import { VarsHub } from "../vars/vars-hub.js";
import { type HubMessage, hubProtocol } from "../wire/hub-protocol.js";
import { CLIENT_MESSAGES, subjectOf } from "./admission.js";
import { ClientState, displayName } from "./client-state.js";
import {
  addTraffic,
  type CountersSource,
  countFault,
  type HubFaults,
  hubMetrics,
  hubStats,
  type Traffic,
} from "./hub-counters.js";
import { checkHubOptions } from "./hub-options.js";
import { accessCheck, secureUpgrade } from "./hub-security.js";
import type { AccessCheck, ClusterCounters, HubEvents, HubMetrics, HubOptions } from "./hub-types.js";
import { hubView, ViewCache } from "./monitor-view.js";
import { QueueBound } from "./queue-bound.js";

export type * from "./hub-types.js";
export type { HubStats, HubView };

const NO_BYTES = new Uint8Array(0);

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

  /** The hub's static public key (base64) when it is secure (`security`), else null. */
  get publicKey(): string | null {
    return this.options.security?.staticKey.publicKey.toString("base64") ?? null;
  }

  /**
   * Serves plain HTTP requests on the hub's ws:// and wss:// listeners (its dashboard and `/metrics`:
   * `serveMonitoring()` in src/monitor/). Without a handler they get `426 Upgrade Required`.
   */
  setHttpHandler(handler: ((req: IncomingMessage, res: ServerResponse) => void) | null): void {
    for (const l of this.servers) {
      const http = l as Listener & Partial<Pick<WsListener, "setRequestHandler">>;
      if (typeof http.setRequestHandler === "function") http.setRequestHandler(handler);
    }
  }
  private readonly vars: VarsHub;
  private readonly store: BlockStore;
  private pubsub!: PubSub;
  /** The capabilities whose state lives with a connection (src/protocol/hub-part.ts), in dispatch order. */
  private connectionParts: HubPart[] = [];
  private readonly rpc: Rpc;
  /** Checks an operation against the client's permissions; undefined when no client is restricted. */
  private readonly access: AccessCheck | undefined;
  private readonly deadmen: Deadmen | ClusterDeadmen;
  private readonly protocol: Protocol = hubProtocol();
  private readonly clients = new Map<string, ClientState>();
  private readonly byConn = new Map<Connection, ClientState>();
  private readonly startedAt = Date.now();
  /** This run of the hub, at the end of every client id it gives (a resume token of another run is told apart). */
  private readonly run = randomBytes(6).toString("hex");
  private closing = false;
  /** Connections this hub lost to faults, by kind, and failed secure handshakes by reason. */
  private readonly faults: HubFaults = {
    protocolErrors: 0,
    framesTooLarge: 0,
    slowConsumerCuts: 0,
    heartbeatTimeouts: 0,
    decryptErrors: 0,
    connectionsRefused: 0,
    handshakeFailures: {},
  };
  /** Open connections, and the bytes and frames of the closed ones (for {@link Hub.metrics}). */
  private readonly live = new Set<Connection>();
  private readonly closedTraffic: Traffic = { bytesIn: 0, bytesOut: 0, framesIn: 0, framesOut: 0 };
  private readonly traffic = { connections: 0 };
  private readonly reconnectWindowMs: number;
  private readonly handshakeTimeoutMs: number;
  private readonly maxConnections: number;
  private readonly queueBound: QueueBound;
  /** The budget of listings, shared by the capabilities that list (listing-budget.ts). */
  private readonly listings: ListingBudget;
  /** Connections of the private in-process listener (the bridge): no permission checks. */
  private readonly trusted = new WeakSet<Connection>();
  private bridge: { close(): Promise<void> } | null = null;

  private constructor(
    private readonly options: HubOptions,
    /** The cluster this hub is part of (null: none). */
    private readonly link: ClusterLink | null,
  ) {
    super();
    this.name = options.name ?? "ezipc-hub";
    this.store = options.store ?? new MemoryStore();
    this.reconnectWindowMs = options.reconnectWindowMs ?? 5_000;
    this.handshakeTimeoutMs = options.handshakeTimeoutMs ?? 5_000;
    this.maxConnections = options.maxConnections ?? 10_000;
    this.listings = new ListingBudget(options.listingEntriesPerSecond ?? 100_000);
    this.queueBound = new QueueBound(options.maxTotalQueuedBytes ?? 1024 * 1024 * 1024, () => this.live);
    this.access = accessCheck(options.security, this.trusted);
    this.rpc = new Rpc(options, this.protocol, link?.rpc(this.protocol) ?? null);
    this.deadmen = link
      ? new ClusterDeadmen(this.protocol, link.tokens, link.o.heartbeatMs)
      : new Deadmen(this.protocol);
    this.vars = new VarsHub(
      options,
      options.clock ?? systemClock,
      this.store,
      this.protocol,
      this.access,
      (info) => this.emit("invalidated", info),
      link?.vars,
    );
    this.vars.listings = this.listings;
  }

  /**
   * Loads persistent keys from the store, then listens on every URL. Resolves once all listen; rejects
   * (closing whatever was opened) with `EZIPC_ADDRESS_IN_USE`, `EZIPC_INVALID_URL` or `EZIPC_STORE`; with a
   * RangeError naming the option when one is out of its range (before anything opens).
   */
  static async listen(options: HubOptions): Promise<Hub> {
    checkHubOptions(options);
    checkAllowOrigins(options.allowOrigins);
    // The NATS client loads only for a clustered hub (about 12 MiB of resident memory).
    const link = options.cluster
      ? await (await import("../cluster/cluster.js")).ClusterLink.open(options.cluster, {
          name: options.name ?? "ezipc-hub",
          reconnectWindowMs: options.reconnectWindowMs ?? 5_000,
        })
      : null;
    const hub = new Hub(options, link);
    try {
      // A clustered hub's topic history lives in the cluster (docs/cluster.md), not in its store.
      const history = !link && "saveMessages" in hub.store ? (hub.store as BlockStore & HistoryStore) : null;
      hub.pubsub = new PubSub(options, hub.protocol, history, hub.access, link?.topics ?? null);
      hub.pubsub.listings = hub.listings;
      if (link) await hub.pubsub.startReplica();
      if (hub.deadmen instanceof ClusterDeadmen) await hub.deadmen.start();
      hub.connectionParts = [hub.pubsub, hub.rpc, hub.deadmen];
      hub.vars.load();
      await hub.vars.start();
      const upgrade = options.security
        ? secureUpgrade(options.security, hub.protocol, hub.faults)
        : undefined;
      // One bound on incomplete frames over every listener's connections.
      const frameBudget =
        options.frameBudget ?? new FrameBudget(options.maxIncompleteFrameBytes ?? 256 * 1024 * 1024);
      for (const url of options.urls) {
        const listener = await listen(url, { ...options, frameBudget, ...(upgrade ? { upgrade } : {}) });
        hub.servers.push(listener);
        hub.urls.push(listener.url);
        listener.on("connection", (conn) => hub.accept(conn));
      }
      if (options.bridge) {
        // A private listener for the bridge: in-process only (memory://), plain, trusted.
        const internal = await listen(`memory://ezipc-bridge-${randomBytes(12).toString("hex")}`, options);
        hub.servers.push(internal);
        internal.on("connection", (conn) => {
          hub.trusted.add(conn);
          hub.accept(conn);
        });
        hub.bridge = await options.bridge.start(internal.url);
      }
    } catch (err) {
      await hub.close();
      // A wrong argument (RangeError, TypeError: an option a lower layer refused) is the caller's to see as is.
      if (isEzipcError(err) || err instanceof RangeError || err instanceof TypeError) throw err;
      throw new EzipcError("EZIPC_STORE", (err as Error).message, { cause: err });
    }
    removeStaleDirs(); // direct-RPC folders of clients killed on this host (direct.ts)
    log("info", "hub", "listening", { urls: hub.urls, store: hub.store.name, keys: hub.vars.table.size });
    return hub;
  }

  /**
   * Creates a key from the hub side (no client holds it). `persistent` keys are never disposed; others
   * start their grace period at once. Throws like a client's allocate (`EZIPC_KEY_EXISTS`, limits).
   */
  allocate(key: string, size: number, options: { persistent?: boolean; json?: boolean } = {}): void {
    this.vars.allocate(key, size, options);
  }

  /** Deletes a key now, whoever holds it: their pointers are invalidated. Returns false if there was none. */
  delete(key: string): boolean {
    return this.vars.delete(key);
  }

  /** The current value and version of a key, or undefined. */
  peek(key: string): { data: Buffer; version: number; refcount: number; persistent: boolean } | undefined {
    return this.vars.peek(key);
  }

  /**
   * A clustered hub's counters (docs/cluster.md): changes applied from the cluster, writes made again, graces
   * ended here and keys they disposed, graces whose end failed and was made again (`disposeRetries`); holds'
   * puts and deletes made again (`holdRetries`), sweeps of gone hubs that failed (`sweepsFailed`), and times
   * this hub put all its holds again, swept while it lived or after a failed heartbeat (`holdsPutAgain`); and
   * topics' requests to JetStream made again (one failed or got no answer in time). Null on a hub of its own.
   */
  clusterCounters(): ClusterCounters | null {
    if (!this.vars.cluster || !this.link) return null;
    return {
      ...this.vars.cluster.counters,
      ...this.link.vars.holds.counters,
      topicRequestsRetried: this.link.topics.counters.retried,
    };
  }

  /** The hub's counters: clients, keys, topics, calls, tokens, faults, queues, memory (hub-counters.ts). */
  stats(): HubStats {
    return hubStats(this.counted());
  }

  /**
   * What the hub holds, for dashboards (src/hub/monitor-view.ts): counters, clients, and the keys, topics,
   * RPC topics and deadman tokens matching `pattern` (topic syntax; empty: all). Throws
   * `EZIPC_INVALID_TOPIC` for a malformed pattern.
   */
  view(pattern = ""): HubView {
    return hubView(
      {
        stats: () => this.stats(),
        clients: this.clients.values(),
        labelOf: (conn) => this.byConn.get(conn)?.label ?? "",
        vars: this.vars,
        pubsub: this.pubsub,
        rpc: this.rpc,
        deadmen: this.deadmen,
      },
      pattern,
    );
  }

  /** The last views as JSON, by pattern: dashboards polling together share one. */
  private readonly views = new ViewCache();

  /** {@link view} as JSON for a `monitor` request, charged to the listing budget when made anew. */
  private viewJson(pattern: string): string {
    return this.views.json(pattern, () => {
      this.listings.check("monitor");
      // (A view looks at everything but builds at most 500 entries of each kind: measured, an eighth of a
      // listing's cost per item, so that a dashboard on a full hub takes a quarter of the budget.)
      this.listings.charge(
        Math.ceil((this.clients.size + this.vars.table.size + this.pubsub.topicCount) / 8),
      );
      return this.view(pattern);
    });
  }

  /**
   * What `/metrics` exports (src/monitor/metrics.ts): {@link stats}, plus the connections accepted, bytes and
   * frames in and out over every connection (open or closed), pointers by policy, and the latency of
   * acknowledged writes and publishes.
   */
  metrics(): HubMetrics {
    return hubMetrics(this.counted());
  }

  private counted(): CountersSource {
    return {
      name: this.name,
      startedAt: this.startedAt,
      urls: this.urls,
      store: this.store.name,
      clients: this.clients,
      vars: this.vars,
      pubsub: this.pubsub,
      rpc: this.rpc,
      deadmen: this.deadmen,
      faults: this.faults,
      listingsRefused: this.listings.refused,
      live: this.live,
      closedTraffic: this.closedTraffic,
      connectionsAccepted: this.traffic.connections,
    };
  }

  /**
   * Stops listening, closes every connection gracefully, commits pending persistent writes and closes the
   * store. Resolves once done; never rejects.
   */
  async close(): Promise<void> {
    if (this.closing) return;
    await this.bridge
      ?.close()
      .catch((err) => log("warn", "hub", "the bridge did not close cleanly", { error: err }));
    this.closing = true;
    this.queueBound.close();
    await Promise.all(this.servers.map((l) => l.close().catch(() => {})));
    for (const c of this.clients.values()) if (c.windowTimer) clearTimeout(c.windowTimer);
    this.vars.close();
    this.pubsub?.flush();
    this.pubsub?.stop();
    this.store.close();
    if (this.deadmen instanceof ClusterDeadmen) this.deadmen.stop();
    await this.link?.close();
  }

  // ---- connections ------------------------------------------------------------------------------------

  private accept(conn: Connection): void {
    if (this.closing) {
      conn.destroy();
      return;
    }
    if (this.live.size >= this.maxConnections && !this.trusted.has(conn)) {
      this.faults.connectionsRefused++;
      const message = `the hub has its maximum of ${this.maxConnections} connections open`;
      sendTo(conn, this.protocol.encode("error", { rid: 0, code: "EZIPC_TOO_MANY_CONNECTIONS", message }));
      void conn.close(message);
      return;
    }
    this.live.add(conn);
    this.traffic.connections++;
    const timer = setTimeout(() => {
      conn.destroy(new EzipcError("EZIPC_HANDSHAKE", `no hello within ${this.handshakeTimeoutMs} ms`));
    }, this.handshakeTimeoutMs);
    timer.unref();
    // A long publish frame split across socket reads comes in its pieces: kept as they are, not joined.
    conn.setPiecesHandler?.((pieces, length) => {
      const first = pieces[0]!;
      if (first.length >= 2 && first[0] === PUBLISH_INDEX && first[1] === 0) {
        const client = this.byConn.get(conn);
        const v = client ? parsePublishPieces(pieces) : null;
        if (client && v) {
          this.publish(conn, client, v, first, pieces.slice(1));
          return;
        }
      }
      onMessage(Buffer.concat(pieces, length));
    });
    const onMessage = (frame: Buffer): void => {
      // The hot path: publish frames are parsed in place (a malformed one falls through to the decoder).
      if (frame[0] === PUBLISH_INDEX && frame[1] === 0) {
        const client = this.byConn.get(conn);
        const v = client ? parsePublish(frame) : null;
        if (client && v) {
          this.publish(conn, client, v, frame);
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
    };
    conn.on("message", onMessage);
    conn.once("close", (info) => {
      clearTimeout(timer);
      this.live.delete(conn);
      addTraffic(this.closedTraffic, conn);
      this.onConnectionClosed(conn, info);
    });
    conn.on("error", () => {}); // reported through close
  }

  /** A `publish` frame parsed in place (`more`: the rest of a frame that came in pieces). */
  private publish(
    conn: Connection,
    client: ClientState,
    v: PublishView,
    frame: Buffer,
    more?: Buffer[],
  ): void {
    try {
      this.pubsub.publishFrame(conn, client.labelBytes, v, frame, more);
    } catch (err) {
      conn.destroy(isEzipcError(err) ? err : new EzipcError("EZIPC_PROTOCOL", (err as Error).message));
    }
  }

  private handshake(conn: Connection, msg: HubMessage): void {
    if (msg.type !== "hello") {
      conn.destroy(new EzipcError("EZIPC_PROTOCOL", `expected hello, got ${msg.type}`));
      return;
    }
    const hello = msg.body;
    const refusal =
      hello.protocol !== HUB_PROTOCOL_VERSION
        ? `hub speaks protocol ${HUB_PROTOCOL_VERSION}, client ${hello.protocol}`
        : clientNameProblem(hello.name);
    if (refusal) {
      sendTo(conn, this.protocol.encode("error", { rid: 0, code: "EZIPC_HANDSHAKE", message: refusal }));
      void conn.close(refusal);
      return;
    }
    let client = hello.resume ? this.clients.get(hello.resume) : undefined;
    // A resume token takes over a client's pointers, subscriptions and name: only for the identity that
    // client proved (a token seen elsewhere does not make another key that client).
    if (client && client.identity !== (conn.peer?.name ?? null)) client = undefined;
    const resumed = client !== undefined;
    // A client id ends with the run that gave it: one of another run resumes from seqs and versions this
    // run never gave.
    const earlierRun = !resumed && hello.resume !== undefined && !hello.resume.endsWith(this.run);
    if (earlierRun) this.pubsub.fromEarlierHub(conn);
    if (client) {
      if (client.windowTimer) clearTimeout(client.windowTimer);
      client.windowTimer = null;
      if (client.conn) {
        this.byConn.delete(client.conn);
        client.conn.destroy(new EzipcError("EZIPC_CONNECTION_RESET", "replaced by a resumed connection"));
      }
      client.name = displayName(hello.name, conn);
    } else {
      client = new ClientState(randomBytes(12).toString("hex") + this.run, displayName(hello.name, conn));
      client.identity = conn.peer?.name ?? null;
      this.clients.set(client.id, client);
    }
    client.conn = conn;
    client.since = Date.now();
    if (hello.features.includes("flow")) this.pubsub.flowCapable(conn);
    this.vars.attach(client, earlierRun);
    this.byConn.set(conn, client);
    sendTo(
      conn,
      this.protocol.encode("welcome", {
        protocol: HUB_PROTOCOL_VERSION,
        clientId: client.id,
        resumed,
        hub: this.name,
        features: [...HUB_FEATURES],
        maxBlockBytes: this.vars.table.options.maxBlockBytes,
        label: client.label,
      }),
    );
    log("debug", "hub", "client", { id: client.id, name: client.name, resumed });
    this.emit("client", { id: client.id, name: client.name, resumed });
  }

  private onConnectionClosed(conn: Connection, info: CloseInfo): void {
    countFault(this.faults, info.error?.code);
    for (const part of this.connectionParts) part.connectionClosed(conn);
    const client = this.byConn.get(conn);
    if (!client) return;
    this.byConn.delete(conn);
    if (client.conn !== conn) return;
    client.conn = null;
    client.since = Date.now();
    if (info.error?.code === "EZIPC_SLOW_CONSUMER") client.slowConsumerCuts++;
    log("debug", "hub", "client disconnected", { id: client.id, reason: info.reason });
    if (this.closing) return;
    // A client that closed gracefully said goodbye: it will not resume, so its pointers go at once. Only a
    // lost connection (a fault, a reset, silence) keeps them for the reconnect window.
    const goodbye = info.initiator === "remote" && info.error === undefined;
    if (goodbye || client.vars.holdings.size === 0 || this.reconnectWindowMs === 0) {
      this.forget(client);
      return;
    }
    client.windowTimer = setTimeout(() => this.forget(client), this.reconnectWindowMs);
    client.windowTimer.unref();
  }

  /** Releases everything a client held and forgets it. */
  private forget(client: ClientState): void {
    client.windowTimer = null;
    this.clients.delete(client.id);
    this.vars.forget(client);
    this.emit("clientGone", { id: client.id, name: client.name });
  }

  // ---- messages ---------------------------------------------------------------------------------------

  private send(client: ClientState, type: string, body: unknown): void {
    const conn = client.conn;
    if (conn) sendTo(conn, this.protocol.encode(type, body));
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
    if (msg.type === "stats") {
      this.send(client, "statsReply", { rid: msg.body.rid, json: JSON.stringify(this.stats()) });
      return;
    }
    if (msg.type === "monitor") {
      const { rid, pattern } = msg.body;
      try {
        this.send(client, "monitorReply", { rid, json: this.viewJson(pattern) });
      } catch (err) {
        if (!isEzipcError(err)) throw err;
        this.send(client, "error", { rid, code: err.code, message: err.message });
      }
      return;
    }
    // The capabilities, each handling its own messages.
    if (this.vars.handle(client, msg.type, msg.body)) return;
    if (client.conn) {
      for (const part of this.connectionParts) {
        if (part.handle(client.conn, client.label, msg.type, msg.body)) return;
      }
    }
    throw new EzipcError("EZIPC_PROTOCOL", `a client may not send ${msg.type}`);
  }
}
