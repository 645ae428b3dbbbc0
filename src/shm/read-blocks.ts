/**
 * Memory for the copies a reader makes of a ring. A read copies a run of packets (at most 64 KiB) out of
 * shared memory and its messages are views of that copy. A buffer of its own per read was a large part of a
 * subscriber's work when reads are short (ten subscriber processes on two cores read a few dozen 64 B
 * messages at a time): allocating an ArrayBuffer, accounting for it as external memory, and the collections
 * that free it. Reads are carved one after another out of blocks of {@link READ_BLOCK_BYTES}, as Node's
 * `Buffer.allocUnsafe` carves small buffers out of its pool; a block goes once nothing views it any more.
 *
 * What is handed out is never written again. A kept message keeps its block alive: a subscriber that
 * keeps a few messages out of many for long should copy their payloads.
 */
import { viewAt } from "../views.js";

/** Bytes of one block. */
export const READ_BLOCK_BYTES = 256 * 1024;
/** Copies larger than this get a buffer of their own (a block holds at least four of the largest carved). */
const MAX_CARVED = READ_BLOCK_BYTES / 4;

let block: ArrayBuffer = new ArrayBuffer(0);
let used = READ_BLOCK_BYTES;

/** A buffer of `bytes` bytes for one read's copy (its contents undefined; 8-aligned in its ArrayBuffer). */
export function readBuffer(bytes: number): Buffer {
  if (bytes > MAX_CARVED) return Buffer.allocUnsafe(bytes);
  if (used + bytes > READ_BLOCK_BYTES) {
    block = Buffer.allocUnsafeSlow(READ_BLOCK_BYTES).buffer as ArrayBuffer;
    used = 0;
  }
  const out = viewAt(block, used, bytes);
  used = (used + bytes + 7) & ~7;
  return out;
}
