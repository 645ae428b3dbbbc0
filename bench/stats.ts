/** Small statistics for the benchmark tables. */

/** The median of some runs. */
export function median(xs: number[]): number {
  const s = [...xs].sort((x, y) => x - y);
  return s[Math.floor(s.length / 2)]!;
}

/** The p-quantile (0 to 1) of samples already sorted in ascending order. */
export function percentile(sorted: Float64Array, p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * p))]!;
}
