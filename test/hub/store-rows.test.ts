// A hub's store as a disk gives it back: edited by hand, half-overwritten, from another program. What the
// hub cannot trust stops its start with EZIPC_STORE naming the file, table and row, and the file is left as
// it was; a sound store still loads whole.
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { createRequire } from "node:module";
import path from "node:path";
import { describe, it } from "node:test";
import type Database from "better-sqlite3";
import { connect, Hub, isEzipcError, SqliteStore } from "../../src/index.js";
import { tempDir, within } from "../helpers.js";

const Sqlite = createRequire(import.meta.url)("better-sqlite3") as typeof Database;

/** A store with a bytes key `k`, a json key `c` and a persisted topic `t` of three messages. */
async function makeStore(dir: string): Promise<void> {
  const hub = await Hub.listen({ urls: ["tcp://127.0.0.1:0"], store: SqliteStore.inDir(dir) });
  const c = await connect(hub.urls[0]!);
  try {
    const k = await c.allocate("k", 8, "request", { persistent: true });
    await k.write(Buffer.from("abcdefgh"));
    const cfg = await c.config("c", { persistent: true });
    await cfg.writeIfEmpty({ speed: 1 });
    await c.configureTopic("t", { persist: true });
    for (let i = 1; i <= 3; i++) await c.publish("t", `m${i}`, { headers: { i: String(i) } });
  } finally {
    await c.close();
    await hub.close();
  }
}

function edit(dir: string, sql: string): void {
  const db = new Sqlite(path.join(dir, "hub.db"));
  try {
    db.exec(sql);
  } finally {
    db.close();
  }
}

async function startFails(dir: string, ...parts: string[]): Promise<void> {
  const file = path.join(dir, "hub.db");
  const before = readFileSync(file);
  await assert.rejects(
    Hub.listen({ urls: ["tcp://127.0.0.1:0"], store: SqliteStore.inDir(dir) }),
    (e: unknown) => {
      assert.ok(isEzipcError(e, "EZIPC_STORE"), `EZIPC_STORE, got ${String(e)}`);
      assert.ok(e.message.includes(file), `names the file: ${e.message}`);
      for (const p of parts) assert.ok(e.message.includes(p), `says ${JSON.stringify(p)}: ${e.message}`);
      return true;
    },
  );
  assert.deepEqual(readFileSync(file), before, "the file is left as it was");
}

describe("a hub's store read back", () => {
  const cases: { name: string; sql: string; says: string[] }[] = [
    {
      name: "an unknown kind",
      sql: "UPDATE blocks SET kind = 99 WHERE key = 'k'",
      says: ['blocks row "k"', "kind 99"],
    },
    {
      name: "data stored as text",
      sql: "UPDATE blocks SET data = 'zz' WHERE key = 'k'",
      says: ['blocks row "k"', "not a blob"],
    },
    {
      name: "a negative version",
      sql: "UPDATE blocks SET version = -5 WHERE key = 'k'",
      says: ["version -5"],
    },
    {
      name: "a version past 2^53",
      sql: "UPDATE blocks SET version = 9007199254740993 WHERE key = 'k'",
      says: ["version 9007199254740993"],
    },
    {
      name: "a version that is text",
      sql: "UPDATE blocks SET version = 'abc' WHERE key = 'k'",
      says: ["version abc"],
    },
    {
      name: "an invalid key",
      sql: "UPDATE blocks SET key = 'a b' WHERE key = 'k'",
      says: ['blocks row "a b"', "invalid key"],
    },
    {
      name: "a json key that is not JSON",
      sql: "UPDATE blocks SET data = x'7b7b' WHERE key = 'c'",
      says: ['blocks row "c"', "not a JSON document"],
    },
    {
      name: "headers that are not JSON",
      sql: "UPDATE messages SET headers = 'nope' WHERE seq = 2",
      says: ['messages row ("t", 2)', "headers"],
    },
    {
      name: "headers that are an object",
      sql: `UPDATE messages SET headers = '{"a":1}' WHERE seq = 1`,
      says: ["headers"],
    },
    {
      name: "headers with a number",
      sql: `UPDATE messages SET headers = '[{"key":1,"value":"x"}]' WHERE seq = 1`,
      says: ["headers"],
    },
    {
      name: "a payload stored as text",
      sql: "UPDATE messages SET payload = 'text' WHERE seq = 3",
      says: ['messages row ("t", 3)', "payload"],
    },
    {
      name: "a negative seq",
      sql: "UPDATE messages SET seq = -1 WHERE seq = 1",
      says: ["seq is not from 1"],
    },
    {
      name: "seqs that skip",
      sql: "UPDATE messages SET seq = 100 WHERE seq = 2",
      says: ["skip from 1 to 3"],
    },
    {
      name: "a time that is text",
      sql: "UPDATE messages SET time = 'x' WHERE seq = 1",
      says: ["time is not a number"],
    },
    {
      name: "a negative history bound",
      sql: "UPDATE topics SET max_bytes = -1",
      says: ['topics row "t"', "max_bytes -1"],
    },
    {
      name: "an invalid topic name",
      sql: "UPDATE topics SET name = 'a..b'; UPDATE messages SET topic = 'a..b'",
      says: ['topics row "a..b"'],
    },
  ];
  for (const c of cases) {
    it(`refuses to start on ${c.name}, with EZIPC_STORE naming the row, and leaves the file as it was`, async () => {
      const tmp = tempDir();
      try {
        const dir = path.join(tmp.dir, "data");
        await makeStore(dir);
        edit(dir, c.sql);
        await startFails(dir, ...c.says);
      } finally {
        tmp.cleanup();
      }
    });
  }

  it("loads a sound store whole (the checks refuse nothing a hub wrote)", async () => {
    const tmp = tempDir();
    try {
      const dir = path.join(tmp.dir, "data");
      await makeStore(dir);
      const hub = await Hub.listen({ urls: ["tcp://127.0.0.1:0"], store: SqliteStore.inDir(dir) });
      const c = await connect(hub.urls[0]!);
      try {
        const k = await c.allocate("k", 8, "request", { openExisting: true, persistent: true });
        assert.equal(Buffer.from(await k.read()).toString(), "abcdefgh");
        const cfg = await c.config("c", { persistent: true });
        assert.deepEqual(await cfg.read(), { speed: 1 });
        const s = await c.subscribe("t", { init: "oldest" });
        const it = s[Symbol.asyncIterator]();
        for (let i = 1; i <= 3; i++) {
          const r = await within(it.next(), 5_000, `message ${i}`);
          assert.equal(r.value.seq, BigInt(i));
          assert.equal(r.value.text(), `m${i}`);
          assert.equal(r.value.headers.i, String(i));
        }
        assert.equal((await c.publish("t", "m4")).seq, 4n);
      } finally {
        await c.close();
        await hub.close();
      }
    } finally {
      tmp.cleanup();
    }
  });

  it("a file that is not a database, a foreign table and a directory it cannot make: EZIPC_STORE from the CLI, no hang", () => {
    const tmp = tempDir();
    try {
      const cli = path.resolve("dist/src/cli/main.js");
      const serve = (data: string) => {
        try {
          execFileSync(process.execPath, [cli, "serve", "--data", data, "--no-ws", "tcp://127.0.0.1:0"], {
            timeout: 10_000,
            stdio: "pipe",
          });
          assert.fail("the hub started");
        } catch (e) {
          const err = e as { status: number | null; stderr: Buffer; signal: string | null };
          assert.equal(err.signal, null, "exited by itself (no hang)");
          assert.equal(err.status, 1);
          return err.stderr.toString();
        }
      };
      const garbage = path.join(tmp.dir, "garbage");
      mkdirSync(garbage);
      writeFileSync(
        path.join(garbage, "hub.db"),
        "not a database at all, but long enough to be read as one".repeat(20),
      );
      assert.match(serve(garbage), /EZIPC_STORE: cannot use .*hub\.db: file is not a database/);

      const foreign = path.join(tmp.dir, "foreign");
      mkdirSync(foreign);
      const db = new Sqlite(path.join(foreign, "hub.db"));
      db.exec("CREATE TABLE blocks (id INTEGER PRIMARY KEY, name TEXT)");
      db.close();
      assert.match(serve(foreign), /EZIPC_STORE: cannot use .*hub\.db: .*blocks/);

      const file = path.join(tmp.dir, "a-file");
      writeFileSync(file, "x");
      assert.match(serve(path.join(file, "data")), /EZIPC_STORE: cannot make the store's directory/);
      // Where mkdir keeps failing with ENOENT under a directory that exists, Node's recursive mkdir looped
      // for ever.
      assert.match(serve("/proc/ezipc-no-such-dir/data"), /EZIPC_STORE: cannot make the store's directory/);
    } finally {
      tmp.cleanup();
    }
  });
});
