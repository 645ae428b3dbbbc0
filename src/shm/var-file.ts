/**
 * A shared variable in shared memory: one file per key (`.var.KEY`), holding the key's value twice — a
 * double buffer — and who holds it.
 *
 * Value: the header's generation word G (offset 24) names the current buffer (G & 1). A writer, holding the
 * file's robust lock, copies the current buffer into the other one, changes it there, stamps it with the
 * next version and then increments G with one atomic store: the commit. Readers never wait and never see a
 * torn value: they read G, copy the current buffer, and read G again; an unchanged G proves no writer
 * committed meanwhile, so nobody wrote the buffer they copied (writers only write the other one). A writer
 * killed at any instruction never touched the current buffer: the next writer takes the lock (EOWNERDEAD)
 * and goes on, nothing to repair.
 *
 * Holders: each process holding pointers on the key has a consumer slot (pid, start time) with its pointer
 * counts per policy (C_REFS). A key's reference count is the sum over slots of live processes, so a holder
 * killed with kill -9 stops counting as soon as anyone looks. Changes of counts and of the key's state
 * (live, grace, disposed) happen under the lock.
 *
 * Layout after the common header (docs/shm.md):
 *   128 u32 kind (0 bytes, 1 JSON)   132 u32 capacity (the size of a bytes key; a JSON key's most bytes)
 *   136 i32 state (0 live, 1 grace, 2 disposed, 3 replaced: a newer file has its name)
 *   140 u32 persistent (1: never disposed)   144 f64 grace end / disposal time, ms since the epoch
 *   152 u32 lock recoveries
 *   4096 + b × (16 + capacity rounded up to 8), b = 0, 1: u32×2 version, u32 length, u32 0, data
 */
import { EzipcError } from "../errors.js";
import { lockFile, unlockFile } from "./file-lock.js";
import {
  align8,
  C_PID,
  C_REFS,
  H_GEN,
  HEADER_BYTES,
  MIN_RING_BYTES,
  SLOT_COUNT,
  slotStart,
  slotWord,
} from "./layout.js";
import { isAlive } from "./processes.js";
import type { MappedFile } from "./shm-file.js";

export const VAR_BYTES = 0;
export const VAR_JSON = 1;
export const VAR_LIVE = 0;
export const VAR_GRACE = 1;
export const VAR_DISPOSED = 2;
export const VAR_REPLACED = 3;

const V_KIND = 128;
const V_CAPACITY = 132;
const V_STATE = 136;
const V_PERSISTENT = 140;
const V_WHEN = 144;
const V_RECOVERIES = 152;
const B_VERSION_LO = 0;
const B_VERSION_HI = 4;
const B_LENGTH = 8;
const B_DATA = 16;
const TWO32 = 2 ** 32;
/** Values up to this many bytes are copied by a loop (cheaper than a native copy for small ones). */
const SMALL = 128;

/** A private word for full fences (an atomic read-modify-write orders the plain reads around it). */
const fenceWord = new Int32Array(new SharedArrayBuffer(4));

/** The bytes after the header a variable of `capacity` bytes needs: its two buffers. */
export function varRingBytes(capacity: number): number {
  return Math.max(MIN_RING_BYTES, 2 * (B_DATA + align8(capacity)));
}

/** Writes a new variable's header (version 1: zeros for bytes, an empty document for JSON). */
export function initVar(m: MappedFile, kind: number, capacity: number, persistent: boolean): void {
  m.u32.fill(0, 128 / 4, 256 / 4); // the topic state blocks this area would be
  m.u32[V_KIND / 4] = kind;
  m.u32[V_CAPACITY / 4] = capacity;
  m.u32[V_PERSISTENT / 4] = persistent ? 1 : 0;
  m.i32[V_STATE / 4] = VAR_LIVE;
  const b = HEADER_BYTES / 4;
  m.u32[b + B_VERSION_LO / 4] = 1;
  m.u32[b + B_LENGTH / 4] = kind === VAR_BYTES ? capacity : 0;
  m.i32[H_GEN / 4] = 0;
}

export interface Holder {
  pid: number;
  start: number;
  /** Pointers per policy: request, lazy, poll. */
  counts: [number, number, number];
}

export class SharedVar {
  readonly kind: number;
  readonly capacity: number;
  private readonly bufBytes: number;

  /** Validates the variable's header (a file already validated as a KIND_VAR file). */
  constructor(readonly file: MappedFile) {
    const { u32 } = file;
    this.kind = u32[V_KIND / 4]!;
    this.capacity = u32[V_CAPACITY / 4]!;
    this.bufBytes = B_DATA + align8(this.capacity);
    if (
      (this.kind !== VAR_BYTES && this.kind !== VAR_JSON) ||
      this.capacity < 1 ||
      2 * this.bufBytes > file.ringBytes
    ) {
      throw new EzipcError("EZIPC_SHM_BAD_FILE", `${file.path}: not a valid shared variable`);
    }
  }

  get persistent(): boolean {
    return this.file.u32[V_PERSISTENT / 4] === 1;
  }

  /** The generation: changes with every committed write (a cheap "has it changed?"). */
  generation(): number {
    return Atomics.load(this.file.i32, H_GEN / 4);
  }

  /**
   * The current value, copied into a new buffer, with its version (a consistent snapshot: never torn).
   * Throws `EZIPC_SHM_BAD_FILE` if the buffer's length is insane.
   */
  read(): { data: Buffer; version: number; generation: number } {
    const { i32, u32, bytes } = this.file;
    for (let tries = 0; tries < 100_000; tries++) {
      const g = Atomics.load(i32, H_GEN / 4);
      const at = HEADER_BYTES + (g & 1) * this.bufBytes;
      const version = u32[(at + B_VERSION_LO) / 4]! + u32[(at + B_VERSION_HI) / 4]! * TWO32;
      const length = u32[(at + B_LENGTH) / 4]!;
      if (length > this.capacity) {
        if (Atomics.load(i32, H_GEN / 4) !== g) continue;
        throw new EzipcError("EZIPC_SHM_BAD_FILE", `${this.file.path}: value length ${length} is corrupted`);
      }
      const data = Buffer.allocUnsafe(length);
      const from = at + B_DATA;
      if (length <= SMALL) for (let i = 0; i < length; i++) data[i] = bytes[from + i]!;
      else bytes.copy(data, 0, from, from + length);
      Atomics.add(fenceWord, 0, 0); // the copy above happens before the check below
      if (Atomics.load(i32, H_GEN / 4) === g) return { data, version, generation: g };
    }
    throw new EzipcError("EZIPC_SHM_BAD_FILE", `${this.file.path}: the value never settled`);
  }

  /** The current version (consistent with {@link generation}). */
  version(): number {
    const { i32, u32 } = this.file;
    for (;;) {
      const g = Atomics.load(i32, H_GEN / 4);
      const at = (HEADER_BYTES + (g & 1) * this.bufBytes) / 4;
      const v = u32[at + B_VERSION_LO / 4]! + u32[at + B_VERSION_HI / 4]! * TWO32;
      if (Atomics.load(i32, H_GEN / 4) === g) return v;
    }
  }

  /** Runs `fn` holding the key's lock (a dead holder's lock is taken over and counted). */
  locked<T>(fn: () => T): T {
    if (lockFile(this.file)) this.file.u32[V_RECOVERIES / 4]!++;
    try {
      return fn();
    } finally {
      unlockFile(this.file);
    }
  }

  /**
   * Under the lock: replaces bytes `offset..` with `data` (`length`: the new value's length, for JSON) and
   * commits the next version, which it returns. Only the buffer readers do not read is written.
   */
  writeLocked(data: Uint8Array, offset: number, length = this.capacity): number {
    const { i32, u32, bytes } = this.file;
    if (offset + data.length > length || length > this.capacity) {
      throw new RangeError(`${data.length} bytes at ${offset} do not fit ${this.file.path}`);
    }
    const g = Atomics.load(i32, H_GEN / 4);
    const cur = HEADER_BYTES + (g & 1) * this.bufBytes;
    const next = HEADER_BYTES + ((g + 1) & 1) * this.bufBytes;
    const version = u32[(cur + B_VERSION_LO) / 4]! + u32[(cur + B_VERSION_HI) / 4]! * TWO32 + 1;
    if (offset > 0 || data.length < length) {
      // The rest of the value stays: copy the current value first.
      bytes.copy(bytes, next + B_DATA, cur + B_DATA, cur + B_DATA + length);
    }
    bytes.set(data, next + B_DATA + offset);
    u32[(next + B_VERSION_LO) / 4] = version % TWO32;
    u32[(next + B_VERSION_HI) / 4] = Math.floor(version / TWO32);
    u32[(next + B_LENGTH) / 4] = length;
    Atomics.store(i32, H_GEN / 4, (g + 1) | 0); // the commit
    return version;
  }

  /** The key's state word (under the lock to change it). */
  get state(): number {
    return Atomics.load(this.file.i32, V_STATE / 4);
  }

  /** When the grace ends (state grace) or when the key was disposed (state disposed), ms since the epoch. */
  get when(): number {
    return this.file.f64[V_WHEN / 8]!;
  }

  /** Under the lock: sets the state and its time. */
  setState(state: number, when = 0): void {
    this.file.f64[V_WHEN / 8] = when;
    Atomics.store(this.file.i32, V_STATE / 4, state);
  }

  /** Lock take-overs so far. */
  get recoveries(): number {
    return this.file.u32[V_RECOVERIES / 4]!;
  }

  /** Adds `delta` pointers of `policy` to slot `slot`'s counts (this process's slot). */
  addRefs(slot: number, policy: number, delta: number): void {
    Atomics.add(this.file.i32, slotWord(slot, C_REFS) + policy, delta);
  }

  /** The pointers slot `slot` holds per policy. */
  refsOf(slot: number): [number, number, number] {
    const { i32 } = this.file;
    const w = slotWord(slot, C_REFS);
    return [Atomics.load(i32, w), Atomics.load(i32, w + 1), Atomics.load(i32, w + 2)];
  }

  /** The holders that live (a dead process's pointers do not count), with their counts. */
  holders(): Holder[] {
    const out: Holder[] = [];
    const { i32, f64 } = this.file;
    for (let s = 0; s < SLOT_COUNT; s++) {
      const pid = Atomics.load(i32, slotWord(s, C_PID));
      if (pid <= 0) continue;
      const counts = this.refsOf(s);
      if (counts[0] + counts[1] + counts[2] === 0) continue;
      const start = f64[slotStart(s)]!;
      if (!isAlive(pid, start)) continue;
      out.push({ pid, start, counts });
    }
    return out;
  }

  /** The key's reference count: pointers held by live processes. */
  refcount(): number {
    let n = 0;
    for (const h of this.holders()) n += h.counts[0] + h.counts[1] + h.counts[2];
    return n;
  }
}
