import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { readFileSync } from "node:fs";
import path from "node:path";
import { describe, it } from "node:test";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { spawnFixture, tempDir } from "./helpers.js";

const run = promisify(execFile);
const cli = fileURLToPath(new URL("../src/cli/main.js", import.meta.url));
const pkg = JSON.parse(readFileSync(new URL("../../package.json", import.meta.url), "utf8")) as {
  version: string;
};

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
});
