/**
 * The harness's own contract: helpers that read what a child process printed wait for its pipes to close,
 * not for its exit. When the parent is busy while several children print and exit, Node reaps them all at
 * once and emits their "exit" events before the last of their output has been read: a bench on a loaded
 * machine once parsed an empty string where a role had printed its result.
 */
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { readdirSync, readFileSync } from "node:fs";
import { describe, it } from "node:test";
import { collect, runRole, SERVER_NODE_FLAGS, withServer } from "../bench/procs.js";
import { ended, runToEnd, within } from "./helpers.js";

const CHILDREN = 5;
const PRINT = "console.log('END')";

/** How many children of this process have exited and wait to be reaped (Linux: /proc). */
function zombieChildren(): number {
  let n = 0;
  for (const pid of readdirSync("/proc")) {
    if (!/^\d+$/.test(pid)) continue;
    try {
      const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
      const [state, ppid] = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
      if (state === "Z" && Number(ppid) === process.pid) n++;
    } catch {
      // gone meanwhile
    }
  }
  return n;
}

/**
 * Keeps the event loop busy (a parent under load) until `count` children have printed and exited, so
 * their output and their exits are all pending at once when the loop runs again. Bounded: 20 s.
 */
function busyUntilExited(count: number): void {
  const deadline = Date.now() + 20_000;
  while (zombieChildren() < count) {
    if (Date.now() > deadline) throw new Error(`${count} children did not exit within 20 s`);
  }
}

describe("child process output", () => {
  it("runToEnd resolves with everything the child printed, even from a busy parent", async () => {
    const runs = Array.from({ length: CHILDREN }, () =>
      runToEnd(process.execPath, ["-e", PRINT], { cwd: process.cwd() }),
    );
    busyUntilExited(CHILDREN);
    for (const { code, out } of await within(Promise.all(runs), 20_000, "the children to end")) {
      assert.equal(code, 0);
      assert.equal(out, "END\n");
    }
  });

  it("ended waits for the output pipes as well as the exit", async () => {
    const outs = Array.from({ length: CHILDREN }, () => {
      const child = spawn(process.execPath, ["-e", PRINT], { stdio: ["ignore", "pipe", "inherit"] });
      let out = "";
      child.stdout!.on("data", (d: Buffer) => {
        out += d.toString();
      });
      return ended(child).then((code) => ({ child, code, out }));
    });
    busyUntilExited(CHILDREN);
    for (const { child, code, out } of await within(Promise.all(outs), 20_000, "the children to end")) {
      assert.equal(code, 0);
      assert.equal(out, "END\n");
      // Asked again once it has ended ("close" is not emitted twice), it resolves at once.
      assert.equal(await within(ended(child), 1_000, "ended() of an ended child"), 0);
    }
  });

  it("the bench's runRole and collect return a role's whole output", async () => {
    const roles = Array.from({ length: CHILDREN }, () => runRole("-e", [PRINT]));
    busyUntilExited(CHILDREN);
    for (const { out } of await within(Promise.all(roles), 20_000, "the roles to end")) {
      assert.equal(out, "END\n");
    }
    const collected = Array.from({ length: CHILDREN }, () =>
      collect(spawn(process.execPath, ["-e", PRINT], { stdio: ["ignore", "pipe", "inherit"] })),
    );
    busyUntilExited(CHILDREN);
    for (const out of await within(Promise.all(collected), 20_000, "the roles to end")) {
      assert.equal(out, "END\n");
    }
  });

  it("the bench's server roles run with the Node flags of npm start", async () => {
    assert.ok(SERVER_NODE_FLAGS.length > 0, "package.json's start script names its Node flags");
    const script = "console.log('ready ' + JSON.stringify(process.execArgv)); setInterval(() => {}, 1000)";
    const argv = await within(
      withServer("-e", [script], async (line) => JSON.parse(line) as string[]),
      20_000,
      "the server role to start",
    );
    assert.deepEqual(argv.slice(0, SERVER_NODE_FLAGS.length), [...SERVER_NODE_FLAGS]);
    // The flags are ones this Node accepts (a typo in the start script would stop the main job).
    const { out } = await within(runRole("-e", ["console.log('ok')"], SERVER_NODE_FLAGS), 20_000, "node");
    assert.equal(out, "ok\n");
  });
});
