/**
 * Hand-written encoders and parsers for the two hot pub/sub frames, `publish` and `message`. Both carry a
 * batch of records (header list, payload). They produce and accept exactly the schema-codec layout of
 * pubsub-messages.ts (a test checks both ways, byte for byte) but allocate nothing per record that the generic
 * codec would: records are checked and copied as they are, strings are sliced only when asked for,
 * payloads are views.
 *
 *   publish  = u16 index | u32 rid | topic | count | records
 *   message  = u16 index | u32 sid | topic | u64 seq | f64 time | publisher | count | records
 *   record   = header list | payload            (records.ts reads and writes them)
 */

import { setHeader } from "../protocol/names.js";
import { viewAt } from "../views.js";
import { PUBSUB_BASE, pubsubMessages } from "./pubsub-messages.js";
import {
  checkRecords,
  checkRecordsInPieces,
  copyBytes,
  lebEnd,
  lebSize,
  MAX_RECORDS,
  payloadStart,
  readLeb,
  recordEnd,
  recordSize,
  walkRecordsInPieces,
  writeLeb,
  writeRecord,
} from "./records.js";

export { setHeader };

const EMPTY_BUFFER = new ArrayBuffer(0);

const MAX_TOPIC = 255;

const names = Object.keys(pubsubMessages);
export const PUBLISH_INDEX = PUBSUB_BASE + names.indexOf("publish");
export const MESSAGE_INDEX = PUBSUB_BASE + names.indexOf("message");
/** Offset of the u32 subscription id in a `message` frame (after the u16 index). */
export const MESSAGE_SID_OFFSET = 2;

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

  /**
   * `send` hands a frame to the connection; frames under `copyBelow` bytes are copied before it returns.
   * `released` (optional) tells, right after a send, whether the connection holds the frame no more (it
   * wrote it to the socket at once): the next batch is then written into the same buffer.
   */
  constructor(
    private readonly send: (frame: Buffer) => boolean,
    private readonly copyBelow: number,
    private readonly batchBytes = 64 * 1024,
    private readonly released: () => boolean = () => false,
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
    // A frame the transport keeps by reference needs a fresh buffer for the next batch, unless it has let
    // go of it already (a publisher that keeps up then allocates nothing: one buffer, warm in the cache).
    const byReference = end - start >= this.copyBelow;
    try {
      return this.send(buf.subarray(start, end));
    } finally {
      if ((byReference && !this.released()) || buf.length > BATCH_HEAD + this.batchBytes) {
        this.buf = Buffer.allocUnsafe(BATCH_HEAD + this.batchBytes);
      }
    }
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
  const size = messageHeadBytes(topic.length, publisher.length, count);
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

/** Bytes of the head {@link encodeMessageHead} makes (a `message` frame is its head, then its records). */
export function messageHeadBytes(topicBytes: number, publisherBytes: number, count: number): number {
  return (
    2 + 4 + lebSize(topicBytes) + topicBytes + 16 + lebSize(publisherBytes) + publisherBytes + lebSize(count)
  );
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
  // (The frame's ArrayBuffer read once: `frame.buffer` is a call into the runtime.)
  const ab = frame.buffer;
  const base = frame.byteOffset;
  let pos = head.recordsStart;
  for (let i = 0; i < count; i++) {
    const next = recordEnd(frame, pos, end);
    if (next < 0) return null;
    messages[i] = new MessageView(batch, i, frame, pos, viewAt(ab, base + payloadStart, next - payloadStart));
    pos = next;
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
  // Each piece's ArrayBuffer read once (the records of a piece come one after another).
  let piece: Buffer | null = null;
  let ab: ArrayBufferLike = EMPTY_BUFFER;
  let base = 0;
  const ok = walkRecordsInPieces(pieces, head.recordsStart, count, (index, src, headersStart, from, to) => {
    if (src !== piece) {
      piece = src;
      ab = src.buffer;
      base = src.byteOffset;
    }
    messages[index] = new MessageView(batch, index, src, headersStart, viewAt(ab, base + from, to - from));
  });
  return ok ? { sid: head.sid, messages } : null;
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
