import { sliceHead } from "./fast-frames.js";
import { piecesBetween, recordOffsets } from "./records.js";

const MAX_INDEX = BigInt(Number.MAX_SAFE_INTEGER);

export { checkTopic, topicMatcher } from "../protocol/names.js";

/** One published message as the hub keeps it. */
export interface StoredMessage {
  readonly seq: bigint;
  /** Publish time, milliseconds since the epoch (hub clock). */
  readonly time: number;
  /** `name#id` of the publishing client. */
  readonly publisher: string;
  readonly headers: readonly { key: string; value: string }[];
  readonly payload: Uint8Array;
  /** Bytes counted against the history limits (payload, headers and a fixed overhead). */
  readonly bytes: number;
}

/** Per-topic history limits. */
export interface TopicLimits {
  /** History bound in bytes (oldest evicted first). Default 16 MiB, like AlephZero's default arena. */
  maxBytes: number;
  /** History bound in messages; 0 for no count bound. Default 0. */
  maxCount: number;
}

/** Counted per stored message on top of its payload and headers. */
export const MESSAGE_OVERHEAD_BYTES = 64;

/**
 * One retained publish: its `count` consecutive messages as the head of a `message` frame (subscription id
 * 0, patched per delivery) and the records that follow it, kept apart so that deliveries send the records
 * as they are.
 */
export interface Entry {
  readonly head: Buffer;
  /** The records, or the first piece of them when `more` holds the rest. */
  records: Buffer;
  /**
   * The rest of the records when they are kept as the pieces they arrived in (a `publish` frame split
   * across socket reads, kept without joining it); null when `records` holds them all.
   */
  more: Buffer[] | null;
  readonly count: number;
  /** Index of its first message (set when appended). */
  first: number;
  readonly time: number;
  /** Bytes counted against the history limits: head, records and {@link MESSAGE_OVERHEAD_BYTES}. */
  readonly bytes: number;
  /** Where each record starts in `records`; computed when first needed (to send part of the entry). */
  offsets: Uint32Array | null;
}

/**
 * A new entry. `records` (with `more`, the pieces that follow it) is kept as it is unless the buffers it
 * views are too large for it (parts of socket reads): more than twice its size for one buffer, more than
 * three times for pieces; then it is copied into one buffer. Pieces are counted as at least half the
 * memory they hold, so an entry never holds more than twice the bytes it counts.
 */
export function entry(head: Buffer, records: Buffer, count: number, time: number, more?: Buffer[]): Entry {
  let length = records.length;
  let held = records.buffer.byteLength;
  const pieces = more !== undefined && more.length > 0;
  if (pieces) {
    for (const m of more!) {
      length += m.length;
      held += m.buffer.byteLength;
    }
  }
  const keep = pieces ? held <= 3 * length : held <= 2 * length;
  let own = records;
  if (!keep) own = pieces ? Buffer.concat([records, ...more!], length) : Buffer.from(records);
  const counted = keep && pieces ? Math.max(length, Math.ceil(held / 2)) : length;
  return {
    head,
    records: own,
    more: keep && pieces ? more! : null,
    count,
    first: 0,
    time,
    bytes: head.length + counted + MESSAGE_OVERHEAD_BYTES,
    offsets: null,
  };
}

/** An entry's records in one buffer (an entry kept in pieces is joined first, once). */
export function recordsOf(e: Entry): Buffer {
  if (e.more !== null) {
    e.records = Buffer.concat([e.records, ...e.more]);
    e.more = null;
  }
  return e.records;
}

/** The record offsets of an entry (into its pieces as if joined, when it is kept in pieces: not joined). */
export function offsetsOf(e: Entry): Uint32Array {
  e.offsets ??= recordOffsets(e.records, e.count, e.more ?? undefined);
  return e.offsets;
}

/**
 * Records `[k, k + n)` of an entry as views of what it keeps (no copy, pieces or not): the first view and
 * the rest.
 */
export function recordsSlice(e: Entry, k: number, n: number): { first: Buffer; rest: Buffer[] | undefined } {
  const offsets = offsetsOf(e);
  return piecesBetween(e.records, e.more, offsets[k]!, offsets[k + n]!);
}

/**
 * One topic: its history (a bounded window of the newest messages, kept as the entries they were
 * published in) and its sequence numbers. Internally a message is known by its index (1, 2, … as a plain
 * number, fast); its seq is `base + index` as a bigint, so seqs beyond 2^53 (a topic restored with such
 * seqs) stay exact.
 */
export class Topic {
  /** Retained entries, oldest first: `entries[head…]`. */
  private entries: (Entry | undefined)[] = [];
  private head = 0;
  /** seq = base + index. */
  base = 0n;
  /** Index the next publish gets. */
  next = 1;
  /**
   * Messages below this index may be delivered (and their seqs shown). It follows `next` at once, except on
   * a durable (persisted) topic, where it moves only when the store has committed what was appended
   * ({@link commit}): a subscriber never sees a message a crash could take back.
   */
  visible = 1;
  /** Persisted: appends stay invisible until {@link commit}. */
  durable = false;
  /** Messages retained. */
  count = 0;
  bytes = 0;
  /** Messages delivered to subscribers (a counter, for the monitor view's rates). */
  delivered = 0;
  /** The name's bytes (ASCII), as frames carry it. */
  readonly nameBytes: Buffer;

  constructor(
    readonly name: string,
    public limits: TopicLimits,
  ) {
    this.nameBytes = Buffer.from(name, "latin1");
  }

  /** Index of the oldest retained message (== next when empty). */
  get firstIndex(): number {
    return this.next - this.count;
  }
  /** Index of the newest message (0 if nothing was ever published). */
  get lastIndex(): number {
    return this.next - 1;
  }
  /** Index of the newest message that may be delivered. */
  get lastVisible(): number {
    return this.visible - 1;
  }
  /** What was appended below index `upTo` (default: everything so far) is committed: it may be delivered. */
  commit(upTo = this.next): void {
    if (upTo > this.visible) this.visible = Math.min(upTo, this.next);
  }
  /**
   * Raises the next seq to at least `seq` (a restored topic's high-water mark, so a seq given out before a
   * restart is never given again, even when its message was evicted since). Only while empty.
   */
  reserve(seq: bigint): void {
    if (this.count !== 0 || seq <= this.nextSeq) return;
    this.base = seq - BigInt(this.next);
  }
  seqOf(index: number): bigint {
    return this.base + BigInt(index);
  }
  /**
   * The index of `seq`, clamped to 0 below the first seq this topic can have, and to 2^53 - 1 far above
   * the newest (a `fromSeq` near 2^64: Number() of it rounded up, and its seq, 2^64, could not be encoded).
   */
  indexOf(seq: bigint): number {
    const d = seq - this.base;
    return d < 0n ? 0 : d > MAX_INDEX ? Number.MAX_SAFE_INTEGER : Number(d);
  }
  /** Seq of the oldest retained message (nextSeq when empty). */
  get firstSeq(): bigint {
    return this.seqOf(this.firstIndex);
  }
  /** Seq of the newest message, or `base` if nothing was ever published. */
  get lastSeq(): bigint {
    return this.seqOf(this.lastIndex);
  }
  get nextSeq(): bigint {
    return this.seqOf(this.next);
  }

  /**
   * Appends an entry (its first message takes index `next`); returns that index. The caller evicts to the
   * limits ({@link enforce}), knowing which messages subscribers still need.
   */
  append(e: Entry): number {
    const first = this.next;
    e.first = first;
    this.entries.push(e);
    this.bytes += e.bytes;
    this.count += e.count;
    this.next += e.count;
    if (!this.durable) this.visible = this.next;
    return first;
  }

  /**
   * A mirror fed by the cluster (topic-replica.ts) is given `seq` as its next one: if it is beyond the
   * next seq (the messages between were evicted cluster-wide before they reached this hub), the history is
   * dropped and numbering goes on from `seq`. Returns the bytes freed; -1 if `seq` was had already.
   */
  skipTo(seq: bigint): number {
    const next = this.nextSeq;
    if (seq < next) return -1;
    if (seq === next) return 0;
    let freed = 0;
    while (this.count > 0) freed += this.evictOldest();
    this.next = this.indexOf(seq);
    this.visible = this.next;
    return freed;
  }

  /** Restores an entry from a persistent store, with its first seq (seqs must increase). */
  restore(seq: bigint, e: Entry): void {
    if (this.count === 0) this.base = seq - BigInt(this.next);
    else this.next = this.indexOf(seq);
    e.first = this.next;
    this.entries.push(e);
    this.bytes += e.bytes;
    this.count += e.count;
    this.next += e.count;
    this.visible = this.next;
  }

  /** The retained entry holding message `index`, if any. */
  locate(index: number): Entry | undefined {
    if (index < this.firstIndex || index >= this.next) return undefined;
    const entries = this.entries;
    let lo = this.head;
    let hi = entries.length - 1;
    // The newest entry is the usual answer for live subscribers: check it first.
    if (entries[hi]!.first <= index) return entries[hi];
    while (lo < hi) {
      const mid = (lo + hi + 1) >>> 1;
      if (entries[mid]!.first <= index) lo = mid;
      else hi = mid - 1;
    }
    return entries[lo];
  }

  /** The retained entries, oldest first. */
  *retained(): IterableIterator<Entry> {
    for (let i = this.head; i < this.entries.length; i++) yield this.entries[i]!;
  }

  /** Drops the oldest entry; returns the bytes freed (0 when empty). */
  evictOldest(): number {
    if (this.count === 0) return 0;
    const e = this.entries[this.head]!;
    this.entries[this.head] = undefined;
    this.head++;
    this.bytes -= e.bytes;
    this.count -= e.count;
    if (this.head > 1024 && this.head * 2 > this.entries.length) {
      this.entries = this.entries.slice(this.head);
      this.head = 0;
    }
    return e.bytes;
  }

  /** Drops the oldest `n` messages of the oldest entry (fewer than it holds); returns the bytes freed. */
  private trimOldest(n: number): number {
    const e = this.entries[this.head]!;
    const rest = recordsSlice(e, n, e.count - n);
    const trimmed = entry(
      sliceHead(e.head, e.count - n, this.seqOf(e.first + n)),
      rest.first,
      e.count - n,
      e.time,
      rest.rest,
    );
    trimmed.first = e.first + n;
    // (Offsets into the records as if joined: the same whether entry() kept the views or copied them.)
    const offsets = e.offsets!;
    const base = offsets[n]!;
    trimmed.offsets = offsets.subarray(n).map((o) => o - base);
    this.entries[this.head] = trimmed;
    this.count -= n;
    const freed = e.bytes - trimmed.bytes;
    this.bytes -= freed;
    return freed;
  }

  /** Whether the history is over its byte or count bound. */
  get over(): boolean {
    return (
      this.bytes > this.limits.maxBytes || (this.limits.maxCount > 0 && this.count > this.limits.maxCount)
    );
  }

  /**
   * Evicts the oldest messages until within the limits — or, with `floor`, never a message at or above
   * index `floor` (one a subscriber has not been sent yet), and with `targetBytes`, on down to that many
   * bytes (below the bound, so a held publisher resumes with room to spare). Returns the bytes freed. Over
   * the byte bound the oldest entries go whole (so the history may end up to one publish under it); over
   * the count bound, exactly the oldest messages over it go, cutting the oldest entry when only part of it
   * has to.
   */
  enforce(floor = Number.POSITIVE_INFINITY, targetBytes = this.limits.maxBytes): number {
    let freed = 0;
    const { maxCount } = this.limits;
    while (this.count > 0 && this.bytes > targetBytes) {
      const e = this.entries[this.head]!;
      if (e.first + e.count > floor) break;
      freed += this.evictOldest();
    }
    while (maxCount > 0 && this.count > maxCount) {
      const e = this.entries[this.head]!;
      const n = Math.min(this.count - maxCount, floor - e.first);
      if (n <= 0) break;
      freed += n < e.count ? this.trimOldest(n) : this.evictOldest();
    }
    return freed;
  }
}
