import { EventEmitter } from "node:events";
import { log } from "../log.js";
import { Dialer, type DialerOptions } from "../transport/dialer.js";
import { listen } from "../transport/registry.js";
import type { CloseInfo, Connection, Listener, ListenOptions } from "../transport/types.js";
import { type Message, type ProtocolFactory, protocolFactory } from "./protocol.js";
import { Session } from "./session.js";

/** Handles one message type. Thrown errors and rejections are logged and close that session. */
export type MessageHandler<B = unknown> = (body: B, session: Session, message: Message<B>) => unknown;

export interface ServiceEvents {
  /** A session opened (accepted or connected). */
  session: [session: Session];
  /** A session closed. */
  sessionClosed: [session: Session, info: CloseInfo];
  /** A message arrived with no handler for its type. */
  unhandled: [message: Message, session: Session];
}

/** A connector: the {@link Dialer} behind it, and the session of its current connection. */
export interface Connector {
  readonly dialer: Dialer;
  /** The open session, or null between connections. */
  readonly session: Session | null;
  /** Resolves with the open session, now or once the next connection opens. */
  connected(): Promise<Session>;
  /** Stops reconnecting and closes the session. */
  close(): Promise<void>;
}

/**
 * Seed 003's service: owns acceptors (listeners) and connectors (dialers), wraps every connection in a
 * {@link Session} speaking a protocol chosen by name, and dispatches decoded messages to the handlers
 * subscribed for their type. Sessions can be looked up by id.
 *
 * @example
 * const svc = new Service();
 * svc.handle("echo", (body, session) => session.send("echo", body));
 * await svc.accept("tcp://127.0.0.1:7700", "msgpack");
 */
export class Service extends EventEmitter<ServiceEvents> {
  private readonly handlers = new Map<string, MessageHandler<never>>();
  private readonly live = new Map<number, Session>();
  private readonly acceptors = new Set<Listener>();
  private readonly connectors = new Set<Connector>();

  /** Sessions open now, by id. */
  get sessions(): ReadonlyMap<number, Session> {
    return this.live;
  }

  /** The open session with this id, if any (seed 003's `acquire(id)`). */
  session(id: number): Session | undefined {
    return this.live.get(id);
  }

  /** Subscribes `handler` to messages of `type` (one handler per type; a second replaces the first). */
  handle<B = unknown>(type: string, handler: MessageHandler<B>): this {
    this.handlers.set(type, handler as MessageHandler<never>);
    return this;
  }

  /**
   * An acceptor: listens at `url` and serves every accepted connection as a session speaking `protocol`
   * (a registered name or a factory). Resolves once listening.
   */
  async accept(
    url: string,
    protocol: string | ProtocolFactory,
    options: ListenOptions = {},
  ): Promise<Listener> {
    const factory = typeof protocol === "string" ? protocolFactory(protocol) : protocol;
    const listener = await listen(url, options);
    this.acceptors.add(listener);
    listener.on("connection", (conn) => this.adopt(conn, factory(), "accept"));
    listener.once("close", () => this.acceptors.delete(listener));
    return listener;
  }

  /**
   * A connector: keeps a connection to `url` open (reconnecting with backoff) and serves each one as a
   * session speaking `protocol`. Returns at once; `connected()` resolves when a session is open.
   */
  connect(url: string, protocol: string | ProtocolFactory, options: DialerOptions = {}): Connector {
    const factory = typeof protocol === "string" ? protocolFactory(protocol) : protocol;
    const dialer = new Dialer(url, options);
    let current: Session | null = null;
    const waiters: Array<(s: Session) => void> = [];
    dialer.on("connection", (conn) => {
      const session = this.adopt(conn, factory(), "connect");
      current = session;
      session.once("close", () => {
        if (current === session) current = null;
      });
      for (const w of waiters.splice(0)) w(session);
    });
    const connector: Connector = {
      dialer,
      get session() {
        return current;
      },
      connected: () =>
        current
          ? Promise.resolve(current)
          : new Promise<Session>((resolve, reject) => {
              waiters.push(resolve);
              dialer.connected().catch(reject);
            }),
      close: async () => {
        this.connectors.delete(connector);
        await dialer.close();
      },
    };
    this.connectors.add(connector);
    return connector;
  }

  /** Wraps an already open connection in a session (for transports opened by hand). */
  adopt(conn: Connection, protocol: ReturnType<ProtocolFactory>, side: "accept" | "connect"): Session {
    const session = new Session(conn, protocol, side);
    this.live.set(session.id, session);
    session.on("message", (m) => this.dispatch(m, session));
    session.once("close", (info) => {
      this.live.delete(session.id);
      this.emit("sessionClosed", session, info);
    });
    this.emit("session", session);
    return session;
  }

  /** Closes every acceptor, connector and session; resolves once all are closed. */
  async close(): Promise<void> {
    await Promise.all([
      ...[...this.acceptors].map((l) => l.close()),
      ...[...this.connectors].map((c) => c.close()),
      ...[...this.live.values()].map((s) => s.close("service closed")),
    ]);
  }

  private dispatch(message: Message, session: Session): void {
    const handler = this.handlers.get(message.type) as MessageHandler | undefined;
    if (!handler) {
      if (this.listenerCount("unhandled") > 0) this.emit("unhandled", message, session);
      else log("debug", "service", "no handler", { id: session.id, type: message.type });
      return;
    }
    try {
      const r = handler(message.body, session, message);
      if (r instanceof Promise) r.catch((err) => this.handlerFailed(err, session, message));
    } catch (err) {
      this.handlerFailed(err, session, message);
    }
  }

  private handlerFailed(err: unknown, session: Session, message: Message): void {
    log("error", "service", "handler failed, closing session", {
      id: session.id,
      type: message.type,
      error: err,
    });
    void session.close(`handler for ${message.type} failed`);
  }
}
