/**
 * Hand-written encoders and parsers for the two hot pub/sub frames, `publish` and `message`. They produce
 * and accept exactly the schema-codec layout of protocol.ts (a test checks both ways, byte for byte) but
 * allocate nothing per message that the generic codec would: strings are sliced only where needed, header
 * bytes are copied as they are, payloads are views.
 */
import { hubMessages } from "./protocol.js";

const names = Object.keys(hubMessages);
export const PUBLISH_INDEX = names.indexOf("publish");
export const MESSAGE_INDEX = names.indexOf("message");
/** Offset of the u32 subscription id in a `message` frame (after the u16 index). */
export const MESSAGE_SID_OFFSET = 2;

const MAX_HEADERS = 64;
const MAX_HEADER_KEY = 256;
const MAX_HEADER_VALUE = 4096;
const MAX_TOPIC = 255;

/** Copies src[start, end) to dst at pos: a loop for short runs (Buffer#copy's checks cost more there). */
function copyBytes(src: Uint8Array, start: number, end: number, dst: Uint8Array, pos: number): void {
  if (end - start <= 96) {
    for (let i = start; i < end; i++) dst[pos++] = src[i]!;
  } else {
    dst.set(src.subarray(start, end), pos);
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

/** The count of the header list {@link skipHeaderList} checked last. */
let headerCount = 0;

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
  headerCount = count;
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

/**
 * Encodes a `publish` frame. Into `scratch` when it fits and stays under `copyBelow` bytes (the transport
 * copies such frames before send() returns, so the scratch can be reused), else into a fresh buffer.
 */
export function encodePublish(
  scratch: Buffer,
  copyBelow: number,
  rid: number,
  topic: Buffer,
  headers: Buffer,
  payload: Uint8Array,
): Buffer {
  const buf = encodePublishInto(scratch, copyBelow, rid, topic, headers, payload);
  return buf === scratch ? scratch.subarray(0, encodedLength) : buf;
}

/** The length of the last frame {@link encodePublishInto} wrote. */
export let encodedLength = 0;

/** Like {@link encodePublish}, but returns `scratch` itself when it used it (the length is {@link encodedLength}). */
export function encodePublishInto(
  scratch: Buffer,
  copyBelow: number,
  rid: number,
  topic: Buffer,
  headers: Buffer,
  payload: Uint8Array,
): Buffer {
  const size =
    2 + 4 + lebSize(topic.length) + topic.length + headers.length + lebSize(payload.length) + payload.length;
  const buf = size <= scratch.length && size < copyBelow ? scratch : Buffer.allocUnsafe(size);
  buf.writeUInt16LE(PUBLISH_INDEX, 0);
  buf.writeUInt32LE(rid, 2);
  let pos = writeLeb(buf, 6, topic.length);
  copyBytes(topic, 0, topic.length, buf, pos);
  pos += topic.length;
  copyBytes(headers, 0, headers.length, buf, pos);
  pos += headers.length;
  pos = writeLeb(buf, pos, payload.length);
  copyBytes(payload, 0, payload.length, buf, pos);
  encodedLength = size;
  return buf;
}

/** A parsed `publish` frame: offsets into it. One object is reused by every {@link parsePublish} call. */
export interface PublishView {
  rid: number;
  /** The topic name; the previous call's string when the bytes are the same (no new string per message). */
  topic: string;
  topicStart: number;
  topicEnd: number;
  headersStart: number;
  headersEnd: number;
  headerCount: number;
  payloadStart: number;
}

const view: PublishView = {
  rid: 0,
  topic: "",
  topicStart: 0,
  topicEnd: 0,
  headersStart: 0,
  headersEnd: 0,
  headerCount: 0,
  payloadStart: 0,
};
let lastTopicBytes = Buffer.alloc(0);

/**
 * Parses a `publish` frame into a shared view (valid until the next call), or returns null if it is
 * malformed (the generic decoder then reports why).
 */
export function parsePublish(frame: Buffer): PublishView | null {
  const end = frame.length;
  if (end < 6 || frame.readUInt16LE(0) !== PUBLISH_INDEX) return null;
  const rid = frame.readUInt32LE(2);
  const tlen = readLeb(frame, 6, end);
  if (tlen < 0 || tlen > MAX_TOPIC || lebEnd + tlen > end) return null;
  const topicStart = lebEnd;
  const headersStart = lebEnd + tlen;
  const headersEnd = skipHeaderList(frame, headersStart, end);
  if (headersEnd < 0) return null;
  const plen = readLeb(frame, headersEnd, end);
  if (plen < 0 || lebEnd + plen !== end) return null;
  let same = lastTopicBytes.length === tlen;
  for (let i = 0; same && i < tlen; i++) same = frame[topicStart + i] === lastTopicBytes[i];
  if (!same) {
    view.topic = frame.latin1Slice(topicStart, headersStart);
    lastTopicBytes = Buffer.from(frame.subarray(topicStart, headersStart));
  }
  view.rid = rid;
  view.topicStart = topicStart;
  view.topicEnd = headersStart;
  view.headersStart = headersStart;
  view.headersEnd = headersEnd;
  view.headerCount = headerCount;
  view.payloadStart = lebEnd;
  return view;
}

/**
 * Encodes the `message` frame (subscription id 0) of a parsed publish, copying its header list and payload
 * straight from the publish frame.
 */
export function encodeMessageFromPublish(
  topic: Buffer,
  seq: bigint | number,
  time: number,
  publisher: Buffer,
  publish: Buffer,
  v: PublishView,
): Buffer {
  return encodeMessageRanges(
    topic,
    seq,
    time,
    publisher,
    publish,
    v.headersStart,
    v.headersEnd,
    publish,
    v.payloadStart,
  );
}

/**
 * Encodes a `message` frame with subscription id 0 (patched per delivery at {@link MESSAGE_SID_OFFSET}).
 * `headers` is the encoded header list.
 */
export function encodeMessage(
  topic: Buffer,
  seq: bigint | number,
  time: number,
  publisher: Buffer,
  headers: Uint8Array,
  payload: Uint8Array,
): Buffer {
  return encodeMessageRanges(topic, seq, time, publisher, headers, 0, headers.length, payload, 0);
}

/** The one `message` encoder: the header list is `headers[hStart, hEnd)`, the payload `payload[pStart…]`. */
function encodeMessageRanges(
  topic: Buffer,
  seq: bigint | number,
  time: number,
  publisher: Buffer,
  headers: Uint8Array,
  hStart: number,
  hEnd: number,
  payload: Uint8Array,
  pStart: number,
): Buffer {
  const payloadLength = payload.length - pStart;
  const size =
    2 +
    4 +
    lebSize(topic.length) +
    topic.length +
    16 +
    lebSize(publisher.length) +
    publisher.length +
    (hEnd - hStart) +
    lebSize(payloadLength) +
    payloadLength;
  const buf = Buffer.allocUnsafe(size);
  buf.writeUInt16LE(MESSAGE_INDEX, 0);
  buf.writeUInt32LE(0, 2);
  let pos = writeLeb(buf, 6, topic.length);
  copyBytes(topic, 0, topic.length, buf, pos);
  pos += topic.length;
  if (typeof seq === "number") {
    buf.writeUInt32LE(seq % 0x100000000, pos);
    buf.writeUInt32LE(Math.floor(seq / 0x100000000), pos + 4);
  } else buf.writeBigUInt64LE(seq, pos);
  buf.writeDoubleLE(time, pos + 8);
  pos = writeLeb(buf, pos + 16, publisher.length);
  copyBytes(publisher, 0, publisher.length, buf, pos);
  pos += publisher.length;
  copyBytes(headers, hStart, hEnd, buf, pos);
  pos += hEnd - hStart;
  pos = writeLeb(buf, pos, payloadLength);
  copyBytes(payload, pStart, payload.length, buf, pos);
  return buf;
}

const NO_HEADERS: Record<string, string> = Object.freeze({}) as Record<string, string>;

/**
 * A parsed `message` frame (a TopicMessage). Parsing only checks the layout and notes where each field is;
 * the topic, publisher, seq and headers are read from the frame when first asked for. The payload is a view
 * into the frame.
 */
export class MessageView {
  private topicValue: string | undefined;
  private seqValue: bigint | undefined;
  private publisherValue: string | undefined;
  private headersValue: Record<string, string> | undefined;

  constructor(
    private readonly frame: Buffer,
    readonly sid: number,
    private readonly topicStart: number,
    private readonly topicEnd: number,
    private readonly publisherEnd: number,
    private readonly headersStart: number,
    readonly payload: Uint8Array,
  ) {}

  get topic(): string {
    this.topicValue ??= this.frame.latin1Slice(this.topicStart, this.topicEnd);
    return this.topicValue;
  }
  get seq(): bigint {
    this.seqValue ??= this.frame.readBigUInt64LE(this.topicEnd);
    return this.seqValue;
  }
  get time(): number {
    return this.frame.readDoubleLE(this.topicEnd + 8);
  }
  get publisher(): string {
    if (this.publisherValue === undefined) {
      const len = readLeb(this.frame, this.topicEnd + 16, this.publisherEnd);
      this.publisherValue = this.frame.utf8Slice(this.publisherEnd - len, this.publisherEnd);
    }
    return this.publisherValue;
  }
  get headers(): Record<string, string> {
    if (this.headersValue === undefined) {
      const frame = this.frame;
      const count = readLeb(frame, this.headersStart, frame.length);
      let pos = lebEnd;
      let headers = NO_HEADERS;
      if (count > 0) {
        headers = {};
        for (let i = 0; i < count; i++) {
          const klen = readLeb(frame, pos, frame.length);
          const key = frame.utf8Slice(lebEnd, lebEnd + klen);
          const vlen = readLeb(frame, lebEnd + klen, frame.length);
          headers[key] = frame.utf8Slice(lebEnd, lebEnd + vlen);
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

/** Parses a `message` frame (checking its whole layout), or returns null if it is malformed. */
export function parseMessage(frame: Buffer): MessageView | null {
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
  const pos = skipHeaderList(frame, publisherEnd, end);
  if (pos < 0) return null;
  const len = readLeb(frame, pos, end);
  if (len < 0 || lebEnd + len !== end) return null;
  return new MessageView(
    frame,
    sid,
    topicStart,
    topicEnd,
    publisherEnd,
    publisherEnd,
    frame.subarray(lebEnd, end),
  );
}
