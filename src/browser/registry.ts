/**
 * The transport registry of the browser build: src/transport/registry.ts's API with ws:// and wss:// over
 * the browser's `WebSocket` (src/transport/browser-ws.ts) as the only transports. scripts/build-browser.mjs
 * puts this file in place of the Node registry, whose transports need `node:net`.
 */
import { EzipcError } from "../errors.js";
import { browserWebSocketTransport } from "../transport/browser-ws.js";
import type { Connection, DialOptions, Listener, ListenOptions, Transport } from "../transport/types.js";

const transports = new Map<string, Transport>();

/** Registers a transport for its URL scheme, replacing any earlier one. */
export function registerTransport(transport: Transport): void {
  transports.set(transport.scheme, transport);
}

/** The transport for `url`'s scheme; throws `EZIPC_INVALID_URL` for a malformed URL or unknown scheme. */
export function transportFor(url: string | URL): { transport: Transport; url: URL } {
  let parsed: URL;
  try {
    parsed = typeof url === "string" ? new URL(url) : url;
  } catch (err) {
    throw new EzipcError("EZIPC_INVALID_URL", `not a URL: ${String(url)}`, { cause: err });
  }
  const transport = transports.get(parsed.protocol.slice(0, -1));
  if (!transport) {
    throw new EzipcError(
      "EZIPC_INVALID_URL",
      `no transport for ${parsed.protocol}// in the browser (known: ws://, wss://)`,
    );
  }
  return { transport, url: parsed };
}

/** Browsers cannot listen: rejects with `EZIPC_INVALID_URL`. */
export async function listen(url: string | URL, options: ListenOptions = {}): Promise<Listener> {
  const { transport, url: parsed } = transportFor(url);
  return transport.listen(parsed, options);
}

/** Opens one WebSocket connection to `url` (see src/transport/registry.ts). */
export async function dial(url: string | URL, options: DialOptions = {}): Promise<Connection> {
  const { transport, url: parsed } = transportFor(url);
  return transport.dial(parsed, options);
}

registerTransport(browserWebSocketTransport("ws"));
registerTransport(browserWebSocketTransport("wss"));
