/**
 * The records that `publish` and `message` frames carry (see fast-frames.ts), read and written in place:
 * LEB128 lengths, header lists, records and their checks — on one buffer, or across the pieces of a frame
 * that arrived split across socket reads (a cursor reads the records that cross from one piece into the
 * next; only those are ever copied).
 *
 *   record      = header list | payload     (byte strings: LEB128 length, then bytes)
 *   header list = count | (key | value)*    (strings: LEB128 length, then UTF-8)
 */
import { checkedHeaders, MAX_HEADER_KEY, MAX_HEADER_VALUE, MAX_HEADERS } from "../protocol/fields.js";

/**
 * Copies src[start, end) to dst at pos: a loop for a few bytes, else one `set` (measured: 15–20 ns whatever
 * the length up to 96 bytes, where a loop takes 40 ns at 64 bytes), of the whole source when it is all of it
 * (no view to make).
 */
export function copyBytes(src: Uint8Array, start: number, end: number, dst: Uint8Array, pos: number): void {
  if (end - start <= 8) {
    for (let i = start; i < end; i++) dst[pos++] = src[i]!;
  } else {
    dst.set(start === 0 && end === src.length ? src : src.subarray(start, end), pos);
  }
}

export function lebSize(n: number): number {
  return n < 0x80 ? 1 : n < 0x4000 ? 2 : n < 0x200000 ? 3 : n < 0x10000000 ? 4 : 5;
}

export function writeLeb(buf: Buffer, pos: number, n: number): number {
  while (n >= 0x80) {
    buf[pos++] = (n & 0x7f) | 0x80;
    n >>>= 7;
  }
  buf[pos++] = n;
  return pos;
}

/** Reads an unsigned LEB128 length (≤ 5 bytes, < 2^32); returns -1 if truncated or too long. */
export let lebEnd = 0;
export function readLeb(buf: Uint8Array, pos: number, end: number): number {
  let n = 0;
  let shift = 0;
  for (let i = 0; i < 5; i++) {
    if (pos >= end) return -1;
    const b = buf[pos++]!;
    n += (b & 0x7f) * 2 ** shift;
    if (b < 0x80) {
      lebEnd = pos;
      return n <= 0xffffffff ? n : -1;
    }
    shift += 7;
  }
  return -1;
}

/**
 * Checks the header list at `start` (count, then key/value strings within their limits); returns where it
 * ends, or -1 if it is malformed.
 */
export function skipHeaderList(frame: Uint8Array, start: number, end: number): number {
  const count = readLeb(frame, start, end);
  if (count < 0 || count > MAX_HEADERS) return -1;
  let pos = lebEnd;
  for (let i = 0; i < count * 2; i++) {
    const len = readLeb(frame, pos, end);
    if (len < 0 || len > (i % 2 === 0 ? MAX_HEADER_KEY : MAX_HEADER_VALUE) || lebEnd + len > end) return -1;
    pos = lebEnd + len;
  }
  return pos;
}

/** Where the payload of the record {@link recordEnd} last read starts. */
export let payloadStart = 0;

/**
 * Reads the record at `pos` (a header list, checked as {@link skipHeaderList} checks it, then a payload):
 * returns where it ends, its payload being [{@link payloadStart}, end), or -1 if it is malformed or goes
 * past `end`. A record without headers and with a payload under 16 KiB (a one- or two-byte length) is
 * read inline: the usual record, where the two calls took a third of a 64 B record's check in the hub.
 */
export function recordEnd(buf: Uint8Array, pos: number, end: number): number {
  if (pos + 2 < end && buf[pos] === 0) {
    const b = buf[pos + 1]!;
    if (b < 0x80) {
      payloadStart = pos + 2;
      return pos + 2 + b <= end ? pos + 2 + b : -1;
    }
    const c = buf[pos + 2]!;
    if (c < 0x80) {
      const n = (b & 0x7f) | (c << 7);
      payloadStart = pos + 3;
      return pos + 3 + n <= end ? pos + 3 + n : -1;
    }
  }
  const h = skipHeaderList(buf, pos, end);
  if (h < 0) return -1;
  const len = readLeb(buf, h, end);
  if (len < 0 || lebEnd + len > end) return -1;
  payloadStart = lebEnd;
  return lebEnd + len;
}

/** Records {@link skipPlainRecords} last skipped. */
let skipped = 0;

/**
 * Skips, from `pos`, up to `max` records that {@link recordEnd} reads inline (no headers, a one- or
 * two-byte payload length), in one loop without calls: how the hub checks a batch of them (a call per record
 * was a tenth of the hub's CPU at 64 B). Returns where it stopped — at `max` records, or at the first record
 * of another kind or going past `end`, which recordEnd then reads; how many it skipped is in `skipped`.
 */
function skipPlainRecords(buf: Uint8Array, pos: number, end: number, max: number): number {
  let n = 0;
  while (n < max && pos + 2 < end && buf[pos] === 0) {
    const b = buf[pos + 1]!;
    let next: number;
    if (b < 0x80) next = pos + 2 + b;
    else {
      const c = buf[pos + 2]!;
      if (c >= 0x80) break;
      next = pos + 3 + ((b & 0x7f) | (c << 7));
    }
    if (next > end) break;
    pos = next;
    n++;
  }
  skipped = n;
  return pos;
}

/**
 * {@link checkedHeaders}, encoded as a header list (count, then key/value strings) in one buffer: the
 * header list of a fire-and-forget publish.
 */
export function encodeHeaderList(headers: Record<string, string>): Buffer {
  const keys = checkedHeaders(headers);
  if (keys.length === 0) return EMPTY_HEADERS;
  let size = lebSize(keys.length);
  for (let i = 0; i < keys.length; i++) {
    const kl = utf8Length(keys[i]!);
    const vl = utf8Length(headers[keys[i]!]!);
    size += lebSize(kl) + kl + lebSize(vl) + vl;
  }
  const out = Buffer.allocUnsafe(size);
  let pos = writeLeb(out, 0, keys.length);
  for (let i = 0; i < keys.length; i++) {
    pos = writeString(out, pos, keys[i]!);
    pos = writeString(out, pos, headers[keys[i]!]!);
  }
  return out;
}

/**
 * Bytes of `s` in UTF-8: counted in a loop for a short ASCII string (a header's usual case: cheaper than
 * the call into Buffer.byteLength), else by Buffer.byteLength.
 */
function utf8Length(s: string): number {
  if (s.length <= SHORT_STRING) {
    let i = 0;
    while (i < s.length && s.charCodeAt(i) < 0x80) i++;
    if (i === s.length) return i;
  }
  return Buffer.byteLength(s);
}

/** Writes `s` as a length-prefixed UTF-8 string; returns where it ends (short ASCII: a loop, as above). */
function writeString(out: Buffer, pos: number, s: string): number {
  const n = utf8Length(s);
  pos = writeLeb(out, pos, n);
  if (n === s.length && n <= SHORT_STRING) {
    for (let i = 0; i < n; i++) out[pos + i] = s.charCodeAt(i);
    return pos + n;
  }
  return pos + out.write(s, pos, "utf8");
}

const SHORT_STRING = 64;

/** The encoded header list (count, then key/value strings) of a headers record. */
export function encodeHeaders(headers: readonly { key: string; value: string }[]): Buffer {
  if (headers.length === 0) return EMPTY_HEADERS;
  let size = lebSize(headers.length);
  for (const h of headers) {
    const kl = utf8Length(h.key);
    const vl = utf8Length(h.value);
    size += lebSize(kl) + kl + lebSize(vl) + vl;
  }
  const out = Buffer.allocUnsafe(size);
  let pos = writeLeb(out, 0, headers.length);
  for (const h of headers) {
    pos = writeString(out, pos, h.key);
    pos = writeString(out, pos, h.value);
  }
  return out;
}
const EMPTY_HEADERS = Buffer.from([0]);

/** Most records in one `publish` or `message` frame. */
export const MAX_RECORDS = 65_536;

/** The bytes one record takes: its encoded header list and its length-prefixed payload. */
export function recordSize(headers: Uint8Array, payloadLength: number): number {
  return headers.length + lebSize(payloadLength) + payloadLength;
}

export function writeRecord(buf: Buffer, pos: number, headers: Uint8Array, payload: Uint8Array): number {
  copyBytes(headers, 0, headers.length, buf, pos);
  pos = writeLeb(buf, pos + headers.length, payload.length);
  copyBytes(payload, 0, payload.length, buf, pos);
  return pos + payload.length;
}

/**
 * Checks `count` records from `start`: each a well-formed header list and payload, together ending
 * exactly at `end`. With `offsets`, `offsets[i]` is set to where record i starts and `offsets[count]` to
 * `end`.
 */
export function checkRecords(
  frame: Buffer,
  start: number,
  end: number,
  count: number,
  offsets?: Uint32Array,
): boolean {
  let pos = start;
  for (let i = 0; i < count; i++) {
    if (offsets) offsets[i] = pos;
    else {
      pos = skipPlainRecords(frame, pos, end, count - i);
      i += skipped;
      if (i === count) break;
    }
    pos = recordEnd(frame, pos, end);
    if (pos < 0) return false;
  }
  if (offsets) offsets[count] = pos;
  return pos === end;
}

/**
 * {@link checkRecords} over pieces: `count` records from `start` in `pieces[0]` on, ending exactly with
 * the last piece.
 */
export function checkRecordsInPieces(pieces: readonly Buffer[], start: number, count: number): boolean {
  return walkRecordsInPieces(pieces, start, count, null);
}

/** Called by {@link walkRecordsInPieces} for record `index`: its payload is `src[from, to)`. */
type OnRecord = (index: number, src: Buffer, headersStart: number, from: number, to: number) => void;

/**
 * Checks `count` records from `start` in `pieces[0]` on, ending exactly with the last piece, and tells
 * `onRecord` of each. Records within one piece are read as checkRecords reads them (`src` is the piece); one
 * that crosses into the next piece is found through a cursor over the pieces and copied into a buffer of
 * its own (`src`). False if they are malformed.
 */
export function walkRecordsInPieces(
  pieces: readonly Buffer[],
  start: number,
  count: number,
  onRecord: OnRecord | null,
  offsets: Uint32Array | null = null,
): boolean {
  let i = 0;
  let pos = start;
  let done = 0;
  // Bytes of the records in the pieces before piece i (for `offsets`: from `start` on, as if joined).
  let base = -start;
  while (done < count) {
    const piece = pieces[i]!;
    const end = piece.length;
    while (done < count) {
      if (offsets !== null) offsets[done] = base + pos;
      else if (onRecord === null) {
        pos = skipPlainRecords(piece, pos, end, count - done);
        done += skipped;
        if (done === count) break;
      }
      const next = recordEnd(piece, pos, end);
      if (next < 0) break;
      onRecord?.(done, piece, pos, payloadStart, next);
      pos = next;
      done++;
    }
    if (done === count) break;
    // A record that goes on in the next piece (or a malformed one): read it through the cursor.
    if (offsets !== null) offsets[done] = base + pos;
    cursor.pieces = pieces;
    cursor.i = i;
    cursor.pos = pos;
    const ok = cursorSkipRecord();
    const record = ok && onRecord ? copyRange(pieces, i, pos, cursor.i, cursor.pos) : null;
    for (; i < cursor.i; i++) base += pieces[i]!.length;
    pos = cursor.pos;
    cursor.pieces = NO_PIECES;
    if (!ok) return false;
    if (record !== null) {
      const len = readLeb(record, skipHeaderList(record, 0, record.length), record.length);
      onRecord!(done, record, 0, lebEnd, lebEnd + len);
    }
    done++;
  }
  if (offsets !== null) offsets[count] = base + pos;
  return i === pieces.length - 1 && pos === pieces[i]!.length;
}

const NO_PIECES: readonly Buffer[] = [];
/** Where {@link cursorSkipRecord} reads: piece `i`, at `pos` (pos may equal the piece's length). */
const cursor = { pieces: NO_PIECES, i: 0, pos: 0 };

/** The cursor's next byte, or -1 at the end of the pieces. */
function cursorByte(): number {
  const c = cursor;
  while (c.pos >= c.pieces[c.i]!.length) {
    if (c.i + 1 >= c.pieces.length) return -1;
    c.i++;
    c.pos = 0;
  }
  return c.pieces[c.i]![c.pos++]!;
}

/** readLeb through the cursor. */
function cursorLeb(): number {
  let n = 0;
  let shift = 0;
  for (let k = 0; k < 5; k++) {
    const b = cursorByte();
    if (b < 0) return -1;
    n += (b & 0x7f) * 2 ** shift;
    if (b < 0x80) return n <= 0xffffffff ? n : -1;
    shift += 7;
  }
  return -1;
}

/** Moves the cursor `n` bytes on; false if the pieces end first. */
function cursorSkip(n: number): boolean {
  const c = cursor;
  while (n > 0) {
    const left = c.pieces[c.i]!.length - c.pos;
    if (n <= left) {
      c.pos += n;
      return true;
    }
    n -= left;
    if (c.i + 1 >= c.pieces.length) return false;
    c.i++;
    c.pos = 0;
  }
  return true;
}

/** Checks the record at the cursor (header list, payload) and moves past it; false if malformed. */
function cursorSkipRecord(): boolean {
  const headers = cursorLeb();
  if (headers < 0 || headers > MAX_HEADERS) return false;
  for (let k = 0; k < headers * 2; k++) {
    const len = cursorLeb();
    if (len < 0 || len > (k % 2 === 0 ? MAX_HEADER_KEY : MAX_HEADER_VALUE) || !cursorSkip(len)) return false;
  }
  const len = cursorLeb();
  return len >= 0 && cursorSkip(len);
}

/** The records of one message: an encoded header list and a payload. */
export function encodeRecord(headers: Uint8Array, payload: Uint8Array): Buffer {
  const buf = Buffer.allocUnsafe(recordSize(headers, payload.length));
  writeRecord(buf, 0, headers, payload);
  return buf;
}

/**
 * Where each of the `count` well-formed records in `records` starts (`[count]` = their end); with `more`,
 * the records go on through those pieces, and the offsets are into all of them as if joined.
 */
export function recordOffsets(records: Buffer, count: number, more?: readonly Buffer[]): Uint32Array {
  const offsets = new Uint32Array(count + 1);
  if (more === undefined || more.length === 0) checkRecords(records, 0, records.length, count, offsets);
  else walkRecordsInPieces([records, ...more], 0, count, null, offsets);
  return offsets;
}

/**
 * Bytes `[from, to)` of `records` and the pieces `more` that follow it (as if joined), as views: the first
 * view, and the rest (undefined when the range lies in one piece).
 */
export function piecesBetween(
  records: Buffer,
  more: readonly Buffer[] | null,
  from: number,
  to: number,
): { first: Buffer; rest: Buffer[] | undefined } {
  if (more === null || to <= records.length) return { first: records.subarray(from, to), rest: undefined };
  let first: Buffer | null = null;
  const rest: Buffer[] = [];
  let base = 0;
  for (let k = -1; k < more.length && base < to; k++) {
    const p = k < 0 ? records : more[k]!;
    const a = Math.max(from - base, 0);
    const b = Math.min(to - base, p.length);
    if (a < b) {
      const view = a === 0 && b === p.length ? p : p.subarray(a, b);
      if (first === null) first = view;
      else rest.push(view);
    }
    base += p.length;
  }
  return { first: first ?? records.subarray(0, 0), rest: rest.length > 0 ? rest : undefined };
}

/** The bytes from piece `i0` at `pos0` to piece `i1` at `pos1`, copied into one buffer. */
function copyRange(pieces: readonly Buffer[], i0: number, pos0: number, i1: number, pos1: number): Buffer {
  let size = pos1 - pos0;
  for (let k = i0; k < i1; k++) size += pieces[k]!.length;
  const out = Buffer.allocUnsafe(size);
  let at = 0;
  for (let k = i0; k <= i1; k++) {
    const p = pieces[k]!;
    at += p.copy(out, at, k === i0 ? pos0 : 0, k === i1 ? pos1 : p.length);
  }
  return out;
}
