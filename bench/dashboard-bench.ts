/**
 * What open dashboards cost the hub: pub/sub throughput (one publisher → one subscriber, 64 B and 1 KiB,
 * fire-and-forget, default options; measured at the subscriber) with no dashboard and with 10, in the
 * same run, interleaved, with the hub's CPU time per message beside it. A dashboard here is a Node client
 * doing what the page does over ws:// (one `monitor` request every 500 ms) while the hub holds 100 keys;
 * the page's rendering happens in the browser, not in the hub.
 */
import { fileURLToPath } from "node:url";
import { collect, freeUrl, procUsage, runRole, stop, withServer } from "./procs.js";
import { median } from "./stats.js";

const script = fileURLToPath(new URL("./dashboard-child.js", import.meta.url));
const pubsub = fileURLToPath(new URL("./pubsub-child.js", import.meta.url));
let seq = 9500;

/** Deliveries per second at the subscriber, and the hub's CPU time per delivery (µs). */
async function rate(dashboards: number, size: number, n: number): Promise<{ rate: number; cpuUs: number }> {
  return withServer(script, ["hub", freeUrl("tcp", seq++)], async (urls, hub) => {
    const [tcpUrl, wsUrl] = urls.split(" ") as [string, string];
    const pages = dashboards > 0 ? await runRole(script, ["dashboards", wsUrl, String(dashboards)]) : null;
    try {
      const topic = `bench.dash${seq++}`;
      const sub = await runRole(pubsub, ["ez-sub", tcpUrl, topic, String(n), "1"]);
      const result = collect(sub.proc);
      const before = procUsage(hub.pid!);
      await runRole(pubsub, ["ez-pub", tcpUrl, topic, String(n), String(size)]);
      const r = JSON.parse((await result).trim().split("\n").at(-1)!) as {
        deliveries: number;
        seconds: number;
      };
      const after = procUsage(hub.pid!);
      return { rate: r.deliveries / r.seconds, cpuUs: ((after.cpuMs - before.cpuMs) * 1000) / n };
    } finally {
      if (pages) await stop(pages.proc);
    }
  });
}

const fmt = (x: number) => (x >= 1e6 ? `${(x / 1e6).toFixed(2)} M` : `${(x / 1e3).toFixed(0)} k`);

export async function dashboardBench(quick: boolean): Promise<string[]> {
  const runs = quick ? 1 : 5;
  const lines = [
    `### The dashboard's cost: hub pub/sub 1 → 1 with 10 dashboards open vs none, medians of ${runs}`,
    "",
    "| size | no dashboard (msg/s) | 10 dashboards (msg/s) | change | target | hub CPU per message, none → 10 (µs) |",
    "|---:|---:|---:|---:|---:|---:|",
  ];
  for (const size of [64, 1024]) {
    const n = quick ? 50_000 : size === 64 ? 2_000_000 : 500_000;
    const none: { rate: number; cpuUs: number }[] = [];
    const ten: { rate: number; cpuUs: number }[] = [];
    for (let i = 0; i < runs; i++) {
      none.push(await rate(0, size, n));
      ten.push(await rate(10, size, n));
    }
    const [a, b] = [median(none.map((r) => r.rate)), median(ten.map((r) => r.rate))];
    const [ca, cb] = [median(none.map((r) => r.cpuUs)), median(ten.map((r) => r.cpuUs))];
    lines.push(
      `| ${size} B | ${fmt(a)} | ${fmt(b)} | ${(((b - a) / a) * 100).toFixed(1)}% | ≥ −5% | ${ca.toFixed(2)} → ${cb.toFixed(2)} |`,
    );
    process.stderr.write(`${lines.at(-1)}\n`);
  }
  return lines;
}
