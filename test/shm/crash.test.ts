import assert from "node:assert/strict";
import type { ChildProcess } from "node:child_process";
import { rmSync } from "node:fs";
import path from "node:path";
import { after, describe, it } from "node:test";
import { crc32 } from "node:zlib";
import { KIND_TOPIC } from "../../src/shm/layout.js";
import { type RingCursor, type RingMessage, TopicRing } from "../../src/shm/ring.js";
import { namespaceDir, openOrCreateShmFile } from "../../src/shm/shm-file.js";
import { seededRandom, spawnFixture, until, within } from "../helpers.js";

const ns = `test-crash-${process.pid}`;
const dir = namespaceDir(ns);
after(() => rmSync(dir, { recursive: true, force: true }));

/** Checks one message as shm-writer wrote it; returns [writer, counter]. */
function check(m: RingMessage): [number, number] {
  const b = m.body;
  assert.ok(b.length >= 12, `message ${m.seqNumber}: ${b.length} bytes`);
  const end = b.length - 4;
  assert.equal(b.readUInt32LE(end), crc32(b.subarray(0, end)), `message ${m.seqNumber} is torn`);
  const writer = b.readUInt32LE(0);
  assert.equal(m.meta.toString(), `w${writer}`);
  return [writer, b.readUInt32LE(4)];
}

function killed(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => child.once("exit", () => resolve()));
}

describe("shm ring, crash consistency (separate processes, kill -9)", () => {
  it("100 writers killed at random moments while publishing: every message read is whole, per-writer order holds, writing goes on", async () => {
    const file = path.join(dir, "crash.topic");
    const ring = new TopicRing(openOrCreateShmFile(file, KIND_TOPIC, 64 * 1024, 0, 0o600));
    const random = seededRandom(20261130);
    const cursor: RingCursor = { seq: 1, offset: -1 };
    const lastCounter = new Map<number, number>();
    let read = 0;
    let gaps = 0;
    let stop = false;
    const verify = (out: RingMessage[]) => {
      for (const m of out) {
        const [w, c] = check(m);
        const prev = lastCounter.get(w);
        if (prev !== undefined) assert.ok(c > prev, `writer ${w}: ${c} after ${prev}`);
        lastCounter.set(w, c);
        read++;
      }
    };
    // The reader runs in this process while writers in others append and die.
    const reader = (async () => {
      const out: RingMessage[] = [];
      while (!stop) {
        out.length = 0;
        ring.read(cursor, 256, out, () => gaps++);
        verify(out);
        await new Promise((r) => setImmediate(r));
      }
    })();
    let writerId = 0;
    for (let round = 0; round < 50; round++) {
      const writers = await Promise.all(
        [0, 1].map(() => spawnFixture("shm-writer.js", [file, String(++writerId)])),
      );
      const from = ring.state().next;
      const more = 1 + Math.floor(random() * 3000);
      await until(() => ring.state().next >= from + more, `round ${round}: ${more} appends`, 10_000);
      for (const w of writers) w.child.kill("SIGKILL");
      await within(Promise.all(writers.map((w) => killed(w.child))), 5_000, "writers to die");
    }
    // Publishing goes on after the last kill (the lock is taken over if a writer died holding it).
    const last = await spawnFixture("shm-writer.js", [file, String(++writerId), "2000"]);
    await within(killed(last.child), 10_000, "the last writer to finish");
    assert.equal(last.child.exitCode, 0);
    stop = true;
    await reader;
    const out: RingMessage[] = [];
    while (ring.read(cursor, 1000, out, () => gaps++) > 0) {
      verify(out);
      out.length = 0;
    }
    const s = ring.state();
    assert.equal(cursor.seq, s.next, "the reader reached the end");
    assert.equal(lastCounter.get(writerId), 1999, "the last writer's messages are all there");
    assert.ok(read > 1000, `read ${read}`);
    // At least one writer died holding the lock, and the next one took over.
    assert.ok(s.recoveries >= 1, `recoveries ${s.recoveries}`);
    // The whole history still reads back whole from its oldest message.
    const all: RingMessage[] = [];
    const c2 = { seq: s.tailSeq, offset: -1 };
    while (ring.read(c2, 1000, all, () => assert.fail("no gap in a quiet ring")) > 0);
    for (const m of all) check(m);
    assert.equal(all.length, s.next - s.tailSeq);
  });
});
