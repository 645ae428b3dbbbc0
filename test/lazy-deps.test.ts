/**
 * What a process does not use, it does not load: importing ezipc, running a hub and a client over tcp://
 * loads neither the NATS client (clustered hubs), nor the `ws` package (ws://), nor better-sqlite3 (stores):
 * together about 25 MiB of resident memory in every process. Each loads at its first use.
 */
import assert from "node:assert/strict";
import { execFile, spawn } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { describe, it } from "node:test";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { Hub } from "../src/index.js";
import { ended, outputLines, until, within } from "./helpers.js";

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

/**
 * The start of a child program that reports every module it loads: a module hook (hooks run off the main
 * thread: a port) collects their URLs; `ours()` lists this package's, `settle()` waits for the reports.
 */
const WATCH_MODULES = `
import { register } from "node:module";
import { MessageChannel } from "node:worker_threads";
const { port1, port2 } = new MessageChannel();
const urls = [];
port1.on("message", (u) => urls.push(u));
port1.unref();
register("data:text/javascript," + encodeURIComponent("let port; export function initialize(d){port=d.port;} export async function load(u,c,n){port.postMessage(u); return n(u,c);}"), { data: { port: port2 }, transferList: [port2] });
const settle = () => new Promise((r) => setTimeout(r, 100));
const ours = () => urls.filter((u) => u.includes("/dist/src/")).map((u) => u.split("/dist/src/")[1]);
`;

const CLIENT_ENTRY = fileURLToPath(new URL("../src/client/index.js", import.meta.url));
/** Folders of src/ a client program has no use for (hub side, stores, monitoring) until it asks. */
const HUB_SIDE = ["hub", "cluster", "store", "monitor", "bridge", "apps", "cli"];

describe("ezipc/client: a client program without the hub", () => {
  it("loads no hub-side module, secure channel, tls:// or udp://, and shm:// code only at its first shm:// connect", async () => {
    const hub = await Hub.listen({ urls: ["tcp://127.0.0.1:0"] });
    const ns = `lazy${process.pid}`;
    try {
      const program = `${WATCH_MODULES}const { connect } = await import(${JSON.stringify(CLIENT_ENTRY)});
const c = await connect(${JSON.stringify(hub.urls[0])}, { name: "lazy" });
await c.serve("lazy.rpc", (req) => req.payload);
const echoed = Buffer.from((await c.request("lazy.rpc", "x")).payload).toString();
await c.close();
await settle();
const beforeShm = ours();
const s = await connect("shm:///${ns}", { name: "lazy" });
await s.close();
await settle();
console.log(JSON.stringify({ echoed, beforeShm, afterShm: ours() }));
process.exit(0);
`;
      const { stdout } = await promisify(execFile)(process.execPath, ["--input-type=module", "-e", program], {
        timeout: 30_000,
      });
      const r = JSON.parse(stdout.trim()) as { echoed: string; beforeShm: string[]; afterShm: string[] };
      assert.equal(r.echoed, "x");
      assert.ok(r.beforeShm.includes("client/client.js"), "the hook saw the client load");
      const folder = (m: string) => m.split("/")[0]!;
      const hubSide = r.beforeShm.filter((m) => HUB_SIDE.includes(folder(m)));
      assert.deepEqual(hubSide, [], "hub-side modules loaded by a client");
      assert.ok(
        !r.beforeShm.some((m) => folder(m) === "shm-client" || folder(m) === "shm"),
        "shm loaded early",
      );
      // Nor what a plain tcp:// client does not use: the secure channel, tls://, udp://.
      for (const m of ["security/channel.js", "security/suite.js", "transport/tls.js", "transport/udp.js"]) {
        assert.ok(!r.beforeShm.includes(m), `${m} loaded by a plain tcp:// client`);
      }
      assert.ok(r.afterShm.includes("shm-client/shm-client.js"), "connect(shm://) loaded the shm client");
    } finally {
      await hub.close();
      rmSync(`/dev/shm/ezipc.${ns}`, { recursive: true, force: true });
    }
  });

  it("exports the very same values as ezipc", async () => {
    const client = (await import(CLIENT_ENTRY)) as Record<string, unknown>;
    const full = (await import(INDEX)) as Record<string, unknown>;
    assert.ok(Object.keys(client).length > 10);
    for (const [name, value] of Object.entries(client)) assert.equal(full[name], value, name);
  });
});

const HUB_ENTRY = fileURLToPath(new URL("../src/hub/index.js", import.meta.url));
/** Folders of src/ a hub program has no use for until it asks (shm:// until a shm:// connect; the bridge). */
const NOT_FOR_A_HUB = ["shm-client", "shm", "bridge", "monitor", "apps", "cli", "browser"];

describe("ezipc/hub: a hub program without shm://, the bridge or the CLI", () => {
  it("runs a hub and a client over tcp:// without loading them, and shm:// code only at its first shm:// connect", async () => {
    const ns = `lazyhub${process.pid}`;
    try {
      const program = `${WATCH_MODULES}const { Hub, connect } = await import(${JSON.stringify(HUB_ENTRY)});
const hub = await Hub.listen({ urls: ["tcp://127.0.0.1:0"] });
const c = await connect(hub.urls[0], { name: "lazy" });
let got;
const text0 = new Promise((resolve) => { got = resolve; });
await c.subscribe("lazy.t", {}, (m) => got(m.text()));
await c.publish("lazy.t", "hello");
const text = await text0;
await c.close();
await settle();
const beforeShm = ours();
const s = await connect("shm:///${ns}", { name: "lazy" });
await s.close();
await hub.close();
await settle();
console.log(JSON.stringify({ text, beforeShm, afterShm: ours() }));
process.exit(0);
`;
      const { stdout } = await promisify(execFile)(process.execPath, ["--input-type=module", "-e", program], {
        timeout: 30_000,
      });
      const r = JSON.parse(stdout.trim()) as { text: string; beforeShm: string[]; afterShm: string[] };
      assert.equal(r.text, "hello");
      assert.ok(r.beforeShm.includes("hub/hub.js"), "the hook saw the hub load");
      const folder = (m: string) => m.split("/")[0]!;
      assert.deepEqual(
        r.beforeShm.filter((m) => NOT_FOR_A_HUB.includes(folder(m))),
        [],
        "modules a hub program does not use",
      );
      assert.ok(r.afterShm.includes("shm-client/shm-client.js"), "connect(shm://) loaded the shm client");
    } finally {
      rmSync(`/dev/shm/ezipc.${ns}`, { recursive: true, force: true });
    }
  });

  it("exports the very same values as ezipc, and the hub's key files and access rules", async () => {
    const entry = (await import(HUB_ENTRY)) as Record<string, unknown>;
    const full = (await import(INDEX)) as Record<string, unknown>;
    for (const name of ["Hub", "connect", "SqliteStore", "allowList", "loadOrCreateKeyFile", "EzipcError"]) {
      assert.ok(name in entry, name);
    }
    for (const [name, value] of Object.entries(entry)) assert.equal(full[name], value, name);
  });
});

/**
 * Preloaded into a CLI process: a module hook that writes each module's URL to stderr as it loads
 * (synchronously, from the hooks' thread: nothing to wait for at exit).
 */
const LOG_LOADS = `data:text/javascript,${encodeURIComponent(`
import { register } from "node:module";
register("data:text/javascript," + encodeURIComponent('import { writeSync } from "node:fs"; export async function load(u, c, n) { writeSync(2, "LOAD " + u + "\\\\n"); return n(u, c); }'));
`)}`;

/** Runs the CLI until it prints `ready`, stops it with SIGTERM; returns the package's modules it loaded. */
async function cliModules(args: string[], ready: RegExp): Promise<string[]> {
  const child = spawn(process.execPath, ["--import", LOG_LOADS, CLI, ...args], {
    stdio: ["ignore", "pipe", "pipe"],
  });
  let err = "";
  child.stderr.on("data", (d: Buffer) => {
    err += d.toString();
  });
  const out = outputLines(child);
  await until(() => out.some((l) => ready.test(l)) || child.exitCode !== null, `ezipc ${args[0]}`, 20_000);
  child.kill("SIGTERM");
  await within(ended(child), 10_000, "the CLI to stop");
  assert.ok(
    out.some((l) => ready.test(l)),
    `${out.join("\n")}\n${err}`,
  );
  return err
    .split("\n")
    .filter((l) => l.startsWith("LOAD ") && l.includes("/dist/src/"))
    .map((l) => l.split("/dist/src/")[1]!);
}

describe("the CLI loads what a command uses", () => {
  it("`ezipc serve` loads neither the bridge, shm://, the client nor (without a WebSocket port) monitoring; `--bridge` loads the bridge", async () => {
    const folder = (m: string) => m.split("/")[0]!;
    const plain = await cliModules(["serve", "tcp://127.0.0.1:0", "--no-ws"], /^hub listening/);
    assert.ok(plain.includes("hub/hub.js"), "the hook saw the hub load");
    const unused = ["shm-client", "shm", "bridge", "monitor", "client", "apps", "cluster"];
    assert.deepEqual(
      plain.filter((m) => unused.includes(folder(m)) || m === "connect.js" || m === "security/datagrams.js"),
      [],
      "modules `ezipc serve` does not use",
    );
    const ns = `lazycli${process.pid}`;
    try {
      const bridged = await cliModules(
        ["serve", "tcp://127.0.0.1:0", "--no-ws", "--bridge", `shm:///${ns}`],
        /^bridging/,
      );
      assert.ok(bridged.includes("bridge/bridge.js") && bridged.includes("shm-client/shm-client.js"));
    } finally {
      rmSync(`/dev/shm/ezipc.${ns}`, { recursive: true, force: true });
    }
  });
});
