// Hub-wide bounds: whatever one peer or many do (connections, subscriptions, wildcard subscriptions over
// many topics, pointers, calls, served topics), the hub's memory has a ceiling, and going over it fails
// only the operation (or connection) that would, with a coded error; what was freed can be taken again.
import assert from "node:assert/strict";
import net from "node:net";
import { describe, it } from "node:test";
import { type CloseInfo, connect, type HubClient } from "../../src/index.js";
import { until, within } from "../helpers.js";
import { withHub } from "./hubs.js";
import { proto, rawClient } from "./raw-client.js";

/** A plain socket to `url` (tcp://HOST:PORT), open (it counts as a connection until it says hello). */
async function rawSocket(url: string): Promise<net.Socket> {
  const u = new URL(url);
  const s = net.connect(Number(u.port), u.hostname);
  await new Promise<void>((resolve, reject) => {
    s.once("connect", resolve);
    s.once("error", reject);
  });
  s.on("error", () => {});
  s.resume(); // (what the hub sends is dropped; its close is seen)
  return s;
}

/**
 * Resolves once `op` succeeds, retrying it while it fails with `code` (what frees its place has no reply,
 * so the hub applies it a moment later); any other error fails.
 */
async function untilAllowed(op: () => Promise<unknown>, code: string, what: string): Promise<void> {
  await until(async () => {
    try {
      await op();
      return true;
    } catch (e) {
      if ((e as { code?: string }).code !== code) throw e;
      return false;
    }
  }, what);
}

async function closeAll(clients: HubClient[]): Promise<void> {
  await Promise.all(clients.map((c) => c.close()));
}

describe("hub-wide limits", () => {
  it("maxIncompleteFrameBytes: connections that each begin a large frame and never end it are cut, largest first; a client's publish goes on", async () => {
    await withHub({ maxIncompleteFrameBytes: 1024 * 1024 }, async (hub, url) => {
      const sub = await connect(url, { name: "sub" });
      const got: number[] = [];
      await sub.subscribe("big", {}, (m) => {
        got.push(m.payload.length);
      });
      // Each socket announces a 512 KiB frame (before any hello) and sends 1 KiB of it.
      const holders: net.Socket[] = [];
      const closed: Promise<void>[] = [];
      for (let i = 0; i < 3; i++) {
        const s = await rawSocket(url);
        closed.push(new Promise<void>((resolve) => s.once("close", () => resolve())));
        const head = Buffer.alloc(4);
        head.writeUInt32BE(512 * 1024);
        s.write(Buffer.concat([head, Buffer.alloc(1024)]));
        holders.push(s);
      }
      // Two fit (1 MiB); the third does not, and no one holds more than it: that one is cut.
      await within(Promise.race(closed), 5_000, "a holder cut");
      await until(() => hub.stats().framesTooLarge === 1, "one connection cut");
      // A 200 KiB publish (split across reads) needs room: a holder of a larger frame is cut for it.
      const pub = await connect(url, { name: "pub" });
      await pub.publish("big", Buffer.alloc(200 * 1024, 1));
      await until(() => got.length === 1, "the publish delivered");
      assert.equal(got[0], 200 * 1024);
      assert.equal(hub.stats().framesTooLarge, 2, "one more holder cut to make room");
      for (const s of holders) s.destroy();
      await closeAll([sub, pub]);
    });
  });

  it("maxTotalQueuedBytes: a server that takes calls without reading them is cut once all queues pass the bound, long before its own 64 MiB", async () => {
    await withHub({ maxTotalQueuedBytes: 4 * 1024 * 1024 }, async (hub, url) => {
      const { conn: server, next } = await rawClient(url, "deaf-server");
      server.send(proto.encode("serve", { rid: 1, topic: "deaf", host: "", direct: "" }));
      assert.equal((await next()).type, "ok");
      server.pause(); // reads nothing more: what the hub sends it queues up
      const closed = new Promise<CloseInfo>((resolve) => server.once("close", resolve));
      const caller = await connect(url, { name: "caller", requestTimeoutMs: 10_000 });
      const calls = Array.from({ length: 40 }, () =>
        caller.request("deaf", Buffer.alloc(1024 * 1024)).then(
          () => "answered",
          (e: { code?: string }) => e.code,
        ),
      );
      const outcomes = await within(Promise.all(calls), 10_000, "every call ended");
      // Calls at the server when it was cut end with SERVER_GONE; those that reached the hub after, with
      // NO_RESPONDERS: none waits for its timeout.
      assert.ok(outcomes.includes("EZIPC_SERVER_GONE"), outcomes.join());
      assert.ok(
        outcomes.every((o) => o === "EZIPC_SERVER_GONE" || o === "EZIPC_NO_RESPONDERS"),
        outcomes.join(),
      );
      assert.equal(hub.stats().slowConsumerCuts, 1);
      // The hub cut it: its reason names the bound (the peer's end is paused, so its close is the local one).
      server.resume();
      const info = await within(closed, 5_000, "the server's connection closed");
      assert.ok(info.error, "closed for a fault");
      // The caller goes on, with another server.
      const good = await connect(url, { name: "good" });
      await good.serve("deaf", () => "heard");
      assert.equal((await caller.request("deaf", "?")).text(), "heard");
      await closeAll([caller, good]);
    });
  });

  it("deadman: a closing connection releases what it holds and drops its waits, however many tokens it went through", async () => {
    // A close visits the tokens its connection held or waited on (not every token of the hub); the list
    // is pruned as it grows, so a client that went through hundreds of tokens must still be cleaned up.
    await withHub({}, async (hub, url) => {
      const a = await connect(url, { name: "a", reconnect: false });
      const b = await connect(url, { name: "b" });
      const c = await connect(url, { name: "c" });
      for (const n of ["h.1", "h.2", "h.3"]) await a.deadman(n).take();
      await b.deadman("w.1").take();
      const aWaits = a
        .deadman("w.1")
        .waitReleased()
        .catch((e: { code?: string }) => e.code);
      const aQueued = a
        .deadman("w.1")
        .take()
        .catch((e: { code?: string }) => e.code);
      // Hundreds of tokens taken and released meanwhile: the list is pruned several times.
      for (let i = 0; i < 300; i++) {
        await a.deadman(`churn.${i}`).take();
        await a.deadman(`churn.${i}`).release();
      }
      const cTakes = c.deadman("h.1").take();
      await until(() => hub.stats().deadmanTokens === 4, "h.1-3 and w.1");
      await a.close();
      assert.equal((await within(cTakes, 5_000, "c takes h.1 once a is gone")).mine, true);
      assert.equal(await aWaits, "EZIPC_CONNECTION_CLOSED");
      assert.equal(await aQueued, "EZIPC_CONNECTION_CLOSED");
      // b still holds w.1, and a's queued take of it is gone: b's release leaves it free.
      assert.equal((await b.deadman("w.1").state()).holder.startsWith("b"), true);
      await b.deadman("w.1").release();
      assert.equal((await c.deadman("w.1").state()).taken, false);
      assert.equal(hub.stats().deadmanTokens, 1, "h.1 (c's); h.2 and h.3 went with a");
      await closeAll([b, c]);
    });
  });

  it("maxConnections: one more connection is refused with EZIPC_TOO_MANY_CONNECTIONS; a freed slot is taken again", async () => {
    await withHub({ maxConnections: 2 }, async (hub, url) => {
      const a = await connect(url, { name: "a" });
      const raw = await rawSocket(url); // not said hello yet: it holds a slot all the same
      await until(() => hub.metrics().connectionsOpen === 2, "the raw socket accepted");
      await assert.rejects(connect(url, { name: "c", reconnect: false }), (e: Error & { code?: string }) => {
        assert.equal(e.code, "EZIPC_TOO_MANY_CONNECTIONS");
        assert.match(e.message, /maximum of 2 connections/);
        return true;
      });
      assert.equal(hub.stats().connectionsRefused, 1);
      // The refusal touched nobody else.
      await a.publish("still.here", "x");
      raw.destroy();
      await until(() => hub.metrics().connectionsOpen === 1, "the hub saw the raw socket go");
      const c = await connect(url, { name: "c" });
      await c.publish("still.here", "y");
      await closeAll([a, c]);
    });
  });

  it("a connected client that finds the hub full on reconnecting keeps retrying, and gets back in once a slot frees", async () => {
    await withHub({ maxConnections: 2 }, async (hub, url) => {
      const a = await connect(url, { name: "a", reconnect: { initialDelayMs: 1_000, maxDelayMs: 1_000 } });
      const r1 = await rawSocket(url);
      // a loses its connection; while it waits to dial again, another socket takes its slot.
      (a as unknown as { conn: net.Socket | { destroy(): void } }).conn.destroy();
      await until(() => hub.metrics().connectionsOpen === 1, "the hub saw a's connection go");
      const r2 = await rawSocket(url);
      await until(() => hub.metrics().connectionsOpen === 2, "r2 accepted");
      await until(() => hub.stats().connectionsRefused >= 1, "a's reconnect refused", 10_000);
      assert.equal(a.status, "reconnecting", "a full hub is a passing state: the client did not close");
      r1.destroy();
      r2.destroy();
      await until(() => a.status === "connected", "a back in", 10_000);
      await a.publish("back", "x");
      await a.close();
    });
  });

  it("maxSubscriptions counts every client's subscriptions; unsubscribing or leaving frees them", async () => {
    await withHub({ maxSubscriptions: 3 }, async (hub, url) => {
      const a = await connect(url, { name: "a" });
      const b = await connect(url, { name: "b" });
      const s1 = await a.subscribe("t.1", {}, () => {});
      await a.subscribe("t.2", {}, () => {});
      await b.subscribe("t.3", {}, () => {});
      await assert.rejects(
        b.subscribe("t.4", {}, () => {}),
        (e: Error & { code?: string }) => {
          assert.equal(e.code, "EZIPC_TOO_MANY_SUBSCRIPTIONS");
          assert.match(e.message, /the hub holds its maximum of 3 subscriptions/);
          return true;
        },
      );
      s1.unsubscribe();
      // The unsubscribe has no reply: the hub applies it a moment later.
      await untilAllowed(
        () => b.subscribe("t.4", {}, () => {}),
        "EZIPC_TOO_MANY_SUBSCRIPTIONS",
        "a freed subscription taken",
      );
      await a.close(); // its t.2 goes with it
      await b.subscribe("t.5", {}, () => {});
      await assert.rejects(
        b.subscribe("t.6", {}, () => {}),
        { code: "EZIPC_TOO_MANY_SUBSCRIPTIONS" },
      );
      assert.equal(hub.stats().clients, 1);
      await b.close();
    });
  });

  it("maxSubscriptionTopics: wildcard subscriptions count once per topic they follow; a topic they would take over is refused", async () => {
    await withHub({ maxSubscriptionTopics: 25 }, async (_hub, url) => {
      const p = await connect(url, { name: "p" });
      const s = await connect(url, { name: "s" });
      for (let i = 0; i < 10; i++) await p.publish(`w.${i}`, "x");
      const w1 = await s.subscribe("w.>", {}, () => {}); // 10 pairs
      await s.subscribe("w.*", {}, () => {}); // 20
      await assert.rejects(
        s.subscribe("w.>", {}, () => {}),
        (e: Error & { code?: string }) => {
          assert.equal(e.code, "EZIPC_TOO_MANY_SUBSCRIPTIONS");
          assert.match(e.message, /maximum of 25 \(subscription, topic\) pairs/);
          return true;
        },
      );
      await s.subscribe("w.0", {}, () => {}); // 21
      await p.publish("w.new1", "x"); // followed by both wildcards: 23
      await p.publish("w.new2", "x"); // 25
      await assert.rejects(p.publish("w.new3", "x"), (e: Error & { code?: string }) => {
        assert.equal(e.code, "EZIPC_TOO_MANY_TOPICS");
        assert.match(e.message, /topic w\.new3 would take the hub over its maximum of 25/);
        return true;
      });
      assert.deepEqual(
        (await p.topics("w.new3")).map((t) => t.name),
        [],
        "the refused topic was not made",
      );
      // Publishing to topics that exist goes on; a topic no wildcard follows is made as before.
      await p.publish("w.0", "y");
      await p.publish("other", "z");
      // Once a wildcard subscription goes, its pairs are free again.
      w1.unsubscribe();
      await untilAllowed(
        () => p.publish("w.new3", "x"),
        "EZIPC_TOO_MANY_TOPICS",
        "w.new3 made once w.> went",
      );
      await closeAll([p, s]);
    });
  });

  it("maxPointers counts every client's pointers; a released pointer frees its place", async () => {
    await withHub({ maxPointers: 3 }, async (_hub, url) => {
      const a = await connect(url, { name: "a" });
      const b = await connect(url, { name: "b" });
      const p1 = await a.allocate("k", 8, "poll");
      await a.watch("k", "poll");
      await b.watch("k", "request");
      await assert.rejects(b.watch("k", "lazy"), (e: Error & { code?: string }) => {
        assert.equal(e.code, "EZIPC_TOO_MANY_POINTERS");
        assert.match(e.message, /the hub holds its maximum of 3 pointers/);
        return true;
      });
      await assert.rejects(b.allocate("k2", 8, "poll"), { code: "EZIPC_TOO_MANY_POINTERS" });
      p1.dispose();
      // The release has no reply: the hub applies it a moment later.
      await untilAllowed(
        () => b.watch("k", "lazy"),
        "EZIPC_TOO_MANY_POINTERS",
        "a released pointer's place taken",
      );
      await closeAll([a, b]);
    });
  });

  it("maxCalls counts every caller's calls in flight; an answered call frees its place", async () => {
    await withHub({ maxCalls: 2 }, async (_hub, url) => {
      const server = await connect(url, { name: "server" });
      const answers: (() => void)[] = [];
      await server.serve("slow", () => new Promise<string>((resolve) => answers.push(() => resolve("done"))));
      const a = await connect(url, { name: "a" });
      const b = await connect(url, { name: "b" });
      const first = a.request("slow", "1");
      const second = a.request("slow", "2");
      await until(() => answers.length === 2, "two calls at the server");
      await assert.rejects(b.request("slow", "3"), (e: Error & { code?: string }) => {
        assert.equal(e.code, "EZIPC_TOO_MANY_REQUESTS");
        assert.match(e.message, /the hub has its maximum of 2 calls in flight/);
        return true;
      });
      answers[0]!();
      await first;
      const third = b.request("slow", "3");
      await until(() => answers.length === 3, "the third call at the server");
      answers[1]!();
      answers[2]!();
      assert.equal((await second).text(), "done");
      assert.equal((await third).text(), "done");
      await closeAll([server, a, b]);
    });
  });

  it("a client may serve at most 10,000 topics (serve after serve grew the hub without bound): one more is refused, stopping one frees its place", async () => {
    await withHub({}, async (_hub, url) => {
      const c = await connect(url, { name: "server" });
      const servers = [];
      for (let b = 0; b < 10_000; b += 1_000) {
        const batch = [];
        for (let i = b; i < b + 1_000; i++) batch.push(c.serve(`s.${i}`, () => "x"));
        servers.push(...(await Promise.all(batch)));
      }
      await assert.rejects(
        c.serve("s.one-more", () => "x"),
        (e: Error & { code?: string }) => {
          assert.equal(e.code, "EZIPC_TOO_MANY_SUBSCRIPTIONS");
          assert.match(e.message, /at most 10000 topics/);
          return true;
        },
      );
      // Serving a topic again is no new topic; stopping one frees its place.
      servers[0]!.close();
      // The unserve has no reply: the hub applies it a moment later.
      await untilAllowed(
        () => c.serve("s.one-more", () => "x"),
        "EZIPC_TOO_MANY_SUBSCRIPTIONS",
        "a freed place served",
      );
      const other = await connect(url, { name: "caller" });
      assert.equal((await other.request("s.9999", "?")).text(), "x");
      await closeAll([c, other]);
    });
  });

  it("listingEntriesPerSecond: listings share a budget of entries walked; past it they are refused at once, other work goes on, and it comes back", async () => {
    await withHub({ listingEntriesPerSecond: 1_000 }, async (hub, url) => {
      const c = await connect(url, { name: "lister" });
      const other = await connect(url, { name: "other" });
      for (let i = 0; i < 1_500; i++) c.publishAndForget(`l.${i}`, "x");
      await c.drain();
      await c.publish("l.last", "x");
      // A burst of twice the rate goes through: the first listing, and a second that overdraws it.
      assert.equal((await c.topics("l.>")).length, 1_501);
      assert.equal((await c.topics("")).length, 1_502); // (with $hub.topics)
      const tooMany = (e: unknown) =>
        (e as { code?: string }).code === "EZIPC_TOO_MANY_REQUESTS" && /try again in \d+ ms/.test(String(e));
      for (const op of [
        () => c.topics(""),
        () => other.topics("l.1"),
        () => other.list(""),
        () => c.monitor(),
      ]) {
        await assert.rejects(op(), tooMany);
      }
      assert.ok(hub.stats().listingsRefused >= 4);
      // Everything else goes on meanwhile.
      assert.equal((await other.publish("l.0", "y")).seq, 2n);
      await untilAllowed(() => other.topics("l.1"), "EZIPC_TOO_MANY_REQUESTS", "the budget back");
      await closeAll([c, other]);
    });
  });

  it("a listing counts the holders it shows against the budget; one over a frame is refused before it is built, and clients list a page at a time; a view shows 50 holders a key", async () => {
    // 30 keys, each held by its creator and 70 clients: a list of them all shows 2,160 entries, not 30.
    await withHub({ listingEntriesPerSecond: 1_000 }, async (hub, url) => {
      const owner = await connect(url, { name: "owner" });
      const keep: unknown[] = [];
      for (let k = 0; k < 30; k++) keep.push(await owner.allocate(`k.${k}`, 8, "poll"));
      const holders: HubClient[] = [];
      for (let i = 0; i < 70; i++) {
        const h = await connect(url, { name: `h${i}` });
        holders.push(h);
        keep.push(...(await Promise.all(Array.from({ length: 30 }, (_, k) => h.watch(`k.${k}`, "poll")))));
      }
      const view = hub.view("k.0");
      assert.equal(view.keys[0]!.holders.length, 50);
      assert.equal(view.keys[0]!.moreHolders, 21);
      const all = await owner.list(""); // (over the burst of twice the rate: overdrawn now)
      assert.equal(all.length, 30);
      assert.equal(all[0]!.holders.length, 71);
      await assert.rejects(
        owner.list(""),
        (e: unknown) => (e as { code?: string }).code === "EZIPC_TOO_MANY_REQUESTS",
      );
      assert.equal(keep.length, 30 + 70 * 30);
      await closeAll([owner, ...holders]);
    });
    // Over one frame: a `topics` or `list` answer is refused with what to do, before it is built; a client
    // lists a page at a time (`topicsPage`, `listPage`) and gets them all, once each, in order.
    await withHub({ maxFrameBytes: 64 * 1024 }, async (_hub, url) => {
      const owner = await connect(url, { name: "owner" });
      const keep: unknown[] = [];
      for (let k = 0; k < 20; k++) keep.push(await owner.allocate(`k.${k}`, 8, "poll"));
      const holders: HubClient[] = [];
      for (let i = 0; i < 40; i++) {
        const h = await connect(url, { name: `holder-${"x".repeat(100)}-${i}` });
        holders.push(h);
        keep.push(...(await Promise.all(Array.from({ length: 20 }, (_, k) => h.watch(`k.${k}`, "poll")))));
      }
      for (let i = 0; i < 500; i++) owner.publishAndForget(`t.${"y".repeat(120)}.${i}`, "x");
      await owner.drain();
      await owner.publish("t.last", "x");
      const raw = await rawClient(url, "raw");
      for (const type of ["list", "topics"]) {
        raw.conn.send(proto.encode(type, { rid: 7, pattern: "" }));
        const m = await raw.next();
        assert.equal(m.body.code, "EZIPC_MESSAGE_TOO_LARGE", type);
        assert.match(
          m.body.message!,
          new RegExp(`^${type}: the answer would hold \\d+ entries.*narrower pattern`),
        );
      }
      raw.conn.send(proto.encode("topicsPage", { rid: 8, pattern: "", after: "", maxBytes: 0 }));
      const page = await raw.next();
      assert.deepEqual([page.type, page.body.more], ["topicPage", true]);
      await raw.conn.close();
      const keys = await owner.list("");
      assert.deepEqual(
        keys.map((k) => [k.key, k.holders.length]),
        Array.from({ length: 20 }, (_, k) => `k.${k}`)
          .sort()
          .map((k) => [k, 41]),
      );
      const topics = (await owner.topics("")).map((t) => t.name);
      assert.equal(topics.length, 502); // (with t.last and $hub.topics)
      assert.deepEqual(topics, [...new Set(topics)].sort());
      assert.equal((await owner.list("k.1"))[0]!.holders.length, 41);
      // A client with a smaller frame limit than the hub's gets pages that fit it.
      const small = await connect(url, { name: "small", maxFrameBytes: 16 * 1024 });
      assert.deepEqual(
        (await small.topics("")).map((t) => t.name),
        topics,
      );
      assert.equal((await small.list("")).length, 20);
      await small.close();
      assert.equal(keep.length, 20 + 40 * 20);
      await closeAll([owner, ...holders]);
    });
  });

  it("a listing larger than the budget's burst is walked a page at a time at the rate the hub allows, not refused midway", async () => {
    await withHub({ maxFrameBytes: 64 * 1024, listingEntriesPerSecond: 500 }, async (hub, url) => {
      const c = await connect(url, { name: "lister" });
      for (let i = 0; i < 3_000; i++) c.publishAndForget(`pace.${"p".repeat(40)}.${i}`, "x");
      await c.drain();
      await c.publish("pace.last", "x");
      // 3,001 topics of ~86 bytes: four pages, over the burst of 1,000; the third waits for the budget.
      const listed = (await c.topics("pace.>")).map((t) => t.name);
      assert.equal(listed.length, 3_001);
      assert.deepEqual(listed, [...new Set(listed)].sort());
      assert.ok(hub.stats().listingsRefused >= 1, "a page waited for the budget");
      // A new listing while the budget is overdrawn is refused at once, as before.
      await assert.rejects(
        c.topics("pace.>"),
        (e: unknown) => (e as { code?: string }).code === "EZIPC_TOO_MANY_REQUESTS",
      );
      await c.close();
    });
  });

  it("a monitor view of more than 500 topics or keys shows the first 500 by name, whatever order they were made in", async () => {
    await withHub({}, async (hub, url) => {
      const c = await connect(url, { name: "maker" });
      const names = Array.from({ length: 600 }, (_, i) => `v.${String(599 - i).padStart(3, "0")}`);
      for (const n of names) c.publishAndForget(n, "x");
      await c.drain();
      const keep = await Promise.all(names.map((n) => c.allocate(n, 8, "poll")));
      await c.publish("v.999", "x");
      const view = hub.view("v.*");
      const first500 = [...names].sort().slice(0, 500);
      assert.deepEqual(
        view.topics.map((t) => t.name),
        first500,
      );
      assert.deepEqual(
        view.keys.map((k) => k.key),
        first500,
      );
      assert.deepEqual([view.truncated.topics, view.truncated.keys], [101, 100]);
      assert.equal(keep.length, 600);
      await c.close();
    });
  });
});
