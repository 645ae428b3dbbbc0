// A fault stays with its cause: a peer killed with kill -9 at a random moment of a stream, a session or a
// subscription ends what it took part in, and the other side — an innocent connection with its own
// pointers, subscriptions and deadman token — carries on, never reset.
import assert from "node:assert/strict";
import { readdirSync, readFileSync } from "node:fs";
import net from "node:net";
import { after, before, describe, it } from "node:test";
import { connect, Hub, type HubClient, type IpcPtr, isEzipcError } from "../../src/index.js";
import { seededRandom, until, within } from "../helpers.js";
import { ChildClient } from "./child-client.js";

const ROUNDS = 8;

describe("faults stay with their cause (kill -9 at random moments)", () => {
  let hub: Hub;
  let url: string;
  let innocent: HubClient;
  let ptr: IpcPtr<"poll">;
  const statusChanges: string[] = [];
  const random = seededRandom(2026);
  let round = 0;

  before(async () => {
    hub = await Hub.listen({ urls: ["tcp://127.0.0.1:0"] });
    url = hub.urls[0]!;
    innocent = await connect(url, { name: "innocent" });
    innocent.on("status", (s) => statusChanges.push(s));
    ptr = await innocent.allocate("innocent.key", 4, "poll");
    await innocent.deadman("innocent.token").take();
  });

  after(async () => {
    ptr.dispose();
    await innocent.close();
    await hub.close();
  });

  /** The innocent client still holds everything, on the same connection. */
  async function assertUntouched(what: string): Promise<void> {
    assert.deepEqual(statusChanges, [], `${what}: the innocent client's connection was never lost`);
    assert.equal(ptr.status, "live");
    assert.equal((await innocent.deadman("innocent.token").state()).mine, true, `${what}: token kept`);
    assert.equal(hub.peek("innocent.key")!.refcount, 1);
  }

  /** Starts a child, runs `setUp` on it, waits for `k` (random) progress events, then kills it. */
  async function killDuring(op: string, topic: string): Promise<ChildClient> {
    const child = await ChildClient.start(url, `victim${round++}`);
    await child.cmd(op, { key: topic });
    const k = 5 * (1 + Math.floor(random() * 8));
    await child.event((e) => e.event === "progress" && (e.n as number) >= k, 10_000, `${k} messages`);
    await child.kill("SIGKILL");
    return child;
  }

  it("a stream server dies while the innocent caller reads with prefetch 2", async () => {
    for (let i = 0; i < ROUNDS; i++) {
      const child = await ChildClient.start(url, `server${i}`);
      await child.cmd("serveStream", { key: `s.stream${i}` });
      const stream = await innocent.requestStream(`s.stream${i}`, "", { prefetch: 2, timeoutMs: 0 });
      const k = 1 + Math.floor(random() * 40);
      let n = 0;
      let error: unknown = null;
      try {
        for await (const _ of stream) {
          if (++n === k) void child.kill("SIGKILL");
        }
      } catch (err) {
        error = err;
      }
      assert.ok(isEzipcError(error, "EZIPC_SERVER_GONE"), `round ${i}: ${String(error)}`);
      await assertUntouched(`stream server round ${i}`);
    }
  });

  it("a stream caller dies while the innocent server streams to it", async () => {
    let aborted = 0;
    await innocent.serve("s.produce", async function* (req) {
      try {
        for (let i = 0; i < 1_000_000 && !req.signal.aborted; i++) yield String(i);
      } finally {
        aborted++; // the generator is ended (return()) when the call is aborted
      }
    });
    for (let i = 0; i < ROUNDS; i++) {
      await killDuring("consumeStream", "s.produce");
      await until(() => aborted === i + 1, `round ${i}: the handler's signal to abort`);
      await assertUntouched(`stream caller round ${i}`);
    }
  });

  it("a session opener dies: the innocent acceptor's session ends with EZIPC_SERVER_GONE", async () => {
    const ends: (string | null)[] = [];
    await innocent.acceptSessions("s.accept", async (session) => {
      void session.closed().then((e) => ends.push(e?.code ?? null));
      for await (const m of session) await session.send(m).catch(() => {});
    });
    for (let i = 0; i < ROUNDS; i++) {
      await killDuring("openSession", "s.accept");
      await until(() => ends.length === i + 1, `round ${i}: the session to end`);
      assert.equal(ends[i], "EZIPC_SERVER_GONE", `round ${i}`);
      await assertUntouched(`session opener round ${i}`);
    }
  });

  it("a session acceptor dies: the innocent opener's session ends with EZIPC_SERVER_GONE", async () => {
    for (let i = 0; i < ROUNDS; i++) {
      const child = await ChildClient.start(url, `acceptor${i}`);
      await child.cmd("acceptSessions", { key: `s.open${i}` });
      const session = await innocent.openSession(`s.open${i}`, { prefetch: 2 });
      const k = 1 + Math.floor(random() * 40);
      const sending = (async () => {
        for (let j = 0; j < 100_000; j++) await session.send(String(j));
      })().catch(() => {});
      let n = 0;
      try {
        for await (const _ of session) if (++n === k) void child.kill("SIGKILL");
      } catch {
        // the iterator throws the session's error, checked below
      }
      const error = await within(session.closed(), 5_000, "the session to end");
      assert.equal(error?.code, "EZIPC_SERVER_GONE", `round ${i}`);
      await sending;
      await assertUntouched(`session acceptor round ${i}`);
    }
  });

  it("a slow subscriber dies while the innocent client publishes at full speed", async () => {
    for (let i = 0; i < ROUNDS; i++) {
      const topic = `s.pub${i}`;
      const child = await ChildClient.start(url, `subscriber${i}`);
      await child.cmd("subscribeSlow", { key: topic });
      const k = 5 * (1 + Math.floor(random() * 8));
      let progressed = false;
      void child
        .event((e) => e.event === "progress" && (e.n as number) >= k, 10_000, "progress")
        .then(
          () => {
            progressed = true;
            void child.kill("SIGKILL");
          },
          () => {},
        );
      for (let j = 0; j < 200_000 && child.child.exitCode === null && child.child.signalCode === null; j++) {
        if (!innocent.publishAndForget(topic, String(j))) await innocent.drain();
        if (j % 256 === 0) await new Promise((r) => setImmediate(r));
      }
      await child.exited;
      assert.ok(progressed, `round ${i}: the subscriber received messages before it died`);
      await innocent.publish(topic, "after");
      await assertUntouched(`subscriber round ${i}`);
    }
  });
});

describe("the hub sends only through send.ts", () => {
  it("no hub-side module calls Connection.send or sendParts directly (a closing peer would throw there)", () => {
    // The hub's folder, and the hub side of every capability (src/*/*-hub.ts).
    const src = new URL("../../../src/", import.meta.url);
    const files = [
      ...readdirSync(new URL("hub/", src)).map((f) => `hub/${f}`),
      ...readdirSync(src, { withFileTypes: true })
        .filter((d) => d.isDirectory())
        .flatMap((d) => readdirSync(new URL(`${d.name}/`, src)).map((f) => `${d.name}/${f}`))
        .filter((f) => f.endsWith("-hub.ts")),
    ];
    assert.ok(files.includes("vars/vars-hub.ts") && files.includes("deadman/deadman-hub.ts"));
    for (const file of files) {
      const source = readFileSync(new URL(file, src), "utf8");
      const direct = source.split("\n").filter((l) => /\.send(Parts)?\(/.test(l) && !/this\.send\(/.test(l));
      assert.deepEqual(direct, [], `${file} sends directly`);
    }
  });
});

describe("a server that accepts and closes at once (not a hub, or one shutting down)", () => {
  it("fails a first connect at once; a client that was connected retries it with a growing delay", async () => {
    let accepted = 0;
    const closer = net.createServer((s) => {
      accepted++;
      s.destroy();
    });
    await new Promise<void>((r) => closer.listen(0, "127.0.0.1", r));
    const port = (closer.address() as net.AddressInfo).port;
    try {
      await assert.rejects(within(connect(`tcp://127.0.0.1:${port}`), 5_000, "the first connect"), (e) =>
        isEzipcError(e),
      );
      assert.equal(accepted, 1, "one attempt, not a retry every 100 ms");

      // A client whose hub goes away and whose address then only accepts and closes.
      const hub = await Hub.listen({ urls: ["tcp://127.0.0.1:0"] });
      const url = hub.urls[0]!;
      const hubPort = Number(new URL(url).port);
      const c = await connect(url, { reconnect: { initialDelayMs: 5, maxDelayMs: 10_000, jitter: 0 } });
      const attempts: number[] = [];
      (c as unknown as { dialer: NodeJS.EventEmitter }).dialer.on(
        "status",
        (s: { type: string; attempt: number }) => {
          if (s.type === "reconnecting") attempts.push(s.attempt);
        },
      );
      await hub.close();
      const impostor = net.createServer((s) => s.destroy());
      await new Promise<void>((r) => impostor.listen(hubPort, "127.0.0.1", r));
      try {
        await until(() => attempts.length >= 6, "six retries", 10_000);
        // Each failed connection counts: the delays grow (5, 10, 20, … ms), they do not start over.
        assert.deepEqual(attempts.slice(0, 6), [1, 2, 3, 4, 5, 6]);
      } finally {
        await c.close();
        await new Promise((r) => impostor.close(r));
      }
    } finally {
      await new Promise((r) => closer.close(r));
    }
  });
});
