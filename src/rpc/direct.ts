/**
 * Direct RPC: request/reply calls that skip the hub.
 *
 * Through the hub a call takes four one-way hops (caller → hub → server → hub → caller); directly it takes
 * two. The hub stays in charge of who serves what:
 *
 * - A client that serves opens a {@link DirectServer}: a Unix socket in a private temporary directory (mode
 *   0700, so only processes of the same user reach it), announced to the hub with each `serve`.
 * - A caller asks the hub for a topic's `routes` the first time it calls it (that call, and any made until
 *   the routes are dialled, go through the hub). The hub answers, and tells it again each time the topic's
 *   pool changes, with every server's direct URL — or with none if one of them takes no direct calls, so
 *   the pool's round robin is never skewed. {@link DirectRoutes} dials them (same host only) and spreads
 *   calls round robin, falling back to the hub whenever it has no open route.
 * - On a direct connection the caller speaks the hub's server-side messages (`call`, `end`), with its own
 *   rid as the call id; the server runs the call exactly as one routed by the hub: deadline and
 *   cancellation reach the handler's AbortSignal, and when the server's connection drops every call on it
 *   fails at once with `EZIPC_SERVER_GONE`.
 * - Only plain requests go direct; streams and sessions, which need the hub's flow checks, go through it.
 */

import { lstatSync, mkdtempSync, readdirSync, rmSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import type { Infer } from "../codec/schema.js";
import { EzipcError, isEzipcError } from "../errors.js";
import { log } from "../log.js";
import { schemaProtocol } from "../service/protocol.js";
import { RPC_BASE, rpcMessages } from "./rpc-messages.js";

type HubBody<K extends keyof typeof rpcMessages> = Infer<(typeof rpcMessages)[K]>;
/** Direct connections speak the RPC messages alone, with their hub indexes. */
const directProtocol = schemaProtocol(rpcMessages, "ezipc-direct", RPC_BASE);

import { checkForwardable, FORWARD_RESERVE_BYTES } from "../protocol/fields.js";
import type { Message, Protocol } from "../service/protocol.js";
import { DEFAULT_MAX_FRAME_BYTES } from "../transport/frame.js";
import { dial, listen } from "../transport/registry.js";
import type { Connection, Listener } from "../transport/types.js";
import {
  type Body,
  type Handlers,
  type Payload,
  type RequestOptions,
  RpcCalls,
  type RpcLink,
} from "./rpc-calls.js";
import { KIND_REQUEST, SIDE_CALLER, SIDE_SERVER } from "./rpc-hub.js";

/** Calls in flight per direct connection (`EZIPC_TOO_MANY_REQUESTS` beyond), like the hub's default. */
const MAX_CALLS_PER_CONNECTION = 1_000;
/** Direct connections one server accepts at once. */
const MAX_CONNECTIONS = 1_000;
/** Topics whose routes one caller keeps. */
const MAX_ROUTED_TOPICS = 10_000;

const NO_PAYLOAD = new Uint8Array(0);

function unsupported(): never {
  throw new EzipcError("EZIPC_BAD_REQUEST", "not available on a direct connection");
}

/** Calls `fn` with each decoded message of `conn`; a frame that does not decode closes the connection. */
function onDecoded(conn: Connection, protocol: Protocol, fn: (msg: Message) => void): void {
  conn.on("message", (frame) => {
    let msg: Message;
    try {
      msg = protocol.decode(frame);
    } catch (err) {
      conn.destroy(err as EzipcError);
      return;
    }
    fn(msg);
  });
}

/** A direct connection's messages go on with the other `side`: the hub would have flipped it. */
function flipped<T extends { side: number }>(m: T): T {
  return { ...m, side: m.side === SIDE_CALLER ? SIDE_SERVER : SIDE_CALLER };
}

/** The listener a serving client takes direct calls on. */
export class DirectServer {
  private readonly connections = new Set<Connection>();

  private constructor(
    private readonly listener: Listener,
    private readonly dir: string,
    private readonly handlers: Handlers,
  ) {
    listener.on("connection", (conn) => this.accept(conn));
  }

  /** Opens a Unix socket in a new private directory under the system's temporary directory. */
  static async open(handlers: Handlers): Promise<DirectServer> {
    removeStaleDirs();
    const dir = mkdtempSync(path.join(os.tmpdir(), `${DIR_PREFIX}${process.pid}-`));
    liveDirs.add(dir);
    if (liveDirs.size === 1 && !process.listeners("exit").includes(removeLiveDirs)) {
      process.on("exit", removeLiveDirs);
    }
    try {
      const listener = await listen(`unix://${path.join(dir, "rpc.sock")}`, { heartbeatIntervalMs: 0 });
      return new DirectServer(listener, dir, handlers);
    } catch (err) {
      liveDirs.delete(dir);
      rmSync(dir, { recursive: true, force: true });
      throw err;
    }
  }

  get url(): string {
    return this.listener.url;
  }

  private accept(conn: Connection): void {
    if (this.connections.size >= MAX_CONNECTIONS) {
      conn.destroy(new EzipcError("EZIPC_HUB_FULL", `at most ${MAX_CONNECTIONS} direct connections`));
      return;
    }
    this.connections.add(conn);
    const protocol = directProtocol();
    const send = (type: string, body: Record<string, unknown>): boolean =>
      conn.state === "open" && conn.send(protocol.encode(type, body));
    const link: RpcLink = {
      nextRid: unsupported,
      send,
      trySend: (type, body) => {
        send(type, body);
      },
      serveRequest: unsupported,
      unserved: unsupported,
    };
    const rpc = new RpcCalls(link, this.handlers, MAX_CALLS_PER_CONNECTION);
    onDecoded(conn, protocol, (msg) => {
      if (msg.type === "call") {
        const call = msg.body as HubBody<"call">;
        if (call.kind !== KIND_REQUEST) {
          link.trySend("end", {
            side: SIDE_SERVER,
            id: call.cid,
            status: 1,
            code: "EZIPC_BAD_REQUEST",
            message: "only requests are taken directly; streams and sessions go through the hub",
            payload: NO_PAYLOAD,
          });
          return;
        }
        rpc.onCall(call);
      } else if (msg.type === "end") rpc.onEnd(msg.body as HubBody<"end">);
      else conn.destroy(new EzipcError("EZIPC_PROTOCOL", `a direct caller may not send ${msg.type}`));
    });
    conn.on("error", () => {});
    conn.once("close", () => {
      this.connections.delete(conn);
      rpc.connectionLost(new EzipcError("EZIPC_CONNECTION_CLOSED", "the direct caller disconnected"));
    });
  }

  /** Stops listening, closes the direct connections (their calls are aborted) and removes the socket. */
  async close(): Promise<void> {
    for (const c of this.connections) c.destroy();
    await this.listener.close();
    liveDirs.delete(this.dir);
    rmSync(this.dir, { recursive: true, force: true });
  }
}

/** A caller's connection to one server's direct listener. */
export class DirectLink {
  private readonly rpc: RpcCalls;
  private rid = 0;

  private constructor(
    private readonly conn: Connection,
    label: () => string,
    forwardLimit: number,
  ) {
    const protocol = directProtocol();
    const encode = (type: string, body: Record<string, unknown>): Uint8Array => {
      if (type === "request") {
        const caller = label();
        const frame = protocol.encode("call", {
          cid: body.rid,
          topic: body.topic,
          kind: body.kind,
          timeoutMs: body.timeoutMs,
          credit: body.credit,
          caller,
          headers: body.headers,
          payload: body.payload,
        });
        // The request frame the hub would have been sent is this one without the caller: the same bound
        // whichever way the call goes.
        // (A caller label is under 16 KiB: its length takes one or two LEB128 bytes.)
        const callerBytes = Buffer.byteLength(caller);
        const requestBytes = frame.length - callerBytes - (callerBytes < 0x80 ? 1 : 2);
        checkForwardable("request", requestBytes, forwardLimit);
        return frame;
      }
      if (type === "end") return protocol.encode("end", flipped(body as HubBody<"end">));
      return unsupported();
    };
    this.rpc = new RpcCalls({
      nextRid: () => {
        this.rid = this.rid >= 0xffffffff ? 1 : this.rid + 1;
        return this.rid;
      },
      send: (type, body) => {
        if (conn.state !== "open") {
          throw new EzipcError("EZIPC_SERVER_GONE", "the direct connection to the server is closed");
        }
        return conn.send(encode(type, body));
      },
      trySend: (type, body) => {
        if (conn.state === "open") conn.send(encode(type, body));
      },
      unserved: unsupported,
      serveRequest: unsupported,
    });
    onDecoded(conn, protocol, (msg) => {
      if (msg.type === "end") this.rpc.onEnd(flipped(msg.body as HubBody<"end">));
      else conn.destroy(new EzipcError("EZIPC_PROTOCOL", `a direct server may not send ${msg.type}`));
    });
    conn.on("error", () => {});
    conn.once("close", () =>
      this.rpc.connectionLost(
        new EzipcError("EZIPC_SERVER_GONE", "the server of this call disconnected (direct connection)"),
      ),
    );
  }

  static async dial(url: string, label: () => string, forwardLimit: number): Promise<DirectLink> {
    return new DirectLink(
      await dial(url, { heartbeatIntervalMs: 0, connectTimeoutMs: 2_000 }),
      label,
      forwardLimit,
    );
  }

  get open(): boolean {
    return this.conn.state === "open";
  }

  /** Resolves once the connection is closed. */
  get closed(): Promise<unknown> {
    return this.conn.closed;
  }

  request(topic: string, payload: Payload | undefined, options: RequestOptions): Promise<Body> {
    return this.rpc.request(topic, payload, options);
  }

  close(): void {
    this.conn.destroy();
  }
}

interface TopicRoutes {
  links: DirectLink[];
  next: number;
  /** Bumped by each update: a slower, older dial does not overwrite a newer list. */
  version: number;
}

/**
 * A caller's direct routes, per topic, as the hub announces them. A link to a server stays open while the
 * server does (it is shared by every topic the server serves), so a server that leaves a topic's pool
 * finishes the calls it has; links end when their server closes them or the client closes.
 */
export class DirectRoutes {
  private readonly topics = new Map<string, TopicRoutes>();
  private readonly links = new Map<string, Promise<DirectLink | null>>();
  private readonly host = os.hostname();
  private closed = false;

  /** `ask(topic)` asks the hub for the topic's routes (the answer comes to {@link update}). */
  constructor(
    private readonly ask: (topic: string) => void,
    private readonly label: () => string,
    private readonly changed: (topic: string, servers: number) => void = () => {},
    /** Bytes a request frame may take (ClientLink.forwardLimit): the same bound as through the hub. */
    private readonly forwardLimit = DEFAULT_MAX_FRAME_BYTES - FORWARD_RESERVE_BYTES,
  ) {}

  /** An open direct link for a call to `topic`, round robin; undefined: call through the hub. */
  pick(topic: string): DirectLink | undefined {
    const t = this.topics.get(topic);
    if (!t) {
      if (!this.closed && this.topics.size < MAX_ROUTED_TOPICS) {
        this.topics.set(topic, { links: [], next: 0, version: 0 });
        this.ask(topic);
      }
      return undefined;
    }
    const n = t.links.length;
    for (let i = 0; i < n; i++) {
      const link = t.links[t.next++ % n]!;
      if (link.open) return link;
    }
    return undefined;
  }

  /**
   * The hub's routes for `topic`. They are used when every one is on this host and could be dialled;
   * otherwise calls to the topic go through the hub.
   */
  update(topic: string, routes: readonly { host: string; url: string }[]): void {
    const t = this.topics.get(topic);
    if (!t || this.closed) return;
    const version = ++t.version;
    const had = t.links.length;
    t.links = [];
    if (routes.length === 0 || routes.some((r) => r.host !== this.host || !r.url.startsWith("unix://"))) {
      if (had > 0) this.changed(topic, 0);
      return;
    }
    void Promise.all(routes.map((r) => this.link(r.url))).then((links) => {
      if (t.version !== version || this.closed) return;
      if (links.every((l) => l?.open)) t.links = links as DirectLink[];
      if (t.links.length > 0 || had > 0) this.changed(topic, t.links.length);
    });
  }

  /** The hub connection was replaced: routes are asked for again on the next call. */
  reset(): void {
    this.topics.clear();
  }

  private link(url: string): Promise<DirectLink | null> {
    let p = this.links.get(url);
    if (!p) {
      const dialled = DirectLink.dial(url, this.label, this.forwardLimit).then(
        (l) => {
          l.closed.then(() => {
            if (this.links.get(url) === dialled) this.links.delete(url);
          });
          return l;
        },
        (err: unknown) => {
          if (!isEzipcError(err)) throw err;
          log("debug", "client", "direct route not reachable; calling through the hub", { url, error: err });
          this.links.delete(url);
          return null;
        },
      );
      p = dialled;
      this.links.set(url, p);
    }
    return p;
  }

  close(): void {
    this.closed = true;
    this.topics.clear();
    for (const p of this.links.values()) void p.then((l) => l?.close());
    this.links.clear();
  }
}

/** Direct listeners' folders in the temp dir: `ezipc-direct-PID-XXXXXX`, named by their owner's pid. */
const DIR_PREFIX = "ezipc-direct-";
/** This process's folders, removed at exit if still there (a process that exits without close()). */
const liveDirs = new Set<string>();

function removeLiveDirs(): void {
  for (const dir of liveDirs) rmSync(dir, { recursive: true, force: true });
  liveDirs.clear();
}

/** Whether process `pid` exists (EPERM: it does, owned by someone else). */
function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === "EPERM";
  }
}

/**
 * Removes the folders of this user's processes that died without removing theirs (a kill -9). In a shared
 * /tmp, a name with the prefix may be another user's, or a link: only real folders this user owns are
 * removed (a hub run as root removes no other user's files).
 */
export function removeStaleDirs(tmp = os.tmpdir()): number {
  let removed = 0;
  let names: string[];
  try {
    names = readdirSync(tmp);
  } catch {
    return 0;
  }
  for (const name of names) {
    if (!name.startsWith(DIR_PREFIX)) continue;
    const pid = Number(name.slice(DIR_PREFIX.length).split("-")[0]);
    if (!Number.isInteger(pid) || pid <= 0 || pid === process.pid || alive(pid)) continue;
    try {
      const st = lstatSync(path.join(tmp, name));
      if (!st.isDirectory() || st.uid !== process.getuid?.()) continue;
      rmSync(path.join(tmp, name), { recursive: true, force: true });
      removed++;
    } catch {
      // another process removed it, or it is not ours to remove
    }
  }
  return removed;
}
