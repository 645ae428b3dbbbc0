/**
 * Memory for sealed records, reused: a 64 KiB record in a fresh buffer costs an allocation, page faults and
 * a cold cache each time, a measurable part of sealing on a busy encrypted connection. A secure stream over
 * a socket seals its large records into blocks and takes a block back once the socket has flushed the
 * block's bytes to the kernel: everything the socket was handed before the block's end, minus what it still
 * queues (`writableLength`, which counts a write until it completes) — an estimate that can only be late.
 *
 * Only for a `net.Socket` (not TLS): it copies the bytes into the kernel. A stream that passes the buffer
 * itself on (memory://) would see a block rewritten under it.
 *
 * The free blocks are one pool per process, shared by every connection, at most {@link MAX_FREE_BLOCKS}
 * (2 MiB): a hub with many connections keeps no more.
 */
import net from "node:net";
import tls from "node:tls";
import { MAX_RECORD_BYTES } from "./records.js";

/** Records smaller than this get a buffer of their own (cheap, and they would waste a block). */
export const BLOCK_MIN_RECORD_BYTES = 16 * 1024;
/** Free blocks kept at most, per process. */
export const MAX_FREE_BLOCKS = 32;

const free: ArrayBuffer[] = [];

/** Free blocks held now (for tests). */
export function freeRecordBlocks(): number {
  return free.length;
}

/** The blocks of one socket's records, from sealing until the socket has flushed them. */
export class RecordBlocks {
  private blocks: Buffer[] = [];
  private ends: number[] = [];
  private head = 0;
  /** Bytes handed to the socket through {@link written}. */
  private handed = 0;

  private constructor(private readonly socket: net.Socket) {}

  /** Blocks for records written to `stream`, or undefined where reuse would not be safe (not a plain socket). */
  static for(stream: unknown): RecordBlocks | undefined {
    return stream instanceof net.Socket && !(stream instanceof tls.TLSSocket)
      ? new RecordBlocks(stream)
      : undefined;
  }

  /** A buffer of at least `bytes` bytes for one record (a block for a large record); see sealRecords. */
  readonly take = (bytes: number): Buffer => {
    if (bytes < BLOCK_MIN_RECORD_BYTES || bytes > MAX_RECORD_BYTES) return Buffer.allocUnsafe(bytes);
    this.reclaim();
    return Buffer.from(free.pop() ?? new ArrayBuffer(MAX_RECORD_BYTES));
  };

  /** After `records` were written to the socket, in this order. */
  written(records: readonly Buffer[]): void {
    for (const r of records) {
      this.handed += r.length;
      if (r.buffer.byteLength === MAX_RECORD_BYTES && r.byteOffset === 0) {
        this.blocks.push(r);
        this.ends.push(this.handed);
      }
    }
  }

  /** Gives back the blocks the socket has flushed; none once it is destroyed (its writes may be cut short). */
  private reclaim(): void {
    if (this.head === this.blocks.length) return;
    if (this.socket.destroyed) {
      this.blocks = [];
      this.ends = [];
      this.head = 0;
      return;
    }
    const flushed = this.handed - this.socket.writableLength;
    while (this.head < this.blocks.length && this.ends[this.head]! <= flushed) {
      const block = this.blocks[this.head++]!;
      if (free.length < MAX_FREE_BLOCKS) free.push(block.buffer as ArrayBuffer);
    }
    if (this.head === this.blocks.length) {
      this.blocks = [];
      this.ends = [];
      this.head = 0;
    }
  }
}
