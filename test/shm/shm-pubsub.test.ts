import assert from "node:assert/strict";
import {
  closeSync,
  existsSync,
  openSync,
  rmSync,
  statSync,
  truncateSync,
  writeFileSync,
  writeSync,
} from "node:fs";
import { after, describe, it } from "node:test";
import { connect, isEzipcError, type ShmClient } from "../../src/index.js";
import { readsOf } from "../../src/shm-client/shared-reads.js";
import { ended, exited, outputLines, spawnFixture, until, within } from "../helpers.js";

const name = `test-ps-${process.pid}`;
const url = `shm:///${name}` as const;
after(() => rmSync(`/dev/shm/ezipc.${name}`, { recursive: true, force: true }));

describe("shm:// pub/sub across processes", () => {
  it("two publishers at full speed, three subscribers: each gets every message, per-publisher order kept, no gap", async () => {
    const topic = "multi.writers";
    const n = 20_000;
    const subs = await Promise.all(
      [0, 1, 2].map(() => spawnFixture("shm-peer.js", ["sub", url, topic, String(2 * n)])),
    );
    const outs = subs.map((s) => outputLines(s.child));
    const pubs = await Promise.all(
      ["A", "B"].map((id) =>
        spawnFixture("shm-peer.js", ["pub", url, topic, String(n), id], 20_000, /^done/),
      ),
    );
    for (const p of pubs) assert.equal(await within(exited(p.child), 10_000, "publisher exit"), 0);
    for (const s of subs) assert.equal(await within(ended(s.child), 20_000, "subscriber exit"), 0);
    for (const out of outs) {
      const got = out.find((l) => l.startsWith("got "));
      assert.ok(got, out.join("\n"));
      const [, count, , gaps] = got.split(" ");
      assert.equal(Number(count), 2 * n);
      assert.equal(Number(gaps), 0);
    }
  });

  it("a parked subscriber in another process is woken by a publish (no polling), and one killed with -9 costs publishers nothing", async () => {
    const topic = "wake.me";
    const pub = await connect(url);
    try {
      const parked = await spawnFixture("shm-peer.js", ["park", url, topic]);
      const out = outputLines(parked.child);
      const victim = await spawnFixture("shm-peer.js", ["park", url, topic]);
      const [info] = await pub.topics(topic);
      assert.equal(info!.subscribers, 2);
      victim.child.kill("SIGKILL");
      await exited(victim.child);
      for (let i = 0; i < 3; i++) {
        await pub.publish(topic, `hello ${i}`);
        await until(() => out.includes(`got hello ${i}`), `wake-up ${i}`, 5_000);
      }
      // The dead reader's slot was freed by the first publisher that tried to wake it.
      const [after1] = await pub.topics(topic);
      assert.equal(after1!.subscribers, 1);
      parked.child.kill("SIGKILL");
      await exited(parked.child);
    } finally {
      await pub.close();
    }
  });
});

describe("shm:// client API", () => {
  let c: ShmClient;
  it("bad URLs, wildcards, $ topics and fixed bounds fail with coded errors", async () => {
    await assert.rejects(connect("shm://somehost/x" as `shm:${string}`), (e) =>
      isEzipcError(e, "EZIPC_INVALID_URL"),
    );
    await assert.rejects(connect("shm:///bad name" as `shm:${string}`), (e) =>
      isEzipcError(e, "EZIPC_INVALID_URL"),
    );
    c = await connect(url);
    await assert.rejects(c.subscribe("a.*"), (e) => isEzipcError(e, "EZIPC_NOT_SUPPORTED"));
    await assert.rejects(c.subscribe("a.b", { init: "all" as never }), TypeError);
    await assert.rejects(c.subscribe("a.b", { iter: "last" as never }), TypeError);
    await assert.rejects(c.publish("$hub.x", "x"), (e) => isEzipcError(e, "EZIPC_PERMISSION_DENIED"));
    await assert.rejects(c.publish("bad..topic", "x"), (e) => isEzipcError(e, "EZIPC_INVALID_TOPIC"));
    await c.configureTopic("sized", { maxBytes: 8192, maxCount: 3 });
    await assert.rejects(c.configureTopic("sized", { maxBytes: 16384 }), (e) =>
      isEzipcError(e, "EZIPC_BAD_REQUEST"),
    );
    await assert.rejects(c.configureTopic("kept", { persist: true }), (e) =>
      isEzipcError(e, "EZIPC_NOT_SUPPORTED"),
    );
    await assert.rejects(c.publish("sized", Buffer.alloc(4096)), (e) =>
      isEzipcError(e, "EZIPC_SHM_TOO_LARGE"),
    );
    for (let i = 0; i < 5; i++) await c.publish("sized", `m${i}`);
    const [t] = await c.topics("sized");
    assert.deepEqual([t!.firstSeq, t!.lastSeq, t!.count], [3n, 5n, 3]);
    // A reader from the oldest after eviction gets a gap, then what is kept.
    const gaps: [bigint, bigint][] = [];
    const sub = await c.subscribe("sized", {
      init: { fromSeq: 1n },
      onGap: (g) => gaps.push([g.first, g.last]),
    });
    const it = sub[Symbol.asyncIterator]();
    assert.equal((await it.next()).value!.text(), "m2");
    assert.deepEqual(gaps, [[1n, 2n]]);
    sub.unsubscribe();
    await c.close();
    await assert.rejects(c.publish("sized", "x"), (e) => isEzipcError(e, "EZIPC_CONNECTION_CLOSED"));
  });
});

describe("shm:// options", () => {
  it("an option out of its range is refused with a RangeError naming it (connect, configureTopic); nothing is created", async () => {
    const bad: [string, number][] = [
      ["mode", 0o4700], // setuid on a shared file
      ["mode", -1],
      ["ringBytes", 100],
      ["ringBytes", 4096.5],
      ["maxCount", -1],
      ["holdPublishersMs", -5],
      ["watchUs", Number.NaN],
      ["watchUs", -1],
      ["disposeGraceMs", Number.POSITIVE_INFINITY],
      ["tombstoneTtlMs", -1],
      ["maxBlockBytes", 0],
    ];
    const name = `test-options-${process.pid}`;
    for (const [key, value] of bad) {
      await assert.rejects(
        connect(`shm:///${name}`, { [key]: value }),
        (e) => e instanceof RangeError && e.message.startsWith(`${key} must be`),
        `${key}: ${value}`,
      );
    }
    assert.equal(existsSync(`/dev/shm/ezipc.${name}`), false);
    const c = await connect(`shm:///${name}`, { mode: 0o600, watchUs: 0, holdPublishersMs: 0, maxCount: 10 });
    // A topic's bounds likewise, named as the caller gave them.
    for (const [key, value] of [
      ["maxBytes", -1],
      ["maxBytes", 100],
      ["maxCount", -3],
      ["maxCount", 2 ** 32],
    ] as const) {
      await assert.rejects(
        c.configureTopic("bounded", { [key]: value }),
        (e) => e instanceof RangeError && e.message.startsWith(`${key} must be`),
        `${key}: ${value}`,
      );
    }
    assert.deepEqual(await c.topics("bounded"), []);
    await c.close();
    rmSync(`/dev/shm/ezipc.${name}`, { recursive: true, force: true });
  });
});

describe("shm:// publishers wait for slow `next` subscribers (no loss by default)", () => {
  it("a subscriber that stops reading holds the publisher; once it reads on it gets everything, no gap", async () => {
    const pub = await connect(url, { ringBytes: 8192 });
    const sub = await connect(url);
    try {
      let release!: () => void;
      const gate = new Promise<void>((r) => {
        release = r;
      });
      const got: string[] = [];
      const gaps: unknown[] = [];
      await pub.configureTopic("held.topic", { maxBytes: 8192 });
      await sub.subscribe("held.topic", { prefetch: 1, onGap: (g) => gaps.push(g) }, async (m) => {
        got.push(m.text());
        if (got.length === 1) await gate;
      });
      // 200 messages of ~150 bytes do not fit the 8 KiB ring while the subscriber sits on the first: without
      // holds the ring would overwrite what it has not read, and it would get a gap.
      for (let i = 0; i < 200; i++) pub.publishAndForget("held.topic", `m${i}`.padEnd(100, "."));
      const acked = pub.publish("held.topic", "last"); // waits behind the held ones
      release();
      await within(pub.drain(), 5_000, "the held publishes to be written");
      assert.equal((await within(acked, 5_000, "the acknowledged publish")).seq, 201n);
      await until(() => got.length === 201, "every message", 5_000);
      // Every one, once, in order: the held rest of the batch goes in over several partial appends.
      assert.deepEqual(got, [...Array.from({ length: 200 }, (_, i) => `m${i}`.padEnd(100, ".")), "last"]);
      assert.deepEqual(gaps, []);
    } finally {
      await pub.close();
      await sub.close();
    }
  });

  it("a publisher held by a reader in another process is woken once a sixteenth of the ring is read, not at each step", async () => {
    const topic = "held.steps";
    const pub = await connect(url);
    try {
      await pub.configureTopic(topic, { maxBytes: 4 * 1024 * 1024 }); // ~29 000 messages of ~100 B
      const n = 60_000;
      // prefetch 16, a turn of the event loop per message: the reader moves on in small, slow steps.
      const sub = await spawnFixture("shm-peer.js", ["sub", url, topic, String(n), "16", "slow"]);
      const out = outputLines(sub.child);
      const id = "p".repeat(96);
      let held = 0;
      for (let i = 0; i < n; i++) {
        if (!pub.publishAndForget(topic, `${id}:${i}`)) {
          held++;
          await within(pub.drain(), 10_000, "the reader to free the ring");
        }
      }
      assert.equal(await within(ended(sub.child), 20_000, "subscriber exit"), 0);
      const got = out.find((l) => l.startsWith("got "));
      assert.ok(got, out.join("\n"));
      const [, count, , gaps, woken] = got.split(" ").map(Number) as number[];
      assert.equal(count, n);
      assert.equal(gaps, 0);
      assert.ok(held > 0, "the publisher was held");
      // ~31 000 messages written while held, ~1 800 per sixteenth of the ring: 18 wake-ups at most, unless
      // the reader passes a mark before it is visible (woken at each step the reader took: hundreds).
      assert.ok(woken! >= 1 && woken! <= 40, `${woken} wake-ups of the held publisher (held ${held} times)`);
    } finally {
      await pub.close();
    }
  });

  it("a ring corrupted while publishes wait for a slow reader: they fail (EZIPC_SHM_BAD_FILE), nothing else does", async () => {
    const pub = await connect(url, { ringBytes: 8192 });
    const sub = await connect(url);
    try {
      const topic = "held.corrupt";
      let release!: () => void;
      const gate = new Promise<void>((r) => {
        release = r;
      });
      await pub.configureTopic(topic, { maxBytes: 8192 });
      const s = await sub.subscribe(topic, { prefetch: 1 }, async () => {
        await gate;
      });
      const failed = new Promise<unknown>((r) => s.once("error", r));
      for (let i = 0; i < 200; i++) pub.publishAndForget(topic, Buffer.alloc(100, i));
      const acked = pub.publish(topic, "last");
      // Both state blocks: a head that is not a multiple of 8 (no ring has one).
      const fd = openSync(`/dev/shm/ezipc.${name}/${topic}`, "r+");
      try {
        for (const block of [128, 192]) writeSync(fd, Buffer.from([3, 0, 0, 0]), 0, 4, block + 16);
      } finally {
        closeSync(fd);
      }
      await assert.rejects(within(acked, 5_000, "the held publish to fail"), (e: unknown) =>
        isEzipcError(e, "EZIPC_SHM_BAD_FILE"),
      );
      await within(pub.drain(), 5_000, "nothing left held");
      release();
      assert.ok(isEzipcError(await within(failed, 5_000, "the subscription to fail"), "EZIPC_SHM_BAD_FILE"));
      // The clients go on with other topics.
      const other = await sub.subscribe("after.corrupt", { init: "oldest" });
      await pub.publish("after.corrupt", "fine");
      assert.equal((await other[Symbol.asyncIterator]().next()).value!.text(), "fine");
    } finally {
      await pub.close();
      await sub.close();
    }
  });

  it("the wait is bounded (holdPublishersMs): then the slow subscriber gets a gap; 0 never waits", async () => {
    const pub = await connect(url, { ringBytes: 8192, holdPublishersMs: 100 });
    const sub = await connect(url);
    try {
      let release!: () => void;
      const gate = new Promise<void>((r) => {
        release = r;
      });
      const gaps: { first: bigint; last: bigint }[] = [];
      let n = 0;
      await pub.configureTopic("bounded.hold", { maxBytes: 8192 });
      await sub.subscribe("bounded.hold", { prefetch: 1, onGap: (g) => gaps.push(g) }, async () => {
        if (++n === 1) await gate;
      });
      for (let i = 0; i < 200; i++) pub.publishAndForget("bounded.hold", Buffer.alloc(100, i));
      const t0 = Date.now();
      await within(pub.drain(), 5_000, "the hold to give up");
      assert.ok(Date.now() - t0 >= 50, "it waited first");
      release();
      await until(() => gaps.length > 0, "a gap for the slow subscriber", 5_000);
      const never = await connect(url, { ringBytes: 8192, holdPublishersMs: 0 });
      try {
        const results: boolean[] = [];
        for (let i = 0; i < 200; i++)
          results.push(never.publishAndForget("never.held", Buffer.alloc(100, i)));
        assert.ok(results.every((r) => r));
      } finally {
        await never.close();
      }
    } finally {
      await pub.close();
      await sub.close();
    }
  });
});

describe("shm:// close", () => {
  it("close() writes what publishAndForget held for a slow reader (after the hold, as a hub would), then closes", async () => {
    const pub = await connect(url, { ringBytes: 8192, holdPublishersMs: 100 });
    const sub = await connect(url);
    try {
      let release!: () => void;
      const gate = new Promise<void>((r) => {
        release = r;
      });
      await pub.configureTopic("close.held", { maxBytes: 8192 });
      await sub.subscribe("close.held", { prefetch: 1 }, async () => {
        await gate;
      });
      const n = 200;
      for (let i = 0; i < n; i++) pub.publishAndForget("close.held", Buffer.alloc(100, i));
      await within(pub.close(), 5_000, "close to write the held messages");
      const [t] = await sub.topics("close.held");
      assert.equal(t!.lastSeq, BigInt(n), "every message was written, none dropped at close");
      release();
    } finally {
      await pub.close();
      await sub.close();
    }
  });
});

describe("shm:// bad files", () => {
  it("a topic file that is truncated or foreign is refused with EZIPC_SHM_BAD_FILE; the client goes on", async () => {
    const c = await connect(url);
    try {
      await c.publish("good.topic", "fine");
      writeFileSync(`/dev/shm/ezipc.${name}/foreign.topic`, Buffer.alloc(9000, 0x41));
      const isBad = (e: unknown) => isEzipcError(e, "EZIPC_SHM_BAD_FILE");
      await assert.rejects(c.subscribe("foreign.topic"), isBad);
      await assert.rejects(c.publish("foreign.topic", "x"), isBad);
      await c.publish("short.topic", "x");
      const other = await connect(url);
      try {
        truncateSync(`/dev/shm/ezipc.${name}/short.topic`, 5000);
        await assert.rejects(other.subscribe("short.topic", { init: "oldest" }), isBad);
        // Everything else works.
        const sub = await other.subscribe("good.topic", { init: "oldest" });
        assert.equal((await sub[Symbol.asyncIterator]().next()).value!.text(), "fine");
      } finally {
        await other.close();
      }
    } finally {
      await c.close();
    }
  });
});

describe("shm:// spin mode and batched fire-and-forget publishes", () => {
  it("a spinning reader gets every message; a tick's publishes to alternating topics keep their order per topic", async () => {
    const pub = await connect(url);
    const spinner = await connect(url, { spin: true });
    try {
      const got: Record<string, string[]> = { "alt.a": [], "alt.b": [] };
      for (const topic of ["alt.a", "alt.b"]) {
        await spinner.subscribe(topic, {}, (m) => {
          got[topic]!.push(String(m.payload[0]! + 256 * m.payload[1]!));
        });
      }
      const payload = Buffer.alloc(2);
      for (let i = 0; i < 300; i++) {
        payload.writeUInt16LE(i); // the caller reuses its buffer: each publish copied it at once
        pub.publishAndForget(i % 3 === 0 ? "alt.b" : "alt.a", payload);
      }
      await pub.drain();
      await until(() => got["alt.a"]!.length + got["alt.b"]!.length === 300, "all 300", 5_000);
      const expect = (t: string) =>
        Array.from({ length: 300 }, (_, i) => i)
          .filter((i) => (i % 3 === 0) === (t === "alt.b"))
          .map(String);
      assert.deepEqual(got["alt.a"], expect("alt.a"));
      assert.deepEqual(got["alt.b"], expect("alt.b"));
      // Acknowledged and spin-served RPC too.
      await pub.serve("spin.echo", (req) => req.payload);
      assert.equal((await spinner.request("spin.echo", "hi")).text(), "hi");
    } finally {
      await spinner.close();
      await pub.close();
    }
  });

  it("two spinning clients of one process answer each other without waiting for a turn of the event loop", async () => {
    // One spin chain per process: a follower spinning alone would keep the other's look waiting for the
    // event loop until its spin window ends (hundreds of µs per call between two clients of one process).
    const server = await connect(url, { spin: true });
    const caller = await connect(url, { spin: true });
    try {
      await server.serve("spin.same", (req) => req.payload);
      await caller.request("spin.same", "warm-up");
      let beforeTurn = 0;
      const rounds = 40;
      for (let i = 0; i < rounds; i++) {
        let turned = false;
        const turn = new Promise<void>((resolve) =>
          setImmediate(() => {
            turned = true;
            resolve();
          }),
        );
        const reply = await caller.request("spin.same", `n${i}`);
        assert.equal(reply.text(), `n${i}`);
        if (!turned) beforeTurn++;
        await turn;
      }
      // A spin chain lets the event loop turn at most every millisecond, so a few calls may straddle a turn.
      assert.ok(beforeTurn >= rounds / 2, `${beforeTurn} of ${rounds} calls answered within one turn`);
    } finally {
      await caller.close();
      await server.close();
    }
  });

  it("subscriptions of one process share what they read: each, whatever its prefetch, gets every message whole and in order", async () => {
    const topic = "shared.reads";
    const pub = await connect(url);
    const clients = await Promise.all([1, 2, 3].map(() => connect(url)));
    try {
      const n = 6_000;
      const got: number[][] = [];
      const prefetches = [1, 7, 1_000, 256];
      let s = 0;
      for (const prefetch of prefetches) {
        const into: number[] = [];
        got.push(into);
        // Two of them on one client, the others on their own clients.
        const c = s === 0 ? clients[0]! : clients[(s - 1) % 3]!;
        s++;
        await c.subscribe(topic, { prefetch }, (m) => {
          const b = m.payload as Buffer;
          const i = b.readUInt32LE(0);
          assert.ok(
            b.subarray(4).every((x) => x === (i & 0xff)),
            `message ${i} is whole`,
          );
          into.push(i);
        });
      }
      for (let i = 0; i < n; i++) {
        const b = Buffer.alloc(4 + ((i * 131) % 3000), i & 0xff); // 4 B to 3 KiB
        b.writeUInt32LE(i, 0);
        if (!pub.publishAndForget(topic, b)) await pub.drain();
      }
      await pub.drain();
      await until(() => got.every((g) => g.length === n), "every subscription got all", 10_000);
      const expect = Array.from({ length: n }, (_, i) => i);
      for (const g of got) assert.deepEqual(g, expect);
    } finally {
      for (const c of clients) await c.close();
      await pub.close();
    }
  });

  it("a subscription reading history beside one waiting at the newest message keeps nothing for it", async () => {
    const topic = "shared.replay";
    const c = await connect(url);
    try {
      const n = 20_000;
      for (let i = 0; i < n; i++) if (!c.publishAndForget(topic, Buffer.alloc(64, i & 0xff))) await c.drain();
      await c.drain();
      let live = 0;
      await c.subscribe(topic, { init: "mostRecent" }, () => {
        live++;
      });
      await until(() => live === 1, "the live subscription got the newest message", 5_000);
      const st = statSync(`/dev/shm/ezipc.${name}/${topic}`);
      const reads = readsOf(`${st.dev}:${st.ino}`);
      assert.ok(reads !== undefined, "the subscriptions share their reads");
      let replayed = 0;
      let mostKept = 0;
      await c.subscribe(topic, { init: "oldest" }, () => {
        replayed++;
        mostKept = Math.max(mostKept, reads!.keptBytes);
      });
      await until(() => replayed === n, "the replay read every message", 10_000);
      // Without the check, every run the replay read was kept for the live subscription, which never took
      // it (it is past it): 4 MiB of runs lived until the byte bound pushed them out.
      assert.equal(mostKept, 0, "no run was kept while the other subscription was past it");
      assert.equal(live, 1, "the live subscription got nothing more");
    } finally {
      await c.close();
    }
  });

  it("a valid name whose file name would be too long is refused with its coded error, saying why; one that fits works", async () => {
    const c = await connect(url);
    try {
      const isTopic = (e: unknown) =>
        isEzipcError(e, "EZIPC_INVALID_TOPIC") && /too long for shm:\/\//.test((e as Error).message);
      const isKey = (e: unknown) =>
        isEzipcError(e, "EZIPC_INVALID_KEY") && /too long for shm:\/\//.test((e as Error).message);
      // 255 characters: valid everywhere; on shm:// only where its escaped name and prefix fit 255 bytes.
      await c.publish("a".repeat(255), "x");
      await assert.rejects(c.publish(`${"a/".repeat(100)}a`, "x"), isTopic, "slashes take 3 bytes each");
      await assert.rejects(c.publish("%".repeat(100), "x"), isTopic, "so do %");
      await assert.rejects(
        c.serve("s".repeat(255), (r) => r.payload),
        isTopic,
        "a request file's .rpc. prefix",
      );
      await assert.rejects(c.request("s".repeat(255), "x", { timeoutMs: 1_000 }), isTopic);
      await assert.rejects(c.allocate("k".repeat(255), 8, "poll"), isKey, "a variable's .var. prefix");
      assert.throws(() => c.deadman("d".repeat(255)), isKey, "a token's .deadman. prefix");
      const s = await c.serve("s".repeat(250), (r) => r.payload);
      assert.equal((await c.request("s".repeat(250), "y")).text(), "y");
      s.close();
    } finally {
      await c.close();
    }
  });
});
