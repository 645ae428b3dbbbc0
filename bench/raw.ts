/**
 * The raw node:net baselines' framing: a 4-byte big-endian length prefix, parsed and written by hand the
 * way a careful raw-socket user would, with no library in between.
 */
import net from "node:net";

/** A `tcp://host:port` or `unix:///path` URL as node:net options. */
export function netAddress(u: string): net.ListenOptions & net.NetConnectOpts {
  const p = new URL(u);
  if (p.protocol === "unix:") return { path: p.pathname };
  return { host: p.hostname.replace(/^\[|\]$/g, ""), port: Number(p.port) };
}

/** Listens `server` on `url` and resolves with the URL it is bound to (the kernel's port for `:0`). */
export function listenOn(server: net.Server, url: string): Promise<string> {
  return new Promise((resolve, reject) => {
    server.once("error", reject);
    server.listen(netAddress(url), () => {
      const a = server.address();
      resolve(typeof a === "object" && a !== null ? `tcp://127.0.0.1:${a.port}` : url);
    });
  });
}

/** Calls `onFrame` with each length-prefixed frame arriving on `socket`. */
export function rawFrames(socket: net.Socket, onFrame: (f: Buffer) => void): void {
  let pending: Buffer | null = null;
  socket.on("data", (chunk: Buffer) => {
    const buf = pending ? Buffer.concat([pending, chunk]) : chunk;
    let pos = 0;
    while (buf.length - pos >= 4) {
      const len = buf.readUInt32BE(pos);
      if (buf.length - pos - 4 < len) break;
      onFrame(buf.subarray(pos + 4, pos + 4 + len));
      pos += 4 + len;
    }
    pending = pos < buf.length ? buf.subarray(pos) : null;
  });
}

/** One frame, header and payload, in one buffer for one write. */
export function rawFrame(payload: Buffer): Buffer {
  const f = Buffer.allocUnsafe(4 + payload.length);
  f.writeUInt32BE(payload.length, 0);
  payload.copy(f, 4);
  return f;
}

/** Connects with Nagle off; resolves once connected. */
export function rawConnect(url: string): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const s = net.connect({ ...netAddress(url), noDelay: true } as net.NetConnectOpts, () => resolve(s));
    s.once("error", reject);
  });
}
