import net from "node:net";
import { EzipcError } from "../errors.js";
import { listenAt, netClose, netConnect } from "./net-dial.js";
import { dialledConnection, markReleasesChunks, resolveConnectionOptions } from "./stream-connection.js";
import { StreamListener } from "./stream-listener.js";
import type { Connection, DialOptions, Listener, ListenOptions, Transport } from "./types.js";

/** `tcp://host:port` → host and port; IPv6 hosts in brackets (`tcp://[::1]:7700`). Port 0 = any free port. */
export function parseTcpUrl(url: URL): { host: string; port: number } {
  const host = url.hostname.startsWith("[") ? url.hostname.slice(1, -1) : url.hostname;
  const port = Number(url.port);
  if (!host || url.port === "" || !Number.isInteger(port) || port < 0 || port > 65535) {
    throw new EzipcError("EZIPC_INVALID_URL", `${url.href}: expected tcp://host:port`);
  }
  if ((url.pathname && url.pathname !== "/") || url.search || url.hash) {
    throw new EzipcError("EZIPC_INVALID_URL", `${url.href}: a tcp:// URL has no path, query or fragment`);
  }
  return { host, port };
}

/** Formats an address as a tcp:// URL. */
export function tcpUrl(address: string | undefined, port: number | undefined): string {
  const host = address && net.isIPv6(address) ? `[${address}]` : (address ?? "?");
  return `tcp://${host}:${port ?? 0}`;
}

/** TCP over IPv4 and IPv6, Nagle off (frames are coalesced by the writer instead). */
export const tcpTransport: Transport = {
  scheme: "tcp",

  async listen(url: URL, options: ListenOptions): Promise<Listener> {
    const { host, port } = parseTcpUrl(url);
    const resolved = resolveConnectionOptions(options);
    const server = net.createServer({ noDelay: true });
    await listenAt(server, { host, port, backlog: options.backlog ?? 511 }, url.href);
    const addr = server.address() as net.AddressInfo;
    const listener = new StreamListener(
      tcpUrl(addr.address, addr.port),
      resolved,
      () => netClose(server),
      options.upgrade,
    );
    server.on("connection", (socket) => {
      markReleasesChunks(socket);
      listener.accept(
        socket,
        tcpUrl(socket.localAddress, socket.localPort),
        tcpUrl(socket.remoteAddress, socket.remotePort),
      );
    });
    server.on("error", (err) => listener.emit("error", err));
    return listener;
  },

  async dial(url: URL, options: DialOptions): Promise<Connection> {
    const { host, port } = parseTcpUrl(url);
    const resolved = resolveConnectionOptions(options);
    const socket = await netConnect(
      { host, port, noDelay: true },
      url.href,
      options.connectTimeoutMs ?? 10_000,
      options.signal,
    );
    return dialledConnection(
      socket,
      tcpUrl(socket.localAddress, socket.localPort),
      tcpUrl(socket.remoteAddress, socket.remotePort),
      resolved,
      options.upgrade,
    );
  },
};
