import { EventEmitter } from "node:events";
import { EzipcError } from "../errors.js";
import { log } from "../log.js";
import type { CloseInfo, Connection } from "../transport/types.js";
import type { Message, Protocol } from "./protocol.js";

export interface SessionEvents {
  /** A decoded message (also dispatched to the service's handlers for its type). */
  message: [message: Message];
  close: [info: CloseInfo];
}

/**
 * One connection speaking one {@link Protocol}: sends typed messages, decodes incoming frames. A frame
 * that does not decode closes this session only (`EZIPC_DECODE` / `EZIPC_UNKNOWN_MESSAGE` in the close
 * info); the rest of the service carries on.
 */
export class Session extends EventEmitter<SessionEvents> {
  /** The connection's id: unique over the process's life. */
  readonly id: number;
  /** Free slot for the application (a user name, a room…). */
  data: Record<string, unknown> = {};

  constructor(
    readonly connection: Connection,
    readonly protocol: Protocol,
    /** `accept` for sessions a listener accepted, `connect` for dialled ones. */
    readonly side: "accept" | "connect",
  ) {
    super();
    this.id = connection.id;
    connection.on("message", (frame) => {
      let message: Message;
      try {
        message = protocol.decode(frame);
      } catch (err) {
        const error =
          err instanceof EzipcError
            ? err
            : new EzipcError("EZIPC_DECODE", (err as Error).message, { cause: err });
        log("warn", "service", "undecodable message, closing session", { id: this.id, error });
        connection.destroy(error);
        return;
      }
      this.emit("message", message);
    });
    connection.once("close", (info) => this.emit("close", info));
  }

  /** Whether messages can still be sent. */
  get open(): boolean {
    return this.connection.state === "open";
  }

  /**
   * Encodes and queues one message. Returns false when the connection's send queue is over its high-water
   * mark (wait for {@link drain}). Throws `EZIPC_ENCODE` for a body the protocol cannot encode and
   * `EZIPC_CONNECTION_CLOSED` once closed.
   */
  send(type: string, body: unknown): boolean {
    return this.connection.send(this.protocol.encode(type, body));
  }

  /** Resolves once the send queue is below its high-water mark. */
  drain(): Promise<void> {
    return this.connection.drain();
  }

  /** Closes gracefully (flushes, tells the peer `reason`); resolves once closed. */
  close(reason?: string): Promise<void> {
    return this.connection.close(reason);
  }
}
