import net from "node:net";
import { EzipcError } from "../errors.js";
import { markReleasesChunks } from "./stream-connection.js";

/**
 * Opens a `net.Socket` to `connectOptions` and resolves once connected. Rejects with
 * `EZIPC_CONNECTION_REFUSED` (refused, unreachable, timed out) or `EZIPC_CONNECT_ABORTED` (signal).
 */
export function netConnect(
  connectOptions: net.NetConnectOpts,
  target: string,
  timeoutMs: number,
  signal: AbortSignal | undefined,
): Promise<net.Socket> {
  return openSocket(
    () => {
      const socket = net.connect(connectOptions);
      markReleasesChunks(socket); // (a plain socket: tcp://, unix://)
      return socket;
    },
    "connect",
    target,
    timeoutMs,
    signal,
  );
}

/** TLS error codes that mean the server's certificate was not accepted. */
const CERTIFICATE_ERROR = /CERT|SELF_SIGNED|UNABLE_TO|HOSTNAME|ERR_TLS/;

/**
 * Opens a socket with `open` and resolves once it emits `ready` (`connect`, or `secureConnect` for TLS).
 * Rejects with `EZIPC_CONNECTION_REFUSED` (refused, unreachable, timed out), `EZIPC_CONNECT_ABORTED`
 * (signal) or `EZIPC_AUTH` (a TLS certificate not trusted); the socket is destroyed then.
 */
export function openSocket<S extends net.Socket>(
  open: () => S,
  ready: "connect" | "secureConnect",
  target: string,
  timeoutMs: number,
  signal: AbortSignal | undefined,
): Promise<S> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) {
      reject(new EzipcError("EZIPC_CONNECT_ABORTED", `dial ${target} aborted`, { cause: signal.reason }));
      return;
    }
    const socket = open();
    const timer = setTimeout(() => {
      finish(new EzipcError("EZIPC_CONNECTION_REFUSED", `dial ${target}: no answer within ${timeoutMs} ms`));
    }, timeoutMs);
    const onAbort = () =>
      finish(new EzipcError("EZIPC_CONNECT_ABORTED", `dial ${target} aborted`, { cause: signal?.reason }));
    const onError = (err: NodeJS.ErrnoException) => {
      const untrusted = CERTIFICATE_ERROR.test(err.code ?? "");
      // A TLS handshake answered by something that is not TLS (a tcp:// or ws:// port): say so.
      const notTls = /wrong.version.number/i.test(`${err.code} ${err.message}`);
      const hint =
        ready === "secureConnect" && notTls
          ? " (the server did not answer TLS: a tcp:// or ws:// port?)"
          : "";
      finish(
        new EzipcError(
          untrusted ? "EZIPC_AUTH" : "EZIPC_CONNECTION_REFUSED",
          `dial ${target}: ${untrusted ? "the server's certificate is not trusted: " : ""}${err.code ?? err.message}${hint}`,
          { cause: err },
        ),
      );
    };
    const onReady = () => finish(null);
    function finish(err: EzipcError | null) {
      clearTimeout(timer);
      signal?.removeEventListener("abort", onAbort);
      socket.off("error", onError);
      socket.off(ready, onReady);
      if (err) {
        socket.destroy();
        reject(err);
      } else {
        resolve(socket);
      }
    }
    signal?.addEventListener("abort", onAbort, { once: true });
    socket.once("error", onError);
    socket.once(ready, onReady);
  });
}

/** Starts `server` listening and resolves once it is; rejects with the listen error. */
export function netListen(server: net.Server, options: net.ListenOptions): Promise<void> {
  return new Promise((resolve, reject) => {
    const onError = (err: Error) => {
      server.off("listening", onListening);
      reject(err);
    };
    const onListening = () => {
      server.off("error", onError);
      resolve();
    };
    server.once("error", onError);
    server.once("listening", onListening);
    server.listen(options);
  });
}

/**
 * Starts `server` listening at `options`; rejects with `EZIPC_ADDRESS_IN_USE` or `EZIPC_INVALID_URL`
 * (naming `href`).
 */
export async function listenAt(server: net.Server, options: net.ListenOptions, href: string): Promise<void> {
  try {
    await netListen(server, options);
  } catch (err) {
    const e = err as NodeJS.ErrnoException;
    throw new EzipcError(
      e.code === "EADDRINUSE" ? "EZIPC_ADDRESS_IN_USE" : "EZIPC_INVALID_URL",
      `listen ${href}: ${e.code ?? e.message}`,
      { cause: err },
    );
  }
}

/** Closes `server` (stops accepting) and resolves once it has. */
export function netClose(server: net.Server): Promise<void> {
  return new Promise((resolve) => server.close(() => resolve()));
}
