/**
 * Hand-written encoders and parsers for the two hot pub/sub frames, `publish` and `message`. Both carry a
 * batch of records (header list, payload). They produce and accept exactly the schema-codec layout of
 * pubsub-messages.ts (a test checks both ways, byte for byte) but allocate nothing per record that the generic
 * codec would: records are checked and copied as they are, strings are sliced only when asked for,
 * payloads are views.
 *
 *   publish  = u16 index | u32 rid | topic | count | records
 *   message  = u16 index | u32 sid | topic | u64 seq | f64 time | publisher | count | records
 *   record   = header list | payload            (strings and byte strings: LEB128 length, then bytes)
 */
import { setHeader } from "../protocol/names.js";
import { PUBSUB_BASE, pubsubMessages } from "./pubsub-messages.js";

export { setHeader };

const names = Object.keys(pubsubMessages);
export const PUBLISH_INDEX = PUBSUB_BASE + names.indexOf("publish");
export const MESSAGE_INDEX = PUBSUB_BASE + names.indexOf("message");
/** Offset of the u32 subscription id in a `message` frame (after the u16 index). */
export const MESSAGE_SID_OFFSET = 2;

const MAX_HEADERS = 64;
const MAX_HEADER_KEY = 256;
const MAX_HEADER_VALUE = 4096;
const MAX_TOPIC = 255;

/**
 * Copies src[start, end) to dst at pos: a loop for a few bytes, else one `set` (measured: 15–20 ns whatever
 * the length up to 96 bytes, where a loop takes 40 ns at 64 bytes), of the whole source when it is all of it
 * (no view to make).
 */
function copyBytes(src: Uint8Array, start: number, end: number, dst: Uint8Array, pos: number): void {
  if (end - start <= 8) {
    for (let i = start; i < end; i++) dst[pos++] = src[i]!;
  } else {
    dst.set(start === 0 && end === src.length ? src : src.subarray(start, end), pos);
  }
}

function lebSize(n: number): number {
  return n < 0x80 ? 1 : n < 0x4000 ? 2 : n < 0x200000 ? 3 : n < 0x10000000 ? 4 : 5;
}

function writeLeb(buf: Buffer, pos: number, n: number): number {
  while (n >= 0x80) {
    buf[pos++] = (n & 0x7f) | 0x80;
    n >>>= 7;
  }
  buf[pos++] = n;
  return pos;
}

/** Reads an unsigned LEB128 length (≤ 5 bytes, < 2^32); returns -1 if truncated or too long. */
let lebEnd = 0;
function readLeb(buf: Uint8Array, pos: number, end: number): number {
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
function skipHeaderList(frame: Buffer, start: number, end: number): number {
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

/** The encoded header list (count, then key/value strings) of a headers record. */
export function encodeHeaders(headers: readonly { key: string; value: string }[]): Buffer {
  if (headers.length === 0) return EMPTY_HEADERS;
  const parts: Buffer[] = [];
  for (const h of headers) parts.push(Buffer.from(h.key, "utf8"), Buffer.from(h.value, "utf8"));
  let size = lebSize(headers.length);
  for (const p of parts) size += lebSize(p.length) + p.length;
  const out = Buffer.allocUnsafe(size);
  let pos = writeLeb(out, 0, headers.length);
  for (const p of parts) {
    pos = writeLeb(out, pos, p.length);
    p.copy(out, pos);
    pos += p.length;
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

function writeRecord(buf: Buffer, pos: number, headers: Uint8Array, payload: Uint8Array): number {
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
    const h = skipHeaderList(frame, pos, end);
    if (h < 0) return false;
    const len = readLeb(frame, h, end);
    if (len < 0 || lebEnd + len > end) return false;
    pos = lebEnd + len;
  }
  if (offsets) offsets[count] = pos;
  return pos === end;
}

// ---- publish -------------------------------------------------------------------------------------------

/** Encodes a `publish` frame of one record. */
export function encodePublish(rid: number, topic: Buffer, headers: Uint8Array, payload: Uint8Array): Buffer {
  const size = 2 + 4 + lebSize(topic.length) + topic.length + 1 + recordSize(headers, payload.length);
  const buf = Buffer.allocUnsafe(size);
  buf.writeUInt16LE(PUBLISH_INDEX, 0);
  buf.writeUInt32LE(rid, 2);
  let pos = writeLeb(buf, 6, topic.length);
  copyBytes(topic, 0, topic.length, buf, pos);
  pos += topic.length;
  buf[pos++] = 1;
  writeRecord(buf, pos, headers, payload);
  return buf;
}

/** Room kept before the records of a batch for the longest `publish` header. */
const BATCH_HEAD = 2 + 4 + lebSize(MAX_TOPIC) + MAX_TOPIC + lebSize(MAX_RECORDS);

/**
 * Packs fire-and-forget publishes into `publish` frames (rid 0): consecutive publishes to one topic share
 * a frame, up to `batchBytes` of records or {@link MAX_RECORDS}. A publish to another topic, or
 * {@link flush}, sends the frame being filled, so frames leave in publish order.
 */
export class PublishBatcher {
  private buf: Buffer;
  private topic: Buffer | null = null;
  private pos = BATCH_HEAD;
  private count = 0;

  /** `send` hands a frame to the connection; frames under `copyBelow` bytes are copied before it returns. */
  constructor(
    private readonly send: (frame: Buffer) => boolean,
    private readonly copyBelow: number,
    private readonly batchBytes = 64 * 1024,
  ) {
    this.buf = Buffer.allocUnsafe(BATCH_HEAD + batchBytes);
  }

  /** Records waiting in the frame being filled. */
  get pending(): number {
    return this.count;
  }

  /** Adds a record (`topic` is the topic's bytes; the same Buffer for the same topic batches fastest). */
  add(topic: Buffer, headers: Uint8Array, payload: Uint8Array): void {
    const size = recordSize(headers, payload.length);
    if (
      this.topic !== null &&
      (this.pos + size > this.buf.length ||
        this.count === MAX_RECORDS ||
        (this.topic !== topic && !this.topic.equals(topic)))
    ) {
      this.flush();
    }
    if (this.count === 0) {
      this.topic = topic;
      if (BATCH_HEAD + size > this.buf.length) this.buf = Buffer.allocUnsafe(BATCH_HEAD + size);
    }
    this.pos = writeRecord(this.buf, this.pos, headers, payload);
    this.count++;
  }

  /** Sends the frame being filled, if any; returns what the connection's send returned (true if none). */
  flush(): boolean {
    const topic = this.topic;
    if (topic === null) return true;
    const count = this.count;
    const buf = this.buf;
    const start = BATCH_HEAD - (2 + 4 + lebSize(topic.length) + topic.length + lebSize(count));
    buf.writeUInt16LE(PUBLISH_INDEX, start);
    buf.writeUInt32LE(0, start + 2);
    const pos = writeLeb(buf, start + 6, topic.length);
    copyBytes(topic, 0, topic.length, buf, pos);
    writeLeb(buf, pos + topic.length, count);
    const end = this.pos;
    this.topic = null;
    this.count = 0;
    this.pos = BATCH_HEAD;
    // A frame the transport keeps by reference needs a fresh buffer for the next batch.
    if (end - start >= this.copyBelow || buf.length > BATCH_HEAD + this.batchBytes) {
      this.buf = Buffer.allocUnsafe(BATCH_HEAD + this.batchBytes);
    }
    return this.send(buf.subarray(start, end));
  }

  /** Drops the records waiting (the connection they were for is gone). */
  discard(): void {
    this.topic = null;
    this.count = 0;
    this.pos = BATCH_HEAD;
  }
}

/** A parsed `publish` frame: offsets into it. One object is reused by every {@link parsePublish} call. */
export interface PublishView {
  rid: number;
  /** The topic name; the previous call's string when the bytes are the same (no new string per frame). */
  topic: string;
  count: number;
  /** Where the records start (they end with the frame). */
  recordsStart: number;
}

const view: PublishView = { rid: 0, topic: "", count: 0, recordsStart: 0 };
let lastTopicBytes = Buffer.alloc(0);

/**
 * Parses a `publish` frame, checking every record, into a shared view (valid until the next call), or
 * returns null if it is malformed (the generic decoder then reports why).
 */
export function parsePublish(frame: Buffer): PublishView | null {
  const v = parsePublishHead(frame);
  return v !== null && checkRecords(frame, v.recordsStart, frame.length, v.count) ? v : null;
}

/**
 * {@link parsePublish} for a frame that arrived in pieces (in order; see FrameDecoder's PiecesSink), without
 * joining them: the first piece must hold the frame's head (else null: join the pieces and parse that);
 * `recordsStart` is then an offset into the first piece, and the records go on through the others.
 */
export function parsePublishPieces(pieces: readonly Buffer[]): PublishView | null {
  const v = parsePublishHead(pieces[0]!);
  return v !== null && checkRecordsInPieces(pieces, v.recordsStart, v.count) ? v : null;
}

/** The head of a `publish` frame (everything before its records), records not checked. */
function parsePublishHead(frame: Buffer): PublishView | null {
  const end = frame.length;
  if (end < 6 || frame.readUInt16LE(0) !== PUBLISH_INDEX) return null;
  const rid = frame.readUInt32LE(2);
  const tlen = readLeb(frame, 6, end);
  if (tlen < 0 || tlen > MAX_TOPIC || lebEnd + tlen > end) return null;
  const topicStart = lebEnd;
  const topicEnd = lebEnd + tlen;
  const count = readLeb(frame, topicEnd, end);
  if (count < 0 || count > MAX_RECORDS) return null;
  const recordsStart = lebEnd;
  let same = lastTopicBytes.length === tlen;
  for (let i = 0; same && i < tlen; i++) same = frame[topicStart + i] === lastTopicBytes[i];
  if (!same) {
    view.topic = frame.latin1Slice(topicStart, topicEnd);
    lastTopicBytes = Buffer.from(frame.subarray(topicStart, topicEnd));
  }
  view.rid = rid;
  view.count = count;
  view.recordsStart = recordsStart;
  return view;
}

// ---- message -------------------------------------------------------------------------------------------

function writeSeq(buf: Buffer, pos: number, seq: bigint | number): void {
  if (typeof seq === "number") {
    buf.writeUInt32LE(seq % 0x100000000, pos);
    buf.writeUInt32LE(Math.floor(seq / 0x100000000), pos + 4);
  } else buf.writeBigUInt64LE(seq, pos);
}

/**
 * Encodes the head of a `message` frame, everything before its records, with subscription id 0 (patched
 * per delivery at {@link MESSAGE_SID_OFFSET}); `seq` is the first record's. The frame is the head followed
 * by `count` records.
 */
export function encodeMessageHead(
  topic: Buffer,
  seq: bigint | number,
  time: number,
  publisher: Buffer,
  count: number,
): Buffer {
  const size =
    2 +
    4 +
    lebSize(topic.length) +
    topic.length +
    16 +
    lebSize(publisher.length) +
    publisher.length +
    lebSize(count);
  const buf = Buffer.allocUnsafe(size);
  buf.writeUInt16LE(MESSAGE_INDEX, 0);
  buf.writeUInt32LE(0, 2);
  let pos = writeLeb(buf, 6, topic.length);
  copyBytes(topic, 0, topic.length, buf, pos);
  pos += topic.length;
  writeSeq(buf, pos, seq);
  buf.writeDoubleLE(time, pos + 8);
  pos = writeLeb(buf, pos + 16, publisher.length);
  copyBytes(publisher, 0, publisher.length, buf, pos);
  writeLeb(buf, pos + publisher.length, count);
  return buf;
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
function walkRecordsInPieces(
  pieces: readonly Buffer[],
  start: number,
  count: number,
  onRecord: OnRecord | null,
): boolean {
  let i = 0;
  let pos = start;
  let done = 0;
  while (done < count) {
    const piece = pieces[i]!;
    const end = piece.length;
    while (done < count) {
      const h = skipHeaderList(piece, pos, end);
      if (h < 0) break;
      const len = readLeb(piece, h, end);
      if (len < 0 || lebEnd + len > end) break;
      onRecord?.(done, piece, pos, lebEnd, lebEnd + len);
      pos = lebEnd + len;
      done++;
    }
    if (done === count) break;
    // A record that goes on in the next piece (or a malformed one): read it through the cursor.
    cursor.pieces = pieces;
    cursor.i = i;
    cursor.pos = pos;
    const ok = cursorSkipRecord();
    const record = ok && onRecord ? copyRange(pieces, i, pos, cursor.i, cursor.pos) : null;
    i = cursor.i;
    pos = cursor.pos;
    cursor.pieces = NO_PIECES;
    if (!ok) return false;
    if (record !== null) {
      const len = readLeb(record, skipHeaderList(record, 0, record.length), record.length);
      onRecord!(done, record, 0, lebEnd, lebEnd + len);
    }
    done++;
  }
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

/** Where each of the `count` well-formed records in `records` starts (`[count]` = their end). */
export function recordOffsets(records: Buffer, count: number): Uint32Array {
  const offsets = new Uint32Array(count + 1);
  checkRecords(records, 0, records.length, count, offsets);
  return offsets;
}

/** The head of a `message` frame like `head` but for `count` records starting at `seq`. */
export function sliceHead(head: Buffer, count: number, seq: bigint | number): Buffer {
  const tlen = readLeb(head, 6, head.length);
  const seqPos = lebEnd + tlen;
  const plen = readLeb(head, seqPos + 16, head.length);
  const countPos = lebEnd + plen;
  const buf = Buffer.allocUnsafe(countPos + lebSize(count));
  head.copy(buf, 0, 0, countPos);
  writeSeq(buf, seqPos, seq);
  writeLeb(buf, countPos, count);
  return buf;
}

const NO_HEADERS: Record<string, string> = Object.freeze({}) as Record<string, string>;

/** What the records of one `message` frame share (strings decoded once, when first asked for). */
class MessageBatch {
  topicValue: string | undefined;
  publisherValue: string | undefined;
  firstSeq: bigint | undefined;

  constructor(
    readonly frame: Buffer,
    readonly topicStart: number,
    readonly topicEnd: number,
    readonly publisherEnd: number,
  ) {}

  get topic(): string {
    this.topicValue ??= this.frame.latin1Slice(this.topicStart, this.topicEnd);
    return this.topicValue;
  }
  get publisher(): string {
    if (this.publisherValue === undefined) {
      const len = readLeb(this.frame, this.topicEnd + 16, this.publisherEnd);
      this.publisherValue = this.frame.utf8Slice(this.publisherEnd - len, this.publisherEnd);
    }
    return this.publisherValue;
  }
  seqAt(index: number): bigint {
    this.firstSeq ??= this.frame.readBigUInt64LE(this.topicEnd);
    return index === 0 ? this.firstSeq : this.firstSeq + BigInt(index);
  }
}

/**
 * One message of a parsed `message` frame (a TopicMessage). Parsing only checks the layout and notes where
 * each field is; the topic, publisher, seq and headers are read from the frame when first asked for. The
 * payload is a view into the frame.
 */
export class MessageView {
  private seqValue: bigint | undefined;
  private headersValue: Record<string, string> | undefined;

  constructor(
    private readonly batch: MessageBatch,
    private readonly index: number,
    /** The buffer the record is in: the frame, or one of its pieces, or a copy of the record. */
    private readonly src: Buffer,
    private readonly headersStart: number,
    readonly payload: Uint8Array,
  ) {}

  get topic(): string {
    return this.batch.topic;
  }
  get seq(): bigint {
    this.seqValue ??= this.batch.seqAt(this.index);
    return this.seqValue;
  }
  get time(): number {
    return this.batch.frame.readDoubleLE(this.batch.topicEnd + 8);
  }
  get publisher(): string {
    return this.batch.publisher;
  }
  get headers(): Record<string, string> {
    if (this.headersValue === undefined) {
      const frame = this.src;
      const count = readLeb(frame, this.headersStart, frame.length);
      let pos = lebEnd;
      let headers = NO_HEADERS;
      if (count > 0) {
        headers = {};
        for (let i = 0; i < count; i++) {
          const klen = readLeb(frame, pos, frame.length);
          const key = frame.utf8Slice(lebEnd, lebEnd + klen);
          const vlen = readLeb(frame, lebEnd + klen, frame.length);
          setHeader(headers, key, frame.utf8Slice(lebEnd, lebEnd + vlen));
          pos = lebEnd + vlen;
        }
      }
      this.headersValue = headers;
    }
    return this.headersValue;
  }
  text(): string {
    const p = this.payload;
    return Buffer.from(p.buffer, p.byteOffset, p.byteLength).toString("utf8");
  }
  json<T = unknown>(): T {
    return JSON.parse(this.text()) as T;
  }
}

/** A parsed `message` frame: its subscription id and its messages in seq order. */
export interface ParsedMessages {
  sid: number;
  messages: MessageView[];
}

/** Parses a `message` frame (checking its whole layout), or returns null if it is malformed. */
export function parseMessage(frame: Buffer): ParsedMessages | null {
  const head = parseMessageHead(frame);
  if (head === null) return null;
  const { batch, count } = head;
  const end = frame.length;
  const messages = new Array<MessageView>(count);
  let pos = head.recordsStart;
  for (let i = 0; i < count; i++) {
    const h = skipHeaderList(frame, pos, end);
    if (h < 0) return null;
    const len = readLeb(frame, h, end);
    if (len < 0 || lebEnd + len > end) return null;
    messages[i] = new MessageView(batch, i, frame, pos, frame.subarray(lebEnd, lebEnd + len));
    pos = lebEnd + len;
  }
  if (pos !== end) return null;
  return { sid: head.sid, messages };
}

/**
 * {@link parseMessage} for a frame that arrived in pieces (in order; see FrameDecoder's PiecesSink), without
 * joining them: the first piece must hold the frame's head (else null: join the pieces and parse that).
 * Payloads are views into the pieces; a record that crosses from one piece into the next is copied (it
 * alone).
 */
export function parseMessagePieces(pieces: readonly Buffer[]): ParsedMessages | null {
  const head = parseMessageHead(pieces[0]!);
  if (head === null) return null;
  const { batch, count } = head;
  const messages = new Array<MessageView>(count);
  const ok = walkRecordsInPieces(pieces, head.recordsStart, count, (index, src, headersStart, from, to) => {
    messages[index] = new MessageView(batch, index, src, headersStart, src.subarray(from, to));
  });
  return ok ? { sid: head.sid, messages } : null;
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

/** The head of a `message` frame: everything before its records. */
function parseMessageHead(
  frame: Buffer,
): { sid: number; batch: MessageBatch; count: number; recordsStart: number } | null {
  const end = frame.length;
  if (end < 6 || frame.readUInt16LE(0) !== MESSAGE_INDEX) return null;
  const sid = frame.readUInt32LE(2);
  const tlen = readLeb(frame, 6, end);
  if (tlen < 0 || tlen > MAX_TOPIC || lebEnd + tlen + 16 > end) return null;
  const topicStart = lebEnd;
  const topicEnd = lebEnd + tlen;
  const plen = readLeb(frame, topicEnd + 16, end);
  if (plen < 0 || plen > 4096 || lebEnd + plen > end) return null;
  const publisherEnd = lebEnd + plen;
  const count = readLeb(frame, publisherEnd, end);
  if (count < 0 || count > MAX_RECORDS) return null;
  return {
    sid,
    batch: new MessageBatch(frame, topicStart, topicEnd, publisherEnd),
    count,
    recordsStart: lebEnd,
  };
}
