import assert from "node:assert/strict";
import net from "node:net";
import { describe, it } from "node:test";
import fc from "fast-check";
import { type Connection, dial, isEzipcError, type Listener, listen } from "../../src/index.js";
import { fastestCipher, SECURE_CIPHERS, secureDial, secureListen } from "../../src/security/channel.js";
import { HandshakeState } from "../../src/security/noise.js";
import { dh25519 } from "../../src/security/suite.js";
import { nextEvent, within } from "../helpers.js";

const hubKey = dh25519.generateKeyPair();
const clientKey = dh25519.generateKeyPair();

async function secureHub(
  options: Partial<Parameters<typeof secureListen>[0]> = {},
  scheme: "tcp" | "ws" = "tcp",
): Promise<Listener> {
  const l = await listen(`${scheme}://127.0.0.1:0`, {
    upgrade: secureListen({ staticKey: hubKey, ...options }),
  });
  l.on("connection", (c) => c.on("message", (m) => c.send(m)));
  return l;
}

async function echo(conn: Connection, frames: Buffer[]): Promise<Buffer[]> {
  const got: Buffer[] = [];
  const done = new Promise<void>((resolve) => {
    conn.on("message", (m) => {
      got.push(Buffer.from(m));
      if (got.length === frames.length) resolve();
    });
  });
  for (const f of frames) conn.send(f);
  await within(done, 10_000, "echoes");
  return got;
}

/** A TCP proxy between a client and `target` that lets a test rewrite the client's records. */
async function proxy(
  target: string,
  rewrite: (records: Buffer[]) => Buffer[],
): Promise<{ url: string; close: () => void }> {
  const { port } = new URL(target);
  const server = net.createServer((client) => {
    const upstream = net.connect(Number(port), "127.0.0.1");
    upstream.on("data", (d) => client.write(d));
    upstream.on("error", () => client.destroy());
    upstream.on("close", () => client.destroy());
    client.on("error", () => upstream.destroy());
    client.on("close", () => upstream.destroy());
    // Client → hub: collect u16-framed messages; the first is the IK handshake, the rest records.
    let buf = Buffer.alloc(0);
    const messages: Buffer[] = [];
    client.on("data", (d) => {
      buf = Buffer.concat([buf, d]);
      while (buf.length >= 2 && buf.length >= 2 + buf.readUInt16BE(0)) {
        const len = buf.readUInt16BE(0);
        messages.push(buf.subarray(0, 2 + len));
        buf = buf.subarray(2 + len);
      }
      if (messages.length === 1) upstream.write(messages.shift()!); // the handshake goes as it is
      if (messages.length >= 3) {
        for (const m of rewrite(messages.splice(0))) upstream.write(m);
      }
    });
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  const addr = server.address() as net.AddressInfo;
  return { url: `tcp://127.0.0.1:${addr.port}`, close: () => server.close() };
}

describe("secure channel: Noise XX / IK under the frames", () => {
  it("XX with a known-hosts check and IK with a pinned key carry frames of every size; the hub knows the client's key", async () => {
    const l = await secureHub();
    const peers: (string | undefined)[] = [];
    l.on("connection", (c) => peers.push(c.peer?.publicKey));
    try {
      const seen: Buffer[] = [];
      const xx = await dial(l.url, {
        upgrade: secureDial({
          staticKey: clientKey,
          verifyHubKey: (k) => {
            seen.push(k);
            return k.equals(hubKey.publicKey) ? true : "unknown host key";
          },
        }),
      });
      const ik = await dial(l.url, {
        upgrade: secureDial({ hubKey: hubKey.publicKey, staticKey: clientKey }),
      });
      const frames = [0, 1, 100, 65_519, 65_520, 200_000].map((n, i) => Buffer.alloc(n, i + 1));
      for (const conn of [xx, ik]) assert.deepEqual(await echo(conn, frames), frames);
      assert.deepEqual(seen, [hubKey.publicKey]);
      assert.deepEqual(peers, [
        clientKey.publicKey.toString("base64"),
        clientKey.publicKey.toString("base64"),
      ]);
      await xx.close();
      await ik.close();
    } finally {
      await l.close();
    }
  });

  // Over ws:// too: the hub's refusal and its reason were lost there (held back behind the first message
  // and dropped with the WebSocket), leaving a bare "closed during the handshake".
  for (const scheme of ["tcp", "ws"] as const)
    it(`${scheme}://: a wrong pinned key, a refused host key or refused credentials fail the dial with the hub's reason; the hub carries on`, async () => {
      const l = await secureHub(
        {
          authorize: (c) =>
            c.token === "let-me-in"
              ? { ok: true, identity: { name: "tokened" } }
              : { ok: false, reason: "unknown client" },
        },
        scheme,
      );
      try {
        const wrong = dh25519.generateKeyPair().publicKey;
        // The hub says why: the client pinned another key (not a bare "closed during the handshake").
        await assert.rejects(
          dial(l.url, { upgrade: secureDial({ hubKey: wrong, token: "let-me-in" }) }),
          (e) => isEzipcError(e, "EZIPC_AUTH") && /not the one this client pinned/.test(e.message),
        );
        await assert.rejects(
          dial(l.url, {
            upgrade: secureDial({ verifyHubKey: () => "not in known hosts", token: "let-me-in" }),
          }),
          (e) => isEzipcError(e, "EZIPC_AUTH") && /not in known hosts/.test(e.message),
        );
        await assert.rejects(
          dial(l.url, { upgrade: secureDial({ hubKey: hubKey.publicKey, token: "guess" }) }),
          (e) => isEzipcError(e, "EZIPC_AUTH") && /unknown client/.test(e.message),
        );
        const ok = await dial(l.url, {
          upgrade: secureDial({ hubKey: hubKey.publicKey, token: "let-me-in" }),
        });
        assert.deepEqual(await echo(ok, [Buffer.from("hi")]), [Buffer.from("hi")]);
        await ok.close();
      } finally {
        await l.close();
      }
    });

  it("the client picks ChaChaPoly or AESGCM (by default the faster here); a hub refuses a cipher it does not accept", async () => {
    const both = await secureHub();
    const aesOnly = await secureHub({ ciphers: ["AESGCM"] });
    try {
      assert.ok(SECURE_CIPHERS.includes(fastestCipher()));
      for (const cipher of [...SECURE_CIPHERS, undefined]) {
        for (const up of [
          secureDial({ hubKey: hubKey.publicKey, cipher }),
          secureDial({ verifyHubKey: () => true, cipher }),
        ]) {
          const c = await dial(both.url, { upgrade: up });
          const frames = [Buffer.alloc(1, 1), Buffer.alloc(70_000, 2)];
          assert.deepEqual(await echo(c, frames), frames, `cipher ${cipher ?? "default"}`);
          await c.close();
        }
      }
      await assert.rejects(
        dial(aesOnly.url, { upgrade: secureDial({ hubKey: hubKey.publicKey, cipher: "ChaChaPoly" }) }),
        (e) => isEzipcError(e, "EZIPC_AUTH") && /cipher ChaChaPoly is not accepted/.test(e.message),
      );
      const c = await dial(aesOnly.url, {
        upgrade: secureDial({ hubKey: hubKey.publicKey, cipher: "AESGCM" }),
      });
      await c.close();
    } finally {
      await both.close();
      await aesOnly.close();
    }
  });

  it("a cipher changed on the way (a downgrade) fails the handshake, with either pattern", async () => {
    const l = await secureHub();
    // Flips the cipher nibble of the client's first handshake message (after its u16 length).
    const server = net.createServer((client) => {
      const upstream = net.connect(Number(new URL(l.url).port), "127.0.0.1");
      let first = true;
      client.on("data", (d) => {
        if (first && d.length >= 3) {
          first = false;
          d = Buffer.from(d);
          d[2] = d[2]! ^ 0x10;
        }
        upstream.write(d);
      });
      upstream.on("data", (d) => client.write(d));
      for (const s of [client, upstream]) s.on("error", () => {});
      upstream.on("close", () => client.destroy());
      client.on("close", () => upstream.destroy());
    });
    await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
    const url = `tcp://127.0.0.1:${(server.address() as net.AddressInfo).port}`;
    try {
      for (const cipher of SECURE_CIPHERS) {
        for (const up of [
          secureDial({ hubKey: hubKey.publicKey, cipher, handshakeTimeoutMs: 2_000 }),
          secureDial({ verifyHubKey: () => true, cipher, handshakeTimeoutMs: 2_000 }),
        ]) {
          await assert.rejects(dial(url, { upgrade: up }), (e) => isEzipcError(e), `${cipher} downgraded`);
        }
      }
    } finally {
      server.close();
      await l.close();
    }
  });

  it("plain data before the handshake closes that connection only", async () => {
    const l = await secureHub();
    try {
      const plain = await dial(l.url); // speaks ezipc frames without the handshake
      const closed = plain.closed;
      plain.send(Buffer.from("hello"));
      await within(closed, 5_000, "the plain connection to be closed");
      const good = await dial(l.url, { upgrade: secureDial({ hubKey: hubKey.publicKey }) });
      assert.deepEqual(await echo(good, [Buffer.from("ok")]), [Buffer.from("ok")]);
      await good.close();
    } finally {
      await l.close();
    }
  });

  for (const [name, rewrite] of [
    [
      "a flipped bit",
      (r: Buffer[]) => {
        const m = Buffer.from(r[1]!);
        m[m.length - 5]! ^= 0x01;
        return [r[0]!, m, ...r.slice(2)];
      },
    ],
    ["a replayed record", (r: Buffer[]) => [r[0]!, r[0]!, ...r.slice(1)]],
    ["reordered records", (r: Buffer[]) => [r[1]!, r[0]!, ...r.slice(2)]],
    [
      "a truncated record",
      (r: Buffer[]) => {
        const m = Buffer.from(r[1]!.subarray(0, r[1]!.length - 3));
        m.writeUInt16BE(m.length - 2, 0);
        return [r[0]!, m, ...r.slice(2)];
      },
    ],
  ] as const) {
    it(`${name} is rejected: the hub closes the connection with EZIPC_DECRYPT`, async () => {
      const l = await secureHub();
      const p = await proxy(l.url, rewrite);
      try {
        const serverSide = nextEvent<[Connection]>(l, "connection");
        const c = await dial(p.url, { upgrade: secureDial({ hubKey: hubKey.publicKey }) });
        const [conn] = await within(serverSide, 5_000, "the hub's side");
        const got: Buffer[] = [];
        conn.on("message", (m) => got.push(Buffer.from(m)));
        // Three frames in three ticks: three records.
        for (let i = 0; i < 3; i++) {
          c.send(Buffer.from(`frame ${i}`));
          await new Promise((r) => setImmediate(r));
        }
        const info = await within(conn.closed, 5_000, "the hub to close the tampered connection");
        assert.equal(info.error?.code, "EZIPC_DECRYPT");
        assert.ok(got.length <= 1, `at most the record before the tampered one arrived (${got.length})`);
        c.destroy();
      } finally {
        p.close();
        await l.close();
      }
    });
  }

  it("both ends rekey every rekeyInterval records; ends that disagree on it fail", async () => {
    const l = await secureHub({ rekeyInterval: 3 });
    try {
      const c = await dial(l.url, { upgrade: secureDial({ hubKey: hubKey.publicKey, rekeyInterval: 3 }) });
      const frames: Buffer[] = [];
      for (let i = 0; i < 20; i++) frames.push(Buffer.alloc(10 + i, i));
      const got: Buffer[] = [];
      const done = new Promise<void>((resolve) => {
        c.on("message", (m) => {
          got.push(Buffer.from(m));
          if (got.length === frames.length) resolve();
        });
      });
      for (const f of frames) {
        c.send(f); // one record per tick: 20 records, 6 rekeys each way
        await new Promise((r) => setImmediate(r));
      }
      await within(done, 5_000, "20 echoes across rekeys");
      assert.deepEqual(got, frames);
      await c.close();
      const odd = await dial(l.url, { upgrade: secureDial({ hubKey: hubKey.publicKey, rekeyInterval: 4 }) });
      const closed = odd.closed;
      for (let i = 0; i < 5; i++) {
        if (odd.state !== "open") break;
        odd.send(Buffer.from([i]));
        await new Promise((r) => setImmediate(r));
      }
      assert.ok((await within(closed, 5_000, "the mismatched connection to fail")).reason);
    } finally {
      await l.close();
    }
  });

  it("1,000 half-open handshakes do not lock a real client out; a stalled handshake is dropped after its timeout", async () => {
    const l = await secureHub({ handshakeTimeoutMs: 300, maxPendingPerAddress: 32 });
    const { port } = new URL(l.url);
    try {
      let dropped = 0;
      let allDropped: () => void = () => {};
      const everyOneDropped = new Promise<void>((r) => {
        allDropped = r;
      });
      const sockets: net.Socket[] = [];
      for (let i = 0; i < 1_000; i++) {
        const s = net.connect(Number(port), "127.0.0.1");
        s.on("error", () => {});
        s.on("close", () => {
          if (++dropped === 1_000) allDropped();
        });
        s.write(Buffer.from([0, 40, 1])); // a first message that never completes
        sockets.push(s);
        if (i % 100 === 99) await new Promise((r) => setImmediate(r));
      }
      const t0 = Date.now();
      const real = await dial(l.url, { upgrade: secureDial({ hubKey: hubKey.publicKey }) });
      assert.ok(Date.now() - t0 < 2_000, "the real client got in at once");
      assert.deepEqual(await echo(real, [Buffer.from("served")]), [Buffer.from("served")]);
      await within(everyOneDropped, 10_000, "every half-open handshake to be dropped");
      await real.close();
      for (const s of sockets) s.destroy();
    } finally {
      await l.close();
    }
  });
});

describe("half-open handshakes from one address (every local client shares it)", () => {
  it("idle connections give way before a client that has started its handshake; evictions are counted", async () => {
    const failures: string[] = [];
    const l = await secureHub({
      handshakeTimeoutMs: 5_000,
      maxPendingPerAddress: 2,
      onFailure: (reason) => failures.push(reason),
    });
    const { port } = new URL(l.url);
    const open = (bytes?: Buffer) => {
      const s = net.connect(Number(port), "127.0.0.1");
      s.on("error", () => {});
      if (bytes) s.write(bytes);
      return s;
    };
    const closed = (s: net.Socket) =>
      within(
        new Promise((r) => (s.destroyed ? r(null) : s.once("close", r))),
        5_000,
        "an idle connection to be evicted",
      );
    try {
      // A client that sent a complete XX first message (pattern byte + its ephemeral key), then waits.
      const msg1 = Buffer.concat([Buffer.from([0, 33, 1]), dh25519.generateKeyPair().publicKey]);
      const started = open(msg1);
      await within(new Promise((r) => started.once("data", r)), 5_000, "the hub's second handshake message");
      // Five idle connections from the same address: each new one pushes out an idle one, never `started`.
      const idle: net.Socket[] = [];
      for (let i = 0; i < 5; i++) {
        idle.push(open());
        await new Promise((r) => setImmediate(r));
      }
      await Promise.all(idle.slice(0, 4).map(closed));
      assert.equal(started.destroyed, false, "the started handshake is still pending");
      assert.ok(failures.filter((f) => f === "evicted").length >= 4, failures.join(","));
      started.destroy();
      for (const s of idle) s.destroy();
    } finally {
      await l.close();
    }
  });

  it("a real local client gets in while an idle flood from its own address keeps coming", async () => {
    const l = await secureHub({ handshakeTimeoutMs: 5_000, maxPendingPerAddress: 8 });
    const { port } = new URL(l.url);
    const idle: net.Socket[] = [];
    const flood = setInterval(() => {
      const s = net.connect(Number(port), "127.0.0.1");
      s.on("error", () => {});
      idle.push(s);
    }, 1);
    try {
      for (let i = 0; i < 5; i++) {
        const real = await dial(l.url, { upgrade: secureDial({ hubKey: hubKey.publicKey }) });
        assert.deepEqual(await echo(real, [Buffer.from("in")]), [Buffer.from("in")]);
        await real.close();
      }
    } finally {
      clearInterval(flood);
      for (const s of idle) s.destroy();
      await l.close();
    }
  });
});

describe("Noise handshake fuzzing (seeded)", () => {
  it("a different prologue (another version, or a tampered pattern byte) fails the handshake", () => {
    const b = dh25519.generateKeyPair();
    for (const [pi, pr] of [
      ["ezipc-noise/1\x02", "ezipc-noise/2\x02"],
      ["ezipc-noise/1\x02", "ezipc-noise/1\x01"],
    ] as const) {
      const init = new HandshakeState({
        protocolName: "Noise_IK_25519_ChaChaPoly_SHA256",
        initiator: true,
        prologue: Buffer.from(pi),
        rs: b.publicKey,
        s: dh25519.generateKeyPair(),
      });
      const resp = new HandshakeState({
        protocolName: "Noise_IK_25519_ChaChaPoly_SHA256",
        initiator: false,
        prologue: Buffer.from(pr),
        s: b,
      });
      assert.throws(
        () => resp.readMessage(init.writeMessage(Buffer.from("{}"))),
        (e) => isEzipcError(e, "EZIPC_HANDSHAKE"),
      );
    }
  });

  it("random first messages on the wire close only their connections; a real client still gets in", async () => {
    const l = await secureHub();
    const { port } = new URL(l.url);
    try {
      let state = 7;
      const rnd = () => {
        state = (state * 1103515245 + 12345) >>> 0;
        return state / 2 ** 32;
      };
      const closed: Promise<unknown>[] = [];
      for (let i = 0; i < 200; i++) {
        const s = net.connect(Number(port), "127.0.0.1");
        s.on("error", () => {});
        s.resume(); // read whatever the hub answers, so that its close is seen
        const len = Math.floor(rnd() * 120);
        const body = Buffer.from(Array.from({ length: len }, () => Math.floor(rnd() * 256)));
        const head = Buffer.alloc(2);
        head.writeUInt16BE(i % 2 === 0 ? len : Math.floor(rnd() * 65_536), 0);
        body[0] = i % 3 === 0 ? 1 : (body[0] ?? 0); // every third claims to be XX
        s.write(Buffer.concat([head, body]));
        if (i % 2 === 0) closed.push(new Promise((r) => s.once("close", r)));
        else s.destroy();
      }
      await within(Promise.all(closed), 10_000, "every well-framed garbage handshake to be refused");
      const good = await dial(l.url, { upgrade: secureDial({ hubKey: hubKey.publicKey }) });
      assert.deepEqual(await echo(good, [Buffer.from("still here")]), [Buffer.from("still here")]);
      await good.close();
    } finally {
      await l.close();
    }
  });

  it("every mutated handshake message fails with EZIPC_HANDSHAKE or later, never a crash", () => {
    const name = { XX: "Noise_XX_25519_ChaChaPoly_SHA256", IK: "Noise_IK_25519_ChaChaPoly_SHA256" };
    const a = dh25519.generateKeyPair();
    const b = dh25519.generateKeyPair();
    fc.assert(
      fc.property(
        fc.constantFrom("XX", "IK" as const),
        fc.nat(),
        fc.array(fc.record({ at: fc.nat(), xor: fc.integer({ min: 1, max: 255 }) }), {
          minLength: 1,
          maxLength: 4,
        }),
        fc.option(fc.nat(), { nil: undefined }),
        (pattern, which, flips, cut) => {
          const init = new HandshakeState({
            protocolName: name[pattern as "XX" | "IK"],
            initiator: true,
            s: a,
            rs: pattern === "IK" ? b.publicKey : undefined,
          });
          const resp = new HandshakeState({
            protocolName: name[pattern as "XX" | "IK"],
            initiator: false,
            s: b,
          });
          const count = pattern === "XX" ? 3 : 2;
          const target = which % count;
          try {
            for (let i = 0; i < count; i++) {
              const [w, r] = i % 2 === 0 ? [init, resp] : [resp, init];
              let m = w.writeMessage(Buffer.from("payload"));
              if (i === target) {
                m = Buffer.from(m);
                for (const f of flips) m[f.at % m.length]! ^= f.xor;
                if (cut !== undefined) m = m.subarray(0, cut % (m.length + 1));
              }
              r.readMessage(m);
            }
            // A mutation the handshake did not catch (an unencrypted ephemeral key) splits into keys
            // that disagree: the first transport message then fails to decrypt.
            const ct = init.ciphers.send.encrypt(new Uint8Array(0), Buffer.from("x"));
            assert.equal(resp.ciphers.receive.decrypt(new Uint8Array(0), ct), null);
          } catch (err) {
            assert.ok(isEzipcError(err, "EZIPC_HANDSHAKE"), `unexpected ${String(err)}`);
          }
        },
      ),
      { numRuns: 400, seed: 61 },
    );
  });
});
