import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { describe, it } from "node:test";
import { ErrorCodes, EzipcError, isEzipcError } from "../src/errors.js";
import * as api from "../src/index.js";

describe("error registry", () => {
  it("documents every code in docs/errors.md, and documents no code that does not exist", () => {
    const doc = readFileSync(new URL("../../docs/errors.md", import.meta.url), "utf8");
    for (const code of Object.keys(ErrorCodes))
      assert.ok(doc.includes(`\`${code}\``), `${code} missing from docs/errors.md`);
    for (const m of doc.matchAll(/`(EZIPC_[A-Z_]+)`/g))
      assert.ok(m[1]! in ErrorCodes, `${m[1]} documented but not in the registry`);
  });

  it("builds coded errors with a cause", () => {
    const cause = new Error("root");
    const e = new EzipcError("EZIPC_DECODE", "bad bytes", { cause });
    assert.equal(e.code, "EZIPC_DECODE");
    assert.equal(e.cause, cause);
    assert.ok(e instanceof Error);
    assert.ok(isEzipcError(e, "EZIPC_DECODE"));
    assert.ok(!isEzipcError(e, "EZIPC_ENCODE"));
    assert.equal(new EzipcError("EZIPC_PROTOCOL").message, ErrorCodes.EZIPC_PROTOCOL);
  });

  it("exposes the public API by name from the package entry", () => {
    for (const name of [
      "listen",
      "dial",
      "Dialer",
      "Service",
      "schemaCodec",
      "t",
      "jsonCodec",
      "msgpackCodec",
      "setLogger",
      "EzipcError",
    ]) {
      assert.ok(name in api, `${name} is exported`);
    }
    assert.ok(!("StreamConnection" in api), "internals stay internal");
  });
});
