import { Duplex } from "node:stream";
import { EzipcError } from "../errors.js";
import { dialledConnection, resolveConnectionOptions } from "./stream-connection.js";
import { StreamListener } from "./stream-listener.js";
import type { Connection, DialOptions, Listener, ListenOptions, Transport } from "./types.js";

/**
 * One end of an in-memory byte pipe. Writes land in the peer's read buffer; a write's callback waits until
 * the peer reads, so backpressure behaves as on a socket. Destroying one end ends the other without a
 * close frame, as a killed process would.
 */
export class MemoryEnd extends Duplex {
  peer!: MemoryEnd;
  private blockedWrite: (() => void) | null = null;

  override _write(chunk: Buffer, _enc: BufferEncoding, callback: (error?: Error | null) => void): void {
    const peer = this.peer;
    if (peer.destroyed || peer.readableEnded) {
      callback(Object.assign(new Error("write EPIPE"), { code: "EPIPE" }));
      return;
    }
    if (peer.push(chunk)) callback();
    else peer.blockedWrite = () => callback();
  }

  override _read(): void {
    const release = this.blockedWrite;
    if (release) {
      this.blockedWrite = null;
      release();
    }
  }

  override _final(callback: (error?: Error | null) => void): void {
    if (!this.peer.destroyed) this.peer.push(null);
    callback();
  }

  override _destroy(error: Error | null, callback: (error?: Error | null) => void): void {
    const peer = this.peer;
    if (!peer.destroyed && !peer.readableEnded) peer.push(null);
    this.blockedWrite = null;
    peer.blockedWrite?.();
    callback(error);
  }
}

/** Two connected in-memory ends. */
export function memoryPipe(): [MemoryEnd, MemoryEnd] {
  const a = new MemoryEnd();
  const b = new MemoryEnd();
  a.peer = b;
  b.peer = a;
  return [a, b];
}

const listeners = new Map<string, StreamListener>();
let dialCount = 0;

function nameOf(url: URL): string {
  const name = url.host + url.pathname;
  if (!name || url.search || url.hash) {
    throw new EzipcError("EZIPC_INVALID_URL", `${url.href}: expected memory://name`);
  }
  return name;
}

/**
 * @internal Opens a raw byte stream to the listener `memory://name` (tests write bytes by hand with it).
 * Throws `EZIPC_CONNECTION_REFUSED` when nothing listens there.
 */
export function dialMemoryRaw(name: string): MemoryEnd {
  const listener = listeners.get(name);
  if (!listener) throw new EzipcError("EZIPC_CONNECTION_REFUSED", `memory://${name}: no listener`);
  const [client, server] = memoryPipe();
  listener.accept(server, `memory://${name}`, `memory://${name}#raw${++dialCount}`);
  return client;
}

/**
 * In-process pairs for tests and for embedding both ends in one process: `memory://name`. The bytes take
 * the same path as on a socket (framing, coalescing, heartbeats), without a system call.
 */
export const memoryTransport: Transport = {
  scheme: "memory",

  async listen(url: URL, options: ListenOptions): Promise<Listener> {
    const name = nameOf(url);
    if (listeners.has(name)) {
      throw new EzipcError("EZIPC_ADDRESS_IN_USE", `listen ${url.href}: a listener exists with that name`);
    }
    const bound = `memory://${name}`;
    const listener = new StreamListener(
      bound,
      resolveConnectionOptions(options),
      async () => {
        listeners.delete(name);
      },
      options.upgrade,
    );
    listeners.set(name, listener);
    return listener;
  },

  async dial(url: URL, options: DialOptions): Promise<Connection> {
    const name = nameOf(url);
    const resolved = resolveConnectionOptions(options);
    if (options.signal?.aborted) {
      throw new EzipcError("EZIPC_CONNECT_ABORTED", `dial ${url.href} aborted`, {
        cause: options.signal.reason,
      });
    }
    await Promise.resolve(); // a dial is never synchronous, on any transport
    if (options.signal?.aborted) {
      throw new EzipcError("EZIPC_CONNECT_ABORTED", `dial ${url.href} aborted`, {
        cause: options.signal.reason,
      });
    }
    const listener = listeners.get(name);
    if (!listener) throw new EzipcError("EZIPC_CONNECTION_REFUSED", `dial ${url.href}: no listener`);
    const [client, server] = memoryPipe();
    const bound = `memory://${name}`;
    const clientUrl = `${bound}#${++dialCount}`;
    listener.accept(server, bound, clientUrl);
    return dialledConnection(client, clientUrl, bound, resolved, options.upgrade);
  },
};
