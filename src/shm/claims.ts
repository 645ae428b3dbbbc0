/**
 * Claims of RPC requests: several servers read a topic's request ring; the first to claim a request (a
 * compare-and-swap in the claim entry of its seq) serves it, the others skip it. A caller reads the entry
 * to learn which process serves its call, and so notices promptly when that process dies.
 */
import { CLAIM_BYTES } from "./layout.js";
import type { MappedFile } from "./shm-file.js";

const TWO32 = 2 ** 32;

/** Claims request `seq` for process (pid, start); false if another claimed it (or it is too old to tell). */
export function claimRequest(file: MappedFile, seq: number, pid: number, start: number): boolean {
  if (file.claims === 0) return true;
  const base = file.claimsAt + (seq % file.claims) * CLAIM_BYTES;
  const at = base / 4;
  const lo = seq % TWO32;
  const { u32, i32, f64 } = file;
  for (;;) {
    const old = Atomics.load(u32, at);
    if (old === lo) return false; // claimed by someone else
    // An entry already used by a later request: this one is over C requests old; leave it.
    if (old !== 0 && (old - lo) >>> 0 < 0x80000000) return false;
    if (Atomics.compareExchange(u32, at, old, lo) !== old) continue;
    Atomics.store(i32, at + 1, pid);
    f64[(base + 8) / 8] = start;
    Atomics.store(u32, at + 4, lo); // pid and start are whole
    return true;
  }
}

/** Who serves request `seq`: a process, "unclaimed", or "unknown" (a claim being written, or overwritten). */
export function requestClaimant(
  file: MappedFile,
  seq: number,
): { pid: number; start: number } | "unclaimed" | "unknown" {
  if (file.claims === 0) return "unknown";
  const base = file.claimsAt + (seq % file.claims) * CLAIM_BYTES;
  const at = base / 4;
  const lo = seq % TWO32;
  const { u32, i32, f64 } = file;
  const done = Atomics.load(u32, at + 4);
  const claimed = Atomics.load(u32, at);
  if (claimed !== lo) {
    // Not claimed yet, unless a later request took the entry.
    return claimed === 0 || (claimed - lo) >>> 0 >= 0x80000000 ? "unclaimed" : "unknown";
  }
  if (done !== lo) return "unknown";
  const pid = Atomics.load(i32, at + 1);
  const start = f64[(base + 8) / 8]!;
  if (Atomics.load(u32, at) !== lo) return "unknown";
  return { pid, start };
}
