// A hub whose store's disk is full: durable work it cannot store is refused with EZIPC_STORE (at once,
// once the store is known to be failing, not after each caller's deadline), and the hub goes on serving.
// The hub runs as the CLI in a mount namespace of its own, with --data on a 1 MiB tmpfs.
import assert from "node:assert/strict";
import { mkdirSync, rmSync } from "node:fs";
import path from "node:path";
import { describe, it } from "node:test";
import { connect, isEzipcError } from "../../src/index.js";
import { ended, tempDir, until, within } from "../helpers.js";
import { startCliHub } from "./hubs.js";

const isStore = (e: unknown) => isEzipcError(e, "EZIPC_STORE");
const isStoreOrTimeout = (e: unknown) => isStore(e) || isEzipcError(e, "EZIPC_TIMEOUT");

describe("a hub whose disk is full", () => {
  it("refuses what it cannot store with EZIPC_STORE, at once once it knows, goes on serving, and takes writes again once there is room", async () => {
    const tmp = tempDir();
    const sock = path.join(tmp.dir, "hub.sock");
    const data = path.join(tmp.dir, "data");
    mkdirSync(data, { recursive: true });
    // (200 kB of the disk taken by a file the test removes later, through /proc/PID/root: the hub's view.)
    const hub = await startCliHub(sock, data, ["--no-metrics"], true, {
      size: "1m",
      setup: `head -c 200000 /dev/zero > '${data}/filler'`,
    });
    const c = await connect(`unix://${sock}`, { requestTimeoutMs: 3_000, reconnect: false });
    try {
      await c.configureTopic("durable", { persist: true });
      await c.publish("durable", "before");
      const kept = await c.allocate("kept", 8, "poll", { persistent: true });
      // Persistent keys until the disk is full, smaller and smaller to take the last pages: a new key is
      // committed at once, so it fails at once.
      let made = 0;
      let n = 0;
      for (const size of [60_000, 4_000, 500, 50]) {
        let refused: unknown = null;
        for (let i = 0; i < 300 && refused === null; i++) {
          try {
            await c.allocate(`fill${n++}`, size, "poll", { persistent: true });
            made++;
          } catch (err) {
            refused = err;
          }
        }
        assert.ok(isStore(refused), `keys of ${size} B: ${String(refused)}`);
      }
      assert.ok(made > 0, `${made} keys fitted`);
      // The first write (or publish) after that is staged and waits for its commit (or its deadline); once
      // a commit has failed, the next are refused at once instead of each waiting for its deadline.
      await assert.rejects(kept.write(Buffer.alloc(8, 1)), isStoreOrTimeout);
      let t0 = Date.now();
      await assert.rejects(kept.write(Buffer.alloc(8, 2)), isStore);
      assert.ok(Date.now() - t0 < 1_500, `refused in ${Date.now() - t0} ms`);
      await assert.rejects(c.publish("durable", "x".repeat(20_000)), isStoreOrTimeout);
      t0 = Date.now();
      await assert.rejects(c.publish("durable", "y"), isStore);
      assert.ok(Date.now() - t0 < 1_500, `refused in ${Date.now() - t0} ms`);
      // What needs no store goes on.
      const mem = await c.allocate("memory.only", 8, "poll");
      await mem.write(Buffer.alloc(8, 3));
      let resolveGot: (text: string) => void = () => {};
      const got = new Promise<string>((resolve) => {
        resolveGot = resolve;
      });
      await c.subscribe("plain", {}, (m) => resolveGot(Buffer.from(m.payload).toString()));
      await c.publish("plain", "still here");
      assert.equal(await within(got, 5_000, "a plain topic's message"), "still here");
      // Room again: the waiting commits go through, and new writes and publishes are taken.
      rmSync(`/proc/${hub.pid}/root${data}/filler`);
      await until(
        () =>
          kept.write(Buffer.alloc(8, 4)).then(
            () => true,
            () => false,
          ),
        "a write to a persistent key taken again",
        10_000,
      );
      // (Each kind of commit is retried on its own backoff, up to 1 s apart: publishes may take a moment more.)
      let seq = 0n;
      await until(
        () =>
          c.publish("durable", "after").then(
            (r) => {
              seq = r.seq;
              return true;
            },
            () => false,
          ),
        "a publish to the persisted topic taken again",
        10_000,
      );
      assert.ok(seq >= 2n);
      const [info] = await c.topics("durable");
      assert.equal(info!.lastSeq, seq, "the durable topic goes on");
    } finally {
      await c.close();
      hub.kill("SIGTERM");
      await within(ended(hub), 10_000, "hub to stop");
      tmp.cleanup();
    }
  });
});
