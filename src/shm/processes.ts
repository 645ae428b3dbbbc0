/**
 * Process identity for shared memory: a pid alone is reused by the kernel, so a holder is named by its pid
 * and its start time (field 22 of /proc/PID/stat, clock ticks since boot). A process is alive when a
 * process with that pid exists and started at that time.
 */
import { readFileSync } from "node:fs";

/** The start time of process `pid`, or null if there is none. */
export function processStart(pid: number): number | null {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "latin1");
    // Fields after the command name (which may hold spaces and parentheses): state is field 3.
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    const start = Number(fields[19]);
    return Number.isFinite(start) ? start : null;
  } catch {
    return null;
  }
}

/** Whether a process with this pid exists (EPERM: it does, owned by another user). */
export function processExists(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === "EPERM";
  }
}

/** This process's start time. */
export const SELF_START = processStart(process.pid) ?? 0;

/** True while the process `pid` that started at `start` lives. */
export function isAlive(pid: number, start: number): boolean {
  if (pid <= 0) return false;
  if (pid === process.pid) return start === SELF_START;
  return processStart(pid) === start;
}

/** How long {@link isAliveCached} trusts an answer. */
const ALIVE_CACHE_MS = 100;
const aliveCache = new Map<string, { pid: number; start: number; alive: boolean; at: number }>();

/**
 * {@link isAlive}, answered from a cache for up to 100 ms (reading /proc on every publish or request would
 * cost more than the message). A process seen dead stays dead: that answer is final.
 */
export function isAliveCached(pid: number, start: number, now = Date.now()): boolean {
  if (pid === process.pid) return start === SELF_START;
  // The process asked last (a caller asks about its one server per request): no key to build.
  const last = lastAsked;
  if (
    last !== null &&
    last.pid === pid &&
    last.start === start &&
    (!last.alive || now - last.at < ALIVE_CACHE_MS)
  )
    return last.alive;
  const key = `${pid}.${start}`;
  let c = aliveCache.get(key);
  if (!c || (c.alive && now - c.at >= ALIVE_CACHE_MS)) {
    c = { pid, start, alive: isAlive(pid, start), at: now };
    if (aliveCache.size > 4096) aliveCache.clear();
    aliveCache.set(key, c);
  }
  lastAsked = c;
  return c.alive;
}

/** The answer {@link isAliveCached} gave last. */
let lastAsked: { pid: number; start: number; alive: boolean; at: number } | null = null;
