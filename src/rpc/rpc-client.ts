/**
 * The client part of RPC: serving topics and calling them, through the hub or directly. The call machinery
 * (requests, streams, sessions, flow control) is rpc-calls.ts, the same over the hub connection and over a
 * direct one; this part adds what the hub connection needs: registering served topics (again after a
 * reconnect), the direct listener of a client that serves (opened on its first serve, closed with its last),
 * and the direct routes the hub announces to callers (direct.ts). The hub side is rpc-hub.ts.
 */
import os from "node:os";
import { EzipcError, isEzipcError } from "../errors.js";
import { log } from "../log.js";
import {
  type ClientLink,
  type ClientPart,
  type MessageHandlers,
  unexpected,
  type WireMessages,
} from "../protocol/client-link.js";
import type { coreMessages } from "../protocol/core-messages.js";
import { checkTopic } from "../protocol/names.js";
import type { Connection } from "../transport/types.js";
import { DirectRoutes, DirectServer } from "./direct.js";
import {
  type Body,
  type Channel,
  type RequestOptions,
  RpcCalls,
  type RpcHandler,
  type RpcLink,
  type RpcSession,
  type Server,
  type StreamOptions,
} from "./rpc-calls.js";
import type { directMessages, rpcMessages } from "./rpc-messages.js";

/** What the hub may send this part. */
export type RpcMessage = WireMessages<typeof coreMessages & typeof rpcMessages & typeof directMessages>;

type Payload = Uint8Array | string;

export class RpcClient implements ClientPart<RpcMessage> {
  private readonly rpcLink: RpcLink = {
    nextRid: () => this.link.nextRid(),
    send: (type, body) => {
      const conn = this.link.sendable();
      if (conn === null) throw new EzipcError("EZIPC_CONNECTION_CLOSED", "not connected to the hub");
      const frame = this.link.encode(type, body); // (refuses a request over the forward limit)
      this.link.beforeSend();
      return conn.send(frame);
    },
    trySend: (type, body) => this.link.send(type, body),
    serveRequest: async (topic) => {
      const r = await this.link.request("serve", { topic, ...(await this.directAddress()) });
      if (r.type !== "ok") throw unexpected(r);
    },
    unserved: () => {
      // Listen only while serving: the direct listener (and its folder) goes with the last topic.
      if (this.calls.servedTopics().length > 0 || !this.directServer) return;
      const server = this.directServer;
      this.directServer = null;
      void server.then((d) => d?.close());
    },
  };
  private readonly calls = new RpcCalls(this.rpcLink);
  /** This client's direct listener, opened on its first serve. */
  private directServer: Promise<DirectServer | null> | null = null;
  private readonly routes: DirectRoutes;

  readonly handles: MessageHandlers<RpcMessage> = {
    call: (b) => {
      this.calls.onCall(b);
      return;
    },
    chunk: (b) => {
      this.calls.onChunk(b);
      return;
    },
    flow: (b) => {
      this.calls.onFlow(b);
      return;
    },
    end: (b) => {
      this.calls.onEnd(b);
      return;
    },
    routeList: (b) => {
      if (b.rid !== 0) return false; // a reply: settled by the connection
      this.routes.update(b.topic, b.routes);
      return;
    },
  };

  /**
   * `direct`: serve on a private Unix socket too and call servers on this host directly (docs/rpc.md).
   * `routesChanged` hears when a topic's direct routes change.
   */
  constructor(
    private readonly link: ClientLink<RpcMessage>,
    private readonly direct: boolean,
    routesChanged: (topic: string, servers: number) => void,
  ) {
    this.routes = new DirectRoutes(
      (topic) => {
        this.link.request("routes", { topic }).then(
          (r) => {
            if (r.type === "routeList") this.routes.update(topic, r.body.routes);
          },
          () => {},
        );
      },
      () => this.link.label,
      routesChanged,
      link.forwardLimit,
    );
  }

  /** See HubClient.serve. */
  async serve(topic: string, handler: RpcHandler): Promise<Server> {
    checkTopic(topic);
    return this.calls.serve(topic, handler);
  }

  /**
   * See HubClient.request. Not `async`: a connected client's call goes out in this tick, and its answer
   * reaches the caller without extra promise hops (they cost ~0.2 µs a call).
   */
  request(topic: string, payload?: Payload, options: RequestOptions = {}): Promise<Body> {
    try {
      checkTopic(topic);
    } catch (err) {
      return Promise.reject(err);
    }
    const direct = this.direct ? this.routes.pick(topic) : undefined;
    if (!direct) return this.requestViaHub(topic, payload, options);
    return direct.request(topic, payload, options).catch((err: unknown) => {
      // The server left the topic's pool before the hub's update reached us: ask the pool through the hub.
      if (!isEzipcError(err, "EZIPC_NO_RESPONDERS")) throw err;
      return this.requestViaHub(topic, payload, options);
    });
  }

  private requestViaHub(topic: string, payload: Payload | undefined, options: RequestOptions): Promise<Body> {
    if (this.link.ready) return this.calls.request(topic, payload, options);
    return this.link.readyWithin(topic).then(() => this.calls.request(topic, payload, options));
  }

  /** See HubClient.requestStream. */
  async requestStream(topic: string, payload?: Payload, options: StreamOptions = {}): Promise<Channel> {
    checkTopic(topic);
    await this.link.readyWithin(topic);
    return this.calls.stream(topic, payload, options);
  }

  /** See HubClient.acceptSessions. */
  async acceptSessions(topic: string, handler: (session: RpcSession) => unknown): Promise<Server> {
    checkTopic(topic);
    return this.calls.acceptSessions(topic, handler);
  }

  /** See HubClient.openSession. */
  async openSession(
    topic: string,
    options: { prefetch?: number; payload?: Payload } = {},
  ): Promise<RpcSession> {
    checkTopic(topic);
    await this.link.readyWithin(topic);
    return this.calls.openSession(topic, options.payload, options.prefetch ?? 16);
  }

  /** A new welcome: routes learnt on the old connection may be out of date. */
  welcomed(): void {
    this.routes.reset();
  }

  /** After a welcome: serves every served topic again (with this client's direct address). */
  async resync(conn: Connection): Promise<{ settled: Promise<unknown> }> {
    // Only a client that serves listens for direct calls (and opens its folder).
    const served = this.calls.servedTopics();
    const address = served.length > 0 ? await this.directAddress() : { host: "", direct: "" };
    const reserved = served.map((topic) =>
      this.link.requestOn(conn, "serve", { topic, ...address }).catch((err: EzipcError) => {
        log("warn", "client", "serving again after a reconnect failed", { topic, error: err });
      }),
    );
    return { settled: Promise.all(reserved) };
  }

  connectionClosed(_conn: Connection, error: EzipcError, current: boolean): void {
    if (current) this.calls.connectionLost(error);
  }

  async close(): Promise<void> {
    this.routes.close();
    const direct = this.directServer;
    this.directServer = Promise.resolve(null);
    await (await direct)?.close();
  }

  /** The `host` and `direct` fields of a `serve`: this client's direct listener, opened on first use. */
  private async directAddress(): Promise<{ host: string; direct: string }> {
    if (!this.direct) return { host: "", direct: "" };
    this.directServer ??= DirectServer.open(this.calls.handlers).catch((err: unknown) => {
      log("warn", "client", "direct RPC listener not available; serving through the hub only", {
        error: err,
      });
      return null;
    });
    const server = await this.directServer;
    return server ? { host: os.hostname(), direct: server.url } : { host: "", direct: "" };
  }
}
