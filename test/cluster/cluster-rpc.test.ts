/**
 * RPC across the hubs of a cluster (three NATS nodes on loopback, three hubs): a server on one hub answers
 * calls, streams and sessions made on another; calls spread over servers of several hubs; nobody serving
 * anywhere fails at once, a call bigger than NATS carries fails alone; a deadline and a cancel reach a server on another hub; the death of a server's
 * process — or of its whole hub — ends its calls on the caller's hub promptly with EZIPC_SERVER_GONE.
 */
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { connect as natsConnect } from "nats";
import { topicSuffix } from "../../src/cluster/js-topics.js";
import type { Hub } from "../../src/hub/hub.js";
import { connect, type HubClient, isEzipcError } from "../../src/index.js";
import { exited, within } from "../helpers.js";
import { ChildClient } from "../hub/child-client.js";
import { hubProcess, hubsOn, type NatsCluster, natsCluster } from "./nats-cluster.js";

const HEARTBEAT = 150;
const HUB_TIMEOUT = 600;

describe("RPC across a cluster of hubs", () => {
  let nats: NatsCluster;
  const hubs: Hub[] = [];
  const clients: HubClient[] = [];

  const client = async (hub: Hub, name: string) => {
    const c = await connect(hub.urls[0]!, { name, requestTimeoutMs: 10_000 });
    clients.push(c);
    return c;
  };

  /** Resolves with the error `p` rejects with (fails if it resolves). */
  const rejection = async (p: Promise<unknown>): Promise<Error & { code?: string }> => {
    try {
      await p;
    } catch (err) {
      return err as Error & { code?: string };
    }
    assert.fail("expected a rejection");
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

  it("a server on hub A answers calls, streams and sessions from hub C, with headers and the caller's name", async () => {
    const server = await client(hubs[0]!, "adder");
    await server.serve("cl.add", (req) =>
      JSON.stringify({
        sum: req.json<number[]>().reduce((a, b) => a + b, 0),
        caller: req.caller,
        h: req.headers.trace,
      }),
    );
    await server.serve("cl.count", async function* (req) {
      const n = Number(req.text());
      for (let i = 0; i < n; i++) yield String(i);
    });
    const caller = await client(hubs[2]!, "far-caller");
    for (let i = 0; i < 20; i++) {
      const r = (
        await caller.request("cl.add", JSON.stringify([i, 1, 2]), { headers: { trace: `t${i}` } })
      ).json<{ sum: number; caller: string; h: string }>();
      assert.equal(r.sum, i + 3);
      assert.ok(r.caller.startsWith("far-caller#"), r.caller);
      assert.equal(r.h, `t${i}`);
    }
    // A stream longer than the caller's prefetch: credit crosses the hubs both ways.
    const got: string[] = [];
    for await (const chunk of await caller.requestStream("cl.count", "500", { prefetch: 8 }))
      got.push(Buffer.from(chunk).toString());
    assert.deepEqual(
      got,
      Array.from({ length: 500 }, (_, i) => String(i)),
    );
    // A session: chunks both ways, each side's credit granted across the hubs.
    await server.acceptSessions("cl.echo", async (session) => {
      for await (const m of session) await session.send(`echo ${Buffer.from(m).toString()}`);
    });
    const session = await caller.openSession("cl.echo", { prefetch: 2 });
    const echoes: string[] = [];
    const reading = (async () => {
      for await (const m of session) {
        echoes.push(Buffer.from(m).toString());
        if (echoes.length === 50) break;
      }
    })();
    for (let i = 0; i < 50; i++) await session.send(String(i));
    await within(reading, 10_000, "50 echoes");
    assert.deepEqual(
      echoes,
      Array.from({ length: 50 }, (_, i) => `echo ${i}`),
    );
    session.close();
  });

  it("calls from a third hub are spread over the servers of two hubs; nobody serving fails at once", async () => {
    const seen = new Map<string, number>();
    for (const [i, h] of [hubs[0]!, hubs[1]!].entries()) {
      const s = await client(h, `pool${i}`);
      await s.serve("cl.pool", () => `pool${i}`);
    }
    const caller = await client(hubs[2]!, "pool-caller");
    for (let i = 0; i < 60; i++) {
      const who = (await caller.request("cl.pool", "")).text();
      seen.set(who, (seen.get(who) ?? 0) + 1);
    }
    assert.deepEqual([...seen.keys()].sort(), ["pool0", "pool1"], "both hubs' servers took calls");
    const t0 = Date.now();
    const err = await rejection(caller.request("cl.nobody", "", { timeoutMs: 20_000 }));
    assert.ok(isEzipcError(err) && err.code === "EZIPC_NO_RESPONDERS", String(err));
    assert.ok(Date.now() - t0 < 5_000, "at once, not at the deadline");
    // A call bigger than NATS carries (max_payload, 1 MiB by default) fails alone, with a coded error.
    const big = await rejection(
      caller.request("cl.pool", Buffer.alloc(2 * 1024 * 1024), { timeoutMs: 10_000 }),
    );
    assert.ok(isEzipcError(big) && big.code === "EZIPC_CLUSTER", String(big));
    assert.match(
      (await caller.request("cl.pool", "")).text(),
      /^pool[01]$/,
      "the caller's connection goes on",
    );
  });

  it("a call swallowed on its way (taken by nobody, no 'no responders' either) ends with EZIPC_NO_RESPONDERS after 5 s", async () => {
    // A NATS client in the hubs' queue group of the topic that never answers: as a call lost while NATS
    // moves between nodes.
    const nc = await natsConnect({ servers: new URL(nats.urls[0]!).host });
    try {
      let swallowed = 0;
      nc.subscribe(`ezipc.rpc.q.${topicSuffix("cl.void")}`, {
        queue: "hubs",
        callback: () => {
          swallowed++;
        },
      });
      await nc.flush();
      const caller = await client(hubs[2]!, "void-caller");
      const t0 = Date.now();
      let err: (Error & { code?: string }) | undefined;
      for (let attempt = 0; attempt < 10 && !err?.message.includes("took"); attempt++) {
        // (Until the subscription is known on the caller's NATS node, NATS says "no responders" at once.)
        err = await rejection(caller.request("cl.void", "", { timeoutMs: 60_000 }));
      }
      assert.ok(isEzipcError(err) && err.code === "EZIPC_NO_RESPONDERS", String(err));
      assert.match(err!.message, /took the call within 5 s/);
      assert.ok(swallowed >= 1);
      assert.ok(Date.now() - t0 < 30_000, "well before the call's deadline");
    } finally {
      await nc.close();
    }
  });

  it("a deadline and a cancel made on hub C reach the server on hub A", async () => {
    const server = await ChildClient.start(hubs[0]!.urls[0]!, "hanger");
    try {
      await server.cmd("serve", { key: "cl.hang", hex: "hang" });
      const caller = await client(hubs[2]!, "impatient");
      const err = await rejection(caller.request("cl.hang", "deadline", { timeoutMs: 300 }));
      assert.ok(isEzipcError(err) && err.code === "EZIPC_TIMEOUT", String(err));
      await server.event((e) => e.event === "aborted" && e.payload === "deadline", 10_000, "the deadline");
      const ac = new AbortController();
      const call = caller.request("cl.hang", "cancel", { signal: ac.signal, timeoutMs: 0 });
      await server.event((e) => e.event === "called" && e.payload === "cancel", 10_000, "the call");
      ac.abort();
      const e2 = await rejection(call);
      assert.ok(isEzipcError(e2) && e2.code === "EZIPC_CANCELLED", String(e2));
      await server.event((e) => e.event === "aborted" && e.payload === "cancel", 10_000, "the cancel");
    } finally {
      await server.kill();
    }
  });

  it("a server process killed with -9 on hub A: the call on hub C ends with EZIPC_SERVER_GONE at once", async () => {
    const server = await ChildClient.start(hubs[0]!.urls[0]!, "doomed-server");
    await server.cmd("serve", { key: "cl.doomed", hex: "hang" });
    const caller = await client(hubs[2]!, "waiting");
    const call = rejection(caller.request("cl.doomed", "x", { timeoutMs: 60_000 }));
    await server.event((e) => e.event === "called", 10_000, "the call");
    const t0 = Date.now();
    await server.kill();
    const err = await within(call, 10_000, "the call ends");
    assert.ok(isEzipcError(err) && err.code === "EZIPC_SERVER_GONE", String(err));
    assert.ok(Date.now() - t0 < 5_000, `promptly (${Date.now() - t0} ms)`);
  });

  it("the server's whole hub killed with -9: the call on hub C ends with EZIPC_SERVER_GONE after the hub timeout", async () => {
    const { child, url } = await hubProcess(nats.urls[1]!, [
      "--cluster-heartbeat-ms",
      String(HEARTBEAT),
      "--cluster-hub-timeout-ms",
      String(HUB_TIMEOUT),
    ]);
    try {
      const server = await connect(url, { name: "on-doomed-hub", reconnect: false });
      let called: () => void = () => {};
      const calledP = new Promise<void>((r) => {
        called = r;
      });
      await server.serve("cl.hubdeath", () => {
        called();
        return new Promise<string>(() => {});
      });
      const caller = await client(hubs[2]!, "waiting2");
      const call = rejection(caller.request("cl.hubdeath", "x", { timeoutMs: 60_000 }));
      await within(calledP, 10_000, "the call reached the server");
      const t0 = Date.now();
      child.kill("SIGKILL");
      await exited(child);
      server.close().catch(() => {});
      const err = await within(call, 20_000, "the call ends");
      assert.ok(isEzipcError(err) && err.code === "EZIPC_SERVER_GONE", String(err));
      assert.ok(Date.now() - t0 < HUB_TIMEOUT + 5_000, `within the hub timeout (${Date.now() - t0} ms)`);
    } finally {
      if (child.exitCode === null) child.kill("SIGKILL");
    }
  });
});
