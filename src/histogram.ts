/**
 * A latency histogram with fixed bucket bounds (Prometheus-style: each bucket counts the observations at or
 * under its bound), cheap enough to observe on every acknowledgement: a short linear scan, no allocation.
 */

/** Bucket bounds in seconds: 50 µs to 10 s. */
export const LATENCY_BOUNDS_SECONDS: readonly number[] = [
  0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 10,
];

export interface HistogramSnapshot {
  /** Upper bounds, in seconds (the last bucket, +Inf, is `count`). */
  bounds: readonly number[];
  /** Observations at or under each bound (cumulative). */
  cumulative: number[];
  count: number;
  sumSeconds: number;
}

export class Histogram {
  private readonly counts: Float64Array;
  private count = 0;
  private sum = 0;

  constructor(private readonly bounds: readonly number[] = LATENCY_BOUNDS_SECONDS) {
    this.counts = new Float64Array(bounds.length);
  }

  /** Counts one observation of `seconds`. */
  observe(seconds: number): void {
    this.count++;
    this.sum += seconds;
    const b = this.bounds;
    for (let i = 0; i < b.length; i++) {
      if (seconds <= b[i]!) {
        this.counts[i]!++;
        return;
      }
    }
  }

  /** Counts one observation of the time since `startMs` (a `performance.now()` reading). */
  since(startMs: number): void {
    this.observe((performance.now() - startMs) / 1000);
  }

  snapshot(): HistogramSnapshot {
    const cumulative: number[] = [];
    let acc = 0;
    for (const c of this.counts) {
      acc += c;
      cumulative.push(acc);
    }
    return { bounds: this.bounds, cumulative, count: this.count, sumSeconds: this.sum };
  }
}
