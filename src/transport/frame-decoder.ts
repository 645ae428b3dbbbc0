import { EzipcError } from "../errors.js";
import { CONTROL_BIT, ControlType, HEADER_BYTES, MAX_CONTROL_BYTES } from "./frame.js";

/**
 * Receives each decoded frame. `control` is 0 for a data frame, else the {@link ControlType} (then `payload`
 * is the control argument, type byte excluded).
 *
 * `payload` may be a view into the chunk given to {@link FrameDecoder.push}: copy it to keep it beyond the
 * chunk's life if the chunk's memory will be reused (Node's socket chunks are not reused).
 */
export type FrameSink = (payload: Buffer, control: number) => void;

const EMPTY = Buffer.alloc(0);

/**
 * A pure state machine turning a byte stream into frames (see `frame.ts` for the format).
 *
 * - A frame whose bytes are contiguous in one chunk is delivered as a view, without a copy.
 * - A frame split across chunks is reassembled into one buffer allocated at its exact size, and only after
 *   its length was checked against `maxFrameBytes`.
 * - Any number of frames in one chunk, and a chunk split at any byte (even inside the header), are handled.
 *
 * A violation throws an {@link EzipcError} (`EZIPC_FRAME_TOO_LARGE` or `EZIPC_PROTOCOL`); after that the
 * decoder is poisoned and every later push throws the same error.
 */
export class FrameDecoder {
  /** Frames delivered so far. */
  framesDecoded = 0;

  private readonly header = Buffer.alloc(HEADER_BYTES);
  private headerFill = 0;
  private body: Buffer | null = null;
  private bodyFill = 0;
  private bodyControl = 0;
  private failed: EzipcError | null = null;

  constructor(readonly maxFrameBytes: number) {}

  /** Bytes of an incomplete frame buffered so far (bounded by maxFrameBytes + 4). */
  get bufferedBytes(): number {
    return this.headerFill + this.bodyFill;
  }

  /** Feeds one chunk; calls `sink` for every frame it completes. Throws on a protocol violation. */
  push(chunk: Buffer, sink: FrameSink): void {
    if (this.failed) throw this.failed;
    const end = chunk.length;
    let pos = 0;

    // Finish a frame begun in an earlier chunk.
    if (this.body !== null) {
      pos = this.fillBody(chunk, 0, sink);
    } else if (this.headerFill > 0) {
      while (this.headerFill < HEADER_BYTES && pos < end) this.header[this.headerFill++] = chunk[pos++]!;
      if (this.headerFill < HEADER_BYTES) return;
      this.headerFill = 0;
      pos = this.begin(this.header.readUInt32BE(0), chunk, pos, sink);
    }

    // Whole frames contiguous in this chunk: views, no copy.
    while (pos < end) {
      if (end - pos < HEADER_BYTES) {
        while (pos < end) this.header[this.headerFill++] = chunk[pos++]!;
        return;
      }
      const word = chunk.readUInt32BE(pos);
      pos = this.begin(word, chunk, pos + HEADER_BYTES, sink);
    }
  }

  /** Starts the frame announced by `word`, whose body begins at `pos`; returns the position after it. */
  private begin(word: number, chunk: Buffer, pos: number, sink: FrameSink): number {
    let length: number;
    let control = 0;
    if (word >= CONTROL_BIT) {
      length = word - CONTROL_BIT;
      if (length < 1 || length > MAX_CONTROL_BYTES) {
        this.fail("EZIPC_PROTOCOL", `control frame of ${length} bytes (allowed 1..${MAX_CONTROL_BYTES})`);
      }
      control = -1; // type byte not read yet
    } else {
      length = word;
      if (length > this.maxFrameBytes) {
        this.fail(
          "EZIPC_FRAME_TOO_LARGE",
          `frame of ${length} bytes exceeds maxFrameBytes ${this.maxFrameBytes}`,
        );
      }
    }
    const available = chunk.length - pos;
    if (available >= length) {
      this.deliver(length === 0 ? EMPTY : chunk.subarray(pos, pos + length), control, sink);
      return pos + length;
    }
    // Split frame: the length was checked above, so this allocation is bounded.
    this.body = Buffer.allocUnsafe(length);
    this.bodyControl = control;
    this.bodyFill = 0;
    return this.fillBody(chunk, pos, sink);
  }

  private fillBody(chunk: Buffer, pos: number, sink: FrameSink): number {
    const body = this.body!;
    const n = Math.min(body.length - this.bodyFill, chunk.length - pos);
    chunk.copy(body, this.bodyFill, pos, pos + n);
    this.bodyFill += n;
    if (this.bodyFill === body.length) {
      this.body = null;
      this.bodyFill = 0;
      this.deliver(body, this.bodyControl, sink);
    }
    return pos + n;
  }

  private deliver(body: Buffer, control: number, sink: FrameSink): void {
    this.framesDecoded++;
    if (control === 0) {
      sink(body, 0);
      return;
    }
    const type = body[0]!;
    if (type !== ControlType.PING && type !== ControlType.PONG && type !== ControlType.CLOSE) {
      this.fail("EZIPC_PROTOCOL", `unknown control frame type ${type}`);
    }
    sink(body.subarray(1), type);
  }

  private fail(code: "EZIPC_PROTOCOL" | "EZIPC_FRAME_TOO_LARGE", message: string): never {
    this.failed = new EzipcError(code, message);
    throw this.failed;
  }
}
