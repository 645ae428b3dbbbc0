/**
 * What a process does not use, it does not load: importing ezipc, running a hub and a client over tcp://
 * loads neither the NATS client (clustered hubs), nor the `ws` package (ws://), nor better-sqlite3 (stores):
 * together about 25 MiB of resident memory in every process. Each loads at its first use.
 */
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { describe, it } from "node:test";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";

const INDEX = fileURLToPath(new URL("../src/index.js", import.meta.url));
const CLI = fileURLToPath(new URL("../src/cli/main.js", import.meta.url));
const HEAVY = ["nats", "ws", "better-sqlite3", "mysql2"];
/** Preloaded into a CLI process: prints the packages it loaded when it exits. */
const REPORT = `data:text/javascript,${encodeURIComponent(`
import { createRequire } from "node:module";
process.on("exit", () => {
  const files = Object.keys(createRequire("/").cache);
  const names = files.map((f) => /node_modules\\/((?:@[^/]+\\/)?[^/]+)\\//.exec(f)?.[1]).filter(Boolean);
  process.stderr.write("LOADED " + JSON.stringify([...new Set(names)]) + "\\n");
});`)}`;

/** Runs `body` (an ES module's text, with `loaded()` in scope) in a fresh Node process; returns its output. */
async function inChild(body: string): Promise<string> {
  const program = `
import { createRequire } from "node:module";
const cache = createRequire(import.meta.url).cache;
const loaded = () => [...new Set(Object.keys(cache).map((f) => /node_modules\\/((?:@[^/]+\\/)?[^/]+)\\//.exec(f)?.[1]).filter(Boolean))].sort();
const ezipc = await import(${JSON.stringify(INDEX)});
${body}
process.exit(0);
`;
  const { stdout } = await promisify(execFile)(process.execPath, ["--input-type=module", "-e", program], {
    timeout: 30_000,
  });
  return stdout.trim();
}

describe("heavy dependencies load on first use", () => {
  it("a hub and a client over tcp:// load none of them", async () => {
    const out = await inChild(`
const hub = await ezipc.Hub.listen({ urls: ["tcp://127.0.0.1:0"] });
const c = await ezipc.connect(hub.urls[0], { name: "lazy" });
await c.serve("lazy.rpc", (req) => req.payload);
await c.request("lazy.rpc", "x");
await c.close();
await hub.close();
console.log(JSON.stringify(loaded()));
`);
    const loaded = JSON.parse(out) as string[];
    for (const dep of HEAVY) assert.ok(!loaded.includes(dep), `${dep} was loaded: ${out}`);
  });

  it("the CLI loads the chat app and its database drivers only for the chat commands", async () => {
    const run = async (...args: string[]): Promise<string[]> => {
      const { stderr } = await promisify(execFile)(process.execPath, ["--import", REPORT, CLI, ...args], {
        timeout: 30_000,
      });
      const line = stderr.split("\n").find((l) => l.startsWith("LOADED "));
      assert.ok(line, stderr);
      return JSON.parse(line.slice("LOADED ".length)) as string[];
    };
    const help = await run("--help");
    for (const dep of HEAVY) assert.ok(!help.includes(dep), `ezipc --help loaded ${dep}: ${help}`);
    const chatHelp = await run("chat-server", "--help");
    for (const dep of HEAVY) assert.ok(!chatHelp.includes(dep), `ezipc chat-server --help loaded ${dep}`);
  });

  it("ws:// and a SQLite store load theirs when used", async () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), "ezipc-lazy-"));
    try {
      const out = await inChild(`
const store = new ezipc.SqliteStore(${JSON.stringify(path.join(dir, "hub.db"))});
const hub = await ezipc.Hub.listen({ urls: ["ws://127.0.0.1:0"], store });
const c = await ezipc.connect(hub.urls[0], { name: "lazy" });
await c.close();
await hub.close();
console.log(JSON.stringify(loaded()));
`);
      const loaded = JSON.parse(out) as string[];
      assert.ok(loaded.includes("ws") && loaded.includes("better-sqlite3"), out);
      assert.ok(!loaded.includes("nats"), out);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
