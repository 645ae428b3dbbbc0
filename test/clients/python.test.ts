import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { rmSync } from "node:fs";
import path from "node:path";
import { describe, it } from "node:test";
import { fileURLToPath } from "node:url";
import { connect, dh25519, Hub } from "../../src/index.js";
import { fixture, runToEnd, tempDir, within } from "../helpers.js";

const pythonDir = fileURLToPath(new URL("../../../clients/python", import.meta.url));

/**
 * The Python to test with: the first of $EZIPC_PYTHON, python3 and Debian's /usr/bin/python3 that can import
 * `cryptography` (the encrypted-connection tests need it; .ci/run installs python3-cryptography), else python3.
 */
function python(): string {
  const candidates = [process.env.EZIPC_PYTHON, "python3", "/usr/bin/python3"].filter(
    (p): p is string => !!p,
  );
  for (const p of candidates) {
    if (spawnSync(p, ["-c", "import cryptography"], { stdio: "ignore" }).status === 0) return p;
  }
  return "python3";
}

/** Runs `python3 -m unittest` in clients/python with `env`; resolves with its exit code and output. */
function unittest(env: Record<string, string>): Promise<{ code: number | null; out: string }> {
  return runToEnd(python(), ["-m", "unittest", "discover", "-s", "tests", "-t", ".", "-v"], {
    cwd: pythonDir,
    env: { ...env, PYTHONDONTWRITEBYTECODE: "1" },
  });
}

describe("the Python client (clients/python) against a real hub", () => {
  it("passes its unittest suite over tcp:// and unix://, nothing skipped", async () => {
    const tmp = tempDir();
    const hub = await Hub.listen({
      urls: ["tcp://127.0.0.1:0", `unix://${path.join(tmp.dir, "hub.sock")}`],
      disposeGraceMs: 200,
    });
    // A secure hub: its key pinned by the clients (IK) or checked (XX); one allowed client by token.
    const staticKey = dh25519.generateKeyPair();
    const secure = await Hub.listen({
      urls: ["tcp://127.0.0.1:0"],
      security: {
        staticKey,
        clients: [{ name: "py-token", token: "s3cret", allow: { subscribe: ["py.>"] } }],
      },
    });
    const full = await Hub.listen({ urls: ["tcp://127.0.0.1:0"], maxConnections: 0 });
    // A TypeScript server of a stream, for the Python caller: "0", "1", … up to the number it is sent.
    const server = await connect(hub.urls[0]!, { name: "ts-streamer" });
    await server.serve("ts.count", async function* (req) {
      for (let i = 0; i < Number(req.text()); i++) yield String(i);
    });
    // A shm:// namespace for ezipc.shm (reading topics with mmap alone), and the TypeScript publisher its
    // tests start.
    const shmNs = `py${process.pid}`;
    try {
      const r = await within(
        unittest({
          EZIPC_TEST_SHM_NS: shmNs,
          EZIPC_TEST_SHM_WRITER: `${process.execPath} ${fixture("shm-topic-writer.js")}`,
          EZIPC_TEST_TS_STREAM: "ts.count",
          EZIPC_TEST_URLS: hub.urls.join(" "),
          EZIPC_TEST_FULL_URL: full.urls[0]!,
          EZIPC_TEST_SECURE_URL: secure.urls[0]!,
          EZIPC_TEST_HUB_KEY: Buffer.from(staticKey.publicKey).toString("base64"),
        }),
        120_000,
        "python tests",
      );
      assert.equal(r.code, 0, r.out);
      assert.match(r.out, /^OK$/m, r.out);
      assert.doesNotMatch(r.out, /skipped/, r.out);
      const ran = /Ran (\d+) tests/.exec(r.out);
      assert.ok(ran && Number(ran[1]) >= 31, r.out);
      assert.match(
        r.out,
        /test_follows_a_writer_that_laps_it_without_a_torn_message \(.*\) \.\.\. ok/,
        r.out,
      );
    } finally {
      await server.close();
      await hub.close();
      await secure.close();
      await full.close();
      rmSync(`/dev/shm/ezipc.${shmNs}`, { recursive: true, force: true });
    }
  });
});
