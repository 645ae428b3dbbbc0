/**
 * A WebSocket as the byte stream a {@link StreamConnection} runs over, so that ws:// has the framing,
 * limits, heartbeats, close reasons and backpressure of every other transport.
 *
 * The `ws` library does the HTTP upgrade and the close handshake; once a socket is upgraded this stream
 * reads and writes it itself, because per-message work is most of the cost of small frames:
 * - Sending: each ezipc frame (4-byte header and body, docs/protocol.md) goes out as exactly one binary
 *   WebSocket message, so a browser or any WebSocket peer sees one message per frame; the frames of one
 *   flush are encoded here, back to back, and written to the socket at once (one syscall, no per-message
 *   allocation). Under a stream upgrade (the Noise layer) the bytes are not ezipc frames: each write is one
 *   message.
 * - Receiving: src/transport/ws-frame-parser.ts unmasks each socket read in place and hands on the
 *   binary messages' payloads as one run of bytes, so a frame split over messages or several frames in one
 *   are read as on TCP. A text message or any other violation of RFC 6455 is refused (`EZIPC_PROTOCOL`), a
 *   message over the frame limit closes with `EZIPC_FRAME_TOO_LARGE`; either way the peer gets a CLOSE
 *   frame with the code first. Pings are answered; a close frame is answered and ends the stream.
 * - Backpressure: a write completes at once while the socket takes more (below its high-water mark), else
 *   when it drains, so `writableLength` is what waits behind a full socket; a full readable side pauses
 *   the socket.
 */
import { randomFillSync } from "node:crypto";
import type net from "node:net";
import { Duplex } from "node:stream";
import type WebSocket from "ws";
import { EzipcError } from "../errors.js";
import { ControlType } from "./frame.js";
import { applyMask, WsFrameParser, type WsSink } from "./ws-frame-parser.js";

const CONTROL_BIT = 0x8000_0000;

/** The CLOSE frame a refusing side sends before it drops the WebSocket. */
function closeFrame(error: EzipcError): Buffer {
  let reason = Buffer.from(`${error.code}: ${error.message}`);
  if (reason.length > 255) reason = reason.subarray(0, 255);
  const frame = Buffer.alloc(5 + reason.length);
  frame.writeUInt32BE((CONTROL_BIT + 1 + reason.length) >>> 0, 0);
  frame[4] = ControlType.CLOSE;
  reason.copy(frame, 5);
  return frame;
}

/** Random masking keys, drawn 4 at a time (RFC 6455 §5.3: a fresh, unpredictable key per frame). */
const maskPool = Buffer.alloc(8192);
let maskAt = maskPool.length;

/** Messages to send: slices [bounds[2i], bounds[2i+1]) of one buffer (no Buffer object per message). */
export interface Messages {
  buf: Buffer;
  bounds: ArrayLike<number>;
  /** How many entries of `bounds` are in use (2 per message). */
  count: number;
}

const EMPTY = Buffer.alloc(0);
const whole = (buf: Buffer): Messages => ({ buf, bounds: [0, buf.length], count: 2 });

/** `messages` as binary WebSocket frames, back to back in one buffer. Exported for its byte-level tests. */
export function encodeMessages({ buf, bounds, count }: Messages, mask: boolean): Buffer {
  let size = 0;
  for (let b = 0; b < count; b += 2) {
    const n = bounds[b + 1]! - bounds[b]!;
    size += n + (n > 65535 ? 10 : n > 125 ? 4 : 2) + (mask ? 4 : 0);
  }
  const out = Buffer.allocUnsafe(size);
  let at = 0;
  for (let b = 0; b < count; b += 2) {
    const start = bounds[b]!;
    const n = bounds[b + 1]! - start;
    out[at] = 0x82; // FIN, binary
    const maskBit = mask ? 0x80 : 0;
    if (n > 65535) {
      out[at + 1] = maskBit | 127;
      out.writeUInt32BE(Math.floor(n / 2 ** 32), at + 2);
      out.writeUInt32BE(n >>> 0, at + 6);
      at += 10;
    } else if (n > 125) {
      out[at + 1] = maskBit | 126;
      out.writeUInt16BE(n, at + 2);
      at += 4;
    } else {
      out[at + 1] = maskBit | n;
      at += 2;
    }
    if (!mask) {
      buf.copy(out, at, start, start + n);
      at += n;
      continue;
    }
    if (maskAt + 4 > maskPool.length) {
      randomFillSync(maskPool);
      maskAt = 0;
    }
    const k0 = maskPool[maskAt]!;
    const k1 = maskPool[maskAt + 1]!;
    const k2 = maskPool[maskAt + 2]!;
    const k3 = maskPool[maskAt + 3]!;
    maskAt += 4;
    out[at] = k0;
    out[at + 1] = k1;
    out[at + 2] = k2;
    out[at + 3] = k3;
    at += 4;
    applyMask(buf, start, out, at, n, k0, k1, k2, k3);
    at += n;
  }
  return out;
}

export class WebSocketStream extends Duplex {
  /** Bytes of a frame not complete yet (frames mode: a frame's head and body may come in two writes). */
  private carry: Buffer = EMPTY;
  /** frames()'s scratch: each frame's [start, end), reused from write to write. */
  private bounds = new Uint32Array(0);

  /** The socket under the WebSocket: this stream reads and writes it directly once ws has upgraded it. */
  private readonly socket: net.Socket;
  private readonly parser: WsFrameParser;

  /**
   * Takes over `ws`'s socket for reading (and writing): to be called in the same tick as its `open` /
   * `connection` event, before the socket delivers anything, so that no byte goes to ws's own receiver.
   */
  constructor(
    private readonly ws: WebSocket,
    /** `frames`: one message per ezipc frame; `bytes`: one message per write (under an upgrade). */
    private readonly mode: "frames" | "bytes",
    /** Largest message accepted (`EZIPC_FRAME_TOO_LARGE` beyond). */
    maxMessageBytes: number,
  ) {
    super({ allowHalfOpen: true });
    this.socket = (ws as unknown as { _socket: net.Socket })._socket;
    // A server reads masked frames (from clients); a client reads unmasked ones.
    this.parser = new WsFrameParser({ expectMasked: !this.masked, maxMessageBytes });
    // ws reads the socket through its own 'data' listener; from here on this stream does (ws-frame-parser.ts),
    // and ws keeps the rest: the close handshake, pings it is asked to send, the socket's end and errors.
    for (const l of this.socket.listeners("data")) this.socket.off("data", l as (chunk: Buffer) => void);
    this.socket.on("data", this.onSocketData);
    ws.on("close", () => this.push(null));
    ws.on("error", (err: Error & { code?: string }) => {
      this.destroy(new EzipcError("EZIPC_CONNECTION_RESET", `WebSocket: ${err.message}`, { cause: err }));
    });
  }

  private readonly onSocketData = (chunk: Buffer): void => {
    try {
      this.parser.push(chunk, this.sink);
    } catch (err) {
      this.refuse(err as EzipcError);
    }
  };

  private readonly sink: WsSink = {
    data: (bytes) => {
      if (!this.push(bytes)) this.socket.pause();
    },
    ping: (payload) => {
      if (this.ws.readyState === this.ws.OPEN) this.ws.pong(payload);
    },
    pong: () => {},
    close: (code) => {
      // What ws's receiver does on a close frame: answer it (or, having sent ours, end the socket).
      (this.ws as unknown as { _closeFrameReceived: boolean })._closeFrameReceived = true;
      this.ws.close(code === 1005 ? undefined : code);
    },
  };

  /** Tells the peer why (a CLOSE frame with the code), then drops the WebSocket. */
  private refuse(error: EzipcError): void {
    this.socket.off("data", this.onSocketData);
    if (this.ws.readyState === this.ws.OPEN) {
      this.ws.send(closeFrame(error), { binary: true });
      // And the WebSocket's own close code (RFC 6455 §7.4.1): 1009 message too big, 1002 protocol error.
      this.ws.close(error.code === "EZIPC_FRAME_TOO_LARGE" ? 1009 : 1002);
    }
    this.destroy(error);
  }

  override _read(): void {
    this.socket.resume();
  }

  override _write(chunk: Buffer, _encoding: BufferEncoding, callback: (error?: Error | null) => void): void {
    this.sendAll([chunk], callback);
  }

  override _writev(
    chunks: { chunk: Buffer; encoding: BufferEncoding }[],
    callback: (error?: Error | null) => void,
  ): void {
    this.sendAll(
      chunks.map((c) => c.chunk),
      callback,
    );
  }

  private sendAll(chunks: Buffer[], callback: (error?: Error | null) => void): void {
    if (this.ws.readyState !== this.ws.OPEN) {
      callback(new EzipcError("EZIPC_CONNECTION_CLOSED", "the WebSocket is closed"));
      return;
    }
    // Each chunk's messages as WebSocket frames in one buffer (RFC 6455 §5.2: FIN, binary opcode, length;
    // masked with a fresh random key when this side is the client), the chunks' buffers in one corked
    // write. ws itself only ever writes to the socket for control frames (no compression here), which
    // stay whole between ours.
    const out: Buffer[] = [];
    if (this.mode === "bytes") out.push(encodeMessages(whole(Buffer.concat(chunks)), this.masked));
    else {
      for (const chunk of chunks) {
        const messages = this.frames(chunk);
        if (messages.count > 0) out.push(encodeMessages(messages, this.masked));
      }
    }
    if (out.length === 0) {
      callback();
      return;
    }
    const socket = this.socket;
    if (out.length > 1) socket.cork();
    for (let i = 0; i < out.length - 1; i++) socket.write(out[i]!);
    const below = socket.write(out.at(-1)!);
    if (out.length > 1) socket.uncork();
    // As a net.Socket's own write does: done at once while the socket takes more, else at its drain. So
    // the next writes reach the socket in the same tick (a refusal written just before the stream is
    // destroyed is not held back here and lost), and what waits is counted in this stream's writableLength.
    if (below) callback();
    else {
      const onDrain = () => {
        socket.off("close", onClose);
        callback();
      };
      const onClose = () => {
        socket.off("drain", onDrain);
        callback(new EzipcError("EZIPC_CONNECTION_CLOSED", "the WebSocket closed"));
      };
      socket.once("drain", onDrain);
      socket.once("close", onClose);
    }
  }

  /** Client-to-server frames are masked (RFC 6455 §5.3). */
  private get masked(): boolean {
    return !(this.ws as unknown as { _isServer: boolean })._isServer;
  }

  /**
   * The whole frames in `carry` + `chunk`, as the buffer and each frame's [start, end) in it; what is left
   * of an incomplete one stays in `carry`.
   */
  private frames(chunk: Buffer): Messages {
    const buf = this.carry.length > 0 ? Buffer.concat([this.carry, chunk]) : chunk;
    // Frames are at least 4 bytes: at most len / 4 of them, two bounds each.
    if (this.bounds.length < (buf.length >>> 1) + 2) this.bounds = new Uint32Array((buf.length >>> 1) + 2);
    const bounds = this.bounds;
    const len = buf.length;
    let at = 0;
    let count = 0;
    while (len - at >= 4) {
      const word = ((buf[at]! << 24) | (buf[at + 1]! << 16) | (buf[at + 2]! << 8) | buf[at + 3]!) >>> 0;
      const end = at + 4 + (word >= CONTROL_BIT ? word - CONTROL_BIT : word);
      if (end > len) break;
      bounds[count++] = at;
      bounds[count++] = end;
      at = end;
    }
    this.carry = at === len ? EMPTY : Buffer.from(buf.subarray(at));
    return { buf, bounds, count };
  }

  override _final(callback: (error?: Error | null) => void): void {
    if (this.ws.readyState === this.ws.OPEN) this.ws.close(1000);
    callback();
  }

  override _destroy(error: Error | null, callback: (error?: Error | null) => void): void {
    if (this.ws.readyState !== this.ws.CLOSED) this.ws.terminate();
    callback(error);
  }
}
