import assert from "node:assert/strict";
import path from "node:path";
import { describe, it } from "node:test";
import { Hub } from "../../src/index.js";
import { runToEnd, tempDir, within } from "../helpers.js";
import { buildCsharp, csharpDir } from "./csharp-build.js";

/** Runs the NUnit suite of clients/csharp with `env`; resolves with its exit code and output. */
function nunit(env: Record<string, string>): Promise<{ code: number | null; out: string }> {
  return runToEnd("nunit-console", ["-nologo", "-labels", "-noresult", "build/Ezipc.Tests.dll"], {
    cwd: csharpDir,
    env,
  });
}

describe("the C# client (clients/csharp) against a real hub", () => {
  it("builds with Mono and passes its NUnit suite over tcp:// and unix://, nothing skipped", async () => {
    buildCsharp();
    const tmp = tempDir();
    const hub = await Hub.listen({
      urls: ["tcp://127.0.0.1:0", `unix://${path.join(tmp.dir, "hub.sock")}`],
      disposeGraceMs: 200,
    });
    try {
      const r = await within(nunit({ EZIPC_TEST_URLS: hub.urls.join(" ") }), 180_000, "nunit-console");
      assert.equal(r.code, 0, r.out);
      const summary =
        /Tests run: (\d+), Errors: (\d+), Failures: (\d+), Inconclusive: (\d+).*\n.*Not run: (\d+)/.exec(
          r.out,
        );
      assert.ok(summary, r.out);
      const [, run, errors, failures, inconclusive, notRun] = summary.map(Number);
      assert.ok(run! >= 15, r.out);
      assert.deepEqual([errors, failures, inconclusive, notRun], [0, 0, 0, 0], r.out);
    } finally {
      await hub.close();
    }
  });
});
