// A hub whose disk is slow: every fsync takes a second (strace injects the delay). What waits for the disk
// (an acknowledged write to a persistent key, a publish to a persisted topic) waits; nothing else does — the
// hub's event loop never waits on a sync — and what was acknowledged survives a kill -9.
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import path from "node:path";
import { describe, it } from "node:test";
import { connect, isEzipcError } from "../../src/index.js";
import { ended, tempDir, within } from "../helpers.js";
import { startCliHub } from "./hubs.js";

const SLOW_SYNC_US = 1_000_000;
const slowDisk = [
  "strace",
  "-f",
  "-qq",
  "--seccomp-bpf",
  "-o",
  "/dev/null",
  "-e",
  "trace=fsync,fdatasync",
  "-e",
  `inject=fsync,fdatasync:delay_enter=${SLOW_SYNC_US}`,
];

describe("a hub on a slow disk", () => {
  it("delays only what waits for the disk: other clients' writes, publishes and calls go on meanwhile", async () => {
    const tmp = tempDir();
    const sock = path.join(tmp.dir, "hub.sock");
    const data = path.join(tmp.dir, "data");
    const tracer = await startCliHub(sock, data, ["--no-metrics"], false, undefined, slowDisk);
    const hubPid = Number(
      execFileSync("pgrep", ["-P", String(tracer.pid)])
        .toString()
        .trim()
        .split("\n")[0],
    );
    const a = await connect(`unix://${sock}`, { name: "durable", requestTimeoutMs: 20_000 });
    const b = await connect(`unix://${sock}`, { name: "plain", requestTimeoutMs: 20_000 });
    try {
      const kept = await a.allocate("kept", 8, "request", { persistent: true });
      await a.configureTopic("journal", { persist: true });
      const plain = await b.allocate("plain", 8, "request");
      await b.serve("echo", (req) => req.payload);

      let durableDone = 0;
      const durable = [
        kept.write(Buffer.from("12345678")).then(() => durableDone++),
        a.publish("journal", "entry").then(() => durableDone++),
      ];
      // While the store syncs (a second at least), another client's work is answered.
      for (let i = 0; i < 20; i++) {
        await plain.write(Buffer.alloc(8, i));
        await b.publish("chatter", `m${i}`);
        assert.equal((await b.request("echo", `r${i}`)).text(), `r${i}`);
      }
      assert.equal(durableDone, 0, "the durable write and publish wait for the sync");
      await within(Promise.all(durable), 15_000, "the durable write and publish");
      assert.equal(Buffer.from(await kept.read()).toString(), "12345678");
    } finally {
      await a.close();
      await b.close();
    }
    // What was acknowledged survives a kill -9 (the hub, under the tracer).
    process.kill(hubPid, "SIGKILL");
    await within(ended(tracer), 10_000, "the traced hub to end");
    const again = await startCliHub(sock, data, ["--no-metrics"]);
    const c = await connect(`unix://${sock}`, { name: "after" });
    try {
      const kept = await c.allocate("kept", 8, "request", { persistent: true, openExisting: true });
      assert.equal(Buffer.from(await kept.read()).toString(), "12345678");
      const s = await c.subscribe("journal", { init: "oldest" });
      const first = await within(s[Symbol.asyncIterator]().next(), 5_000, "the journal's entry");
      assert.equal(first.value.text(), "entry");
    } finally {
      await c.close();
      again.kill("SIGINT");
      await within(ended(again), 10_000, "the hub to exit");
      tmp.cleanup();
    }
  });

  it("a sync that fails (EIO) keeps its writes waiting, refuses new durable ones, and takes them once syncs succeed", async () => {
    const tmp = tempDir();
    const sock = path.join(tmp.dir, "hub.sock");
    const data = path.join(tmp.dir, "data");
    // Slow fsyncs make the store sync on the thread pool (fdatasync); each pool thread's first two of those
    // fail (strace counts per thread).
    const failing = [
      ...["strace", "-f", "-qq", "--seccomp-bpf", "-o", "/dev/null", "-e", "trace=fsync,fdatasync"],
      ...["-e", "inject=fsync:delay_enter=100000", "-e", "inject=fdatasync:error=EIO:when=1..2"],
    ];
    const tracer = await startCliHub(sock, data, ["--no-metrics"], true, undefined, failing);
    const hubPid = Number(
      execFileSync("pgrep", ["-P", String(tracer.pid)])
        .toString()
        .trim()
        .split("\n")[0],
    );
    const c = await connect(`unix://${sock}`, { name: "durable", requestTimeoutMs: 20_000 });
    try {
      const kept = await c.allocate("kept", 8, "request", { persistent: true });
      const first = kept.write(Buffer.from("first..."));
      // While the syncs fail (a few seconds at most: the retries back off from 10 ms), a new durable write is
      // refused at once, nothing of it written; a write to a key that is not persistent goes on.
      const plain = await c.allocate("plain", 8, "request");
      let refused = false;
      for (let i = 0; i < 200 && !refused; i++) {
        await plain.write(Buffer.alloc(8, i));
        refused = await kept.write(Buffer.alloc(8, i)).then(
          () => false,
          (err: unknown) => {
            if (isEzipcError(err, "EZIPC_STORE")) return true;
            throw err;
          },
        );
      }
      assert.ok(refused, "a durable write was refused with EZIPC_STORE while the syncs failed");
      // ...and the first, which waited, is acknowledged once a sync succeeds (the batch saved again).
      await within(first, 15_000, "the first write's acknowledgement");
      await within(kept.write(Buffer.from("last....")), 15_000, "a write once syncs succeed");
    } finally {
      await c.close();
    }
    process.kill(hubPid, "SIGKILL");
    await within(ended(tracer), 10_000, "the traced hub to end");
    const again = await startCliHub(sock, data, ["--no-metrics"]);
    const d = await connect(`unix://${sock}`, { name: "after" });
    try {
      const kept = await d.allocate("kept", 8, "request", { persistent: true, openExisting: true });
      assert.equal(Buffer.from(await kept.read()).toString(), "last....");
    } finally {
      await d.close();
      again.kill("SIGINT");
      await within(ended(again), 10_000, "the hub to exit");
      tmp.cleanup();
    }
  });
});
