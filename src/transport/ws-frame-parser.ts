/**
 * The receiving half of a WebSocket (RFC 6455 §5) as a pure state machine, for ws:// connections once the
 * `ws` library has done the HTTP upgrade (src/transport/ws-stream.ts). ezipc reads a WebSocket as a byte
 * stream — the payloads of its binary messages, in order, whatever their boundaries — so this parser
 * hands on payload bytes, not messages: it unmasks each chunk in place and moves the payloads together
 * over the frame headers, so that one socket read becomes one run of bytes with no allocation and no
 * per-message event (the per-message work of a general WebSocket library is most of the cost of small
 * frames).
 *
 * It enforces what RFC 6455 asks of a receiver that negotiated no extension: RSV bits clear, known
 * opcodes, masked frames from a client and unmasked ones from a server, control frames unfragmented and at
 * most 125 bytes, continuations only inside a fragmented message. A text message is refused (ezipc is
 * binary), as is a message over `maxMessageBytes`. A violation throws an EzipcError (`EZIPC_PROTOCOL` or
 * `EZIPC_FRAME_TOO_LARGE`) and poisons the parser.
 */
import { EzipcError } from "../errors.js";

/** What the parser finds. Payload buffers are views into the chunk given to {@link WsFrameParser.push}. */
export interface WsSink {
  /** Payload bytes of binary messages (continuations included), in order. */
  data(bytes: Buffer): void;
  ping(payload: Buffer): void;
  pong(payload: Buffer): void;
  /** A close frame: its status code (1005 when it has none) and reason. Nothing follows it. */
  close(code: number, reason: string): void;
}

const OP_CONTINUATION = 0;
const OP_TEXT = 1;
const OP_BINARY = 2;
const OP_CLOSE = 8;
const OP_PING = 9;
const OP_PONG = 10;

const EMPTY = Buffer.alloc(0);

/**
 * RFC 6455 §5.3 masking (its own inverse): `n` bytes of `src` from `from` XORed with the key k0..k3, written
 * to `dst` from `to` (`dst` may be `src` with `to` ≤ `from`). Shared by the sender (ws-stream.ts) and the
 * parser.
 */
export function applyMask(
  src: Buffer,
  from: number,
  dst: Buffer,
  to: number,
  n: number,
  k0: number,
  k1: number,
  k2: number,
  k3: number,
): void {
  let i = 0;
  for (; i + 4 <= n; i += 4) {
    dst[to + i] = src[from + i]! ^ k0;
    dst[to + i + 1] = src[from + i + 1]! ^ k1;
    dst[to + i + 2] = src[from + i + 2]! ^ k2;
    dst[to + i + 3] = src[from + i + 3]! ^ k3;
  }
  for (; i < n; i++) dst[to + i] = src[from + i]! ^ (i % 4 === 0 ? k0 : i % 4 === 1 ? k1 : k2);
}

const DECODER = new TextDecoder("utf-8", { fatal: true });

export class WsFrameParser {
  /** Header bytes of the frame being read (at most 14), and how many are in. */
  private readonly head = Buffer.alloc(14);
  private headFill = 0;
  /** Payload bytes of the current frame still to come. */
  private remaining = 0;
  private opcode = 0;
  private masked = false;
  private readonly mask = Buffer.alloc(4);
  /** Payload bytes of the current frame read so far (the mask's phase). */
  private done = 0;
  /** Inside a fragmented binary message (a frame without FIN came). */
  private fragmented = false;
  /** Bytes of the current message so far. */
  private messageBytes = 0;
  /** A control frame's payload, gathered when it spans chunks. */
  private control: Buffer = EMPTY;
  private closed = false;
  private failure: EzipcError | null = null;

  constructor(
    private readonly options: {
      /** A server reads masked frames (from clients); a client unmasked ones. */
      readonly expectMasked: boolean;
      /** Largest message accepted. */
      readonly maxMessageBytes: number;
    },
  ) {}

  /**
   * Reads `chunk`, which it modifies in place (unmasked, payloads moved together): the caller must not use
   * it afterwards except through what the sink is given. Throws on a violation.
   */
  push(chunk: Buffer, sink: WsSink): void {
    if (this.failure) throw this.failure;
    if (this.closed) return; // nothing counts after a close frame
    /** Where the next payload byte goes in `chunk` (always at or before the read position). */
    let out = 0;
    let pos = 0;
    const len = chunk.length;
    while (pos < len) {
      if (!this.inFrame) {
        // At a frame boundary: read its header (perhaps across chunks).
        pos = this.readHead(chunk, pos);
        if (!this.inFrame) break; // the header continues in the next chunk
        if (this.remaining === 0) {
          out = this.endFrame(chunk, out, sink);
          if (this.closed) return;
          continue;
        }
      }
      const n = Math.min(this.remaining, len - pos);
      if (this.opcode === OP_BINARY || this.opcode === OP_CONTINUATION) {
        this.unmaskTo(chunk, pos, out, n);
        out += n;
      } else {
        const bytes = Buffer.from(chunk.subarray(pos, pos + n));
        if (this.masked) this.unmaskIn(bytes);
        this.control = this.control.length === 0 ? bytes : Buffer.concat([this.control, bytes]);
      }
      this.done += n;
      this.remaining -= n;
      pos += n;
      if (this.remaining === 0) {
        out = this.endFrame(chunk, out, sink);
        if (this.closed) return;
      }
    }
    if (out > 0) sink.data(chunk.subarray(0, out));
  }

  /** Between a frame's header and the end of its payload. */
  private inFrame = false;

  /** Reads header bytes from `pos`; once the header is whole, starts the frame. Returns the new position. */
  private readHead(chunk: Buffer, pos: number): number {
    const h = this.head;
    while (pos < chunk.length) {
      h[this.headFill++] = chunk[pos++]!;
      if (this.headFill < 2) continue;
      const len7 = h[1]! & 0x7f;
      const need = 2 + (len7 === 126 ? 2 : len7 === 127 ? 8 : 0) + (h[1]! & 0x80 ? 4 : 0);
      if (this.headFill < need) continue;
      this.startFrame();
      return pos;
    }
    return pos;
  }

  private startFrame(): void {
    const h = this.head;
    this.headFill = 0;
    const b0 = h[0]!;
    const b1 = h[1]!;
    const fin = (b0 & 0x80) !== 0;
    const opcode = b0 & 0x0f;
    if (b0 & 0x70)
      this.fail("EZIPC_PROTOCOL", "a WebSocket frame with reserved bits set (no extension was agreed)");
    const masked = (b1 & 0x80) !== 0;
    if (masked !== this.options.expectMasked) {
      this.fail(
        "EZIPC_PROTOCOL",
        masked ? "a masked WebSocket frame from the server" : "an unmasked WebSocket frame from a client",
      );
    }
    const len7 = b1 & 0x7f;
    let length: number;
    let at = 2;
    if (len7 === 126) {
      length = h.readUInt16BE(2);
      at = 4;
    } else if (len7 === 127) {
      const high = h.readUInt32BE(2);
      if (high > 0x1fffff) this.fail("EZIPC_FRAME_TOO_LARGE", "a WebSocket frame over 2^53 bytes");
      length = high * 2 ** 32 + h.readUInt32BE(6);
      at = 10;
    } else length = len7;
    if (masked) h.copy(this.mask, 0, at, at + 4);
    if (opcode >= OP_CLOSE) {
      if (opcode !== OP_CLOSE && opcode !== OP_PING && opcode !== OP_PONG)
        this.fail("EZIPC_PROTOCOL", `unknown WebSocket control opcode ${opcode}`);
      if (!fin) this.fail("EZIPC_PROTOCOL", "a fragmented WebSocket control frame");
      if (length > 125) this.fail("EZIPC_PROTOCOL", "a WebSocket control frame over 125 bytes");
    } else if (opcode === OP_TEXT) {
      this.fail("EZIPC_PROTOCOL", "a text WebSocket message (ezipc takes binary messages only)");
    } else if (opcode === OP_BINARY) {
      if (this.fragmented) this.fail("EZIPC_PROTOCOL", "a new WebSocket message inside a fragmented one");
      this.messageBytes = 0;
      this.fragmented = !fin;
    } else if (opcode === OP_CONTINUATION) {
      if (!this.fragmented) this.fail("EZIPC_PROTOCOL", "a WebSocket continuation frame outside a message");
      this.fragmented = !fin;
    } else {
      this.fail("EZIPC_PROTOCOL", `unknown WebSocket opcode ${opcode}`);
    }
    if (opcode < OP_CLOSE) {
      this.messageBytes += length;
      if (this.messageBytes > this.options.maxMessageBytes) {
        this.fail(
          "EZIPC_FRAME_TOO_LARGE",
          `a WebSocket message over ${this.options.maxMessageBytes} bytes (the frame limit)`,
        );
      }
    }
    this.opcode = opcode;
    this.masked = masked;
    this.remaining = length;
    this.done = 0;
    this.inFrame = true;
  }

  /** The current frame is whole: dispatch a control frame. Returns the output position (data flushed before a close). */
  private endFrame(chunk: Buffer, out: number, sink: WsSink): number {
    this.inFrame = false;
    const opcode = this.opcode;
    if (opcode < OP_CLOSE) return out;
    const payload = this.control;
    this.control = EMPTY;
    if (opcode === OP_PING) sink.ping(payload);
    else if (opcode === OP_PONG) sink.pong(payload);
    else {
      if (out > 0) sink.data(chunk.subarray(0, out));
      this.closed = true;
      if (payload.length === 1) this.fail("EZIPC_PROTOCOL", "a WebSocket close frame of one byte");
      let reason = "";
      try {
        reason = DECODER.decode(payload.subarray(2));
      } catch {
        this.fail("EZIPC_PROTOCOL", "a WebSocket close reason that is not UTF-8");
      }
      sink.close(payload.length >= 2 ? payload.readUInt16BE(0) : 1005, reason);
      return 0;
    }
    return out;
  }

  /** Unmasks (or, unmasked, moves) `n` payload bytes from `from` to `to` in `chunk` (`to` ≤ `from`). */
  private unmaskTo(chunk: Buffer, from: number, to: number, n: number): void {
    if (!this.masked) {
      if (to !== from) chunk.copyWithin(to, from, from + n);
      return;
    }
    const m = this.mask;
    const phase = this.done & 3;
    // The mask rotated to this frame position, so byte i takes k[i & 3].
    applyMask(
      chunk,
      from,
      chunk,
      to,
      n,
      m[phase]!,
      m[(phase + 1) & 3]!,
      m[(phase + 2) & 3]!,
      m[(phase + 3) & 3]!,
    );
  }

  /** Unmasks a control payload piece (a copy) at the current phase. */
  private unmaskIn(bytes: Buffer): void {
    for (let i = 0; i < bytes.length; i++) bytes[i] = bytes[i]! ^ this.mask[(this.done + i) & 3]!;
  }

  private fail(code: "EZIPC_PROTOCOL" | "EZIPC_FRAME_TOO_LARGE", message: string): never {
    this.failure = new EzipcError(code, message);
    throw this.failure;
  }
}
