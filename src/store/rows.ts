/**
 * What the hub reads back from its store is checked before the hub trusts it. The file is on a disk anyone
 * with access may edit, restore from an old backup, or half-overwrite: a row the hub would misread (an
 * unknown kind, a version that is not a whole number, headers that are not a list of strings, a topic whose
 * seqs skip) stops the start with `EZIPC_STORE`, naming the file, the table, the row and what is wrong.
 * Nothing in the file is changed: the operator fixes or deletes the row, or restores a backup.
 */
import { EzipcError } from "../errors.js";
import { MAX_HEADER_KEY, MAX_HEADER_VALUE, MAX_HEADERS } from "../protocol/fields.js";
import { checkKey, checkTopic } from "../protocol/names.js";
import { MESSAGE_OVERHEAD_BYTES, type StoredMessage, type TopicLimits } from "../pubsub/topics.js";
import type { StoredBlock } from "../vars/block-store.js";
import { KIND_BYTES, KIND_JSON } from "../vars/vars-messages.js";

const MAX_U32 = 0xffff_ffff;
const MAX_U64 = 2n ** 64n - 1n;
/** Versions are numbers on the hub: exact up to 2^53 - 1. */
const MAX_VERSION = BigInt(Number.MAX_SAFE_INTEGER);
/** Publisher names (`name#id`) longer than this are not ones a hub wrote. */
const MAX_PUBLISHER_BYTES = 4096;

/** Throws the error a row the hub cannot trust gets. */
export function badRow(file: string, where: string, what: string): never {
  throw new EzipcError(
    "EZIPC_STORE",
    `${file}: ${where}: ${what}; the hub changed nothing: fix or delete that row, or restore a backup`,
  );
}

/** As SQLite gives an integer column with safe integers on: a bigint (a number if stored as REAL). */
function wholeNumber(v: unknown, min: bigint, max: bigint): bigint | null {
  const n = typeof v === "bigint" ? v : typeof v === "number" && Number.isInteger(v) ? BigInt(v) : null;
  return n !== null && n >= min && n <= max ? n : null;
}

function isBytes(v: unknown): v is Buffer {
  return Buffer.isBuffer(v);
}

/** A row of `blocks` (read with safe integers), checked. */
export function blockFromRow(file: string, r: Record<string, unknown>): StoredBlock {
  const where = `blocks row ${JSON.stringify(String(r.key).slice(0, 300))}`;
  try {
    checkKey(r.key);
  } catch (err) {
    badRow(file, where, (err as Error).message);
  }
  const kind = wholeNumber(r.kind, 0n, 255n);
  if (kind === null || (Number(kind) !== KIND_BYTES && Number(kind) !== KIND_JSON)) {
    badRow(file, where, `kind ${String(r.kind)} is neither ${KIND_BYTES} (bytes) nor ${KIND_JSON} (json)`);
  }
  const version = wholeNumber(r.version, 0n, MAX_VERSION);
  if (version === null) {
    badRow(file, where, `version ${String(r.version)} is not a whole number from 0 to 2^53 - 1`);
  }
  if (!isBytes(r.data)) badRow(file, where, `data is ${typeof r.data}, not a blob`);
  if (Number(kind) === KIND_JSON) {
    try {
      JSON.parse(new TextDecoder("utf-8", { fatal: true }).decode(r.data));
    } catch {
      badRow(file, where, "a json key's data is not a JSON document in UTF-8");
    }
  }
  return { key: r.key as string, kind: Number(kind), version: Number(version), data: r.data };
}

/** A row of `topics` (read with safe integers), checked. */
export function topicFromRow(
  file: string,
  r: Record<string, unknown>,
): { name: string; limits: TopicLimits; nextSeq: bigint } {
  const where = `topics row ${JSON.stringify(String(r.name).slice(0, 300))}`;
  try {
    checkTopic(r.name);
  } catch (err) {
    badRow(file, where, (err as Error).message);
  }
  const maxBytes = wholeNumber(r.max_bytes, 0n, BigInt(MAX_U32));
  const maxCount = wholeNumber(r.max_count, 0n, BigInt(MAX_U32));
  const next = wholeNumber(r.next_seq, 0n, MAX_U64);
  if (maxBytes === null) badRow(file, where, `max_bytes ${String(r.max_bytes)} is not from 0 to 2^32 - 1`);
  if (maxCount === null) badRow(file, where, `max_count ${String(r.max_count)} is not from 0 to 2^32 - 1`);
  if (next === null) badRow(file, where, `next_seq ${String(r.next_seq)} is not from 0 to 2^64 - 1`);
  return {
    name: r.name as string,
    limits: { maxBytes: Number(maxBytes), maxCount: Number(maxCount) },
    nextSeq: next,
  };
}

/**
 * A row of `messages` of `topic` (read with safe integers), checked; `expected` is the seq it must have
 * (the one after the previous row's), or null for the topic's first.
 */
export function messageFromRow(
  file: string,
  topic: string,
  r: Record<string, unknown>,
  expected: bigint | null,
): StoredMessage {
  const where = `messages row (${JSON.stringify(topic)}, ${String(r.seq)})`;
  const seq = wholeNumber(r.seq, 1n, MAX_U64);
  if (seq === null) badRow(file, where, "seq is not from 1 to 2^64 - 1");
  if (expected !== null && seq !== expected) {
    badRow(
      file,
      where,
      `the topic's seqs skip from ${expected - 1n} to ${seq} (its history must be consecutive)`,
    );
  }
  const time = typeof r.time === "bigint" ? Number(r.time) : r.time;
  if (typeof time !== "number" || !Number.isFinite(time)) badRow(file, where, "time is not a number");
  if (typeof r.publisher !== "string" || Buffer.byteLength(r.publisher) > MAX_PUBLISHER_BYTES) {
    badRow(file, where, `publisher is not a text of at most ${MAX_PUBLISHER_BYTES} bytes`);
  }
  if (!isBytes(r.payload)) badRow(file, where, `payload is ${typeof r.payload}, not a blob`);
  const headers = parseHeaders(r.headers);
  if (headers === null) {
    badRow(
      file,
      where,
      `headers are not a JSON list of at most ${MAX_HEADERS} {"key", "value"} texts (at most ${MAX_HEADER_KEY} and ${MAX_HEADER_VALUE} bytes)`,
    );
  }
  let bytes = r.payload.length + MESSAGE_OVERHEAD_BYTES;
  for (const h of headers) bytes += h.key.length + h.value.length;
  return { seq, time, publisher: r.publisher, headers, payload: r.payload, bytes };
}

function parseHeaders(text: unknown): { key: string; value: string }[] | null {
  if (typeof text !== "string") return null;
  let list: unknown;
  try {
    list = JSON.parse(text);
  } catch {
    return null;
  }
  if (!Array.isArray(list) || list.length > MAX_HEADERS) return null;
  for (const h of list as unknown[]) {
    if (typeof h !== "object" || h === null) return null;
    const { key, value } = h as { key?: unknown; value?: unknown };
    if (typeof key !== "string" || typeof value !== "string") return null;
    if (Buffer.byteLength(key) > MAX_HEADER_KEY || Buffer.byteLength(value) > MAX_HEADER_VALUE) return null;
  }
  return list as { key: string; value: string }[];
}
