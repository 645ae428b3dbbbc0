/**
 * `udp://host:port`: datagrams, with the seed's lessor and renter (seeds 001). `listen` binds a socket —
 * the *lessor* — and hands a new {@link UdpConnection} — a *renter* sharing that socket — to `connection`
 * when a datagram arrives from an address it has no renter for; `dial` connects a socket to one address,
 * and the kernel drops what other addresses send it. Closing the lessor closes its renters; a renter is
 * closed by its user, by a CLOSE datagram from its peer, or by its heartbeat timeout (UDP itself has no
 * teardown). At most `maxRenters` renters per lessor: datagrams from further addresses are ignored and
 * counted, so a flood of forged source addresses costs bounded memory.
 *
 * One datagram is one frame (src/transport/datagram.ts); what ezipc adds to UDP and what it does not is in
 * docs/transport.md.
 */
import dgram from "node:dgram";
import { EventEmitter } from "node:events";
import net from "node:net";
import { EzipcError } from "../errors.js";
import { log } from "../log.js";
import { KIND_CLOSE, KIND_HANDSHAKE, KIND_HANDSHAKE_REPLY, KIND_REFUSAL, parseDatagram } from "./datagram.js";
import { eventsUntilClosed } from "./events.js";
import { resolveConnectionOptions } from "./stream-connection.js";
import type {
  Connection,
  DatagramSecurity,
  DatagramSession,
  DialOptions,
  Listener,
  ListenerEvents,
  ListenOptions,
  Transport,
  UdpOptions,
} from "./types.js";
import { type DatagramSecuring, type ResolvedUdpOptions, UdpConnection } from "./udp-connection.js";

/** The largest UDP payload over IPv4 (65,535 − 8 − 20). */
export const MAX_DATAGRAM_BYTES = 65_507;
/** Default datagram size: an Ethernet MTU (1500) minus the IPv4 and UDP headers, so nothing is fragmented. */
export const DEFAULT_DATAGRAM_BYTES = 1_472;

function resolveUdp(
  o: UdpOptions = {},
  side: "dial" | "listen",
): ResolvedUdpOptions & { maxRenters: number; secure: DatagramSecurity | null } {
  const r = {
    maxDatagramBytes: o.maxDatagramBytes ?? DEFAULT_DATAGRAM_BYTES,
    sequence: o.sequence ?? false,
    maxRenters: o.maxRenters ?? 1024,
    secure: o.secure ?? null,
  };
  if (r.secure && r.secure.side !== side) {
    throw new TypeError(
      side === "dial"
        ? "udp.secure of dial() is secureDatagramDial({ hubKey, … })"
        : "udp.secure of listen() is secureDatagramListen({ staticKey, … })",
    );
  }
  if (
    !Number.isInteger(r.maxDatagramBytes) ||
    r.maxDatagramBytes < 16 ||
    r.maxDatagramBytes > MAX_DATAGRAM_BYTES
  ) {
    throw new RangeError(`udp.maxDatagramBytes must be an integer 16..${MAX_DATAGRAM_BYTES}`);
  }
  if (!Number.isInteger(r.maxRenters) || r.maxRenters < 1) throw new RangeError("udp.maxRenters must be ≥ 1");
  return r;
}

/** `udp://host:port` → host and port (IPv6 in brackets). */
function parseUdpUrl(url: URL): { host: string; port: number } {
  const host = url.hostname.startsWith("[") ? url.hostname.slice(1, -1) : url.hostname;
  const port = Number(url.port);
  if (!host || url.port === "" || !Number.isInteger(port) || port < 0 || port > 65535) {
    throw new EzipcError("EZIPC_INVALID_URL", `${url.href}: expected udp://host:port`);
  }
  if ((url.pathname && url.pathname !== "/") || url.search || url.hash) {
    throw new EzipcError("EZIPC_INVALID_URL", `${url.href}: a udp:// URL has no path, query or fragment`);
  }
  return { host, port };
}

function udpUrl(address: string, port: number): string {
  return `udp://${net.isIPv6(address) ? `[${address}]` : address}:${port}`;
}

function socketFor(host: string): dgram.Socket {
  return dgram.createSocket({ type: net.isIPv6(host) ? "udp6" : "udp4" });
}

/** Binds `socket`; rejects with `EZIPC_ADDRESS_IN_USE` or `EZIPC_INVALID_URL`. */
function bind(socket: dgram.Socket, host: string, port: number, href: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const onError = (err: NodeJS.ErrnoException) => {
      socket.close();
      reject(
        err.code === "EADDRINUSE" || err.code === "EACCES"
          ? new EzipcError("EZIPC_ADDRESS_IN_USE", `${href}: ${err.message}`, { cause: err })
          : new EzipcError("EZIPC_INVALID_URL", `${href}: ${err.message}`, { cause: err }),
      );
    };
    socket.once("error", onError);
    socket.bind(port, host, () => {
      socket.off("error", onError);
      resolve();
    });
  });
}

/** Counters of a lessor. */
export interface LessorCounters {
  /** Datagrams from a new address ignored because `maxRenters` renters were open. */
  rentersRefused: number;
  /**
   * Datagrams from a new address that were not a valid DATA or PING (no renter is made for them); on an
   * encrypted lessor, anything but a hello, and hellos that did not end in a session (refused, unreadable,
   * over the handshake rate).
   */
  strays: number;
}

/** The lessor: a bound socket whose renters are the connections of the addresses that sent to it. */
export class UdpListener extends EventEmitter<ListenerEvents> implements Listener {
  readonly connections = new Set<Connection>();
  readonly counters: LessorCounters = { rentersRefused: 0, strays: 0 };
  private readonly renters = new Map<string, UdpConnection>();
  private closing: Promise<void> | null = null;
  /** Datagrams the renters handed to the socket and not yet sent; the socket closes once they are out. */
  private sending = 0;
  private flushed: (() => void) | null = null;

  /** @internal */
  constructor(
    private readonly socket: dgram.Socket,
    readonly url: string,
    options: ListenOptions,
  ) {
    super();
    const resolved = resolveConnectionOptions(options);
    const udp = resolveUdp(options.udp, "listen");
    socket.on("message", (msg, rinfo) => {
      const key = `${rinfo.address}|${rinfo.port}`;
      let renter = this.renters.get(key);
      if (!renter) {
        if (this.closing) return;
        const parsed = udp.secure ? null : parseDatagram(msg);
        if (udp.secure ? msg[0] !== KIND_HANDSHAKE : !parsed || parsed.kind === KIND_CLOSE) {
          this.counters.strays++;
          return;
        }
        if (this.renters.size >= udp.maxRenters) {
          this.counters.rentersRefused++;
          return;
        }
        const remote = udpUrl(rinfo.address, rinfo.port);
        let securing: DatagramSecuring | null = null;
        if (udp.secure) {
          // A hello: answered at once; a renter only for a peer the handshake admitted.
          const handshake = udp.secure.begin(remote);
          const step = handshake?.receive(msg);
          if (step?.reply) socket.send(step.reply, rinfo.port, rinfo.address);
          if (!handshake || !step?.session) {
            this.counters.strays++;
            return;
          }
          securing = { session: step.session, handshake };
        }
        const r: UdpConnection = new UdpConnection(
          {
            send: (d, done) => {
              this.sending++;
              socket.send(d, rinfo.port, rinfo.address, (err) => {
                if (--this.sending === 0) this.flushed?.();
                done(err);
              });
            },
            release: () => {
              if (this.renters.get(key) === r) this.renters.delete(key);
              this.connections.delete(r);
            },
          },
          this.url,
          remote,
          resolved,
          udp,
          securing,
        );
        renter = r;
        this.renters.set(key, r);
        this.connections.add(r);
        log("debug", "transport", "renter", { listener: this.url, id: r.id, remote });
        this.emit("connection", r);
        if (securing) return; // the hello was the handshake's
      }
      renter.receive(msg);
    });
    socket.on("error", (err) => this.emit("error", err));
  }

  close(): Promise<void> {
    this.closing ??= (async () => {
      await Promise.all([...this.renters.values()].map((c) => c.close("listener closed")));
      // The renters' CLOSE datagrams go out before the socket closes (bounded: a second at most).
      if (this.sending > 0) {
        await new Promise<void>((resolve) => {
          this.flushed = resolve;
          setTimeout(resolve, 1_000).unref();
        });
      }
      await new Promise<void>((resolve) => this.socket.close(() => resolve()));
      this.emit("close");
    })();
    return this.closing;
  }

  /** Renters, in order, until the lessor closes. */
  [Symbol.asyncIterator](): AsyncIterator<Connection> {
    return eventsUntilClosed<Connection>(this, "connection", () => this.closing !== null);
  }
}

export const udpTransport: Transport = {
  scheme: "udp",

  async listen(url: URL, options: ListenOptions): Promise<Listener> {
    const { host, port } = parseUdpUrl(url);
    resolveUdp(options.udp, "listen");
    if (options.upgrade) {
      throw new EzipcError(
        "EZIPC_NOT_SUPPORTED",
        "udp:// takes no stream upgrade (encrypted datagrams: docs/transport.md)",
      );
    }
    const socket = socketFor(host);
    await bind(socket, host, port, url.href);
    const a = socket.address();
    return new UdpListener(socket, udpUrl(a.address, a.port), options);
  },

  async dial(url: URL, options: DialOptions): Promise<Connection> {
    const { host, port } = parseUdpUrl(url);
    const resolved = resolveConnectionOptions(options);
    const udp = resolveUdp(options.udp, "dial");
    if (options.upgrade) {
      throw new EzipcError(
        "EZIPC_NOT_SUPPORTED",
        "udp:// takes no stream upgrade (encrypted datagrams: docs/transport.md)",
      );
    }
    if (options.signal?.aborted) throw new EzipcError("EZIPC_CONNECT_ABORTED", `dial ${url.href} aborted`);
    const socket = socketFor(host);
    await bind(socket, net.isIPv6(host) ? "::" : "0.0.0.0", 0, url.href);
    await new Promise<void>((resolve, reject) => {
      socket.connect(port, host, (err?: Error) => {
        if (!err) return resolve();
        socket.close();
        reject(new EzipcError("EZIPC_CONNECTION_REFUSED", `${url.href}: ${err.message}`, { cause: err }));
      });
    });
    const local = socket.address();
    const remote = socket.remoteAddress();
    const remoteUrl = udpUrl(remote.address, remote.port);
    let securing: DatagramSecuring | null = null;
    if (udp.secure) {
      try {
        securing = {
          session: await handshake(socket, udp.secure, remoteUrl, options.signal),
          handshake: null,
        };
      } catch (err) {
        socket.close();
        throw err;
      }
    }
    const conn = new UdpConnection(
      {
        send: (d, done) => socket.send(d, done),
        release: () => socket.close(),
      },
      udpUrl(local.address, local.port),
      remoteUrl,
      resolved,
      udp,
      securing,
    );
    socket.on("message", (msg) => conn.receive(msg));
    conn.announce();
    // A connected socket hears ICMP port-unreachable as an error: the peer is not there (yet). Datagrams are
    // not refused: the heartbeat decides when the peer is gone.
    socket.on("error", (err) => log("debug", "transport", "udp socket error", { id: conn.id, error: err }));
    return conn;
  },
};

/**
 * The dialling side of an encrypted connection's handshake on `socket` (connected): the hello, sent again
 * every `retransmitMs` until an answer. Resolves with the session; rejects with `EZIPC_AUTH` (refused: the
 * verdict, or at the timeout the unauthenticated refusal heard), `EZIPC_HANDSHAKE` (no answer within
 * `handshakeTimeoutMs`) or `EZIPC_CONNECT_ABORTED`.
 */
function handshake(
  socket: dgram.Socket,
  security: DatagramSecurity,
  remoteUrl: string,
  signal: AbortSignal | undefined,
): Promise<DatagramSession> {
  const h = security.begin(remoteUrl);
  if (!h?.hello) return Promise.reject(new TypeError("udp.secure of dial() made no hello"));
  const hello = h.hello;
  return new Promise((resolve, reject) => {
    let hint: Error | null = null;
    const send = () =>
      socket.send(hello, (err) => err && log("debug", "transport", "udp hello", { error: err }));
    const resend = setInterval(send, security.retransmitMs);
    const timeout = setTimeout(
      () =>
        end(
          hint ??
            new EzipcError(
              "EZIPC_HANDSHAKE",
              `${remoteUrl}: no answer to the encrypted handshake within ${security.handshakeTimeoutMs} ms`,
            ),
        ),
      security.handshakeTimeoutMs,
    );
    const onAbort = () => end(new EzipcError("EZIPC_CONNECT_ABORTED", `dial ${remoteUrl} aborted`));
    const onMessage = (msg: Buffer) => {
      if (msg[0] !== KIND_HANDSHAKE_REPLY && msg[0] !== KIND_REFUSAL) return;
      const step = h.receive(msg);
      if (step.hint) hint = step.hint;
      if (step.refused) end(step.refused);
      else if (step.session) end(null, step.session);
    };
    function end(err: Error | null, session?: DatagramSession): void {
      clearInterval(resend);
      clearTimeout(timeout);
      socket.off("message", onMessage);
      socket.off("error", onError);
      signal?.removeEventListener("abort", onAbort);
      if (err) reject(err);
      else resolve(session!);
    }
    // A connected socket hears ICMP port-unreachable as an error: nothing listens there (yet). The hello is
    // sent again until the timeout, which reports it if nothing better came.
    const onError = (err: Error) => {
      hint ??= new EzipcError("EZIPC_CONNECTION_REFUSED", `${remoteUrl}: ${err.message}`, { cause: err });
    };
    socket.on("message", onMessage);
    socket.on("error", onError);
    signal?.addEventListener("abort", onAbort, { once: true });
    send();
  });
}
