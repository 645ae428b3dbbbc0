/**
 * The cross-language conformance suite (conformance/README.md): every scenario of conformance/scenarios,
 * against a real hub, with each of its clients in every language (a driver process per client).
 */
import assert from "node:assert/strict";
import { type ChildProcess, spawn } from "node:child_process";
import { existsSync, readdirSync, readFileSync } from "node:fs";
import path from "node:path";
import { createInterface } from "node:readline";
import { after, before, describe, it } from "node:test";
import { fileURLToPath } from "node:url";
import { Hub, SqliteStore } from "../src/index.js";
import { buildCsharp } from "./clients/csharp-build.js";
import { fixture, tempDir, within } from "./helpers.js";

const root = fileURLToPath(new URL("../..", import.meta.url));
const scenarioDir = path.join(root, "conformance/scenarios");

interface Step {
  /** The driver that runs the step; none for the orchestrator's own ops (`restartHub`). */
  client?: string;
  op: string;
  /** Start the op and go on; a later `await { tag }` step answers with its outcome. */
  tag?: string;
  args?: Record<string, unknown>;
  expect?: unknown;
  error?: string;
}
interface Scenario {
  name: string;
  clients: string[];
  steps: Step[];
}

const LANGUAGES = {
  ts: () =>
    spawn(process.execPath, [fixture("conformance-driver.js")], { stdio: ["pipe", "pipe", "inherit"] }),
  py: () =>
    spawn("python3", [path.join(root, "clients/python/conformance_driver.py")], {
      cwd: path.join(root, "clients/python"),
      env: { ...process.env, PYTHONDONTWRITEBYTECODE: "1" },
      stdio: ["pipe", "pipe", "inherit"],
    }),
  cs: () =>
    spawn("mono", [path.join(root, "clients/csharp/build/ConformanceDriver.exe")], {
      // Without it Mono keeps /dev/shm/mono.PID, which a killed driver (the crash steps) leaves behind.
      env: { ...process.env, MONO_DISABLE_SHARED_AREA: "1" },
      stdio: ["pipe", "pipe", "inherit"],
    }),
} as const;
type Language = keyof typeof LANGUAGES;

/** One driver process: commands in, answers out. */
class Driver {
  private next = 1;
  private readonly waiting = new Map<
    number,
    (r: { ok: boolean; result?: unknown; code?: string; message?: string }) => void
  >();
  readonly ready: Promise<void>;
  constructor(
    readonly lang: Language,
    private readonly child: ChildProcess,
  ) {
    let readyFn: () => void = () => {};
    this.ready = new Promise((r) => (readyFn = r));
    createInterface({ input: child.stdout! }).on("line", (line) => {
      const m = JSON.parse(line) as { id?: number; ready?: boolean; ok: boolean };
      if (m.ready) return readyFn();
      this.waiting.get(m.id!)?.(m);
      this.waiting.delete(m.id!);
    });
  }
  cmd(op: string, args: Record<string, unknown>, tag?: string) {
    const id = this.next++;
    const answer = new Promise<{ ok: boolean; result?: unknown; code?: string; message?: string }>((r) =>
      this.waiting.set(id, r),
    );
    this.child.stdin!.write(`${JSON.stringify({ id, op, args, tag })}\n`);
    return within(answer, 15_000, `${this.lang} ${op}`);
  }
  /** kill -9, as a crash would. Resolves once the process is gone. */
  async kill(): Promise<void> {
    const gone = new Promise((r) => this.child.once("exit", r));
    this.child.kill("SIGKILL");
    await within(gone, 5_000, `${this.lang} driver exit`);
    // A crashed process leaves nothing in /dev/shm (Mono's own area is turned off for the C# driver).
    assert.ok(!existsSync(`/dev/shm/mono.${this.child.pid}`), `/dev/shm/mono.${this.child.pid} left behind`);
  }
  get alive(): boolean {
    return this.child.exitCode === null && this.child.signalCode === null;
  }
  async stop(): Promise<void> {
    if (this.alive) this.child.stdin!.end();
    if (this.alive) {
      this.child.kill();
      await new Promise((r) => this.child.once("exit", r));
    }
  }
}

/** `$name` → a name unique to this run. */
function unique(v: unknown, run: string): unknown {
  if (typeof v === "string") return v.replace(/\$([A-Za-z0-9]+)/g, (_, n: string) => `cf.${run}.${n}`);
  if (Array.isArray(v)) return v.map((x) => unique(x, run));
  if (v && typeof v === "object")
    return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, unique(x, run)]));
  return v;
}

/** Whether `actual` holds every field of `expected` with the same value (deep). */
function contains(actual: unknown, expected: unknown): boolean {
  if (expected === null || typeof expected !== "object") return actual === expected;
  if (actual === null || typeof actual !== "object") return false;
  if (Array.isArray(expected)) {
    return (
      Array.isArray(actual) &&
      actual.length === expected.length &&
      expected.every((e, i) => contains(actual[i], e))
    );
  }
  return Object.entries(expected).every(([k, e]) => contains((actual as Record<string, unknown>)[k], e));
}

/**
 * The language of each client per run: every combination for one or two clients; for more, each client
 * in each language once (rotations: ts/py/cs, py/cs/ts, cs/ts/py), which covers every pair of roles.
 */
function combinations(n: number): Language[][] {
  const langs = Object.keys(LANGUAGES) as Language[];
  if (n > 2) return langs.map((_, r) => Array.from({ length: n }, (_, i) => langs[(i + r) % langs.length]!));
  let out: Language[][] = [[]];
  for (let i = 0; i < n; i++) out = out.flatMap((c) => langs.map((l) => [...c, l]));
  return out;
}

const scenarios = readdirSync(scenarioDir)
  .filter((f) => f.endsWith(".json"))
  .sort()
  .map((f) => ({ file: f, ...(JSON.parse(readFileSync(path.join(scenarioDir, f), "utf8")) as Scenario) }));

describe("conformance: every scenario, every client language (conformance/scenarios)", () => {
  let hub: Hub;
  let url: string;
  let runs = 0;
  const dir = tempDir();
  /** The hub, with persistent keys in SQLite so that a restart keeps them. */
  const listen = (at: string) =>
    Hub.listen({ urls: [at], store: new SqliteStore(path.join(dir.dir, "hub.db")) });
  before(async () => {
    buildCsharp();
    hub = await listen("tcp://127.0.0.1:0");
    url = hub.urls[0]!;
  });
  after(async () => {
    await hub.close();
  });

  it("has scenarios", () => assert.ok(scenarios.length >= 5));

  for (const s of scenarios) {
    for (const langs of combinations(s.clients.length)) {
      it(`${s.file} (${s.name}) with ${s.clients.map((c, i) => `${c}=${langs[i]}`).join(", ")}`, async () => {
        const run = `${process.pid}.${++runs}`;
        const drivers = new Map<string, Driver>();
        try {
          // The drivers start together (each language's runtime takes a moment), then connect in order.
          for (const [i, name] of s.clients.entries())
            drivers.set(name, new Driver(langs[i]!, LANGUAGES[langs[i]!]()));
          for (const [name, d] of drivers) {
            await within(d.ready, 10_000, `${d.lang} driver`);
            const r = await d.cmd("connect", { url, name: `${name}-${d.lang}` });
            assert.ok(r.ok, r.message);
          }
          for (const [n, step] of s.steps.entries()) {
            if (step.op === "restartHub") {
              await hub.close();
              hub = await listen(url);
              continue;
            }
            const d = drivers.get(step.client!)!;
            if (step.op === "kill") {
              await d.kill();
              continue;
            }
            const args = unique(step.args ?? {}, run) as Record<string, unknown>;
            if (step.op.startsWith("raw")) args.url = url;
            const r = await d.cmd(step.op, args, step.tag);
            const where = `step ${n + 1} (${step.client}=${d.lang} ${step.op})`;
            if (step.error) {
              assert.ok(!r.ok, `${where}: expected ${step.error}, got ${JSON.stringify(r.result)}`);
              assert.equal(r.code, step.error, `${where}: ${r.message}`);
              continue;
            }
            assert.ok(r.ok, `${where}: ${r.code} ${r.message}`);
            if ("expect" in step) {
              assert.ok(
                contains(r.result, unique(step.expect, run)),
                `${where}: expected ${JSON.stringify(step.expect)}, got ${JSON.stringify(r.result)}`,
              );
            }
          }
        } finally {
          for (const d of drivers.values()) {
            if (d.alive) await d.cmd("close", {}).catch(() => {});
            await d.stop();
          }
        }
      });
    }
  }
});
