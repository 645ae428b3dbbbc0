import assert from "node:assert/strict";
import { execFile, spawn } from "node:child_process";
import { chmodSync, readFileSync, statSync, writeFileSync } from "node:fs";
import path from "node:path";
import { createInterface } from "node:readline";
import { describe, it } from "node:test";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import {
  connect,
  dh25519,
  generateKeyFile,
  Hub,
  isEzipcError,
  loadOrCreateKeyFile,
  readKeyFile,
} from "../../src/index.js";
import { tempDir, within } from "../helpers.js";

const run = promisify(execFile);
const cli = fileURLToPath(new URL("../../src/cli/main.js", import.meta.url));

describe("secure hub", () => {
  it("key files are 0600, refused when readable by others, and consistent", () => {
    const tmp = tempDir();
    try {
      const file = path.join(tmp.dir, "hub.key");
      const pair = generateKeyFile(file);
      assert.equal(statSync(file).mode & 0o777, 0o600);
      assert.deepEqual(readKeyFile(file), pair);
      assert.deepEqual(loadOrCreateKeyFile(file), pair);
      assert.throws(
        () => generateKeyFile(file),
        (e) => isEzipcError(e, "EZIPC_AUTH"),
      );
      chmodSync(file, 0o644);
      assert.throws(
        () => readKeyFile(file),
        (e) => isEzipcError(e, "EZIPC_AUTH") && /chmod 600/.test(e.message),
      );
      const other = path.join(tmp.dir, "other.key");
      writeFileSync(
        other,
        JSON.stringify({
          publicKey: dh25519.generateKeyPair().publicKey.toString("base64"),
          privateKey: pair.privateKey.toString("base64"),
        }),
        { mode: 0o600 },
      );
      assert.throws(
        () => readKeyFile(other),
        (e) => isEzipcError(e, "EZIPC_AUTH") && /does not belong/.test(e.message),
      );
    } finally {
      tmp.cleanup();
    }
  });

  it("admits listed keys and tokens, refuses others; pinned keys and known hosts check the hub", async () => {
    const tmp = tempDir();
    const hubKey = dh25519.generateKeyPair();
    const alice = dh25519.generateKeyPair();
    const hub = await Hub.listen({
      urls: ["tcp://127.0.0.1:0"],
      security: {
        staticKey: hubKey,
        clients: [
          { name: "alice", publicKey: alice.publicKey.toString("base64") },
          { name: "svc", token: "s3cret" },
        ],
      },
    });
    const url = hub.urls[0]!;
    const pinned = hubKey.publicKey.toString("base64");
    try {
      const a = await connect(url, { name: "alice", secure: { hubKey: pinned, staticKey: alice } });
      const svc = await connect(url, { name: "svc", secure: { hubKey: pinned, token: "s3cret" } });
      await svc.serve("secure.echo", (req) => `echo ${req.text()} from ${req.caller}`);
      // The hub names a client by what the handshake proved, next to the name it gave.
      assert.match((await a.request("secure.echo", "hi")).text(), /^echo hi from alice@alice#/);
      assert.match(a.label, /^alice@alice#/);
      const ptr = await a.allocate("secure.v", 8, "poll");
      await ptr.write(Buffer.from("abcdefgh"));
      const seen = await svc.watch("secure.v", "request");
      assert.equal(Buffer.from((await seen!.read()) as Uint8Array).toString(), "abcdefgh");

      await assert.rejects(
        connect(url, { reconnect: false, secure: { hubKey: pinned, token: "wrong" } }),
        (e) => isEzipcError(e, "EZIPC_AUTH"),
      );
      await assert.rejects(
        connect(url, {
          reconnect: false,
          secure: { hubKey: dh25519.generateKeyPair().publicKey, token: "s3cret" },
        }),
        (e) => isEzipcError(e),
      );
      await assert.rejects(connect(url, { reconnect: false }), (e) => isEzipcError(e)); // plain client

      // Known hosts: refused when unknown, learnt on first use, then checked.
      const hosts = path.join(tmp.dir, "known_hosts");
      await assert.rejects(
        connect(url, { reconnect: false, secure: { knownHosts: hosts, token: "s3cret" } }),
        (e) => isEzipcError(e, "EZIPC_AUTH") && /not in/.test(e.message),
      );
      const tofu = await connect(url, {
        secure: { knownHosts: hosts, trustOnFirstUse: true, token: "s3cret" },
      });
      await tofu.close();
      assert.equal(readFileSync(hosts, "utf8"), `${url} ${pinned}\n`);
      const again = await connect(url, { secure: { knownHosts: hosts, token: "s3cret" } });
      await again.close();
      writeFileSync(hosts, `${url} ${dh25519.generateKeyPair().publicKey.toString("base64")}\n`);
      await assert.rejects(
        connect(url, { reconnect: false, secure: { knownHosts: hosts, token: "s3cret" } }),
        (e) => isEzipcError(e, "EZIPC_AUTH") && /a different hub, or an attack/.test(e.message),
      );
      // A damaged known hosts file: the line that names the hub, and a file that cannot be read, are named.
      writeFileSync(hosts, `other-hub ${pinned}\n${url} not-a-key\n`);
      await assert.rejects(
        connect(url, { reconnect: false, secure: { knownHosts: hosts, token: "s3cret" } }),
        (e) => isEzipcError(e, "EZIPC_AUTH") && e.message.includes(`${hosts}, line 2: not a base64`),
      );
      await assert.rejects(
        connect(url, { reconnect: false, secure: { knownHosts: tmp.dir, token: "s3cret" } }),
        (e) =>
          isEzipcError(e, "EZIPC_AUTH") && e.message.includes(`cannot read the known hosts file ${tmp.dir}`),
      );
      await Promise.all([a.close(), svc.close()]);
    } finally {
      await hub.close();
      tmp.cleanup();
    }
  });

  it("without an allow-list every client with a key gets in, named by its key's first 8 characters", async () => {
    const hubKey = dh25519.generateKeyPair();
    const me = dh25519.generateKeyPair();
    const hub = await Hub.listen({ urls: ["tcp://127.0.0.1:0"], security: { staticKey: hubKey } });
    try {
      const c = await connect(hub.urls[0]!, {
        name: "anon",
        secure: { hubKey: hubKey.publicKey, staticKey: me },
      });
      assert.equal(c.label.split("#")[0], `anon@${me.publicKey.toString("base64").slice(0, 8)}`);
      await c.close();
    } finally {
      await hub.close();
    }
  });

  it("a resume token takes over a client only for the key that client proved: another key gets a new identity", async () => {
    const hubKey = dh25519.generateKeyPair();
    const alice = dh25519.generateKeyPair();
    const mallory = dh25519.generateKeyPair();
    const hub = await Hub.listen({ urls: ["tcp://127.0.0.1:0"], security: { staticKey: hubKey } });
    const a = await connect(hub.urls[0]!, {
      name: "a",
      secure: { hubKey: hubKey.publicKey, staticKey: alice },
    });
    const m = await connect(hub.urls[0]!, {
      name: "m",
      secure: { hubKey: hubKey.publicKey, staticKey: mallory },
      reconnect: { initialDelayMs: 10, maxDelayMs: 50 },
    });
    type Internals = { clientId: string; conn: { destroy(): void } };
    try {
      const held = await a.allocate("alice.secret", 4, "poll");
      const aliceId = (a as unknown as Internals).clientId;
      // Mallory comes back with Alice's token (learnt from a log, say).
      (m as unknown as Internals).clientId = aliceId;
      const back = new Promise<boolean>((resolve) =>
        m.on("status", (s, info) => {
          if (s === "connected") resolve(info.resumed);
        }),
      );
      (m as unknown as Internals).conn.destroy();
      assert.equal(await within(back, 5_000, "mallory back"), false, "not resumed as Alice");
      assert.notEqual((m as unknown as Internals).clientId, aliceId);
      // Alice was not cut off and holds her pointer.
      assert.equal(a.status, "connected");
      assert.equal(held.status, "live");
      assert.equal(hub.peek("alice.secret")!.refcount, 1);
      assert.equal(await held.write(Buffer.from("mine")), 2);
    } finally {
      await a.close();
      await m.close();
      await hub.close();
    }
  });

  it("permissions: a denied operation fails with EZIPC_PERMISSION_DENIED and the connection carries on", async () => {
    const hubKey = dh25519.generateKeyPair();
    const alice = dh25519.generateKeyPair();
    const hub = await Hub.listen({
      urls: ["tcp://127.0.0.1:0"],
      security: {
        staticKey: hubKey,
        clients: [
          {
            name: "alice",
            publicKey: alice.publicKey.toString("base64"),
            allow: {
              allocate: ["alice.>"],
              watch: [">"],
              write: ["alice.>"],
              publish: ["news.alice"],
              subscribe: ["news.>"],
              request: ["svc.*"],
            },
          },
          { name: "svc", token: "s3cret" },
        ],
      },
    });
    const url = hub.urls[0]!;
    const pinned = hubKey.publicKey.toString("base64");
    const a = await connect(url, { name: "alice", secure: { hubKey: pinned, staticKey: alice } });
    const svc = await connect(url, { name: "svc", secure: { hubKey: pinned, token: "s3cret" } });
    const denied = (e: unknown) => isEzipcError(e, "EZIPC_PERMISSION_DENIED");
    try {
      await svc.serve("svc.echo", (req) => req.text());
      await svc.serve("other.echo", (req) => req.text());
      const bobs = await svc.allocate("bob.v", 4, "poll");
      await (await a.allocate("alice.v", 4, "poll")).write(Buffer.from("mine"));
      await assert.rejects(a.allocate("bob.w", 4, "poll"), denied);
      const seen = await a.watch("bob.v", "poll");
      assert.ok(seen);
      await assert.rejects(seen.write(Buffer.from("evil")), denied);
      await bobs.write(Buffer.from("bobs"));
      await a.publish("news.alice", "ok");
      await assert.rejects(a.publish("news.bob", "no"), denied);
      const rejected = hub.stats().rejected;
      a.publishAndForget("news.bob", "dropped");
      const sub = await a.subscribe("news.>", { init: "oldest" });
      assert.equal((await within(sub[Symbol.asyncIterator]().next(), 5_000, "news")).value!.text(), "ok");
      assert.equal(hub.stats().rejected, rejected + 1, "the fire-and-forget publish was dropped and counted");
      await assert.rejects(a.subscribe(">"), denied);
      assert.equal((await a.request("svc.echo", "hi")).text(), "hi");
      await assert.rejects(a.request("other.echo", "hi"), denied);
      await assert.rejects(
        a.serve("alice.svc", () => "x"),
        denied,
      );
      // svc has no list of permissions: it may do everything.
      assert.equal((await svc.publish("news.bob", "fine")).seq, 1n);
      assert.equal(a.status, "connected");
    } finally {
      await Promise.all([a.close(), svc.close()]);
      await hub.close();
    }
  });

  it("the CLI: keygen, serve --key --clients, and clients configured from the environment", async () => {
    const tmp = tempDir();
    const hubKeyFile = path.join(tmp.dir, "hub.key");
    const clientKeyFile = path.join(tmp.dir, "me.key");
    const { stdout: mine } = await run(process.execPath, [cli, "keygen", clientKeyFile]);
    writeFileSync(
      path.join(tmp.dir, "clients.json"),
      JSON.stringify([{ name: "me", publicKey: mine.trim() }]),
    );
    const sock = path.join(tmp.dir, "hub.sock");
    const child = spawn(
      process.execPath,
      [
        cli,
        "serve",
        `unix://${sock}`,
        "--no-ws",
        "--key",
        hubKeyFile,
        "--clients",
        path.join(tmp.dir, "clients.json"),
      ],
      { stdio: ["ignore", "pipe", "inherit"] },
    );
    try {
      const lines = createInterface({ input: child.stdout! });
      const hubKey = await within(
        new Promise<string>((resolve) => {
          lines.on("line", (l) => {
            const m = /^secure: hub key (\S+)/.exec(l);
            if (m) resolve(m[1]!);
          });
        }),
        10_000,
        "the hub to start",
      );
      assert.equal(hubKey, readKeyFile(hubKeyFile).publicKey.toString("base64"));
      const env = { ...process.env, EZIPC_HUB_KEY: hubKey, EZIPC_KEY_FILE: clientKeyFile };
      await run(process.execPath, [cli, "set", "-u", `unix://${sock}`, "cli.v", "hello"], { env });
      const { stdout } = await run(process.execPath, [cli, "get", "-u", `unix://${sock}`, "cli.v"], { env });
      assert.match(stdout, /hello/);
      await assert.rejects(
        run(process.execPath, [cli, "get", "-u", `unix://${sock}`, "cli.v"], {
          env: { ...process.env, EZIPC_HUB_KEY: hubKey },
        }),
        /EZIPC_AUTH/,
      );
    } finally {
      child.kill("SIGINT");
      await new Promise((r) => child.once("exit", r));
      tmp.cleanup();
    }
  });
});
