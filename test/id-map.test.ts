import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { IdMap } from "../src/id-map.js";
import { seededRandom } from "./helpers.js";

describe("IdMap (calls in flight by id)", () => {
  it("behaves as a Map under random sets, deletes and gets, colliding ids included", () => {
    const random = seededRandom(7);
    const m = new IdMap<number>(8);
    const ref = new Map<number, number>();
    // Ids from a small sequential window and from anywhere in u32: many share a slot.
    const id = () => (random() < 0.5 ? Math.floor(random() * 40) : Math.floor(random() * 2 ** 32));
    for (let step = 0; step < 20_000; step++) {
      const k = random() < 0.3 && ref.size > 0 ? [...ref.keys()][Math.floor(random() * ref.size)]! : id();
      const r = random();
      if (r < 0.45) {
        m.set(k, step);
        ref.set(k, step);
      } else if (r < 0.8) assert.equal(m.delete(k), ref.delete(k));
      else {
        assert.equal(m.get(k), ref.get(k));
        assert.equal(m.has(k), ref.has(k));
      }
      assert.equal(m.size, ref.size);
    }
    assert.deepEqual(
      [...m].sort((a, b) => a[0] - b[0]),
      [...ref].sort((a, b) => a[0] - b[0]),
    );
    assert.deepEqual([...m.values()].sort(), [...ref.values()].sort());
    m.clear();
    assert.equal(m.size, 0);
    assert.deepEqual([...m], []);
  });

  it("stays bounded when a peer picks ids that all share one slot", () => {
    const m = new IdMap<number>();
    for (let i = 0; i < 10_000; i++) m.set(i * 2 ** 20, i); // all ≡ 0 modulo any slot count ≤ 2^20
    assert.equal(m.size, 10_000);
    assert.equal(m.get(9_999 * 2 ** 20), 9_999);
    // The slots grew at most to their cap; the rest live in the side map.
    const slots = (m as unknown as { ids: Float64Array }).ids.length;
    assert.ok(slots <= 4096, `${slots} slots`);
    for (let i = 0; i < 10_000; i++) assert.ok(m.delete(i * 2 ** 20));
    assert.equal(m.size, 0);
  });

  it("refuses a slot count that is not a power of two", () => {
    assert.throws(() => new IdMap(48), RangeError);
  });
});
