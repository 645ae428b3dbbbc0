import assert from "node:assert/strict";
import { execFile, spawn } from "node:child_process";
import { existsSync, readdirSync, readFileSync, rmSync } from "node:fs";
import net from "node:net";
import path from "node:path";
import { createInterface } from "node:readline";
import { describe, it } from "node:test";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { connect, dial, Hub, loadOrCreateKeyFile } from "../src/index.js";
import { ended, exited, outputLines, spawnFixture, tempDir, until, within } from "./helpers.js";

const run = promisify(execFile);
const cli = fileURLToPath(new URL("../src/cli/main.js", import.meta.url));
const pkg = JSON.parse(readFileSync(new URL("../../package.json", import.meta.url), "utf8")) as {
  version: string;
};

/**
 * Runs `fn` against `ezipc serve unix://SOCK --no-ws FLAGS…` in its own process (ready once it printed its
 * store line), then stops it and removes its folder.
 */
async function withServeProcess(flags: string[], fn: (sock: string) => Promise<void>): Promise<void> {
  const tmp = tempDir();
  const sock = path.join(tmp.dir, "hub.sock");
  const { child } = await spawnFixture(
    "../../src/cli/main.js",
    ["serve", `unix://${sock}`, "--no-ws", ...flags],
    10_000,
    /^store:/,
  );
  try {
    await fn(sock);
  } finally {
    child.kill("SIGTERM");
    await new Promise((r) => child.once("exit", r));
    tmp.cleanup();
  }
}

describe("ezipc CLI", () => {
  it("prints its version", async () => {
    const { stdout } = await run(process.execPath, [cli, "--version"]);
    assert.equal(stdout.trim(), pkg.version);
  });

  it("has --help on every subcommand", async () => {
    const { stdout } = await run(process.execPath, [cli, "--help"]);
    const commands = [...stdout.matchAll(/^ {2}([a-z-]+)\s/gm)].map((m) => m[1]!).filter((c) => c !== "help");
    assert.ok(commands.includes("echo-server") && commands.includes("echo"), stdout);
    for (const c of commands) {
      const r = await run(process.execPath, [cli, c, "--help"]);
      assert.match(r.stdout, new RegExp(`Usage: ezipc ${c}`));
    }
  });

  it("serve --hold-publishers-ms sets publisher flow control (0: a lagging subscriber holds nobody)", async () => {
    for (const [flag, held] of [
      ["0", false],
      ["60000", true],
    ] as const) {
      await withServeProcess(["--hold-publishers-ms", flag], async (sock) => {
        const client = await connect(`unix://${sock}`);
        try {
          await client.configureTopic("cli.flow", { maxBytes: 4096 });
          // A subscriber that takes one message and never reads on.
          await client.subscribe("cli.flow", { prefetch: 1 }, () => new Promise(() => {}));
          for (let i = 0; i < 200; i++) client.publishAndForget("cli.flow", Buffer.alloc(100, i));
          await client.publish("cli.flow", "end"); // every publish before it has reached the hub
          if (held) await until(async () => (await client.stats()).publisherHolds > 0, "a hold", 5_000);
          else assert.equal((await client.stats()).publisherHolds, 0);
        } finally {
          await client.close();
        }
      });
    }
  });

  it("serve takes the hello and heartbeat timeouts as flags", async () => {
    await withServeProcess(
      ["--handshake-timeout-ms", "300", "--heartbeat-interval-ms", "100"],
      async (sock) => {
        const mute = net.connect(sock);
        mute.on("error", () => {});
        mute.resume(); // read (and drop) the hub's pings, so its close is seen
        const t0 = Date.now();
        await within(
          new Promise((r) => mute.once("close", r)),
          5_000,
          "the hub to drop a client without hello",
        );
        const elapsed = Date.now() - t0;
        assert.ok(elapsed >= 250 && elapsed < 2_000, `dropped after ${elapsed} ms (flag: 300 ms)`);
      },
    );
  });

  it("runs the echo demo end to end over a Unix socket", async () => {
    const tmp = tempDir();
    const url = `unix://${path.join(tmp.dir, "echo.sock")}`;
    const { child } = await spawnFixture(
      "../../src/cli/main.js",
      ["echo-server", url],
      10_000,
      /listening on unix:/,
    );
    try {
      const { stdout } = await run(process.execPath, [
        cli,
        "echo",
        "hello there",
        "--url",
        url,
        "--count",
        "2",
      ]);
      const lines = stdout.trim().split("\n");
      assert.equal(lines.length, 2);
      for (const l of lines) assert.match(l, /^hello there {2}\(\d+ µs\)$/);
    } finally {
      child.kill("SIGTERM");
      await new Promise((r) => child.once("exit", r));
      tmp.cleanup();
    }
  });

  it("serve takes its hub-wide limits as flags (--max-connections, --max-subscriptions, --max-pointers)", async () => {
    const flags = ["--max-connections", "1", "--max-subscriptions", "1", "--max-pointers", "1"];
    await withServeProcess(flags, async (sock) => {
      const url = `unix://${sock}`;
      const c = await connect(url, { name: "only" });
      await c.subscribe("one", {}, () => {});
      await assert.rejects(
        c.subscribe("two", {}, () => {}),
        { code: "EZIPC_TOO_MANY_SUBSCRIPTIONS" },
      );
      await c.allocate("k", 4, "poll");
      await assert.rejects(c.watch("k", "poll"), { code: "EZIPC_TOO_MANY_POINTERS" });
      // The one connection is taken: another process is refused, with the code on its error line.
      await assert.rejects(run(process.execPath, [cli, "stats", "--url", url]), (e: { stderr: string }) => {
        assert.match(e.stderr, /EZIPC_TOO_MANY_CONNECTIONS/);
        return true;
      });
      await c.close();
    });
  });

  it("exits non-zero with a coded message when the server is absent", async () => {
    await assert.rejects(
      run(process.execPath, [cli, "echo", "x", "--url", "tcp://127.0.0.1:1"]),
      (e: { stderr: string; code: number }) => {
        assert.equal(e.code, 1);
        assert.match(e.stderr, /EZIPC_CONNECTION_REFUSED/);
        return true;
      },
    );
  });

  it("bad arguments get one line without a class name, before anything is created", async () => {
    const tmp = tempDir();
    try {
      const fails = async (args: string[], pattern: RegExp) => {
        await assert.rejects(
          run(process.execPath, [cli, ...args], { cwd: tmp.dir }),
          (e: { stderr: string; code: number }) => {
            assert.equal(e.code, 1);
            const lines = e.stderr.trim().split("\n");
            assert.equal(lines.length, 1, e.stderr);
            assert.doesNotMatch(e.stderr, /(TypeError|RangeError|InvalidArgumentError|Error):/);
            assert.match(e.stderr, pattern);
            return true;
          },
        );
      };
      await fails(["sub", "news", "--init", "sideways", "--url", "unix:///nonexistent.sock"], /--init/);
      await fails(["chat-server", "--db", "foo:bar", "--port", "0"], /sqlite:PATH or mysql/);
      await fails(["chat-server", "--time-zone", "Mars/Base", "--port", "0"], /time zone/);
      await fails(
        ["chat-server", "--db", "mysql://nobody:wrong@127.0.0.1:3306/ezipc_none", "--port", "0"],
        /EZIPC_STORE: cannot open mysql:\/\/nobody:\*\*\*@/,
      );
      // A key file where none can be written; commands that need a hub or a socket, given shm://.
      await fails(
        ["keygen", path.join(tmp.dir, "no", "such", "dir", "k.key")],
        /EZIPC_AUTH: cannot write the key file/,
      );
      await fails(["keygen", "/proc/ezipc.key"], /EZIPC_AUTH: cannot write the key file/);
      await fails(["stats", "--url", "shm:///none"], /EZIPC_NOT_SUPPORTED: shm:\/\/\/none has no hub/);
      await fails(["echo", "x", "--url", "shm://"], /EZIPC_INVALID_URL: .*shared memory between processes/);
      await fails(["listen", "shm://"], /EZIPC_INVALID_URL: .*shared memory between processes/);
      await fails(["serve", "--allow-origin", "app.example"], /--allow-origin.*is not an origin/);
      assert.deepEqual(readdirSync(tmp.dir), [], "nothing was created");
    } finally {
      tmp.cleanup();
    }
  });

  it("set, get, ls, pub, sub, req and reply over shared memory (--url shm:///NAME), with no hub", async () => {
    const name = `test-cli-${process.pid}`;
    const url = `shm:///${name}`;
    const ez = (...args: string[]) => run(process.execPath, [cli, ...args, "--url", url]);
    try {
      // Reading a namespace that does not exist does not make it.
      assert.match((await ez("ls")).stdout, /^KEY\s+KIND/);
      await assert.rejects(ez("get", "greeting"), /EZIPC_KEY_NOT_FOUND/);
      assert.equal(existsSync(`/dev/shm/ezipc.${name}`), false);
      assert.equal((await ez("pub", "news", "first")).stdout.trim(), "news seq 1");
      assert.equal((await ez("pub", "news", "second")).stdout.trim(), "news seq 2");
      const subbed = await ez("sub", "news", "--init", "oldest", "-n", "2");
      assert.deepEqual(subbed.stdout.trim().split("\n"), ["news #1 first", "news #2 second"]);
      assert.equal((await ez("set", "greeting", "hello")).stdout.trim(), "greeting version 2");
      assert.equal((await ez("get", "greeting")).stdout.trim(), "hello");
      assert.equal((await ez("set", "greeting", "j", "--offset", "0")).stdout.trim(), "greeting version 3");
      assert.equal((await ez("get", "greeting")).stdout.trim(), "jello");
      const table = (await ez("ls")).stdout.trim().split("\n");
      assert.match(table[0]!, /^KEY\s+KIND/);
      assert.match(table[1]!, /^greeting\s+bytes\s+5\s+3\s+0\s+persistent\s+-$/);
      assert.match(table[3]!, /^TOPIC\s+MESSAGES/);
      assert.match(table[4]!, /^news\s+2\s+\d+\s+1\s+2\s+0\s+no$/);
      const replier = spawn(process.execPath, [cli, "reply", "echo.svc", "--url", url], {
        stdio: ["ignore", "pipe", "inherit"],
      });
      const replies = createInterface({ input: replier.stdout! })[Symbol.asyncIterator]();
      assert.equal((await within(replies.next(), 10_000, "reply to start")).value, "serving echo.svc");
      assert.equal((await ez("req", "echo.svc", "ping")).stdout.trim(), "ping");
      await assert.rejects(ez("req", "nobody", "x"), /EZIPC_NO_RESPONDERS/);
      await assert.rejects(ez("sub", "news.*"), /EZIPC_NOT_SUPPORTED/);
      replier.kill("SIGINT");
      assert.equal(await new Promise((r) => replier.once("exit", r)), 0);
    } finally {
      rmSync(`/dev/shm/ezipc.${name}`, { recursive: true, force: true });
    }
  });

  it("what peers chose is shown on one line, with nothing a terminal would act on (escape sequences, C1, bidi overrides)", async () => {
    const hub = await Hub.listen({ urls: ["tcp://127.0.0.1:0"] });
    const url = hub.urls[0]!;
    const peer = await connect(url, { name: "peer" });
    const ez = (...args: string[]) => run(process.execPath, [cli, ...args, "--url", url]);
    try {
      // A client name a terminal would act on never gets in: the hub refuses the handshake.
      for (const name of [
        "evil\u001b]52;c;aGk=\u0007",
        "a\u009b31m",
        "right\u202eleft",
        "two\nlines",
        "x".repeat(256),
      ]) {
        await assert.rejects(
          connect(url, { name, reconnect: false }),
          { code: "EZIPC_HANDSHAKE" },
          JSON.stringify(name),
        );
      }
      const ok = await connect(url, { name: "naïve café ☕" });
      assert.match(ok.label, /^naïve café ☕#/);
      await ok.close();
      // Payloads: line breaks, C1 and bidi controls written as escapes; anything binary as hex.
      for (const [i, text] of [
        "one\ntwo\rthree",
        "csi\u009b2J",
        "rtl\u202egnp.exe",
        "esc\u001b[2J",
      ].entries()) {
        await peer.publish("shown", text, { headers: { i: String(i) } });
      }
      const subbed = (await ez("sub", "shown", "--init", "oldest", "-n", "4")).stdout.trimEnd().split("\n");
      assert.deepEqual(subbed, [
        "shown #1 one\\ntwo\\rthree",
        "shown #2 csi\\u009b2J",
        "shown #3 rtl\\u202egnp.exe",
        `shown #4 ${Buffer.from("esc\u001b[2J").toString("hex")}`,
      ]);
      // A server's error message, through EZIPC_REMOTE to stderr.
      await peer.serve("shown.fail", () => {
        throw new Error("bad\u001b]0;pwned\u0007 news");
      });
      await assert.rejects(ez("req", "shown.fail", "x"), (e: { stderr: string }) => {
        assert.ok(!e.stderr.includes("\u001b"), e.stderr);
        assert.match(e.stderr, /EZIPC_REMOTE: .*bad\\u001b\]0;pwned\\u0007 news/);
        return true;
      });
      // A frame sent to `ezipc listen`.
      const { child: listener, line } = await spawnFixture(
        "../../src/cli/main.js",
        ["listen", "tcp://127.0.0.1:0"],
        15_000,
        /^listening on tcp:/,
      );
      try {
        const lines = outputLines(listener);
        const conn = await dial(line.slice("listening on ".length));
        conn.send(Buffer.from("hi\u001b[31m\nforged line"));
        await until(() => lines.length >= 1, "the frame", 10_000);
        assert.match(lines[0]!, /^tcp:\/\/\S+ hi\\u001b\[31m\\nforged line$/);
        await conn.close();
      } finally {
        listener.kill("SIGINT");
        await new Promise((r) => listener.once("exit", r));
      }
    } finally {
      await peer.close();
      await hub.close();
    }
  });

  it("listen and send: datagrams over udp:// (and frames over any transport)", async () => {
    const { child: listener, line } = await spawnFixture(
      "../../src/cli/main.js",
      ["listen", "udp://127.0.0.1:0"],
      15_000,
      /^listening on udp:/,
    );
    try {
      const url = line.slice("listening on ".length);
      const lines = outputLines(listener);
      await run(process.execPath, [cli, "send", url, "one", "two", "three", "--sequence"]);
      await until(() => lines.length >= 3, "three lines", 10_000);
      assert.deepEqual(
        lines.slice(0, 3).map((l) => l.split(" ").at(-1)),
        ["one", "two", "three"],
      );
      assert.match(lines[0]!, /^udp:\/\/127\.0\.0\.1:\d+ one$/);
      await assert.rejects(
        run(process.execPath, [cli, "send", url, "x".repeat(2_000)]),
        (e: { stderr: string }) => /EZIPC_MESSAGE_TOO_LARGE/.test(e.stderr),
      );
    } finally {
      listener.kill("SIGINT");
      await exited(listener);
    }
  });

  it("listen --key and send --hub-key: encrypted datagrams; a wrong token is refused with the listener's reason", async () => {
    const tmp = tempDir();
    const keyFile = path.join(tmp.dir, "udp.key");
    const key = loadOrCreateKeyFile(keyFile).publicKey.toString("base64");
    const { child: listener, line } = await spawnFixture(
      "../../src/cli/main.js",
      ["listen", "udp://127.0.0.1:0", "--key", keyFile, "--token", "sesame"],
      15_000,
      /^listening on udp:/,
    );
    try {
      const url = line.slice("listening on ".length);
      const lines = outputLines(listener);
      await run(process.execPath, [cli, "send", url, "sealed", "--hub-key", key, "--token", "sesame"]);
      await until(() => lines.some((l) => l.endsWith(" sealed")), "the sealed message printed", 10_000);
      await assert.rejects(
        run(process.execPath, [cli, "send", url, "nope", "--hub-key", key, "--token", "guess"]),
        (e: { stderr: string }) => /EZIPC_AUTH/.test(e.stderr) && /wrong or missing token/.test(e.stderr),
      );
      assert.ok(!lines.some((l) => l.endsWith(" nope")));
    } finally {
      listener.kill("SIGINT");
      await exited(listener);
    }
  });

  it("serve --no-dashboard --no-metrics keeps the WebSocket port for clients only", async () => {
    const tmp = tempDir();
    const { child: hub, line } = await spawnFixture(
      "../../src/cli/main.js",
      [
        "serve",
        `unix://${path.join(tmp.dir, "hub.sock")}`,
        "--ws",
        "ws://127.0.0.1:0",
        "--no-dashboard",
        "--no-metrics",
      ],
      15_000,
      /^hub listening on ws:/,
    );
    try {
      const http = line.slice("hub listening on ".length).replace(/^ws:/, "http:");
      for (const p of ["/", "/metrics", "/ezipc.js"]) {
        const res = await fetch(`${http}${p}`);
        await res.text();
        assert.equal(res.status, 426, `${p} is not served`);
      }
    } finally {
      hub.kill("SIGINT");
      await exited(hub);
      tmp.cleanup();
    }
  });

  it("serve, set, get, ls, stats, watch, pub, sub, req and reply against a running hub", async () => {
    const tmp = tempDir();
    const url = `unix://${path.join(tmp.dir, "hub.sock")}`;
    // serve listens for WebSocket clients too (--ws; port 0 here: any free port).
    const { child: hub, line } = await spawnFixture(
      "../../src/cli/main.js",
      ["serve", url, "--data", path.join(tmp.dir, "data"), "--ws", "ws://127.0.0.1:0"],
      15_000,
      /^hub listening on ws:/,
    );
    const wsUrl = line.slice("hub listening on ".length);
    const ez = (...args: string[]) => run(process.execPath, [cli, ...args, "--url", url]);
    try {
      assert.equal((await ez("set", "greeting", "hello")).stdout.trim(), "greeting version 2");
      assert.equal((await ez("get", "greeting")).stdout.trim(), "hello");
      const overWs = await run(process.execPath, [cli, "get", "greeting", "--url", wsUrl]);
      assert.equal(overWs.stdout.trim(), "hello", "the same hub over ws://");
      // …and serves the dashboard and /metrics on that port.
      const http = wsUrl.replace(/^ws:/, "http:");
      const page = await fetch(`${http}/`);
      assert.equal(page.status, 200);
      assert.match(await page.text(), /<title>ezipc hub<\/title>/);
      const metrics = await fetch(`${http}/metrics`);
      assert.equal(metrics.status, 200);
      assert.match(await metrics.text(), /^ezipc_keys /m);
      assert.equal((await ez("get", "greeting", "--format", "hex")).stdout.trim(), "68656c6c6f");
      await ez("set", "robot.cfg", '{"speed":1}', "--json");
      assert.equal((await ez("get", "robot.cfg")).stdout.trim(), '{"speed":1}');
      const { keys } = JSON.parse((await ez("ls", "--json")).stdout) as {
        keys: { key: string; persistent: boolean }[];
      };
      assert.deepEqual(
        keys.map((k) => [k.key, k.persistent]),
        [
          ["greeting", true],
          ["robot.cfg", true],
        ],
      );
      const table = (await ez("ls", "robot.*")).stdout.trim().split("\n");
      assert.match(table[0]!, /^KEY\s+KIND\s+SIZE\s+VERSION\s+REFS\s+STATE/);
      assert.equal(table.length, 2);
      const stats = JSON.parse((await ez("stats", "--json")).stdout) as { keys: number; store: string };
      assert.equal(stats.keys, 2);
      assert.equal(stats.store, "sqlite");
      await assert.rejects(ez("get", "missing"), (e: { stderr: string; code: number }) => {
        assert.equal(e.code, 1);
        assert.match(e.stderr, /EZIPC_KEY_NOT_FOUND/);
        return true;
      });

      // watch prints the value, then each change.
      const watcher = spawn(process.execPath, [cli, "watch", "greeting", "--url", url], {
        stdio: ["ignore", "pipe", "pipe"],
      });
      let watchErr = "";
      watcher.stderr!.on("data", (d: Buffer) => {
        watchErr += d.toString();
      });
      const lines = createInterface({ input: watcher.stdout! })[Symbol.asyncIterator]();
      assert.equal((await within(lines.next(), 10_000, "first watch line")).value, "v2 hello");
      await ez("set", "greeting", "HELLO");
      assert.equal((await within(lines.next(), 10_000, "second watch line")).value, "v3 HELLO");
      watcher.kill("SIGINT");
      assert.equal(await ended(watcher), 0);
      assert.equal(watchErr, "", "stopping watch prints nothing (the key is fine)");

      // Keys have a fixed size: a longer value is refused with the size, a shorter one zero-filled.
      await assert.rejects(ez("set", "greeting", "hello, world"), (e: { stderr: string }) => {
        assert.match(
          e.stderr,
          /^ezipc: EZIPC_BAD_REQUEST: greeting holds 5 bytes \(keys have a fixed size\)/,
        );
        return true;
      });
      await ez("set", "greeting", "hi");
      assert.equal((await ez("get", "greeting", "--format", "hex")).stdout.trim(), "6869000000");
      await ez("set", "greeting", "H", "--offset", "0");
      assert.equal((await ez("get", "greeting", "--format", "hex")).stdout.trim(), "4869000000");

      // Messaging: pub (argument and stdin), sub from the oldest, ls shows the topic, req ↔ reply.
      assert.equal((await ez("pub", "news", "first")).stdout.trim(), "news seq 1");
      const piped = spawn(process.execPath, [cli, "pub", "news", "--url", url], {
        stdio: ["pipe", "pipe", "inherit"],
      });
      piped.stdin!.end("second\nthird\n");
      let pipedOut = "";
      piped.stdout!.on("data", (d: Buffer) => {
        pipedOut += d.toString();
      });
      assert.equal(await ended(piped), 0);
      assert.equal(pipedOut.trim(), "news up to seq 3");
      const subbed = await ez("sub", "news", "--init", "oldest", "-n", "3");
      assert.deepEqual(subbed.stdout.trim().split("\n"), [
        "news #1 first",
        "news #2 second",
        "news #3 third",
      ]);
      assert.match((await ez("ls")).stdout, /^news\s+3\s+\d+\s+1\s+3\s+0\s+no$/m);
      const replier = spawn(process.execPath, [cli, "reply", "echo.svc", "--url", url], {
        stdio: ["ignore", "pipe", "inherit"],
      });
      const replies = createInterface({ input: replier.stdout! })[Symbol.asyncIterator]();
      assert.equal((await within(replies.next(), 10_000, "reply to start")).value, "serving echo.svc");
      assert.equal((await ez("req", "echo.svc", "ping")).stdout.trim(), "ping");
      await assert.rejects(ez("req", "nobody", "x"), /EZIPC_NO_RESPONDERS/);
      replier.kill("SIGINT");
      assert.equal(await new Promise((r) => replier.once("exit", r)), 0);

      // ezipc bench: load this hub and report (JSON for scripts, a table for people).
      const ps = JSON.parse(
        (await ez("bench", "b.topic", "--pub", "2", "--sub", "2", "--msgs", "2000", "--size", "64", "--json"))
          .stdout,
      ) as { received: number; expected: number; lost: number; latencyUs: { p50: number; max: number } };
      assert.deepEqual([ps.received, ps.expected, ps.lost], [4000, 4000, 0]);
      assert.ok(ps.latencyUs.p50 > 0 && ps.latencyUs.max >= ps.latencyUs.p50);
      const rpc = JSON.parse(
        (await ez("bench", "--rpc", "--pub", "2", "--sub", "1", "--msgs", "200", "--json")).stdout,
      ) as {
        mode: string;
        received: number;
      };
      assert.deepEqual([rpc.mode, rpc.received], ["rpc", 200]);
      const shown = (await ez("bench", "--msgs", "500")).stdout;
      assert.match(shown, /^deliveries\/s\s+\d+$/m);
      assert.match(shown, /^latency p50 \/ p90 \/ p99 \/ max \(µs\)\s+\d+ \/ \d+ \/ \d+ \/ \d+$/m);
      assert.match(shown, /^lost \(in gaps\)\s+0 \(0\)$/m);
    } finally {
      hub.kill("SIGTERM");
      assert.equal(await new Promise((r) => hub.once("exit", r)), 0, "clean shutdown on SIGTERM");
      tmp.cleanup();
    }
  });
});
