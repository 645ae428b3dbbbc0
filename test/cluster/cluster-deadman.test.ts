/**
 * Deadman tokens across the hubs of a cluster (three NATS nodes on loopback, three hubs): one holder at a
 * time among the clients of every hub, each take with a greater epoch; state and waits seen from other hubs;
 * a holder killed with -9 frees its token for a waiter on another hub at once; a holder's whole hub killed
 * with -9 frees it after the hub timeout.
 */
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { connect as natsConnect } from "nats";
import type { Hub } from "../../src/hub/hub.js";
import { connect, type HubClient } from "../../src/index.js";
import { exited, within } from "../helpers.js";
import { ChildClient } from "../hub/child-client.js";
import { hubProcess, hubsOn, type NatsCluster, natsCluster } from "./nats-cluster.js";

const HEARTBEAT = 150;
const HUB_TIMEOUT = 600;

describe("deadman tokens across a cluster of hubs", () => {
  let nats: NatsCluster;
  const hubs: Hub[] = [];
  const clients: HubClient[] = [];

  const client = async (hub: Hub, name: string) => {
    const c = await connect(hub.urls[0]!, { name, requestTimeoutMs: 15_000 });
    clients.push(c);
    return c;
  };

  before(async () => {
    nats = await natsCluster(3);
    hubs.push(...(await hubsOn(nats, 3, { heartbeatMs: HEARTBEAT, hubTimeoutMs: HUB_TIMEOUT })));
  });

  after(async () => {
    await Promise.all(clients.map((c) => c.close()));
    await Promise.all(hubs.map((h) => h.close()));
    await nats?.close();
  });

  it("six clients over three hubs take one token in turn: never two holders, epochs increase", async () => {
    const takers = await Promise.all([0, 1, 2, 3, 4, 5].map((i) => client(hubs[i % 3]!, `taker${i}`)));
    let holding = 0;
    let most = 0;
    const epochs: bigint[] = [];
    const turns = takers.map(async (c) => {
      for (let round = 0; round < 3; round++) {
        const d = c.deadman("cl.token");
        const s = await within(d.take(), 30_000, "a take");
        assert.ok(s.mine);
        holding++;
        most = Math.max(most, holding);
        epochs.push(s.epoch);
        // Another hub's client cannot take it meanwhile.
        const other = takers[(takers.indexOf(c) + 1) % takers.length]!;
        const state = await other.deadman("cl.token").state();
        assert.ok(state.taken && !state.mine, "held, and not by the other client");
        assert.equal(state.holder, s.holder, "the same holder seen from another hub");
        holding--;
        await d.release();
      }
    });
    await within(Promise.all(turns), 60_000, "every turn");
    assert.equal(most, 1, "never two holders at once");
    assert.equal(epochs.length, 18);
    for (let i = 1; i < epochs.length; i++)
      assert.ok(epochs[i]! > epochs[i - 1]!, "each take a greater epoch");
  });

  it("tryTake, waitTaken and waitReleased across hubs", async () => {
    const [a, b, c] = [
      await client(hubs[0]!, "wa"),
      await client(hubs[1]!, "wb"),
      await client(hubs[2]!, "wc"),
    ];
    const taken = b.deadman("cl.wait").waitTaken();
    assert.ok(await a.deadman("cl.wait").tryTake(), "free: taken");
    const seen = await within(taken, 10_000, "waitTaken on another hub");
    assert.ok(seen.taken && seen.holder.startsWith("wa#"), seen.holder);
    assert.equal(await c.deadman("cl.wait").tryTake(), false, "held on another hub: not taken");
    const released = c.deadman("cl.wait").waitReleased();
    await a.deadman("cl.wait").release();
    assert.equal((await within(released, 10_000, "waitReleased on a third hub")).taken, false);
  });

  it("a holder killed with -9 on hub A: a waiter on hub C gets the token at once", async () => {
    const holder = await ChildClient.start(hubs[0]!.urls[0]!, "doomed-holder");
    const r = await holder.cmd<{ mine: boolean }>("take", { key: "cl.kill" });
    assert.ok(r.mine);
    const waiter = await client(hubs[2]!, "heir");
    const take = waiter.deadman("cl.kill").take();
    const t0 = Date.now();
    await holder.kill();
    const s = await within(take, 10_000, "the waiter takes it");
    assert.ok(s.mine);
    assert.ok(Date.now() - t0 < 5_000, `at once (${Date.now() - t0} ms)`);
  });

  it("the holder's whole hub killed with -9: a waiter on another hub gets the token after the hub timeout", async () => {
    const { child, url } = await hubProcess(nats.urls[1]!, [
      "--cluster-heartbeat-ms",
      String(HEARTBEAT),
      "--cluster-hub-timeout-ms",
      String(HUB_TIMEOUT),
    ]);
    try {
      const holder = await connect(url, { name: "on-doomed-hub", reconnect: false });
      assert.ok((await holder.deadman("cl.hubdeath").take()).mine);
      const waiter = await client(hubs[0]!, "heir2");
      const take = waiter.deadman("cl.hubdeath").take();
      const t0 = Date.now();
      child.kill("SIGKILL");
      await exited(child);
      holder.close().catch(() => {});
      const s = await within(take, 20_000, "the waiter takes it");
      assert.ok(s.mine);
      const waited = Date.now() - t0;
      // The hub timeout runs from the dead hub's last heartbeat, up to one heartbeat before the kill.
      assert.ok(waited >= HUB_TIMEOUT - HEARTBEAT - 50, `not before the hub timeout (${waited} ms)`);
      assert.ok(waited < HUB_TIMEOUT + 5_000, `soon after it (${waited} ms)`);
    } finally {
      if (child.exitCode === null) child.kill("SIGKILL");
    }
  });

  it("the hubs' tokens' watches lose their consumers on the server: a take is still seen on another hub", async () => {
    const [a, b] = [await client(hubs[0]!, "sa"), await client(hubs[1]!, "sb")];
    const nc = await natsConnect({ servers: new URL(nats.urls[0]!).host });
    try {
      const jsm = await nc.jetstreamManager();
      const tokenWatches = async () => {
        const found: string[] = [];
        for await (const ci of jsm.consumers.list("KV_ezipc_vars")) {
          const filters = [ci.config.filter_subject, ...(ci.config.filter_subjects ?? [])];
          if (filters.some((f) => f?.endsWith(".dm.*"))) found.push(ci.name);
        }
        return found;
      };
      const watches = await tokenWatches();
      // One per hub (and the killed hub's, until the server lets it go).
      assert.ok(watches.length >= 3, `a tokens' watch per hub (${watches.length})`);
      // The watches' consumers vanish on the server; the watches are not told.
      for (const name of watches) await jsm.consumers.delete("KV_ezipc_vars", name);
      // A write of another key moves the bucket on, as the hubs' traffic does.
      await (await a.allocate("cl.stall-traffic", 4, "poll")).write(Buffer.from([1, 2, 3, 4]), 0);
      const taken = b.deadman("cl.stall").waitTaken();
      assert.ok(await a.deadman("cl.stall").tryTake());
      const seen = await within(taken, 8_000, "the take seen on another hub");
      assert.ok(seen.taken && seen.holder.startsWith("sa#"), seen.holder);
    } finally {
      await nc.close();
    }
  });
});
