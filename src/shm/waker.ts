/**
 * Wake-ups between processes, without busy-polling and without a syscall while readers are awake.
 *
 * Each process that reads shared memory owns one named pipe (FIFO) per namespace,
 * `.wake.PID.START`, read on its event loop. In each topic file it reads, it holds a consumer slot (pid,
 * start time, a `sleeping` word). A reader with nothing left to read parks:
 *
 *   reader: sleepers += 1; slot.sleeping = 1; read the ring's state again (data? unpark and read)
 *   writer: commit; if sleepers != 0, for each slot with sleeping 1 → 0: sleepers -= 1, write a byte to
 *           that process's FIFO
 *
 * With sequentially consistent atomics, either the writer sees the sleeping word or the reader sees the
 * commit (Dekker), so no wake-up is lost. The counter only ever drifts upwards (a process killed between
 * two of these steps), which costs writers a scan of the slots, never a lost wake-up. A dead reader's FIFO
 * cannot be opened for writing (ENXIO): the first writer that tries frees its slot.
 */
import { closeSync, constants, fchmodSync, fstatSync, openSync, unlinkSync, writeSync } from "node:fs";
import path from "node:path";
import { EzipcError } from "../errors.js";
import {
  C_HOLDS,
  C_NEXT_HI,
  C_NEXT_LO,
  C_PID,
  C_READERS,
  C_REFS,
  C_SLEEPING,
  C_WRITER_WAITING,
  H_SLEEPERS,
  H_WRITERS_WAITING,
  SLOT_COUNT,
  slotStart,
  slotWord,
} from "./layout.js";
import { type Poller, shmNative } from "./native.js";
import { isAlive, isAliveCached, processExists, SELF_START } from "./processes.js";
import type { MappedFile } from "./shm-file.js";

const WAKE_BYTE = Buffer.from([1]);

/**
 * Opens a wake-up pipe (never blocking). Only a FIFO, not through a symbolic link: in a namespace shared
 * with other users, a link or a file put under a pipe's name would have a wake-up byte written into
 * whatever it names. Throws EZIPC_SHM_BAD_FILE for anything else there.
 */
function openFifo(file: string, flags: number): number {
  const fd = openSync(file, flags | constants.O_NONBLOCK | constants.O_NOFOLLOW);
  if (!fstatSync(fd).isFIFO()) {
    closeSync(fd);
    throw new EzipcError("EZIPC_SHM_BAD_FILE", `${file}: not a named pipe`);
  }
  return fd;
}

export function fifoName(pid: number, start: number): string {
  return `.wake.${pid}.${start}`;
}

/**
 * This process's wake-up pipe in one namespace, and the writer side of everyone else's. One per process
 * and namespace, shared by every client of it in the process ({@link Waker.acquire}).
 */
export class Waker {
  private static readonly byDir = new Map<string, Waker>();
  /**
   * Wake-ups this process sent (bytes written to other processes' pipes) and took (its pipe became
   * readable); waiting writers its readers woke (in any process, this one included).
   */
  static readonly counts = { sent: 0, taken: 0, writersWoken: 0 };
  private readonly fifoPath: string;
  private readonly fd: number;
  private readonly poller: Poller;
  /** Write ends of other processes' pipes, by file name. */
  private readonly peers = new Map<string, number>();
  private readonly listeners = new Set<() => void>();
  private closed = false;
  private selfWakeQueued = false;
  /** Holders that want the process kept alive while they wait (subscriptions). */
  private active = 0;

  /**
   * The namespace's waker, shared in this process; `onWake` runs after any wake-up. `mode` is the client's
   * file mode: the users it shares the namespace with may write wake-up bytes into this process's pipe
   * (never read them).
   */
  static acquire(dir: string, onWake: () => void, mode = 0o600): Waker {
    let w = Waker.byDir.get(dir);
    if (!w || w.closed) {
      w = new Waker(dir);
      Waker.byDir.set(dir, w);
    }
    w.allowWriters(mode);
    w.listeners.add(onWake);
    return w;
  }

  /** The pipe's mode: this user reads and writes; those `mode` lets write files may write (umask aside). */
  private fifoMode = 0o600;

  private allowWriters(mode: number): void {
    const want = this.fifoMode | (mode & 0o022);
    if (want === this.fifoMode) return;
    fchmodSync(this.fd, want);
    this.fifoMode = want;
  }

  /** Stops calling `onWake`; the pipe closes when no client of the namespace is left. */
  release(onWake: () => void): void {
    this.listeners.delete(onWake);
    if (this.listeners.size === 0) {
      Waker.byDir.delete(this.dir);
      this.close();
    }
  }

  private constructor(readonly dir: string) {
    this.fifoPath = path.join(dir, fifoName(process.pid, SELF_START));
    try {
      unlinkSync(this.fifoPath); // left by an earlier process with our pid and start (not possible) or a crash
    } catch {}
    shmNative().mkfifo(this.fifoPath, 0o600);
    // Read and write: the pipe never reports end-of-file while this process holds it. A native uv_poll
    // watches it on the event loop: no stream, no Buffer per wake-up.
    this.fd = openFifo(this.fifoPath, constants.O_RDWR);
    this.poller = shmNative().watchFd(this.fd, () => {
      Waker.counts.taken++;
      this.wakeAll();
    });
    shmNative().pollerUnref(this.poller);
  }

  private wakeAll(): void {
    for (const l of [...this.listeners]) l();
  }

  /** Keeps the process alive while held (a subscription waiting for messages). */
  hold(): void {
    if (this.active++ === 0) shmNative().pollerRef(this.poller);
  }

  unhold(): void {
    if (this.active > 0 && --this.active === 0) shmNative().pollerUnref(this.poller);
  }

  private close(): void {
    if (this.closed) return;
    this.closed = true;
    shmNative().pollerClose(this.poller);
    closeSync(this.fd);
    try {
      unlinkSync(this.fifoPath);
    } catch {}
    for (const fd of this.peers.values()) closeSync(fd);
    this.peers.clear();
  }

  /**
   * Takes a consumer slot in `file` for this process (a free one, or one whose process died).
   * Throws `EZIPC_TOO_MANY_SUBSCRIPTIONS` when all are held by live processes.
   */
  claimSlot(file: MappedFile): number {
    const { i32, f64 } = file;
    for (let pass = 0; pass < 2; pass++) {
      for (let s = 0; s < SLOT_COUNT; s++) {
        const pidAt = slotWord(s, C_PID);
        const pid = Atomics.load(i32, pidAt);
        if (pid !== 0) {
          // Claimed (negative: being claimed): free it only if its process is gone.
          if (pass === 0) continue;
          const start = f64[slotStart(s)]!;
          if (isAlive(Math.abs(pid), start) || (pid < 0 && processExists(-pid))) continue;
        }
        // Claim in two steps so that nobody reads our pid beside a stale start time.
        if (Atomics.compareExchange(i32, pidAt, pid, -process.pid) !== pid) continue;
        f64[slotStart(s)] = SELF_START;
        file.u32[slotWord(s, C_NEXT_LO)] = 0;
        file.u32[slotWord(s, C_NEXT_HI)] = 0;
        for (let p = 0; p < 3; p++) Atomics.store(i32, slotWord(s, C_REFS) + p, 0);
        Atomics.store(i32, slotWord(s, C_READERS), 0);
        Atomics.store(i32, slotWord(s, C_HOLDS), 0);
        if (Atomics.compareExchange(i32, slotWord(s, C_WRITER_WAITING), 1, 0) === 1) {
          Atomics.sub(i32, H_WRITERS_WAITING / 4, 1);
        }
        if (Atomics.load(i32, slotWord(s, C_SLEEPING)) === 1) {
          // The dead holder was parked: its wake-up count goes with it.
          if (Atomics.compareExchange(i32, slotWord(s, C_SLEEPING), 1, 0) === 1)
            Atomics.sub(i32, H_SLEEPERS / 4, 1);
        }
        Atomics.store(i32, pidAt, process.pid);
        return s;
      }
    }
    throw new EzipcError(
      "EZIPC_TOO_MANY_SUBSCRIPTIONS",
      `${file.path}: all ${SLOT_COUNT} reader slots are held by live processes`,
    );
  }

  releaseSlot(file: MappedFile, slot: number): void {
    this.unpark(file, slot);
    file.u32[slotWord(slot, C_NEXT_LO)] = 0;
    file.u32[slotWord(slot, C_NEXT_HI)] = 0;
    Atomics.store(file.i32, slotWord(slot, C_HOLDS), 0);
    if (Atomics.compareExchange(file.i32, slotWord(slot, C_WRITER_WAITING), 1, 0) === 1) {
      Atomics.sub(file.i32, H_WRITERS_WAITING / 4, 1);
    }
    Atomics.compareExchange(file.i32, slotWord(slot, C_PID), process.pid, 0);
  }

  /** Marks `slot` as parked; the caller must then look at the ring once more before it sleeps. */
  park(file: MappedFile, slot: number): void {
    const { i32 } = file;
    if (Atomics.load(i32, slotWord(slot, C_SLEEPING)) === 1) return;
    Atomics.add(i32, H_SLEEPERS / 4, 1); // counter first: a death in between only over-counts
    Atomics.store(i32, slotWord(slot, C_SLEEPING), 1);
  }

  /** Clears the parked mark if no writer took it; returns true if it did. */
  unpark(file: MappedFile, slot: number): boolean {
    const { i32 } = file;
    if (Atomics.compareExchange(i32, slotWord(slot, C_SLEEPING), 1, 0) !== 1) return false;
    Atomics.sub(i32, H_SLEEPERS / 4, 1);
    return true;
  }

  /**
   * Reader slots of `file` held by live processes (`readersOnly`: slots whose process reads it). `exact`:
   * ask /proc now rather than trust an answer up to 100 ms old (hot paths do not). Stops counting at
   * `atMost` (1: whether there is any, usually from the first slots).
   */
  static liveSlots(file: MappedFile, readersOnly = false, exact = false, atMost = SLOT_COUNT): number {
    let n = 0;
    for (let s = 0; s < SLOT_COUNT; s++) {
      const pid = Atomics.load(file.i32, slotWord(s, C_PID));
      if (pid <= 0) continue;
      if (readersOnly && file.u32[slotWord(s, C_NEXT_LO)] === 0 && file.u32[slotWord(s, C_NEXT_HI)] === 0)
        continue;
      const start = file.f64[slotStart(s)]!;
      if ((exact ? isAlive(pid, start) : isAliveCached(pid, start)) && ++n >= atMost) break;
    }
    return n;
  }

  /**
   * Readers of `file` in live processes: each reading slot's count of its process's readers (a slot of an
   * older version, which counts none, as one).
   */
  static liveReaders(file: MappedFile): number {
    let n = 0;
    for (let s = 0; s < SLOT_COUNT; s++) {
      const pid = Atomics.load(file.i32, slotWord(s, C_PID));
      if (pid <= 0) continue;
      if (file.u32[slotWord(s, C_NEXT_LO)] === 0 && file.u32[slotWord(s, C_NEXT_HI)] === 0) continue;
      if (isAlive(pid, file.f64[slotStart(s)]!))
        n += Math.max(1, Atomics.load(file.i32, slotWord(s, C_READERS)));
    }
    return n;
  }

  /** After a commit: wakes every parked reader of `file` (no work at all when none is parked). */
  wakeSleepers(file: MappedFile): void {
    const { i32, f64 } = file;
    if (Atomics.load(i32, H_SLEEPERS / 4) === 0) return;
    // One byte per process for its consecutive slots (a process's clients usually sit side by side).
    let lastPid = 0;
    let lastOk = true;
    for (let s = 0; s < SLOT_COUNT; s++) {
      const at = slotWord(s, C_SLEEPING);
      if (Atomics.load(i32, at) !== 1 || Atomics.compareExchange(i32, at, 1, 0) !== 1) continue;
      Atomics.sub(i32, H_SLEEPERS / 4, 1);
      const pid = Atomics.load(i32, slotWord(s, C_PID));
      if (pid <= 0) continue;
      const start = f64[slotStart(s)]!;
      const poked: boolean = pid === lastPid ? lastOk : this.poke(pid, start);
      lastPid = pid;
      lastOk = poked;
      if (!poked && !isAlive(pid, start)) {
        Atomics.compareExchange(i32, slotWord(s, C_PID), pid, 0); // a dead reader: free its slot
      }
    }
  }

  /** Wakes process (pid, start): a byte in its pipe; false if it has none (it is gone). */
  wakeProcess(pid: number, start: number): boolean {
    return this.poke(pid, start);
  }

  /** Writes a wake byte to a process's pipe; false if it has none (it is gone). */
  private poke(pid: number, start: number): boolean {
    if (pid === process.pid && start === SELF_START) {
      // Ourselves: no syscall, and not from inside the publish that woke us.
      if (!this.selfWakeQueued) {
        this.selfWakeQueued = true;
        process.nextTick(() => {
          this.selfWakeQueued = false;
          if (!this.closed) this.wakeAll();
        });
      }
      return true;
    }
    const name = fifoName(pid, start);
    let fd = this.peers.get(name);
    if (fd === undefined) {
      try {
        fd = openFifo(path.join(this.dir, name), constants.O_WRONLY);
      } catch {
        return false; // ENXIO (no reader) or ENOENT: that process is gone (or its name is not a pipe)
      }
      this.peers.set(name, fd);
    }
    try {
      writeSync(fd, WAKE_BYTE);
      Waker.counts.sent++;
      return true;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === "EAGAIN") return true; // full: it has wake-ups pending
      closeSync(fd);
      this.peers.delete(name);
      return false;
    }
  }
}
