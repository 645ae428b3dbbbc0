import { EventEmitter } from "node:events";
import type { Duplex } from "node:stream";
import { log } from "../log.js";
import { eventsUntilClosed } from "./events.js";
import { type ResolvedConnectionOptions, StreamConnection } from "./stream-connection.js";
import type { Connection, Listener, ListenerEvents, StreamUpgrade } from "./types.js";

/**
 * The {@link Listener} of every stream transport: wraps each accepted byte stream in a
 * {@link StreamConnection} and tracks it until it closes.
 */
export class StreamListener extends EventEmitter<ListenerEvents> implements Listener {
  readonly connections = new Set<Connection>();
  /** Streams accepted and still being upgraded. */
  private readonly upgrading = new Set<Duplex>();
  private closing: Promise<void> | null = null;

  constructor(
    readonly url: string,
    private readonly options: ResolvedConnectionOptions,
    private readonly stopAccepting: () => Promise<void>,
    private readonly upgrade?: StreamUpgrade,
  ) {
    super();
  }

  /** @internal Called by the transport for each accepted stream. */
  accept(stream: Duplex, localUrl: string, remoteUrl: string): void {
    if (this.closing) {
      stream.destroy();
      return;
    }
    if (this.upgrade) {
      this.upgrading.add(stream);
      this.upgrade(stream, { side: "listen", remoteUrl }).then(
        (upgraded) => {
          this.upgrading.delete(stream);
          this.open(upgraded, localUrl, remoteUrl);
        },
        (err: unknown) => {
          this.upgrading.delete(stream);
          stream.destroy();
          log("debug", "transport", "upgrade failed", { listener: this.url, remote: remoteUrl, error: err });
        },
      );
      return;
    }
    this.open(stream, localUrl, remoteUrl);
  }

  private open(stream: Duplex, localUrl: string, remoteUrl: string): void {
    if (this.closing) {
      stream.destroy();
      return;
    }
    const conn = new StreamConnection(stream, localUrl, remoteUrl, this.options);
    this.connections.add(conn);
    conn.once("close", () => this.connections.delete(conn));
    log("debug", "transport", "accepted", { listener: this.url, id: conn.id, remote: remoteUrl });
    this.emit("connection", conn);
  }

  close(): Promise<void> {
    this.closing ??= (async () => {
      const stopped = this.stopAccepting();
      for (const s of this.upgrading) s.destroy();
      await Promise.all([stopped, ...[...this.connections].map((c) => c.close("listener closed"))]);
      this.emit("close");
    })();
    return this.closing;
  }

  /** Accepted connections, in order, until the listener closes. */
  [Symbol.asyncIterator](): AsyncIterator<Connection> {
    return eventsUntilClosed<Connection>(this, "connection", () => this.closing !== null);
  }
}
