/**
 * The clients in other languages beside the TypeScript client, against the same hub in the same run: pub/sub
 * messages/s at 64 B (a publisher process and a subscriber process of the same language, fire-and-forget
 * publishes, default subscription; measured at the subscriber from its first to its last message), and poll
 * propagation (a writer and a poll watcher in one process: write call → the watcher's change, one write
 * at a time). The roles: bench/clients-child.ts, clients/python/bench.py, clients/csharp/Bench.cs.
 */
import { execFileSync, spawnSync } from "node:child_process";
import { fileURLToPath } from "node:url";
import { collect, freeUrl, runProgram, withServer } from "./procs.js";
import { median } from "./stats.js";

// Mono keeps /dev/shm/mono.PID unless told not to; a C# role killed at the end of a row would leave it behind.
process.env.MONO_DISABLE_SHARED_AREA = "1";

const root = fileURLToPath(new URL("../..", import.meta.url));
const pubsubScript = fileURLToPath(new URL("./pubsub-child.js", import.meta.url));
const tsScript = fileURLToPath(new URL("./clients-child.js", import.meta.url));
let seq = 7000;

interface Language {
  name: string;
  argv: (role: string, ...args: string[]) => [string, string[]];
  available: () => string | null;
}

const LANGUAGES: Language[] = [
  { name: "TypeScript", argv: (...a) => [process.execPath, [tsScript, ...a]], available: () => null },
  {
    name: "Python",
    argv: (...a) => ["python3", [`${root}/clients/python/bench.py`, ...a]],
    available: () =>
      spawnSync("python3", ["-c", "import sys; assert sys.version_info >= (3, 11)"]).status === 0
        ? null
        : "needs python3 ≥ 3.11",
  },
  {
    name: "C# (Mono)",
    argv: (...a) => ["mono", [`${root}/clients/csharp/build/Bench.exe`, ...a]],
    available: () => {
      try {
        execFileSync("make", ["-s", "-C", `${root}/clients/csharp`, "build/Bench.exe"], { stdio: "pipe" });
        return null;
      } catch {
        return "needs Mono (scripts/setup-services.sh)";
      }
    },
  },
];

async function pubsubRate(lang: Language, url: string, n: number): Promise<number> {
  const topic = `bench.cl${seq++}`;
  const sub = await runProgram(...lang.argv("sub", url, topic, String(n)));
  const result = collect(sub.proc);
  await runProgram(...lang.argv("pub", url, topic, String(n), "64"));
  const r = JSON.parse((await result).trim().split("\n").at(-1)!) as { deliveries: number; seconds: number };
  return r.deliveries / r.seconds;
}

async function propagation(
  lang: Language,
  url: string,
  count: number,
): Promise<{ p50: number; p99: number }> {
  const { out } = await runProgram(...lang.argv("prop", url, `bench.prop${seq++}`, String(count)));
  const r = JSON.parse(out.trim().split("\n").at(-1)!) as { propP50: number; propP99: number };
  return { p50: r.propP50, p99: r.propP99 };
}

export async function clientsBench(quick: boolean): Promise<string[]> {
  const runs = quick ? 1 : 3;
  const n = quick ? 20_000 : 200_000;
  const count = quick ? 300 : 2_000;
  const lines = [
    `### Clients in other languages: one hub (tcp://), ${n / 1000}k pub/sub messages of 64 B, ${count} poll writes, medians of ${runs}`,
    "",
    "| client | pub → sub msgs/s | of TypeScript's | target | poll propagation p50 | p99 |",
    "|---|---:|---:|---:|---:|---:|",
  ];
  await withServer(pubsubScript, ["hub", freeUrl("tcp", seq++)], async (url) => {
    let tsRate = 0;
    for (const lang of LANGUAGES) {
      const missing = lang.available();
      if (missing) {
        lines.push(`| ${lang.name} | n/a (${missing}) | | | | |`);
        continue;
      }
      const rates: number[] = [];
      const p50s: number[] = [];
      const p99s: number[] = [];
      for (let i = 0; i < runs; i++) {
        rates.push(await pubsubRate(lang, url, n));
        const p = await propagation(lang, url, count);
        p50s.push(p.p50);
        p99s.push(p.p99);
      }
      const rate = median(rates);
      if (lang.name === "TypeScript") tsRate = rate;
      const target = lang.name === "Python" ? "≥ 30%" : "";
      lines.push(
        `| ${lang.name} | ${(rate / 1000).toFixed(0)} k | ${lang.name === "TypeScript" ? "" : `${((rate / tsRate) * 100).toFixed(0)}%`} | ${target} | ${median(p50s).toFixed(0)} µs | ${median(p99s).toFixed(0)} µs |`,
      );
      process.stderr.write(`${lines.at(-1)}\n`);
    }
  });
  return lines;
}
