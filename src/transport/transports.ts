/**
 * The transport table: one {@link Transport} per URL scheme, and `listen` / `dial` by URL. Pure (no
 * transport of its own): src/transport/registry.ts fills it with Node's transports, src/browser/registry.ts
 * with the browser's.
 */

import { EzipcError } from "../errors.js";
import { checkDurationMs } from "../ranges.js";
import type { Connection, DialOptions, Listener, ListenOptions, Transport } from "./types.js";

const transports = new Map<string, Transport>();

/**
 * Registers a transport for its URL scheme, replacing any earlier one. tcp, unix and memory are
 * registered when ezipc loads (and tls, ws, wss).
 */
export function registerTransport(transport: Transport): void {
  if (!/^[a-z][a-z0-9+.-]*$/.test(transport.scheme)) {
    throw new TypeError(`invalid transport scheme ${JSON.stringify(transport.scheme)}`);
  }
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
    const known = [...transports.keys()].map((s) => `${s}://`).join(", ");
    // shm:// is the shared-memory backend (connect() of "ezipc"), which has no byte stream to dial.
    const why =
      parsed.protocol === "shm:"
        ? ': shm:// is shared memory between processes, not a transport (connect() from "ezipc" takes it; hub connections, listeners and echo do not)'
        : "";
    throw new EzipcError(
      "EZIPC_INVALID_URL",
      `no transport for ${parsed.protocol}//${why} (known: ${known})`,
    );
  }
  return { transport, url: parsed };
}

/**
 * Listens at `url` (`tcp://host:port`, `unix:///path`, `memory://name`).
 *
 * Resolves once the address is bound, with a {@link Listener} whose `url` is the bound address (the real
 * port for `tcp://host:0`). Rejects with `EZIPC_INVALID_URL` or `EZIPC_ADDRESS_IN_USE`.
 *
 * @example
 * const listener = await listen("tcp://127.0.0.1:0");
 * listener.on("connection", (conn) => conn.on("message", (m) => conn.send(m)));
 */
export async function listen(url: string | URL, options: ListenOptions = {}): Promise<Listener> {
  const { transport, url: parsed } = transportFor(url);
  return transport.listen(parsed, options);
}

/**
 * Opens one connection to `url`. Resolves once connected; rejects with `EZIPC_CONNECTION_REFUSED` (nothing
 * listening, or no answer within connectTimeoutMs), `EZIPC_CONNECT_ABORTED` (signal) or
 * `EZIPC_INVALID_URL`; throws a RangeError for a connectTimeoutMs out of 0..2^31-1. It does not reconnect: use a {@link Dialer} for that.
 *
 * @example
 * const conn = await dial("unix:///tmp/app.sock");
 * conn.send(Buffer.from("hello"));
 */
export async function dial(url: string | URL, options: DialOptions = {}): Promise<Connection> {
  if (options.connectTimeoutMs !== undefined) checkDurationMs("connectTimeoutMs", options.connectTimeoutMs);
  const { transport, url: parsed } = transportFor(url);
  return transport.dial(parsed, options);
}
