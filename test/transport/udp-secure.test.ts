/**
 * Encrypted udp:// (src/security/datagrams.ts): the sealed session as a pure state machine — round trip,
 * replay, tamper of every byte, too old, reordering inside the window — then real loopback sockets: the
 * handshake and both directions, wrong key, refused token, plain peers on either side, and a proxy that
 * drops handshake datagrams, replays, tampers, holds back and forges an unsealed CLOSE.
 */
import assert from "node:assert/strict";
import dgram from "node:dgram";
import { describe, it } from "node:test";
import { isEzipcError } from "../../src/errors.js";
import { SealedSession, secureDatagramDial, secureDatagramListen } from "../../src/security/datagrams.js";
import { CipherState, HandshakeState } from "../../src/security/noise.js";
import { aesGcm, dh25519 } from "../../src/security/suite.js";
import {
  KIND_CLOSE,
  KIND_HANDSHAKE,
  KIND_HANDSHAKE_REPLY,
  SEQUENCE_WINDOW,
} from "../../src/transport/datagram.js";
import { dial, listen } from "../../src/transport/registry.js";
import type { Connection } from "../../src/transport/types.js";
import type { UdpListener } from "../../src/transport/udp.js";
import type { UdpConnection } from "../../src/transport/udp-connection.js";
import { nextEvent, seededRandom, until, within } from "../helpers.js";

function pair(): [SealedSession, SealedSession] {
  const k1 = Buffer.alloc(32, 7);
  const k2 = Buffer.alloc(32, 9);
  const cs = (k: Buffer) => {
    const c = new CipherState(aesGcm);
    c.initializeKey(k);
    return c;
  };
  const peer = { name: "p" };
  return [new SealedSession(peer, cs(k1), cs(k2)), new SealedSession(peer, cs(k2), cs(k1))];
}

describe("sealed datagrams (pure)", () => {
  it("open what the other side sealed, once; a replay, a tampered byte, a too old nonce are dropped by name", () => {
    const [a, b] = pair();
    const d0 = a.seal(Buffer.from("zero"));
    assert.equal(d0.length, 4 + a.overheadBytes);
    assert.equal((b.open(d0) as Buffer).toString(), "zero");
    assert.equal(b.open(d0), "replayed");
    // Every byte flipped in turn is a forgery — and a forgery does not use up its nonce.
    const d1 = a.seal(Buffer.from("one"));
    for (let i = 0; i < d1.length; i++) {
      const t = Buffer.from(d1);
      t[i] = t[i]! ^ 0x01;
      const r = b.open(t);
      assert.ok(r === "forged" || r === "replayed" || r === "tooOld", `byte ${i}: ${String(r)}`);
    }
    assert.equal((b.open(d1) as Buffer).toString(), "one");
    assert.equal(b.open(d1.subarray(0, 20)), "forged");
    // The other direction has its own key: a datagram reflected back is a forgery.
    assert.equal(a.open(d1), "forged");
    // Reordered inside the window: each delivered once. Behind the window: too old.
    const later = Array.from({ length: SEQUENCE_WINDOW + 10 }, (_, i) => a.seal(Buffer.from(`m${i}`)));
    assert.equal((b.open(later[5]!) as Buffer).toString(), "m5");
    assert.equal((b.open(later[3]!) as Buffer).toString(), "m3");
    assert.equal(b.open(later[3]!), "replayed");
    assert.equal((b.open(later.at(-1)!) as Buffer).toString(), `m${SEQUENCE_WINDOW + 9}`);
    assert.equal(b.open(later[4]!), "tooOld");
    // A nonce beyond 2^53 is never sent: forged, without decrypting.
    const huge = Buffer.from(later[6]!);
    huge.writeUInt32BE(0x00200000, 1);
    assert.equal(b.open(huge), "forged");
  });

  it("random loss, duplication and reordering: every datagram delivered at most once, nothing forged accepted", () => {
    const random = seededRandom(21);
    const [a, b] = pair();
    const sent = Array.from({ length: 3_000 }, (_, i) => a.seal(Buffer.from(String(i))));
    const wire: Buffer[] = [];
    for (const d of sent) {
      if (random() < 0.1) continue;
      wire.push(d);
      if (random() < 0.2) wire.push(d);
    }
    for (let i = 0; i < wire.length - 3; i++)
      if (random() < 0.1) [wire[i], wire[i + 3]] = [wire[i + 3]!, wire[i]!];
    const got = new Set<string>();
    let replayed = 0;
    for (const d of wire) {
      const r = b.open(d);
      if (r === "replayed") replayed++;
      else {
        assert.ok(Buffer.isBuffer(r), String(r));
        assert.ok(!got.has(r.toString()), "once");
        got.add(r.toString());
      }
    }
    assert.ok(replayed > 400, `duplicates dropped: ${replayed}`);
    assert.ok(got.size > 2_500, `delivered ${got.size}`);
  });
});

/** A proxy on loopback between a dialler and a listener; `onward` decides what each datagram becomes. */
async function proxyTo(
  listenerUrl: string,
  onward: (d: Buffer, toListener: boolean) => Buffer[],
): Promise<{ url: string; close(): void; inject(d: Buffer, toListener: boolean): void }> {
  const bind = async () => {
    const s = dgram.createSocket("udp4");
    await new Promise<void>((r) => s.bind(0, "127.0.0.1", () => r()));
    return s;
  };
  const front = await bind();
  const back = await bind();
  const port = Number(new URL(listenerUrl).port);
  let client: dgram.RemoteInfo | null = null;
  const toListener = (d: Buffer) => back.send(d, port, "127.0.0.1");
  const toClient = (d: Buffer) => client && front.send(d, client.port, client.address);
  front.on("message", (d, r) => {
    client = r;
    for (const x of onward(d, true)) toListener(x);
  });
  back.on("message", (d) => {
    for (const x of onward(d, false)) toClient(x);
  });
  return {
    url: `udp://127.0.0.1:${front.address().port}`,
    close() {
      front.close();
      back.close();
    },
    inject: (d, up) => (up ? toListener(d) : toClient(d)),
  };
}

async function secureListener(
  options: Parameters<typeof secureDatagramListen>[0] extends infer O ? Partial<O> : never = {},
) {
  const key = dh25519.generateKeyPair();
  const security = secureDatagramListen({ staticKey: key, ...options });
  const l = (await listen("udp://127.0.0.1:0", { udp: { secure: security } })) as UdpListener;
  const renters: UdpConnection[] = [];
  l.on("connection", (c) => {
    renters.push(c as UdpConnection);
    c.on("message", (m) => c.send(Buffer.concat([Buffer.from("echo "), m])));
  });
  return { l, key, security, renters };
}

async function roundTrip(c: Connection, text: string): Promise<string> {
  const got = nextEvent<[Buffer]>(c, "message");
  c.send(Buffer.from(text));
  return (await within(got, 5_000, `echo of ${text}`))[0].toString();
}

describe("udp:// encrypted", () => {
  it("handshakes in one round trip, carries frames both ways sealed, and names each side's peer", async () => {
    const { l, key, renters, security } = await secureListener();
    const clientKey = dh25519.generateKeyPair();
    for (const cipher of ["AESGCM", "ChaChaPoly"] as const) {
      const c = (await dial(l.url, {
        udp: { secure: secureDatagramDial({ hubKey: key.publicKey, staticKey: clientKey, cipher }) },
      })) as UdpConnection;
      try {
        assert.equal(await roundTrip(c, `hello ${cipher}`), `echo hello ${cipher}`);
        assert.equal(c.peer?.publicKey, key.publicKey.toString("base64"));
        assert.equal(renters.at(-1)!.peer?.publicKey, clientKey.publicKey.toString("base64"));
        // The largest frame that fits a sealed datagram crosses; one byte more fails at send.
        assert.equal(c.maxPayloadBytes, 1472 - 1 - 25);
        const big = Buffer.alloc(c.maxPayloadBytes, 1);
        const echoed = nextEvent<[Buffer]>(c, "message");
        c.send(big.subarray(0, c.maxPayloadBytes - 5)); // the echo adds 5 bytes
        assert.equal((await within(echoed, 5_000, "big echo"))[0].length, c.maxPayloadBytes);
        assert.throws(
          () => c.send(Buffer.alloc(c.maxPayloadBytes + 1)),
          (e) => isEzipcError(e, "EZIPC_MESSAGE_TOO_LARGE"),
        );
      } finally {
        await c.close();
      }
    }
    assert.equal(security.counters.admitted, 2);
    await l.close();
  });

  it("a wrong pinned key fails with EZIPC_AUTH at the timeout; a refused token at once, with the reason", async () => {
    const { l, key, security } = await secureListener({
      authorize: ({ publicKey, token }) =>
        token === "sesame"
          ? { ok: true, identity: { name: "ok", publicKey: publicKey.toString("base64") } }
          : { ok: false, reason: "bad token" },
    });
    try {
      const other = dh25519.generateKeyPair();
      await assert.rejects(
        dial(l.url, {
          udp: {
            secure: secureDatagramDial({ hubKey: other.publicKey, token: "sesame", handshakeTimeoutMs: 500 }),
          },
        }),
        (e) => isEzipcError(e, "EZIPC_AUTH") && /key is not the one this peer pinned/.test(String(e)),
      );
      const t0 = Date.now();
      await assert.rejects(
        dial(l.url, {
          udp: {
            secure: secureDatagramDial({
              hubKey: key.publicKey,
              token: "wrong",
              handshakeTimeoutMs: 5_000,
            }),
          },
        }),
        (e) => isEzipcError(e, "EZIPC_AUTH") && /bad token/.test(String(e)),
      );
      assert.ok(Date.now() - t0 < 4_000, "the verdict ends the handshake, not the timeout");
      assert.equal(l.connections.size, 0);
      assert.ok(security.counters.refused >= 2);
    } finally {
      await l.close();
    }
  });

  it("a plain peer gets nothing from an encrypted listener, and an encrypted dial nothing from a plain one", async () => {
    const { l, key } = await secureListener();
    const plain = await dial(l.url);
    try {
      plain.send(Buffer.from("hi"));
      await until(() => l.counters.strays >= 2, "the PING and the data counted as strays", 5_000);
      assert.equal(l.connections.size, 0);
    } finally {
      await plain.close();
      await l.close();
    }
    const p = (await listen("udp://127.0.0.1:0")) as UdpListener;
    try {
      await assert.rejects(
        dial(p.url, {
          udp: { secure: secureDatagramDial({ hubKey: key.publicKey, handshakeTimeoutMs: 400 }) },
        }),
        (e) => isEzipcError(e, "EZIPC_HANDSHAKE"),
      );
      assert.equal(p.connections.size, 0);
      assert.ok(p.counters.strays >= 1);
    } finally {
      await p.close();
    }
    // Nothing listening: the ICMP refusal is what the timeout reports.
    await assert.rejects(
      dial("udp://127.0.0.1:9", {
        udp: { secure: secureDatagramDial({ hubKey: key.publicKey, handshakeTimeoutMs: 400 }) },
      }),
      (e) => isEzipcError(e, "EZIPC_CONNECTION_REFUSED") || isEzipcError(e, "EZIPC_HANDSHAKE"),
    );
  });

  it("lost hellos and a lost answer are made up by resending; the listener answers a repeated hello alike", async () => {
    const { l, key, renters, security } = await secureListener();
    let hellos = 0;
    let answers = 0;
    const proxy = await proxyTo(l.url, (d, up) => {
      if (up && d[0] === KIND_HANDSHAKE && ++hellos <= 2) return [];
      if (!up && d[0] === KIND_HANDSHAKE_REPLY && ++answers <= 1) return [];
      return [d];
    });
    try {
      const c = await dial(proxy.url, {
        udp: {
          secure: secureDatagramDial({ hubKey: key.publicKey, retransmitMs: 50, handshakeTimeoutMs: 5_000 }),
        },
      });
      assert.equal(await roundTrip(c, "through"), "echo through");
      assert.ok(hellos >= 4, `hellos sent: ${hellos}`);
      assert.equal(answers, 2, "the repeated hello got the same answer");
      assert.equal(renters.length, 1, "one renter");
      assert.equal(security.counters.admitted, 1, "one handshake computed");
      await c.close();
    } finally {
      proxy.close();
      await l.close();
    }
  });

  it("replayed, tampered, held-back and unsealed datagrams are dropped and counted; the session carries on", async () => {
    const { l, key, renters } = await secureListener();
    const seen: string[] = [];
    l.on("connection", (c) => c.on("message", (m) => seen.push(m.toString())));
    const random = seededRandom(3);
    let held: Buffer | null = null;
    let holding = false;
    const proxy = await proxyTo(l.url, (d, up) => {
      if (!up || d[0] !== 7) return [d];
      if (holding && !held) {
        held = d;
        return [];
      }
      const out = [d, Buffer.from(d)]; // every sealed datagram twice: a replay
      const t = Buffer.from(d);
      const i = Math.floor(random() * t.length);
      t[i] = t[i]! ^ (1 + Math.floor(random() * 255));
      out.push(t); // and a tampered copy
      return out;
    });
    const c = (await dial(proxy.url, {
      udp: { secure: secureDatagramDial({ hubKey: key.publicKey }) },
    })) as UdpConnection;
    try {
      const n = 200;
      for (let i = 0; i < n; i++) {
        // One at a time, so that the kernel's buffers lose nothing: the drops are the proxy's doing.
        c.send(Buffer.from(`m${i}`));
        await until(() => seen.length > i, `frame ${i} through`, 5_000);
      }
      const r = renters[0]!;
      assert.deepEqual(
        seen,
        Array.from({ length: n }, (_, i) => `m${i}`),
      );
      assert.ok(r.drops.replayed >= n, `replays dropped: ${r.drops.replayed}`);
      assert.ok(
        r.drops.forged + r.drops.replayed + r.drops.tooOld + r.drops.unsealed >= 2 * n,
        JSON.stringify(r.drops),
      );
      // A datagram held back past the window arrives too old.
      holding = true;
      c.send(Buffer.from("held"));
      await until(() => held !== null, "one held back", 5_000);
      holding = false;
      for (let i = 0; i < SEQUENCE_WINDOW + 5; i++) {
        c.send(Buffer.from("x"));
        await until(() => seen.length > n + i, `x ${i} through`, 5_000);
      }
      proxy.inject(held!, true);
      await until(() => r.drops.tooOld >= 1, "the held datagram dropped as too old", 5_000);
      assert.ok(!seen.includes("held"));
      // A plain CLOSE (anyone on the path can send one) is dropped, in both directions; the session lives.
      proxy.inject(Buffer.from([KIND_CLOSE, ...Buffer.from("forged")]), true);
      proxy.inject(Buffer.from([KIND_CLOSE, ...Buffer.from("forged")]), false);
      await until(() => r.drops.unsealed >= 1 && c.drops.unsealed >= 1, "unsealed CLOSEs dropped", 5_000);
      assert.equal(r.state, "open");
      assert.equal(c.state, "open");
      const echoes: string[] = [];
      c.on("message", (m) => echoes.push(m.toString()));
      c.send(Buffer.from("still"));
      await until(() => echoes.includes("echo still"), "an echo after the forged CLOSEs", 5_000);
      // A sealed CLOSE is the peer's: the renter closes with the reason.
      const closed = within(r.closed, 5_000, "the renter closes");
      await c.close("bye");
      assert.equal((await closed).reason, "bye");
    } finally {
      proxy.close();
      await c.close();
      await l.close();
    }
  });

  it("hellos beyond maxHandshakesPerSecond are ignored and counted", async () => {
    const { l, key, security } = await secureListener({ maxHandshakesPerSecond: 3 });
    try {
      const dials = Array.from({ length: 8 }, () =>
        dial(l.url, {
          udp: {
            secure: secureDatagramDial({
              hubKey: key.publicKey,
              retransmitMs: 5_000,
              handshakeTimeoutMs: 300,
            }),
          },
        }).then(
          (c) => c,
          (e: unknown) => e,
        ),
      );
      const results = await Promise.all(dials);
      const ok = results.filter((r) => !(r instanceof Error)) as Connection[];
      assert.ok(ok.length <= 6, `admitted ${ok.length}`);
      assert.ok(security.counters.limited >= 2, JSON.stringify(security.counters));
      for (const c of ok) await c.close();
    } finally {
      await l.close();
    }
  });

  it("a peer written from docs/security.md alone (a raw socket and the Noise state machine) talks to a listener", async () => {
    const { l, key } = await secureListener();
    const sock = dgram.createSocket("udp4");
    await new Promise<void>((r) => sock.bind(0, "127.0.0.1", () => r()));
    const next = () => new Promise<Buffer>((r) => sock.once("message", (m) => r(m)));
    try {
      const byte = 0x12; // IK, AESGCM
      const hs = new HandshakeState({
        protocolName: "Noise_IK_25519_AESGCM_SHA256",
        initiator: true,
        prologue: Buffer.concat([
          Buffer.from("ezipc-noise/1", "ascii"),
          Buffer.from([byte]),
          Buffer.from("/udp"),
        ]),
        s: dh25519.generateKeyPair(),
        rs: key.publicKey,
      });
      const answer = next();
      sock.send(
        Buffer.concat([Buffer.from([4, byte]), hs.writeMessage(Buffer.from("{}"))]),
        Number(new URL(l.url).port),
        "127.0.0.1",
      );
      const m2 = await within(answer, 5_000, "the answer");
      assert.equal(m2[0], 5);
      assert.deepEqual(JSON.parse(hs.readMessage(m2.subarray(1)).toString()), { ok: true });
      const { send, receive } = hs.ciphers;
      const sealed = (n: number, inner: Buffer) => {
        const head = Buffer.alloc(9);
        head[0] = 7;
        head.writeBigUInt64BE(BigInt(n), 1);
        return Buffer.concat([head, send.encryptAt(n, head, inner)]);
      };
      const echo = next();
      sock.send(sealed(0, Buffer.from([0, ...Buffer.from("hi")])), Number(new URL(l.url).port), "127.0.0.1");
      const back = await within(echo, 5_000, "the sealed echo");
      assert.equal(back[0], 7);
      const inner = receive.decryptAt(Number(back.readBigUInt64BE(1)), back.subarray(0, 9), back.subarray(9));
      assert.ok(inner, "the echo opens with the second key of Split()");
      assert.deepEqual([inner[0], inner.subarray(1).toString()], [0, "echo hi"]);
    } finally {
      sock.close();
      await l.close();
    }
  });

  it("checks its options: the side of udp.secure, a hub key of 32 bytes", async () => {
    const key = dh25519.generateKeyPair();
    await assert.rejects(
      listen("udp://127.0.0.1:0", { udp: { secure: secureDatagramDial({ hubKey: key.publicKey }) } }),
      TypeError,
    );
    await assert.rejects(
      dial("udp://127.0.0.1:9", { udp: { secure: secureDatagramListen({ staticKey: key }) } }),
      TypeError,
    );
    assert.throws(() => secureDatagramDial({ hubKey: Buffer.alloc(31) }), TypeError);
  });
});
