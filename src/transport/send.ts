/**
 * How the hub (and every capability's hub side) sends: to a connection that is closing or closed, a send is a no-op (false), never a throw.
 *
 * The hub forwards between connections (a chunk from a server to its caller, a message to a subscriber, a
 * grant to a session's peer). The receiving end may be dying while the sender's message is handled; a throw
 * there would surface in the sender's handler and cut the sender — an innocent connection. Every frame the
 * hub sends therefore goes through these two functions; whatever a closing connection would have received
 * is settled by its `close` handler (calls ended, subscriptions dropped, tokens released).
 *
 * A frame over the connection's maxFrameBytes still throws `EZIPC_MESSAGE_TOO_LARGE`: the hub checks what it
 * forwards before it sends (a publish's message frame, a request's call frame), and a reply over it is
 * answered with that error by the handler that built it.
 */
import type { Connection } from "./types.js";

/** Queues `frame` on `conn` if it is open; false if it is not (or its queue is over its high-water mark). */
export function sendTo(conn: Connection, frame: Uint8Array): boolean {
  return conn.state === "open" && conn.send(frame);
}

/** {@link sendTo} for a frame made of `head` then `body` (`Connection.sendParts`). */
export function sendPartsTo(
  conn: Connection,
  head: Uint8Array,
  body: Uint8Array,
  more?: readonly Uint8Array[],
): boolean {
  return conn.state === "open" && conn.sendParts(head, body, more);
}
