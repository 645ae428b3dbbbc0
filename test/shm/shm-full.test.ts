import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { fileURLToPath } from "node:url";
import { ended, outputLines, spawnOnTmpfs, within } from "../helpers.js";

const fixture = fileURLToPath(new URL("../fixtures/shm-full.js", import.meta.url));

describe("shm:// when /dev/shm is full", () => {
  it("memory it has no room for is EZIPC_SHM_FULL where a file is made or a ring first reaches it, never a SIGBUS; written topics go on", async () => {
    // The fixture runs in a mount namespace of its own whose /dev/shm is a 20 MiB tmpfs (the machine's
    // /dev/shm is untouched), as in a container with a small --shm-size.
    const child = spawnOnTmpfs("/dev/shm", "20m", [process.execPath, fixture]);
    const lines = outputLines(child);
    const code = await within(ended(child), 30_000, "the fixture's end");
    const out = new Map(lines.filter((l) => l.includes(" ")).map((l) => l.split(" ") as [string, string]));
    assert.ok(
      lines.includes("done"),
      `the fixture ran to its end (exit ${code}, signal ${child.signalCode}): ${lines.join(" | ")}`,
    );
    assert.equal(code, 0);
    for (const s of [
      "fill-a",
      "sparse-made",
      "filler",
      "subscribe-sparse",
      "publish-a",
      "publish-new-after",
    ]) {
      assert.equal(out.get(s), "ok", s);
    }
    // Each of these needs memory where there is none: a new file, or ring pages nobody has written yet (of a
    // topic made before, or of a sparse file another program made). Reading needs none.
    for (const s of [
      "publish-new",
      "publish-new-ack",
      "subscribe-new",
      "publish-sparse",
      "publish-model",
      "forget-model",
      "serve-new",
      "allocate-new",
    ]) {
      assert.equal(out.get(s), "EZIPC_SHM_FULL", s);
    }
  });
});
