import { readFileSync } from "node:fs";
import net from "node:net";
import tls from "node:tls";
import { EzipcError } from "../errors.js";
import { listenAt, netClose, openSocket } from "./net-dial.js";
import { dialledConnection, resolveConnectionOptions } from "./stream-connection.js";
import { StreamListener } from "./stream-listener.js";
import { tcpUrl } from "./tcp.js";
import type { Connection, DialOptions, Listener, ListenOptions, Transport } from "./types.js";

/**
 * `tls://host:port` → host, port and the certificate files named in the query: `cert`, `key` and `ca`
 * (paths), e.g. `tls://0.0.0.0:7701?cert=hub.crt&key=hub.key` or `tls://hub.example:7701?ca=ca.crt`.
 */
export function parseTlsUrl(url: URL): {
  host: string;
  port: number;
  files: { cert?: Buffer; key?: Buffer; ca?: Buffer };
} {
  const host = url.hostname.startsWith("[") ? url.hostname.slice(1, -1) : url.hostname;
  const port = Number(url.port);
  if (!host || url.port === "" || !Number.isInteger(port) || port < 0 || port > 65535) {
    throw new EzipcError("EZIPC_INVALID_URL", `${url.href}: expected tls://host:port`);
  }
  if ((url.pathname && url.pathname !== "/") || url.hash) {
    throw new EzipcError("EZIPC_INVALID_URL", `${url.href}: a tls:// URL has no path or fragment`);
  }
  const files: { cert?: Buffer; key?: Buffer; ca?: Buffer } = {};
  for (const [name, value] of url.searchParams) {
    if (name !== "cert" && name !== "key" && name !== "ca") {
      throw new EzipcError("EZIPC_INVALID_URL", `${url.href}: unknown parameter ${name} (cert, key, ca)`);
    }
    try {
      files[name] = readFileSync(value);
    } catch (err) {
      throw new EzipcError("EZIPC_INVALID_URL", `${url.href}: cannot read ${name} file ${value}`, {
        cause: err,
      });
    }
  }
  return { host, port, files };
}

/**
 * The server side's TLS options (the URL's files, then `options.tls`), checked before anything listens: a
 * certificate and its key must be there and usable. Throws `EZIPC_INVALID_URL` naming the URL and what is
 * wrong (a listener without them would accept connections and fail every handshake).
 */
export function serverTlsOptions(
  url: URL,
  files: { cert?: Buffer; key?: Buffer; ca?: Buffer },
  options: tls.TlsOptions | undefined,
): tls.TlsOptions {
  const merged: tls.TlsOptions = { ...files, ...options };
  const hasIdentity =
    (merged.cert !== undefined && merged.key !== undefined) ||
    merged.pfx !== undefined ||
    merged.SNICallback !== undefined;
  if (!hasIdentity) {
    throw new EzipcError(
      "EZIPC_INVALID_URL",
      `${url.href}: a ${url.protocol}// listener needs a certificate and its key (?cert=FILE&key=FILE, or options.tls)`,
    );
  }
  try {
    tls.createSecureContext(merged);
  } catch (err) {
    throw new EzipcError(
      "EZIPC_INVALID_URL",
      `${url.href}: the certificate, its key or the CA is not usable: ${(err as Error).message}`,
      { cause: err },
    );
  }
  return merged;
}

function tlsUrl(address: string | undefined, port: number | undefined): string {
  return tcpUrl(address, port).replace(/^tcp:/, "tls:");
}

/**
 * TLS over TCP (`node:tls`), for users who already run a PKI: the server's certificate and key come from
 * `options.tls` or the URL's `cert`/`key` files; a client trusts the system CAs, or `ca`. A certificate
 * the client does not trust fails the dial with `EZIPC_AUTH`. With `requestCert`, a client certificate's
 * subject CN becomes the connection's `peer.name`.
 */
export const tlsTransport: Transport = {
  scheme: "tls",

  async listen(url: URL, options: ListenOptions): Promise<Listener> {
    const { host, port, files } = parseTlsUrl(url);
    const resolved = resolveConnectionOptions(options);
    const server = tls.createServer(serverTlsOptions(url, files, options.tls));
    await listenAt(server, { host, port, backlog: options.backlog ?? 511 }, url.href);
    const addr = server.address() as net.AddressInfo;
    const listener = new StreamListener(
      tlsUrl(addr.address, addr.port),
      resolved,
      () => netClose(server),
      options.upgrade,
    );
    server.on("secureConnection", (socket: tls.TLSSocket) => {
      socket.setNoDelay(true);
      if (socket.authorized) {
        const cn = (socket.getPeerCertificate() as { subject?: { CN?: string } }).subject?.CN;
        if (cn) (socket as tls.TLSSocket & { peer?: { name: string } }).peer = { name: cn };
      }
      listener.accept(
        socket,
        tlsUrl(socket.localAddress, socket.localPort),
        tlsUrl(socket.remoteAddress, socket.remotePort),
      );
    });
    server.on("tlsClientError", () => {}); // a failed handshake concerns that socket only
    server.on("error", (err) => listener.emit("error", err));
    return listener;
  },

  async dial(url: URL, options: DialOptions): Promise<Connection> {
    const { host, port, files } = parseTlsUrl(url);
    const resolved = resolveConnectionOptions(options);
    // Certificate failures reject with EZIPC_AUTH.
    const socket = await openSocket(
      () =>
        tls.connect({ host, port, servername: net.isIP(host) ? undefined : host, ...files, ...options.tls }),
      "secureConnect",
      url.href,
      options.connectTimeoutMs ?? 10_000,
      options.signal,
    );
    socket.setNoDelay(true);
    return dialledConnection(
      socket,
      tlsUrl(socket.localAddress, socket.localPort),
      tlsUrl(socket.remoteAddress, socket.remotePort),
      resolved,
      options.upgrade,
    );
  },
};
