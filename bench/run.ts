/**
 * `npm run bench`: prints markdown tables, each ezipc figure beside a baseline measured in the same run.
 * Sender and receiver run as separate processes. Each figure is the median of RUNS runs, raw and ezipc
 * interleaved so that machine noise hits both alike.
 *
 *   BENCH_QUICK=1 npm run bench    fewer messages, for a smoke test
 *   BENCH_ONLY=hub npm run bench    only the shared-variable tables (BENCH_ONLY=core: one-way throughput and
 *                                   echo round trips of framed connections; BENCH_ONLY=pubsub: pub/sub and RPC;
 *                                   BENCH_ONLY=secure: encrypted vs plain connections; BENCH_ONLY=chat;
 *                                   BENCH_ONLY=shm: shared memory beside the hub over unix://;
 *                                   BENCH_ONLY=clients: the Python and C# clients beside TypeScript's;
 *                                   BENCH_ONLY=ws: ws:// beside the raw ws library and tcp://;
 *                                   BENCH_ONLY=dashboard: hub pub/sub with 10 dashboards open vs none;
 *                                   BENCH_ONLY=udp: udp:// beside raw node:dgram;
 *                                   BENCH_ONLY=cluster: clustered hubs beside one hub and NATS alone;
 *                                   BENCH_ONLY=memory: idle processes' resident memory beside the peers')
 */
import os from "node:os";
import { nativeAead } from "../src/security/native-aead.js";
import { aesGcm, type CipherFn, chaChaPoly, nodeCryptoAead } from "../src/security/suite.js";
import { chatBench } from "./chat-bench.js";
import { clientsBench } from "./clients-bench.js";
import { clusterBench } from "./cluster-bench.js";
import { codecBench } from "./codec-bench.js";
import { dashboardBench } from "./dashboard-bench.js";
import { withHostNote } from "./host.js";
import { hubBench } from "./hub-bench.js";
import { memoryBench } from "./memory-bench.js";
import { childScript, freeUrl, nextLine, runRole, withServer } from "./procs.js";
import { pubsubBench } from "./pubsub-bench.js";
import { shmBench } from "./shm-bench.js";
import { median } from "./stats.js";
import { udpBench } from "./udp-bench.js";
import { wsBench } from "./ws-bench.js";

const quick = process.env.BENCH_QUICK === "1";
const RUNS = quick ? 1 : 3;
/** Round trips are noisier on a shared 2-core machine: more runs. */
const RTT_RUNS = quick ? 1 : 5;
const run = (args: string[]) => runRole(childScript, args);

let seq = 0;

async function throughput(
  kind: "raw" | "ezipc" | "secure" | "secure-aes",
  transport: string,
  size: number,
  n: number,
): Promise<number> {
  return withServer(
    childScript,
    [`recv-${kind}`, freeUrl(transport, seq++), String(n)],
    async (url, recv) => {
      // Measured at the receiver: from its first byte or frame to its last frame.
      const line = nextLine(recv);
      await run([`send-${kind}`, url, String(n), String(size)]);
      return n / (JSON.parse(await line) as { seconds: number }).seconds;
    },
  );
}

async function roundTrip(
  kind: "raw" | "ezipc" | "secure" | "secure-aes",
  transport: string,
  count: number,
): Promise<{ p50Us: number; p99Us: number }> {
  return withServer(childScript, [`echo-${kind}`, freeUrl(transport, seq++)], async (url) => {
    const { out } = await run([`ping-${kind}`, url, String(count), "64"]);
    return JSON.parse(out) as { p50Us: number; p99Us: number };
  });
}

const fmt = (x: number) =>
  x >= 1e6 ? `${(x / 1e6).toFixed(2)} M` : x >= 1e3 ? `${(x / 1e3).toFixed(0)} k` : x.toFixed(0);
const pct = (x: number) => `${(x * 100).toFixed(0)}%`;

/** Bytes per second `cipher` seals in 64 KiB records, in this process (into one buffer where it can). */
function cipherBytesPerSec(cipher: CipherFn): number {
  const key = Buffer.alloc(32, 1);
  const data = Buffer.alloc(65_519, 2);
  const out = Buffer.allocUnsafe(65_535);
  const none = new Uint8Array(0);
  const n = quick ? 2_000 : 20_000;
  const seal = (i: number) => {
    if (cipher.encryptInto) cipher.encryptInto(key, i, none, [data], out);
    else cipher.encrypt(key, i, none, data);
  };
  for (let i = 0; i < 1_000; i++) seal(i); // warm up
  const t0 = process.hrtime.bigint();
  for (let i = 0; i < n; i++) seal(i);
  return (n * data.length) / (Number(process.hrtime.bigint() - t0) / 1e9);
}

/** Encrypted (Noise IK, each cipher) vs plain ezipc connections over tcp://, same run. */
async function secureBench(): Promise<string[]> {
  const lines = [
    `### Encrypted vs plain ezipc over tcp:// (Noise IK), medians of ${RUNS} (round trips: ${RTT_RUNS})`,
    "",
    "| measurement | plain | ChaCha20-Poly1305 | AES-256-GCM | ChaCha / plain | AES / plain | target |",
    "|---|---:|---:|---:|---:|---:|---:|",
  ];
  const ciphers = { chacha: cipherBytesPerSec(chaChaPoly), aes: cipherBytesPerSec(aesGcm) };
  const nodeCiphers = {
    chacha: cipherBytesPerSec(nodeCryptoAead.chaChaPoly),
    aes: cipherBytesPerSec(nodeCryptoAead.aesGcm),
  };
  const ceilings = { chacha: 0, aes: 0 };
  for (const size of [64, 1024]) {
    const n = quick ? 200_000 : size === 64 ? 2_000_000 : 600_000;
    const plain: number[] = [];
    const chacha: number[] = [];
    const aes: number[] = [];
    for (let r = 0; r < RUNS; r++) {
      plain.push(await throughput("ezipc", "tcp", size, n));
      chacha.push(await throughput("secure", "tcp", size, n));
      aes.push(await throughput("secure-aes", "tcp", size, n));
    }
    const p = median(plain);
    const c = median(chacha);
    const a = median(aes);
    // If the cipher were the only extra cost, each byte would take 1/plain + 1/cipher seconds to send.
    if (size === 1024) {
      ceilings.chacha = 1 / (1 + (p * size) / ciphers.chacha);
      ceilings.aes = 1 / (1 + (p * size) / ciphers.aes);
    }
    lines.push(
      `| throughput, ${size} B (msg/s) | ${fmt(p)} | ${fmt(c)} | ${fmt(a)} | ${pct(c / p)} | ${pct(a / p)} | ${size === 1024 ? "≥ 75%" : ""} |`,
    );
    process.stderr.write(`${lines.at(-1)}\n`);
  }
  const where = nativeAead ? "the addon, native/aead.c" : "node:crypto: the addon did not load";
  lines.push(
    `| the cipher alone as ezipc runs it (${where}; 64 KiB records, one core; GB/s) | | ${(ciphers.chacha / 1e9).toFixed(2)} | ${(ciphers.aes / 1e9).toFixed(2)} | ceiling at 1 KiB: ${pct(ceilings.chacha)} | ${pct(ceilings.aes)} | |`,
    `| the cipher alone on node:crypto (a cipher object per record; GB/s) | | ${(nodeCiphers.chacha / 1e9).toFixed(2)} | ${(nodeCiphers.aes / 1e9).toFixed(2)} | | | |`,
  );
  const count = quick ? 2_000 : 20_000;
  const plain: number[] = [];
  const chacha: number[] = [];
  const aes: number[] = [];
  for (let r = 0; r < RTT_RUNS; r++) {
    plain.push((await roundTrip("ezipc", "tcp", count)).p50Us);
    chacha.push((await roundTrip("secure", "tcp", count)).p50Us);
    aes.push((await roundTrip("secure-aes", "tcp", count)).p50Us);
  }
  const p = median(plain);
  const c = median(chacha);
  const a = median(aes);
  lines.push(
    `| echo round trip p50, 64 B (µs) | ${p.toFixed(1)} | ${c.toFixed(1)} | ${a.toFixed(1)} | ${(c / p).toFixed(2)}× | ${(a / p).toFixed(2)}× | |`,
  );
  process.stderr.write(`${lines.at(-1)}\n`);
  return lines;
}

/** The one-way throughput and echo round-trip tables: framed connections beside hand-written node:net. */
async function coreBench(): Promise<string[]> {
  const lines: string[] = [];
  lines.push("### One-way throughput (messages/s), sender and receiver in separate processes");
  lines.push("");
  lines.push("| transport | size | raw node:net (batched) | ezipc | ezipc / raw | target |");
  lines.push("|---|---:|---:|---:|---:|---:|");
  for (const transport of ["tcp", "unix"]) {
    for (const size of [64, 1024]) {
      const n = quick ? 200_000 : size === 64 ? 2_000_000 : 600_000;
      const raw: number[] = [];
      const ez: number[] = [];
      for (let r = 0; r < RUNS; r++) {
        raw.push(await throughput("raw", transport, size, n));
        ez.push(await throughput("ezipc", transport, size, n));
      }
      const rm = median(raw);
      const em = median(ez);
      lines.push(
        `| ${transport}:// | ${size} B | ${fmt(rm)} | ${fmt(em)} | ${pct(em / rm)} | ${size === 64 ? "≥ 60%" : "≥ 75%"} |`,
      );
      process.stderr.write(`${lines.at(-1)}\n`);
    }
  }
  lines.push("");
  lines.push(
    `### Echo round trip, one 64 B request in flight (µs), medians of ${RTT_RUNS} runs of ${quick ? 2_000 : 20_000} round trips`,
  );
  lines.push("");
  lines.push("| transport | raw p50 | raw p99 | ezipc p50 | ezipc p99 | p50 ezipc / raw | target |");
  lines.push("|---|---:|---:|---:|---:|---:|---:|");
  for (const transport of ["tcp", "unix"]) {
    const count = quick ? 2_000 : 20_000;
    const raw: Array<{ p50Us: number; p99Us: number }> = [];
    const ez: Array<{ p50Us: number; p99Us: number }> = [];
    for (let r = 0; r < RTT_RUNS; r++) {
      raw.push(await roundTrip("raw", transport, count));
      ez.push(await roundTrip("ezipc", transport, count));
    }
    const r50 = median(raw.map((x) => x.p50Us));
    const r99 = median(raw.map((x) => x.p99Us));
    const e50 = median(ez.map((x) => x.p50Us));
    const e99 = median(ez.map((x) => x.p99Us));
    lines.push(
      `| ${transport}:// | ${r50.toFixed(1)} | ${r99.toFixed(1)} | ${e50.toFixed(1)} | ${e99.toFixed(1)} | ${(e50 / r50).toFixed(2)}× | ≤ 1.2× |`,
    );
    process.stderr.write(`${lines.at(-1)}\n`);
  }
  return lines;
}

async function main(): Promise<void> {
  /** BENCH_ONLY=NAME: one group of tables. */
  const only: Record<string, () => Promise<string[]>> = {
    core: () => coreBench(),
    chat: () => chatBench(quick),
    secure: () => secureBench(),
    hub: () => hubBench(quick),
    shm: () => shmBench(quick),
    ws: () => wsBench(quick),
    dashboard: () => dashboardBench(quick),
    udp: () => udpBench(quick),
    clients: () => clientsBench(quick),
    pubsub: () => pubsubBench(quick),
    cluster: () => clusterBench(quick),
    memory: () => memoryBench(quick),
  };
  const group = process.env.BENCH_ONLY;
  if (group) {
    const tables = only[group];
    if (!tables) throw new Error(`BENCH_ONLY=${group}: one of ${Object.keys(only).join(", ")}`);
    console.log((await withHostNote(tables)).join("\n"));
    return;
  }
  const lines: string[] = [];
  const cpu = os.cpus()[0]?.model ?? "unknown CPU";
  lines.push(
    `ezipc benchmarks — ${new Date().toISOString().slice(0, 10)}, ${os.cpus().length} × ${cpu}, Node ${process.version}, medians of ${RUNS} run(s)`,
  );
  lines.push("");
  lines.push(...(await withHostNote(() => coreBench())));
  lines.push("");
  lines.push(...(await withHostNote(() => secureBench())));
  lines.push("");
  lines.push(
    "### Encode + decode of one small message (`{ id, topic, ts, payload: { user, text, room } }`, 146 B as JSON), one process",
  );
  lines.push("");
  lines.push("| codec | bytes | ops/s | schema codec is | target |");
  lines.push("|---|---:|---:|---:|---:|");
  const codecs = codecBench(quick ? 200 : 700);
  const schema = codecs.find((c) => c.name.startsWith("ezipc"))!;
  for (const c of codecs) {
    const target = c.name.startsWith("JSON") ? "≥ 2×" : c.name === "msgpackr" ? "≥ 1.5×" : "";
    const ratio = c === schema ? "" : `${(schema.opsPerSec / c.opsPerSec).toFixed(2)}×`;
    lines.push(`| ${c.name} | ${c.bytes} | ${fmt(c.opsPerSec)} | ${ratio} | ${target} |`);
  }
  lines.push("");
  lines.push(...(await withHostNote(() => hubBench(quick))));
  lines.push("");
  lines.push(...(await withHostNote(() => pubsubBench(quick))));
  lines.push("");
  lines.push(...(await withHostNote(() => memoryBench(quick))));
  lines.push("");
  lines.push(...(await withHostNote(() => shmBench(quick))));
  lines.push("");
  lines.push(...(await withHostNote(() => chatBench(quick))));
  lines.push("");
  lines.push(...(await withHostNote(() => clientsBench(quick))));
  lines.push("");
  lines.push(...(await withHostNote(() => wsBench(quick))));
  lines.push("");
  lines.push(...(await withHostNote(() => dashboardBench(quick))));
  lines.push("");
  lines.push(...(await withHostNote(() => udpBench(quick))));
  lines.push("");
  lines.push(...(await withHostNote(() => clusterBench(quick))));
  console.log(lines.join("\n"));
}

await main();
