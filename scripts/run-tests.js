#!/usr/bin/env node
// Runs every compiled test file (dist/test/**/*.test.js) on Node's built-in test runner.
// Node 20's `node --test` takes no globs, so the files are listed here.
import { spawnSync } from "node:child_process";
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
const r = spawnSync(
  process.execPath,
  ["--test", "--test-force-exit", "--test-timeout=240000", "--test-reporter=spec", ...files],
  { stdio: "inherit" },
);
process.exit(r.status ?? 1);
