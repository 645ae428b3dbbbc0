/**
 * The TypeScript side of the client-language benchmark (bench/clients-bench.ts); clients/python/bench.py
 * and clients/csharp/Bench.cs play the same roles with the same output:
 *
 *   sub URL TOPIC N         prints "ready", then {"deliveries", "seconds"} (first to last message)
 *   pub URL TOPIC N SIZE    publishes N fire-and-forget messages of SIZE bytes, then one acknowledged
 *   prop URL KEY COUNT      a writer and a poll watcher (two connections): {"propP50", "propP99"} in µs
 *                           from the write call to the watcher's change, one write at a time
 */
import { connect } from "../src/index.js";
import { percentile } from "./stats.js";

const [role, url, name, a, b] = process.argv.slice(2) as [string, string, string, string, string];
const opts = { heartbeatIntervalMs: 0, reconnect: false as const };

switch (role) {
  case "sub": {
    const n = Number(a);
    const client = await connect(url, { ...opts, name: "sub" });
    let seen = 0;
    let first = 0n;
    await client.subscribe(name, {}, () => {
      if (seen++ === 0) first = process.hrtime.bigint();
      if (seen === n) {
        console.log(
          JSON.stringify({ deliveries: n, seconds: Number(process.hrtime.bigint() - first) / 1e9 }),
        );
        process.exit(0);
      }
    });
    console.log("ready");
    break;
  }
  case "pub": {
    const n = Number(a);
    const payload = Buffer.alloc(Number(b), 7);
    const client = await connect(url, { ...opts, name: "pub" });
    for (let i = 0; i < n; i++) if (!client.publishAndForget(name, payload)) await client.drain();
    await client.publish(`${name}.done`, "x");
    await client.close();
    break;
  }
  case "prop": {
    const count = Number(a);
    const writer = await connect(url, { ...opts, name: "writer" });
    const watcher = await connect(url, { ...opts, name: "watcher" });
    const w = await writer.allocate(name, 64, "request");
    const p = await watcher.watch(name, "poll");
    if (!p) throw new Error(`no key ${name}`);
    const lat = new Float64Array(count);
    const data = Buffer.alloc(64);
    for (let i = 0; i < count; i++) {
      const seen = new Promise<void>((r) => p.once("change", () => r()));
      const t0 = process.hrtime.bigint();
      await w.write(data);
      await seen;
      lat[i] = Number(process.hrtime.bigint() - t0) / 1000;
    }
    lat.sort();
    console.log(JSON.stringify({ propP50: percentile(lat, 0.5), propP99: percentile(lat, 0.99) }));
    await writer.close();
    await watcher.close();
    break;
  }
  default:
    throw new Error(`unknown role ${role}`);
}
