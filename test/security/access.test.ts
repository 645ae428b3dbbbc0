import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { isEzipcError } from "../../src/index.js";
import { AccessPolicy, patternCovers } from "../../src/security/access.js";

describe("access patterns", () => {
  it("an allowed pattern covers exactly the names and patterns it matches", () => {
    const cases: [string, string, boolean][] = [
      ["a.b", "a.b", true],
      ["a.b", "a.c", false],
      ["a.*", "a.b", true],
      ["a.*", "a.b.c", false],
      ["a.*", "a.*", true],
      ["a.*", "a.>", false],
      ["a.>", "a.b.c", true],
      ["a.>", "a", false],
      ["a.>", "a.*.c", true],
      ["a.>", "a.>", true],
      [">", "x", true],
      ["*", "x.y", false],
      ["a.b.>", "a.>", false],
    ];
    for (const [allowed, requested, expected] of cases) {
      assert.equal(patternCovers(allowed, requested), expected, `${allowed} covers ${requested}`);
    }
  });

  it("clients without a list may do everything; unknown operations are refused at start", () => {
    const p = new AccessPolicy([
      { name: "r", token: "t", allow: { publish: ["x.>"] } },
      { name: "free", token: "u" },
    ]);
    assert.equal(p.permits("r", "publish", "x.y"), true);
    assert.equal(p.permits("r", "subscribe", "x.y"), false);
    assert.equal(p.permits("free", "serve", "anything"), true);
    assert.equal(p.permits(null, "serve", "anything"), true);
    assert.throws(
      () => p.check("r", "publish", "y"),
      (e) => isEzipcError(e, "EZIPC_PERMISSION_DENIED"),
    );
    assert.throws(
      () => new AccessPolicy([{ name: "bad", token: "t", allow: { publsh: ["x"] } as never }]),
      (e) => isEzipcError(e, "EZIPC_AUTH") && /publsh/.test(e.message),
    );
  });
});
