import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { writeFileSync } from "node:fs";
import path from "node:path";
import { describe, it } from "node:test";
import { Hub, isEzipcError } from "../../src/index.js";
import { AccessPolicy, allowList, patternCovers } from "../../src/security/access.js";
import { keyPairFromPrivate } from "../../src/security/x25519.js";
import { tempDir } from "../helpers.js";

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

describe("allowed-client lists a hub cannot admit by", () => {
  const key = Buffer.alloc(32, 1).toString("base64");
  const bad: [string, unknown, RegExp][] = [
    ["not a list", { name: "a", token: "t" }, /not a list/],
    ["an entry that is not an object", ["a"], /entry 0 is not an object/],
    ["an entry without a name", [{ token: "t" }], /entry 0 has no name/],
    [
      "two entries of one name",
      [
        { name: "x", token: "t1", allow: { publish: ["a.>"] } },
        { name: "x", token: "t2" },
      ],
      /two entries are named "x"/,
    ],
    ["a token that is a number", [{ name: "n", token: 5 }], /client "n": token is not a non-empty text/],
    ["an empty token", [{ name: "e", token: "" }], /client "e": token/],
    [
      "a public key that is not one",
      [{ name: "k", publicKey: "abc" }],
      /client "k": not a base64 Curve25519 public key/,
    ],
    ["neither key nor token", [{ name: "z" }], /client "z" has neither a publicKey nor a token/],
    [
      "allow as a list",
      [{ name: "q", token: "t", allow: ["publish"] }],
      /client "q": allow is not an object/,
    ],
    [
      "patterns as a text",
      [{ name: "s", token: "t", allow: { publish: "a.b" } }],
      /allow.publish is not a list of patterns/,
    ],
    [
      "a pattern that is a number",
      [{ name: "p", token: "t", allow: { subscribe: [7] } }],
      /allow.subscribe: 7 is not a pattern/,
    ],
    [
      "a pattern with an empty token",
      [{ name: "p", token: "t", allow: { publish: ["a..b"] } }],
      /"a..b" is not a pattern: an empty token/,
    ],
    [
      "a pattern with > inside",
      [{ name: "p", token: "t", allow: { publish: ["a.>.b"] } }],
      /> must be the last token/,
    ],
    [
      "an unknown operation",
      [{ name: "o", token: "t", allow: { publsh: ["x"] } }],
      /unknown operation publsh/,
    ],
  ];
  for (const [what, list, says] of bad) {
    it(`refuses ${what} at start (EZIPC_AUTH), for the permissions and for the handshake's list alike`, () => {
      for (const make of [() => new AccessPolicy(list as never), () => allowList(list as never)]) {
        assert.throws(make, (e) => isEzipcError(e, "EZIPC_AUTH") && says.test(e.message));
      }
    });
  }

  it("takes a sound list (keys, tokens, both, with and without allow)", () => {
    const list = [
      { name: "k", publicKey: key },
      { name: "t", token: "s3cret", allow: { publish: ["a.>", "b.*.c"], subscribe: [">"] } },
      { name: "both", publicKey: key, token: "x", allow: {} },
    ];
    const p = new AccessPolicy(list);
    assert.equal(p.permits("t", "publish", "b.x.c"), true);
    assert.equal(p.permits("both", "publish", "a"), false);
    assert.equal(allowList(list)({ publicKey: Buffer.alloc(32, 1), token: undefined }).ok, true);
  });

  it("a hub given such a list does not start; `ezipc serve --clients` says which file and what, without a stack", async () => {
    await assert.rejects(
      Hub.listen({
        urls: ["tcp://127.0.0.1:0"],
        security: {
          staticKey: keyPairFromPrivate(Buffer.alloc(32, 9)),
          clients: [{ name: "s", token: "t", allow: { publish: "a.b" } }] as never,
        },
      }),
      (e) => isEzipcError(e, "EZIPC_AUTH") && /allow.publish/.test(e.message),
    );
    const tmp = tempDir();
    try {
      const cli = path.resolve("dist/src/cli/main.js");
      const keyFile = path.join(tmp.dir, "hub.key");
      const serve = (clients: string) => {
        try {
          execFileSync(
            process.execPath,
            [cli, "serve", "--no-ws", "--key", keyFile, "--clients", clients, "tcp://127.0.0.1:0"],
            {
              timeout: 10_000,
              stdio: "pipe",
            },
          );
          assert.fail("the hub started");
        } catch (e) {
          const err = e as { status: number | null; stderr: Buffer };
          assert.equal(err.status, 1);
          return err.stderr.toString();
        }
      };
      const notJson = path.join(tmp.dir, "not-json");
      writeFileSync(notJson, '{"a":');
      assert.match(serve(notJson), /^ezipc: EZIPC_AUTH: .*not-json: not a JSON file of allowed clients/);
      assert.match(
        serve(path.join(tmp.dir, "missing")),
        /^ezipc: EZIPC_AUTH: .*missing: not a JSON file of allowed clients: ENOENT/,
      );
      const dup = path.join(tmp.dir, "dup");
      writeFileSync(
        dup,
        JSON.stringify([
          { name: "x", token: "a" },
          { name: "x", token: "b" },
        ]),
      );
      assert.match(serve(dup), /^ezipc: EZIPC_AUTH: .*dup: allowed clients: two entries are named "x"/);
    } finally {
      tmp.cleanup();
    }
  });
});
