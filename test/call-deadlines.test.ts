import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { describe, it } from "node:test";
import { promisify } from "node:util";
import { CallDeadlines } from "../src/call-deadlines.js";

const run = promisify(execFile);
const moduleUrl = new URL("../src/call-deadlines.js", import.meta.url).href;

/** Runs `body` in a fresh Node process with the module's exports in scope; its stdout and wall time. */
async function inChild(body: string): Promise<{ out: string; err: string; ms: number }> {
  const t0 = performance.now();
  const { stdout, stderr } = await run(
    process.execPath,
    [
      "--input-type=module",
      "-e",
      `import { callerDeadlines, serverDeadlines } from ${JSON.stringify(moduleUrl)};\n${body}`,
    ],
    { timeout: 20_000 },
  );
  return { out: stdout.trim(), err: stderr, ms: performance.now() - t0 };
}

describe("call deadlines (one timer per duration)", () => {
  it("each deadline fires once, never before its time; cancelled ones never", async () => {
    const d = new CallDeadlines(false);
    const fired: { id: number; late: number }[] = [];
    const all: Promise<void>[] = [];
    const cancelled = new Set<number>();
    for (let id = 0; id < 60; id++) {
      const ms = [5, 20, 40][id % 3]!;
      const start = performance.now();
      let done!: () => void;
      all.push(new Promise<void>((r) => (done = r)));
      const h = d.add(ms, () => {
        fired.push({ id, late: performance.now() - start - ms });
        done();
      });
      if (id % 4 === 1) {
        d.cancel(h);
        cancelled.add(id);
        done();
      }
    }
    await Promise.race([
      Promise.all(all),
      new Promise((_, reject) => setTimeout(() => reject(new Error("deadlines did not fire")), 5_000)),
    ]);
    assert.equal(fired.length, 60 - cancelled.size);
    assert.equal(new Set(fired.map((f) => f.id)).size, fired.length, "each fires once");
    for (const f of fired) {
      assert.ok(!cancelled.has(f.id), `cancelled ${f.id} fired`);
      assert.ok(f.late >= -0.001, `deadline ${f.id} fired ${-f.late} ms early`);
    }
  });

  it("memory stays a small multiple of the live deadlines when a slow call holds the head", () => {
    const d = new CallDeadlines(false);
    const slow = d.add(60_000, () => {});
    for (let i = 0; i < 100_000; i++) d.cancel(d.add(60_000, () => {}));
    const q = slow.queue as unknown as { items: unknown[] };
    assert.ok(q.items.length <= 200, `${q.items.length} entries kept for 1 live deadline`);
    d.cancel(slow);
    assert.equal(q.items.length, 0);
  });

  it("a deadline a timer cannot hold: Infinity never fires, 2^32 ms does not fire soon; no timer warning", async () => {
    const r = await inChild(
      `const a = serverDeadlines.add(Infinity, () => console.log("infinity fired"));
       const b = serverDeadlines.add(2 ** 32, () => console.log("2^32 fired"));
       const c = callerDeadlines.add(Infinity, () => console.log("caller infinity fired"));
       await new Promise((r) => setTimeout(r, 200));
       serverDeadlines.cancel(a); serverDeadlines.cancel(b); callerDeadlines.cancel(c);
       console.log("done");`,
    );
    assert.equal(r.out, "done");
    assert.doesNotMatch(r.err, /TimeoutOverflowWarning/);
  });

  it("a caller's pending deadline keeps the process alive; a cancelled one or a server's does not", async () => {
    const fires = await inChild(`callerDeadlines.add(300, () => console.log("fired"));`);
    assert.equal(fires.out, "fired");
    const cancelled = await inChild(
      `const d = callerDeadlines.add(60000, () => console.log("fired")); callerDeadlines.cancel(d);
       const e = callerDeadlines.add(60000, () => console.log("fired")); setTimeout(() => callerDeadlines.cancel(e), 50);`,
    );
    assert.equal(cancelled.out, "");
    assert.ok(cancelled.ms < 10_000, `the process lived ${cancelled.ms} ms`);
    const server = await inChild(`serverDeadlines.add(60000, () => console.log("fired"));`);
    assert.equal(server.out, "");
    assert.ok(server.ms < 10_000, `the process lived ${server.ms} ms`);
  });
});
