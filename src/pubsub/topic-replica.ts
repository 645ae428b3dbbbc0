/**
 * Where a clustered hub's topics live (docs/cluster.md): the authority on each topic's order and sequence
 * numbers, shared by every hub of the cluster. A clustered hub does not number publishes itself: it hands
 * each one to the replica, which gives it its seq, and it keeps a local copy of every topic's history
 * (a mirror) that the replica feeds in seq order — its own publishes included — so that subscribers on any
 * hub see one order per topic, with the same seqs, and can resume on another hub. Implemented over NATS
 * JetStream streams in src/cluster/; this interface keeps pub/sub free of NATS.
 */
import type { TopicLimits } from "./topics.js";

/** One message as the replica reports it. */
export interface ReplicatedMessage {
  readonly seq: bigint;
  /** Publish time, milliseconds since the epoch (the publishing hub's clock). */
  readonly time: number;
  /** `name#id` of the publishing client, as UTF-8. */
  readonly publisher: Buffer;
  /** One record as the wire carries it: its header list and payload (fast-frames.ts `encodeRecord`). */
  readonly record: Buffer;
}

export interface TopicReplica {
  /**
   * Appends one publish's records in order. With `ack`, resolves with the first record's seq once the
   * cluster has stored every record (it survives a hub's death); without, resolves when they were handed
   * to the cluster (fire-and-forget: lost if the link fails first). Rejects with `EZIPC_CLUSTER`. The
   * records (and `publisher`) are copied before it returns: they may be views into a buffer reused later.
   */
  publish(
    topic: string,
    publisher: Buffer,
    time: number,
    records: readonly Buffer[],
    ack: boolean,
  ): Promise<bigint>;
  /**
   * Makes `topic` exist cluster-wide with these limits (the first hub's win; {@link configure} changes
   * them) and starts following it: its retained messages, then each new one, go to `onMessage` in seq
   * order. Resolves once what was retained when it started has been reported (the mirror is caught up).
   */
  follow(topic: string, limits: TopicLimits): Promise<void>;
  /**
   * The seq of the newest message the cluster has stored in `topic` (0n: none yet): a subscribe waits until
   * the hub's mirror has it, so it sees every publish acknowledged before it, on any hub.
   */
  lastSeq(topic: string): Promise<bigint>;
  /** Changes a topic's limits cluster-wide; every hub is told (`onTopic`). */
  configure(topic: string, limits: TopicLimits): Promise<void>;
  /**
   * Starts: `onTopic` is called for every topic of the cluster (and each new one, and each whose limits
   * change), `onMessage` for every message of a followed topic. Resolves once every existing topic has been
   * reported and followed to its end.
   */
  start(
    onTopic: (topic: string, limits: TopicLimits) => void,
    onMessage: (topic: string, m: ReplicatedMessage) => void,
  ): Promise<void>;
  stop(): void;
}
