#!/usr/bin/env node
// Runs every compiled test file (dist/test/**/*.test.js) on Node's built-in test runner.
// Node 20's `node --test` takes no globs, so the files are listed here.
import { spawn } from "node:child_process";
import { readdirSync } from "node:fs";
import path from "node:path";

const root = path.resolve("dist/test");
const files = readdirSync(root, { recursive: true })
  .map(String)
  .filter((f) => f.endsWith(".test.js"))
  .filter((f) => process.argv.length <= 2 || process.argv.slice(2).some((a) => f.includes(a)))
  .map((f) => path.join(root, f))
  .sort();
if (files.length === 0) {
  console.error("no test files found under dist/test");
  process.exit(1);
}
// --test-force-exit: a file whose test failed before closing a socket or a timer would otherwise keep its
// process (and the whole run) waiting forever; --test-timeout bounds any one test.
// The run is its own process group: when it ends, whatever a failed test left running (a hub, a client, a
// nats-server it spawned) is killed with the group, so no test run leaves processes on the machine.
const run = spawn(
  process.execPath,
  ["--test", "--test-force-exit", "--test-timeout=240000", "--test-reporter=spec", ...files],
  { stdio: "inherit", detached: true },
);
const forward = (signal) => () => {
  try {
    process.kill(-run.pid, signal);
  } catch {
    // already gone
  }
};
process.once("SIGINT", forward("SIGINT"));
process.once("SIGTERM", forward("SIGTERM"));
run.once("exit", (code) => {
  try {
    process.kill(-run.pid, "SIGKILL");
  } catch {
    // nothing left
  }
  process.exit(code ?? 1);
});
