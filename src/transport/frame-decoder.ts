import { EzipcError } from "../errors.js";
import { bufferView } from "../views.js";
import { CONTROL_BIT, ControlType, HEADER_BYTES, MAX_CONTROL_BYTES } from "./frame.js";
import type { BudgetHolder, FrameBudget } from "./frame-budget.js";

/**
 * Receives each decoded frame. `control` is 0 for a data frame, else the {@link ControlType} (then `payload`
 * is the control argument, type byte excluded).
 *
 * `payload` may be a view into the chunk given to {@link FrameDecoder.push}: copy it to keep it beyond the
 * chunk's life if the chunk's memory will be reused (Node's socket chunks are not reused).
 */
export type FrameSink = (payload: Buffer, control: number) => void;

/**
 * Receives a data frame that arrived split across chunks as its pieces, in order: views into those chunks,
 * not joined (see {@link FrameDecoder.push}). `length` is their total.
 */
export type PiecesSink = (pieces: Buffer[], length: number) => void;

/** Split data frames at least this long may be delivered in pieces; shorter ones are joined (cheap). */
export const MIN_PIECES_FRAME_BYTES = 16 * 1024;
/**
 * A frame is delivered in pieces only while the chunks they view take at most twice its length plus this
 * (the first and the last chunk also hold other frames: a 64 KiB frame across two 64 KiB socket reads takes
 * 128 KiB). Beyond, it is joined: what a connection holds for a frame in progress stays within twice
 * maxFrameBytes and 128 KiB, whatever its peer sends.
 */
export const PIECES_SLACK_BYTES = 128 * 1024;

const EMPTY = Buffer.alloc(0);

/**
 * A pure state machine turning a byte stream into frames (see `frame.ts` for the format).
 *
 * - A frame whose bytes are contiguous in one chunk is delivered as a view, without a copy.
 * - A frame split across chunks is reassembled into one buffer allocated at its exact size, and only after
 *   its length was checked against `maxFrameBytes`. Or, when the caller passes a {@link PiecesSink} and
 *   the frame is a data frame of at least {@link MIN_PIECES_FRAME_BYTES}, it is delivered as the views into
 *   the chunks it came in (no copy) — as long as the chunks' memory stays within twice the frame's length
 *   and {@link PIECES_SLACK_BYTES} (else it is joined: memory stays bounded).
 * - Any number of frames in one chunk, and a chunk split at any byte (even inside the header), are handled.
 *
 * A violation throws an {@link EzipcError} (`EZIPC_FRAME_TOO_LARGE` or `EZIPC_PROTOCOL`); after that the
 * decoder is poisoned and every later push throws the same error.
 *
 * With a {@link FrameBudget}, a data frame that does not come whole in one chunk reserves its length in the
 * budget until it is complete (or {@link release}): over the budget, it throws `EZIPC_FRAME_TOO_LARGE`, or
 * another decoder holding a larger frame is cut (`cut`).
 */
export class FrameDecoder {
  /** Frames delivered so far. */
  framesDecoded = 0;

  private readonly header = Buffer.alloc(HEADER_BYTES);
  private headerFill = 0;
  private body: Buffer | null = null;
  private bodyFill = 0;
  private bodyControl = 0;
  /** The pieces of a split data frame delivered as pieces (instead of `body`), and their chunks' memory. */
  private pieces: Buffer[] | null = null;
  private piecesLength = 0;
  private piecesFill = 0;
  private piecesRetained = 0;
  private failed: EzipcError | null = null;

  /** Bytes this decoder holds in its budget (the incomplete frame's length). */
  private reserved = 0;
  private readonly holder: BudgetHolder | null;

  /**
   * `minPiecesBytes`: the shortest split data frame delivered in pieces when a pieces sink is given
   * ({@link MIN_PIECES_FRAME_BYTES}; the tests use less). `budget`: shared with other decoders (see
   * frame-budget.ts); `cut` is called when the budget cuts this one to make room for a smaller frame.
   */
  constructor(
    readonly maxFrameBytes: number,
    private readonly minPiecesBytes = MIN_PIECES_FRAME_BYTES,
    private readonly budget: FrameBudget | null = null,
    cut: (error: EzipcError) => void = () => {},
  ) {
    const self = this;
    this.holder = budget && {
      get reserved() {
        return self.reserved;
      },
      evict(error: EzipcError) {
        self.release(error);
        cut(error);
      },
    };
  }

  /**
   * Drops the incomplete frame and gives its bytes back to the budget (the connection ended). With `error`,
   * every later push throws it.
   */
  release(error?: EzipcError): void {
    if (error) this.failed ??= error;
    this.body = null;
    this.pieces = null;
    this.bodyFill = 0;
    this.piecesFill = 0;
    this.unreserve();
  }

  private unreserve(): void {
    if (this.reserved === 0) return;
    this.budget!.give(this.holder!, this.reserved);
    this.reserved = 0;
  }

  /** Bytes of an incomplete frame buffered so far (bounded by maxFrameBytes + 4). */
  get bufferedBytes(): number {
    return this.headerFill + this.bodyFill + this.piecesFill;
  }

  /**
   * Feeds one chunk; calls `sink` for every frame it completes (or `pieces`, if given, for a long data frame
   * split across chunks). Throws on a protocol violation.
   */
  push(chunk: Buffer, sink: FrameSink, pieces?: PiecesSink): void {
    if (this.failed) throw this.failed;
    const end = chunk.length;
    let pos = 0;

    // Finish a frame begun in an earlier chunk.
    if (this.pieces !== null) {
      pos = this.addPiece(chunk, sink, pieces);
    } else if (this.body !== null) {
      pos = this.fillBody(chunk, 0, sink);
    } else if (this.headerFill > 0) {
      while (this.headerFill < HEADER_BYTES && pos < end) this.header[this.headerFill++] = chunk[pos++]!;
      if (this.headerFill < HEADER_BYTES) return;
      this.headerFill = 0;
      pos = this.begin(this.header.readUInt32BE(0), chunk, pos, sink, pieces);
    }

    // Whole frames contiguous in this chunk: views, no copy.
    while (pos < end) {
      if (end - pos < HEADER_BYTES) {
        while (pos < end) this.header[this.headerFill++] = chunk[pos++]!;
        return;
      }
      const word = chunk.readUInt32BE(pos);
      pos = this.begin(word, chunk, pos + HEADER_BYTES, sink, pieces);
    }
  }

  /** Starts the frame announced by `word`, whose body begins at `pos`; returns the position after it. */
  private begin(word: number, chunk: Buffer, pos: number, sink: FrameSink, pieces?: PiecesSink): number {
    let length: number;
    let control = 0;
    if (word >= CONTROL_BIT) {
      length = word - CONTROL_BIT;
      if (length < 1 || length > MAX_CONTROL_BYTES) {
        this.fail(
          "EZIPC_PROTOCOL",
          `control frame of ${length} bytes (allowed 1..${MAX_CONTROL_BYTES})${this.notEzipc(word)}`,
        );
      }
      control = -1; // type byte not read yet
    } else {
      length = word;
      if (length > this.maxFrameBytes) {
        this.fail(
          "EZIPC_FRAME_TOO_LARGE",
          `frame of ${length} bytes exceeds maxFrameBytes ${this.maxFrameBytes}${this.notEzipc(word)}`,
        );
      }
    }
    const available = chunk.length - pos;
    if (available >= length) {
      this.deliver(length === 0 ? EMPTY : bufferView(chunk, pos, pos + length), control, sink);
      return pos + length;
    }
    if (this.budget !== null && control === 0) {
      const refused = this.budget.take(this.holder!, length);
      if (refused) {
        this.failed = refused;
        throw refused;
      }
      this.reserved = length;
    }
    if (pieces !== undefined && control === 0 && length >= this.minPiecesBytes) {
      this.pieces = available > 0 ? [chunk.subarray(pos)] : [];
      this.piecesLength = length;
      this.piecesFill = available;
      this.piecesRetained = chunk.buffer.byteLength;
      return chunk.length;
    }
    // Split frame: the length was checked above, so this allocation is bounded.
    this.body = Buffer.allocUnsafe(length);
    this.bodyControl = control;
    this.bodyFill = 0;
    return this.fillBody(chunk, pos, sink);
  }

  /** The next piece of a frame being collected in pieces; returns the position after it. */
  private addPiece(chunk: Buffer, sink: FrameSink, piecesSink: PiecesSink | undefined): number {
    const pieces = this.pieces!;
    const length = this.piecesLength;
    const have = this.piecesFill;
    const n = Math.min(length - have, chunk.length);
    if (n === 0) return 0;
    this.piecesRetained += chunk.buffer.byteLength;
    if (piecesSink === undefined || this.piecesRetained > 2 * length + PIECES_SLACK_BYTES) {
      // Too much memory held for the frame (or no one takes pieces now): join what came, go on copying.
      const body = Buffer.allocUnsafe(length);
      let at = 0;
      for (const p of pieces) at += p.copy(body, at);
      this.pieces = null;
      this.piecesFill = 0;
      this.body = body;
      this.bodyFill = at;
      this.bodyControl = 0;
      return this.fillBody(chunk, 0, sink);
    }
    pieces.push(n === chunk.length ? chunk : chunk.subarray(0, n));
    this.piecesFill = have + n;
    if (have + n === length) {
      this.pieces = null;
      this.piecesFill = 0;
      this.unreserve();
      this.framesDecoded++;
      piecesSink(pieces, length);
    }
    return n;
  }

  private fillBody(chunk: Buffer, pos: number, sink: FrameSink): number {
    const body = this.body!;
    const n = Math.min(body.length - this.bodyFill, chunk.length - pos);
    chunk.copy(body, this.bodyFill, pos, pos + n);
    this.bodyFill += n;
    if (this.bodyFill === body.length) {
      this.body = null;
      this.bodyFill = 0;
      this.unreserve();
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

  /**
   * For a stream's very first header: what its bytes were, since a peer of another protocol (an HTTP or
   * TLS server, a NATS server, a browser) fails exactly there. Empty after the first frame.
   */
  private notEzipc(word: number): string {
    if (this.framesDecoded > 0) return "";
    const b = Buffer.alloc(4);
    b.writeUInt32BE(word >>> 0, 0);
    const text = /^[\x20-\x7e]{4}$/.test(b.toString("latin1"))
      ? JSON.stringify(b.toString("latin1"))
      : `0x${b.toString("hex")}`;
    return ` (the first bytes received, ${text}, are not an ezipc frame: does the peer speak ezipc, on this transport?)`;
  }

  private fail(code: "EZIPC_PROTOCOL" | "EZIPC_FRAME_TOO_LARGE", message: string): never {
    this.failed = new EzipcError(code, message);
    throw this.failed;
  }
}
