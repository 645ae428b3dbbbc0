import assert from "node:assert/strict";
import { describe, it } from "node:test";
import fc from "fast-check";
import { isEzipcError } from "../../src/index.js";
import { BlockTable, type Clock, checkKey } from "../../src/vars/block-table.js";

/** A clock the test moves by hand; timers fire in (due time, creation) order. */
class FakeClock implements Clock {
  time = 0;
  private seq = 0;
  private timers = new Map<number, { due: number; seq: number; fn: () => void }>();
  now(): number {
    return this.time;
  }
  setTimeout(fn: () => void, ms: number): unknown {
    const id = ++this.seq;
    this.timers.set(id, { due: this.time + ms, seq: id, fn });
    return id;
  }
  clearTimeout(h: unknown): void {
    this.timers.delete(h as number);
  }
  advance(ms: number): void {
    const end = this.time + ms;
    for (;;) {
      const due = [...this.timers.entries()]
        .filter(([, t]) => t.due <= end)
        .sort((a, b) => a[1].due - b[1].due || a[1].seq - b[1].seq);
      const first = due[0];
      if (!first) break;
      this.timers.delete(first[0]);
      this.time = first[1].due;
      first[1].fn();
    }
    this.time = end;
  }
}

const GRACE = 100;
const TTL = 1_000;
const MAX_TOMBSTONES = 2;

/** The reference model: what each key should be. */
interface Model {
  now: number;
  live: Map<string, { refcount: number; graceDue: number | null; graceSeq: number }>;
  tombstones: [string, number][]; // oldest first
  seq: number;
}

interface Real {
  table: BlockTable;
  clock: FakeClock;
}

function invalidate(m: Model, key: string, at: number): void {
  m.live.delete(key);
  m.tombstones = m.tombstones.filter(([k, until]) => until > at && k !== key);
  m.tombstones.push([key, at + TTL]);
  while (m.tombstones.length > MAX_TOMBSTONES) m.tombstones.shift();
}

function startGrace(m: Model, key: string): void {
  const e = m.live.get(key)!;
  e.graceDue = m.now + GRACE;
  e.graceSeq = ++m.seq;
}

function expected(m: Model, key: string): string {
  const e = m.live.get(key);
  if (e) return `live:${e.refcount}`;
  const t = m.tombstones.find(([k]) => k === key);
  return t && t[1] > m.now ? "disposed" : "missing";
}

/** Every key agrees with the model (checked after every command). */
function verify(m: Model, r: Real): void {
  for (const k of ["a", "b", "c", "d"]) assert.equal(actual(r, k), expected(m, k), `key ${k} at t=${m.now}`);
  assert.ok(r.table.tombstoneCount <= MAX_TOMBSTONES);
}

function actual(r: Real, key: string): string {
  const l = r.table.lookup(key);
  if ("found" in l) return `live:${l.found.refcount}`;
  return "disposed" in l ? "disposed" : "missing";
}

class Allocate implements fc.Command<Model, Real> {
  constructor(readonly key: string) {}
  check(): boolean {
    return true;
  }
  run(m: Model, r: Real): void {
    const live = m.live.has(this.key);
    try {
      const b = r.table.create(this.key, 8);
      r.table.hold(b);
      assert.ok(!live, "create succeeded on a live key");
      m.tombstones = m.tombstones.filter(([k]) => k !== this.key);
      m.live.set(this.key, { refcount: 1, graceDue: null, graceSeq: 0 });
    } catch (err) {
      assert.ok(live && isEzipcError(err, "EZIPC_KEY_EXISTS"), String(err));
    }
    verify(m, r);
  }
  toString(): string {
    return `allocate(${this.key})`;
  }
}

class Watch implements fc.Command<Model, Real> {
  constructor(readonly key: string) {}
  check(): boolean {
    return true;
  }
  run(m: Model, r: Real): void {
    const want = expected(m, this.key);
    const l = r.table.lookup(this.key);
    if ("found" in l) {
      assert.ok(want.startsWith("live"), `watch found a key the model says is ${want}`);
      r.table.hold(l.found);
      const e = m.live.get(this.key)!;
      e.refcount++;
      e.graceDue = null; // revived
    } else assert.equal("disposed" in l ? "disposed" : "missing", want);
    verify(m, r);
  }
  toString(): string {
    return `watch(${this.key})`;
  }
}

class Release implements fc.Command<Model, Real> {
  constructor(readonly key: string) {}
  check(m: Readonly<Model>): boolean {
    return (m.live.get(this.key)?.refcount ?? 0) > 0;
  }
  run(m: Model, r: Real): void {
    const l = r.table.lookup(this.key);
    assert.ok("found" in l);
    r.table.release(l.found);
    const e = m.live.get(this.key)!;
    e.refcount--;
    if (e.refcount === 0) startGrace(m, this.key);
    verify(m, r);
  }
  toString(): string {
    return `release(${this.key})`;
  }
}

class Advance implements fc.Command<Model, Real> {
  constructor(readonly ms: number) {}
  check(): boolean {
    return true;
  }
  run(m: Model, r: Real): void {
    const end = m.now + this.ms;
    const due = [...m.live.entries()]
      .filter(([, e]) => e.graceDue !== null && e.graceDue <= end)
      .sort((a, b) => a[1].graceDue! - b[1].graceDue! || a[1].graceSeq - b[1].graceSeq);
    for (const [key, e] of due) invalidate(m, key, e.graceDue!);
    m.now = end;
    r.clock.advance(this.ms);
    verify(m, r);
  }
  toString(): string {
    return `advance(${this.ms})`;
  }
}

describe("BlockTable (refcount, grace, tombstones, revive) against a reference model", () => {
  it("agrees with the model on every key after every command", () => {
    const keys = fc.constantFrom("a", "b", "c", "d");
    const commands = [
      keys.map((k) => new Allocate(k)),
      keys.map((k) => new Watch(k)),
      keys.map((k) => new Release(k)),
      // Mostly steps shorter than the grace period (the interesting interleavings), some past the TTL.
      fc
        .oneof(
          { weight: 4, arbitrary: fc.integer({ min: 1, max: GRACE + 20 }) },
          { weight: 1, arbitrary: fc.integer({ min: 1, max: TTL + 200 }) },
        )
        .map((ms) => new Advance(ms)),
    ];
    fc.assert(
      fc.property(fc.commands(commands, { maxCommands: 100, size: "large" }), (cmds) => {
        const clock = new FakeClock();
        const real: Real = {
          clock,
          table: new BlockTable(
            { disposeGraceMs: GRACE, tombstoneTtlMs: TTL, maxTombstones: MAX_TOMBSTONES },
            clock,
          ),
        };
        const model: Model = { now: 0, live: new Map(), tombstones: [], seq: 0 };
        fc.modelRun(() => ({ model, real }), cmds);
        for (const k of ["a", "b", "c", "d"]) assert.equal(actual(real, k), expected(model, k), `key ${k}`);
        assert.ok(real.table.tombstoneCount <= MAX_TOMBSTONES);
      }),
      { numRuns: 500, seed: 7 },
    );
  });

  it("validates keys: 1-255 printable ASCII characters without spaces", () => {
    for (const ok of ["a", "x".repeat(255), "sensors/temp.1", "~!@#$%^&*()"]) checkKey(ok);
    for (const bad of ["", "x".repeat(256), "has space", "tab\t", "é", "\u0000", 42]) {
      assert.throws(() => checkKey(bad), { code: "EZIPC_INVALID_KEY" });
    }
  });
});
