/**
 * Where a clustered hub's shared variables live (docs/cluster.md): the authority on every key's value and
 * version, shared by every hub of the cluster. The hub keeps a local copy of each key, applies every
 * change the replica reports (its own writes included), and sends its writes through the replica's
 * compare-and-write, so that two hubs never give out one version twice and a version names one value
 * everywhere. Implemented over a NATS JetStream key-value bucket in src/cluster/; this interface keeps the
 * shared-variable service free of NATS.
 */

/** What is stored per key. */
export interface ReplicaRecord {
  readonly kind: number;
  readonly persistent: boolean;
  readonly data: Buffer;
}

/** A key's record at a version. */
export interface ReplicaEntry extends ReplicaRecord {
  readonly key: string;
  /** Increases with every change of the key; never given to another value of it. */
  readonly version: number;
}

/** A change reported by {@link VarsReplica.watch}. */
export type ReplicaChange =
  | ReplicaEntry
  | { readonly key: string; readonly version: number; readonly deleted: true };

export interface VarsReplica {
  /**
   * Creates `key` if no hub has: resolves with its first version, or with the entry that exists. Rejects
   * with a coded error when the cluster cannot be reached in time (`EZIPC_CLUSTER`).
   */
  create(key: string, record: ReplicaRecord): Promise<{ version: number } | { exists: ReplicaEntry }>;
  /**
   * Replaces `key`'s record if its version is still `expect`: resolves with the new version, or with the
   * current entry (null: the key is gone) when another write came first.
   */
  update(
    key: string,
    record: ReplicaRecord,
    expect: number,
  ): Promise<{ version: number } | { conflict: ReplicaEntry | null }>;
  /** The current entry of `key`, or null. */
  get(key: string): Promise<ReplicaEntry | null>;
  /** Deletes `key` (every hub's holders are invalidated). */
  delete(key: string): Promise<void>;
  /**
   * Reports every key's current entry, then every change anywhere, in order per key. Resolves once the
   * current entries have been reported.
   */
  watch(onChange: (change: ReplicaChange) => void): Promise<void>;
  /** Who holds which key, cluster-wide (absent: keys are never disposed). */
  readonly holds?: HoldRegistry;
}

/** Which hubs hold which keys, so that a key is disposed only when no hub holds it. */
export interface HoldRegistry {
  /** This hub holds `key` now (true: a pointer or more) or no longer. Made in order per key, in the background. */
  setHeld(key: string, held: boolean): void;
  /** Whether a hub other than this one holds `key` (alive, or gone for less than its reconnect window). */
  heldElsewhere(key: string): Promise<boolean>;
  /** `fn` is called with each key whose holds were all released by hubs that are gone. */
  onOrphaned(fn: (key: string) => void): void;
  /**
   * Null when this hub's hold on `key` is in the cluster (or not wanted); else a promise that resolves once
   * it is, or once it is no longer wanted. A pointer is handed out only then: another hub's grace that ends
   * after it sees the hold.
   */
  whenHeld(key: string): Promise<void> | null;
}
