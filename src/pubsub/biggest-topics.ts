/**
 * The topic holding the most history, for the hub's total bound (`maxHistoryBytes`: over it, the biggest
 * topic gives up its oldest messages). Finding it by testing every topic cost each publish a walk of all of
 * them once the history was full: with 10,000 topics the hub took 32,000 publishes/s instead of 377,000.
 *
 * A binary max-heap of the topics by their bytes, kept only while the history is near its bound: built on
 * the first look (O(n)), then each change of a topic's bytes moves it in O(log n) ({@link changed}), until
 * the history falls well below the bound ({@link sleep}) and the heap is dropped.
 */

/** What the heap orders: anything whose `bytes` it is told about when they change. */
export interface Sized {
  readonly bytes: number;
}

export class BiggestTopics<T extends Sized> {
  private heap: T[] = [];
  private readonly at = new Map<T, number>();
  private live = false;

  /** Whether the heap is kept (the history is near its bound). */
  get awake(): boolean {
    return this.live;
  }

  /** The biggest of `all`, building the heap from them if it sleeps. */
  biggest(all: Iterable<T>): T | undefined {
    if (!this.live) {
      this.heap = [...all];
      for (let i = 0; i < this.heap.length; i++) this.at.set(this.heap[i]!, i);
      for (let i = (this.heap.length >> 1) - 1; i >= 0; i--) this.down(i);
      this.live = true;
    }
    return this.heap[0];
  }

  /** `t`'s bytes changed (or `t` is new). Nothing while the heap sleeps. */
  changed(t: T): void {
    if (!this.live) return;
    let i = this.at.get(t);
    if (i === undefined) {
      i = this.heap.length;
      this.heap.push(t);
      this.at.set(t, i);
    }
    if (!this.up(i)) this.down(i);
  }

  /** Drops the heap (the history is well below its bound). */
  sleep(): void {
    this.live = false;
    this.heap = [];
    this.at.clear();
  }

  private up(i: number): boolean {
    const h = this.heap;
    const t = h[i]!;
    const start = i;
    while (i > 0) {
      const p = (i - 1) >> 1;
      if (h[p]!.bytes >= t.bytes) break;
      h[i] = h[p]!;
      this.at.set(h[i]!, i);
      i = p;
    }
    h[i] = t;
    this.at.set(t, i);
    return i !== start;
  }

  private down(i: number): void {
    const h = this.heap;
    const n = h.length;
    const t = h[i]!;
    for (;;) {
      let c = 2 * i + 1;
      if (c >= n) break;
      if (c + 1 < n && h[c + 1]!.bytes > h[c]!.bytes) c++;
      if (h[c]!.bytes <= t.bytes) break;
      h[i] = h[c]!;
      this.at.set(h[i]!, i);
      i = c;
    }
    h[i] = t;
    this.at.set(t, i);
  }
}
