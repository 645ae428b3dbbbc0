/**
 * Topics of a cluster in NATS JetStream streams (docs/cluster.md): one stream per topic, whose sequence
 * number is the topic's seq everywhere. A publish is a message on the stream's subject (acknowledged ones
 * through JetStream, with a message id so that a retry is not stored twice; fire-and-forget ones as plain
 * NATS messages, which the stream stores all the same); each hub follows every topic with an ordered
 * consumer from the stream's oldest message and feeds its local history (its mirror) in seq order.
 *
 * Stream `PREFIX_t_SUFFIX`, subject `PREFIX.t.SUFFIX`, description `ezipc topic NAME`: SUFFIX is the topic
 * name with every byte outside `[A-Za-z0-9_-]` written `=XX` (kv-vars.ts), or, if that is longer than 64
 * characters, `==` and 40 hex digits of the name's SHA-256. The description names the topic exactly.
 * Message: `u8 format (1) · f64 time (LE, ms) · u16 publisher length (LE) · publisher (UTF-8) · record`.
 * New topics and changed limits are announced on `PREFIX.topics.changed` (payload: the name), and the
 * streams are listed again every few seconds in case an announcement was missed.
 */
import { createHash, randomBytes } from "node:crypto";
import {
  type Consumer,
  type ConsumerMessages,
  DeliverPolicy,
  DiscardPolicy,
  type JetStreamClient,
  type JetStreamManager,
  type JsMsg,
  type NatsConnection,
  RetentionPolicy,
  StorageType,
  type StreamConfig,
  type StreamInfo,
  type Subscription,
} from "nats";
import { log } from "../log.js";
import { checkRecords, encodeHeaders, encodeRecord } from "../pubsub/records.js";
import type { ReplicatedMessage, TopicReplica } from "../pubsub/topic-replica.js";
import type { TopicLimits } from "../pubsub/topics.js";
import { clusterError } from "./errors.js";
import { encodeKey } from "./kv-vars.js";

const FORMAT = 1;
const DESCRIPTION = "ezipc topic ";
/** What stands for a message on a topic's stream that no hub wrote. */
const MALFORMED = encodeRecord(encodeHeaders([{ key: "ezipc-malformed", value: "1" }]), new Uint8Array(0));
const UNKNOWN = Buffer.from("?");
/** How often the streams are listed again (new topics whose announcement was missed). */
const RELIST_MS = 2_000;

/** The stream-name part of a topic's stream and subject. */
export function topicSuffix(topic: string): string {
  const enc = encodeKey(topic);
  return enc.length <= 64 ? enc : `==${createHash("sha256").update(topic).digest("hex").slice(0, 40)}`;
}

/** Encodes one stream message. */
export function encodeTopicMessage(time: number, publisher: Buffer, record: Buffer): Buffer {
  const out = Buffer.allocUnsafe(11 + publisher.length + record.length);
  out[0] = FORMAT;
  out.writeDoubleLE(time, 1);
  out.writeUInt16LE(publisher.length, 9);
  publisher.copy(out, 11);
  record.copy(out, 11 + publisher.length);
  return out;
}

/**
 * Decodes one stream message; null if it is not one {@link encodeTopicMessage} makes (anything on the
 * stream's subject is stored: a malformed message is skipped and counted, never sent to a subscriber).
 */
export function decodeTopicMessage(seq: number, data: Uint8Array): ReplicatedMessage | null {
  const b = Buffer.from(data.buffer, data.byteOffset, data.length);
  if (b.length < 11 || b[0] !== FORMAT) return null;
  const n = b.readUInt16LE(9);
  const time = b.readDoubleLE(1);
  if (b.length < 11 + n || !Number.isFinite(time) || time < 0) return null;
  const record = b.subarray(11 + n);
  // Delivered to subscribers as it is: it must be exactly one well-formed record.
  if (!checkRecords(record, 0, record.length, 1)) return null;
  return { seq: BigInt(seq), time, publisher: b.subarray(11, 11 + n), record };
}

function limitsOf(info: StreamInfo): TopicLimits {
  return {
    maxBytes: info.config.max_bytes > 0 ? info.config.max_bytes : Number.MAX_SAFE_INTEGER,
    maxCount: Math.max(info.config.max_msgs, 0),
  };
}

function notFound(err: unknown): boolean {
  const e = err as { api_error?: { err_code?: number }; code?: string };
  return e.api_error?.err_code === 10059 || e.code === "404";
}

interface Followed {
  readonly ready: Promise<void>;
  messages: ConsumerMessages | null;
  /** The next seq to report (1 until the first). */
  next: number;
  /** `next` at the last listing, and how many listings in a row found the stream ahead of it. */
  seenNext: number;
  behind: number;
  /** Reports one stream message (in seq order; one already had is ignored). */
  deliver: (seq: number, data: Uint8Array) => void;
  /** Messages are being read one by one ({@link JsTopics.repair}): no consumer runs meanwhile. */
  repairing: boolean;
}

export class JsTopics implements TopicReplica {
  private readonly ensured = new Map<string, Promise<void>>();
  /** Topics whose stream is known to exist (the publishing fast path skips the await). */
  private readonly exists = new Set<string>();
  private readonly followed = new Map<string, Followed>();
  private onTopic: (topic: string, limits: TopicLimits) => void = () => {};
  private onMessage: (topic: string, m: ReplicatedMessage) => void = () => {};
  private announcements: Subscription | null = null;
  private relist: NodeJS.Timeout | null = null;
  private stopped = false;
  private nextId = 0;
  private readonly idPrefix = randomBytes(8).toString("hex");
  readonly counters = { published: 0, retried: 0, mirrored: 0, malformed: 0, restarted: 0 };

  constructor(
    private readonly nc: NatsConnection,
    private readonly js: JetStreamClient,
    private readonly jsm: JetStreamManager,
    private readonly o: { prefix: string; replicas: number; timeoutMs: number },
  ) {}

  private stream(topic: string): string {
    return `${this.o.prefix}_t_${topicSuffix(topic)}`;
  }
  private subject(topic: string): string {
    return `${this.o.prefix}.t.${topicSuffix(topic)}`;
  }

  /**
   * Retries `fn` on failure (a leader election, a node restarting) until `timeoutMs` has passed; a message
   * over NATS' max_payload fails at once.
   */
  private async retried<T>(what: string, fn: () => Promise<T>): Promise<T> {
    const deadline = Date.now() + this.o.timeoutMs;
    for (;;) {
      try {
        return await fn();
      } catch (err) {
        const permanent = (err as { code?: string }).code === "MAX_PAYLOAD_EXCEEDED";
        if (permanent || this.stopped || Date.now() > deadline) throw clusterError(what, err);
        this.counters.retried++;
        await new Promise((r) => setTimeout(r, 100));
      }
    }
  }

  /** Makes the topic's stream if no hub has (with `limits`); resolves once it exists. */
  private ensure(topic: string, limits: TopicLimits): Promise<void> {
    let p = this.ensured.get(topic);
    if (p) return p;
    const name = this.stream(topic);
    const config: Partial<StreamConfig> = {
      name,
      subjects: [this.subject(topic)],
      description: `${DESCRIPTION}${topic}`,
      retention: RetentionPolicy.Limits,
      storage: StorageType.File,
      num_replicas: this.o.replicas,
      discard: DiscardPolicy.Old,
      max_bytes: limits.maxBytes,
      max_msgs: limits.maxCount > 0 ? limits.maxCount : -1,
      duplicate_window: 120_000_000_000,
      allow_direct: false,
    };
    p = this.retried(`making the stream of topic ${topic}`, async () => {
      try {
        await this.jsm.streams.info(name);
        return;
      } catch (err) {
        if (!notFound(err)) throw err;
      }
      try {
        await this.jsm.streams.add(config);
      } catch (err) {
        // Another hub made it first (maybe with other limits): it exists.
        await this.jsm.streams.info(name).catch(() => {
          throw err;
        });
        return;
      }
      this.nc.publish(`${this.o.prefix}.topics.changed`, Buffer.from(topic, "latin1"));
    }).then(
      () => {
        this.exists.add(topic);
      },
      (err) => {
        this.ensured.delete(topic);
        throw err;
      },
    );
    this.ensured.set(topic, p);
    return p;
  }

  async publish(
    topic: string,
    publisher: Buffer,
    time: number,
    records: readonly Buffer[],
    ack: boolean,
  ): Promise<bigint> {
    // Encoded (copied) before any await: the records may be views into a read buffer that is reused.
    const bodies = records.map((r) => encodeTopicMessage(time, publisher, r));
    if (!this.exists.has(topic)) await this.ensure(topic, { maxBytes: 16 * 1024 * 1024, maxCount: 0 });
    const subject = this.subject(topic);
    this.counters.published += bodies.length;
    if (!ack) {
      for (const body of bodies) this.nc.publish(subject, body);
      return 0n;
    }
    const acks = bodies.map((body) => {
      const msgID = `${this.idPrefix}-${this.nextId++}`;
      // Each attempt waits a second at most: one sent to a stream leader that just died gets no answer.
      const deadline = Date.now() + this.o.timeoutMs;
      return this.retried(`publishing to topic ${topic}`, () =>
        this.js.publish(subject, body, {
          msgID,
          timeout: Math.max(1, Math.min(1_000, deadline - Date.now())),
        }),
      );
    });
    const first = await acks[0]!;
    await Promise.all(acks);
    return BigInt(first.seq);
  }

  follow(topic: string, limits: TopicLimits): Promise<void> {
    const known = this.followed.get(topic);
    if (known) return known.ready;
    const f: Followed = {
      ready: this.startFollowing(topic, limits, () => f),
      messages: null,
      next: 1,
      seenNext: 1,
      behind: 0,
      deliver: () => {},
      repairing: false,
    };
    this.followed.set(topic, f);
    f.ready.catch(() => {
      if (this.followed.get(topic) === f) this.followed.delete(topic);
    });
    return f.ready;
  }

  private async startFollowing(topic: string, limits: TopicLimits, self: () => Followed): Promise<void> {
    await this.ensure(topic, limits);
    const name = this.stream(topic);
    const last = await this.retried(`following topic ${topic}`, async () => {
      const info = await this.jsm.streams.info(name);
      return info.state.messages === 0 ? 0 : info.state.last_seq;
    });
    if (this.stopped) return;
    let caughtUp: () => void = () => {};
    const ready = new Promise<void>((resolve) => {
      caughtUp = resolve;
    });
    if (last === 0) caughtUp();
    self().deliver = (seq, data) => {
      const f = self();
      if (seq < f.next) return;
      f.next = seq + 1;
      const msg = decodeTopicMessage(seq, data);
      if (msg) this.counters.mirrored++;
      else this.counters.malformed++;
      // A malformed message keeps its seq, as an empty one marked `ezipc-malformed` (the same on every hub),
      // so that the history has no hole.
      this.onMessage(topic, msg ?? { seq: BigInt(seq), time: 0, publisher: UNKNOWN, record: MALFORMED });
      if (seq >= last) caughtUp();
    };
    // An ordered consumer lives on one NATS node: when that node dies, nats.js may keep pulling from
    // nothing. Two missed heartbeats (2 s each) stop it — and so does the listing every 2 s that finds the
    // stream ahead of a mirror that has not moved twice in a row ({@link list}) — and a new one starts from
    // the next seq.
    const follow = async (): Promise<void> => {
      const next = self().next;
      const consumer: Consumer = await this.js.consumers.get(
        name,
        next > 1 ? { deliver_policy: DeliverPolicy.StartSequence, opt_start_seq: next } : {},
      );
      const msgs = await consumer.consume({
        expires: 5_000,
        idle_heartbeat: 2_000,
        callback: (m: JsMsg) => {
          if (!self().repairing) self().deliver(m.seq, m.data);
        },
      });
      self().messages = msgs;
      void (async () => {
        for await (const st of await msgs.status()) {
          if (st.type === "heartbeats_missed" && Number(st.data) >= 2 && !this.stopped) {
            this.counters.restarted++;
            log("warn", "cluster", "topic mirror stalled; following again", { topic, next: self().next });
            msgs.stop();
          }
        }
      })().catch(() => {});
      // Ends when it is stopped (here, by the listing, or by stop()) or fails.
      await msgs.closed();
    };
    void (async () => {
      while (!this.stopped) {
        try {
          await follow();
        } catch (err) {
          log("debug", "cluster", "following a topic: again", { topic, error: err });
        }
        if (!this.stopped) await new Promise((r) => setTimeout(r, 250));
        while (self().repairing && !this.stopped) await new Promise((r) => setTimeout(r, 100));
      }
    })();
    await ready;
  }

  async lastSeq(topic: string): Promise<bigint> {
    const info = await this.retried(`reading topic ${topic}`, () =>
      this.jsm.streams.info(this.stream(topic)),
    );
    return BigInt(info.state.last_seq);
  }

  async configure(topic: string, limits: TopicLimits): Promise<void> {
    await this.ensure(topic, limits);
    const name = this.stream(topic);
    await this.retried(`configuring topic ${topic}`, async () => {
      const info = await this.jsm.streams.info(name);
      await this.jsm.streams.update(name, {
        ...info.config,
        max_bytes: limits.maxBytes,
        max_msgs: limits.maxCount > 0 ? limits.maxCount : -1,
      });
    });
    this.nc.publish(`${this.o.prefix}.topics.changed`, Buffer.from(topic, "latin1"));
  }

  async start(
    onTopic: (topic: string, limits: TopicLimits) => void,
    onMessage: (topic: string, m: ReplicatedMessage) => void,
  ): Promise<void> {
    this.onTopic = onTopic;
    this.onMessage = onMessage;
    this.announcements = this.nc.subscribe(`${this.o.prefix}.topics.changed`, {
      callback: (_err, m) => {
        const topic = Buffer.from(m.data).toString("latin1");
        this.learn(topic).catch((err) => log("warn", "cluster", "new topic", { topic, error: err }));
      },
    });
    await this.list();
    this.relist = setInterval(() => {
      this.list().catch((err) => log("debug", "cluster", "listing topics", { error: err }));
    }, RELIST_MS);
    this.relist.unref();
  }

  /** A topic was announced: reports its limits and follows it. */
  private async learn(topic: string): Promise<void> {
    const info = await this.jsm.streams.info(this.stream(topic));
    this.report(topic, info);
  }

  private report(topic: string, info: StreamInfo): Promise<void> {
    const limits = limitsOf(info);
    this.exists.add(topic);
    this.onTopic(topic, limits);
    return this.follow(topic, limits);
  }

  /** Lists the topics' streams; reports and follows every one; resolves once all are caught up. */
  private async list(): Promise<void> {
    const streamPrefix = `${this.o.prefix}_t_`;
    const following: Promise<void>[] = [];
    await this.retried("listing the cluster's topics", async () => {
      for await (const info of this.jsm.streams.list()) {
        const description = info.config.description ?? "";
        if (!info.config.name.startsWith(streamPrefix) || !description.startsWith(DESCRIPTION)) continue;
        const topic = description.slice(DESCRIPTION.length);
        if (this.stream(topic) !== info.config.name) continue;
        const f = this.followed.get(topic);
        if (!f) {
          following.push(this.report(topic, info));
          continue;
        }
        // A mirror that has not moved while its stream is ahead, two listings in a row, is stalled.
        const ahead = info.state.messages > 0 && info.state.last_seq >= f.next;
        f.behind = ahead && f.next === f.seenNext ? f.behind + 1 : 0;
        f.seenNext = f.next;
        if (f.behind >= 2) {
          f.behind = 0;
          this.counters.restarted++;
          log("warn", "cluster", "topic mirror behind its stream; reading on and following again", {
            topic,
            next: f.next,
          });
          f.messages?.stop();
          following.push(this.repair(topic, f, info.state.last_seq));
        }
      }
    });
    await Promise.all(following);
  }

  /**
   * Reads a stalled mirror's missing messages one by one (up to 1,000 per listing), for when no consumer
   * delivers (a consumer made while a NATS node fails can stay silent); a new consumer starts after them.
   */
  private async repair(topic: string, f: Followed, last: number): Promise<void> {
    f.repairing = true;
    try {
      const name = this.stream(topic);
      for (let seq = f.next, n = 0; seq <= last && n < 1_000 && !this.stopped; seq++, n++) {
        try {
          const m = await this.jsm.streams.getMessage(name, { seq });
          f.deliver(m.seq, m.data);
        } catch (err) {
          if (!notFound(err)) throw err; // (evicted, or never stored: the next one)
        }
      }
    } catch (err) {
      log("warn", "cluster", "reading a stalled topic's messages failed", { topic, error: err });
    } finally {
      f.repairing = false;
    }
  }

  stop(): void {
    this.stopped = true;
    this.announcements?.unsubscribe();
    if (this.relist) clearInterval(this.relist);
    for (const f of this.followed.values()) f.messages?.stop();
  }
}
