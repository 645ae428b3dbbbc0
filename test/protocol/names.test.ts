import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { isEzipcError } from "../../src/errors.js";
import { checkTopic } from "../../src/protocol/names.js";

const invalid = (t: unknown) => () =>
  assert.throws(
    () => checkTopic(t),
    (e) => isEzipcError(e, "EZIPC_INVALID_TOPIC"),
  );

describe("topic names", () => {
  it("a name is judged the same whether or not the valid one before it is remembered", () => {
    const bad: unknown[] = [
      "",
      "a..b",
      "a.*",
      "a.>",
      ".a",
      "a.",
      "bad topic",
      "x".repeat(256),
      null,
      7,
      undefined,
    ];
    for (const b of bad) {
      checkTopic("sensors.temp"); // remembered as the last valid topic
      invalid(b)();
      checkTopic("sensors.temp");
      checkTopic("sensors.temp"); // twice in a row: the remembered path
      invalid(b)();
    }
    for (const good of ["a", "a.b.c", "x".repeat(255), "#!~"]) {
      checkTopic(good);
      checkTopic(good);
    }
  });
});
