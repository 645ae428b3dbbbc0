/**
 * The clustered side of a hub's pub/sub (docs/cluster.md, topic-replica.ts): the hub's topics are mirrors
 * of the cluster's, fed in seq order by the replica, and the hub numbers nothing itself.
 *
 * - A publish goes to the replica, and its publisher's `published` carries the seq the cluster gave it;
 *   the message reaches this hub's subscribers when the mirror gets it, as on every other hub.
 * - A subscribe to one topic waits until the mirror has every message the cluster had stored when it was
 *   made (so it sees every publish acknowledged before it, on any hub); the connection's later pub/sub
 *   messages wait with it, in order (at most {@link MAX_DEFERRED}).
 * - `topicConfig` changes the limits cluster-wide.
 */
import type { Infer } from "../codec/schema.js";
import { EzipcError, isEzipcError } from "../errors.js";
import { log } from "../log.js";
import type { Protocol } from "../service/protocol.js";
import { sendTo } from "../transport/send.js";
import type { Connection } from "../transport/types.js";
import type { PublishView } from "./fast-frames.js";
import type { pubsubMessages } from "./pubsub-messages.js";
import { recordOffsets } from "./records.js";
import type { ReplicatedMessage, TopicReplica } from "./topic-replica.js";
import { type Topic, topicMatcher } from "./topics.js";

type Msg<K extends keyof typeof pubsubMessages> = Infer<(typeof pubsubMessages)[K]>;

/** The messages held in order while a subscribe waits for its topic's mirror. */
const PUBSUB_TYPES = new Set(["subscribe", "credit", "unsubscribe", "topics", "topicConfig"]);
/** Most messages held per connection while its subscribe waits (more is a flood: the connection is cut). */
const MAX_DEFERRED = 10_000;
/** How long a subscribe waits for the mirror to catch up before it fails with `EZIPC_CLUSTER`. */
const CATCH_UP_MS = 10_000;

/** What the hub's pub/sub lends the mirrors. */
export interface MirrorHost {
  readonly protocol: Protocol;
  /** The topic named `name`, made if need be (and then followed: {@link TopicMirrors.follow}). */
  topic(name: string): Topic;
  /** Appends a message of the cluster to `t` at its seq, and delivers it. */
  append(t: Topic, m: ReplicatedMessage): void;
  /** Keeps `t` within its limits (holding no publisher). */
  bound(t: Topic): void;
  /** Makes a subscription (the hub's own handling, once the mirror is ready). */
  subscribe(conn: Connection, m: Msg<"subscribe">): void;
  /** Handles a pub/sub message held while a subscribe waited. */
  handle(conn: Connection, type: string, body: unknown): void;
  /** A publish failed: its publisher is told (a fire-and-forget one is counted). */
  publishFailed(conn: Connection, rid: number, err: EzipcError): void;
  /** An acknowledged publish that arrived at `t0` was acknowledged. */
  acknowledged(t0: number): void;
}

function asCoded(err: unknown): EzipcError {
  return isEzipcError(err) ? err : new EzipcError("EZIPC_CLUSTER", String(err));
}

export class TopicMirrors {
  /** Each topic's mirror, with the promise of its catching up (null: caught up). */
  private readonly mirrors = new Map<Topic, Promise<void> | null>();
  /** A connection's pub/sub messages held, in order, while its subscribe waits for a mirror. */
  private readonly deferred = new Map<Connection, { type: string; body: unknown }[]>();
  /** Subscribes waiting for a topic's mirror to reach a seq. */
  private readonly seqWaiters = new Map<Topic, { seq: bigint; resolve: () => void }[]>();

  constructor(
    private readonly replica: TopicReplica,
    private readonly host: MirrorHost,
  ) {}

  /** Follows the cluster's topics; resolves once every existing one is mirrored to its end. */
  start(): Promise<void> {
    return this.replica.start(
      (name, limits) => {
        const t = this.host.topic(name);
        t.limits = limits;
        this.host.bound(t);
      },
      (name, m) => this.replicated(name, m),
    );
  }

  /** Follows `t` in the cluster (again, after a failure). */
  follow(t: Topic): Promise<void> {
    const p = this.replica.follow(t.name, t.limits);
    this.mirrors.set(t, p);
    p.then(
      () => this.mirrors.set(t, null),
      (err) => {
        this.mirrors.delete(t);
        log("warn", "hub", "following a topic in the cluster failed", { topic: t.name, error: err });
      },
    );
    return p;
  }

  /** A message of the cluster, in seq order: appended to its topic's mirror; waiting subscribes go on. */
  private replicated(name: string, m: ReplicatedMessage): void {
    const t = this.host.topic(name);
    this.host.append(t, m);
    const waiting = this.seqWaiters.get(t);
    if (!waiting) return;
    const left = waiting.filter((w) => w.seq > m.seq);
    for (const w of waiting) if (w.seq <= m.seq) w.resolve();
    if (left.length > 0) this.seqWaiters.set(t, left);
    else this.seqWaiters.delete(t);
  }

  /**
   * Resolves once `t`'s mirror has every message the cluster had stored when this was called. Rejects with
   * `EZIPC_CLUSTER` if the cluster cannot be asked, or the mirror does not get there within 10 s.
   */
  private async caughtUp(t: Topic): Promise<void> {
    const state = this.mirrors.get(t);
    if (state !== null) await (state ?? this.follow(t));
    const last = await this.replica.lastSeq(t.name);
    if (t.lastSeq >= last) return;
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => {
        const list = this.seqWaiters.get(t);
        list?.splice(list.indexOf(w), 1);
        reject(
          new EzipcError(
            "EZIPC_CLUSTER",
            `${t.name}: this hub's copy did not reach seq ${last} in ${CATCH_UP_MS / 1000} s`,
          ),
        );
      }, CATCH_UP_MS);
      const w = {
        seq: last,
        resolve: () => {
          clearTimeout(timer);
          resolve();
        },
      };
      let list = this.seqWaiters.get(t);
      if (!list) {
        list = [];
        this.seqWaiters.set(t, list);
      }
      list.push(w);
    });
  }

  /** A publish on a clustered hub: numbered by the cluster, acknowledged once it is stored there. */
  publish(
    conn: Connection,
    topic: Topic,
    publisher: Buffer,
    v: PublishView,
    frame: Buffer,
    time: number,
    t0: number,
  ): void {
    // `v` is reused by the next frame parsed, and `frame` may be a view into a read buffer: the replica
    // copies the records before it returns; the rid is kept here.
    const rid = v.rid;
    const records = frame.subarray(v.recordsStart);
    const offsets = recordOffsets(records, v.count);
    const list: Buffer[] = [];
    for (let i = 0; i < v.count; i++) list.push(records.subarray(offsets[i], offsets[i + 1]));
    this.replica.publish(topic.name, publisher, time, list, rid !== 0).then(
      (seq) => {
        if (rid === 0) return;
        sendTo(conn, this.host.protocol.encode("published", { rid, seq, time }));
        this.host.acknowledged(t0);
      },
      (err) => this.host.publishFailed(conn, rid, asCoded(err)),
    );
  }

  /** Holds `conn`'s pub/sub message while one of its subscribes waits; false if none waits. */
  holds(conn: Connection, type: string, body: unknown): boolean {
    const held = this.deferred.get(conn);
    if (!held || !PUBSUB_TYPES.has(type)) return false;
    if (held.length >= MAX_DEFERRED) {
      conn.destroy(new EzipcError("EZIPC_PROTOCOL", "too many messages sent while a subscribe waits"));
      return true;
    }
    held.push({ type, body });
    return true;
  }

  /**
   * A subscribe to one topic waits until the topic's mirror has caught up ({@link caughtUp}), and with it
   * every later pub/sub message of its connection; false if it may go on now (a wildcard, an invalid pattern).
   */
  waitForMirror(conn: Connection, m: Msg<"subscribe">): boolean {
    let t: Topic;
    try {
      if (topicMatcher(m.pattern).wildcard) return false;
      t = this.host.topic(m.pattern);
    } catch {
      return false; // the subscribe reports it
    }
    this.deferred.set(conn, [{ type: "subscribe", body: m }]);
    this.caughtUp(t).then(
      () => this.resume(conn, null),
      (err) => this.resume(conn, err),
    );
    return true;
  }

  /** Goes on with a connection's held messages (the first, a subscribe, fails with `err` if given). */
  private resume(conn: Connection, err: unknown): void {
    const held = this.deferred.get(conn);
    this.deferred.delete(conn);
    if (!held || conn.state !== "open") return;
    for (let i = 0; i < held.length; i++) {
      const again = this.deferred.get(conn);
      if (again) {
        again.push(...held.slice(i));
        return;
      }
      const { type, body } = held[i]!;
      if (i > 0) this.host.handle(conn, type, body);
      else if (!err) this.host.subscribe(conn, body as Msg<"subscribe">);
      else {
        const e = asCoded(err);
        const rid = (body as Msg<"subscribe">).rid;
        sendTo(conn, this.host.protocol.encode("error", { rid, code: e.code, message: e.message }));
      }
    }
  }

  /** `topicConfig`: the limits change cluster-wide (the history is already durable there). */
  configure(conn: Connection, m: Msg<"topicConfig">): void {
    const t = this.host.topic(m.topic);
    const limits = { maxBytes: m.maxBytes, maxCount: m.maxCount };
    this.replica.configure(m.topic, limits).then(
      () => {
        t.limits = limits;
        this.host.bound(t);
        sendTo(conn, this.host.protocol.encode("ok", { rid: m.rid, version: 0n }));
      },
      (err) => {
        const e = asCoded(err);
        sendTo(conn, this.host.protocol.encode("error", { rid: m.rid, code: e.code, message: e.message }));
      },
    );
  }

  connectionClosed(conn: Connection): void {
    this.deferred.delete(conn);
  }
}
