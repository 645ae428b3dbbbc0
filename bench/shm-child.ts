/**
 * Shared-memory benchmark roles (run as their own processes by shm-bench.ts).
 *   lock-holder FILE    takes the topic file's writers' lock, prints "ready", and holds it until killed
 *   var-echo URL COUNT WARMUP [spin]
 *                       watches shared variable `prop` (poll): each change carries the writer's hrtime
 *                       (CLOCK_MONOTONIC, shared by the machine's processes) and a counter, which it
 *                       writes back to `ack`; prints "ready", then JSON with the write → seen delays
 */
import { connect } from "../src/index.js";
import { H_MUTEX, KIND_TOPIC } from "../src/shm/layout.js";
import { shmNative } from "../src/shm/native.js";
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
} else {
  console.error(`unknown role ${role}`);
  process.exit(2);
}
