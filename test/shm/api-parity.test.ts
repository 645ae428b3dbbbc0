/**
 * A program switches between a hub and shared memory by changing the URL: the same call fails (or
 * succeeds) the same way on both. Each case here was once different on one of them.
 */
import assert from "node:assert/strict";
import { rmSync } from "node:fs";
import { after, before, describe, it } from "node:test";
import { connect, Hub, isEzipcError, type MessagingClient } from "../../src/index.js";
import { until, within } from "../helpers.js";

for (const backend of ["hub", "shm"] as const)
  describe(`the same API answers the same way (${backend})`, () => {
    let hub: Hub | undefined;
    let a: MessagingClient;
    let b: MessagingClient;
    const ns = `test-parity-${process.pid}`;
    let url = "";
    before(async () => {
      url = `shm:///${ns}`;
      if (backend === "hub") {
        hub = await Hub.listen({ urls: ["tcp://127.0.0.1:0"] });
        url = hub.urls[0]!;
      }
      a = await connect(url as `tcp:${string}`, { name: "a" });
      b = await connect(url as `tcp:${string}`, { name: "b" });
    });
    after(async () => {
      await a.close();
      await b.close();
      await hub?.close();
      rmSync(`/dev/shm/ezipc.${ns}`, { recursive: true, force: true });
    });

    it("a stream nobody serves is returned, and its iterator throws EZIPC_NO_RESPONDERS", async () => {
      const stream = await a.requestStream("nobody.streams", "x", { timeoutMs: 30_000 });
      await assert.rejects(
        async () => {
          for await (const _ of stream) assert.fail("no chunk can come");
        },
        (e) => isEzipcError(e, "EZIPC_NO_RESPONDERS"),
      );
      assert.equal((await stream.closed())?.code, "EZIPC_NO_RESPONDERS");
      stream.cancel(); // (ended already: nothing happens)
      // Its options are checked all the same.
      await assert.rejects(a.requestStream("nobody.streams", "x", { prefetch: 0 }), RangeError);
    });

    it("a handler that returns one value answers a stream with it as the only chunk; nothing: no chunk", async () => {
      await b.serve("parity.one", (req) => (req.text() === "none" ? undefined : `one ${req.text()}`));
      const chunks = async (payload: string) => {
        const out: string[] = [];
        for await (const c of await a.requestStream("parity.one", payload))
          out.push(Buffer.from(c).toString());
        return out;
      };
      assert.deepEqual(await chunks("x"), ["one x"]);
      assert.deepEqual(await chunks("none"), []);
      assert.equal((await a.request("parity.one", "y")).text(), "one y");
    });

    it("taking a deadman token the client holds is EZIPC_BAD_REQUEST (take and tryTake); it stays held", async () => {
      const d = a.deadman("parity.token");
      assert.equal((await d.take()).mine, true);
      const again = (e: unknown) =>
        isEzipcError(e, "EZIPC_BAD_REQUEST") && /already holds it/.test(e.message);
      await assert.rejects(d.take(), again);
      await assert.rejects(d.tryTake(), again);
      assert.equal(d.held, true);
      assert.equal(await b.deadman("parity.token").tryTake(), false);
      await d.release();
      assert.equal(await b.deadman("parity.token").tryTake(), true);
    });

    it("a pointer knows the version its own write made, whatever its policy (request keeps no copy)", async () => {
      for (const policy of ["request", "lazy", "poll"] as const) {
        const p = await a.allocate(`parity.v.${policy}`, 4, policy);
        assert.equal(p.version, 1);
        assert.equal(await p.write(Buffer.from("abcd")), 2);
        assert.equal(p.version, 2, policy);
        // Another client writes: a failed compare-and-write names the version it met, and the pointer knows it.
        const q = await b.watch(`parity.v.${policy}`, "request");
        assert.equal(await q!.write(Buffer.from("wxyz")), 3);
        assert.deepEqual(await p.compareAndWrite(2, Buffer.from("nope")), { ok: false, version: 3 });
        assert.equal(p.version, 3, policy);
        q!.dispose();
        p.dispose();
      }
    });

    it("topics() counts each subscription, also several of one process; a closed one no longer", async () => {
      const count = async () => (await a.topics("parity.subs"))[0]?.subscribers;
      await a.publish("parity.subs", "x");
      const s1 = await a.subscribe("parity.subs");
      const s2 = await a.subscribe("parity.subs", { iter: "newest" });
      const s3 = await b.subscribe("parity.subs");
      assert.equal(await count(), 3);
      s2.unsubscribe();
      assert.equal(await count(), 2);
      s1.unsubscribe();
      assert.equal(await count(), 1);
      s3.unsubscribe(); // (b's: through a hub, a's listing may be answered before b's unsubscribe arrives)
      await until(async () => (await count()) === 0, "no subscriber left");
    });

    it("close() sends the fire-and-forget publishes made before it, and ends the client's subscriptions", async () => {
      const got: string[] = [];
      const all = new Promise<void>((resolve) => {
        void b.subscribe("parity.last", {}, (m) => {
          got.push(m.text());
          if (got.length === 100) resolve();
        });
      });
      await b.topics("parity.last"); // (through a hub: the subscription is in place)
      const c = await connect(url as `tcp:${string}`, { name: "c" });
      const own = (await c.subscribe("parity.own"))[Symbol.asyncIterator]();
      const ended = own.next();
      for (let i = 0; i < 100; i++) c.publishAndForget("parity.last", `m${i}`);
      await c.close();
      assert.deepEqual(await within(ended, 5_000, "the closed client's subscription to end"), {
        done: true,
        value: undefined,
      });
      await within(all, 5_000, "the 100 messages published before close()");
      assert.deepEqual(
        got,
        Array.from({ length: 100 }, (_, i) => `m${i}`),
      );
    });

    it("after close(), every operation fails with EZIPC_CONNECTION_CLOSED (and creates nothing)", async () => {
      const c = await connect(url as `tcp:${string}`, { name: "closed" });
      await c.close();
      const closed = (e: unknown) => isEzipcError(e, "EZIPC_CONNECTION_CLOSED");
      const calls: [string, () => unknown][] = [
        ["publish", () => c.publish("parity.after", "x")],
        ["publishAndForget", () => c.publishAndForget("parity.after", "x")],
        ["drain", () => c.drain()],
        ["subscribe", () => c.subscribe("parity.after")],
        ["topics", () => c.topics()],
        ["configureTopic", () => c.configureTopic("parity.after.t", { maxCount: 5 })],
        ["serve", () => c.serve("parity.after", () => "x")],
        ["request", () => c.request("parity.after", "x")],
        ["requestStream", () => c.requestStream("parity.after", "x")],
        ["deadman take", () => c.deadman("parity.after").take()],
        ["allocate", () => c.allocate("parity.after.k", 4, "poll")],
        ["watch", () => c.watch("parity.after.k", "poll")],
        ["config", () => c.config("parity.after.c")],
        ["list", () => c.list()],
        ["peek", () => c.peek("parity.after.k")],
        ["info", () => c.info("parity.after.k")],
        ["exists", () => c.exists("parity.after.k")],
      ];
      for (const [name, call] of calls) {
        await assert.rejects(async () => call(), closed, name);
      }
      assert.equal(await a.exists("parity.after.k"), false);
      assert.equal(await a.exists("parity.after.c"), false);
      assert.deepEqual(await a.topics("parity.after.t"), []);
    });

    it("a client name a hub refuses (too long, control characters) is refused with EZIPC_HANDSHAKE", async () => {
      for (const name of ["n".repeat(256), "a\nb", "a\u202eb"]) {
        await assert.rejects(
          connect(url as `tcp:${string}`, { name }),
          (e) => isEzipcError(e, "EZIPC_HANDSHAKE"),
          JSON.stringify(name),
        );
      }
      const ok = await connect(url as `tcp:${string}`, { name: "é✓ a#b" });
      await ok.close();
    });

    it("a config value nested deeper than 256 levels is EZIPC_BAD_REQUEST (write and merge patch); 256 are taken", async () => {
      const cfg = await a.config("parity.deep", { persistent: false });
      const nest = (n: number): unknown => (n === 0 ? 1 : [nest(n - 1)]);
      for (const op of [() => cfg.write(nest(300)), () => cfg.mergePatch({ x: nest(300) })]) {
        await assert.rejects(
          op(),
          (e) => isEzipcError(e, "EZIPC_BAD_REQUEST") && /deeper than 256/.test(e.message),
        );
      }
      await cfg.write(nest(255)); // (255 arrays inside the patch's object: 256 levels)
      await cfg.mergePatch({ x: nest(255) });
      assert.deepEqual(((await cfg.read()) as { x: unknown }).x, nest(255));
      cfg.dispose();
    });

    it("a topic bound out of range is a RangeError naming it, before anything is sent", async () => {
      for (const [k, v] of [
        ["maxCount", -1],
        ["maxCount", 2 ** 32],
        ["maxBytes", 1.5],
        ["maxBytes", Number.NaN],
      ] as const) {
        await assert.rejects(a.configureTopic("parity.bounds", { [k]: v }), (e) => {
          assert.ok(e instanceof RangeError, `${k} ${v}: ${String(e)}`);
          assert.match(e.message, new RegExp(`^${k} must be`));
          return true;
        });
      }
      assert.deepEqual(await a.topics("parity.bounds"), []);
    });
  });
