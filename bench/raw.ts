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

/**
 * Calls `onFrame` with each length-prefixed frame arriving on `socket`, as a good hand-written receiver
 * does: frames whole in a chunk are views (no copy); only a frame split across chunks is copied, once, into
 * a buffer of its size (never the rest of the chunk).
 */
export function rawFrames(socket: net.Socket, onFrame: (f: Buffer) => void): void {
  const head = Buffer.allocUnsafe(4);
  let headFill = 0;
  let body: Buffer | null = null;
  let bodyFill = 0;
  socket.on("data", (chunk: Buffer) => {
    const end = chunk.length;
    let pos = 0;
    while (pos < end) {
      if (body !== null) {
        const take = Math.min(body.length - bodyFill, end - pos);
        chunk.copy(body, bodyFill, pos, pos + take);
        bodyFill += take;
        pos += take;
        if (bodyFill === body.length) {
          const f = body;
          body = null;
          onFrame(f);
        }
        continue;
      }
      if (headFill > 0 || end - pos < 4) {
        while (headFill < 4 && pos < end) head[headFill++] = chunk[pos++]!;
        if (headFill < 4) return;
        headFill = 0;
        body = Buffer.allocUnsafe(head.readUInt32BE(0));
        bodyFill = 0;
        if (body.length === 0) {
          body = null;
          onFrame(Buffer.alloc(0));
        }
        continue;
      }
      const len = chunk.readUInt32BE(pos);
      if (end - pos - 4 >= len) {
        onFrame(chunk.subarray(pos + 4, pos + 4 + len));
        pos += 4 + len;
      } else {
        body = Buffer.allocUnsafe(len);
        bodyFill = 0;
        pos += 4;
      }
    }
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
