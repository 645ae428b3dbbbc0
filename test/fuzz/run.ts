/**
 * `npm run fuzz [INPUTS] [SEED]`: every fuzzer of fuzzers.ts with INPUTS inputs (default 10,000,000) from
 * SEED (default: the time), then a table of inputs/s and the heap. Exits non-zero on the first broken
 * property, printing the seed to replay it.
 */
import { seededRandom } from "../helpers.js";
import { fuzzDatagrams, fuzzFrameDecoder, fuzzHubMessages, fuzzRecords, fuzzWsFrames } from "./fuzzers.js";

const inputs = Number(process.argv[2] ?? 10_000_000);
const seed = Number(process.argv[3] ?? Date.now() % 2 ** 31);
console.log(`fuzz: ${inputs} inputs per fuzzer, seed ${seed}\n`);
console.log("| fuzzer | inputs | accepted | inputs/s | heap after (MiB) |");
console.log("|---|---:|---:|---:|---:|");
for (const [i, fuzz] of [
  fuzzFrameDecoder,
  fuzzWsFrames,
  fuzzHubMessages,
  fuzzRecords,
  fuzzDatagrams,
].entries()) {
  try {
    const r = fuzz(seededRandom(seed + i), inputs);
    global.gc?.();
    const heap = process.memoryUsage().heapUsed / 2 ** 20;
    console.log(
      `| ${r.name} | ${r.inputs} | ${r.accepted} | ${Math.round(r.inputs / r.seconds)} | ${heap.toFixed(1)} |`,
    );
  } catch (err) {
    console.error(`\nproperty broken (replay: npm run fuzz ${inputs} ${seed})`);
    throw err;
  }
}
