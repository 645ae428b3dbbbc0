/**
 * `ws://host:port[/path]` and `wss://…` (WebSocket, on the `ws` package): for browsers and for networks
 * that pass only HTTP. A connection is the same {@link StreamConnection} as on tcp:// over a
 * {@link WebSocketStream}: one binary message per frame, same limits, heartbeats and close reasons.
 *
 * A listener is an HTTP(S) server: WebSocket upgrades on any path become connections; other HTTP requests
 * go to the handler set with {@link WsListener.setRequestHandler} (the hub's dashboard and metrics), or get
 * `426 Upgrade Required`. wss:// takes its certificate as tls:// does (`options.tls`, or `cert`/`key`/`ca`
 * files in the URL's query).
 */
import http from "node:http";
import https from "node:https";
import type net from "node:net";
import WebSocket, { WebSocketServer } from "ws";
import { EzipcError } from "../errors.js";
import { log } from "../log.js";
import { listenAt, netClose } from "./net-dial.js";
import { dialledConnection, resolveConnectionOptions } from "./stream-connection.js";
import { StreamListener } from "./stream-listener.js";
import { parseTlsUrl, serverTlsOptions } from "./tls.js";
import type { Connection, DialOptions, Listener, ListenOptions, Transport } from "./types.js";
import { checkAllowOrigins, originAllowed } from "./ws-origins.js";
import { WebSocketStream } from "./ws-stream.js";

/** What a WebSocket message may hold beyond one frame: the Noise layer's record overhead, with room. */
const MESSAGE_SLACK_BYTES = 64 * 1024;

/** `ws://host:port/path` → host, port, path and (wss) certificate files. */
function parseWsUrl(url: URL): {
  host: string;
  port: number;
  path: string;
  files: { cert?: Buffer; key?: Buffer; ca?: Buffer };
} {
  if (url.hash)
    throw new EzipcError("EZIPC_INVALID_URL", `${url.href}: a ${url.protocol}// URL has no fragment`);
  const path = url.pathname || "/";
  const bare = new URL(url.href.replace(/^wss?:/, "tls:"));
  bare.pathname = "/";
  let parsed: ReturnType<typeof parseTlsUrl>;
  try {
    parsed = parseTlsUrl(bare);
  } catch (err) {
    const scheme = url.protocol.slice(0, -1);
    throw new EzipcError(
      "EZIPC_INVALID_URL",
      (err as Error).message.replaceAll("tls://", `${scheme}://`).replace(bare.href, url.href),
      { cause: err },
    );
  }
  const { host, port, files } = parsed;
  if (url.protocol === "ws:" && Object.keys(files).length > 0) {
    throw new EzipcError("EZIPC_INVALID_URL", `${url.href}: certificate files are for wss://`);
  }
  return { host, port, path, files };
}

function wsUrl(scheme: string, address: string | undefined, port: number | undefined, path = "/"): string {
  const host = address?.includes(":") ? `[${address}]` : (address ?? "?");
  return `${scheme}://${host}:${port ?? 0}${path === "/" ? "" : path}`;
}

/** A ws:// listener: a {@link StreamListener} that is also an HTTP server. */
export class WsListener extends StreamListener {
  private handler: http.RequestListener | null = null;

  /**
   * Serves plain HTTP requests on the listener's port (WebSocket upgrades are not passed to it). Without a
   * handler they get `426 Upgrade Required`.
   */
  setRequestHandler(handler: http.RequestListener | null): void {
    this.handler = handler;
  }

  /** @internal */
  onRequest(req: http.IncomingMessage, res: http.ServerResponse): void {
    if (this.handler) {
      this.handler(req, res);
      return;
    }
    res.writeHead(426, { "content-type": "text/plain", upgrade: "websocket" });
    res.end("ezipc: this address takes WebSocket connections\n");
  }
}

function wsTransport(scheme: "ws" | "wss"): Transport {
  return {
    scheme,

    async listen(url: URL, options: ListenOptions): Promise<Listener> {
      const { host, port, path, files } = parseWsUrl(url);
      const resolved = resolveConnectionOptions(options);
      checkAllowOrigins(options.allowOrigins);
      const allowOrigins = [...(options.allowOrigins ?? [])];
      // A socket that does not finish its HTTP request (the WebSocket upgrade) within heartbeatTimeoutMs is
      // dropped, checked every second: a flood of half-open requests costs bounded memory.
      const silenceMs = resolved.heartbeatTimeoutMs > 0 ? resolved.heartbeatTimeoutMs : 15_000;
      const httpOptions = {
        headersTimeout: silenceMs,
        requestTimeout: silenceMs,
        connectionsCheckingInterval: Math.min(1_000, silenceMs),
      };
      const server =
        scheme === "wss"
          ? https.createServer({ ...httpOptions, ...serverTlsOptions(url, files, options.tls) })
          : http.createServer(httpOptions);
      const maxMessageBytes = resolved.maxFrameBytes + 4 + MESSAGE_SLACK_BYTES;
      const wss = new WebSocketServer({
        server,
        perMessageDeflate: false,
        maxPayload: maxMessageBytes,
        // A page of another site is refused before anything is read from it (ws-origins.ts).
        verifyClient: (info, done) => {
          if (originAllowed(info.origin, info.req.headers.host, scheme === "wss", allowOrigins)) {
            done(true);
            return;
          }
          log("warn", "transport", "WebSocket refused: origin not allowed", {
            url: url.href,
            origin: info.origin,
            from: info.req.socket.remoteAddress,
          });
          done(false, 403, "Forbidden: origin not allowed (allowOrigins, ezipc serve --allow-origin)");
        },
      });
      await listenAt(server, { host, port, backlog: options.backlog ?? 511 }, url.href);
      const addr = server.address() as net.AddressInfo;
      const listener = new WsListener(
        wsUrl(scheme, addr.address, addr.port, path),
        resolved,
        async () => {
          wss.close();
          server.closeAllConnections?.();
          await netClose(server);
        },
        options.upgrade,
      );
      server.on("request", (req, res) => listener.onRequest(req, res));
      wss.on("connection", (ws, req) => {
        const socket = req.socket;
        (socket as net.Socket).setNoDelay?.(true);
        listener.accept(
          new WebSocketStream(ws, options.upgrade ? "bytes" : "frames", maxMessageBytes),
          wsUrl(scheme, socket.localAddress, socket.localPort, req.url),
          wsUrl(scheme, socket.remoteAddress, socket.remotePort),
        );
      });
      wss.on("error", (err) => listener.emit("error", err));
      server.on("error", (err) => listener.emit("error", err));
      return listener;
    },

    async dial(url: URL, options: DialOptions): Promise<Connection> {
      const { files } = parseWsUrl(url);
      const resolved = resolveConnectionOptions(options);
      const target = new URL(url.href);
      target.search = "";
      const timeoutMs = options.connectTimeoutMs ?? 10_000;
      const maxMessageBytes = resolved.maxFrameBytes + 4 + MESSAGE_SLACK_BYTES;
      const ws = new WebSocket(target.href, {
        perMessageDeflate: false,
        maxPayload: maxMessageBytes,
        handshakeTimeout: timeoutMs,
        ...(scheme === "wss" ? { ...files, ...options.tls } : {}),
      });
      // The stream takes the socket over in the same tick as `open` (see WebSocketStream's constructor).
      const stream = await new Promise<WebSocketStream>((resolve, reject) => {
        const fail = (err: EzipcError) => {
          options.signal?.removeEventListener("abort", onAbort);
          ws.removeAllListeners("open");
          ws.on("error", () => {});
          ws.terminate();
          reject(err);
        };
        const onAbort = () => fail(new EzipcError("EZIPC_CONNECT_ABORTED", `${url.href}: dial aborted`));
        if (options.signal?.aborted) return onAbort();
        options.signal?.addEventListener("abort", onAbort, { once: true });
        ws.once("open", () => {
          options.signal?.removeEventListener("abort", onAbort);
          ws.removeAllListeners("error");
          resolve(new WebSocketStream(ws, options.upgrade ? "bytes" : "frames", maxMessageBytes));
        });
        ws.once("error", (err: Error & { code?: string }) => {
          const what = `${err.code ?? ""} ${err.message}`;
          const auth = /certificate|self.signed|CERT_|unable to verify/i.test(what);
          // The server answered, but not with HTTP (a tcp:// port) or not with TLS (wss:// to a ws:// port).
          const hint = /Parse Error|HPE_/i.test(what)
            ? " (the server did not answer HTTP: a tcp:// or unix:// address?)"
            : /wrong.version.number/i.test(what)
              ? " (the server did not answer TLS: a ws:// address?)"
              : "";
          fail(
            new EzipcError(
              auth ? "EZIPC_AUTH" : "EZIPC_CONNECTION_REFUSED",
              `${url.href}: ${err.message.split("\n")[0]!.trim()}${hint}`,
              { cause: err },
            ),
          );
        });
        ws.once("unexpected-response", (_req, res) =>
          fail(
            new EzipcError(
              "EZIPC_CONNECTION_REFUSED",
              `${url.href}: HTTP ${res.statusCode} instead of a WebSocket`,
            ),
          ),
        );
      });
      const socket = (ws as unknown as { _socket: net.Socket })._socket;
      socket.setNoDelay(true);
      return dialledConnection(
        stream,
        wsUrl(scheme, socket.localAddress, socket.localPort),
        wsUrl(scheme, socket.remoteAddress, socket.remotePort, url.pathname),
        resolved,
        options.upgrade,
      );
    },
  };
}

export const webSocketTransport: Transport = wsTransport("ws");
export const secureWebSocketTransport: Transport = wsTransport("wss");
