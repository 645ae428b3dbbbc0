import assert from "node:assert/strict";
import { rmSync } from "node:fs";
import { describe, it } from "node:test";
import { connect } from "../../src/index.js";
import { spinLoop } from "../../src/shm-client/spin-loop.js";

const name = `test-spinloop-${process.pid}`;
const url = `shm:///${name}` as const;

describe("the spin loop shares the thread", () => {
  it("a process.nextTick callback queued from what the spin loop delivered runs before the loop's next look", async () => {
    const c = await connect(url, { name: "spinner", spin: true });
    try {
      // Each message's callback runs inside a look; from there it queues a nextTick (as a publisher's flush
      // or a self wake-up is queued) and counts the looks made before the callback runs.
      const counts: number[] = [];
      const done = new Promise<void>((resolve) => {
        void c.subscribe("ticks", { init: "awaitNew" }, () => {
          const at = spinLoop.lookCount;
          process.nextTick(() => {
            counts.push(spinLoop.lookCount - at);
            if (counts.length === 20) resolve();
          });
        });
      });
      const publisher = await connect(url, { name: "publisher" });
      try {
        for (let i = 0; i < 20; i++) {
          await publisher.publish("ticks", String(i));
          await new Promise((r) => setTimeout(r, 2));
        }
        await done;
      } finally {
        await publisher.close();
      }
      assert.ok(Math.max(...counts) <= 1, `looks before a nextTick callback ran: ${counts.join(" ")}`);
    } finally {
      await c.close();
    }
  });

  it("a caller and a server in one process (readers watch for answers): a call costs the loop a few looks", async () => {
    const server = await connect(url, { name: "server" });
    const caller = await connect(url, { name: "caller" });
    try {
      await server.serve("echo", (req) => req.payload);
      for (let i = 0; i < 200; i++) await caller.request("echo", "warm-up");
      const calls = 1_000;
      const start = spinLoop.lookCount;
      for (let i = 0; i < calls; i++)
        assert.equal((await caller.request("echo", String(i))).text(), String(i));
      const perCall = (spinLoop.lookCount - start) / calls;
      // Each side's reader is looked at once it is due; a reader left to an event-loop turn while the other
      // watches would wait out the other's window, looked at hundreds of times meanwhile.
      assert.ok(perCall <= 10, `${perCall} looks per call`);
    } finally {
      await caller.close();
      await server.close();
      rmSync(`/dev/shm/ezipc.${name}`, { recursive: true, force: true });
    }
  });
});
