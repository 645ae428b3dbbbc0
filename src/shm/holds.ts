/**
 * Publisher holds: a reader that takes every message (`iter: next`) marks its slot as holding and keeps its
 * next seq there; a writer must not evict a message at or past the lowest such seq of a live reader, and
 * waits instead (for at most its hold time). Readers that move on wake waiting writers through the same
 * wake-up pipes as readers (flag in the slot, count in the header, a byte in the pipe).
 */
import {
  C_HOLDS,
  C_NEXT_HI,
  C_NEXT_LO,
  C_PID,
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

/** Marks this process's slot as a writer waiting for readers (a reader that moves on wakes it). */
export function markWriterWaiting(file: MappedFile, slot: number): void {
  const { i32 } = file;
  if (Atomics.load(i32, word(slot, C_WRITER_WAITING)) === 1) return;
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

/** Takes the marks of the waiting writers of `file` (a reader moved on); returns their (pid, start). */
export function takeWaitingWriters(file: MappedFile): { pid: number; start: number }[] {
  const { i32, f64 } = file;
  if (Atomics.load(i32, H_WRITERS_WAITING / 4) === 0) return [];
  const out: { pid: number; start: number }[] = [];
  for (let s = 0; s < SLOT_COUNT; s++) {
    const at = word(s, C_WRITER_WAITING);
    if (Atomics.load(i32, at) !== 1 || Atomics.compareExchange(i32, at, 1, 0) !== 1) continue;
    Atomics.sub(i32, H_WRITERS_WAITING / 4, 1);
    out.push({
      pid: Atomics.load(i32, word(s, C_PID)),
      start: f64[slotStart(s)]!,
    });
  }
  return out;
}
