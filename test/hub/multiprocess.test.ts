import assert from "node:assert/strict";
import path from "node:path";
import { after, before, describe, it } from "node:test";
import { connect, Hub } from "../../src/index.js";
import { tempDir, within } from "../helpers.js";
import { ChildClient } from "./child-client.js";
import { startCliHub } from "./hubs.js";

/** The hub's next `invalidated` event for `key` (others, from earlier tests' keys, are skipped). */
function invalidation(hub: Hub, key: string): Promise<{ key: string; reason: string }> {
  return within(
    new Promise((resolve) => {
      const on = (info: { key: string; reason: "disposed" | "deleted" }) => {
        if (info.key !== key) return;
        hub.off("invalidated", on);
        resolve(info);
      };
      hub.on("invalidated", on);
    }),
    5_000,
    `invalidation of ${key}`,
  );
}

describe("hub with clients in separate processes", () => {
  let hub: Hub;
  let url: string;
  const children: ChildClient[] = [];

  before(async () => {
    hub = await Hub.listen({ urls: ["tcp://127.0.0.1:0"], disposeGraceMs: 1_000, reconnectWindowMs: 300 });
    url = hub.urls[0]!;
    for (let i = 0; i < 3; i++) children.push(await ChildClient.start(url, `p${i}`));
  });

  after(async () => {
    await Promise.all(children.map((c) => c.exit()));
    await hub.close();
  });

  // The 3-process counters under every policy combination and the allocate race run on both backends in
  // test/vars/vars-processes.test.ts.

  it("a publisher and 3 subscribers in separate processes: every subscriber gets everything in order", async () => {
    const n = 5_000;
    const pending = children.map((c) =>
      c.cmd<{ count: number; inOrder: boolean }>("subscribeCount", { key: "mp.stream" }, 30_000),
    );
    await Promise.all(
      children.map((c) =>
        c.event((e) => e.event === "subscribed" && e.topic === "mp.stream", 10_000, "subscribed"),
      ),
    );
    const publisher = await ChildClient.start(url, "publisher");
    try {
      await publisher.cmd("publishMany", { key: "mp.stream", n }, 30_000);
      for (const r of await Promise.all(pending))
        assert.deepEqual({ count: r.count, inOrder: r.inOrder }, { count: n, inOrder: true });
    } finally {
      await publisher.exit();
    }
  });

  it("kill -9 of a holder: released after its reconnect window, then grace, then invalidated; watch revives during grace", async () => {
    const victim = await ChildClient.start(url, "victim");
    await victim.cmd("allocate", { key: "doomed", size: 8, policy: "poll" });
    await victim.cmd("allocate", { key: "doomed2", size: 8, policy: "lazy" });
    assert.equal(hub.peek("doomed")!.refcount, 1);
    const client = await connect(url, { name: "reviver" }); // connected beforehand: the grace is short
    try {
      const gone = within(
        new Promise<void>((resolve) => {
          const on = (info: { name: string }) => {
            if (info.name !== "victim") return;
            hub.off("clientGone", on);
            resolve();
          };
          hub.on("clientGone", on);
        }),
        5_000,
        "the victim's references to be released",
      );
      await victim.kill("SIGKILL");
      await gone;
      assert.equal(hub.peek("doomed")!.refcount, 0, "references released once the window passed");
      assert.equal(hub.peek("doomed2")!.refcount, 0);

      // During the grace period a watch revives the key.
      const revived = await client.watch("doomed", "request");
      assert.ok(revived, "watch during the grace finds the key");
      assert.equal(hub.peek("doomed")!.refcount, 1);

      // doomed2 was not revived: it is invalidated when its grace ends.
      assert.deepEqual(await invalidation(hub, "doomed2"), { key: "doomed2", reason: "disposed" });
      await assert.rejects(client.watch("doomed2", "poll"), { code: "EZIPC_KEY_DISPOSED" });

      // Releasing the revived pointer starts the grace again.
      const invalidated = invalidation(hub, "doomed");
      revived.dispose();
      assert.equal((await invalidated).reason, "disposed");
      await assert.rejects(client.watch("doomed", "lazy"), { code: "EZIPC_KEY_DISPOSED" });
      // allocate on a tombstoned key creates it anew
      const again = await client.allocate("doomed", 4, "poll");
      assert.equal(again.version, 1);
      assert.equal(again.size, 4);
      again.dispose();
    } finally {
      await client.close();
    }
  });
});

describe("hub restart with --data (the CLI hub in its own process)", () => {
  it("persistent keys survive a kill -9 of the hub; clients reconnect, resync and report their status", async () => {
    const tmp = tempDir();
    const sock = path.join(tmp.dir, "hub.sock");
    const data = path.join(tmp.dir, "data");
    const url = `unix://${sock}`;
    let hubProc = await startCliHub(sock, data, ["--reconnect-window-ms", "2000"]);
    const a = await ChildClient.start(url, "a");
    const b = await ChildClient.start(url, "b");
    try {
      await a.cmd("allocate", { key: "conf.speed", size: 4, policy: "poll", persistent: true });
      await a.cmd("allocate", { key: "scratch", size: 4, policy: "poll" });
      await b.cmd("watch", { key: "conf.speed", policy: "lazy" });
      const v = await a.cmd<{ version: number }>("write", { key: "conf.speed", hex: "2a000000" });
      assert.equal(v.version, 2);

      const hubExit = new Promise((resolve) => hubProc.once("exit", resolve));
      hubProc.kill("SIGKILL");
      await hubExit;
      await a.event(
        (e) => e.event === "status" && e.key === "conf.speed" && e.status === "stale",
        10_000,
        "a stale",
      );
      await b.event(
        (e) => e.event === "status" && e.key === "conf.speed" && e.status === "stale",
        10_000,
        "b stale",
      );
      assert.equal((await a.cmd<{ status: string }>("status", { key: "conf.speed" })).status, "stale");
      // A poll pointer still answers from its copy while the hub is away.
      assert.deepEqual(await a.cmd("read", { key: "conf.speed" }), {
        value: 42,
        version: 2,
        status: "stale",
      });

      hubProc = await startCliHub(sock, data, ["--reconnect-window-ms", "2000"]);
      await a.event((e) => e.event === "resynced", 15_000, "a resynced");
      await b.event((e) => e.event === "resynced", 15_000, "b resynced");
      assert.equal((await a.cmd<{ status: string }>("status", { key: "conf.speed" })).status, "live");
      await a.event(
        (e) => e.event === "status" && e.key === "scratch" && e.status === "invalidated",
        5_000,
        "scratch invalidated",
      );
      await assert.rejects(a.cmd("read", { key: "scratch" }), { code: "EZIPC_KEY_DISPOSED" });

      assert.deepEqual(await b.cmd("read", { key: "conf.speed" }), { value: 42, version: 2, status: "live" });
      const w = await b.cmd<{ version: number }>("write", { key: "conf.speed", hex: "07000000" });
      assert.equal(w.version, 3);
      await a.cmd("waitVersion", { key: "conf.speed", n: 3 });
      assert.deepEqual(await a.cmd("read", { key: "conf.speed" }), { value: 7, version: 3, status: "live" });
    } finally {
      await a.exit();
      await b.exit();
      hubProc.kill("SIGTERM");
      await new Promise((resolve) =>
        hubProc.exitCode !== null ? resolve(null) : hubProc.once("exit", resolve),
      );
      tmp.cleanup();
    }
  });
});
