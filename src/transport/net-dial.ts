import net from "node:net";
import { EzipcError } from "../errors.js";

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
  return new Promise((resolve, reject) => {
    if (signal?.aborted) {
      reject(new EzipcError("EZIPC_CONNECT_ABORTED", `dial ${target} aborted`, { cause: signal.reason }));
      return;
    }
    const socket = net.connect(connectOptions);
    const timer = setTimeout(() => {
      finish(new EzipcError("EZIPC_CONNECTION_REFUSED", `dial ${target}: no answer within ${timeoutMs} ms`));
    }, timeoutMs);
    const onAbort = () =>
      finish(new EzipcError("EZIPC_CONNECT_ABORTED", `dial ${target} aborted`, { cause: signal?.reason }));
    const onError = (err: NodeJS.ErrnoException) =>
      finish(
        new EzipcError("EZIPC_CONNECTION_REFUSED", `dial ${target}: ${err.code ?? err.message}`, {
          cause: err,
        }),
      );
    const onConnect = () => finish(null);
    function finish(err: EzipcError | null) {
      clearTimeout(timer);
      signal?.removeEventListener("abort", onAbort);
      socket.off("error", onError);
      socket.off("connect", onConnect);
      if (err) {
        socket.destroy();
        reject(err);
      } else {
        resolve(socket);
      }
    }
    signal?.addEventListener("abort", onAbort, { once: true });
    socket.once("error", onError);
    socket.once("connect", onConnect);
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

/** Closes `server` (stops accepting) and resolves once it has. */
export function netClose(server: net.Server): Promise<void> {
  return new Promise((resolve) => server.close(() => resolve()));
}
