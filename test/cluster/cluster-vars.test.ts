/**
 * Shared variables across hubs of one cluster (three nats-server nodes with JetStream on loopback, three
 * hubs): one value and one version per key on every hub, poll and lazy holders of any hub updated, a
 * compare-and-write counter from four processes over three hubs exact, allocate races won by one hub.
 */
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { Hub } from "../../src/hub/hub.js";
import { connect, type HubClient, isEzipcError } from "../../src/index.js";
import { exited, spawnFixture, until, within } from "../helpers.js";
import { ChildClient } from "../hub/child-client.js";
import { type NatsCluster, natsCluster } from "./nats-cluster.js";

describe("shared variables across a cluster of hubs", () => {
  let nats: NatsCluster;
  const hubs: Hub[] = [];
  const clients: HubClient[] = [];

  /** A hub on the cluster, talking first to node `i`. */
  const hubOn = (i: number) =>
    Hub.listen({
      urls: ["tcp://127.0.0.1:0"],
      name: `hub${i}`,
      cluster: { servers: [nats.urls[i]!, ...nats.urls.filter((_, j) => j !== i)] },
    });

  const client = async (hub: Hub, name: string) => {
    const c = await connect(hub.urls[0]!, { name, requestTimeoutMs: 10_000 });
    clients.push(c);
    return c;
  };

  before(async () => {
    nats = await natsCluster(3);
    // All at once on the fresh cluster: they race to make the same streams while it elects their leaders.
    hubs.push(...(await Promise.all([0, 1, 2].map((i) => hubOn(i)))));
  });

  after(async () => {
    await Promise.all(clients.map((c) => c.close()));
    await Promise.all(hubs.map((h) => h.close()));
    await nats?.close();
  });

  it("a write on one hub reaches poll and lazy holders on the others, with the same version", async () => {
    const [a, b, c] = [await client(hubs[0]!, "a"), await client(hubs[1]!, "b"), await client(hubs[2]!, "c")];
    const w = await a.allocate("cl.temp", 4, "request");
    const p = await within(b.watch("cl.temp", "poll"), 10_000, "watch on hub 1");
    const l = await within(c.watch("cl.temp", "lazy"), 10_000, "watch on hub 2");
    assert.ok(p && l, "the key is seen on every hub");
    assert.equal(p.version, w.version);
    assert.equal(l.version, w.version);
    for (let i = 1; i <= 5; i++) {
      const version = await w.write(Buffer.from([i, 0, 0, 0]), 0);
      assert.ok(version > w.version - 1);
      await until(() => p.version >= version, `version ${version} on hub 1`, 10_000);
      assert.equal(p.version, version, "the poll copy on another hub has the writer's version");
      assert.deepEqual([...p.read()], [i, 0, 0, 0]);
      // A lazy holder on a third hub is told its copy is stale (once that hub has the change), then reads it.
      await until(() => !l.fresh || l.version >= version, `hub 2 knows of version ${version}`, 10_000);
      const r: { data: Uint8Array; version: number } = await l.readVersioned();
      assert.equal(r.version, version, "a lazy read on a third hub gets it too");
      assert.equal(r.data[0], i);
    }
  });

  it("compare-and-write: a counter incremented from four processes over three hubs ends exact", async () => {
    const first = await client(hubs[0]!, "creator");
    // Kept to the end (a collected pointer would release the key while the others start on it).
    const counter = await first.allocate("cl.counter", 4, "request");
    const procs = await Promise.all(
      [0, 1, 2, 3].map((i) => ChildClient.start(hubs[i % 3]!.urls[0]!, `counter${i}`)),
    );
    try {
      const n = 40;
      await Promise.all(procs.map((p) => p.cmd("watch", { key: "cl.counter", policy: "request" })));
      const results = await Promise.all(
        procs.map((p) => p.cmd<{ conflicts: number }>("increment", { key: "cl.counter", n }, 120_000)),
      );
      assert.ok(
        results.some((r) => r.conflicts > 0),
        "writers on different hubs raced (else the test proves little)",
      );
      // Every hub's copy comes to 4n (it follows the cluster within the propagation delay) and no further.
      for (const p of procs) {
        let last = { value: -1, version: 0 };
        await until(
          async () => {
            last = await p.cmd<{ value: number; version: number }>("read", { key: "cl.counter" });
            return last.value >= 4 * n;
          },
          "every hub's copy at 4n",
          10_000,
        ).catch((e: Error) => {
          throw new Error(
            `${e.message}: ${JSON.stringify(last)} (conflicts: ${results.map((r) => r.conflicts)})`,
          );
        });
        assert.equal(last.value, 4 * n);
      }
    } finally {
      counter.dispose();
      await Promise.all(procs.map((p) => p.cmd("exit").catch(() => {})));
      await Promise.all(procs.map((p) => p.exitedQuietly()));
    }
  });

  it("two hubs allocating one key at once: one creates it, the other is told it exists", async () => {
    const [a, b] = [await client(hubs[0]!, "ra"), await client(hubs[1]!, "rb")];
    for (let round = 0; round < 5; round++) {
      const key = `cl.race.${round}`;
      const results = await Promise.allSettled([a.allocate(key, 8, "poll"), b.allocate(key, 8, "poll")]);
      const ok = results.filter((r) => r.status === "fulfilled");
      const refused = results.filter(
        (r) => r.status === "rejected" && isEzipcError(r.reason, "EZIPC_KEY_EXISTS"),
      );
      assert.deepEqual([ok.length, refused.length], [1, 1], JSON.stringify(results.map((r) => r.status)));
      // With openExisting both get the same key and version.
      const both = await Promise.all([
        a.allocate(`${key}.open`, 8, "poll", { openExisting: true }),
        b.allocate(`${key}.open`, 8, "poll", { openExisting: true }),
      ]);
      assert.equal(both[0].version, both[1].version);
    }
  });

  it("JSON config: merge patches from two hubs both land, in one document", async () => {
    const [a, b] = [await client(hubs[0]!, "ja"), await client(hubs[2]!, "jb")];
    const ca = await a.config("cl.cfg");
    const cb = await b.config("cl.cfg");
    await Promise.all([ca.mergePatch({ a: 1 }), cb.mergePatch({ b: 2 })]);
    const last = await ca.mergePatch({ c: 3 });
    await until(() => cb.version >= last, "the third patch on the other hub", 10_000);
    assert.deepEqual(await cb.read(), { a: 1, b: 2, c: 3 });
  });

  it('JSON config: a document that is the string "conflict" is written like any other, on every hub', async () => {
    const [a, b] = [await client(hubs[0]!, "sa"), await client(hubs[1]!, "sb")];
    const ca = await a.config("cl.cfg.word");
    const cb = await b.config("cl.cfg.word");
    assert.equal(await ca.writeIfEmpty("conflict"), true, "written into the empty key");
    const first = ca.version;
    await until(() => cb.version >= first, "the first write on the other hub", 10_000);
    assert.equal(await cb.read(), "conflict");
    const v = await cb.write({ x: 1 });
    const w = await ca.write("conflict");
    assert.ok(w > v, `a new version (${w} after ${v})`);
    await until(() => cb.version >= w, "the second write on the other hub", 10_000);
    assert.equal(await cb.read(), "conflict");
    assert.equal(await cb.writeIfEmpty({ y: 2 }), false, "a real conflict is still one");
  });

  it("a key larger than NATS carries (max_payload, 1 MiB by default) fails at once with EZIPC_CLUSTER, alone", async () => {
    const c = await client(hubs[0]!, "big-writer");
    // A 1 MiB block (the hub's largest by default) with its intent's header is over the limit.
    const t0 = Date.now();
    await assert.rejects(c.allocate("cl.big", 1024 * 1024, "request"), (err: unknown) => {
      assert.ok(isEzipcError(err, "EZIPC_CLUSTER"), String(err));
      return true;
    });
    assert.ok(Date.now() - t0 < 3_000, `at once, not at the cluster timeout (${Date.now() - t0} ms)`);
    const small = await c.allocate("cl.small-after", 4, "request");
    assert.ok((await small.write(Buffer.from([1, 2, 3, 4]), 0)) > 0, "the connection goes on");
  });

  it("ezipc serve --cluster joins the cluster from the command line", async () => {
    const { child, line } = await spawnFixture(
      "../../src/cli/main.js",
      ["serve", "tcp://127.0.0.1:0", "--no-ws", "--cluster", nats.urls.join(","), "--name", "cli-hub"],
      20_000,
      /^hub listening on tcp:/,
    );
    try {
      const a = await client(hubs[0]!, "before-cli");
      const w = await a.allocate("cl.cli", 2, "request");
      const version = await w.write(Buffer.from([4, 2]), 0);
      const c = await connect(line.slice("hub listening on ".length), { name: "via-cli" });
      clients.push(c);
      const p = await c.watch("cl.cli", "request");
      assert.ok(p);
      const r: { data: Uint8Array; version: number } = await p.readVersioned();
      assert.deepEqual([[...r.data], r.version], [[4, 2], version]);
    } finally {
      child.kill("SIGTERM");
      await exited(child);
    }
  });
});
