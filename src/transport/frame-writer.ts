import { CONTROL_BIT, HEADER_BYTES } from "./frame.js";

/** Where a {@link FrameWriter} flushes: a socket, or anything with the same three methods. */
export interface ByteSink {
  write(chunk: Buffer): boolean;
  cork(): void;
  uncork(): void;
  /**
   * Optional: true when every chunk written so far has been handed on (to the operating system) and is
   * referenced no more, so that its memory may be written again. Without it, written bytes are never
   * rewritten.
   */
  idle?(): boolean;
}

/** Frames at or above this size are written as their own chunk (no copy); smaller ones are copied. */
export const COPY_THRESHOLD_BYTES = 16 * 1024;
/** Size of a write segment: small frames are copied into one until it is full or the tick ends. */
export const SEGMENT_BYTES = 64 * 1024;

function asBuffer(bytes: Uint8Array): Buffer {
  return Buffer.isBuffer(bytes) ? bytes : Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}

/**
 * Coalesces frames into few large writes (seed 003's segment buffer).
 *
 * Small frames are copied, header and payload, into a 64 KiB segment; the filled part of the segment is
 * handed to the sink when the segment is full or at {@link flush} (the connection calls it when the
 * current callback returns). Large frames go to the sink as their own chunk behind a header, so a payload is never copied
 * twice; several chunks are written under cork/uncork, which Node turns into one `writev`.
 *
 * A segment is not rewritten while the sink may still hold its bytes: the writer continues after them and
 * allocates a fresh segment when the current one is used up. A sink that tells it is idle after a flush
 * (a socket that took every byte at once, the usual case) has let go of them: the writer then starts
 * the segment over, so a connection that keeps up writes from one segment, warm in the cache, and
 * allocates none.
 */
export class FrameWriter {
  private seg: Buffer = Buffer.allocUnsafe(SEGMENT_BYTES);
  private segStart = 0;
  private segPos = 0;
  private chunks: Buffer[] = [];
  private chunkBytes = 0;

  constructor(private readonly sink: ByteSink) {}

  /** Bytes accepted but not yet handed to the sink. */
  get pendingBytes(): number {
    return this.chunkBytes + (this.segPos - this.segStart);
  }

  /** Whether frames given by reference (not copied) wait to be handed to the sink. */
  get holdsChunks(): boolean {
    return this.chunks.length > 0;
  }

  /**
   * Queues a data frame (`payload`, or its first `length` bytes). Returns the sink's last `write()` result
   * if a flush happened, else true.
   */
  writeData(payload: Uint8Array, length = payload.length): boolean {
    if (length >= COPY_THRESHOLD_BYTES) {
      if (length !== payload.length) payload = payload.subarray(0, length);
      this.reserve(HEADER_BYTES);
      this.seg.writeUInt32BE(length, this.segPos);
      this.segPos += HEADER_BYTES;
      this.cut();
      const chunk = Buffer.isBuffer(payload)
        ? payload
        : Buffer.from(payload.buffer, payload.byteOffset, payload.byteLength);
      this.chunks.push(chunk);
      this.chunkBytes += length;
      return this.flush();
    }
    const flushed = this.reserve(HEADER_BYTES + length);
    const seg = this.seg;
    let p = this.segPos;
    seg[p] = length >>> 24;
    seg[p + 1] = (length >>> 16) & 0xff;
    seg[p + 2] = (length >>> 8) & 0xff;
    seg[p + 3] = length & 0xff;
    p += HEADER_BYTES;
    // A loop only for a few bytes: one `set` takes 15–20 ns at any length up to 128 bytes, where a loop
    // took 135 ns at 64 bytes (measured here, writeData of 64 B frames: 135 → 22 ns).
    if (length <= 8) {
      for (let i = 0; i < length; i++) seg[p + i] = payload[i]!;
    } else {
      seg.set(length === payload.length ? payload : payload.subarray(0, length), p);
    }
    this.segPos = p + length;
    return flushed;
  }

  /**
   * Queues a data frame made of `head` then `body` (then the parts in `more`). `head` is always copied;
   * the body as in {@link writeData}: copied when all its parts together are under
   * {@link COPY_THRESHOLD_BYTES}, else each part its own chunk.
   */
  writeParts(head: Uint8Array, body: Uint8Array, more?: readonly Uint8Array[]): boolean {
    let bodyLength = body.length;
    if (more !== undefined) for (const m of more) bodyLength += m.length;
    const length = head.length + bodyLength;
    if (bodyLength < COPY_THRESHOLD_BYTES) {
      const flushed = this.reserve(HEADER_BYTES + length);
      this.seg.writeUInt32BE(length, this.segPos);
      this.seg.set(head, this.segPos + HEADER_BYTES);
      let at = this.segPos + HEADER_BYTES + head.length;
      this.seg.set(body, at);
      at += body.length;
      if (more !== undefined) {
        for (const m of more) {
          this.seg.set(m, at);
          at += m.length;
        }
      }
      this.segPos = at;
      return flushed;
    }
    this.reserve(HEADER_BYTES + head.length);
    this.seg.writeUInt32BE(length, this.segPos);
    this.seg.set(head, this.segPos + HEADER_BYTES);
    this.segPos += HEADER_BYTES + head.length;
    this.cut();
    this.chunks.push(asBuffer(body));
    if (more !== undefined) for (const m of more) this.chunks.push(asBuffer(m));
    this.chunkBytes += bodyLength;
    return this.flush();
  }

  /** Queues a control frame of `type` with an optional argument (at most MAX_CONTROL_BYTES - 1 bytes). */
  writeControl(type: number, arg?: Uint8Array): void {
    const argLength = arg ? arg.length : 0;
    this.reserve(HEADER_BYTES + 1 + argLength);
    this.seg.writeUInt32BE((CONTROL_BIT + 1 + argLength) >>> 0, this.segPos);
    this.seg[this.segPos + HEADER_BYTES] = type;
    if (arg) this.seg.set(arg, this.segPos + HEADER_BYTES + 1);
    this.segPos += HEADER_BYTES + 1 + argLength;
  }

  /** Hands everything pending to the sink. Returns the sink's last `write()` result (true if nothing). */
  flush(): boolean {
    this.cut();
    const chunks = this.chunks;
    if (chunks.length === 0) return true;
    this.chunks = [];
    this.chunkBytes = 0;
    let ok = true;
    if (chunks.length === 1) ok = this.sink.write(chunks[0]!);
    else {
      this.sink.cork();
      for (const c of chunks) ok = this.sink.write(c);
      this.sink.uncork();
    }
    if (this.sink.idle?.() === true) {
      // Every byte of the segment was taken: it is written again from its start.
      this.segStart = 0;
      this.segPos = 0;
    }
    return ok;
  }

  /** Moves the filled part of the segment to the chunk list. */
  private cut(): void {
    if (this.segPos > this.segStart) {
      const part = this.seg.subarray(this.segStart, this.segPos);
      this.chunks.push(part);
      this.chunkBytes += part.length;
      this.segStart = this.segPos;
    }
  }

  /** Makes room for `n` contiguous bytes, flushing and starting a new segment when needed. */
  private reserve(n: number): boolean {
    if (this.seg.length - this.segPos >= n) return true;
    const ok = this.flush();
    this.seg = Buffer.allocUnsafe(Math.max(SEGMENT_BYTES, n));
    this.segStart = 0;
    this.segPos = 0;
    return ok;
  }
}
