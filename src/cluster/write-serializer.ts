/**
 * Compare-and-write on the cluster's key-value bucket, one at a time per partition of the keys
 * (docs/cluster.md, "Why writes are queued").
 *
 * JetStream checks a publish's expected last sequence before it proposes the message to its replicas, not
 * when the replicas apply it: two compare-and-writes of one key that reach a replicated stream's leader
 * within its commit latency can both be accepted (nats-server issue 4320; Debian's 2.9 has it — measured
 * here: 4 writers × 50 increments of one R3 key ended at 151, not 200). So no two hubs may have a
 * compare-and-write of one key in flight at once. Each write goes as an *intent* into a work-queue stream
 * whose subject names the key's partition; each partition has one durable consumer with at most one message
 * unacknowledged, which every hub pulls from. Whichever hub gets an intent makes its compare-and-write on the
 * bucket — alone in its partition, cluster-wide — answers the hub that sent it, then acknowledges it. The
 * consumer's state is replicated like the streams, so this holds when a NATS node or a hub fails.
 *
 * If the hub making a write dies before acknowledging it, the intent is delivered again (after `ackWaitMs`)
 * to another hub; the bucket entry carries the intent's id in a header, so a second attempt that loses the
 * compare-and-write finds its own first attempt there and answers with its version. If the answer is lost
 * (the sending hub's NATS connection was moving), the sending hub looks at the entry the same way before
 * calling the write failed.
 */
import { randomBytes } from "node:crypto";
import {
  AckPolicy,
  type Consumer,
  headers,
  type JetStreamClient,
  type JetStreamManager,
  type JsMsg,
  type KV,
  type NatsConnection,
  RetentionPolicy,
  StorageType,
} from "nats";
import { EzipcError } from "../errors.js";

/** The header naming the intent that wrote a bucket entry. */
const INTENT_HEADER = "Ezipc-Intent";

import { log } from "../log.js";

import { clusterError } from "./errors.js";

/** What an intent asks. */
export interface WriteIntent {
  /** `create`: only if the key does not exist; `update`: only if its revision is `expect`. */
  readonly op: "create" | "update";
  /** The key as the bucket knows it (encoded). */
  readonly bucketKey: string;
  readonly expect: number;
  /** The bucket entry's value. */
  readonly value: Buffer;
}

/** How an intent ended: the new revision, or the entry that is there (null: none). */
export type WriteOutcome = { version: number } | { lost: true };

const WRONG_LAST_SEQUENCE = 10071;

/** Whether `err` is JetStream's answer to a write whose expected last revision was not the subject's. */
export function lostRace(err: unknown): boolean {
  const e = err as { api_error?: { err_code?: number }; message?: string };
  return e.api_error?.err_code === WRONG_LAST_SEQUENCE || /wrong last sequence/.test(String(e.message));
}

export interface SerializerOptions {
  prefix: string;
  /** The key-value bucket's name. */
  bucket: string;
  replicas: number;
  /** Partitions of the keys (writes of different partitions go in parallel). Default 8. */
  partitions?: number;
  /** An intent not acknowledged by then is given to another hub. Default 5 s. */
  ackWaitMs?: number;
  /** A write not answered by then fails with `EZIPC_CLUSTER`. */
  timeoutMs: number;
}

export class WriteSerializer {
  private readonly hubId = randomBytes(8).toString("hex");
  private readonly waiting = new Map<
    string,
    { resolve: (o: WriteOutcome) => void; reject: (e: Error) => void }
  >();
  private readonly partitions: number;
  private readonly stream: string;
  private stopped = false;
  private readonly loops: Promise<void>[] = [];

  constructor(
    private readonly nc: NatsConnection,
    private readonly js: JetStreamClient,
    private readonly kv: KV,
    private readonly o: SerializerOptions,
  ) {
    this.partitions = o.partitions ?? 8;
    this.stream = `${o.prefix}_writes`;
  }

  private jsm: JetStreamManager | null = null;

  /** Makes (or binds) the intents stream and its consumers (again if need be: it is idempotent). */
  async ensure(jsm: JetStreamManager): Promise<void> {
    this.jsm = jsm;
    const subjects = [`${this.o.prefix}.writes.>`];
    try {
      await jsm.streams.info(this.stream);
    } catch {
      await jsm.streams
        .add({
          name: this.stream,
          subjects,
          retention: RetentionPolicy.Workqueue,
          storage: StorageType.File,
          num_replicas: this.o.replicas,
          max_age: 60 * 1e9,
        })
        .catch(async (err: unknown) => {
          // Another hub made it meanwhile.
          await jsm.streams.info(this.stream).catch(() => {
            throw err;
          });
        });
    }
    for (let p = 0; p < this.partitions; p++) {
      const name = `p${p}`;
      await jsm.consumers
        .add(this.stream, {
          durable_name: name,
          filter_subject: `${this.o.prefix}.writes.${p}`,
          ack_policy: AckPolicy.Explicit,
          max_ack_pending: 1,
          ack_wait: (this.o.ackWaitMs ?? 5_000) * 1e6,
          num_replicas: this.o.replicas,
        })
        .catch(async (err: unknown) => {
          await jsm.consumers.info(this.stream, name).catch(() => {
            throw err;
          });
        });
    }
  }

  /** The partitions' consumers (after {@link ensure}; idempotent, so the setup can retry it). */
  async consumers(): Promise<Consumer[]> {
    const all: Consumer[] = [];
    for (let p = 0; p < this.partitions; p++) all.push(await this.js.consumers.get(this.stream, `p${p}`));
    return all;
  }

  /** Takes part in making writes, pulling from `consumers` ({@link consumers}). */
  start(consumers: Consumer[]): void {
    const results = this.nc.subscribe(`${this.o.prefix}.results.${this.hubId}`);
    void (async () => {
      for await (const m of results) {
        const r = JSON.parse(new TextDecoder().decode(m.data)) as {
          id: string;
          version?: number;
          lost?: true;
        };
        const w = this.waiting.get(r.id);
        if (!w) continue;
        this.waiting.delete(r.id);
        w.resolve(r.version !== undefined ? { version: r.version } : { lost: true });
      }
    })();
    for (const consumer of consumers) this.loops.push(this.pull(consumer));
  }

  /**
   * Makes `intent` in its turn. Resolves with the new revision, or `{ lost }` when the key's revision was not
   * `expect` (create: the key exists); rejects with `EZIPC_CLUSTER` if no answer came within the timeout.
   */
  write(intent: WriteIntent): Promise<WriteOutcome> {
    const id = `${this.hubId}.${randomBytes(8).toString("hex")}`;
    const partition = hashOf(intent.bucketKey) % this.partitions;
    const body = Buffer.concat([
      Buffer.from(
        `${JSON.stringify({ id, origin: this.hubId, op: intent.op, key: intent.bucketKey, expect: intent.expect })}\n`,
      ),
      intent.value,
    ]);
    return new Promise<WriteOutcome>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.waiting.delete(id);
        // The answer may have been lost while this hub's NATS connection moved: the entry says if it was made.
        void this.madeBy(intent.bucketKey, id).then((made) =>
          made === null
            ? reject(
                new EzipcError(
                  "EZIPC_CLUSTER",
                  `no answer to a write of ${intent.bucketKey} within ${this.o.timeoutMs} ms (it may or may not have been made)`,
                ),
              )
            : resolve({ version: made }),
        );
      }, this.o.timeoutMs);
      this.waiting.set(id, {
        resolve: (o) => {
          clearTimeout(timer);
          resolve(o);
        },
        reject,
      });
      // While a NATS node fails over, the stream has no leader for a moment (503): queue it again, until the
      // timeout. (An intent queued twice is made once: the second loses the compare-and-write and finds the
      // first in the entry.)
      const deadline = Date.now() + this.o.timeoutMs;
      const queue = (): void => {
        this.js
          // Each attempt waits a second at most: one sent to a leader that just died gets no answer at all.
          .publish(`${this.o.prefix}.writes.${partition}`, body, {
            timeout: Math.max(1, Math.min(1_000, deadline - Date.now())),
          })
          .catch((err: unknown) => {
            if (!this.waiting.has(id)) return;
            // A value over NATS' max_payload never fits: fail at once rather than at the deadline.
            const permanent = (err as { code?: string }).code === "MAX_PAYLOAD_EXCEEDED";
            if (!permanent && Date.now() + 100 < deadline && !this.stopped) {
              setTimeout(queue, 100);
              return;
            }
            clearTimeout(timer);
            this.waiting.delete(id);
            reject(clusterError(`queueing a write of ${intent.bucketKey}`, err));
          });
      };
      queue();
    });
  }

  stop(): void {
    this.stopped = true;
    for (const w of this.waiting.values()) w.reject(new EzipcError("EZIPC_CLUSTER", "the hub is closing"));
    this.waiting.clear();
  }

  /** Takes this partition's intents in turn (with the other hubs), making each. */
  private async pull(consumer: Consumer): Promise<void> {
    while (!this.stopped && !this.nc.isClosed()) {
      try {
        // Short pulls: after a NATS node fails, the next one reaches the consumer's new leader.
        const messages = await consumer.fetch({ max_messages: 1, expires: 1_000 });
        for await (const m of messages) {
          if (this.stopped) break;
          await this.make(m);
        }
      } catch (err) {
        if (this.stopped || this.nc.isClosed()) return;
        log("warn", "cluster", "taking write intents failed; again", { error: err });
        await new Promise((r) => setTimeout(r, 100));
      }
    }
  }

  private async make(m: JsMsg): Promise<void> {
    const nl = m.data.indexOf(10);
    let meta: { id: string; origin: string; op: string; key: string; expect: number };
    try {
      meta = JSON.parse(new TextDecoder().decode(m.data.subarray(0, nl)));
    } catch {
      m.term();
      return;
    }
    const value = m.data.subarray(nl + 1);
    let answer: { id: string; version?: number; lost?: true };
    try {
      const subject = `$KV.${this.o.bucket}.${meta.key}`;
      let expect = meta.expect;
      if (meta.op === "create") {
        // A deleted key's tombstone is its last revision: create on top of it.
        const last = await this.kv.get(meta.key);
        if (last && last.operation === "PUT") {
          answer = { id: meta.id, lost: true };
          this.answer(meta.origin, answer, m);
          return;
        }
        expect = last ? last.revision : 0;
      }
      const h = headers();
      h.set(INTENT_HEADER, meta.id);
      const ack = await this.js.publish(subject, value, {
        headers: h,
        expect: { lastSubjectSequence: expect },
      });
      answer = { id: meta.id, version: ack.seq };
    } catch (err) {
      if (!lostRace(err)) {
        // NATS is failing over: leave the intent unacknowledged; it comes back after ackWait.
        log("warn", "cluster", "a write intent failed; it will be made again", { key: meta.key, error: err });
        return;
      }
      // Made already (an intent given again after its hub died before acknowledging it)?
      const made = await this.madeBy(meta.key, meta.id);
      answer = made === null ? { id: meta.id, lost: true } : { id: meta.id, version: made };
    }
    this.answer(meta.origin, answer, m);
  }

  /** The revision of `bucketKey`'s current entry if intent `id` wrote it, else null. */
  private async madeBy(bucketKey: string, id: string): Promise<number | null> {
    try {
      const sm = await this.jsm!.streams.getMessage(`KV_${this.o.bucket}`, {
        last_by_subj: `$KV.${this.o.bucket}.${bucketKey}`,
      });
      return sm.header?.get(INTENT_HEADER) === id ? sm.seq : null;
    } catch {
      return null;
    }
  }

  private answer(origin: string, answer: object, m: JsMsg): void {
    this.nc.publish(`${this.o.prefix}.results.${origin}`, JSON.stringify(answer));
    m.ack();
  }
}

/** FNV-1a of a string: the key's partition. */
function hashOf(s: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < s.length; i++) {
    h ^= s.charCodeAt(i);
    h = Math.imul(h, 0x01000193) >>> 0;
  }
  return h;
}
