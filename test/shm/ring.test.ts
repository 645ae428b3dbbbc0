import assert from "node:assert/strict";
import { closeSync, openSync, rmSync, truncateSync, writeFileSync, writeSync } from "node:fs";
import path from "node:path";
import { after, describe, it } from "node:test";
import { isEzipcError } from "../../src/errors.js";
import { KIND_TOPIC, P_SEQ_HI, P_SEQ_LO, P_SIZE, P_TIME } from "../../src/shm/layout.js";
import { PackedMessages } from "../../src/shm/packed.js";
import { type RingCursor, type RingMessage, TopicRing } from "../../src/shm/ring.js";
import { namespaceDir, openOrCreateShmFile, openShmFile } from "../../src/shm/shm-file.js";

const ns = `test-ring-${process.pid}`;
const dir = namespaceDir(ns);
after(() => rmSync(dir, { recursive: true, force: true }));
let n = 0;

function ring(ringBytes = 4096, maxCount = 0): TopicRing {
  return new TopicRing(
    openOrCreateShmFile(path.join(dir, `t${n++}`), KIND_TOPIC, ringBytes, maxCount, 0o600),
  );
}

function readAll(r: TopicRing, cursor: RingCursor, gaps: [number, number][] = []): RingMessage[] {
  const out: RingMessage[] = [];
  while (r.read(cursor, 100, out, (a, b) => gaps.push([a, b])) > 0);
  return out;
}

describe("shm ring (one process)", () => {
  it("appends get seqs 1, 2, …; a reader copies them back with meta, body and time", () => {
    const r = ring();
    const t = Date.now();
    for (let i = 0; i < 10; i++)
      assert.equal(r.append(Buffer.from(`m${i}`), Buffer.from(`body ${i}`), t + i), i + 1);
    const got = readAll(r, { seq: 1, offset: -1 });
    assert.deepEqual(
      got.map((m) => [m.seqNumber, m.meta.toString(), m.body.toString(), m.time]),
      Array.from({ length: 10 }, (_, i) => [i + 1, `m${i}`, `body ${i}`, t + i]),
    );
    const s = r.state();
    assert.equal(s.next, 11);
    assert.equal(s.tailSeq, 1);
  });

  it("a body given in two parts (head, then body) is one body in the ring, across wraps", () => {
    const r = ring(4096);
    const sent: string[] = [];
    for (let i = 0; i < 500; i++) {
      const head = Buffer.from([65 + (i % 26), 66]);
      const body = Buffer.from(`-${"x".repeat(i % 37)}${i}`);
      r.append(Buffer.from(`m${i % 5}`), body, 0, undefined, head);
      sent.push(head.toString() + body.toString());
    }
    const got = readAll(r, { seq: 1, offset: -1 }, []);
    // Only the newest fit in 4 KiB: each kept one is whole, in order.
    assert.ok(got.length > 5);
    for (const m of got) assert.equal(m.body.toString(), sent[m.seqNumber - 1]);
    assert.equal(got.at(-1)!.seqNumber, 500);
  });

  it("wraps around many times with pads; a reader that keeps up sees every message in order", () => {
    const r = ring(4096);
    const cursor: RingCursor = { seq: 1, offset: -1 };
    let expect = 1;
    for (let i = 0; i < 2_000; i++) {
      const len = (i * 37) % 300; // sizes that leave pads of every length at the ring's end
      r.append(Buffer.alloc(0), Buffer.alloc(len, i & 0xff), 0);
      if (i % 3 === 0) {
        for (const m of readAll(r, cursor)) {
          assert.equal(m.seqNumber, expect++);
          const k = m.seqNumber - 1;
          assert.equal(m.body.length, (k * 37) % 300);
          assert.ok(m.body.every((b) => b === (k & 0xff)));
        }
      }
    }
    for (const m of readAll(r, cursor)) assert.equal(m.seqNumber, expect++);
    assert.equal(expect, 2_001);
  });

  it("the oldest are evicted by bytes and by count; a late reader gets a gap, then the rest", () => {
    const r = ring(4096);
    for (let i = 0; i < 100; i++) r.append(Buffer.alloc(0), Buffer.alloc(100, 1), 0);
    const s = r.state();
    assert.equal(s.next, 101);
    assert.ok(s.tailSeq > 1 && s.used <= 4096);
    const gaps: [number, number][] = [];
    const got = readAll(r, { seq: 1, offset: -1 }, gaps);
    assert.deepEqual(gaps, [[1, s.tailSeq - 1]]);
    assert.equal(got[0]!.seqNumber, s.tailSeq);
    assert.equal(got.at(-1)!.seqNumber, 100);

    const c = ring(65536, 5);
    for (let i = 0; i < 12; i++) c.append(Buffer.alloc(0), Buffer.from([i]), 0);
    const kept = readAll(c, { seq: 1, offset: -1 });
    assert.deepEqual(
      kept.map((m) => m.seqNumber),
      [8, 9, 10, 11, 12],
    );
  });

  it("a reader caught up at the ring's end finds the next message at offset 0 after its pad was reused", () => {
    const r = ring(4096);
    const body = (n: number) => Buffer.alloc(n - 32, 7); // packet size n (32-byte packet head)
    for (let i = 0; i < 7; i++) r.append(Buffer.alloc(0), body(512), 0); // head at 3584
    const cursor: RingCursor = { seq: 1, offset: -1 };
    assert.equal(readAll(r, cursor).length, 7);
    assert.deepEqual(cursor, { seq: 8, offset: 3584 });
    r.append(Buffer.alloc(0), Buffer.alloc(1024 - 32, 8), 0); // does not fit: pad at 3584, message 8 at 0
    for (let i = 0; i < 6; i++) r.append(Buffer.alloc(0), body(512), 0); // the 6th goes where the pad was
    assert.equal(r.state().tailSeq, 8, "message 8 is still kept");
    const got = readAll(r, cursor);
    assert.deepEqual(
      got.map((m) => m.seqNumber),
      [8, 9, 10, 11, 12, 13, 14],
    );
    assert.equal(got[0]!.body[0], 8);
  });

  it("a message over a quarter of the ring is refused with EZIPC_SHM_TOO_LARGE, and nothing is written", () => {
    const r = ring(4096);
    assert.throws(
      () => r.append(Buffer.alloc(0), Buffer.alloc(1100), 0),
      (e) => isEzipcError(e, "EZIPC_SHM_TOO_LARGE"),
    );
    assert.equal(r.state().next, 1);
  });

  it("reading from any seq finds its packet (fromSeq), and the newest directly", () => {
    const r = ring(8192);
    for (let i = 0; i < 300; i++) r.append(Buffer.alloc(0), Buffer.from(String(i + 1)), 0);
    const s = r.state();
    for (const seq of [s.tailSeq, s.tailSeq + 7, s.next - 1]) {
      const out: RingMessage[] = [];
      r.read({ seq, offset: -1 }, 1, out, () => assert.fail("no gap"));
      assert.equal(out[0]!.seqNumber, seq);
      assert.equal(out[0]!.body.toString(), String(seq));
    }
  });

  it("a file that is truncated, foreign or of another version is refused with EZIPC_SHM_BAD_FILE", () => {
    const r = ring(4096);
    const file = r.file.path;
    const isBad = (e: unknown) => isEzipcError(e, "EZIPC_SHM_BAD_FILE");
    truncateSync(file, 5000);
    assert.throws(() => openShmFile(file, KIND_TOPIC, 0o600), isBad);
    truncateSync(file, 100);
    assert.throws(() => openShmFile(file, KIND_TOPIC, 0o600), isBad);
    const foreign = path.join(dir, "foreign");
    writeFileSync(foreign, Buffer.alloc(8192, 0x41));
    assert.throws(() => openShmFile(foreign, KIND_TOPIC, 0o600), isBad);
    const other = ring(4096).file.path;
    const b = Buffer.alloc(4);
    b.writeUInt32LE(99);
    writeAt(other, 4, b); // layout version 99
    assert.throws(() => openShmFile(other, KIND_TOPIC, 0o600), isBad);
  });

  it("a corrupted state or packet header is refused with EZIPC_SHM_BAD_FILE, not a crash", () => {
    const r = ring(4096);
    for (let i = 0; i < 5; i++) r.append(Buffer.alloc(0), Buffer.from("x"), 0);
    // Corrupt the packet at seq 3's header (size word), then read through it.
    const out: RingMessage[] = [];
    const cursor = { seq: 1, offset: -1 };
    r.read(cursor, 2, out, () => {});
    r.file.u32[(4096 + cursor.offset) / 4] = 12345;
    assert.throws(
      () => r.read(cursor, 10, out, () => {}),
      (e) => isEzipcError(e, "EZIPC_SHM_BAD_FILE"),
    );
    // A state block with head past the ring.
    const s = ring(4096);
    s.file.u32[(128 + 16) / 4] = 1 << 30;
    assert.throws(
      () => s.state(),
      (e) => isEzipcError(e, "EZIPC_SHM_BAD_FILE"),
    );
  });

  it("batches into a full ring are placed as blocks: the newest is where the state says, all kept ones whole", () => {
    const r = ring(64 * 1024);
    const batch = new PackedMessages();
    let sent = 0;
    for (let round = 0; round < 300; round++) {
      const count = 2 + (round % 40);
      for (let k = 0; k < count; k++, sent++)
        batch.add(Buffer.from(`m${sent}`), Buffer.alloc(sent % 97, sent & 0xff));
      assert.equal(r.appendMany(batch, 0, batch.count, round), count);
      batch.clear();
      const s = r.state();
      assert.equal(s.next, sent + 1);
      // The newest, found from the state's `last` (init newest), is the last one appended.
      const newest: RingMessage[] = [];
      r.read({ seq: s.next - 1, offset: -1 }, 1, newest, () => assert.fail("no gap at the newest"));
      assert.equal(newest[0]!.meta.toString(), `m${sent - 1}`);
      // Every message kept, from the oldest, is whole and in order.
      const kept = readAll(r, { seq: s.tailSeq, offset: s.tail });
      assert.equal(kept.length, s.next - s.tailSeq);
      kept.forEach((m, j) => {
        const k = s.tailSeq + j - 1;
        assert.equal(m.seqNumber, k + 1);
        assert.equal(m.meta.toString(), `m${k}`);
        assert.ok(
          m.body.length === k % 97 && m.body.every((b) => b === (k & 0xff)),
          `message ${k + 1} is whole`,
        );
      });
    }
    assert.ok(r.state().tailSeq > 1, "the ring filled and evicted");
  });

  it("reads copy into shared blocks: short reads share one ArrayBuffer, and no copy handed out is written again", () => {
    const r = ring(1024 * 1024);
    const cursor = { seq: 1, offset: -1 };
    const kept: RingMessage[] = [];
    // Short reads (three messages each), as a subscriber that keeps up makes them; more than a block's worth.
    for (let round = 0; round < 1_200; round++) {
      for (let k = 0; k < 3; k++) {
        const i = round * 3 + k;
        r.append(Buffer.from(`m${i}`), Buffer.alloc(64 + (i % 50), i & 0xff), i);
      }
      const out: RingMessage[] = [];
      assert.equal(
        r.read(cursor, 100, out, () => assert.fail("no gap")),
        3,
      );
      kept.push(...out);
    }
    const buffers = new Set(kept.map((m) => m.body.buffer));
    assert.ok(buffers.size <= 3, `${kept.length} messages in ${buffers.size} ArrayBuffers`);
    assert.ok(buffers.size >= 2, "the reads went past one block");
    kept.forEach((m, i) => {
      assert.equal(m.seqNumber, i + 1);
      assert.equal(m.meta.toString(), `m${i}`);
      assert.ok(
        m.body.length === 64 + (i % 50) && m.body.every((b) => b === (i & 0xff)),
        `message ${i + 1} is intact`,
      );
      assert.equal(m.time, i);
    });
  });

  it("a batch's packets get consecutive seqs and the time, across 2^32 (the seq's two words)", () => {
    const batch = new PackedMessages();
    for (let k = 0; k < 5; k++) batch.add(Buffer.from(`m${k}`), Buffer.alloc(k * 9, k));
    const dst = new Uint8Array(batch.bytes + 64);
    const u32 = new Uint32Array(dst.buffer);
    const f64 = new Float64Array(dst.buffer);
    const first = 2 ** 32 - 3;
    const time = 1_700_000_000_123.5;
    batch.writePackets(1, 5, dst, u32, f64, 8, first, time);
    let at = 8;
    for (let k = 1; k < 5; k++) {
      const seq = first + (k - 1);
      assert.equal(u32[(at + P_SEQ_LO) / 4], seq % 2 ** 32, `packet ${k}: low word`);
      assert.equal(u32[(at + P_SEQ_HI) / 4], Math.floor(seq / 2 ** 32), `packet ${k}: high word`);
      assert.equal(f64[(at + P_TIME) / 8], time);
      assert.equal(u32[(at + P_SIZE) / 4], batch.packetBytes(k));
      at += batch.packetBytes(k);
    }
    assert.equal(at - 8, batch.bytesBetween(1, 5));
  });

  it("the rest of a batch (held for a slow reader) copies out the packets from any one on, and appends as they would", () => {
    const batch = new PackedMessages();
    for (let k = 0; k < 10; k++) batch.add(Buffer.from(`m${k}`), Buffer.alloc(k * 13, k));
    for (const from of [0, 1, 4, 9]) {
      const rest = batch.rest(from);
      assert.equal(rest.count, 10 - from);
      assert.equal(rest.bytes, batch.bytesFrom(from));
      assert.equal(rest.bytesFrom(0), rest.bytes);
      assert.equal(rest.bytesFrom(rest.count), 0);
      const r = ring(64 * 1024);
      assert.equal(r.appendMany(rest, 0, rest.count, 5), rest.count);
      const got = readAll(r, { seq: 1, offset: 0 });
      assert.deepEqual(
        got.map((m) => [m.meta.toString(), m.body.length, m.body.every((b) => b === m.body.length / 13)]),
        Array.from({ length: 10 - from }, (_, i) => [`m${from + i}`, (from + i) * 13, true]),
      );
    }
  });

  it("a packed batch crosses the ring's end and evicts its own first packets; every kept message is whole", () => {
    const r = ring(4096);
    const cursor: RingCursor = { seq: 1, offset: -1 };
    const batch = new PackedMessages();
    let sent = 0;
    let expect = 1;
    const gaps: [number, number][] = [];
    for (let round = 0; round < 50; round++) {
      // Batches of 3 to 90 packets of 0–200 bytes: some fit, some are bigger than the whole ring.
      const count = 3 + ((round * 29) % 88);
      for (let k = 0; k < count; k++, sent++) {
        batch.add(Buffer.from(`m${sent}`), Buffer.alloc(sent % 201, sent & 0xff));
      }
      assert.equal(r.appendMany(batch, 0, batch.count, round), count);
      batch.clear();
      for (const m of readAll(r, cursor, gaps)) {
        const k = m.seqNumber - 1;
        assert.ok(m.seqNumber >= expect, "in order");
        expect = m.seqNumber + 1;
        assert.equal(m.meta.toString(), `m${k}`);
        assert.equal(m.body.length, k % 201);
        assert.ok(
          m.body.every((b) => b === (k & 0xff)),
          `message ${m.seqNumber} is whole`,
        );
        assert.equal(m.time, round);
      }
    }
    assert.equal(r.state().next, sent + 1);
    assert.equal(expect, sent + 1, "the newest message was read");
    assert.ok(gaps.length > 0, "batches bigger than the ring evicted unread messages");
  });

  it("a floor stops a packed batch where a reader holds it; the rest is appended after", () => {
    const r = ring(4096);
    const batch = new PackedMessages();
    for (let k = 0; k < 60; k++) batch.add(Buffer.alloc(0), Buffer.alloc(100, k));
    // Messages from seq 1 on are held: the batch stops when it would evict seq 1.
    const n = r.appendMany(batch, 0, 60, 0, () => 1);
    assert.ok(n > 0 && n < 60, `stopped part way (${n})`);
    assert.equal(r.state().tailSeq, 1);
    const m = r.appendMany(batch, n, 60, 0); // no floor: the rest goes in, evicting
    assert.equal(m, 60 - n);
    const got = readAll(r, { seq: r.state().tailSeq, offset: -1 });
    assert.equal(got.at(-1)!.seqNumber, 60);
    for (const x of got) assert.ok(x.body.every((b) => b === x.seqNumber - 1));
  });

  it("a batch of thousands, appended in two calls, stamps each packet with its own seq and the call's time", () => {
    const r = ring(1024 * 1024);
    const batch = new PackedMessages();
    const count = 3000; // more packets than the batch first has room to index
    for (let k = 0; k < count; k++) batch.add(Buffer.from(`p${k}`), Buffer.from(`b${k}`));
    assert.equal(r.appendMany(batch, 0, 1000, 111), 1000);
    assert.equal(r.appendMany(batch, 1000, count, 222), count - 1000);
    const got = readAll(r, { seq: 1, offset: -1 });
    assert.equal(got.length, count);
    got.forEach((m, k) => {
      assert.equal(m.seqNumber, k + 1);
      assert.equal(m.time, k < 1000 ? 111 : 222);
      assert.equal(m.meta.toString(), `p${k}`);
      assert.equal(m.body.toString(), `b${k}`);
    });
    batch.clear();
    batch.add(Buffer.alloc(0), Buffer.from("again"));
    assert.equal(r.appendMany(batch, 0, 1, 333), 1);
    const last = readAll(r, { seq: count + 1, offset: -1 });
    assert.deepEqual(
      last.map((m) => [m.seqNumber, m.time, m.body.toString()]),
      [[count + 1, 333, "again"]],
    );
  });
});

function writeAt(file: string, pos: number, data: Buffer): void {
  const fd = openSync(file, "r+");
  writeSync(fd, data, 0, data.length, pos);
  closeSync(fd);
}
