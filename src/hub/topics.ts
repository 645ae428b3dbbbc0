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

/**
 * One topic: its history (a bounded window of the newest messages) and its sequence numbers. Sequence
 * numbers start at 1 and never repeat, even after eviction; they are bigints (safe beyond 2^53).
 */
export class Topic {
  /** Retained messages, oldest first: `messages[head…]`. */
  private messages: StoredMessage[] = [];
  private head = 0;
  /** Seq the next publish gets. */
  nextSeq = 1n;
  bytes = 0;

  constructor(
    readonly name: string,
    public limits: TopicLimits,
  ) {}

  get count(): number {
    return this.messages.length - this.head;
  }
  /** Seq of the oldest retained message (== nextSeq when empty). */
  get firstSeq(): bigint {
    return this.count === 0 ? this.nextSeq : this.messages[this.head]!.seq;
  }
  /** Seq of the newest message, or 0n if nothing was ever published. */
  get lastSeq(): bigint {
    return this.nextSeq - 1n;
  }

  /** Appends a message (assigning its seq) and evicts to the limits; returns what was evicted in bytes. */
  append(m: Omit<StoredMessage, "seq">): StoredMessage {
    const stored: StoredMessage = { ...m, seq: this.nextSeq++ };
    this.messages.push(stored);
    this.bytes += stored.bytes;
    this.enforce();
    return stored;
  }

  /** Restores a stored message (from a persistent store), keeping its seq. */
  restore(m: StoredMessage): void {
    this.messages.push(m);
    this.bytes += m.bytes;
    this.nextSeq = m.seq + 1n;
  }

  /** The retained message with this seq, if any. */
  get(seq: bigint): StoredMessage | undefined {
    if (this.count === 0 || seq < this.firstSeq || seq > this.lastSeq) return undefined;
    return this.messages[this.head + Number(seq - this.firstSeq)];
  }

  /** Drops the oldest message; returns its size in bytes (0 when empty). */
  evictOldest(): number {
    if (this.count === 0) return 0;
    const m = this.messages[this.head]!;
    this.messages[this.head] = undefined as unknown as StoredMessage;
    this.head++;
    this.bytes -= m.bytes;
    if (this.head > 1024 && this.head * 2 > this.messages.length) {
      this.messages = this.messages.slice(this.head);
      this.head = 0;
    }
    return m.bytes;
  }

  /** Evicts oldest messages until within the limits; returns the bytes freed. */
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
