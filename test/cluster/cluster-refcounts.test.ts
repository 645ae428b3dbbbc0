/**
 * Reference counts across the hubs of a cluster: a key released on one hub lives while another hub holds it
 * and is invalidated everywhere once no hub does and the grace passed; a key held only by clients of a hub
 * that is killed is invalidated after that hub's reconnect window and the grace, one still held elsewhere
 * is not. Short windows (hundreds of ms) so that the test runs in seconds.
 */
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { connect as natsConnect } from "nats";
import { encodeKey } from "../../src/cluster/kv-vars.js";
import { Hub } from "../../src/hub/hub.js";
import { connect, type HubClient, isEzipcError } from "../../src/index.js";
import { eventWhere, exited, until, within } from "../helpers.js";
import {
  holdEntries,
  hubProcess as hubOnCluster,
  type NatsCluster,
  natsCluster,
  untilHolds,
} from "./nats-cluster.js";

const WINDOW = 300;
const GRACE = 300;
const hubProcess = (natsUrl: string) =>
  hubOnCluster(natsUrl, ["--reconnect-window-ms", String(WINDOW), "--grace-ms", String(GRACE)]);
const cluster = (urls: string[]) => ({ servers: urls, heartbeatMs: 150, hubTimeoutMs: 600 });

describe("reference counts across a cluster of hubs", () => {
  let nats: NatsCluster;
  const hubs: Hub[] = [];
  const clients: HubClient[] = [];
  /**
   * Pointers kept to the end: one collected releases its reference, whose grace would end (and count) in a
   * later test.
   */
  const kept: unknown[] = [];

  const client = async (hub: Hub, name: string) => {
    const c = await connect(hub.urls[0]!, { name, requestTimeoutMs: 10_000, reconnect: false });
    clients.push(c);
    return c;
  };

  before(async () => {
    nats = await natsCluster(3);
    for (let i = 0; i < 2; i++) {
      hubs.push(
        await Hub.listen({
          urls: ["tcp://127.0.0.1:0"],
          name: `rc${i}`,
          reconnectWindowMs: WINDOW,
          disposeGraceMs: GRACE,
          cluster: cluster([nats.urls[i]!]),
        }),
      );
    }
  });

  after(async () => {
    await Promise.all(clients.map((c) => c.close()));
    await Promise.all(hubs.map((h) => h.close()));
    await nats?.close();
  });

  it("a key lives while any hub holds it; released everywhere, it is invalidated on every hub after the grace", async () => {
    const [a, b] = [await client(hubs[0]!, "a"), await client(hubs[1]!, "b")];
    const pa = await a.allocate("rc.shared", 4, "poll");
    const pb = await b.watch("rc.shared", "poll");
    assert.ok(pb);
    // Hub 1's hold is in the cluster once the watch is answered (docs/cluster.md); read as hub 0 will.
    await untilHolds(nats, "rc.shared", 2, "both hubs' holds in the cluster");
    const graces = hubs[0]!.clusterCounters()!.gracesEnded;
    pa.dispose();
    // Hub 0's grace ends; hub 1 still holds the key, so it stays.
    await until(() => hubs[0]!.clusterCounters()!.gracesEnded > graces, "hub 0's grace ends", 10_000);
    assert.equal(hubs[0]!.clusterCounters()!.disposed, 0);
    assert.equal(pb.status, "live");
    assert.notEqual(await b.info("rc.shared").then((i) => i.state), "disposed");
    // Released on hub 1 too: after its grace the key is deleted from the cluster, invalidated on both hubs.
    const invalidated = eventWhere<[{ key: string }]>(
      hubs[0]!,
      "invalidated",
      (e) => e.key === "rc.shared",
      10_000,
    );
    pb.dispose();
    await within(invalidated, 10_000, "hub 0 invalidates it");
    await until(() => hubs[1]!.peek("rc.shared") === undefined, "hub 1 drops it", 10_000);
    await assert.rejects(a.watch("rc.shared", "poll"), (e) => isEzipcError(e, "EZIPC_KEY_DISPOSED"));
    // The delete's answer may come after the watch brought the deletion.
    const disposed = () => hubs[0]!.clusterCounters()!.disposed + hubs[1]!.clusterCounters()!.disposed;
    await until(() => disposed() === 1, "one hub counts it disposed", 10_000);
    assert.equal(disposed(), 1);
  });

  it("two hubs allocating one key at once: only the winner's hub holds it (the loser's hold, put ahead, is let go)", async () => {
    const [x, y] = [await client(hubs[0]!, "x"), await client(hubs[1]!, "y")];
    // Both hubs lack the key: each puts its hold ahead of its create, and one create loses.
    const results = await Promise.allSettled([
      x.allocate("rc.race", 4, "poll"),
      y.allocate("rc.race", 4, "poll"),
    ]);
    const won = results.filter((r) => r.status === "fulfilled");
    assert.equal(won.length, 1, "one allocate creates the key");
    const lost = results.find((r) => r.status === "rejected") as PromiseRejectedResult;
    assert.ok(isEzipcError(lost.reason, "EZIPC_KEY_EXISTS"), String(lost.reason));
    kept.push((won[0] as PromiseFulfilledResult<unknown>).value);
    await untilHolds(nats, "rc.race", 1, "one hold: the winner's hub");
  });

  it("the holds of a hub that has no entry at all (it died before its first heartbeat) are swept", async () => {
    // Before any hub here dies: a sweep of a gone hub would list every hold anyway.
    const nc = await natsConnect({ servers: new URL(nats.urls[1]!).host });
    try {
      const holds = await nc.jetstream().views.kv("ezipc_holds");
      const orphan = `${encodeKey("rc.no-entry")}.0123456789abcdef`;
      await holds.put(orphan, new Uint8Array(0));
      await until(
        async () => (await holdEntries(holds, orphan))?.includes(orphan) === false,
        "the hold of a hub with no entry deleted",
        20_000,
        50,
      );
    } finally {
      await nc.close();
    }
  });

  it("a hub killed with -9: keys only its clients held are invalidated after window + grace, others stay", async () => {
    // A third hub in its own process, to be killed.
    const { child, url } = await hubProcess(nats.urls[2]!);
    try {
      const doomed = await connect(url, { name: "doomed", reconnect: false });
      // Held in variables until the kill: a collected pointer would release its reference before it.
      const doomedPointers = [
        await doomed.allocate("rc.only-there", 4, "poll"),
        await doomed.allocate("rc.also-here", 4, "poll"),
      ];
      const here = await client(hubs[0]!, "here");
      const stays = await here.watch("rc.also-here", "poll");
      const seen = await here.watch("rc.only-there", "request");
      assert.ok(stays && seen);
      kept.push(stays);
      seen.dispose(); // hub 0 lets go of it: only the doomed hub holds it now
      const t0 = Date.now();
      const gone = eventWhere<[{ key: string }]>(
        hubs[0]!,
        "invalidated",
        (e) => e.key === "rc.only-there",
        20_000,
      );
      assert.equal(doomedPointers.length, 2);
      child.kill("SIGKILL");
      await exited(child);
      doomed.close().catch(() => {});
      const [info] = await within(gone, 20_000, "the key only the dead hub held is invalidated");
      assert.equal(info.key, "rc.only-there");
      assert.ok(Date.now() - t0 >= WINDOW + GRACE, `after window + grace (${Date.now() - t0} ms)`);
      assert.equal(stays.status, "live", "the key a live hub holds stays");
      assert.ok(hubs[0]!.peek("rc.also-here"));
    } finally {
      if (child.exitCode === null) child.kill("SIGKILL");
    }
  });

  it("a hub swept while it lived (its process stopped) puts its holds again: the key is not disposed under it", async () => {
    const { child, url } = await hubOnCluster(nats.urls[2]!, [
      "--reconnect-window-ms",
      String(WINDOW),
      "--grace-ms",
      String(GRACE),
      "--cluster-heartbeat-ms",
      "150",
    ]);
    try {
      const sleepy = await connect(url, { name: "sleepy", reconnect: false, requestTimeoutMs: 30_000 });
      clients.push(sleepy);
      const mine = await sleepy.allocate("rc.asleep", 4, "poll");
      const here = await client(hubs[0]!, "awake");
      const awake = await here.watch("rc.asleep", "poll");
      assert.ok(awake);
      kept.push(mine);
      await untilHolds(nats, "rc.asleep", 2, "both hubs hold the key");
      // Silent past the other hubs' timeout and its window: swept as if dead.
      child.kill("SIGSTOP");
      await untilHolds(nats, "rc.asleep", 1, "the stopped hub's hold swept");
      child.kill("SIGCONT");
      await untilHolds(nats, "rc.asleep", 2, "the hub, going on, put its hold again");
      // Hub 0 lets go: the key lives, held by the hub that was swept.
      const graces = hubs[0]!.clusterCounters()!.gracesEnded;
      const disposed = hubs[0]!.clusterCounters()!.disposed;
      awake.dispose();
      await until(() => hubs[0]!.clusterCounters()!.gracesEnded > graces, "hub 0's grace ends", 20_000);
      assert.equal(hubs[0]!.clusterCounters()!.disposed, disposed, "not disposed: the other hub holds it");
      assert.equal(mine.status, "live");
      assert.ok(hubs[0]!.peek("rc.asleep"));
    } finally {
      if (child.exitCode === null) child.kill("SIGKILL");
    }
  });

  it("a client listing two hubs moves to the other when its hub is killed with -9: resynced, no acknowledged write lost", async () => {
    const { child, url } = await hubProcess(nats.urls[2]!);
    try {
      const c = await connect(`${url},${hubs[0]!.urls[0]}`, {
        name: "mover",
        requestTimeoutMs: 10_000,
        reconnect: { initialDelayMs: 20, maxDelayMs: 200 },
      });
      clients.push(c);
      const p = await c.allocate("rc.failover", 4, "poll");
      const observer = await client(hubs[1]!, "observer");
      const o = await observer.watch("rc.failover", "poll");
      assert.ok(o);
      let last = 0;
      for (let i = 1; i <= 20; i++) last = await p.write(Buffer.from([i, 0, 0, 0]), 0);
      const moved = new Promise<void>((resolve) =>
        c.on("status", (s) => {
          if (s === "connected") resolve();
        }),
      );
      child.kill("SIGKILL");
      await exited(child);
      await within(moved, 20_000, "the client connected to the other hub");
      assert.equal(p.status, "live");
      assert.equal(p.version, last, "its copy is the last acknowledged write");
      assert.deepEqual([...p.read()], [20, 0, 0, 0]);
      const v = await p.write(Buffer.from([21, 0, 0, 0]), 0);
      await until(
        () => o.version >= v,
        "the observer on a third hub sees the write made after the move",
        10_000,
      );
      assert.deepEqual([...o.read()], [21, 0, 0, 0]);
    } finally {
      if (child.exitCode === null) child.kill("SIGKILL");
    }
  });
});
