import assert from "node:assert/strict";
import { rmSync } from "node:fs";
import { after, before, describe, it } from "node:test";
import { connect, Hub, type MessagingClient, type SyncPolicy } from "../../src/index.js";
import { until } from "../helpers.js";
import { ChildClient } from "../hub/child-client.js";

// One suite, two backends: shared variables through a hub over tcp://, and in shared memory (shm://, no
// hub), with the clients in separate processes.
const GRACE_MS = 1_000;
for (const backend of ["hub", "shm"] as const)
  describe(`shared variables with clients in separate processes (${backend})`, () => {
    let hub: Hub | undefined;
    let url: string;
    /** Options every process of the backend gets (shm:// has no hub to hold the grace: each process does). */
    const options = backend === "shm" ? { disposeGraceMs: GRACE_MS } : undefined;
    const children: ChildClient[] = [];
    let observer: MessagingClient;
    const ns = `test-vp-${process.pid}`;

    before(async () => {
      if (backend === "hub") {
        hub = await Hub.listen({
          urls: ["tcp://127.0.0.1:0"],
          disposeGraceMs: GRACE_MS,
          reconnectWindowMs: 300,
        });
        url = hub.urls[0]!;
        observer = await connect(url, { name: "observer" });
      } else {
        url = `shm:///${ns}`;
        observer = await connect(`shm:///${ns}`, { name: "observer", disposeGraceMs: GRACE_MS });
      }
      for (let i = 0; i < 3; i++) children.push(await ChildClient.start(url, `p${i}`, options));
    });

    after(async () => {
      await Promise.all(children.map((c) => c.exit()));
      await observer.close();
      await hub?.close();
      if (backend === "shm") rmSync(`/dev/shm/ezipc.${ns}`, { recursive: true, force: true });
    });

    const combos: [SyncPolicy, SyncPolicy, SyncPolicy][] = [
      ["request", "request", "request"],
      ["lazy", "lazy", "lazy"],
      ["poll", "poll", "poll"],
      ["request", "lazy", "lazy"],
      ["request", "poll", "poll"],
      ["lazy", "poll", "poll"],
      ["lazy", "request", "request"],
      ["poll", "request", "request"],
      ["poll", "lazy", "lazy"],
    ];
    for (const policies of combos) {
      it(`3 processes increment one counter under ${policies.join("/")}: values and versions agree`, async () => {
        const key = `counter.${policies.join("-")}`;
        const n = 25;
        await children[0]!.cmd("allocate", { key, size: 4, policy: policies[0] });
        await children[1]!.cmd("watch", { key, policy: policies[1] });
        await children[2]!.cmd("watch", { key, policy: policies[2] });
        await Promise.all(children.map((c) => c.cmd("increment", { key, n })));
        const finalVersion = 1 + 3 * n;
        const seen = await observer.peek(key);
        assert.equal(seen!.version, finalVersion);
        assert.equal(Buffer.from(seen!.data).readUInt32LE(0), 3 * n);
        const reads = await Promise.all(
          children.map(async (c, i) => {
            if (policies[i] !== "request") await c.cmd("waitVersion", { key, n: finalVersion });
            return c.cmd<{ value: number; version: number }>("read", { key });
          }),
        );
        for (const r of reads)
          assert.deepEqual({ value: r.value, version: r.version }, { value: 3 * n, version: finalVersion });
        const info = await observer.info(key);
        assert.equal(info.state === "live" && info.refcount, 3);
        await Promise.all(children.map((c) => c.cmd("dispose", { key })));
      });
    }

    it("5 processes race to allocate one key: exactly one wins", async () => {
      const racers = [
        ...children,
        await ChildClient.start(url, "p3", options),
        await ChildClient.start(url, "p4", options),
      ];
      try {
        const results = await Promise.allSettled(
          racers.map((c) => c.cmd("allocate", { key: "race", size: 8, policy: "poll" })),
        );
        const won = results.filter((r) => r.status === "fulfilled");
        const lost = results.filter((r) => r.status === "rejected") as PromiseRejectedResult[];
        assert.equal(won.length, 1);
        assert.equal(lost.length, 4);
        for (const l of lost) assert.equal((l.reason as { code: string }).code, "EZIPC_KEY_EXISTS");
        const info = await observer.info("race");
        assert.equal(info.state === "live" && info.refcount, 1);
      } finally {
        await Promise.all(racers.slice(3).map((c) => c.exit()));
      }
      for (const c of children) await c.cmd("dispose", { key: "race" }).catch(() => {});
    });

    it("kill -9 of the only holder: its references go, then the grace, then the key is disposed; a watch in the grace revives it", async () => {
      const victim = await ChildClient.start(url, "victim", options);
      await victim.cmd("allocate", { key: "doomed", size: 8, policy: "poll" });
      await victim.cmd("allocate", { key: "doomed2", size: 8, policy: "lazy" });
      const other = children[0]!;
      await other.cmd("watch", { key: "doomed2", policy: "request" });
      const refs = async (key: string) => {
        const i = await observer.info(key);
        return i.state === "live" || i.state === "grace" ? i.refcount : -1;
      };
      assert.equal(await refs("doomed2"), 2);
      await victim.kill("SIGKILL");
      // The dead process's pointers stop counting; the other holder's stays.
      await until(async () => (await refs("doomed2")) === 1, "doomed2 held by the live process only", 5_000);
      await until(
        async () => (await observer.info("doomed")).state === "grace",
        "doomed in its grace",
        5_000,
      );
      // During the grace a watch revives the key.
      const revived = await observer.watch("doomed", "request");
      assert.ok(revived, "watch during the grace finds the key");
      assert.equal(await refs("doomed"), 1);
      // Releasing it starts the grace again; after it the key is disposed.
      revived.dispose();
      await until(async () => (await observer.info("doomed")).state === "disposed", "doomed disposed", 5_000);
      await assert.rejects(observer.watch("doomed", "lazy"), { code: "EZIPC_KEY_DISPOSED" });
      // allocate on a disposed key creates it anew.
      const again = await observer.allocate("doomed", 4, "poll");
      assert.equal(again.version, 1);
      assert.equal(again.size, 4);
      again.dispose();
      await other.cmd("dispose", { key: "doomed2" });
    });
  });
