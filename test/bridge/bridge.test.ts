import assert from "node:assert/strict";
import { type ChildProcess, spawn } from "node:child_process";
import { lstatSync, readFileSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import path from "node:path";
import { after, describe, it } from "node:test";
import { fileURLToPath } from "node:url";
import {
  BRIDGED_HEADER,
  Bridge,
  connect,
  Hub,
  type HubClient,
  isEzipcError,
  ORIGIN_HEADER,
  type ShmClient,
  shmBridge,
  type TopicMessage,
} from "../../src/index.js";
import { KIND_TOPIC } from "../../src/shm/layout.js";
import { TopicRing } from "../../src/shm/ring.js";
import { openShmFile } from "../../src/shm/shm-file.js";
import {
  ended,
  fixture as fixturePath,
  outputLines,
  spawnOnTmpfs,
  tempDir,
  until,
  within,
} from "../helpers.js";
import { ChildClient } from "../hub/child-client.js";
import { restartedHub } from "../hub/hubs.js";

const cli = fileURLToPath(new URL("../../src/cli/main.js", import.meta.url));
const namespaces: string[] = [];
after(() => {
  for (const n of namespaces) rmSync(`/dev/shm/ezipc.${n}`, { recursive: true, force: true });
});

function namespace(): string {
  const n = `test-bridge-${process.pid}-${namespaces.length}`;
  namespaces.push(n);
  return n;
}

/**
 * For a standalone bridge: a hub on a Unix socket (which a test may close and start again on the same path)
 * and a shm:// client of a fresh namespace.
 */
async function hubAndNamespace(): Promise<{
  url: string;
  shmUrl: `shm:${string}`;
  hub: Hub;
  local: ShmClient;
}> {
  const shmUrl = `shm:///${namespace()}` as const;
  const url = `unix://${path.join(tempDir().dir, "hub.sock")}`;
  return {
    url,
    shmUrl,
    hub: await Hub.listen({ urls: [url] }),
    local: await connect(shmUrl, { name: "local" }),
  };
}

/** Collects a subscription's payloads as text. */
function collect(into: string[], headers?: Record<string, string>[]) {
  return (m: TopicMessage) => {
    into.push(m.text());
    headers?.push(m.headers);
  };
}

describe("the hub as a bridge to shared memory", () => {
  it("a TCP client and a shm:// process exchange messages and variable updates both ways, each once", async () => {
    const ns = namespace();
    const shmUrl = `shm:///${ns}` as const;
    const local = await ChildClient.start(shmUrl, "local"); // a shm:// client in its own process
    await local.cmd("allocate", { key: "temp", size: 4, policy: "poll" });
    const hub = await Hub.listen({ urls: ["tcp://127.0.0.1:0"], bridge: shmBridge(shmUrl, { scanMs: 100 }) });
    const net = await connect(hub.urls[0]!, { name: "net" });
    const observer = await connect(shmUrl, { name: "observer" });
    try {
      // shm → hub
      const onHub: string[] = [];
      const hubHeaders: Record<string, string>[] = [];
      await observer.publish("news", "hello"); // the topic exists in shared memory: it is bridged
      await until(async () => (await net.topics("news")).length === 1, "news on the hub", 5_000);
      await net.subscribe("news", { init: "awaitNew" }, collect(onHub, hubHeaders));
      const onShm: string[] = [];
      await observer.subscribe("news", { init: "awaitNew" }, collect(onShm));
      const n = 300;
      const published = local.cmd<{ seq: string }>("publishMany", { key: "news", n });
      await published;
      await until(() => onHub.length >= n + 1, `${n + 1} messages on the hub`, 10_000);
      assert.deepEqual(onHub, [...Array.from({ length: n }, (_, i) => String(i)), "end"]);
      assert.equal(hubHeaders[0]![BRIDGED_HEADER], "shm");
      assert.match(hubHeaders[0]![ORIGIN_HEADER]!, /^local#/);
      // hub → shm, and nothing comes back (each message once on each side)
      for (let i = 0; i < 50; i++) net.publishAndForget("news", `net ${i}`);
      await net.drain();
      await until(() => onShm.length === n + 1 + 50, "the net messages in shared memory", 10_000);
      assert.deepEqual(
        onShm.slice(n + 1),
        Array.from({ length: 50 }, (_, i) => `net ${i}`),
      );
      await until(() => onHub.length === n + 1 + 50, "the net messages on the hub", 5_000);
      assert.equal(onHub.length, n + 1 + 50, "no bridged message came back");
      assert.equal(onShm.length, n + 1 + 50);

      // Variables both ways: the key made in shared memory is on the hub.
      await until(async () => (await net.info("temp")).state === "live", "temp on the hub", 5_000);
      const p = await net.watch("temp", "poll");
      await local.cmd("write", { key: "temp", hex: "2a000000" });
      await until(() => Buffer.from(p!.read()).readUInt32LE(0) === 42, "the shm write on the hub", 5_000);
      await p!.write(Buffer.from("07000000", "hex"));
      await local.cmd("waitVersion", { key: "temp", n: 3 });
      assert.deepEqual(await local.cmd("read", { key: "temp" }), { value: 7, version: 3, status: "live" });
      // The bridge holds no reference in shared memory: the key's only holder there is `local`.
      const info = await observer.info("temp");
      assert.equal(info.state === "live" && info.refcount, 1);
      // A JSON config made in shared memory is bridged as a JSON config.
      const cfg = await observer.config("robot.cfg", { persistent: false });
      await cfg.write({ speed: 1 });
      await until(async () => (await net.peek("robot.cfg"))?.kind === "json", "the config on the hub", 5_000);
      const hubCfg = await net.config("robot.cfg");
      await until(async () => JSON.stringify(await hubCfg.read()) === '{"speed":1}', "its document", 5_000);
      await hubCfg.mergePatch({ limit: 3 });
      await until(
        async () => JSON.stringify(await cfg.read()) === '{"speed":1,"limit":3}',
        "the hub's patch in shared memory",
        5_000,
      );
    } finally {
      await observer.close();
      await net.close();
      await hub.close();
      await local.exit();
    }
  });

  it("a bridge killed with kill -9 mid-stream catches up when restarted: nothing within the histories is lost", async () => {
    const ns = namespace();
    const shmUrl = `shm:///${ns}` as const;
    const hub = await Hub.listen({ urls: ["tcp://127.0.0.1:0"] });
    const hubUrl = hub.urls[0]!;
    const shm: ShmClient = await connect(shmUrl, { name: "writer" });
    const net: HubClient = await connect(hubUrl, { name: "net" });
    const startBridge = async (): Promise<ChildProcess> => {
      const child = spawn(process.execPath, [cli, "bridge", shmUrl, "--url", hubUrl], {
        stdio: ["ignore", "pipe", "inherit"],
      });
      const lines = outputLines(child);
      await until(() => lines.some((l) => l.startsWith("bridging")), "the bridge to start", 10_000);
      return child;
    };
    let bridge: ChildProcess | null = null;
    try {
      await shm.publish("stream", "start");
      bridge = await startBridge();
      const onHub = new Set<string>();
      await until(async () => (await net.topics("stream")).length === 1, "stream on the hub", 5_000);
      await net.subscribe("stream", { init: "oldest" }, (m) => {
        onHub.add(m.text());
      });
      const onShm = new Set<string>();
      await shm.subscribe("stream", { init: "awaitNew" }, (m) => {
        if (m.headers[BRIDGED_HEADER] === "hub") onShm.add(m.text());
      });
      const n = 3_000;
      for (let i = 0; i < n; i++) {
        shm.publishAndForget("stream", `s${i}`);
        net.publishAndForget("stream", `h${i}`);
        if (i === 1_000) {
          await until(() => onHub.has("s500") && onShm.has("h500"), "the bridge to be midway", 10_000);
          bridge.kill("SIGKILL");
          await new Promise((r) => bridge!.once("exit", r));
        }
        if (i % 100 === 0) {
          await shm.drain();
          await net.drain();
        }
      }
      await shm.drain();
      await net.drain();
      bridge = await startBridge();
      const missing = () => {
        const m = Array.from({ length: n }, (_, i) => i);
        return { hub: m.filter((i) => !onHub.has(`s${i}`)), shm: m.filter((i) => !onShm.has(`h${i}`)) };
      };
      await until(
        () => missing().hub.length === 0 && missing().shm.length === 0,
        "every message on both sides",
        20_000,
      ).catch((err) => {
        const m = missing();
        throw new Error(
          `${(err as Error).message}: missing on the hub ${m.hub.length} (first ${m.hub.slice(0, 5)}), in shm ${m.shm.length} (first ${m.shm.slice(0, 5)})`,
        );
      });
    } finally {
      if (bridge) {
        bridge.kill("SIGINT");
        await within(new Promise((r) => bridge!.once("exit", r)), 10_000, "the bridge to exit");
      }
      await net.close();
      await shm.close();
      await hub.close();
    }
  });

  it("a hub restarted without its topics: the bridge forwards what they got since, and its checkpoint follows their seqs down", async () => {
    const ns = namespace();
    const shmUrl = `shm:///${ns}` as const;
    const tmp = tempDir();
    const sock = path.join(tmp.dir, "hub.sock");
    const hub = await Hub.listen({ urls: [`unix://${sock}`] });
    const shm: ShmClient = await connect(shmUrl, { name: "reader" });
    const startBridge = async (): Promise<ChildProcess> => {
      const child = spawn(process.execPath, [cli, "bridge", shmUrl, "--url", `unix://${sock}`], {
        stdio: ["ignore", "pipe", "inherit"],
      });
      const lines = outputLines(child);
      await until(() => lines.some((l) => l.startsWith("bridging")), "the bridge to start", 10_000);
      return child;
    };
    let bridge: ChildProcess | null = null;
    let hub2: Hub | undefined;
    try {
      const onShm: string[] = [];
      await shm.publish("t", "start");
      await shm.subscribe("t", { init: "oldest" }, (m) => {
        if (m.headers[BRIDGED_HEADER] === "hub") onShm.push(m.text());
      });
      bridge = await startBridge();
      const net = await connect(`unix://${sock}`, { name: "net" });
      await until(async () => (await net.topics("t")).length === 1, "t on the hub", 5_000);
      for (let i = 1; i <= 10; i++) await net.publish("t", `a${i}`);
      await until(() => onShm.includes("a10"), "a10 in shm", 10_000);
      await net.close();
      await hub.close();

      // The restarted hub (memory only) takes five messages before the bridge reaches it.
      let net2: HubClient | undefined;
      hub2 = await restartedHub(sock, {}, async (url) => {
        net2 = await connect(url, { name: "net2" });
        for (let i = 1; i <= 5; i++) await net2.publish("t", `x${i}`);
      });
      await until(() => onShm.includes("x5"), "what the restarted hub got, in shm", 10_000);
      assert.deepEqual(
        onShm.filter((t) => t.startsWith("x")),
        ["x1", "x2", "x3", "x4", "x5"],
      );
      // The checkpoint names the new run's seq 5, not the old run's 10: a bridge restarted once the hub's
      // topic is past 10 would otherwise skip seqs 6 to 10.
      const file = path.join(shm.dir, ".bridge.bridge.json");
      const checkpointed = () => {
        try {
          return (JSON.parse(readFileSync(file, "utf8")) as Record<string, { hub: string }>).t?.hub;
        } catch {
          return undefined;
        }
      };
      await until(() => checkpointed() === "5", "the checkpoint to follow the hub's seqs down", 5_000).catch(
        (err) => {
          throw new Error(`${(err as Error).message}: it names ${checkpointed()}`);
        },
      );
      bridge.kill("SIGKILL");
      await new Promise((r) => bridge!.once("exit", r));
      for (let i = 6; i <= 15; i++) await net2!.publish("t", `x${i}`);
      bridge = await startBridge();
      await until(() => onShm.includes("x15"), "x15 in shm", 10_000);
      assert.deepEqual(
        onShm.filter((t) => t.startsWith("x")),
        Array.from({ length: 15 }, (_, i) => `x${i + 1}`),
      );
      await net2!.close();
    } finally {
      if (bridge) {
        bridge.kill("SIGINT");
        await within(new Promise((r) => bridge!.once("exit", r)), 10_000, "the bridge to exit");
      }
      await shm.close();
      await hub2?.close();
      tmp.cleanup();
    }
  });

  it("a checkpoint it cannot trust (a link, bad entries, a link under its temporary name) is not used or followed", async () => {
    const ns = namespace();
    const shmUrl = `shm:///${ns}` as const;
    const shm: ShmClient = await connect(shmUrl, { name: "writer" });
    const tmp = tempDir();
    try {
      // Histories from before the bridge: a topic new to the bridge starts after them.
      const topics = ["linked", "neg", "huge", "text"];
      for (const t of topics) await shm.publish(t, "old");
      const file = path.join(shm.dir, ".bridge.bridge.json");
      // A checkpoint planted as a link: followed, it would resume "linked" from its start.
      const forged = path.join(tmp.dir, "forged.json");
      writeFileSync(forged, JSON.stringify({ linked: { shm: "0", hub: "0" } }));
      symlinkSync(forged, file);
      // A link where the bridge writes its next checkpoint: followed, that write would overwrite the victim.
      const victim = path.join(tmp.dir, "victim");
      writeFileSync(victim, "precious");
      symlinkSync(victim, `${file}.${process.pid}.tmp`);
      /**
       * Starts a hub bridging the namespace; once it shows the topics, subscribes to each from its oldest
       * message, publishes `text` to each in shm, and resolves with what each subscription got by then.
       */
      const bridged = async (text: string) => {
        const hub = await Hub.listen({
          urls: ["tcp://127.0.0.1:0"],
          bridge: shmBridge(shmUrl, { scanMs: 50 }),
        });
        const net = await connect(hub.urls[0]!, { name: "net" });
        await until(async () => (await net.topics()).length >= topics.length, "the topics on the hub", 5_000);
        const got: Record<string, string[]> = {};
        for (const t of topics) {
          got[t] = [];
          await net.subscribe(t, { init: "oldest" }, (m) => got[t]!.push(m.text()));
          await shm.publish(t, text);
        }
        await until(
          () => Object.values(got).every((g) => g.includes(text)),
          `each ${text} on the hub`,
          5_000,
        );
        return {
          got,
          close: async () => {
            await net.close();
            await hub.close();
          },
        };
      };
      const first = await bridged("new");
      try {
        assert.deepEqual(first.got.linked, ["new"], "the linked checkpoint was not followed");
        // The checkpoint is written (a file of its own, not through the link), and the victim is unchanged.
        await until(() => !lstatSync(file).isSymbolicLink(), "a checkpoint of the bridge's own", 5_000);
        assert.deepEqual(Object.keys(JSON.parse(readFileSync(file, "utf8")) as object).sort(), [
          "huge",
          "linked",
          "neg",
          "text",
        ]);
        assert.equal(readFileSync(victim, "utf8"), "precious");
      } finally {
        await first.close();
      }

      // Entries that are not two seqs are left out: those topics start as new ones do.
      writeFileSync(
        file,
        JSON.stringify({
          neg: { shm: "-5", hub: "1" },
          huge: { shm: "99999999999999999999999", hub: "0" },
          text: { shm: "x", hub: "0" },
          linked: null,
        }),
      );
      for (const t of topics) await shm.publish(t, "while stopped");
      const second = await bridged("after");
      try {
        for (const t of topics) assert.deepEqual(second.got[t], ["after"], t);
      } finally {
        await second.close();
      }
    } finally {
      await shm.close();
      tmp.cleanup();
    }
  });

  it("a message too large for the other side is left out, counted and logged; the next ones go on", async () => {
    const ns = namespace();
    const shmUrl = `shm:///${ns}` as const;
    // A hub taking frames of 64 KiB, and a shared-memory topic whose ring takes messages of 16 KiB at most.
    const hub = await Hub.listen({ urls: ["tcp://127.0.0.1:0"], maxFrameBytes: 64 * 1024 });
    const local = await connect(shmUrl, { name: "local" });
    await local.configureTopic("small", { maxBytes: 64 * 1024 });
    const bridge = await Bridge.start(hub.urls[0]!, shmUrl, { scanMs: 100 });
    const net = await connect(hub.urls[0]!, { name: "net" });
    try {
      await until(async () => (await net.topics("small")).length === 1, "small on the hub", 5_000);
      const onShm: string[] = [];
      await local.subscribe("small", { init: "awaitNew" }, (m) => {
        onShm.push(m.payload.length > 100 ? `${m.payload.length} B` : m.text());
      });
      // hub → shm: 20 KiB fits the hub's frame but not the ring.
      await net.publish("small", Buffer.alloc(20 * 1024, 1));
      await net.publish("small", "after-net");
      await until(() => onShm.includes("after-net"), "the next message in shared memory", 5_000);
      assert.deepEqual(onShm, ["after-net"]);
      assert.equal(bridge.counters.tooLarge, 1);
      assert.equal(bridge.counters.toShm, 1);
    } finally {
      await local.close();
      await net.close();
      await bridge.close();
      await hub.close();
    }
  });

  it("headers: the bridge's own fit within 64 or the message is left out (counted); headers a raw writer put in shared memory that the hub refuses likewise; the next ones go on", async () => {
    const ns = namespace();
    const shmUrl = `shm:///${ns}` as const;
    const hub = await Hub.listen({ urls: ["tcp://127.0.0.1:0"] });
    const local = await connect(shmUrl, { name: "local" });
    await local.configureTopic("h", {});
    const bridge = await Bridge.start(hub.urls[0]!, shmUrl, { scanMs: 100 });
    const net = await connect(hub.urls[0]!, { name: "net" });
    const many = (n: number) => Object.fromEntries(Array.from({ length: n }, (_, i) => [`k${i}`, "v"]));
    try {
      await until(async () => (await net.topics("h")).length === 1, "h on the hub", 5_000);
      const onShm: string[] = [];
      const shmHeaders: Record<string, string>[] = [];
      await local.subscribe("h", { init: "awaitNew" }, collect(onShm, shmHeaders));
      const onHub: string[] = [];
      const hubHeaders: Record<string, string>[] = [];
      await net.subscribe("h", { init: "awaitNew" }, collect(onHub, hubHeaders));
      // hub → shm: 61 headers take all three of the bridge's, 62 two, 63 one; 64 leave no room.
      for (const n of [61, 62, 63, 64]) await net.publish("h", `net-${n}`, { headers: many(n) });
      await net.publish("h", "net-after");
      await until(() => onShm.includes("net-after"), "the next message in shared memory", 5_000);
      assert.deepEqual(onShm, ["net-61", "net-62", "net-63", "net-after"]);
      const bridged = (h: Record<string, string>) =>
        [BRIDGED_HEADER, "ezipc-bridged-seq", ORIGIN_HEADER].filter((k) => h[k] !== undefined);
      assert.deepEqual(shmHeaders.map(bridged), [
        [BRIDGED_HEADER, "ezipc-bridged-seq", ORIGIN_HEADER],
        [BRIDGED_HEADER, "ezipc-bridged-seq"],
        [BRIDGED_HEADER],
        [BRIDGED_HEADER, "ezipc-bridged-seq", ORIGIN_HEADER],
      ]);
      assert.equal(Object.keys(shmHeaders[2]!).length, 64);
      assert.equal(bridge.counters.refused, 1);
      // shm → hub: the same from a shm:// publisher, and a packet written straight into the ring by a
      // program that does not check headers (70 of them: the hub takes 64 at most).
      for (const n of [63, 64]) await local.publish("h", `shm-${n}`, { headers: many(n) });
      const ring = new TopicRing(openShmFile(`/dev/shm/ezipc.${ns}/h`, KIND_TOPIC, 0o600));
      const meta = [Buffer.from([3]), Buffer.from("raw"), Buffer.from([70])];
      for (let i = 0; i < 70; i++) {
        const k = Buffer.from(`k${i}`);
        meta.push(Buffer.from([k.length, 0]), k, Buffer.from([1, 0]), Buffer.from("v"));
      }
      ring.append(Buffer.concat(meta), Buffer.from("raw-70"), Date.now());
      await local.publish("h", "shm-after");
      await until(() => onHub.includes("shm-after"), "the next message on the hub", 5_000);
      assert.deepEqual(
        onHub.filter((t) => t.startsWith("shm") || t.startsWith("raw")),
        ["shm-63", "shm-after"],
      );
      assert.equal(bridge.counters.refused, 3);
      assert.equal(bridge.counters.tooLarge, 0);
    } finally {
      await local.close();
      await net.close();
      await bridge.close();
      await hub.close();
    }
  });

  it("a standalone bridge whose hub restarts: what shared memory got meanwhile reaches the hub once it is back, messages and values", async () => {
    const set = await hubAndNamespace();
    const { url, shmUrl, local } = set;
    let hub = set.hub;
    await local.configureTopic("t", {});
    const k = await local.allocate("k", 2, "poll");
    await k.write(Buffer.from("v1"));
    const bridge = await Bridge.start(url, shmUrl, { scanMs: 100 });
    let net = await connect(url, { name: "net", reconnect: false });
    const valueOnHub = async () => {
      const v = await net.peek("k");
      return v ? Buffer.from(v.data).toString() : null;
    };
    try {
      await until(async () => (await net.topics("t")).length === 1, "t on the hub", 5_000);
      await until(async () => (await valueOnHub()) === "v1", "k on the hub", 5_000);
      const before: string[] = [];
      await net.subscribe("t", { init: "oldest" }, collect(before));
      for (let i = 0; i < 20; i++) await local.publish("t", `a${i}`);
      await until(() => before.length === 20, "the first messages on the hub", 5_000);
      await net.close();
      // The hub goes away (restarted without its topics): what is published in shared memory meanwhile
      // waits there, and goes to the hub once the bridge is connected again.
      await hub.close();
      for (let i = 0; i < 50; i++) await local.publish("t", `b${i}`);
      await k.write(Buffer.from("v2"));
      hub = await Hub.listen({ urls: [url] });
      for (let i = 0; i < 50; i++) await local.publish("t", `c${i}`);
      net = await connect(url, { name: "net2", reconnect: false });
      const after: string[] = [];
      const headers: Record<string, string>[] = [];
      await net.subscribe("t", { init: "oldest" }, collect(after, headers));
      await until(() => after.includes("c49"), "the last message on the restarted hub", 10_000);
      // The key, gone with the hub, is made again there with the value shared memory has now.
      await until(async () => (await valueOnHub()) === "v2", "k's new value on the restarted hub", 10_000);
      // At least once: each first copy in the order published; nothing of b or c is missing.
      const firsts = [...new Set(after)].filter((t) => !t.startsWith("a"));
      assert.deepEqual(firsts, [
        ...Array.from({ length: 50 }, (_, i) => `b${i}`),
        ...Array.from({ length: 50 }, (_, i) => `c${i}`),
      ]);
      assert.ok(bridge.counters.interrupted >= 1);
      assert.ok(headers.every((h) => h[BRIDGED_HEADER] === "shm"));
    } finally {
      await net.close();
      await local.close();
      await bridge.close();
      await hub.close();
    }
  });

  it("a topic made in shared memory while the hub is out of reach is bridged once it is back, from when it was found", async () => {
    const set = await hubAndNamespace();
    const { url, shmUrl, local } = set;
    let hub = set.hub;
    const bridge = await Bridge.start(url, shmUrl, { scanMs: 100, hub: { requestTimeoutMs: 500 } });
    let net: HubClient | null = null;
    try {
      await hub.close();
      await local.configureTopic("late", {});
      // The bridge finds it, and cannot link it: the hub is not there.
      await assert.rejects(bridge.scan(), (e: unknown) => isEzipcError(e));
      for (let i = 0; i < 10; i++) await local.publish("late", `x${i}`);
      hub = await Hub.listen({ urls: [url] });
      net = await connect(url, { name: "net", reconnect: false });
      const c = net;
      await until(async () => (await c.topics("late")).length === 1, "late on the hub", 10_000);
      const got: string[] = [];
      await net.subscribe("late", { init: "oldest" }, collect(got));
      await until(() => got.includes("x9"), "what was published while the hub was away", 10_000);
      assert.deepEqual(
        [...new Set(got)],
        Array.from({ length: 10 }, (_, i) => `x${i}`),
      );
    } finally {
      await net?.close();
      await local.close();
      await bridge.close();
      await hub.close();
    }
  });

  it("shared memory with no room: forwards to it wait and go on from where they stopped once there is room", async () => {
    // The fixture runs in a mount namespace of its own whose /dev/shm is a 16 MiB tmpfs.
    const child = spawnOnTmpfs("/dev/shm", "16m", [process.execPath, fixturePath("bridge-shm-full.js")]);
    const lines = outputLines(child);
    const code = await within(ended(child), 60_000, "the fixture's end");
    assert.ok(lines.includes("done"), `the fixture ran to its end (exit ${code}): ${lines.join(" | ")}`);
    assert.equal(code, 0);
    assert.match(lines.find((l) => l.startsWith("interrupted")) ?? "", /^interrupted [1-9]/);
    assert.ok(lines.includes("received 300 inorder"), lines.join(" | "));
  });

  it("a shared-memory key disposed there is released on the hub by the bridge", async () => {
    const ns = namespace();
    const shmUrl = `shm:///${ns}` as const;
    const local = await connect(shmUrl, { name: "local", disposeGraceMs: 50 });
    const hub = await Hub.listen({
      urls: ["tcp://127.0.0.1:0"],
      disposeGraceMs: 50,
      bridge: shmBridge(shmUrl, { scanMs: 50 }),
    });
    const net = await connect(hub.urls[0]!, { name: "net" });
    try {
      const p = await local.allocate("short.lived", 8, "poll");
      await until(() => hub.peek("short.lived")?.refcount === 1, "the bridge's pointer on the hub", 5_000);
      p.dispose();
      await until(
        async () => (await local.info("short.lived")).state === "disposed",
        "disposed in shm",
        5_000,
      );
      await until(() => hub.peek("short.lived") === undefined, "released and disposed on the hub", 5_000);
    } finally {
      await net.close();
      await hub.close();
      await local.close();
    }
  });
});
