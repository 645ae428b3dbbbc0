/**
 * # Service layer
 *
 * Seed 003's service / session / acceptor / connector, kept thin: a {@link Service} owns listeners and
 * dialers, wraps each connection in a {@link Session} that speaks a {@link Protocol} chosen by name (a codec
 * now, encryption later), and dispatches decoded messages by type. A session whose peer sends something
 * undecodable is closed alone; a handler that throws closes its own session; nothing else is disturbed.
 */
export {
  codecProtocol,
  type Message,
  type Protocol,
  type ProtocolFactory,
  protocolFactory,
  registerProtocol,
  type SchemaMap,
  type SchemaMessages,
  schemaProtocol,
} from "./protocol.js";
export { type Connector, type MessageHandler, Service, type ServiceEvents } from "./service.js";
export { Session, type SessionEvents } from "./session.js";
