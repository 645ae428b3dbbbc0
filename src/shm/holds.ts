/**
 * Publisher holds: a reader that takes every message (`iter: next`) marks its slot as holding and keeps its
 * next seq there; a writer must not evict a message at or past the lowest such seq of a live reader, and
 * waits instead (for at most its hold time). Readers that move on wake waiting writers through the same
 * wake-up pipes as readers (flag in the slot, count in the header, a byte in the pipe).
 *
 * A waiting writer names the seq it waits for (`wake at`): the readers wake it once all of them that hold
 * have reached it, not at each step they take. It asks for a sixteenth of the ring past where it stopped, so
 * that a writer held by a reader that reads 512 messages at a time is woken once per sixteenth of the ring
 * instead of once per 512 messages (each wake-up a system call for the reader, a turn of the event loop and
 * a locked append for the writer).
 */
import {
  C_HOLDS,
  C_NEXT_HI,
  C_NEXT_LO,
  C_PID,
  C_READERS,
  C_WAKE_AT_HI,
  C_WAKE_AT_LO,
  C_WRITER_WAITING,
  H_WRITERS_WAITING,
  SLOT_COUNT,
  slotStart,
  slotWord,
} from "./layout.js";
import { isAliveCached } from "./processes.js";
import type { MappedFile } from "./shm-file.js";

const TWO32 = 2 ** 32;
const word = slotWord;

/** Publishes where this process's holding readers of `file` are (`next`: lowest next seq; 0: none hold). */
export function setReaderPosition(file: MappedFile, slot: number, next: number, holds: boolean): void {
  const { u32, i32 } = file;
  Atomics.store(u32, word(slot, C_NEXT_LO), next % TWO32);
  Atomics.store(u32, word(slot, C_NEXT_HI), Math.floor(next / TWO32));
  Atomics.store(i32, word(slot, C_HOLDS), holds ? 1 : 0);
}

/** Publishes how many readers (subscriptions) this process has on `file` (what `topics()` counts). */
export function setReaderCount(file: MappedFile, slot: number, readers: number): void {
  Atomics.store(file.i32, word(slot, C_READERS), readers);
}

/**
 * The lowest next seq of the live holding readers of `file` (messages below it may be evicted), or
 * Infinity when none holds.
 */
export function holdFloor(file: MappedFile): number {
  const { u32, i32, f64 } = file;
  const now = Date.now();
  let floor = Number.POSITIVE_INFINITY;
  for (let s = 0; s < SLOT_COUNT; s++) {
    if (Atomics.load(i32, word(s, C_HOLDS)) !== 1) continue;
    const pid = Atomics.load(i32, word(s, C_PID));
    if (pid <= 0) continue;
    const next = Atomics.load(u32, word(s, C_NEXT_LO)) + Atomics.load(u32, word(s, C_NEXT_HI)) * TWO32;
    if (next >= floor) continue;
    if (!isAliveCached(pid, f64[slotStart(s)]!, now)) continue;
    floor = next;
  }
  return floor;
}

/**
 * Marks this process's slot as a writer waiting for readers: the holding readers wake it once all of them
 * have reached seq `wakeAt` (0: at any move). The caller then looks at the readers once more (one that
 * moved before the mark was visible does not wake it).
 */
export function markWriterWaiting(file: MappedFile, slot: number, wakeAt = 0): void {
  const { i32, u32 } = file;
  clearWriterWaiting(file, slot); // (never a new `wake at` under a set mark: readers read it after the mark)
  Atomics.store(u32, word(slot, C_WAKE_AT_LO), wakeAt % TWO32);
  Atomics.store(u32, word(slot, C_WAKE_AT_HI), Math.floor(wakeAt / TWO32));
  Atomics.add(i32, H_WRITERS_WAITING / 4, 1);
  Atomics.store(i32, word(slot, C_WRITER_WAITING), 1);
}

/** Clears this process's waiting mark (if no reader took it). */
export function clearWriterWaiting(file: MappedFile, slot: number): void {
  const { i32 } = file;
  if (Atomics.compareExchange(i32, word(slot, C_WRITER_WAITING), 1, 0) === 1) {
    Atomics.sub(i32, H_WRITERS_WAITING / 4, 1);
  }
}

const NONE: readonly { pid: number; start: number }[] = [];

/**
 * Takes the marks of the waiting writers of `file` that a reader now at `position` (its process's published
 * next seq) should wake: those whose `wake at` every live holding reader has reached. Returns their (pid,
 * start).
 */
export function takeWaitingWriters(
  file: MappedFile,
  position: number,
): readonly { pid: number; start: number }[] {
  const { i32, u32, f64 } = file;
  if (Atomics.load(i32, H_WRITERS_WAITING / 4) === 0) return NONE;
  let out: { pid: number; start: number }[] | null = null;
  let floor = -1; // the readers' floor, looked up once, and only if needed
  for (let s = 0; s < SLOT_COUNT; s++) {
    const at = word(s, C_WRITER_WAITING);
    if (Atomics.load(i32, at) !== 1) continue;
    const wakeAt =
      Atomics.load(u32, word(s, C_WAKE_AT_LO)) + Atomics.load(u32, word(s, C_WAKE_AT_HI)) * TWO32;
    if (wakeAt > 0) {
      if (position < wakeAt) continue;
      if (floor < 0) floor = holdFloor(file);
      if (floor < wakeAt) continue; // a slower reader wakes it when it gets there
    }
    if (Atomics.compareExchange(i32, at, 1, 0) !== 1) continue;
    out ??= [];
    Atomics.sub(i32, H_WRITERS_WAITING / 4, 1);
    out.push({
      pid: Atomics.load(i32, word(s, C_PID)),
      start: f64[slotStart(s)]!,
    });
  }
  return out ?? NONE;
}
