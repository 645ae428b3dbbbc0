/**
 * What open dashboards cost the hub: pub/sub throughput (one publisher → one subscriber, 64 B and 1 KiB,
 * fire-and-forget, default options; measured at the subscriber) with no dashboard and with 10, in the
 * same run, interleaved. A dashboard here is a Node client doing what the page does over ws:// (one
 * `monitor` request every 500 ms) while the hub holds 100 keys; the page's rendering happens in the
 * browser, not in the hub.
 */
import { fileURLToPath } from "node:url";
import { collect, freeUrl, runRole, stop, withServer } from "./procs.js";
import { median } from "./stats.js";

const script = fileURLToPath(new URL("./dashboard-child.js", import.meta.url));
const pubsub = fileURLToPath(new URL("./pubsub-child.js", import.meta.url));
let seq = 9500;

async function rate(dashboards: number, size: number, n: number): Promise<number> {
  return withServer(script, ["hub", freeUrl("tcp", seq++)], async (urls) => {
    const [tcpUrl, wsUrl] = urls.split(" ") as [string, string];
    const pages = dashboards > 0 ? await runRole(script, ["dashboards", wsUrl, String(dashboards)]) : null;
    try {
      const topic = `bench.dash${seq++}`;
      const sub = await runRole(pubsub, ["ez-sub", tcpUrl, topic, String(n), "1"]);
      const result = collect(sub.proc);
      await runRole(pubsub, ["ez-pub", tcpUrl, topic, String(n), String(size)]);
      const r = JSON.parse((await result).trim().split("\n").at(-1)!) as {
        deliveries: number;
        seconds: number;
      };
      return r.deliveries / r.seconds;
    } finally {
      if (pages) await stop(pages.proc);
    }
  });
}

const fmt = (x: number) => (x >= 1e6 ? `${(x / 1e6).toFixed(2)} M` : `${(x / 1e3).toFixed(0)} k`);

export async function dashboardBench(quick: boolean): Promise<string[]> {
  const runs = quick ? 1 : 3;
  const lines = [
    `### The dashboard's cost: hub pub/sub 1 → 1 with 10 dashboards open vs none, medians of ${runs}`,
    "",
    "| size | no dashboard (msg/s) | 10 dashboards (msg/s) | change | target |",
    "|---:|---:|---:|---:|---:|",
  ];
  for (const size of [64, 1024]) {
    const n = quick ? 50_000 : size === 64 ? 500_000 : 200_000;
    const none: number[] = [];
    const ten: number[] = [];
    for (let i = 0; i < runs; i++) {
      none.push(await rate(0, size, n));
      ten.push(await rate(10, size, n));
    }
    const [a, b] = [median(none), median(ten)];
    lines.push(`| ${size} B | ${fmt(a)} | ${fmt(b)} | ${(((b - a) / a) * 100).toFixed(1)}% | ≥ −5% |`);
    process.stderr.write(`${lines.at(-1)}\n`);
  }
  return lines;
}
