/** Where the hub keeps persistent keys: the interface a store implements (src/store/ has SQLite). */

/** A persistent block as a store keeps it. */
export interface StoredBlock {
  key: string;
  kind: number;
  version: number;
  data: Buffer;
}

/**
 * Where the hub keeps persistent keys (the seed's pluggable "allocator"). The hub calls {@link load} once
 * at start, then {@link save} with batches of changed blocks and {@link remove} for deleted ones. `save`
 * and `remove` are durable when they return, or (a store with {@link BlockStore.afterDurable}) once it
 * calls back: the hub acknowledges a write to a persistent key only after.
 */
export interface BlockStore {
  readonly name: string;
  load(): StoredBlock[];
  save(blocks: readonly StoredBlock[]): void;
  remove(key: string): void;
  /**
   * Calls `done` once what was saved before the call is durable (or with the error that stopped it), in
   * call order. Absent: durable when `save` returns.
   */
  afterDurable?(done: (err?: unknown) => void): void;
  close(): void;
}

/** Keeps nothing: persistent keys live as long as the hub process (the default without `--data`). */
export class MemoryStore implements BlockStore {
  readonly name = "memory";
  load(): StoredBlock[] {
    return [];
  }
  save(): void {}
  remove(): void {}
  close(): void {}
}
