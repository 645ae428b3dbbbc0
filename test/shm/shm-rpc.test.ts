import assert from "node:assert/strict";
import type { ChildProcess } from "node:child_process";
import { rmSync } from "node:fs";
import path from "node:path";
import { after, before, describe, it } from "node:test";
import { connect, isEzipcError, type ShmClient } from "../../src/index.js";
import { topicFileName } from "../../src/shm/file-names.js";
import { C_NEXT_HI, C_NEXT_LO, C_PID, KIND_RPC, SLOT_COUNT, slotWord } from "../../src/shm/layout.js";
import { namespaceDir, openShmFile } from "../../src/shm/shm-file.js";
import { Waker } from "../../src/shm/waker.js";
import { exited, outputLines, spawnFixture, until, within } from "../helpers.js";

const name = `test-rpc-${process.pid}`;
const url = `shm:///${name}` as const;

const children: ChildProcess[] = [];
async function peer(...args: string[]): Promise<{ child: ChildProcess; out: string[] }> {
  return peerWith({}, ...args);
}
async function peerWith(
  env: Record<string, string>,
  ...args: string[]
): Promise<{ child: ChildProcess; out: string[] }> {
  const { child } = await spawnFixture("shm-peer.js", args, 10_000, /^(ready|calling|held)/, env);
  children.push(child);
  return { child, out: outputLines(child) };
}

describe("shm:// RPC and deadman across processes", () => {
  let c: ShmClient;
  before(async () => {
    c = await connect(url, { name: "caller" });
  });
  after(async () => {
    for (const ch of children) ch.kill("SIGKILL");
    await Promise.all(children.map(exited));
    await c.close();
    rmSync(`/dev/shm/ezipc.${name}`, { recursive: true, force: true });
  });

  it("requests reach a server in another process; two servers share a topic's requests, each served once", async () => {
    await assert.rejects(c.request("echo", "x"), (e) => isEzipcError(e, "EZIPC_NO_RESPONDERS"));
    // CPU-bound handlers (2 ms each): a server busy with one call cannot claim the next, so both share them
    // however the two processes are scheduled.
    const s1 = await peer("serve", url, "echo", "busyecho");
    assert.equal((await c.request("echo", "hello")).text(), `${s1.child.pid}:hello`);
    const s2 = await peer("serve", url, "echo", "busyecho");
    const replies = await Promise.all(Array.from({ length: 400 }, (_, i) => c.request("echo", String(i))));
    const by = new Map<string, number>();
    replies.forEach((r, i) => {
      const [pid, text] = r.text().split(":");
      assert.equal(text, String(i));
      by.set(pid!, (by.get(pid!) ?? 0) + 1);
    });
    assert.deepEqual([...by.keys()].sort(), [String(s1.child.pid), String(s2.child.pid)].sort());
    // docs/shm.md: readers of a request file hold their slot but publish no position there (nothing waits on
    // it, and a slot written per call would be a cache line moved to every caller).
    const file = openShmFile(path.join(namespaceDir(name), `.rpc.${topicFileName("echo")}`), KIND_RPC, 0o600);
    let servers = 0;
    for (let slot = 0; slot < SLOT_COUNT; slot++) {
      if (Atomics.load(file.i32, slotWord(slot, C_PID)) <= 0) continue;
      servers++;
      assert.equal(file.u32[slotWord(slot, C_NEXT_LO)], 0);
      assert.equal(file.u32[slotWord(slot, C_NEXT_HI)], 0);
    }
    assert.equal(servers, 2);
    // A stream from another process, in order.
    await peer("serve", url, "count", "stream");
    const got: string[] = [];
    for await (const chunk of await c.requestStream("count", "50")) got.push(Buffer.from(chunk).toString());
    assert.deepEqual(
      got,
      Array.from({ length: 50 }, (_, i) => String(i)),
    );
  });

  it("an answer that comes within watchUs costs no wake-up; the watch ends (no CPU spent) once it expires", async () => {
    // Generous windows (20 ms) so that a loaded machine's scheduling delays stay inside them.
    await peerWith({ WATCH_US: "20000" }, "serve", url, "watched", "echo");
    const calls = 200;
    const wakeUpsTaken = async (watchUs: number): Promise<number> => {
      const caller = await connect(url, { name: `watch${watchUs}`, watchUs });
      try {
        await caller.request("watched", "warm-up");
        const before = Waker.counts.taken;
        for (let i = 0; i < calls; i++)
          assert.match((await caller.request("watched", String(i))).text(), /:\d+$/);
        return Waker.counts.taken - before;
      } finally {
        await caller.close();
      }
    };
    const watching = await wakeUpsTaken(20_000);
    assert.ok(watching <= calls / 10, `${watching} wake-ups for ${calls} calls while watching`);
    // Without the window, the caller sleeps in every call and is woken for each answer.
    const sleeping = await wakeUpsTaken(0);
    assert.ok(sleeping >= calls / 2, `${sleeping} wake-ups for ${calls} calls without watching`);
    // Once the window has passed with nothing to read, the caller sleeps: an idle process spends no CPU.
    const caller = await connect(url, { name: "idle-after-watch", watchUs: 5_000 });
    try {
      await caller.request("watched", "x");
      await new Promise((r) => setTimeout(r, 50)); // past the window (timers run while watching)
      const cpu = process.cpuUsage();
      await new Promise((r) => setTimeout(r, 300));
      const used = process.cpuUsage(cpu);
      assert.ok(
        used.user + used.system < 100_000,
        `${(used.user + used.system) / 1000} ms of CPU in 300 ms idle`,
      );
    } finally {
      await caller.close();
    }
  });

  it("deadline and cancellation reach the handler in the other process", async () => {
    const s = await peer("serve", url, "hang", "hang");
    await assert.rejects(c.request("hang", "x", { timeoutMs: 100 }), (e) => isEzipcError(e, "EZIPC_TIMEOUT"));
    await until(() => s.out.includes("aborted EZIPC_TIMEOUT"), "the deadline reached the handler", 5_000);
    const ac = new AbortController();
    const p = c.request("hang", "x", { signal: ac.signal, timeoutMs: 0 });
    // Cancel once the server has the call (its claim is visible to the caller as a live server).
    setImmediate(() => ac.abort());
    await assert.rejects(p, (e) => isEzipcError(e, "EZIPC_CANCELLED"));
    await until(() => s.out.includes("aborted EZIPC_CANCELLED"), "the cancel reached the handler", 5_000);
  });

  it("a server killed with -9 mid-call: the caller learns it promptly (EZIPC_SERVER_GONE), not at its deadline", async () => {
    const s = await peer("serve", url, "doomed", "hang");
    const p = c.request("doomed", "x", { timeoutMs: 30_000 });
    const failed = assert.rejects(p, (e) => isEzipcError(e, "EZIPC_SERVER_GONE"));
    // Kill once the server claimed the call: its "hang" handler is running.
    await until(() => s.out.includes("handling"), "the server to take the call", 5_000);
    s.child.kill("SIGKILL");
    const t0 = Date.now();
    await within(failed, 5_000, "EZIPC_SERVER_GONE");
    assert.ok(Date.now() - t0 < 2_000, `took ${Date.now() - t0} ms`);
    // With no server left, a new call fails at once.
    await exited(s.child);
    await assert.rejects(c.request("doomed", "x"), (e) => isEzipcError(e, "EZIPC_NO_RESPONDERS"));
  });

  it("a caller killed with -9: the server's handler is aborted", async () => {
    const server = await connect(url, { name: "server" });
    try {
      const aborted = new Promise<string>((resolve) => {
        void server.serve("orphan", (req) => {
          return new Promise((_, reject) =>
            req.signal.addEventListener("abort", () => {
              resolve((req.signal.reason as { code: string }).code);
              reject(req.signal.reason);
            }),
          );
        });
      });
      const caller = await peer("call", url, "orphan");
      caller.child.kill("SIGKILL");
      assert.equal(await within(aborted, 5_000, "the handler to be aborted"), "EZIPC_CANCELLED");
    } finally {
      await server.close();
    }
  });

  it("deadman: one holder at a time; a holder killed with -9 releases the token and a waiter takes it", async () => {
    const d = c.deadman("leader");
    const h = await peer("hold", url, "leader");
    const s = await d.state();
    assert.equal(s.taken, true);
    assert.equal(s.mine, false);
    assert.match(s.holder, /^hold#\d+$/);
    assert.equal(await d.tryTake(), false);
    const waiting = d.take();
    const released = c.deadman("leader").waitReleased();
    h.child.kill("SIGKILL");
    const t0 = Date.now();
    const mine = await within(waiting, 5_000, "the token after its holder died");
    assert.equal(mine.mine, true);
    assert.ok(mine.epoch > s.epoch);
    assert.ok(Date.now() - t0 < 2_000);
    await released;
    // A second process cannot take it while we hold it; after release it can.
    const other = await connect(url, { name: "other" });
    try {
      assert.equal(await other.deadman("leader").tryTake(), false);
      const taken = other.deadman("leader").waitTaken();
      await d.release();
      await assert.rejects(d.release(), (e) => isEzipcError(e, "EZIPC_BAD_REQUEST"));
      assert.equal(await other.deadman("leader").tryTake(), true);
      assert.equal((await taken).taken, true);
      const ac = new AbortController();
      const blocked = d.take({ signal: ac.signal });
      ac.abort();
      await assert.rejects(blocked, (e) => isEzipcError(e, "EZIPC_CANCELLED"));
    } finally {
      await other.close(); // releases what it holds
    }
    assert.equal((await d.state()).taken, false);
  });

  it("a reply too large for the caller's inbox fails the call at once with EZIPC_SHM_TOO_LARGE; the server goes on", async () => {
    // 64 KiB rings: a message takes at most a quarter of one.
    const server = await connect(url, { ringBytes: 65_536 });
    const caller = await connect(url, { ringBytes: 65_536 });
    try {
      await server.serve("sized", (q) => Buffer.alloc(Number(Buffer.from(q.payload).toString())));
      const t0 = Date.now();
      await assert.rejects(caller.request("sized", "20000", { timeoutMs: 10_000 }), (e) =>
        isEzipcError(e, "EZIPC_SHM_TOO_LARGE"),
      );
      // Without the end the error makes, the caller waited for its timeout (10 s).
      assert.ok(Date.now() - t0 < 5_000, `told in ${Date.now() - t0} ms`);
      assert.equal((await caller.request("sized", "100")).payload.length, 100);
    } finally {
      await caller.close();
      await server.close();
    }
  });
});
