// A hub whose disk is slow: every fsync takes a second (strace injects the delay). What waits for the disk
// (an acknowledged write to a persistent key, a publish to a persisted topic) waits; nothing else does — the
// hub's event loop never waits on a sync — and what was acknowledged survives a kill -9.
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import path from "node:path";
import { describe, it } from "node:test";
import { connect, isEzipcError } from "../../src/index.js";
import { childPid, ended, exited, tempDir, underStrace, until, within } from "../helpers.js";
import { startCliHub } from "./hubs.js";

const slowDisk = underStrace(["fsync,fdatasync:delay_enter=1000000"]);

describe("a hub on a slow disk", () => {
  it("delays only what waits for the disk: other clients' writes, publishes and calls go on meanwhile", async () => {
    const tmp = tempDir();
    const sock = path.join(tmp.dir, "hub.sock");
    const data = path.join(tmp.dir, "data");
    const tracer = await startCliHub(sock, data, ["--no-metrics"], false, undefined, slowDisk);
    const hubPid = childPid(tracer);
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
    // Slow fsyncs make the store sync on the thread pool (fdatasync), and every fdatasync fails, until the
    // tracer is stopped: it then lets the hub go on untraced.
    const failing = underStrace(["fsync:delay_enter=100000", "fdatasync:error=EIO"], true);
    const tracer = await startCliHub(sock, data, ["--no-metrics"], true, undefined, failing);
    const hubPid = childPid(tracer);
    const c = await connect(`unix://${sock}`, { name: "durable", requestTimeoutMs: 20_000 });
    try {
      const kept = await c.allocate("kept", 8, "request", { persistent: true });
      const first = kept.write(Buffer.from("first..."));
      // While the syncs fail, a new durable write is refused at once, nothing of it written; a write to a key
      // that is not persistent goes on.
      const plain = await c.allocate("plain", 8, "request");
      // (Replies come in order on one connection: once the plain write is answered, so is the durable one
      // sent before it, if it was refused; one that was taken waits for a sync, with the first.)
      const waiting: Promise<void>[] = [];
      let refused = false;
      for (let i = 0; i < 200 && !refused; i++) {
        const w = kept.write(Buffer.alloc(8, i)).then(
          () => {},
          (err: unknown) => {
            if (!isEzipcError(err, "EZIPC_STORE")) throw err;
            refused = true;
          },
        );
        await plain.write(Buffer.alloc(8, i));
        if (!refused) waiting.push(w);
      }
      assert.ok(refused, "a durable write was refused with EZIPC_STORE while the syncs failed");
      let acknowledged = false;
      // (Its failure, if any, is reported below by Promise.all: here it is only watched.)
      void first.then(
        () => {
          acknowledged = true;
        },
        () => {},
      );
      await plain.write(Buffer.alloc(8));
      assert.equal(acknowledged, false, "the first write waits while the syncs fail");
      // ...and the first, which waited, is acknowledged once a sync succeeds (the batch saved again).
      tracer.kill("SIGTERM");
      // ("exit", not "close": the hub, which goes on, still holds the tracer's output pipe.)
      await within(exited(tracer), 10_000, "the tracer to let the hub go");
      await within(Promise.all([first, ...waiting]), 15_000, "the first write's acknowledgement");
      await within(kept.write(Buffer.from("last....")), 15_000, "a write once syncs succeed");
    } finally {
      await c.close();
    }
    process.kill(hubPid, "SIGKILL");
    await until(() => !alive(hubPid), "the hub to die", 10_000);
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

/** Whether process `pid` runs (neither gone nor a zombie: the untraced hub is no child of ours to reap). */
function alive(pid: number): boolean {
  try {
    return !/^\d+ \(.*\) Z/.test(readFileSync(`/proc/${pid}/stat`, "utf8"));
  } catch {
    return false;
  }
}
