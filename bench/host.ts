/**
 * How busy the host was while a group of tables ran. On a virtual machine, other guests of the same host
 * take CPU time from it ("steal" in /proc/stat): while they do, every process of a run waits, and the
 * figures (more than their ratios) move. Each group of tables says how much was taken meanwhile.
 */
import { readFileSync } from "node:fs";

/** Linux counts /proc/stat in USER_HZ ticks: 100 per second on every architecture Node runs on. */
const TICKS_PER_SECOND = 100;

/** CPU seconds taken by other guests since boot (all CPUs together), or null where it is not told. */
export function stealSeconds(): number | null {
  try {
    const first = readFileSync("/proc/stat", "utf8").split("\n", 1)[0]!.trim().split(/\s+/);
    // cpu user nice system idle iowait irq softirq steal …
    if (first[0] !== "cpu" || first.length < 9) return null;
    const steal = Number(first[8]);
    return Number.isFinite(steal) ? steal / TICKS_PER_SECOND : null;
  } catch {
    return null;
  }
}

/** `tables()`, followed by a line saying how long it took and how much CPU time other guests took meanwhile. */
export async function withHostNote(tables: () => Promise<string[]>): Promise<string[]> {
  const steal0 = stealSeconds();
  const t0 = process.hrtime.bigint();
  const lines = await tables();
  const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
  const steal1 = stealSeconds();
  const taken =
    steal0 === null || steal1 === null
      ? "this system does not tell how much CPU time other guests took"
      : `other guests of the host took ${(steal1 - steal0).toFixed(1)} s of this machine's CPU time meanwhile (steal, /proc/stat)`;
  return [...lines, "", `_Host: the tables above took ${seconds.toFixed(0)} s; ${taken}._`];
}
