import assert from "node:assert/strict";
import { setMaxListeners } from "node:events";
import { after, before, describe, it } from "node:test";
import { type Connection, connect, dial, EzipcError, Hub, type HubClient } from "../../src/index.js";
import { nextEvent, within } from "../helpers.js";
import { ChildClient } from "../hub/child-client.js";
import { proto, rawClient } from "../hub/raw-client.js";

describe("RPC", () => {
  let hub: Hub;
  let url: string;
  let server: HubClient;
  let caller: HubClient;
  before(async () => {
    hub = await Hub.listen({ urls: ["tcp://127.0.0.1:0"], maxCallsPerClient: 50 });
    url = hub.urls[0]!;
    server = await connect(url, { name: "server" });
    caller = await connect(url, { name: "caller" });
    await server.serve("ping", () => "pong");
  });
  after(async () => {
    await server.close();
    await caller.close();
    await hub.close();
  });

  it("request and reply; errors reach the caller with their code", async () => {
    await server.serve("math.add", (req) => {
      const { a, b } = req.json<{ a: number; b: number }>();
      assert.match(req.caller, /^caller#/);
      assert.equal(req.headers.unit, "m");
      return JSON.stringify(a + b);
    });
    const r = await caller.request("math.add", JSON.stringify({ a: 2, b: 40 }), { headers: { unit: "m" } });
    assert.equal(r.json(), 42);
    await server.serve("fails", (req) => {
      if (req.text() === "coded") throw new EzipcError("EZIPC_KEY_NOT_FOUND", "no such thing");
      throw new Error("kaput");
    });
    await assert.rejects(caller.request("fails", "plain"), { code: "EZIPC_REMOTE", message: "kaput" });
    await assert.rejects(caller.request("fails", "coded"), {
      code: "EZIPC_KEY_NOT_FOUND",
      message: "no such thing",
    });
  });

  it("request headers over the wire's limits, or not strings, fail that request with EZIPC_ENCODE; the caller goes on", async () => {
    for (const headers of [
      { big: "x".repeat(4097) },
      { ["k".repeat(257)]: "v" },
      Object.fromEntries(Array.from({ length: 65 }, (_, i) => [`h${i}`, "v"])),
      { n: 1 as unknown as string }, // (was sent as "1")
    ]) {
      await assert.rejects(caller.request("ping", "x", { headers }), { code: "EZIPC_ENCODE" });
      await assert.rejects(caller.requestStream("ping", "x", { headers }), { code: "EZIPC_ENCODE" });
    }
    assert.equal((await caller.request("ping", "x", { headers: { ok: "x".repeat(4096) } })).text(), "pong");
  });

  it("timeoutMs: the caller's API takes 0..2^31-1 (RangeError otherwise); a longer one from the wire is not an instant timeout", async () => {
    for (const timeoutMs of [-1, 1.5, 2 ** 31, Number.NaN]) {
      await assert.rejects(caller.request("ping", "x", { timeoutMs }), RangeError, `request ${timeoutMs}`);
      await assert.rejects(
        caller.requestStream("ping", "x", { timeoutMs }),
        RangeError,
        `stream ${timeoutMs}`,
      );
    }
    // A raw client sends a call whose deadline (a u32 on the wire) is longer than a timer takes: the handler
    // must not see it as passed (a timer past 2^31-1 ms fires at once).
    await server.serve("patient", async (req) => {
      await new Promise((r) => setTimeout(r, 50));
      return req.signal.aborted ? "aborted" : "in time";
    });
    const raw = await rawClient(url, "long-deadline");
    try {
      raw.conn.send(
        proto.encode("request", {
          rid: 7,
          topic: "patient",
          kind: 0,
          timeoutMs: 3_000_000_000,
          credit: 0,
          headers: [],
          payload: Buffer.from("x"),
        }),
      );
      let reply: { type: string; body: { payload?: Uint8Array } };
      do reply = (await raw.next()) as typeof reply;
      while (reply.type !== "end");
      assert.equal(Buffer.from(reply.body.payload!).toString(), "in time");
    } finally {
      raw.conn.close();
    }
  });

  it("no server: EZIPC_NO_RESPONDERS at once, not at the timeout", async () => {
    const t0 = Date.now();
    await assert.rejects(caller.request("nobody.home", "x", { timeoutMs: 30_000 }), {
      code: "EZIPC_NO_RESPONDERS",
    });
    assert.ok(Date.now() - t0 < 5_000);
  });

  it("the deadline and cancellation reach the handler as an AbortSignal", async () => {
    const aborted: string[] = [];
    await server.serve("hang", (req) => {
      return new Promise<string>((_, reject) =>
        req.signal.addEventListener("abort", () => {
          aborted.push((req.signal.reason as EzipcError).code);
          reject(req.signal.reason);
        }),
      );
    });
    await assert.rejects(caller.request("hang", "", { timeoutMs: 50 }), { code: "EZIPC_TIMEOUT" });
    const ac = new AbortController();
    const p = caller.request("hang", "", { signal: ac.signal, timeoutMs: 0 });
    setImmediate(() => ac.abort());
    await assert.rejects(p, { code: "EZIPC_CANCELLED" });
    await within(
      (async () => {
        while (aborted.length < 2) await new Promise((r) => setImmediate(r));
      })(),
      5_000,
      "both handlers aborted",
    );
    assert.equal(aborted.length, 2);
    assert.equal(hub.stats().callsInFlight, 0);
  });

  it("a handler that reads req.signal only after its deadline passed sees it aborted, with the reason", async () => {
    // The signal is made lazily, when first read: an abort that came before must still show on it. The
    // server's deadline timer (50 ms, set when the call arrived) fires before the handler's own 200 ms timer.
    let resolveSeen!: (v: { aborted: boolean; code: string; text: string }) => void;
    const seen = new Promise<{ aborted: boolean; code: string; text: string }>((resolve) => {
      resolveSeen = resolve;
    });
    await server.serve("late.look", async (req) => {
      await new Promise((r) => setTimeout(r, 200));
      resolveSeen({
        aborted: req.signal.aborted,
        code: (req.signal.reason as EzipcError)?.code,
        text: req.text(),
      });
      return "";
    });
    await assert.rejects(caller.request("late.look", "hello", { timeoutMs: 50 }), { code: "EZIPC_TIMEOUT" });
    const r = await within(seen, 5_000, "the handler looked");
    assert.deepEqual(r, { aborted: true, code: "EZIPC_TIMEOUT", text: "hello" });
  });
  it("calls in flight per client are bounded", async () => {
    await server.serve(
      "park",
      (req) => new Promise<string>((r) => req.signal.addEventListener("abort", () => r(""))),
    );
    const ac = new AbortController();
    setMaxListeners(100, ac.signal); // one signal for 50 calls
    const parked = Array.from({ length: 50 }, () =>
      caller.request("park", "", { signal: ac.signal, timeoutMs: 0 }).catch((e) => e),
    );
    await assert.rejects(caller.request("park", ""), { code: "EZIPC_TOO_MANY_REQUESTS" });
    ac.abort();
    for (const e of await Promise.all(parked)) assert.equal((e as EzipcError).code, "EZIPC_CANCELLED");
  });

  it("streaming: chunks in order, the end, and the handler's error", async () => {
    await server.serve("count", async function* (req) {
      const n = Number(req.text());
      for (let i = 0; i < n; i++) yield String(i);
      if (n === 3) throw new Error("three is bad");
    });
    const got: string[] = [];
    for await (const c of await caller.requestStream("count", "100")) got.push(Buffer.from(c).toString());
    assert.deepEqual(
      got,
      Array.from({ length: 100 }, (_, i) => String(i)),
    );
    const bad: string[] = [];
    await assert.rejects(
      (async () => {
        for await (const c of await caller.requestStream("count", "3")) bad.push(Buffer.from(c).toString());
      })(),
      { code: "EZIPC_REMOTE", message: "three is bad" },
    );
    assert.deepEqual(bad, ["0", "1", "2"]);
  });

  it("streaming: a slow consumer pauses the producer; cancel stops the handler within 100 ms", async () => {
    let produced = 0;
    let abortedAt = 0;
    await server.serve("firehose", async function* (req) {
      req.signal.addEventListener("abort", () => {
        abortedAt = performance.now();
      });
      for (let i = 0; i < 1_000_000; i++) {
        produced++;
        yield Buffer.alloc(64, i & 0xff);
      }
    });
    const stream = await caller.requestStream("firehose", "", { prefetch: 8 });
    const it = stream[Symbol.asyncIterator]();
    for (let i = 0; i < 5; i++) await it.next();
    await caller.request("ping"); // a round trip: credits settle
    assert.ok(produced <= 5 + 8 + 1, `producer paused at ${produced} chunks`);
    const cancelAt = performance.now();
    stream.cancel();
    await within(
      (async () => {
        while (abortedAt === 0) await new Promise((r) => setImmediate(r));
      })(),
      5_000,
      "the handler to see the cancel",
    );
    assert.ok(
      abortedAt - cancelAt < 100,
      `handler aborted ${(abortedAt - cancelAt).toFixed(1)} ms after cancel`,
    );
    const after = produced;
    await caller.request("ping");
    assert.ok(produced <= after + 1, "no more chunks produced after the cancel");
  });

  it("sessions: ordered both ways, flow control, close from either side", async () => {
    const acceptorSide: string[] = [];
    let release: () => void = () => {};
    const gate = new Promise<void>((r) => {
      release = r;
    });
    await server.acceptSessions("chat", async (s) => {
      assert.match(s.peer, /^caller#/);
      await gate; // does not read until released
      for await (const m of s) {
        const text = Buffer.from(m).toString();
        acceptorSide.push(text);
        if (text === "bye") {
          await s.send("ciao");
          s.close();
          return;
        }
        await s.send(`echo ${text}`);
      }
    });
    const s = await caller.openSession("chat", { prefetch: 4 });
    // The acceptor is not reading: its window (16) fills, then send() waits.
    let sent = 0;
    const sending = (async () => {
      for (let i = 0; i < 20; i++) {
        await s.send(`m${i}`);
        sent++;
      }
    })();
    await caller.request("ping");
    assert.equal(sent, 16, "sending stops at the reader's window");
    release();
    // Read the echoes while sending (each side's window is small: both must read).
    const it = s[Symbol.asyncIterator]();
    for (let i = 0; i < 20; i++) {
      const r = await within(it.next(), 5_000, `echo m${i}`);
      assert.equal(Buffer.from(r.value as Uint8Array).toString(), `echo m${i}`);
    }
    await within(sending, 5_000, "all 20 sent once the reader reads");
    await s.send("bye");
    assert.equal(Buffer.from((await it.next()).value as Uint8Array).toString(), "ciao");
    assert.equal((await within(it.next(), 5_000, "the end")).done, true, "closed by the acceptor");
    assert.equal(await s.closed(), null);
    assert.deepEqual(acceptorSide.at(-1), "bye");
    await assert.rejects(caller.openSession("math.add"), { code: "EZIPC_BAD_REQUEST" });
    await assert.rejects(caller.openSession("no.sessions.here"), { code: "EZIPC_NO_RESPONDERS" });
  });

  it("a server that streams beyond its credit ends the call on both sides with EZIPC_FLOW", async () => {
    const raw = await rawClient(url, "greedy");
    try {
      raw.conn.send(proto.encode("serve", { rid: 1, topic: "greedy", host: "", direct: "" }));
      assert.equal((await raw.next()).type, "ok");
      const stream = await caller.requestStream("greedy", "", { prefetch: 2 });
      const call = await raw.next();
      assert.equal(call.type, "call");
      assert.equal(call.body.credit, 2);
      for (let i = 0; i < 5; i++) {
        raw.conn.send(
          proto.encode("chunk", { side: 1, id: call.body.cid as number, payload: Buffer.from([i]) }),
        );
      }
      const got: number[] = [];
      await assert.rejects(
        within(
          (async () => {
            for await (const c of stream) got.push(c[0]!);
          })(),
          5_000,
          "the stream to end",
        ),
        { code: "EZIPC_FLOW" },
      );
      assert.deepEqual(got, [0, 1], "only the credited chunks were forwarded");
      const end = await raw.next();
      assert.deepEqual([end.type, end.body.code], ["end", "EZIPC_FLOW"]);
      assert.equal(hub.stats().callsInFlight, 0);
    } finally {
      await raw.conn.close();
    }
  });

  it("a session's peer dying is reported", async () => {
    const acceptor = await connect(url, { name: "mortal", reconnect: false });
    let opened: () => void = () => {};
    const isOpen = new Promise<void>((r) => {
      opened = r;
    });
    await acceptor.acceptSessions("fragile", () => opened());
    const s = await caller.openSession("fragile");
    await isOpen;
    (acceptor as unknown as { conn: Connection }).conn.destroy();
    const err = await within(s.closed(), 5_000, "the session to end");
    assert.equal(err?.code, "EZIPC_SERVER_GONE");
    await acceptor.close();
  });
});

describe("RPC and deadman across processes", () => {
  let hub: Hub;
  let url: string;
  before(async () => {
    hub = await Hub.listen({
      urls: ["tcp://127.0.0.1:0"],
      heartbeatIntervalMs: 100,
      heartbeatTimeoutMs: 400,
    });
    url = hub.urls[0]!;
  });
  after(async () => {
    await hub.close();
  });

  it("3 servers share requests; one killed mid-request fails it at once with EZIPC_SERVER_GONE", async () => {
    const servers = [
      await ChildClient.start(url, "s0"),
      await ChildClient.start(url, "s1"),
      await ChildClient.start(url, "s2"),
    ];
    const c = await connect(url, { name: "rpc-caller" });
    try {
      for (const s of servers) await s.cmd("serve", { key: "work" });
      const replies = await Promise.all(Array.from({ length: 30 }, (_, i) => c.request("work", `job${i}`)));
      const counts = new Map<string, number>();
      for (const r of replies) counts.set(r.text(), (counts.get(r.text()) ?? 0) + 1);
      assert.deepEqual([...counts.entries()].sort(), [
        ["s0", 10],
        ["s1", 10],
        ["s2", 10],
      ]);

      await servers[0]!.cmd("serve", { key: "stuck", hex: "hang" });
      const t0 = Date.now();
      const pending = c.request("stuck", "x", { timeoutMs: 30_000 });
      await servers[0]!.event(
        (e) => e.event === "called" && e.topic === "stuck",
        5_000,
        "the call to arrive",
      );
      const failed = assert.rejects(pending, { code: "EZIPC_SERVER_GONE" });
      await servers[0]!.kill("SIGKILL");
      await failed;
      assert.ok(Date.now() - t0 < 10_000, "promptly, not at the timeout");
      const after = await Promise.all(Array.from({ length: 4 }, () => c.request("work", "more")));
      assert.deepEqual(new Set(after.map((r) => r.text())), new Set(["s1", "s2"]));
    } finally {
      await c.close();
      for (const s of servers) await s.exit();
    }
  });

  it("deadman: take, tryTake, waits, holder identity; released on kill -9 and when heartbeats stop", async () => {
    const watcher = await connect(url, { name: "watcher" });
    const holder = await ChildClient.start(url, "holder");
    const stopped = await ChildClient.start(url, "frozen");
    try {
      const d = watcher.deadman("leader");
      assert.equal(await d.isTaken(), false);
      const taken = d.waitTaken();
      assert.deepEqual(await holder.cmd("take", { key: "leader" }), {
        mine: true,
        holder: (await taken).holder,
      });
      const first = await d.state();
      assert.match(first.holder, /^holder#/);
      assert.equal(await d.tryTake(), false);
      const ac = new AbortController();
      const cancelledTake = d.take({ signal: ac.signal });
      ac.abort();
      await assert.rejects(within(cancelledTake, 5_000, "the cancelled take"), { code: "EZIPC_CANCELLED" });

      const released = d.waitReleased();
      await holder.kill("SIGKILL");
      assert.equal((await within(released, 5_000, "release on kill -9")).taken, false);

      // A holder whose process stops (no heartbeats) loses the token after heartbeatTimeoutMs.
      // Each take's epoch is greater than the last, though the token went idle in between (a fencing
      // number: the holder killed above must not share the next holder's).
      await stopped.cmd("take", { key: "leader" });
      const second = await d.state();
      assert.ok(second.epoch > first.epoch, `${second.epoch} after ${first.epoch}`);
      const released2 = d.waitReleased();
      stopped.child.kill("SIGSTOP");
      try {
        assert.equal((await within(released2, 5_000, "release when heartbeats stop")).taken, false);
        assert.equal(await d.tryTake(), true);
        assert.equal(d.held, true);
        assert.ok((await d.state()).epoch > second.epoch);
        await d.release();
        assert.equal(await d.isTaken(), false);
      } finally {
        stopped.child.kill("SIGKILL");
      }
    } finally {
      await watcher.close();
      await holder.exit();
      await stopped.exitedQuietly();
    }
  });
});

describe("direct RPC: calls skip the hub once it named the servers", () => {
  let hub: Hub;
  let url: string;
  before(async () => {
    hub = await Hub.listen({ urls: ["tcp://127.0.0.1:0"] });
    url = hub.urls[0]!;
  });
  after(async () => {
    await hub.close();
  });

  /** Resolves when `c` reports `servers` direct routes for `topic`. */
  function routes(c: HubClient, topic: string, servers: number): Promise<void> {
    return within(
      new Promise<void>((resolve) => {
        const on = (t: string, n: number) => {
          if (t !== topic || n !== servers) return;
          c.off("directRoutes", on);
          resolve();
        };
        c.on("directRoutes", on);
      }),
      5_000,
      `${servers} direct routes for ${topic}`,
    );
  }

  it("round robin over 3 server processes without the hub; deadline reaches the handler; kill -9 fails a call at once", async () => {
    const servers = [
      await ChildClient.start(url, "d0"),
      await ChildClient.start(url, "d1"),
      await ChildClient.start(url, "d2"),
    ];
    const c = await connect(url, { name: "direct-caller" });
    try {
      for (const s of servers) await s.cmd("serve", { key: "dwork" });
      await servers[0]!.cmd("serve", { key: "dstuck", hex: "hang" });
      const workRoutes = routes(c, "dwork", 3);
      assert.ok(["d0", "d1", "d2"].includes((await c.request("dwork", "first")).text())); // through the hub
      await workRoutes;
      const hubCalls = hub.stats().calls;
      const replies = await Promise.all(Array.from({ length: 30 }, (_, i) => c.request("dwork", `job${i}`)));
      const counts = new Map<string, number>();
      for (const r of replies) counts.set(r.text(), (counts.get(r.text()) ?? 0) + 1);
      assert.deepEqual([...counts.entries()].sort(), [
        ["d0", 10],
        ["d1", 10],
        ["d2", 10],
      ]);
      assert.equal(hub.stats().calls, hubCalls, "no call went through the hub");

      const stuckRoutes = routes(c, "dstuck", 1);
      await assert.rejects(c.request("dstuck", "via hub", { timeoutMs: 100 }), { code: "EZIPC_TIMEOUT" });
      await stuckRoutes;
      const direct = hub.stats().calls;
      // The deadline of a direct call reaches the handler's signal.
      await assert.rejects(c.request("dstuck", "late", { timeoutMs: 150 }), { code: "EZIPC_TIMEOUT" });
      await servers[0]!.event((e) => e.event === "aborted" && e.payload === "late", 5_000, "the abort");
      // A direct call whose server dies fails at once.
      const t0 = Date.now();
      const pending = c.request("dstuck", "doomed", { timeoutMs: 30_000 });
      await servers[0]!.event((e) => e.event === "called" && e.payload === "doomed", 5_000, "the call");
      const failed = assert.rejects(pending, { code: "EZIPC_SERVER_GONE" });
      const twoLeft = routes(c, "dwork", 2);
      await servers[0]!.kill("SIGKILL");
      await failed;
      assert.ok(Date.now() - t0 < 5_000, "promptly, not at the timeout");
      assert.equal(hub.stats().calls, direct, "those calls went direct");
      // The hub tells the caller that the pool shrank; calls go on to the others, still direct.
      await twoLeft;
      const after = await Promise.all(Array.from({ length: 4 }, () => c.request("dwork", "more")));
      assert.deepEqual(new Set(after.map((r) => r.text())), new Set(["d1", "d2"]));
      assert.equal(hub.stats().calls, direct);
    } finally {
      await c.close();
      for (const s of servers) await s.exit();
    }
  });

  it("a pool with a server that takes no direct calls is called through the hub; directRpc: false opts out", async () => {
    const direct = await connect(url, { name: "with-direct" });
    const plain = await connect(url, { name: "hub-only", directRpc: false });
    const c = await connect(url, { name: "mixed-caller" });
    const d = await connect(url, { name: "plain-caller", directRpc: false });
    try {
      await direct.serve("mixed", () => "direct");
      await plain.serve("mixed", () => "plain");
      await direct.serve("solo", () => "solo");
      const events: unknown[] = [];
      for (const x of [c, d]) x.on("directRoutes", (...e) => events.push(e));
      const before = hub.stats().calls;
      const got = new Set<string>();
      for (let i = 0; i < 6; i++) got.add((await c.request("mixed", "x")).text());
      for (let i = 0; i < 3; i++) assert.equal((await d.request("solo", "x")).text(), "solo");
      assert.deepEqual(got, new Set(["direct", "plain"]));
      assert.equal(hub.stats().calls, before + 9, "every call went through the hub");
      assert.deepEqual(events, [], "no direct route was used");
    } finally {
      await Promise.all([direct.close(), plain.close(), c.close(), d.close()]);
    }
  });

  it("a hostile peer on a server's direct socket loses only its own connection", async () => {
    const server = await connect(url, { name: "direct-server" });
    const caller = await connect(url, { name: "caller" });
    const raw = await rawClient(url);
    try {
      await server.serve("guarded", (req) => `ok ${req.text()}`);
      raw.conn.send(proto.encode("routes", { rid: 9, topic: "guarded" }));
      const list = await raw.next();
      assert.equal(list.type, "routeList");
      const [route] = list.body.routes as { server: string; url: string }[];
      assert.match(route!.server, /^direct-server#/);
      assert.match(route!.url, /^unix:\/\//);
      const hostile = await dial(route!.url);
      const closed = hostile.closed;
      hostile.send(Buffer.from([0xff, 0xff, 1, 2, 3]));
      assert.ok((await within(closed, 5_000, "the hostile connection to close")).reason);
      // A call that claims a kind the direct path does not take is refused, the connection stays.
      const polite = await dial(route!.url);
      polite.send(
        proto.encode("call", {
          cid: 1,
          topic: "guarded",
          kind: 1,
          timeoutMs: 0,
          credit: 4,
          caller: "me",
          headers: [],
          payload: new Uint8Array(0),
        }),
      );
      const [reply] = await within(nextEvent<[Buffer]>(polite, "message"), 5_000, "the refusal");
      const end = proto.decode(reply) as { type: string; body: { code: string } };
      assert.deepEqual([end.type, end.body.code], ["end", "EZIPC_BAD_REQUEST"]);
      await polite.close();
      assert.equal((await caller.request("guarded", "still")).text(), "ok still");
    } finally {
      raw.conn.destroy();
      await Promise.all([server.close(), caller.close()]);
    }
  });
});
