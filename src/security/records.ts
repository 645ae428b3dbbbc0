/**
 * The record layer of the secure channel, as pure state machines (no streams), so that it can be tested
 * byte by byte and fuzzed at in-process speed: a record is `u16 BE length · AEAD ciphertext` (length ≤
 * 65,535, the tag included), sealed with the next nonce of the sender's CipherState, and rekeyed every
 * `rekeyInterval` records. channel.ts runs them over a socket.
 */
import { EzipcError } from "../errors.js";
import { type CipherState, MAX_MESSAGE, TAG_BYTES } from "./noise.js";

/** Most plaintext bytes in one record. */
export const MAX_PLAINTEXT = MAX_MESSAGE - TAG_BYTES;

const EMPTY = new Uint8Array(0);
const EMPTY_BUF = Buffer.alloc(0);

/** The most bytes of one record on the wire: its 2-byte length, then at most 65,535 bytes. */
export const MAX_RECORD_BYTES = 2 + MAX_MESSAGE;

/**
 * Seals `chunks` in records of at most {@link MAX_PLAINTEXT} bytes, without joining them first; returns
 * the pieces to write, in order. Throws `EZIPC_PROTOCOL` when the nonces are exhausted.
 *
 * Where the cipher seals in place (the addon's), each record is one buffer, length and tag included,
 * taken from `alloc(bytes)` (default: a new buffer; it may return a larger one) — so a writer can reuse
 * a record's memory once the socket has taken it.
 */
export function sealRecords(
  cs: CipherState,
  chunks: readonly Buffer[],
  rekeyInterval: number,
  alloc: (bytes: number) => Buffer = Buffer.allocUnsafe,
): Buffer[] {
  const out: Buffer[] = [];
  let parts: Buffer[] = [];
  let length = 0;
  const inPlace = cs.sealsInPlace;
  const seal = () => {
    const bytes = 2 + length + TAG_BYTES;
    if (inPlace) {
      const record = alloc(bytes);
      record.writeUInt16BE(length + TAG_BYTES, 0);
      cs.encryptInto(EMPTY, parts, record.subarray(2, bytes));
      out.push(record.length === bytes ? record : record.subarray(0, bytes));
    } else {
      const sealed = cs.encryptParts(EMPTY, parts, length);
      const head = Buffer.allocUnsafe(2);
      head.writeUInt16BE(length + TAG_BYTES, 0);
      out.push(head, ...sealed);
    }
    if (cs.n % rekeyInterval === 0) cs.rekey();
    parts = [];
    length = 0;
  };
  for (const chunk of chunks) {
    for (let pos = 0; pos < chunk.length; ) {
      const take = Math.min(chunk.length - pos, MAX_PLAINTEXT - length);
      parts.push(pos === 0 && take === chunk.length ? chunk : chunk.subarray(pos, pos + take));
      length += take;
      pos += take;
      if (length === MAX_PLAINTEXT) seal();
    }
  }
  if (length > 0) seal();
  return out;
}

/**
 * Opens records as their bytes arrive, split anywhere. Holds at most one incomplete record (≤ 65,537
 * bytes). A record that fails authentication throws `EZIPC_DECRYPT`; the reader is then unusable (the
 * connection closes).
 */
export class RecordReader {
  private pending: Buffer = EMPTY_BUF;
  private failed: EzipcError | null = null;

  /**
   * `ownsChunks`: the chunks pushed are the reader's to overwrite (a socket's reads are), so a record is
   * opened in place and its plaintext is a view of the chunk: no copy, no allocation. Otherwise each
   * plaintext is a new buffer and the chunks are left as they were.
   */
  constructor(
    private readonly cs: CipherState,
    private readonly rekeyInterval: number,
    private readonly ownsChunks = false,
  ) {}

  /** Bytes of an incomplete record held. */
  get pendingBytes(): number {
    return this.pending.length + this.heldBytes + (this.heldHead >= 0 ? 1 : 0);
  }

  /** Opens every complete record in what arrived so far, calling `onPlain` with each non-empty plaintext. */
  push(chunk: Buffer, onPlain: (plain: Buffer) => void): void {
    if (this.failed) throw this.failed;
    if (this.ownsChunks && this.cs.sealsInPlace) {
      this.pushInPlace(chunk, onPlain);
      return;
    }
    const buf = this.pending.length === 0 ? chunk : Buffer.concat([this.pending, chunk]);
    let pos = 0;
    while (buf.length - pos >= 2) {
      const len = buf.readUInt16BE(pos);
      if (buf.length - pos - 2 < len) break;
      const plain = this.cs.decrypt(EMPTY, buf.subarray(pos + 2, pos + 2 + len), this.ownsChunks);
      if (plain === null) this.fail();
      if (this.cs.n % this.rekeyInterval === 0) this.cs.rekey();
      pos += 2 + len;
      if (plain.length > 0) onPlain(plain);
    }
    // Node does not reuse a socket's chunks: the unread tail is kept as a view, not copied.
    this.pending = pos < buf.length ? buf.subarray(pos) : EMPTY_BUF;
  }

  // ---- in place: a record's bytes are opened where they arrived, across chunks, without joining them ----

  /** The first byte of a record's length, when a chunk ended after it. */
  private heldHead = -1;
  /** The parts of the record in progress (views of the chunks), and how many bytes of it are missing. */
  private held: Buffer[] = [];
  private heldBytes = 0;
  private missing = 0;

  private pushInPlace(chunk: Buffer, onPlain: (plain: Buffer) => void): void {
    let pos = 0;
    const end = chunk.length;
    if (this.heldHead >= 0) {
      if (end === 0) return;
      const len = (this.heldHead << 8) | chunk[0]!;
      this.heldHead = -1;
      pos = 1;
      if (this.hold(chunk, pos, len, onPlain)) return;
      pos += len;
    } else if (this.missing > 0) {
      const take = Math.min(this.missing, end);
      this.held.push(chunk.subarray(0, take));
      this.heldBytes += take;
      this.missing -= take;
      if (this.missing > 0) {
        // A peer that sends a record a byte at a time: join what is held now and then (64 parts at most).
        if (this.held.length > 32) this.held = [Buffer.concat(this.held)];
        return;
      }
      this.openHeld(onPlain);
      pos = take;
    }
    while (end - pos >= 2) {
      const len = chunk.readUInt16BE(pos);
      if (this.hold(chunk, pos + 2, len, onPlain)) return;
      pos += 2 + len;
    }
    if (end - pos === 1) this.heldHead = chunk[pos]!;
  }

  /**
   * The record of `len` bytes at `at`: opened at once if all of it is in `chunk` (false returned), else
   * its start is held until the rest arrives (true: the chunk is used up).
   */
  private hold(chunk: Buffer, at: number, len: number, onPlain: (plain: Buffer) => void): boolean {
    if (chunk.length - at >= len) {
      const plain = this.cs.decrypt(EMPTY, chunk.subarray(at, at + len), true);
      if (plain === null) this.fail();
      if (this.cs.n % this.rekeyInterval === 0) this.cs.rekey();
      if (plain.length > 0) onPlain(plain);
      return false;
    }
    const have = chunk.length - at;
    if (have > 0) this.held.push(chunk.subarray(at));
    this.heldBytes = have;
    this.missing = len - have;
    return true;
  }

  /** Opens the held record (all of it has arrived) and delivers its plaintext, piece by piece. */
  private openHeld(onPlain: (plain: Buffer) => void): void {
    const parts = this.held;
    this.held = [];
    const total = this.heldBytes;
    this.heldBytes = 0;
    if (!this.cs.decryptPartsInPlace(EMPTY, parts)) this.fail();
    if (this.cs.n % this.rekeyInterval === 0) this.cs.rekey();
    let left = total - TAG_BYTES;
    for (const p of parts) {
      if (left <= 0) break;
      const piece = p.length <= left ? p : p.subarray(0, left);
      left -= piece.length;
      onPlain(piece);
    }
  }

  private fail(): never {
    this.pending = EMPTY_BUF;
    this.held = [];
    this.heldBytes = 0;
    this.failed = new EzipcError("EZIPC_DECRYPT", "a record failed authentication: connection closed");
    throw this.failed;
  }
}
