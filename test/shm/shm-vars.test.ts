import assert from "node:assert/strict";
import type { ChildProcess } from "node:child_process";
import { readdirSync, rmSync, truncateSync, writeFileSync } from "node:fs";
import path from "node:path";
import { after, describe, it } from "node:test";
import { connect, isEzipcError, t } from "../../src/index.js";
import { KIND_VAR } from "../../src/shm/layout.js";
import { openShmFile } from "../../src/shm/shm-file.js";
import { SharedVar } from "../../src/shm/var-file.js";
import { seededRandom, spawnFixture, until, within } from "../helpers.js";

const name = `test-vars-${process.pid}`;
const url = `shm:///${name}` as const;
const dir = `/dev/shm/ezipc.${name}`;
after(() => rmSync(dir, { recursive: true, force: true }));

function exited(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => child.once("exit", () => resolve()));
}

/**
 * Throws unless `b` is a value shm-var-writer commits: each half one byte (its writes cover a half or the
 * whole value, and writers interleave, so the halves may differ). A torn value mixes two writes in a half.
 */
function assertWhole(b: Uint8Array, what: string): void {
  const half = b.length / 2;
  for (let i = 1; i < b.length; i++) {
    const first = i < half ? b[0] : b[half];
    if (b[i] !== first) assert.fail(`${what}: byte ${i} is ${b[i]}, not ${first}`);
  }
}

describe("shm:// shared variables: values in shared memory", () => {
  it("a poll read copies only when the value changed, and is current at once after another process's write", async () => {
    const a = await connect(url, { name: "a" });
    const b = await connect(url, { name: "b" });
    try {
      const p = await a.allocate("poll.copy", 64, "poll");
      const w = await b.watch("poll.copy", "request");
      const first = p.read();
      assert.equal(p.read(), first, "unchanged: the same copy, nothing copied");
      await w!.write(Buffer.from([7]), 3);
      // No wake-up awaited: the read looks at shared memory.
      const second = p.read();
      assert.equal(second[3], 7);
      assert.equal(p.version, 2);
      assert.equal(p.read(), second);
    } finally {
      await a.close();
      await b.close();
    }
  });

  it("writers killed with kill -9 while writing never leave a torn value; writing goes on after", async () => {
    const key = "torn.check";
    const size = 4096;
    const reader = await connect(url, { name: "reader" });
    const p = await reader.allocate(key, size, "poll", { openExisting: true });
    const random = seededRandom(20261130);
    let reads = 0;
    let stop = false;
    const check = (async () => {
      while (!stop) {
        assertWhole(p.read(), `read ${reads}`);
        reads++;
        await new Promise((r) => setImmediate(r));
      }
    })();
    try {
      for (let round = 0; round < 20; round++) {
        const writers = await Promise.all(
          [0, 1].map(() => spawnFixture("shm-var-writer.js", [url, key, String(size)])),
        );
        const from = p.version;
        const more = 1 + Math.floor(random() * 2000);
        await until(() => p.version >= from + more, `round ${round}: ${more} writes`, 10_000);
        for (const w of writers) w.child.kill("SIGKILL");
        await within(Promise.all(writers.map((w) => exited(w.child))), 5_000, "writers to die");
        assertWhole(p.read(), `after round ${round}`);
      }
      stop = true;
      await check;
      assert.ok(reads > 20, `${reads} reads`);
      // The lock is taken over if a writer died holding it: writing goes on.
      const v = await p.write(Buffer.alloc(size, 0xab));
      assert.equal(p.version, v);
      assertWhole(p.read(), "the last write");
      assert.equal(p.read()[0], 0xab);
    } finally {
      stop = true;
      await check.catch(() => {});
      await reader.close();
    }
  });

  it("typed blocks, persistent keys and the highest policy of a client, as on a hub", async () => {
    const a = await connect(url, { name: "typed", disposeGraceMs: 20 });
    const b = await connect(url, { name: "typed2", disposeGraceMs: 20 });
    try {
      const Pose = t.struct({ x: t.f64, y: t.f64, valid: t.bool });
      const pose = await a.allocate("typed.pose", Pose, "poll");
      await pose.set({ x: 1.5, y: -2, valid: true });
      const seen = await b.watch("typed.pose", "request", { schema: Pose });
      assert.deepEqual(await seen!.get(), { x: 1.5, y: -2, valid: true });
      await assert.rejects(b.watch("typed.pose", "poll", { schema: t.struct({ x: t.f64 }) }), {
        code: "EZIPC_BAD_REQUEST",
      });
      // With a poll pointer held, a request pointer of the same client answers from the same copy.
      const poll = await b.watch("typed.pose", "poll", { schema: Pose });
      assert.equal(seen!.fresh, true);
      poll!.dispose();
      seen!.dispose();
      pose.dispose();
      await until(
        async () => (await a.info("typed.pose")).state === "disposed",
        "disposed after its grace",
        5_000,
      );
      // A persistent key stays with no pointer at all.
      const kept = await a.allocate("typed.kept", 4, "lazy", { persistent: true });
      kept.dispose();
      const info = await b.info("typed.kept");
      assert.deepEqual(info.state === "live" && [info.refcount, info.persistent], [0, true]);
      assert.ok(await b.watch("typed.kept", "lazy"));
    } finally {
      await a.close();
      await b.close();
    }
  });

  it("a JSON config too large for maxBlockBytes is refused and the document before it stays", async () => {
    const c = await connect(url, { name: "cfg", maxBlockBytes: 64 });
    try {
      const cfg = await c.config("small.cfg", { persistent: false });
      await cfg.write({ a: 1 });
      await assert.rejects(cfg.write({ big: "x".repeat(100) }), { code: "EZIPC_BLOCK_TOO_LARGE" });
      assert.deepEqual(await cfg.read(), { a: 1 });
      await assert.rejects(c.allocate("too.big", 65, "poll"), { code: "EZIPC_BLOCK_TOO_LARGE" });
    } finally {
      await c.close();
    }
  });

  it("a config value another process wrote without ezipc's checks (too deep, not JSON): coded errors, then a write replaces it", async () => {
    const a = await connect(url, { name: "cfg-a" });
    const b = await connect(url, { name: "cfg-b" });
    try {
      const cfg = await a.config("hostile.cfg", { persistent: false });
      await cfg.write({ a: 1 });
      const file = new SharedVar(openShmFile(path.join(dir, ".var.hostile.cfg"), KIND_VAR, 0o600));
      const reader = await b.config("hostile.cfg", { persistent: false });
      for (const [raw, why] of [
        ["[".repeat(50_000) + "]".repeat(50_000), /deeper than 256/],
        ["{not json", /not JSON/],
      ] as const) {
        const bytes = Buffer.from(raw);
        file.locked(() => file.writeLocked(bytes, 0, bytes.length)); // (as a process of another language might)
        await assert.rejects(reader.read(), (e) => isEzipcError(e, "EZIPC_DECODE") && why.test(e.message));
        await assert.rejects(reader.mergePatch({ x: 1 }), (e) => isEzipcError(e, "EZIPC_SHM_BAD_FILE"));
        await reader.write({ fresh: true });
        assert.deepEqual(await reader.read(), { fresh: true });
        assert.deepEqual(await cfg.read(), { fresh: true });
      }
    } finally {
      await a.close();
      await b.close();
    }
  });

  it("a spinning watcher sees changes; a lazy pointer is told once per read", async () => {
    const w = await connect(url, { name: "w" });
    const s = await connect(url, { name: "s", spin: true });
    // Another client: in one client the highest policy held serves every pointer (lazy would act as poll).
    const l = await connect(url, { name: "l", spin: true });
    try {
      const p = await w.allocate("spin.var", 8, "request");
      const poll = await s.watch("spin.var", "poll");
      const lazy = await l.watch("spin.var", "lazy");
      const polled: number[] = [];
      const lazies: number[] = [];
      poll!.on("change", (c) => polled.push(c.version));
      lazy!.on("change", (c) => lazies.push(c.version));
      await p.write(Buffer.from([1]));
      await until(() => polled.includes(2), "the poll change", 5_000);
      await until(() => lazies.length === 1, "the lazy notice", 5_000);
      await p.write(Buffer.from([2]));
      await until(() => polled.includes(3), "the second poll change", 5_000);
      assert.deepEqual(lazies, [2], "stale already: not told again before a read");
      assert.equal((await lazy!.read())[0], 2);
      await p.write(Buffer.from([3]));
      await until(() => lazies.length === 2, "the lazy notice after the read", 5_000);
      assert.equal(lazies[1], 4);
    } finally {
      await l.close();
      await s.close();
      await w.close();
    }
  });

  it("a variable file that is truncated, corrupted or of another kind is refused with EZIPC_SHM_BAD_FILE", async () => {
    const c = await connect(url, { name: "bad" });
    try {
      const p = await c.allocate("bad.trunc", 8, "poll");
      p.dispose();
      const file = path.join(dir, ".var.bad.trunc");
      truncateSync(file, 100);
      const other = await connect(url, { name: "bad2" });
      try {
        await assert.rejects(other.watch("bad.trunc", "poll"), (e) => isEzipcError(e, "EZIPC_SHM_BAD_FILE"));
        writeFileSync(path.join(dir, ".var.bad.junk"), Buffer.alloc(8192, 0x41));
        await assert.rejects(other.watch("bad.junk", "lazy"), (e) => isEzipcError(e, "EZIPC_SHM_BAD_FILE"));
        // A topic's file under a variable's name is of another kind.
        await other.publish("x", "y");
        const topicFile = readdirSync(dir).find((n) => n === "x");
        assert.ok(topicFile);
        const { copyFileSync } = await import("node:fs");
        copyFileSync(path.join(dir, "x"), path.join(dir, ".var.bad.kind"));
        await assert.rejects(other.watch("bad.kind", "poll"), (e) => isEzipcError(e, "EZIPC_SHM_BAD_FILE"));
        // The client goes on.
        const ok = await other.allocate("good.one", 4, "poll");
        assert.equal(ok.version, 1);
      } finally {
        await other.close();
      }
    } finally {
      await c.close();
    }
  });
});
