// Durability under kill -9: a seq or a version once shown is never given again to something else.
// The hub runs as the CLI in its own process with --data; a second SQLite connection holds the write lock
// (a slow or stuck disk) while clients publish and write, then the hub is killed and restarted.
import assert from "node:assert/strict";
import type { ChildProcess } from "node:child_process";
import path from "node:path";
import { describe, it } from "node:test";
import Database from "better-sqlite3";
import { connect, type HubClient, type TopicMessage } from "../../src/index.js";
import { seededRandom, tempDir, until, within } from "../helpers.js";
import { startCliHub } from "./hubs.js";

async function kill9(child: ChildProcess): Promise<void> {
  const exited = new Promise((resolve) => child.once("exit", resolve));
  child.kill("SIGKILL");
  await within(exited, 5_000, "hub to die");
}

/** Waits until the hub's own counters satisfy `done` (a condition on state, not a sleep). */
function untilStats(c: HubClient, done: (s: Awaited<ReturnType<HubClient["stats"]>>) => boolean) {
  return until(async () => done(await c.stats()), "hub counters", 10_000);
}

describe("durability across kill -9 of the hub", () => {
  it("a persisted topic never gives a seq twice, and what was acknowledged survives (6 rounds, slow disk and full load)", async () => {
    const tmp = tempDir();
    const sock = path.join(tmp.dir, "hub.sock");
    const data = path.join(tmp.dir, "data");
    const url = `unix://${sock}`;
    const topic = "durable.events";
    const seen = new Map<bigint, string>(); // every seq any subscriber ever saw, with its payload
    const acked = new Map<bigint, string>(); // every publish the hub acknowledged
    const random = seededRandom(11);
    let hub: ChildProcess | null = null;
    const clients: HubClient[] = [];
    try {
      for (let round = 0; round < 6; round++) {
        hub = await startCliHub(sock, data, [], true);
        const pub = await connect(url, { name: `pub${round}` });
        const sub = await connect(url, { name: `sub${round}` });
        clients.push(pub, sub);
        await pub.configureTopic(topic, { persist: true });
        let maxSeq = 0n;
        const record = (m: TopicMessage) => {
          const payload = Buffer.from(m.payload).toString();
          const before = seen.get(m.seq);
          assert.ok(
            before === undefined || before === payload,
            `seq ${m.seq} was ${before} and is now ${payload} (round ${round})`,
          );
          seen.set(m.seq, payload);
          if (m.seq > maxSeq) maxSeq = m.seq;
        };
        await sub.subscribe(topic, { init: "oldest", prefetch: 4096 }, record);
        // Everything earlier rounds' subscribers saw or publishers were told is still there, unchanged.
        const [info] = await pub.topics(topic);
        await until(() => maxSeq >= info!.lastSeq, `history up to ${info!.lastSeq}`, 10_000);
        for (const [seq, payload] of acked) assert.equal(seen.get(seq), payload, `acked seq ${seq}`);

        // Acknowledged publishes: durable before the ack.
        for (let i = 0; i < 20; i++) {
          const payload = `r${round}-ack${i}`;
          const { seq } = await pub.publish(topic, payload);
          acked.set(seq, payload);
        }
        const published = (await pub.stats()).published;
        const [shownBefore] = await pub.topics(topic);
        const lock = round % 2 === 0 ? new Database(path.join(data, "hub.db")) : null;
        lock?.exec("BEGIN IMMEDIATE"); // the store's write lock, held: commits fail and are retried
        const n = 2_000 + Math.floor(random() * 3_000);
        const inFlight: Promise<unknown>[] = [];
        for (let i = 0; i < n; i++) {
          try {
            if (i % 500 === 0) {
              const payload = `r${round}-late${i}`;
              inFlight.push(
                pub.publish(topic, payload).then(
                  (r) => acked.set(r.seq, payload),
                  () => {},
                ),
              );
            } else if (!pub.publishAndForget(topic, `r${round}-${i}`)) await pub.drain();
          } catch {
            break; // the hub is gone
          }
        }
        // Kill once the hub has taken a random share of them (under the lock: none is committed).
        const share = lock ? n : Math.floor(random() * n);
        await untilStats(pub, (s) => s.published >= published + share).catch(() => {});
        if (lock) {
          const [shown] = await pub.topics(topic);
          assert.equal(shown!.lastSeq, shownBefore!.lastSeq, "topics() shows nothing uncommitted");
          assert.ok(maxSeq <= shownBefore!.lastSeq, "no subscriber got an uncommitted message");
        }
        await kill9(hub);
        hub = null;
        lock?.exec("ROLLBACK");
        lock?.close();
        await Promise.all(inFlight);
        await pub.close();
        await sub.close();
      }
      hub = await startCliHub(sock, data, [], true);
      const reader = await connect(url, { name: "reader" });
      clients.push(reader);
      const [info] = await reader.topics(topic);
      const all = new Map<bigint, string>();
      await reader.subscribe(topic, { init: "oldest", prefetch: 4096 }, (m) => {
        all.set(m.seq, Buffer.from(m.payload).toString());
      });
      await until(() => all.size >= Number(info!.count), "the whole history", 10_000);
      for (const [seq, payload] of all) {
        const before = seen.get(seq);
        assert.ok(before === undefined || before === payload, `seq ${seq}: ${before} then ${payload}`);
      }
      for (const [seq, payload] of acked) assert.equal(all.get(seq), payload, `acked seq ${seq}`);
      assert.ok(acked.size >= 6 * 20, "every round's acknowledged publishes were counted");
      await reader.close();
    } finally {
      await Promise.all(clients.map((c) => c.close()));
      if (hub) await kill9(hub);
      tmp.cleanup();
    }
  });

  it("a persistent key never shows a version that a crash takes back", async () => {
    const tmp = tempDir();
    const sock = path.join(tmp.dir, "hub.sock");
    const data = path.join(tmp.dir, "data");
    const url = `unix://${sock}`;
    const seen = new Map<number, string>(); // version → value, as holders saw them
    let hub: ChildProcess | null = null;
    const clients: HubClient[] = [];
    try {
      for (let round = 0; round < 3; round++) {
        hub = await startCliHub(sock, data, [], true);
        const writer = await connect(url, { name: `w${round}` });
        const holder = await connect(url, { name: `h${round}` });
        clients.push(writer, holder);
        const w = await writer.allocate("durable.key", 8, "request", {
          persistent: true,
          openExisting: true,
        });
        const h = (await holder.watch("durable.key", "poll"))!;
        const note = (version: number, value: Uint8Array | undefined) => {
          if (!value) return;
          const text = Buffer.from(value).toString("hex");
          const before = seen.get(version);
          assert.ok(before === undefined || before === text, `version ${version}: ${before} then ${text}`);
          seen.set(version, text);
        };
        h.on("change", ({ version, data }) => note(version, data));
        note(h.version, h.read());
        // One acknowledged write, then writes under a held lock: none may show.
        const ok = await w.write(Buffer.from(`ok-${round}-000`));
        note(ok, Buffer.from(`ok-${round}-000`));
        const lock = new Database(path.join(data, "hub.db"));
        lock.exec("BEGIN IMMEDIATE");
        const pending = [1, 2, 3].map((i) => w.write(Buffer.from(`lk-${round}-00${i}`)).catch(() => 0));
        await untilStats(writer, (s) => s.writes >= 4);
        assert.equal(h.version, ok, "no holder sees an uncommitted version");
        assert.equal((await holder.peek("durable.key"))!.version, ok);
        await kill9(hub);
        hub = null;
        lock.exec("ROLLBACK");
        lock.close();
        await Promise.all(pending);
        await writer.close();
        await holder.close();
      }
    } finally {
      await Promise.all(clients.map((c) => c.close()));
      if (hub) await kill9(hub);
      tmp.cleanup();
    }
  });
});
