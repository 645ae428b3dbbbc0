/**
 * Shared variables over shared memory (`shm://`), with the hub client's API and semantics and no hub:
 * `allocate`, `watch`, `config`, `list`, `peek`, `info`, `exists`, and the same {@link IpcPtr} pointers.
 * Each key is a file of the namespace (`.var.KEY`, src/shm/var-file.ts) holding its value double-buffered
 * and who holds it.
 *
 * - `poll`: `read()` looks at the value's generation word and copies the value only when it changed
 *   (otherwise it returns the copy it made last time): current at every read, never torn. `change` events
 *   come on wake-ups (the latest value per wake-up: a slow process sees coalesced versions, as on a hub).
 * - `lazy`: a copy, marked stale by the first change after each read (one `change` event with the version).
 * - `request`: `read()` copies the current value each time.
 * - Reference counts: each process's pointers per policy sit in its slot of the file; a dead process's do
 *   not count. A key whose count reaches 0 (a pointer disposed, a client closed, its last holders found
 *   dead) enters its grace (`disposeGraceMs`); a `watch` in the grace revives it; after it the key is
 *   disposed (`watch` → `EZIPC_KEY_DISPOSED`, `allocate` creates it anew) and its file is removed after
 *   `tombstoneTtlMs`. With no hub, transitions happen when some process looks: the processes that have a
 *   key's file open check it every second.
 */
import type { SchemaCodec, SchemaType } from "../codec/schema.js";
import { EzipcError } from "../errors.js";
import { log } from "../log.js";
import { checkKey } from "../protocol/names.js";
import { isUnusableFile } from "../shm/shm-file.js";
import { VAR_BYTES, VAR_DISPOSED, VAR_GRACE, VAR_JSON, VAR_LIVE, VAR_REPLACED } from "../shm/var-file.js";
import { CONFIG_MERGE_PATCH, CONFIG_WRITE, CONFIG_WRITE_IF_EMPTY, ConfigVar } from "../vars/config-var.js";
import { globMatcher } from "../vars/glob.js";
import { checkConfigDepth, jsonDepth, MAX_JSON_DEPTH } from "../vars/json-depth.js";
import { mergePatch } from "../vars/merge-patch.js";
import {
  allocateShape,
  checkPolicyName,
  fixedCodec,
  IpcPtr,
  KeyState,
  POLICY_INDEX,
  type PointerHost,
  type Versioned,
} from "../vars/pointer.js";
import type { AllocateOptions, KeyDescription, KeyInfo } from "../vars/vars-client.js";
import { KIND_BYTES, KIND_JSON, type SyncPolicy } from "../vars/vars-messages.js";
import type { ShmNamespace } from "./shm-namespace.js";
import { type OpenVar, VAR_PREFIX, VarFiles } from "./shm-var-files.js";
import { spinLoop } from "./spin-loop.js";

export interface ShmVarsOptions {
  /** How long a key with no pointer left stays before it is disposed. Default 5000 (as a hub). */
  disposeGraceMs?: number;
  /** How long a disposed key's tombstone stays (`watch` → `EZIPC_KEY_DISPOSED`). Default 10 minutes. */
  tombstoneTtlMs?: number;
  /** Largest bytes key, and the most bytes of a JSON config (`EZIPC_BLOCK_TOO_LARGE`). Default 1 MiB. */
  maxBlockBytes?: number;
}

const disposedError = (key: string) =>
  new EzipcError("EZIPC_KEY_DISPOSED", `key ${key} has been invalidated`);

export class ShmVars {
  private readonly files: VarFiles;
  private readonly byState = new Map<KeyState, OpenVar>();
  /** Key states of {@link observe}: their pointers are not counted in the files. */
  private readonly observing = new Set<KeyState>();
  private nextId = 1;
  private closed = false;
  private holding = false;
  private readonly grace: number;
  private readonly maxBlockBytes: number;
  private readonly finalizer = new FinalizationRegistry<{ state: KeyState; policy: number }>((held) =>
    this.releaseHeld(held.state, held.policy),
  );
  /** What the last look at the watched keys found (the spin loop's sign of traffic). */
  delivered = 0;
  /** Only spin mode puts the keys' watcher in the spin loop: always looked at without event-loop turns. */
  readonly tight = true;
  private readonly host: PointerHost = {
    read: (s) => this.readState(s),
    write: (s, data, offset, expect) => this.writeState(s, data, offset, expect),
    release: (ptr, s, policy) => {
      this.finalizer.unregister(ptr);
      this.releaseHeld(s, policy);
    },
    refresh: (s) => {
      const o = s.backing as OpenVar | null;
      if (o !== null && o.state === s && o.v.generation() !== o.copied) this.copyInto(o, s);
    },
  };
  private readonly onWake = (): void => this.pump();

  constructor(
    private readonly ns: ShmNamespace,
    options: ShmVarsOptions = {},
  ) {
    this.grace = options.disposeGraceMs ?? 5_000;
    this.files = new VarFiles(
      ns,
      this.grace,
      options.tombstoneTtlMs ?? 600_000,
      (o) => o.state !== null && !this.observing.has(o.state),
    );
    this.maxBlockBytes = options.maxBlockBytes ?? 1024 * 1024;
    ns.wakeListeners.add(this.onWake);
  }

  /** See HubClient.allocate. */
  async allocate<P extends SyncPolicy>(
    key: string,
    sizeOrSchema: number | SchemaType<unknown>,
    policy: P,
    options: AllocateOptions = {},
  ): Promise<IpcPtr<P, unknown>> {
    checkKey(key);
    this.checkOpen();
    const { size, codec } = allocateShape(sizeOrSchema, policy);
    this.checkSize(key, size);
    const o = this.files.openOrCreate(
      key,
      VAR_BYTES,
      size,
      options.persistent ?? false,
      POLICY_INDEX[policy],
      {
        openExisting: options.openExisting ?? false,
      },
    );
    return this.pointerFor(o, policy, codec);
  }

  private checkSize(key: string, size: number): void {
    if (size > this.maxBlockBytes) {
      throw new EzipcError(
        "EZIPC_BLOCK_TOO_LARGE",
        `${key}: ${size} bytes is over maxBlockBytes (${this.maxBlockBytes})`,
      );
    }
  }

  /** See HubClient.watch. */
  async watch<P extends SyncPolicy>(
    key: string,
    policy: P,
    options: { schema?: SchemaType<unknown> } = {},
  ): Promise<IpcPtr<P, unknown> | null> {
    checkKey(key);
    checkPolicyName(policy);
    this.checkOpen();
    const codec = options.schema ? fixedCodec(options.schema) : undefined;
    for (let tries = 0; tries < 100; tries++) {
      const o = this.files.file(key);
      if (!o) return null;
      if (codec && o.v.capacity !== codec.fixedSize) {
        throw new EzipcError(
          "EZIPC_BAD_REQUEST",
          `${key} has ${o.v.capacity} bytes; the schema needs ${codec.fixedSize}`,
        );
      }
      const r = this.files.acquire(o, POLICY_INDEX[policy]);
      if (r === "replaced") continue;
      if (r === "disposed") throw disposedError(key);
      return this.pointerFor(o, policy, codec);
    }
    throw new EzipcError("EZIPC_TIMEOUT", `${key}: its file kept changing under us`);
  }

  /**
   * A poll pointer on a live key that holds no reference (the hub bridge's view: it must not keep keys
   * alive). Null if the key does not exist or is disposed. Its writes are writes like any other.
   */
  async observe(key: string): Promise<IpcPtr<"poll", unknown> | null> {
    checkKey(key);
    this.checkOpen();
    for (let tries = 0; tries < 100; tries++) {
      const o = this.files.file(key);
      if (!o) return null;
      if (o.state && !this.observing.has(o.state)) {
        throw new EzipcError("EZIPC_BAD_REQUEST", `${key}: this client holds pointers on it already`);
      }
      const state = o.v.locked(() => this.files.settle(o));
      if (state === VAR_REPLACED) continue;
      if (state === VAR_DISPOSED) return null;
      this.files.slotOf(o);
      const fresh = o.state === null;
      const ptr = this.pointerFor(o, "poll", undefined);
      if (fresh) this.observing.add(ptr.state);
      return ptr;
    }
    return null;
  }

  /**
   * Replaces the whole value of the key `ptr` points at (a JSON config's document as UTF-8 JSON). Resolves
   * with the new version.
   */
  async replaceValue(ptr: IpcPtr<SyncPolicy, unknown>, data: Uint8Array): Promise<number> {
    const s = ptr.state;
    if (s.kind === KIND_JSON) {
      return (await this.configOp(s, CONFIG_WRITE, Buffer.from(data).toString("utf8"))).version;
    }
    return (await this.writeState(s, data, 0)).version;
  }

  /** See HubClient.config. */
  async config(key: string, options: { policy?: SyncPolicy; persistent?: boolean } = {}): Promise<ConfigVar> {
    checkKey(key);
    this.checkOpen();
    const policy = options.policy ?? "poll";
    checkPolicyName(policy);
    const o = this.files.openOrCreate(
      key,
      VAR_JSON,
      this.maxBlockBytes,
      options.persistent ?? true,
      POLICY_INDEX[policy],
      { openExisting: true },
    );
    const ptr = this.pointerFor(o, policy, undefined);
    return new ConfigVar(ptr as IpcPtr<SyncPolicy>, (op, json) => this.configOp(ptr.state, op, json));
  }

  /** See HubClient.list: the namespace's keys matching `pattern`. */
  async list(pattern = ""): Promise<KeyInfo[]> {
    this.checkOpen();
    const match = pattern === "" ? () => true : globMatcher(pattern);
    const out: KeyInfo[] = [];
    for (const key of this.ns.fileNames(VAR_PREFIX)) {
      if (!match(key)) continue;
      let d: ReturnType<VarFiles["describe"]>;
      try {
        d = this.files.describe(key);
      } catch (err) {
        if (!isUnusableFile(err)) throw err;
        log("warn", "shm", `list: ${key} left out`, { error: (err as Error).message });
        continue; // one file that is not a usable key does not hide the others
      }
      if (!d || (d.state !== "live" && d.state !== "grace")) continue;
      out.push({
        key,
        kind: d.kind,
        size: d.size,
        version: d.version,
        refcount: d.refcount,
        persistent: d.persistent,
        state: d.state,
        holders: d.holders.map((h) => ({
          client: `pid ${h.pid}`,
          request: h.counts[0],
          lazy: h.counts[1],
          poll: h.counts[2],
        })),
      });
    }
    return out.sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
  }

  /** See HubClient.peek. */
  async peek(key: string): Promise<{ kind: "bytes" | "json"; version: number; data: Uint8Array } | null> {
    checkKey(key);
    this.checkOpen();
    const d = this.files.describe(key);
    if (!d || d.state === "disposed") return null;
    return { kind: d.kind, version: d.version, data: d.data };
  }

  /** See HubClient.info. */
  async info(key: string): Promise<KeyDescription> {
    checkKey(key);
    this.checkOpen();
    const d = this.files.describe(key);
    if (!d) return { state: "none" };
    if (d.state === "disposed") return { state: "disposed" };
    const { state, kind, size, version, refcount, persistent } = d;
    return { state, kind, size, version, refcount, persistent };
  }

  private pointerFor<P extends SyncPolicy>(
    o: OpenVar,
    policy: P,
    codec: SchemaCodec<unknown> | undefined,
  ): IpcPtr<P, unknown> {
    let s = o.state;
    const p = POLICY_INDEX[policy];
    if (!s) {
      const kind = o.v.kind === VAR_JSON ? KIND_JSON : KIND_BYTES;
      const { data, version, generation } = o.v.read();
      s = new KeyState(o.key, kind, this.nextId++, data.length, version, o.v.persistent);
      o.state = s;
      s.backing = o;
      o.seen = generation;
      this.byState.set(s, o);
      s.data = data;
      o.copied = generation;
    }
    const wasPolicy = s.policy;
    s.counts[p]!++;
    if (p >= 1 && wasPolicy < 1) {
      this.copyInto(o, s);
      s.fresh = true;
    }
    if (s.policy >= 1) this.watchChanges();
    const ptr = new IpcPtr<P, unknown>(s, policy, this.host, codec);
    s.pointers.add(new WeakRef(ptr as IpcPtr<SyncPolicy, unknown>));
    this.finalizer.register(ptr, { state: s, policy: p }, ptr);
    return ptr;
  }

  /** Copies the current value into the state (poll and lazy copies). */
  private copyInto(o: OpenVar, s: KeyState): void {
    const r = o.v.read(); // a new buffer: values read before stay as they were
    s.data = r.data;
    s.size = r.data.length;
    if (r.version > s.version) s.version = r.version;
    o.copied = r.generation;
  }

  private watched(): boolean {
    for (const o of this.files.open.values()) if (o.state && o.state.policy >= 1) return true;
    return false;
  }

  /** Starts looking for changes (wake-ups, or the spin loop): a slot parked in each watched key's file. */
  private watchChanges(): void {
    if (!this.holding) {
      this.holding = true;
      this.ns.waker.hold(); // like a hub client's connection: the process stays while it watches
    }
    if (this.ns.spin) spinLoop.add(this);
    this.pump();
  }

  /** Stops looking for changes once no key is watched. */
  private unwatchIfIdle(): void {
    if (this.watched()) return;
    if (this.holding) {
      this.holding = false;
      this.ns.waker.unhold();
    }
    spinLoop.remove(this);
  }

  /**
   * Looks at every watched key: tells its pointers of a change (poll: the new value; lazy: once per read),
   * then parks on the file so that the next writer wakes this process.
   */
  pump(): void {
    this.delivered = 0;
    if (this.closed) return;
    for (const o of this.files.open.values()) {
      const s = o.state;
      if (!s || s.policy < 1 || s.status === "invalidated") continue;
      for (let again = 0; again < 2; again++) {
        const g = o.v.generation();
        if (g !== o.seen) {
          o.seen = g;
          this.delivered++;
          this.tell(o, s);
        }
        if (this.ns.spin) break;
        // Park, then look once more: a writer that committed meanwhile may not have seen us park.
        this.ns.waker.park(o.v.file, this.files.slotOf(o));
        if (o.v.generation() === o.seen) break;
      }
    }
  }

  private tell(o: OpenVar, s: KeyState): void {
    if (s.policy === 2) {
      this.copyInto(o, s);
      s.fresh = true;
      const change = { version: s.version, data: s.data ?? undefined };
      s.notify((p) => p.emit("change", change));
      return;
    }
    const version = o.v.version();
    if (version <= s.version) return;
    s.version = version;
    if (!s.fresh) return; // told once until the next read
    s.fresh = false;
    s.notify((p) => p.emit("change", { version }));
  }

  private releaseHeld(s: KeyState, policy: number): void {
    const o = this.byState.get(s);
    if (!o || s.counts[policy]! === 0) return;
    s.counts[policy]!--;
    if (s.policy < 1) {
      s.data = null;
      s.fresh = false;
    }
    try {
      if (!this.observing.has(s))
        o.v.locked(() => {
          o.v.addRefs(o.slot, policy, -1);
          if (!o.v.persistent && o.v.state === VAR_LIVE && o.v.refcount() === 0) {
            o.v.setState(VAR_GRACE, Date.now() + this.grace);
          }
        });
    } finally {
      if (s.total === 0) {
        o.state = null;
        this.byState.delete(s);
        this.observing.delete(s);
        if (o.slot >= 0) this.ns.waker.releaseSlot(o.v.file, o.slot);
        o.slot = -1;
      }
      this.unwatchIfIdle();
    }
  }

  private fileOf(s: KeyState): OpenVar {
    this.checkOpen();
    const o = this.byState.get(s);
    if (!o || s.status === "invalidated") throw disposedError(s.key);
    return o;
  }

  private async readState(s: KeyState): Promise<Versioned> {
    const o = this.fileOf(s);
    const r = o.v.read();
    if (r.version >= s.version) {
      s.version = r.version;
      if (s.policy >= 1) {
        s.data = r.data;
        s.fresh = true;
        o.copied = r.generation;
      }
    }
    return { data: r.data, version: r.version };
  }

  /** Writes under the key's lock, wakes the watchers; this client's copy is at the new version after. */
  private commit(
    s: KeyState,
    write: () => { ok: boolean; version: number },
  ): { ok: boolean; version: number } {
    const o = this.fileOf(s);
    const r = o.v.locked(() => {
      const state = o.v.state;
      if (state === VAR_DISPOSED || state === VAR_REPLACED) throw disposedError(s.key);
      return write();
    });
    if (r.ok) this.ns.waker.wakeSleepers(o.v.file);
    // Written, or a conflict (a newer version exists): either way this client's copy is brought up to date,
    // so that a compare-and-write loop reads the newer value without waiting for its wake-up.
    if (s.policy >= 1) {
      this.copyInto(o, s);
      s.fresh = true;
    } else if (r.version > s.version) s.version = r.version;
    return r;
  }

  private async writeState(
    s: KeyState,
    data: Uint8Array,
    offset: number,
    expect?: number,
  ): Promise<{ ok: boolean; version: number }> {
    const v = this.fileOf(s).v;
    return this.commit(s, () => {
      if (expect !== undefined) {
        const current = v.version();
        if (current !== expect) return { ok: false, version: current };
      }
      return { ok: true, version: v.writeLocked(data, offset) };
    });
  }

  private async configOp(s: KeyState, op: number, json: string): Promise<{ ok: boolean; version: number }> {
    checkConfigDepth(s.key, json); // (as a hub: deeper values overflow the stack of whoever merges them)
    let value: unknown;
    try {
      value = JSON.parse(json);
    } catch (err) {
      throw new EzipcError("EZIPC_BAD_REQUEST", `${s.key}: invalid JSON: ${(err as Error).message}`);
    }
    const v = this.fileOf(s).v;
    return this.commit(s, () => {
      const cur = v.read();
      let next: unknown;
      if (op === CONFIG_WRITE) next = value;
      else if (op === CONFIG_WRITE_IF_EMPTY) {
        if (cur.data.length > 0) return { ok: false, version: cur.version };
        next = value;
      } else if (op === CONFIG_MERGE_PATCH) {
        const text = cur.data.toString("utf8");
        if (jsonDepth(text) > MAX_JSON_DEPTH) {
          // Only a process that wrote the file without ezipc's checks can have put it there.
          throw new EzipcError(
            "EZIPC_SHM_BAD_FILE",
            `${s.key}: its value is nested deeper than ${MAX_JSON_DEPTH} levels; write a whole new value instead of a patch`,
          );
        }
        let current: unknown;
        try {
          current = cur.data.length > 0 ? JSON.parse(text) : undefined;
        } catch {
          throw new EzipcError(
            "EZIPC_SHM_BAD_FILE",
            `${s.key}: its value is not JSON; write a whole new value`,
          );
        }
        next = mergePatch(current, value);
      } else throw new EzipcError("EZIPC_BAD_REQUEST", `unknown config operation ${op}`);
      const data = Buffer.from(JSON.stringify(next), "utf8");
      if (data.length > v.capacity) {
        throw new EzipcError(
          "EZIPC_BLOCK_TOO_LARGE",
          `${s.key}: ${data.length} bytes of JSON is over maxBlockBytes (${v.capacity})`,
        );
      }
      return { ok: true, version: v.writeLocked(data, 0, data.length) };
    });
  }

  private checkOpen(): void {
    if (this.closed) throw new EzipcError("EZIPC_CONNECTION_CLOSED", "this shm:// client is closed");
  }

  /** Releases every pointer this client holds (their keys enter their grace if nobody else holds them). */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.ns.wakeListeners.delete(this.onWake);
    for (const o of [...this.files.open.values()]) {
      const s = o.state;
      if (!s) continue;
      for (let p = 0; p < 3; p++) while (s.counts[p]! > 0) this.releaseHeld(s, p);
      s.status = "stale"; // as a hub client's pointers after close()
      s.notify((ptr) => ptr.emit("status", "stale"));
    }
    this.files.close();
    this.unwatchIfIdle();
  }
}
