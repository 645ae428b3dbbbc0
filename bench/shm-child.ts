/**
 * Shared-memory benchmark roles (run as their own processes by shm-bench.ts).
 *   lock-holder FILE    takes the topic file's writers' lock, prints "ready", and holds it until killed
 *   var-echo URL COUNT WARMUP [spin]
 *                       watches shared variable `prop` (poll): each change carries the writer's hrtime
 *                       (CLOCK_MONOTONIC, shared by the machine's processes) and a counter, which it
 *                       writes back to `ack`; prints "ready", then JSON with the write → seen delays
 *   ring-reader FILE N  the ring alone, no client API: reads the topic file's ring (TopicRing.read, messages as
 *                       a subscriber gets them, each payload looked at) until N were read or skipped;
 *                       prints "ready", then JSON {rate, skipped} (messages read per second)
 *   ring-writer FILE N  appends N 64 B messages in batches of 1,024 (PackedMessages, appendMany), as a
 *                       publisher's tick does; prints JSON {rate}
 */
import { connect } from "../src/index.js";
import { H_MUTEX, KIND_TOPIC } from "../src/shm/layout.js";
import { shmNative } from "../src/shm/native.js";
import { PackedMessages } from "../src/shm/packed.js";
import { type RingMessage, TopicRing } from "../src/shm/ring.js";
import { openShmFile } from "../src/shm/shm-file.js";
import { percentile } from "./stats.js";

const [role, file, a, b, c] = process.argv.slice(2) as [string, string, string?, string?, string?];
if (role === "var-echo") {
  const url = file as `shm:${string}`;
  const count = Number(a);
  const warmup = Number(b);
  const client = await connect(url, { name: "echo", spin: c === "spin" });
  const prop = await client.watch("prop", "poll");
  const ack = await client.watch("ack", "request");
  if (!prop || !ack) throw new Error("no prop/ack keys");
  const lat = new Float64Array(count);
  let seen = 0;
  prop.on("change", ({ data }) => {
    const now = process.hrtime.bigint();
    const d = Buffer.from(data!.buffer, data!.byteOffset, data!.byteLength);
    const i = seen++ - warmup;
    if (i >= 0) lat[i] = Number(now - d.readBigUInt64LE(0)) / 1000;
    void ack.write(d.subarray(8, 12));
    if (i === count - 1) {
      lat.sort();
      console.log(JSON.stringify({ p50Us: percentile(lat, 0.5), p99Us: percentile(lat, 0.99) }));
      process.exit(0);
    }
  });
  console.log("ready");
} else if (role === "lock-holder") {
  const f = openShmFile(file, KIND_TOPIC, 0o600);
  const r = shmNative().mutexLock(f.ab, H_MUTEX, 5_000);
  if (r !== 0 && r !== shmNative().EOWNERDEAD) throw new Error(`lock: ${r}`);
  console.log("ready");
  setInterval(() => {}, 1_000); // hold it, alive, until killed
} else if (role === "ring-reader") {
  const n = Number(a);
  const ring = new TopicRing(openShmFile(file, KIND_TOPIC, 0o600));
  const s = ring.state();
  const cursor = { seq: s.next, offset: s.head };
  const out: RingMessage[] = [];
  let read = 0;
  let skipped = 0;
  let bytes = 0;
  const onGap = (first: number, last: number) => {
    skipped += last - first + 1;
  };
  console.log("ready");
  let t0 = 0n;
  const limit = Date.now() + 60_000;
  while (read + skipped < n && Date.now() < limit) {
    out.length = 0;
    const got = ring.read(cursor, 4096, out, onGap);
    if (got > 0 && t0 === 0n) t0 = process.hrtime.bigint();
    for (let i = 0; i < got; i++) bytes += out[i]!.body.length;
    read += got;
  }
  const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
  if (bytes !== read * 64) throw new Error(`read ${bytes} bytes for ${read} messages`);
  console.log(JSON.stringify({ rate: read / seconds, skipped }));
  process.exit(0);
} else if (role === "ring-writer") {
  const n = Number(a);
  const ring = new TopicRing(openShmFile(file, KIND_TOPIC, 0o600));
  const batch = new PackedMessages();
  const meta = Buffer.alloc(0);
  const body = Buffer.alloc(64, 7);
  const t0 = process.hrtime.bigint();
  for (let i = 0; i < n; ) {
    const k = Math.min(1024, n - i);
    for (let j = 0; j < k; j++) batch.add(meta, body);
    ring.appendMany(batch, 0, k, Date.now());
    batch.clear();
    i += k;
  }
  console.log(JSON.stringify({ rate: n / (Number(process.hrtime.bigint() - t0) / 1e9) }));
  process.exit(0);
} else {
  console.error(`unknown role ${role}`);
  process.exit(2);
}
