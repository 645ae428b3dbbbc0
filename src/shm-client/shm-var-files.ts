/**
 * The variable files a shm:// client has open (src/shm/var-file.ts), and the life of their keys: opening
 * and creating them (one creator of several racing processes; a tombstone replaced under its lock), taking
 * references, and moving keys on in time — grace, disposal, tombstone removal — when some process looks,
 * since no process keeps time for the others (shm-vars.ts uses it; docs/shm.md).
 */
import { EzipcError } from "../errors.js";
import { shmFileName } from "../shm/file-names.js";
import { KIND_VAR } from "../shm/layout.js";
import { createShmFile, type MappedFile, openShmFile } from "../shm/shm-file.js";
import {
  initVar,
  SharedVar,
  VAR_BYTES,
  VAR_DISPOSED,
  VAR_GRACE,
  VAR_JSON,
  VAR_LIVE,
  VAR_REPLACED,
  varRingBytes,
} from "../shm/var-file.js";
import type { KeyState } from "../vars/pointer.js";
import type { ShmNamespace } from "./shm-namespace.js";

/** How often a process checks the keys whose files it has open for holders that died. */
const SWEEP_MS = 1_000;
/** Variable files are named `.var.KEY` (the key escaped as a topic's file name). */
export const VAR_PREFIX = ".var.";

/** A key's file as this client has it open, and what the client holds on it. */
export interface OpenVar {
  key: string;
  v: SharedVar;
  /** This client's slot in the file (-1: none). */
  slot: number;
  /** The client's state of the key while it holds pointers on it. */
  state: KeyState | null;
  /** The generation the pointers were last told about (lazy/poll change events). */
  seen: number;
  /** The generation of the state's copy (poll reads copy only when it changed). */
  copied: number;
}

export class VarFiles {
  readonly open = new Map<string, OpenVar>();
  private sweep: NodeJS.Timeout | null = null;

  constructor(
    private readonly ns: ShmNamespace,
    private readonly grace: number,
    private readonly tombstoneTtl: number,
    /** Whether this client holds pointers that count on `o` (its count cannot be 0: no sweep needed). */
    private readonly held: (o: OpenVar) => boolean,
  ) {}

  private path(key: string): string {
    return `${this.ns.dir}/${shmFileName(VAR_PREFIX, key, "EZIPC_INVALID_KEY")}`;
  }

  /** The key's file, open (null if there is none). A file replaced since it was opened is opened again. */
  file(key: string): OpenVar | null {
    const known = this.open.get(key);
    if (known && known.v.state !== VAR_REPLACED) return known;
    if (known) this.forget(known);
    let m: MappedFile;
    this.ns.checkDir();
    try {
      m = openShmFile(this.path(key), KIND_VAR, this.ns.mode);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === "ENOENT") return null;
      throw err;
    }
    return this.adopt(key, m, -1);
  }

  private adopt(key: string, m: MappedFile, slot: number): OpenVar {
    const o: OpenVar = { key, v: new SharedVar(m), slot, state: null, seen: -1, copied: -1 };
    this.open.set(key, o);
    this.sweep ??= setInterval(() => this.sweepKeys(), SWEEP_MS).unref();
    return o;
  }

  forget(o: OpenVar): void {
    if (this.open.get(o.key) === o) this.open.delete(o.key);
    if (o.slot >= 0) this.ns.waker.releaseSlot(o.v.file, o.slot);
    o.slot = -1;
  }

  /**
   * Under the key's lock: moves the key on in time (a live key whose holders are all gone enters its
   * grace; a grace that ended disposes it; an old tombstone is removed). Returns the state.
   */
  settle(o: OpenVar, now = Date.now()): number {
    const v = o.v;
    let state = v.state;
    if (state === VAR_LIVE && !v.persistent && v.refcount() === 0) {
      v.setState(VAR_GRACE, now + this.grace);
      state = VAR_GRACE;
    }
    if (state === VAR_GRACE && now >= v.when) {
      v.setState(VAR_DISPOSED, v.when);
      state = VAR_DISPOSED;
    }
    if (state === VAR_DISPOSED && now - v.when >= this.tombstoneTtl) {
      v.setState(VAR_REPLACED);
      try {
        this.ns.removeFile(v.file.path);
      } catch {}
      state = VAR_REPLACED;
    }
    return state;
  }

  slotOf(o: OpenVar): number {
    if (o.slot < 0) {
      try {
        o.slot = this.ns.waker.claimSlot(o.v.file);
      } catch (err) {
        throw new EzipcError(
          "EZIPC_TOO_MANY_POINTERS",
          `${o.key}: ${(err as Error).message} (at most 60 processes hold one shm:// key)`,
        );
      }
    }
    return o.slot;
  }

  /**
   * Takes one pointer of `policy` on the key: "ok", or why not. A key in its grace is revived.
   * `create`: what to do when the key is not live (allocate).
   */
  acquire(o: OpenVar, policy: number): "ok" | "disposed" | "replaced" {
    return o.v.locked(() => {
      const state = this.settle(o);
      if (state === VAR_REPLACED) return "replaced";
      if (state === VAR_DISPOSED) return "disposed";
      if (state === VAR_GRACE) o.v.setState(VAR_LIVE);
      o.v.addRefs(this.slotOf(o), policy, 1);
      return "ok";
    });
  }

  /** Creates the key's file (`replace`: over a disposed one); null if another process created it first. */
  private create(
    key: string,
    kind: number,
    capacity: number,
    persistent: boolean,
    policy: number,
    replace: boolean,
  ): OpenVar | null {
    this.ns.checkDir();
    let slot = -1;
    const m = createShmFile(
      this.path(key),
      {
        kind: KIND_VAR,
        ringBytes: varRingBytes(capacity),
        maxCount: 0,
        mode: this.ns.mode,
        init: (f) => {
          initVar(f, kind, capacity, persistent);
          // Held from its first instant: nobody sees it with no holder.
          slot = this.ns.waker.claimSlot(f);
          new SharedVar(f).addRefs(slot, policy, 1);
        },
      },
      replace,
    );
    if (!m) return null;
    const known = this.open.get(key);
    if (known) this.forget(known);
    return this.adopt(key, m, slot);
  }

  openOrCreate(
    key: string,
    kind: number,
    capacity: number,
    persistent: boolean,
    policy: number,
    how: { openExisting: boolean },
  ): OpenVar {
    for (let tries = 0; tries < 100; tries++) {
      const o = this.file(key);
      if (!o) {
        const made = this.create(key, kind, capacity, persistent, policy, false);
        if (made) return made;
        continue; // another process created it first
      }
      const outcome = o.v.locked(() => {
        const state = this.settle(o);
        if (state === VAR_REPLACED) return "again";
        if (state === VAR_DISPOSED) {
          // A tombstone: the key is created anew, replacing the old file (under its lock: one creator).
          o.v.setState(VAR_REPLACED);
          return this.create(key, kind, capacity, persistent, policy, true) ?? "again";
        }
        if (!how.openExisting) return "exists";
        if (o.v.kind !== kind) return "kind";
        if (kind === VAR_BYTES && o.v.capacity !== capacity) return "size";
        if (state === VAR_GRACE) o.v.setState(VAR_LIVE);
        o.v.addRefs(this.slotOf(o), policy, 1);
        return o;
      });
      if (outcome === "again") continue;
      if (outcome === "exists") throw new EzipcError("EZIPC_KEY_EXISTS", `key ${key} already exists`);
      if (outcome === "kind") {
        throw new EzipcError(
          "EZIPC_BAD_REQUEST",
          `key ${key} holds ${o.v.kind === VAR_JSON ? "a JSON config" : "bytes"}, not ${kind === VAR_JSON ? "a JSON config" : "bytes"}`,
        );
      }
      if (outcome === "size") {
        throw new EzipcError("EZIPC_BAD_REQUEST", `key ${key} has ${o.v.capacity} bytes, not ${capacity}`);
      }
      return outcome;
    }
    throw new EzipcError("EZIPC_TIMEOUT", `${key}: its file kept changing under us`);
  }

  describe(key: string) {
    const o = this.file(key);
    if (!o) return null;
    const state = o.v.locked(() => this.settle(o));
    if (state === VAR_REPLACED) return null;
    if (state === VAR_DISPOSED) return { state: "disposed" as const };
    const v = o.v;
    const { data, version } = v.read();
    return {
      state: state === VAR_GRACE ? ("grace" as const) : ("live" as const),
      kind: v.kind === VAR_JSON ? ("json" as const) : ("bytes" as const),
      size: data.length,
      version,
      data,
      refcount: v.refcount(),
      persistent: v.persistent,
      holders: v.holders(),
    };
  }

  /** Every second: keys whose files this client has open move on in time (holders that died). */
  private sweepKeys(): void {
    const now = Date.now();
    for (const o of [...this.open.values()]) {
      if (this.held(o)) continue; // held here: its count is not 0
      try {
        if (o.v.locked(() => this.settle(o, now)) === VAR_REPLACED) this.forget(o);
      } catch {}
    }
  }

  /** Forgets every file (their slots are given back). */
  close(): void {
    if (this.sweep) clearInterval(this.sweep);
    this.sweep = null;
    for (const o of [...this.open.values()]) this.forget(o);
  }
}
