import { lstat, unlink } from "node:fs/promises";
import net from "node:net";
import path from "node:path";
import { EzipcError } from "../errors.js";
import { listenAt, netClose, netConnect, netListen } from "./net-dial.js";
import { dialledConnection, markReleasesChunks, resolveConnectionOptions } from "./stream-connection.js";
import { StreamListener } from "./stream-listener.js";
import type { Connection, DialOptions, Listener, ListenOptions, Transport } from "./types.js";

/** Longest socket path Linux accepts (sun_path is 108 bytes with the terminating NUL). */
const MAX_PATH_BYTES = 107;

/** `unix:///absolute/path` → the path. */
export function parseUnixUrl(url: URL): string {
  if (url.host !== "" || url.search || url.hash) {
    throw new EzipcError("EZIPC_INVALID_URL", `${url.href}: expected unix:///absolute/path`);
  }
  const p = decodeURIComponent(url.pathname);
  if (!path.isAbsolute(p) || p.endsWith("/")) {
    throw new EzipcError("EZIPC_INVALID_URL", `${url.href}: expected unix:///absolute/path`);
  }
  if (Buffer.byteLength(p) > MAX_PATH_BYTES) {
    throw new EzipcError("EZIPC_INVALID_URL", `${url.href}: socket path over ${MAX_PATH_BYTES} bytes`);
  }
  return p;
}

/** True when something accepts connections at the socket `file`. */
async function isLive(file: string): Promise<boolean> {
  try {
    const s = await netConnect({ path: file }, file, 1_000, undefined);
    s.destroy();
    return true;
  } catch {
    return false;
  }
}

/**
 * Unix domain sockets. Listening replaces the socket file of a dead server (nothing accepts on it) but
 * never a live server's socket (`EZIPC_ADDRESS_IN_USE`) nor a file that is not a socket.
 */
export const unixTransport: Transport = {
  scheme: "unix",

  async listen(url: URL, options: ListenOptions): Promise<Listener> {
    const file = parseUnixUrl(url);
    const resolved = resolveConnectionOptions(options);
    const server = net.createServer();
    const bound = `unix://${file}`;
    try {
      await netListen(server, { path: file, backlog: options.backlog ?? 511 });
    } catch (err) {
      const e = err as NodeJS.ErrnoException;
      if (e.code !== "EADDRINUSE") {
        throw new EzipcError("EZIPC_INVALID_URL", `listen ${url.href}: ${e.code ?? e.message}`, {
          cause: err,
        });
      }
      const st = await lstat(file).catch(() => null);
      if (st && !st.isSocket()) {
        throw new EzipcError(
          "EZIPC_ADDRESS_IN_USE",
          `listen ${url.href}: ${file} exists and is not a socket`,
        );
      }
      if (await isLive(file)) {
        throw new EzipcError("EZIPC_ADDRESS_IN_USE", `listen ${url.href}: a live server is listening there`);
      }
      await unlink(file).catch(() => undefined); // stale socket of a dead server
      await listenAt(server, { path: file, backlog: options.backlog ?? 511 }, url.href);
    }
    let n = 0;
    const listener = new StreamListener(bound, resolved, () => netClose(server), options.upgrade);
    server.on("connection", (socket) => {
      markReleasesChunks(socket);
      listener.accept(socket, bound, `${bound}#${++n}`);
    });
    server.on("error", (err) => listener.emit("error", err));
    return listener;
  },

  async dial(url: URL, options: DialOptions): Promise<Connection> {
    const file = parseUnixUrl(url);
    const resolved = resolveConnectionOptions(options);
    const socket = await netConnect(
      { path: file },
      url.href,
      options.connectTimeoutMs ?? 10_000,
      options.signal,
    );
    return dialledConnection(socket, `unix://${file}#client`, `unix://${file}`, resolved, options.upgrade);
  },
};
