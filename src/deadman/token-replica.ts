/**
 * Where a clustered hub's deadman tokens live (docs/cluster.md): one record per token, shared by every hub,
 * changed only by compare-and-write — so a token has at most one holder cluster-wide, and every take gets an
 * epoch no other take of it had. Implemented over the cluster's key-value bucket in src/cluster/; this
 * interface keeps the deadman service free of NATS.
 */

/** A token's record. */
export interface TokenEntry {
  readonly held: boolean;
  /** The hub whose client holds it (held only). */
  readonly hub: string;
  /** `name#id` of the holding client (held only). */
  readonly holder: string;
  /** The record's version: increases with every take and release, never given twice. */
  readonly epoch: number;
}

export interface TokenReplica {
  /** This hub's id in the cluster. */
  readonly hubId: string;
  /** The token's record now (null: never taken). Rejects with `EZIPC_CLUSTER`. */
  get(name: string): Promise<TokenEntry | null>;
  /**
   * Takes the token for `holder` of this hub if its record is still `current` (null: none), which must be
   * free. Resolves with the take's epoch, or `lost` when another change came first.
   */
  take(name: string, holder: string, current: TokenEntry | null): Promise<{ epoch: number } | { lost: true }>;
  /** Frees the token if its record is still the take at `epoch`; resolves with whether it did. */
  release(name: string, epoch: number): Promise<boolean>;
  /** Reports every token's record, then every change. Resolves once the current records were reported. */
  watch(onChange: (name: string, entry: TokenEntry) => void): Promise<void>;
  /** Whether `hub` is running (its heartbeat is younger than the hub timeout). */
  running(hub: string): Promise<boolean>;
  stop(): void;
}
