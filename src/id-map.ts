/**
 * A map from call ids (u32) to values for the hot paths that add and remove one entry per message: RPC
 * calls in flight, by rid or cid. A `Map` used that way in a long-lived object costs 0.3–0.7 µs per
 * set-and-delete in V8 (its table is rebuilt by the runtime as entries come and go), several times per
 * call; here an id lives in slot `id & mask` of two arrays, and only an id whose slot is taken by a live
 * older id goes to a `Map` on the side. Ids handed out in sequence, and mostly finished in order, never
 * collide while fewer than the slots are in flight.
 *
 * The subset of `Map` the callers use; iteration order is not insertion order.
 */

/** An empty slot (no id is -0.5: ids are integers). */
const FREE = -0.5;
/** Slots it grows to at most (ids chosen by a peer may collide on purpose: the side map takes them). */
const MAX_SLOTS = 4096;

export class IdMap<V> {
  private ids: Float64Array;
  private vals: (V | undefined)[];
  private mask: number;
  private overflow: Map<number, V> | null = null;
  private count = 0;

  /** `slots`: a power of two, at least the calls expected in flight at once (it grows if more collide). */
  constructor(slots = 64) {
    if (!Number.isInteger(Math.log2(slots))) throw new RangeError("IdMap slots must be a power of two");
    this.ids = new Float64Array(slots).fill(FREE);
    this.vals = new Array<V | undefined>(slots).fill(undefined);
    this.mask = slots - 1;
  }

  get size(): number {
    return this.count;
  }

  get(id: number): V | undefined {
    const i = id & this.mask;
    if (this.ids[i] === id) return this.vals[i];
    return this.overflow === null ? undefined : this.overflow.get(id);
  }

  has(id: number): boolean {
    return this.ids[id & this.mask] === id || this.overflow?.has(id) === true;
  }

  set(id: number, value: V): this {
    const i = id & this.mask;
    const at = this.ids[i]!;
    if (at === id) {
      this.vals[i] = value;
      return this;
    }
    if (this.overflow?.has(id)) {
      this.overflow.set(id, value);
      return this;
    }
    this.count++;
    if (at === FREE) {
      this.ids[i] = id;
      this.vals[i] = value;
      return this;
    }
    this.overflow ??= new Map();
    this.overflow.set(id, value);
    if (this.overflow.size > this.ids.length >> 1 && this.ids.length < MAX_SLOTS) this.grow();
    return this;
  }

  delete(id: number): boolean {
    const i = id & this.mask;
    if (this.ids[i] === id) {
      this.ids[i] = FREE;
      this.vals[i] = undefined;
      this.count--;
      return true;
    }
    if (this.overflow === null || !this.overflow.delete(id)) return false;
    this.count--;
    if (this.overflow.size === 0) this.overflow = null;
    return true;
  }

  clear(): void {
    this.ids.fill(FREE);
    this.vals.fill(undefined);
    this.overflow = null;
    this.count = 0;
  }

  *entries(): IterableIterator<[number, V]> {
    for (let i = 0; i < this.ids.length; i++) {
      if (this.ids[i] !== FREE) yield [this.ids[i]!, this.vals[i] as V];
    }
    if (this.overflow) yield* this.overflow.entries();
  }

  *values(): IterableIterator<V> {
    for (const [, v] of this.entries()) yield v;
  }

  [Symbol.iterator](): IterableIterator<[number, V]> {
    return this.entries();
  }

  /** Twice the slots, every entry placed again (many ids in flight, or ids that collide). */
  private grow(): void {
    const all = [...this.entries()];
    const slots = this.ids.length * 2;
    this.ids = new Float64Array(slots).fill(FREE);
    this.vals = new Array<V | undefined>(slots).fill(undefined);
    this.mask = slots - 1;
    this.overflow = null;
    this.count = 0;
    for (const [id, v] of all) this.set(id, v);
  }
}
