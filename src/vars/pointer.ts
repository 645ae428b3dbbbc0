import { EventEmitter } from "node:events";
import { type SchemaCodec, type SchemaType, schemaCodec } from "../codec/schema.js";
import { EzipcError } from "../errors.js";
import type { SyncPolicy } from "./vars-messages.js";

/** A pointer's link to the hub: `live`; `stale` while the hub is unreachable; `invalidated` for good. */
export type PointerStatus = "live" | "stale" | "invalidated";

/** What a change notification carries. `data` is present when the client keeps a copy (lazy is told only the version). */
export interface Change {
  version: number;
  /** The new value, for poll pointers (and any pointer of a key the client holds under poll). */
  data?: Uint8Array;
}

/** A value with the version it had. */
export interface Versioned {
  data: Uint8Array;
  version: number;
}

/** `read()` is synchronous under `poll` (the local copy), a promise otherwise. */
export type ReadResult<P extends SyncPolicy, T> = P extends "poll" ? T : Promise<T>;

/**
 * The client's shared state of one key: the copy (when any pointer keeps one), its version, and the
 * pointers per policy. Every {@link IpcPtr} on the key in this client shares it.
 */
export class KeyState {
  id: number;
  size: number;
  version: number;
  data: Buffer | null = null;
  /** The copy is the hub's latest (no stale notice since). */
  fresh = false;
  status: PointerStatus = "live";
  readonly counts: [number, number, number] = [0, 0, 0];
  /** Pointers to notify (weak: a dropped pointer must stay collectable). */
  readonly pointers = new Set<WeakRef<IpcPtr<SyncPolicy, unknown>>>();
  /**
   * Pointers somebody listens to (events or an iterator): held strongly, so that a pointer whose only
   * reference is its listener keeps receiving changes instead of being collected and released.
   */
  readonly listened = new Set<IpcPtr<SyncPolicy, unknown>>();
  /** What the client keeps beside the state (shm://: the key's open file), for its own use. */
  backing: unknown = null;

  constructor(
    readonly key: string,
    readonly kind: number,
    id: number,
    size: number,
    version: number,
    public persistent: boolean,
  ) {
    this.id = id;
    this.size = size;
    this.version = version;
  }

  /** Highest policy held: 2 poll, 1 lazy, 0 request, -1 none. */
  get policy(): number {
    return this.counts[2] > 0 ? 2 : this.counts[1] > 0 ? 1 : this.counts[0] > 0 ? 0 : -1;
  }

  get total(): number {
    return this.counts[0] + this.counts[1] + this.counts[2];
  }

  /** Tells every live pointer (dead WeakRefs are dropped on the way). */
  notify(fn: (p: IpcPtr<SyncPolicy, unknown>) => void): void {
    for (const ref of this.pointers) {
      const p = ref.deref();
      if (p) fn(p);
      else this.pointers.delete(ref);
    }
  }
}

/** What a pointer needs from its client (kept internal). */
export interface PointerHost {
  read(state: KeyState): Promise<Versioned>;
  write(
    state: KeyState,
    data: Uint8Array,
    offset: number,
    expect?: number,
  ): Promise<{ ok: boolean; version: number }>;
  release(ptr: IpcPtr<SyncPolicy, unknown>, state: KeyState, policy: number): void;
  /**
   * Brings the local copy up to date before it is read, where the client can do that synchronously
   * (shared memory: a look at the value's generation, a copy only when it changed). Hub clients have none:
   * their copy is brought up to date by the hub's pushes.
   */
  refresh?(state: KeyState): void;
}

export interface IpcPtrEvents {
  change: [change: Change];
  status: [status: PointerStatus];
}

/** The policies' numbers on the wire and in reference counts. */
export const POLICY_INDEX = { request: 0, lazy: 1, poll: 2 } as const;

/** Throws `TypeError` unless `policy` names a sync policy. */
export function checkPolicyName(policy: string): asserts policy is SyncPolicy {
  if (!(policy in POLICY_INDEX))
    throw new TypeError(`sync policy must be request, lazy or poll, got ${policy}`);
}

/**
 * Checks an `allocate`'s key-independent arguments: the policy, and the size or schema (a typed block's
 * size is its schema's). Throws `TypeError` / `RangeError`.
 */
export function allocateShape(
  sizeOrSchema: number | SchemaType<unknown>,
  policy: string,
): { size: number; codec: SchemaCodec<unknown> | undefined } {
  checkPolicyName(policy);
  const codec = typeof sizeOrSchema === "number" ? undefined : fixedCodec(sizeOrSchema);
  const size = codec ? codec.fixedSize! : (sizeOrSchema as number);
  if (!Number.isInteger(size) || size < 1)
    throw new RangeError(`size must be a positive integer, got ${size}`);
  return { size, codec };
}

/** The codec of a typed block's schema; throws `TypeError` unless the schema has a fixed size. */
export function fixedCodec(schema: SchemaType<unknown>): SchemaCodec<unknown> {
  const codec = schemaCodec(schema);
  if (codec.fixedSize === undefined || codec.fixedSize < 1) {
    throw new TypeError(
      "a typed block needs a fixed-size schema (numbers, bools, fixed arrays, structs of them)",
    );
  }
  return codec;
}

/**
 * A pointer to a named block on the hub (the seed's `ipc_ptr<sync_policy>`). It holds one reference on
 * the hub until {@link dispose} (or `using`, or garbage collection of a dropped pointer).
 *
 * - `request`: no copy; `read()` asks the hub each time.
 * - `lazy`: a copy, invalidated by the hub on change; `read()` returns it while fresh, else fetches once.
 * - `poll`: the hub pushes every change; `read()` returns the copy synchronously.
 *
 * In one client the highest policy held on a key serves all its pointers: with a poll pointer present, a
 * request pointer's read resolves at once from the same copy.
 *
 * The bytes `read()` returns are the client's copy: do not modify them.
 */
export class IpcPtr<P extends SyncPolicy, T = Uint8Array> extends EventEmitter<IpcPtrEvents> {
  readonly policy: P;
  private disposedFlag = false;
  /** @internal */
  readonly policyIndex: number;

  /** @internal */
  constructor(
    /** @internal */ readonly state: KeyState,
    policy: P,
    private readonly host: PointerHost,
    /** The schema codec of a typed block (from allocate/watch with a schema). */
    readonly codec: SchemaCodec<T> | undefined,
  ) {
    super();
    this.policy = policy;
    this.policyIndex = POLICY_INDEX[policy];
    const track = () => {
      // Checked after the change: newListener fires before adding, removeListener after removing.
      queueMicrotask(() => {
        if (!this.disposedFlag && this.listenerCount("change") + this.listenerCount("status") > 0) {
          this.state.listened.add(this as IpcPtr<SyncPolicy, unknown>);
        } else this.state.listened.delete(this as IpcPtr<SyncPolicy, unknown>);
      });
    };
    const ee = this as unknown as EventEmitter;
    ee.on("newListener", (event: string) => {
      if (event === "change" || event === "status") {
        this.state.listened.add(this as IpcPtr<SyncPolicy, unknown>);
        track();
      }
    });
    ee.on("removeListener", track);
  }

  get key(): string {
    return this.state.key;
  }
  /** Size in bytes. */
  get size(): number {
    return this.state.size;
  }
  /** The latest version this client knows (1 at creation, +1 per write). */
  get version(): number {
    return this.state.version;
  }
  get status(): PointerStatus {
    return this.disposedFlag ? "invalidated" : this.state.status;
  }
  get disposed(): boolean {
    return this.disposedFlag;
  }
  /**
   * Whether {@link read} answers from the local copy: always under poll; under lazy until the hub's stale
   * notice (after which the version is the first newer one, and the next read fetches the latest).
   */
  get fresh(): boolean {
    const s = this.state;
    return s.data !== null && (s.policy === 2 || s.fresh);
  }
  /** Whether the key is never disposed by the hub. */
  get persistent(): boolean {
    return this.state.persistent;
  }

  /**
   * The value. Under `poll` (or when this client holds the key under poll) it is the local copy, returned
   * synchronously; under `lazy` the copy while fresh; otherwise the promise resolves once the hub answers.
   * Throws (or rejects) `EZIPC_KEY_DISPOSED` once invalidated or disposed.
   */
  read(): ReadResult<P, Uint8Array> {
    const r = this.readVersioned() as Versioned | Promise<Versioned>;
    if (r instanceof Promise) return r.then((v) => v.data) as unknown as ReadResult<P, Uint8Array>;
    return r.data as unknown as ReadResult<P, Uint8Array>;
  }

  /**
   * The value together with its version, taken at the same instant: what {@link compareAndWrite} needs
   * (reading {@link version} after awaiting {@link read} may see a newer version than the bytes).
   */
  readVersioned(): ReadResult<P, Versioned> {
    this.check();
    const s = this.state;
    if (s.policy === 2) this.host.refresh?.(s);
    if (this.policyIndex === 2)
      return { data: s.data!, version: s.version } as unknown as ReadResult<P, Versioned>;
    if (s.data && (s.policy === 2 || s.fresh)) {
      return Promise.resolve({ data: s.data, version: s.version }) as unknown as ReadResult<P, Versioned>;
    }
    return this.host.read(s) as unknown as ReadResult<P, Versioned>;
  }

  /** The decoded value of a typed block (see {@link read}). Throws `TypeError` without a schema. */
  get(): ReadResult<P, T> {
    const codec = this.requireCodec();
    const r = this.read();
    if (r instanceof Promise) return r.then((b) => codec.decode(b)) as ReadResult<P, T>;
    return codec.decode(r as Uint8Array) as ReadResult<P, T>;
  }

  /**
   * Writes `data` at `offset`. Resolves with the new version once the hub applied it (and, for a
   * persistent key, stored it); by then this client's own copy (if any) is at that version. Throws
   * `RangeError` at once for a write outside the block; rejects with `EZIPC_KEY_DISPOSED` or
   * `EZIPC_CONNECTION_CLOSED` (the connection was lost before the reply: the write may or may not have
   * been applied).
   */
  write(data: Uint8Array, offset = 0): Promise<number> {
    this.checkWrite(data, offset);
    return this.host.write(this.state, data, offset).then((r) => r.version);
  }

  /**
   * Writes only if the key's version is still `expectedVersion` (optimistic concurrency). Resolves with
   * `{ ok: true, version }` (the new version) or `{ ok: false, version }` (the current one, nothing
   * written). Throws like {@link write}.
   */
  compareAndWrite(
    expectedVersion: number,
    data: Uint8Array,
    offset = 0,
  ): Promise<{ ok: boolean; version: number }> {
    this.checkWrite(data, offset);
    if (!Number.isSafeInteger(expectedVersion) || expectedVersion < 0) {
      throw new RangeError("expectedVersion must be a non-negative integer");
    }
    return this.host.write(this.state, data, offset, expectedVersion);
  }

  /** Encodes `value` with the block's schema and writes it whole. Resolves with the new version. */
  set(value: T): Promise<number> {
    const codec = this.requireCodec();
    return this.write(Buffer.from(codec.encode(value)), 0);
  }

  /**
   * Changes from now on, as an async iterator. When the consumer lags, only the latest change is kept (the
   * versions it sees still increase). Ends when the pointer is disposed or invalidated.
   */
  async *changes(): AsyncGenerator<Change> {
    let pending: Change | null = null;
    let ended = false;
    let wake: (() => void) | null = null;
    const onChange = (c: Change) => {
      pending = c;
      wake?.();
    };
    const onStatus = (s: PointerStatus) => {
      if (s === "invalidated") {
        ended = true;
        wake?.();
      }
    };
    this.on("change", onChange);
    this.on("status", onStatus);
    try {
      while (!ended && !this.disposedFlag) {
        if (pending) {
          const c: Change = pending;
          pending = null;
          yield c;
          continue;
        }
        await new Promise<void>((resolve) => {
          wake = resolve;
        });
        wake = null;
      }
    } finally {
      this.off("change", onChange);
      this.off("status", onStatus);
    }
  }

  [Symbol.asyncIterator](): AsyncGenerator<Change> {
    return this.changes();
  }

  /** Releases this pointer's reference on the hub (idempotent). Its iterators end. */
  dispose(): void {
    if (this.disposedFlag) return;
    this.disposedFlag = true;
    this.state.listened.delete(this as IpcPtr<SyncPolicy, unknown>);
    this.host.release(this as IpcPtr<SyncPolicy, unknown>, this.state, this.policyIndex);
    this.emit("status", "invalidated");
  }

  [Symbol.dispose](): void {
    this.dispose();
  }

  private check(): void {
    if (this.disposedFlag) throw new EzipcError("EZIPC_KEY_DISPOSED", `pointer on ${this.key} was disposed`);
    if (this.state.status === "invalidated") {
      throw new EzipcError("EZIPC_KEY_DISPOSED", `key ${this.key} has been invalidated`);
    }
  }

  private checkWrite(data: Uint8Array, offset: number): void {
    if (!(data instanceof Uint8Array)) throw new TypeError("write expects a Uint8Array");
    if (this.state.kind !== 0) throw new TypeError(`${this.key} is a JSON config: use its config operations`);
    if (!Number.isInteger(offset) || offset < 0 || offset + data.length > this.state.size) {
      throw new RangeError(
        `write of ${data.length} bytes at offset ${offset} is outside ${this.key} (${this.state.size} bytes)`,
      );
    }
    this.check();
  }

  private requireCodec(): SchemaCodec<T> {
    if (!this.codec) throw new TypeError(`${this.key} was opened without a schema`);
    return this.codec;
  }
}
