/**
 * udp://: the datagram format and the sequence window as pure state machines, then the transport on real
 * loopback sockets — a renter per remote address, the lessor's close closing its renters, a dialled
 * connection deaf to other senders, heartbeats, the renter limit under a flood of source ports, oversize
 * frames, loss / duplication / reordering injected by a proxy, malformed datagrams, close reasons.
 */
import assert from "node:assert/strict";
import dgram from "node:dgram";
import { describe, it } from "node:test";
import { isEzipcError } from "../../src/errors.js";
import {
  KIND_CLOSE,
  KIND_DATA,
  KIND_PING,
  parseDatagram,
  SEQUENCE_WINDOW,
  SequenceWindow,
  writeDatagramHeader,
} from "../../src/transport/datagram.js";
import { dial, listen } from "../../src/transport/registry.js";
import type { Connection, Listener } from "../../src/transport/types.js";
import type { UdpListener } from "../../src/transport/udp.js";
import type { UdpConnection } from "../../src/transport/udp-connection.js";
import { nextEvent, seededRandom, until, within } from "../helpers.js";

function datagram(kind: number, seq: number, body: Buffer): Buffer {
  const d = Buffer.alloc(9 + body.length);
  const n = writeDatagramHeader(d, kind, seq);
  body.copy(d, n);
  return d.subarray(0, n + body.length);
}

describe("udp:// datagram format", () => {
  it("round-trips every kind with and without a sequence number", () => {
    for (const kind of [KIND_DATA, KIND_PING, KIND_CLOSE])
      for (const seq of [0, 1, 255, 2 ** 32 + 7, 2 ** 53 - 1]) {
        const p = parseDatagram(datagram(kind, seq, Buffer.from("body")))!;
        assert.deepEqual([p.kind, p.seq, p.body.toString()], [kind, seq, "body"]);
      }
  });

  it("refuses reserved bits, unknown kinds, a cut sequence number, seq 0 and seqs beyond 2^53", () => {
    assert.equal(parseDatagram(Buffer.alloc(0)), null);
    assert.equal(parseDatagram(Buffer.from([0x10])), null);
    assert.equal(parseDatagram(Buffer.from([0x04])), null);
    assert.equal(parseDatagram(Buffer.from([0x80, 0, 0, 0])), null);
    assert.equal(parseDatagram(Buffer.from([0x80, 0, 0, 0, 0, 0, 0, 0, 0])), null);
    assert.equal(parseDatagram(Buffer.from([0x80, 0, 0x20, 0, 0, 0, 0, 0, 1])), null);
  });
});

describe("udp:// sequence window", () => {
  it("accepts each number once, in increasing order; tells duplicates from late ones", () => {
    const w = new SequenceWindow();
    assert.equal(w.accept(1), "new");
    assert.equal(w.accept(3), "new");
    assert.equal(w.accept(3), "duplicate");
    assert.equal(w.accept(2), "stale"); // late (reordered): dropped, delivery stays in order
    assert.equal(w.accept(2), "duplicate");
    assert.equal(w.accept(1), "duplicate");
    assert.equal(w.accept(3 + SEQUENCE_WINDOW + 5), "new");
    assert.equal(w.accept(3), "stale"); // beyond the window: remembered as too old
    assert.equal(w.accept(3 + SEQUENCE_WINDOW + 4), "stale");
    assert.equal(w.accept(3 + SEQUENCE_WINDOW + 4), "duplicate");
  });

  it("random duplication and reordering: delivered strictly increasing, each at most once (10k streams)", () => {
    const random = seededRandom(5);
    for (let run = 0; run < 200; run++) {
      const w = new SequenceWindow();
      const stream: number[] = [];
      for (let s = 1; s <= 300; s++) {
        stream.push(s);
        if (random() < 0.2) stream.push(s); // duplicate
      }
      for (let i = 0; i < stream.length - 1; i++) {
        if (random() < 0.1) [stream[i], stream[i + 1]] = [stream[i + 1]!, stream[i]!];
      }
      let last = 0;
      const seen = new Set<number>();
      for (const s of stream) {
        const v = w.accept(s);
        if (v === "new") {
          assert.ok(s > last, "in order");
          last = s;
          assert.ok(!seen.has(s), "once");
        } else if (v === "duplicate") assert.ok(seen.has(s), `${s} was seen before`);
        seen.add(s);
      }
    }
  });
});

/** A raw UDP socket on loopback. */
async function rawSocket(): Promise<dgram.Socket> {
  const s = dgram.createSocket("udp4");
  await new Promise<void>((r) => s.bind(0, "127.0.0.1", () => r()));
  return s;
}
const portOf = (url: string) => Number(new URL(url).port);

/** Collects the connections a listener gets, and each one's frames. */
function collect(l: Listener): { conns: Connection[]; frames: Map<Connection, string[]> } {
  const conns: Connection[] = [];
  const frames = new Map<Connection, string[]>();
  l.on("connection", (c) => {
    conns.push(c);
    frames.set(c, []);
    c.on("message", (m) => frames.get(c)!.push(m.toString()));
  });
  return { conns, frames };
}

describe("udp:// transport", () => {
  it("a renter per remote address; each gets its own frames and replies reach the right peer", async () => {
    const l = await listen("udp://127.0.0.1:0");
    const { conns, frames } = collect(l);
    l.on("connection", (c) => c.on("message", (m) => c.send(Buffer.from(`echo ${m.toString()}`))));
    const a = await dial(l.url);
    const b = await dial(l.url);
    try {
      const aGot = nextEvent<[Buffer]>(a, "message");
      const bGot = nextEvent<[Buffer]>(b, "message");
      a.send(Buffer.from("from a"));
      b.send(Buffer.from("from b"));
      assert.equal((await within(aGot, 5_000, "a's echo"))[0].toString(), "echo from a");
      assert.equal((await within(bGot, 5_000, "b's echo"))[0].toString(), "echo from b");
      assert.equal(conns.length, 2);
      assert.deepEqual(
        conns.map((c) => frames.get(c)),
        [["from a"], ["from b"]],
      );
      assert.deepEqual(
        conns.map((c) => portOf(c.remoteUrl)).sort(),
        [portOf(a.localUrl), portOf(b.localUrl)].sort(),
      );
      // The close reason crosses; the renter goes, and the address gets a new renter if it speaks again.
      const renterClosed = within(conns[0]!.closed, 5_000, "the renter closes");
      await a.close("bye");
      const info = await renterClosed;
      assert.deepEqual([info.initiator, info.reason], ["remote", "bye"]);
      assert.equal(l.connections.size, 1);
    } finally {
      await b.close();
      await l.close();
    }
  });

  it("a dial announces itself (a PING: the renter exists before any data, the PONG comes back); an aborted dial rejects", async () => {
    const l = await listen("udp://127.0.0.1:0");
    const renter = nextEvent<[Connection]>(l, "connection");
    const c = await dial(l.url);
    const [r] = await within(renter, 5_000, "a renter from the PING alone");
    await until(() => c.stats.pongsIn === 1, "the PONG");
    assert.equal(r.stats.framesIn, 0);
    const ac = new AbortController();
    ac.abort();
    await assert.rejects(dial(l.url, { signal: ac.signal }), (e) => isEzipcError(e, "EZIPC_CONNECT_ABORTED"));
    await assert.rejects(dial("udp://127.0.0.1"), (e) => isEzipcError(e, "EZIPC_INVALID_URL"));
    await assert.rejects(dial("udp://127.0.0.1:1/path"), (e) => isEzipcError(e, "EZIPC_INVALID_URL"));
    await c.close();
    await l.close();
  });

  it("iterates: renters from the lessor, frames from a connection, each ending when it closes", async () => {
    const l = await listen("udp://127.0.0.1:0");
    const renters = l[Symbol.asyncIterator]();
    const c = await dial(l.url);
    const r = (await within(renters.next(), 5_000, "a renter")).value as Connection;
    const frames = r[Symbol.asyncIterator]();
    c.send(Buffer.from("one"));
    c.send(Buffer.from("two"));
    assert.equal((await within(frames.next(), 5_000, "frame one")).value!.toString(), "one");
    assert.equal((await within(frames.next(), 5_000, "frame two")).value!.toString(), "two");
    await c.close("done");
    assert.equal((await within(frames.next(), 5_000, "the end of the frames")).done, true);
    await l.close();
    assert.equal((await within(renters.next(), 5_000, "the end of the renters")).done, true);
  });

  it("closing the lessor closes its renters and tells their peers", async () => {
    const l = await listen("udp://127.0.0.1:0");
    const { conns } = collect(l);
    const peers = [await dial(l.url), await dial(l.url), await dial(l.url)];
    for (const p of peers) p.send(Buffer.from("hi"));
    await until(() => conns.length === 3, "three renters");
    const closes = peers.map((p) => within(p.closed, 5_000, "peer told"));
    await l.close();
    for (const c of conns) assert.equal(c.state, "closed");
    for (const info of await Promise.all(closes)) {
      assert.deepEqual([info.initiator, info.reason], ["remote", "listener closed"]);
    }
  });

  it("a dialled connection hears its peer only", async () => {
    const l = await listen("udp://127.0.0.1:0");
    l.on("connection", (c) => c.on("message", (m) => c.send(m)));
    const c = await dial(l.url);
    const stranger = await rawSocket();
    try {
      const got: string[] = [];
      c.on("message", (m) => got.push(m.toString()));
      for (let i = 0; i < 20; i++) {
        stranger.send(datagram(KIND_DATA, 0, Buffer.from("intruder")), portOf(c.localUrl), "127.0.0.1");
      }
      const echoed = nextEvent(c, "message");
      c.send(Buffer.from("mine"));
      await within(echoed, 5_000, "the peer's echo");
      assert.deepEqual(got, ["mine"]);
      // A frame in parts (sendParts with further parts): one datagram, the parts in order.
      const parts = nextEvent(c, "message");
      c.sendParts(Buffer.from("a"), Buffer.from("bc"), [Buffer.from("d"), Buffer.from("ef")]);
      await within(parts, 5_000, "the parts' echo");
      assert.deepEqual(got, ["mine", "abcdef"]);
    } finally {
      stranger.close();
      await c.close();
      await l.close();
    }
  });

  it("answers pings while both live; a silent peer is closed with EZIPC_HEARTBEAT_TIMEOUT", async () => {
    const l = await listen("udp://127.0.0.1:0", { heartbeatIntervalMs: 50, heartbeatTimeoutMs: 400 });
    const renter = nextEvent<[Connection]>(l, "connection");
    const c = await dial(l.url, { heartbeatIntervalMs: 50, heartbeatTimeoutMs: 400 });
    c.send(Buffer.from("hello"));
    const [r] = await within(renter, 5_000, "the renter");
    // One side pings, the other answers (an answer is traffic too): both stay open well past the timeout.
    await until(
      () => r.stats.pingsOut + c.stats.pingsOut >= 12 && r.stats.pongsIn + c.stats.pongsIn >= 12,
      "pings answered",
      5_000,
    );
    assert.deepEqual([c.state, r.state], ["open", "open"]);
    await c.close();
    await l.close();

    const mute = await rawSocket(); // takes datagrams, never answers
    const d = await dial(`udp://127.0.0.1:${mute.address().port}`, {
      heartbeatIntervalMs: 50,
      heartbeatTimeoutMs: 250,
    });
    const info = await within(d.closed, 5_000, "the heartbeat timeout");
    assert.ok(isEzipcError(info.error, "EZIPC_HEARTBEAT_TIMEOUT"), info.reason);
    mute.close();
  });

  it("at most maxRenters renters: a flood of source ports is ignored and counted", async () => {
    const l = (await listen("udp://127.0.0.1:0", { udp: { maxRenters: 20 } })) as UdpListener;
    const { conns } = collect(l);
    const sockets = await Promise.all(Array.from({ length: 60 }, () => rawSocket()));
    try {
      for (const s of sockets) s.send(datagram(KIND_DATA, 0, Buffer.from("x")), portOf(l.url), "127.0.0.1");
      await until(() => conns.length + l.counters.rentersRefused === 60, "every datagram handled");
      assert.equal(conns.length, 20);
      assert.equal(l.counters.rentersRefused, 40);
      // Strays (malformed, or a CLOSE) from new addresses make no renter.
      const stranger = await rawSocket();
      stranger.send(Buffer.from([0x7f]), portOf(l.url), "127.0.0.1");
      stranger.send(datagram(KIND_CLOSE, 0, Buffer.from("bye")), portOf(l.url), "127.0.0.1");
      await until(() => l.counters.strays === 2, "strays counted");
      stranger.close();
      assert.equal(conns.length, 20);
    } finally {
      for (const s of sockets) s.close();
      await l.close();
    }
  });

  it("a frame over one datagram fails at send with EZIPC_MESSAGE_TOO_LARGE; the largest that fits crosses", async () => {
    const l = await listen("udp://127.0.0.1:0", { udp: { maxDatagramBytes: 65_507 } });
    const got: number[] = [];
    l.on("connection", (c) => c.on("message", (m) => got.push(m.length)));
    const c = (await dial(l.url, { udp: { maxDatagramBytes: 65_507, sequence: true } })) as UdpConnection;
    try {
      assert.equal(c.maxPayloadBytes, 65_507 - 9);
      assert.throws(
        () => c.send(Buffer.alloc(65_507 - 8)),
        (e) => isEzipcError(e, "EZIPC_MESSAGE_TOO_LARGE"),
      );
      c.send(Buffer.alloc(65_507 - 9));
      await until(() => got.length === 1, "the largest frame");
      assert.deepEqual(got, [65_507 - 9]);
      const small = (await dial(l.url)) as UdpConnection;
      assert.equal(small.maxPayloadBytes, 1_472 - 1);
      assert.throws(
        () => small.send(Buffer.alloc(1_472)),
        (e) => isEzipcError(e, "EZIPC_MESSAGE_TOO_LARGE"),
      );
      await small.close();
    } finally {
      await c.close();
      await l.close();
    }
  });

  it("malformed datagrams to a renter are dropped and counted; the connection carries on", async () => {
    const l = await listen("udp://127.0.0.1:0");
    const { conns, frames } = collect(l);
    const raw = await rawSocket();
    try {
      raw.send(datagram(KIND_DATA, 0, Buffer.from("first")), portOf(l.url), "127.0.0.1");
      await until(() => conns.length === 1, "a renter");
      for (const bad of [Buffer.from([0x30]), Buffer.from([0x80, 1]), Buffer.alloc(0)]) {
        raw.send(bad, portOf(l.url), "127.0.0.1");
      }
      raw.send(datagram(KIND_DATA, 0, Buffer.from("second")), portOf(l.url), "127.0.0.1");
      await until(() => frames.get(conns[0]!)!.length === 2, "the next frame");
      const renter = conns[0] as UdpConnection;
      assert.equal(renter.drops.malformed, 3);
      assert.equal(renter.state, "open");
      assert.deepEqual(frames.get(renter), ["first", "second"]);
    } finally {
      raw.close();
      await l.close();
    }
  });

  it("loss, duplication and reordering through a proxy: with sequence numbers, each frame at most once and in order", async () => {
    const l = await listen("udp://127.0.0.1:0");
    const { conns } = collect(l);
    const received: number[] = [];
    l.on("connection", (c) => c.on("message", (m) => received.push(m.readUInt32BE(0))));
    // The proxy: what the client sends goes to the listener — dropped (10%), doubled (30%) or held back and
    // sent after the next one (10%).
    const random = seededRandom(9);
    const proxy = await rawSocket();
    const upstream = await rawSocket();
    let client: dgram.RemoteInfo | null = null;
    let held: Buffer | null = null;
    proxy.on("message", (msg, rinfo) => {
      client = rinfo;
      const out = (d: Buffer) => upstream.send(d, portOf(l.url), "127.0.0.1");
      const r = random();
      if (r < 0.1) return;
      if (r < 0.2 && !held) {
        held = msg;
        return;
      }
      out(msg);
      if (r > 0.7) out(msg);
      if (held) {
        out(held);
        held = null;
      }
    });
    upstream.on("message", (msg) => {
      if (client) proxy.send(msg, client.port, client.address);
    });
    const c = await dial(`udp://127.0.0.1:${proxy.address().port}`, { udp: { sequence: true } });
    try {
      const n = 2_000;
      for (let i = 1; i <= n; i++) {
        const b = Buffer.alloc(8);
        b.writeUInt32BE(i);
        if (!c.send(b)) await c.drain();
        // Paced, so that the kernel's socket buffers do not overflow: the losses are the proxy's.
        if (i % 10 === 0) await new Promise((r) => setImmediate(r));
      }
      // Markers (0) until one is through: everything sent before it has passed the proxy by then.
      await until(
        () => {
          if (!received.includes(0)) c.send(Buffer.from([0, 0, 0, 0]));
          return received.includes(0);
        },
        "a marker through the proxy",
        10_000,
      );
      const renter = () => conns[0] as UdpConnection;
      const delivered = received.filter((x) => x !== 0);
      for (let i = 1; i < delivered.length; i++)
        assert.ok(delivered[i]! > delivered[i - 1]!, "in order, once");
      const d = renter().drops;
      assert.ok(d.duplicate > 100, `duplicates dropped: ${d.duplicate}`);
      assert.ok(d.stale > 10, `late ones dropped: ${d.stale}`);
      assert.ok(delivered.length > n * 0.7 && delivered.length < n, `delivered ${delivered.length} of ${n}`);
    } finally {
      proxy.close();
      upstream.close();
      await c.close();
      await l.close();
    }
  });
});
