// Key globs are matched without backtracking regular expressions: the same answers as the obvious
// definition, and a pattern built to backtrack costs the hub a bounded, refused listing.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import fc from "fast-check";
import { connect, type HubClient } from "../../src/index.js";
import { GlobMatcher, globMatcher } from "../../src/vars/glob.js";
import { withHub } from "../hub/hubs.js";

/** The definition: `*` any run, `?` one character, anything else itself (a recursive walk, for short keys). */
function reference(pattern: string, key: string): boolean {
  const go = (p: number, k: number): boolean => {
    if (p === pattern.length) return k === key.length;
    if (pattern[p] === "*") return go(p + 1, k) || (k < key.length && go(p, k + 1));
    if (k === key.length) return false;
    return (pattern[p] === "?" || pattern[p] === key[k]) && go(p + 1, k + 1);
  };
  return pattern === "" || go(0, 0);
}

describe("key globs", () => {
  it("match as the definition does, on random patterns and keys (fast-check, seeded)", () => {
    const chars = fc.constantFrom("a", "b", ".", "*", "?");
    const keyChars = fc.constantFrom("a", "b", ".", "*", "?");
    fc.assert(
      fc.property(
        fc.array(chars, { maxLength: 8 }).map((a) => a.join("")),
        fc.array(keyChars, { maxLength: 10 }).map((a) => a.join("")),
        (pattern, key) => globMatcher(pattern)(key) === reference(pattern, key),
      ),
      { seed: 20261202, numRuns: 20_000 },
    );
    assert.equal(globMatcher("sensor.*.temp")("sensor.kitchen.temp"), true);
    assert.equal(globMatcher("sensor.?")("sensor.12"), false);
  });

  it("a pattern built to backtrack takes at most key × pattern steps (a RegExp took 0.9 s at 4 stars, and did not end at 6)", () => {
    const g = new GlobMatcher(`${"*a".repeat(500)}!`);
    assert.equal(g.matches("a".repeat(1000)), false);
    assert.ok(g.steps <= 1000 * 1001, `${g.steps} steps`);
  });

  it("the hub refuses a listing whose pattern costs many times its keys, at once, and lists on", async () => {
    await withHub({}, async (_hub, url) => {
      const c: HubClient = await connect(url, { name: "lister" });
      const keep = [];
      for (let i = 0; i < 20; i++) keep.push(await c.allocate(`${"a".repeat(245)}${i}`, 8, "poll"));
      // Stars that a RegExp walked back and forth (exponential in their number): one pass here.
      assert.equal((await c.list(`${"*a".repeat(12)}!`)).length, 0);
      // A star, then a long run that nearly matches every key: refused once it costs many times the keys.
      const t = performance.now();
      await assert.rejects(
        c.list(`*${"a".repeat(120)}b`),
        (e: unknown) =>
          (e as { code?: string }).code === "EZIPC_BAD_REQUEST" &&
          /use fewer \* in it/.test((e as Error).message),
      );
      assert.ok(performance.now() - t < 5_000, "refused, not walked to the end");
      assert.equal((await c.list("a*1?")).length, 10);
      assert.equal((await c.list("")).length, 20);
      assert.equal(keep.length, 20);
      await c.close();
    });
  });
});
