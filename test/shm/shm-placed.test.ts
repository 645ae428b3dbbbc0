/**
 * /dev/shm is writable by every user: what someone else (or a mistake) puts where ezipc looks for its files
 * is refused with a coded error, never followed, written into or blocked on.
 */
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import {
  chownSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  symlinkSync,
  writeFileSync,
} from "node:fs";
import { after, describe, it } from "node:test";
import { connect, isEzipcError } from "../../src/index.js";
import { Waker } from "../../src/shm/waker.js";

const name = `test-placed-${process.pid}`;
const dir = `/dev/shm/ezipc.${name}`;
const url = `shm:///${name}` as const;
/** A uid that is not this process's (nobody). */
const OTHER_UID = 65534;

const code = (e: unknown) => (isEzipcError(e) ? e.code : String(e));

after(() => {
  for (const n of [name, `${name}-real`, `${name}-theirs`])
    rmSync(`/dev/shm/ezipc.${n}`, { recursive: true, force: true });
});

describe("shm:// files placed by others", () => {
  it("a symbolic link, a directory or a FIFO under a topic's name is EZIPC_SHM_BAD_FILE, and a link's target is untouched", async () => {
    // A valid topic in another namespace, and a link to it under this namespace's topic name.
    const real = await connect(`shm:///${name}-real`);
    const c = await connect(url);
    try {
      await real.publish("t", "one");
      symlinkSync(`/dev/shm/ezipc.${name}-real/t`, `${dir}/alias`);
      mkdirSync(`${dir}/adir`);
      execFileSync("mkfifo", [`${dir}/apipe`]);
      for (const topic of ["alias", "adir", "apipe"]) {
        await assert.rejects(
          c.publish(topic, "two"),
          (e) => code(e) === "EZIPC_SHM_BAD_FILE",
          `publish ${topic}`,
        );
        await assert.rejects(
          c.subscribe(topic, {}, () => {}),
          (e) => code(e) === "EZIPC_SHM_BAD_FILE",
          `subscribe ${topic}`,
        );
      }
      const [info] = await real.topics("t");
      assert.equal(info!.lastSeq, 1n, "nothing was written through the link");
      // A listing leaves them out and lists the rest (`ezipc ls` failed whole on the first).
      await c.publish("fine", "x");
      assert.deepEqual(
        (await c.topics()).map((t) => t.name),
        ["fine"],
      );
      await c.allocate("key", 8, "poll");
      symlinkSync(`/dev/shm/ezipc.${name}-real/t`, `${dir}/.var.linked`);
      assert.deepEqual(
        (await c.list()).map((k) => k.key),
        ["key"],
      );
    } finally {
      await c.close();
      await real.close();
    }
  });

  it("a private namespace refuses a directory or a file another user owns", async () => {
    // Another user made the namespace directory before us (as root, this test gives it away).
    const theirs = `/dev/shm/ezipc.${name}-theirs`;
    mkdirSync(theirs, { mode: 0o777 });
    chownSync(theirs, OTHER_UID, OTHER_UID);
    await assert.rejects(
      (async () => {
        const c = await connect(`shm:///${name}-theirs`);
        try {
          await c.publish("t", "x");
        } finally {
          await c.close();
        }
      })(),
      (e) => code(e) === "EZIPC_SHM_BAD_FILE" && /owned by uid 65534/.test((e as Error).message),
    );
    // A valid topic file in our own namespace, given to another user: it could have been forged.
    const c = await connect(url);
    try {
      await c.publish("given", "x");
      const other = await connect(url);
      try {
        chownSync(`${dir}/given`, OTHER_UID, OTHER_UID);
        await assert.rejects(
          other.subscribe("given", {}, () => {}),
          (e) => code(e) === "EZIPC_SHM_BAD_FILE",
        );
      } finally {
        await other.close();
      }
    } finally {
      await c.close();
    }
  });

  it("a wake-up byte is never written through a link or into a file put under a pipe's name", () => {
    mkdirSync(dir, { recursive: true });
    const victim = `${dir}/victim`;
    writeFileSync(victim, "unchanged");
    const onWake = () => {};
    const w = Waker.acquire(dir, onWake);
    try {
      // The pipe names of two processes that do not exist: a link to the victim, and a regular file.
      symlinkSync(victim, `${dir}/.wake.999999.1`);
      writeFileSync(`${dir}/.wake.999999.2`, "");
      assert.equal(w.wakeProcess(999_999, 1), false, "a link is not a pipe");
      assert.equal(w.wakeProcess(999_999, 2), false, "a regular file is not a pipe");
      assert.equal(readFileSync(victim, "utf8"), "unchanged");
      assert.equal(readFileSync(`${dir}/.wake.999999.2`, "utf8"), "");
    } finally {
      w.release(onWake);
    }
  });

  it("a namespace removed under a client is EZIPC_SHM_GONE on its next open, even once another process made it again", async () => {
    const gone = `${name}-gone`;
    const c = await connect(`shm:///${gone}`);
    try {
      await c.publish("t", "x");
      rmSync(`/dev/shm/ezipc.${gone}`, { recursive: true });
      const isGone = (e: unknown) => code(e) === "EZIPC_SHM_GONE";
      await assert.rejects(c.publish("u", "x"), isGone, "a topic's file in the removed directory");
      await assert.rejects(c.topics(), isGone, "a listing");
      // Another process's client makes the namespace again: this client's files are not its files.
      const d = await connect(`shm:///${gone}`);
      try {
        await assert.rejects(c.publish("v", "x"), isGone, "a file in the new directory, beside the old ones");
        await assert.rejects(c.allocate("k", 8, "poll"), isGone, "a variable's file");
        await d.publish("v", "y");
        assert.deepEqual(
          (await d.topics()).map((t) => t.name),
          ["v"],
        );
      } finally {
        await d.close();
      }
    } finally {
      await c.close();
      rmSync(`/dev/shm/ezipc.${gone}`, { recursive: true, force: true });
    }
  });

  it("a shared mode is applied as asked whatever the umask: files, the namespace (sticky), wake-up pipes others may write", async () => {
    const shared = `${name}-shared`;
    const old = process.umask(0o022); // the usual umask, which took the group's and others' write bits
    try {
      const c = await connect(`shm:///${shared}`, { mode: 0o666 });
      try {
        await c.publish("t", "x");
        await c.allocate("k", 8, "poll");
        const s = await c.serve("r", (q) => q.payload);
        await c.subscribe("t", {}, () => {}); // (this process's wake-up pipe)
        const d = `/dev/shm/ezipc.${shared}`;
        const mode = (f: string) => statSync(f).mode & 0o7777;
        assert.equal(mode(d), 0o1777, "the namespace: everyone creates files, nobody removes another's");
        for (const f of ["t", ".var.k", ".rpc.r"]) assert.equal(mode(`${d}/${f}`), 0o666, f);
        const pipes = readdirSync(d).filter((f) => f.startsWith(".wake."));
        assert.ok(pipes.length > 0, "this process has a wake-up pipe");
        for (const f of pipes)
          assert.equal(mode(`${d}/${f}`), 0o622, `${f}: others write wake-ups, only we read`);
        s.close();
      } finally {
        await c.close();
      }
    } finally {
      process.umask(old);
      rmSync(`/dev/shm/ezipc.${shared}`, { recursive: true, force: true });
    }
  });
});
