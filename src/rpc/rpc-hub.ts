/**
 * RPC on the hub: a router between callers and servers, holding no payloads.
 *
 * - `serve(topic)` puts a connection in the topic's pool; each `request` goes to the next server of the
 *   pool (round robin). An empty pool fails the request at once (`EZIPC_NO_RESPONDERS`).
 * - A call is identified by the caller's `rid` on the caller's connection and by a hub-chosen `cid` on the
 *   server's. `chunk`, `flow` and `end` are forwarded with the id translated; the hub keeps only the
 *   routing entry.
 * - Flow control is end to end: the receiver of chunks grants credit (`flow`), and the hub checks it, so a
 *   peer that sends beyond its credit ends that call (`EZIPC_FLOW`) — the hub's memory stays bounded
 *   whatever a peer does.
 * - When a server's connection closes, each of its calls ends at once for its caller with
 *   `EZIPC_SERVER_GONE`; when a caller's closes, its calls are cancelled at the servers.
 * - Direct routes: a server may also take calls on its own listener (`serve.direct`). A caller asks for a
 *   topic's `routes` and gets them — and every change of the pool — when all of the pool's servers take
 *   direct calls, and then calls them itself, round robin, without the hub in the path (see direct.ts).
 * - Clustered (rpc-remote.ts): a call no local server takes goes to a hub of the cluster that has one; the
 *   far end stands in this router's tables as one more peer, so ids, credit and endings work as here.
 */

import type { Infer } from "../codec/schema.js";
import { EzipcError, isEzipcError } from "../errors.js";
import { IdMap } from "../id-map.js";
import type { HubPart } from "../protocol/hub-part.js";
import { checkTopic } from "../protocol/names.js";
import type { Protocol } from "../service/protocol.js";
import { DEFAULT_MAX_FRAME_BYTES } from "../transport/frame.js";
import { sendTo } from "../transport/send.js";
import type { Connection } from "../transport/types.js";
import type { directMessages, rpcMessages } from "./rpc-messages.js";
import type { RemotePeer, RpcCluster, RpcRouter } from "./rpc-remote.js";

/** Servers a `routeList` names at most; a topic with more has none listed (its calls go through the hub). */
const MAX_ROUTES = 4096;
/** Bytes of a `serve`'s host name and direct URL (a route list of MAX_ROUTES fits one frame: about 7 MiB). */
const MAX_HOST_BYTES = 255;
const MAX_DIRECT_URL_BYTES = 1024;
export const KIND_REQUEST = 0;
export const KIND_STREAM = 1;
export const KIND_SESSION = 2;
export const SIDE_CALLER = 0;
export const SIDE_SERVER = 1;
export const END_OK = 0;
export const END_ERROR = 1;
export const END_CANCEL = 2;

export interface RpcOptions {
  /** Calls in flight per caller connection (`EZIPC_TOO_MANY_REQUESTS`). Default 1,000. */
  maxCallsPerClient?: number;
  /** Calls in flight in the hub, over all callers (`EZIPC_TOO_MANY_REQUESTS`). Default 100,000. */
  maxCalls?: number;
  /**
   * The hub's frame limit (its connections' option, 16 MiB by default): a request whose `call` frame would
   * be larger is refused with `EZIPC_MESSAGE_TOO_LARGE`.
   */
  maxFrameBytes?: number;
}

/**
 * Topics one connection may serve, and whose routes it may watch (`EZIPC_TOO_MANY_SUBSCRIPTIONS`); and the
 * same over all connections (each costs the hub about 100 bytes).
 */
const MAX_TOPICS_PER_CLIENT = 10_000;
const MAX_TOPICS_IN_ALL = 100_000;

interface Call {
  readonly topic: string;
  readonly caller: Connection;
  readonly rid: number;
  readonly server: Connection;
  readonly cid: number;
  readonly kind: number;
  /** Chunks the caller still accepts (from the server). */
  toCaller: number;
  /** Chunks the server still accepts (from the caller; sessions). */
  toServer: number;
}

type RpcTables = typeof rpcMessages & typeof directMessages;
type Msg<K extends keyof RpcTables> = Infer<RpcTables[K]>;

const NO_PAYLOAD = new Uint8Array(0);

export class Rpc implements HubPart, RpcRouter {
  private readonly pools = new Map<string, Connection[]>();
  private readonly rr = new Map<string, number>();
  // Calls in flight by connection, then by rid (caller) or cid (server); a connection's map stays until it
  // closes (IdMap, and no Map churn per call: see id-map.ts).
  private readonly byCaller = new Map<Connection, IdMap<Call>>();
  private readonly byServer = new Map<Connection, IdMap<Call>>();
  private readonly served = new Map<Connection, Set<string>>();
  /** Where a serving connection takes direct calls, and its label. */
  private readonly directOf = new Map<Connection, { server: string; host: string; url: string }>();
  private readonly routeWatchers = new Map<string, Set<Connection>>();
  private readonly watching = new Map<Connection, Set<string>>();
  private nextCid = 1;
  private readonly maxCallsPerClient: number;
  private readonly maxCalls: number;
  private readonly maxFrameBytes: number;
  /** Calls in flight, served topics and route watches over all connections (the hub-wide bounds). */
  private readonly totals = { calls: 0, served: 0, watching: 0 };
  readonly counters = { calls: 0, noResponders: 0, serverGone: 0 };

  constructor(
    options: RpcOptions,
    private readonly protocol: Protocol,
    /** A clustered hub's link to the other hubs' servers (rpc-remote.ts). */
    private readonly cluster: RpcCluster | null = null,
  ) {
    this.maxCallsPerClient = options.maxCallsPerClient ?? 1_000;
    this.maxCalls = options.maxCalls ?? 100_000;
    this.maxFrameBytes = options.maxFrameBytes ?? DEFAULT_MAX_FRAME_BYTES;
    cluster?.start(this);
  }

  /** See {@link RpcRouter.fromCluster}. */
  fromCluster(peer: RemotePeer, type: string, body: unknown): void {
    const conn = peer as Connection; // only state and send are used on it
    if (type === "call") {
      const c = body as Msg<"call">;
      const request = { ...c, rid: c.cid };
      this.onRequest(conn, c.caller, request, false);
      return;
    }
    if (type !== "chunk" && type !== "flow" && type !== "end") return;
    const m = body as { side: number };
    if (m.side !== SIDE_CALLER && m.side !== SIDE_SERVER) return;
    // Written from the far router's view: its caller side is this router's server side, and back.
    this.handle(conn, "", type, { ...m, side: SIDE_SERVER - m.side });
  }

  /** See {@link RpcRouter.peerGone}. */
  peerGone(peer: RemotePeer): void {
    this.connectionClosed(peer as Connection);
  }

  get callsInFlight(): number {
    return this.totals.calls;
  }

  /** The served topics matching `match`, with their servers and calls in flight, at most `limit` (monitor view). */
  describe(
    match: (topic: string) => boolean,
    labelOf: (conn: Connection) => string,
    limit: number,
  ): { rpc: { topic: string; servers: string[]; inFlight: number }[]; more: number } {
    const inFlight = new Map<string, number>();
    for (const calls of this.byCaller.values()) {
      for (const call of calls.values()) inFlight.set(call.topic, (inFlight.get(call.topic) ?? 0) + 1);
    }
    const rpc = [];
    let more = 0;
    for (const [topic, pool] of this.pools) {
      if (!match(topic) || pool.length === 0) continue;
      if (rpc.length >= limit) {
        more++;
        continue;
      }
      rpc.push({ topic, servers: pool.map(labelOf), inFlight: inFlight.get(topic) ?? 0 });
    }
    rpc.sort((a, b) => (a.topic < b.topic ? -1 : a.topic > b.topic ? 1 : 0));
    return { rpc, more };
  }

  /** How many topics `conn` serves. */
  servedCount(conn: Connection): number {
    return this.served.get(conn)?.size ?? 0;
  }

  /** Handles an RPC message; false if `type` is not one. */
  handle(conn: Connection, client: string, type: string, body: unknown): boolean {
    switch (type) {
      case "serve":
        this.onServe(conn, client, body as Msg<"serve">);
        return true;
      case "routes":
        this.onRoutes(conn, body as Msg<"routes">);
        return true;
      case "unserve":
        this.removeServer(conn, (body as Msg<"unserve">).topic);
        return true;
      case "request":
        this.onRequest(conn, client, body as Msg<"request">);
        return true;
      case "chunk":
        this.onChunk(conn, body as Msg<"chunk">);
        return true;
      case "flow":
        this.onFlow(conn, body as Msg<"flow">);
        return true;
      case "end":
        this.onEnd(conn, body as Msg<"end">);
        return true;
      default:
        return false;
    }
  }

  connectionClosed(conn: Connection): void {
    for (const topic of this.watching.get(conn) ?? []) {
      this.totals.watching--;
      const set = this.routeWatchers.get(topic);
      set?.delete(conn);
      if (set?.size === 0) this.routeWatchers.delete(topic);
    }
    this.watching.delete(conn);
    for (const topic of [...(this.served.get(conn) ?? [])]) this.removeServer(conn, topic);
    this.served.delete(conn);
    this.directOf.delete(conn);
    for (const call of [...(this.byServer.get(conn)?.values() ?? [])]) {
      this.counters.serverGone++;
      this.finish(call);
      this.sendEnd(
        call.caller,
        SIDE_CALLER,
        call.rid,
        END_ERROR,
        "EZIPC_SERVER_GONE",
        `the server of ${call.kind === KIND_SESSION ? "this session" : "this call"} disconnected`,
      );
    }
    for (const call of [...(this.byCaller.get(conn)?.values() ?? [])]) {
      this.finish(call);
      // A call's server is told it was cancelled; a session's acceptor, that its peer died (an error, as the
      // opener is told when the acceptor dies).
      if (call.kind === KIND_SESSION) {
        this.sendEnd(
          call.server,
          SIDE_SERVER,
          call.cid,
          END_ERROR,
          "EZIPC_SERVER_GONE",
          "the peer of this session disconnected",
        );
      } else {
        this.sendEnd(
          call.server,
          SIDE_SERVER,
          call.cid,
          END_CANCEL,
          "EZIPC_CANCELLED",
          "the caller disconnected",
        );
      }
    }
    this.byServer.delete(conn);
    this.byCaller.delete(conn);
  }

  private onServe(conn: Connection, client: string, m: Msg<"serve">): void {
    try {
      checkTopic(m.topic);
      if (Buffer.byteLength(m.host) > MAX_HOST_BYTES || Buffer.byteLength(m.direct) > MAX_DIRECT_URL_BYTES) {
        // (so that a route list of the most servers a topic lists fits one frame)
        throw new EzipcError(
          "EZIPC_BAD_REQUEST",
          `serve: a host name is at most ${MAX_HOST_BYTES} bytes and a direct URL at most ${MAX_DIRECT_URL_BYTES}`,
        );
      }
      if (m.direct !== "") this.directOf.set(conn, { server: client, host: m.host, url: m.direct });
      else this.directOf.delete(conn);
      let mine = this.served.get(conn);
      if (!mine?.has(m.topic)) this.checkTopics(mine?.size ?? 0, this.totals.served, "serve");
      let pool = this.pools.get(m.topic);
      if (!pool) {
        pool = [];
        this.pools.set(m.topic, pool);
        this.cluster?.serving(m.topic, true);
      }
      if (!pool.includes(conn)) pool.push(conn);
      if (!mine) {
        mine = new Set();
        this.served.set(conn, mine);
      }
      if (!mine.has(m.topic)) {
        mine.add(m.topic);
        this.totals.served++;
      }
      sendTo(conn, this.protocol.encode("ok", { rid: m.rid, version: 0n }));
      this.routesChanged(m.topic);
    } catch (err) {
      this.fail(conn, m.rid, err);
    }
  }

  /** Throws `EZIPC_TOO_MANY_SUBSCRIPTIONS` if a connection with `mine` topics may not `what` one more. */
  private checkTopics(mine: number, inAll: number, what: string): void {
    if (mine >= MAX_TOPICS_PER_CLIENT) {
      throw new EzipcError(
        "EZIPC_TOO_MANY_SUBSCRIPTIONS",
        `a client may ${what} at most ${MAX_TOPICS_PER_CLIENT} topics`,
      );
    }
    if (inAll >= MAX_TOPICS_IN_ALL) {
      throw new EzipcError(
        "EZIPC_TOO_MANY_SUBSCRIPTIONS",
        `the hub's clients already ${what} ${MAX_TOPICS_IN_ALL} topics, its maximum`,
      );
    }
  }

  private removeServer(conn: Connection, topic: string): void {
    if (this.served.get(conn)?.delete(topic)) this.totals.served--;
    const pool = this.pools.get(topic);
    if (!pool) return;
    const i = pool.indexOf(conn);
    if (i < 0) return;
    pool.splice(i, 1);
    if (pool.length === 0) {
      this.pools.delete(topic);
      this.cluster?.serving(topic, false);
    }
    this.routesChanged(topic);
  }

  // ---- direct routes ------------------------------------------------------------------------------------

  /** The direct routes of `topic`: all of its servers', or none if one of them takes no direct calls. */
  private routesOf(topic: string): { server: string; host: string; url: string }[] {
    const routes = [];
    const pool = this.pools.get(topic) ?? [];
    if (pool.length > MAX_ROUTES) return []; // (more than a route list holds: callers go through the hub)
    for (const c of pool) {
      const d = this.directOf.get(c);
      if (!d) return [];
      routes.push(d);
    }
    return routes;
  }

  private onRoutes(conn: Connection, m: Msg<"routes">): void {
    try {
      checkTopic(m.topic);
      let mine = this.watching.get(conn);
      if (!mine) {
        mine = new Set();
        this.watching.set(conn, mine);
      }
      if (!mine.has(m.topic)) {
        this.checkTopics(mine.size, this.totals.watching, "watch the routes of");
        mine.add(m.topic);
        this.totals.watching++;
        let set = this.routeWatchers.get(m.topic);
        if (!set) {
          set = new Set();
          this.routeWatchers.set(m.topic, set);
        }
        set.add(conn);
      }
      sendTo(
        conn,
        this.protocol.encode("routeList", { rid: m.rid, topic: m.topic, routes: this.routesOf(m.topic) }),
      );
    } catch (err) {
      this.fail(conn, m.rid, err);
    }
  }

  /** Tells the watchers of `topic` its routes after its pool changed. */
  private routesChanged(topic: string): void {
    const watchers = this.routeWatchers.get(topic);
    if (!watchers) return;
    const frame = this.protocol.encode("routeList", { rid: 0, topic, routes: this.routesOf(topic) });
    for (const c of watchers) sendTo(c, frame);
  }

  /** A call from `conn`; `anywhere`: to another hub's server when no local one serves the topic. */
  private onRequest(conn: Connection, client: string, m: Msg<"request">, anywhere = true): void {
    try {
      checkTopic(m.topic);
      if (m.kind > KIND_SESSION) throw new EzipcError("EZIPC_BAD_REQUEST", `unknown call kind ${m.kind}`);
      let mine = this.byCaller.get(conn);
      if (mine?.has(m.rid)) throw new EzipcError("EZIPC_BAD_REQUEST", `request id ${m.rid} is in use`);
      if (mine && mine.size >= this.maxCallsPerClient) {
        throw new EzipcError(
          "EZIPC_TOO_MANY_REQUESTS",
          `at most ${this.maxCallsPerClient} calls in flight per client`,
        );
      }
      if (this.totals.calls >= this.maxCalls) {
        throw new EzipcError(
          "EZIPC_TOO_MANY_REQUESTS",
          `the hub has its maximum of ${this.maxCalls} calls in flight`,
        );
      }
      const server =
        this.nextServer(m.topic) ??
        (anywhere && this.cluster ? (this.cluster.route(m.topic) as Connection) : undefined);
      if (!server) {
        this.counters.noResponders++;
        throw new EzipcError("EZIPC_NO_RESPONDERS", `nobody serves ${m.topic}`);
      }
      let cid = this.nextCid;
      let theirs = this.byServer.get(server);
      while (theirs?.has(cid)) cid = cid >= 0xffffffff ? 1 : cid + 1;
      // Made before the call is: a call the hub cannot forward (the frame is over the limit with the
      // caller's label added) fails alone, leaving nothing behind.
      const frame = this.protocol.encode("call", {
        cid,
        topic: m.topic,
        kind: m.kind,
        timeoutMs: m.timeoutMs,
        credit: m.credit,
        caller: client,
        headers: m.headers,
        payload: m.payload,
      });
      if (frame.length > this.maxFrameBytes) {
        throw new EzipcError(
          "EZIPC_MESSAGE_TOO_LARGE",
          `${m.topic}: forwarded, this request would be a frame of ${frame.length} bytes, over the hub's maxFrameBytes ${this.maxFrameBytes} (a request frame may take at most maxFrameBytes - 1 KiB)`,
        );
      }
      this.nextCid = cid >= 0xffffffff ? 1 : cid + 1;
      if (!theirs) {
        theirs = new IdMap();
        this.byServer.set(server, theirs);
      }
      const call: Call = {
        topic: m.topic,
        caller: conn,
        rid: m.rid,
        server,
        cid,
        kind: m.kind,
        toCaller: m.credit,
        toServer: 0,
      };
      if (!mine) {
        mine = new IdMap();
        this.byCaller.set(conn, mine);
      }
      mine.set(m.rid, call);
      this.totals.calls++;
      theirs.set(cid, call);
      this.counters.calls++;
      sendTo(server, frame);
    } catch (err) {
      if (!isEzipcError(err)) throw err;
      this.sendEnd(conn, SIDE_CALLER, m.rid, END_ERROR, err.code, err.message);
    }
  }

  /** The next open server of `topic`'s pool, round robin; undefined if there is none. */
  private nextServer(topic: string): Connection | undefined {
    const pool = this.pools.get(topic);
    if (!pool) return undefined;
    const start = this.rr.get(topic) ?? 0;
    for (let i = 0; i < pool.length; i++) {
      const c = pool[(start + i) % pool.length]!;
      if (c.state === "open") {
        this.rr.set(topic, (start + i + 1) % pool.length);
        return c;
      }
    }
    return undefined;
  }

  /** The call `id` as seen from `conn` on `side` (the sender's own side). */
  private lookup(conn: Connection, side: number, id: number): Call | undefined {
    return side === SIDE_CALLER ? this.byCaller.get(conn)?.get(id) : this.byServer.get(conn)?.get(id);
  }

  private onChunk(conn: Connection, m: Msg<"chunk">): void {
    const call = this.lookup(conn, m.side, m.id);
    if (!call) return; // crossed an end
    if (m.side === SIDE_SERVER) {
      if (call.kind === KIND_REQUEST || call.toCaller <= 0) {
        this.flowViolation(call, "server");
        return;
      }
      call.toCaller--;
      sendTo(
        call.caller,
        this.protocol.encode("chunk", { side: SIDE_CALLER, id: call.rid, payload: m.payload }),
      );
    } else {
      if (call.kind !== KIND_SESSION || call.toServer <= 0) {
        this.flowViolation(call, "caller");
        return;
      }
      call.toServer--;
      sendTo(
        call.server,
        this.protocol.encode("chunk", { side: SIDE_SERVER, id: call.cid, payload: m.payload }),
      );
    }
  }

  private onFlow(conn: Connection, m: Msg<"flow">): void {
    const call = this.lookup(conn, m.side, m.id);
    if (!call) return;
    if (m.side === SIDE_CALLER) {
      call.toCaller = Math.min(call.toCaller + m.n, 0xffffffff);
      sendTo(call.server, this.protocol.encode("flow", { side: SIDE_SERVER, id: call.cid, n: m.n }));
    } else {
      call.toServer = Math.min(call.toServer + m.n, 0xffffffff);
      sendTo(call.caller, this.protocol.encode("flow", { side: SIDE_CALLER, id: call.rid, n: m.n }));
    }
  }

  private onEnd(conn: Connection, m: Msg<"end">): void {
    const call = this.lookup(conn, m.side, m.id);
    if (!call) return;
    this.finish(call);
    if (m.side === SIDE_SERVER) {
      this.sendEnd(call.caller, SIDE_CALLER, call.rid, m.status, m.code, m.message, m.payload);
    } else {
      this.sendEnd(call.server, SIDE_SERVER, call.cid, m.status, m.code, m.message, m.payload);
    }
  }

  private flowViolation(call: Call, who: "server" | "caller"): void {
    this.finish(call);
    const message = `the ${who} sent a chunk beyond its credit (or on a call that takes none)`;
    this.sendEnd(call.caller, SIDE_CALLER, call.rid, END_ERROR, "EZIPC_FLOW", message);
    this.sendEnd(call.server, SIDE_SERVER, call.cid, END_ERROR, "EZIPC_FLOW", message);
  }

  private finish(call: Call): void {
    if (this.byCaller.get(call.caller)?.delete(call.rid)) this.totals.calls--;
    this.byServer.get(call.server)?.delete(call.cid);
  }

  private sendEnd(
    conn: Connection,
    side: number,
    id: number,
    status: number,
    code: string,
    message: string,
    payload: Uint8Array = NO_PAYLOAD,
  ): void {
    if (conn.state !== "open") return;
    sendTo(conn, this.protocol.encode("end", { side, id, status, code, message, payload }));
  }

  private fail(conn: Connection, rid: number, err: unknown): void {
    if (!isEzipcError(err)) throw err;
    sendTo(conn, this.protocol.encode("error", { rid, code: err.code, message: err.message }));
  }
}
