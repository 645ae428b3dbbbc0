import { EzipcError } from "../errors.js";

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

/** Topic names: like keys, 1–255 printable ASCII characters; `.` separates tokens; no `*` or `>` tokens. */
const TOPIC_RE = /^[\x21-\x7e]{1,255}$/;

/** Throws `EZIPC_INVALID_TOPIC` unless `topic` is a valid concrete topic name. */
export function checkTopic(topic: unknown): asserts topic is string {
  if (
    typeof topic !== "string" ||
    !TOPIC_RE.test(topic) ||
    topic.split(".").some((t) => t === "" || t === "*" || t === ">")
  ) {
    throw new EzipcError(
      "EZIPC_INVALID_TOPIC",
      `invalid topic ${JSON.stringify(topic)}: 1-255 printable ASCII characters, tokens separated by single dots, no * or > tokens`,
    );
  }
}

/**
 * A subscription pattern: a concrete topic, or tokens where `*` matches exactly one token and a final `>`
 * matches one or more (NATS syntax): `sensors.*.temp`, `sensors.>`. Throws `EZIPC_INVALID_TOPIC`.
 */
export function topicMatcher(pattern: string): { wildcard: boolean; match: (topic: string) => boolean } {
  if (typeof pattern !== "string" || !TOPIC_RE.test(pattern)) checkTopic(pattern);
  const tokens = pattern.split(".");
  if (tokens.some((t, i) => t === "" || (t === ">" && i !== tokens.length - 1))) {
    throw new EzipcError(
      "EZIPC_INVALID_TOPIC",
      `invalid pattern ${JSON.stringify(pattern)}: > must be the last token`,
    );
  }
  const wildcard = tokens.some((t) => t === "*" || t === ">");
  if (!wildcard) return { wildcard, match: (topic) => topic === pattern };
  // As in NATS, a wildcard does not match the system topics ($…) unless the pattern starts with $ itself.
  const system = pattern.startsWith("$");
  return {
    wildcard,
    match: (topic) => {
      if (!system && topic.startsWith("$")) return false;
      const parts = topic.split(".");
      for (let i = 0; i < tokens.length; i++) {
        const t = tokens[i]!;
        if (t === ">") return parts.length > i;
        if (i >= parts.length) return false;
        if (t !== "*" && t !== parts[i]) return false;
      }
      return parts.length === tokens.length;
    },
  };
}

/** One retained message: its encoded `message` frame (subscription id 0, patched per delivery). */
export interface Entry {
  readonly frame: Buffer;
  readonly time: number;
  /** Bytes counted against the history limits. */
  readonly bytes: number;
}

/**
 * One topic: its history (a bounded window of the newest messages) and its sequence numbers. Internally a
 * message is known by its index (1, 2, … as a plain number, fast); its seq is `base + index` as a bigint,
 * so seqs beyond 2^53 (a topic restored with such seqs) stay exact.
 */
export class Topic {
  /** Retained entries, oldest first: `entries[head…]`. */
  private entries: (Entry | undefined)[] = [];
  private head = 0;
  /** seq = base + index. */
  base = 0n;
  /** Index the next publish gets. */
  next = 1;
  bytes = 0;
  /** The name's bytes (ASCII), as frames carry it. */
  readonly nameBytes: Buffer;

  constructor(
    readonly name: string,
    public limits: TopicLimits,
  ) {
    this.nameBytes = Buffer.from(name, "latin1");
  }

  get count(): number {
    return this.entries.length - this.head;
  }
  /** Index of the oldest retained message (== next when empty). */
  get firstIndex(): number {
    return this.next - this.count;
  }
  /** Index of the newest message (0 if nothing was ever published). */
  get lastIndex(): number {
    return this.next - 1;
  }
  seqOf(index: number): bigint {
    return this.base + BigInt(index);
  }
  /** The index of `seq`, clamped to 0 below the first seq this topic can have. */
  indexOf(seq: bigint): number {
    const d = seq - this.base;
    return d < 0n ? 0 : Number(d);
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

  /** Appends an entry (it takes index `next`) and evicts to the limits; returns the index. */
  append(e: Entry): number {
    this.entries.push(e);
    this.bytes += e.bytes;
    this.enforce();
    return this.next++;
  }

  /** Restores an entry from a persistent store, with its seq (seqs must increase). */
  restore(seq: bigint, e: Entry): void {
    if (this.count === 0) this.base = seq - BigInt(this.next);
    else this.next = this.indexOf(seq);
    this.entries.push(e);
    this.bytes += e.bytes;
    this.next++;
  }

  /** The retained entry at `index`, if any. */
  at(index: number): Entry | undefined {
    if (index < this.firstIndex || index >= this.next) return undefined;
    return this.entries[this.head + (index - this.firstIndex)];
  }

  /** Drops the oldest entry; returns its size in bytes (0 when empty). */
  evictOldest(): number {
    if (this.count === 0) return 0;
    const e = this.entries[this.head]!;
    this.entries[this.head] = undefined;
    this.head++;
    this.bytes -= e.bytes;
    if (this.head > 1024 && this.head * 2 > this.entries.length) {
      this.entries = this.entries.slice(this.head);
      this.head = 0;
    }
    return e.bytes;
  }

  /** Evicts oldest entries until within the limits; returns the bytes freed. */
  enforce(): number {
    let freed = 0;
    while (
      this.count > 0 &&
      (this.bytes > this.limits.maxBytes || (this.limits.maxCount > 0 && this.count > this.limits.maxCount))
    ) {
      freed += this.evictOldest();
    }
    return freed;
  }
}
