/**
 * One conformance suite, run against every transport (tcp over IPv4 and IPv6, unix, memory, tls).
 */
import assert from "node:assert/strict";
import net from "node:net";
import path from "node:path";
import type { Duplex } from "node:stream";
import { after, before, describe, it } from "node:test";
import tls from "node:tls";
import WebSocket, { createWebSocketStream } from "ws";
import { isEzipcError } from "../../src/errors.js";
import { transportCounters } from "../../src/transport/counters.js";
import { Dialer, type DialerStatus } from "../../src/transport/dialer.js";
import { dialMemoryRaw } from "../../src/transport/memory.js";
import { dial as dialAny, listen as listenAny } from "../../src/transport/registry.js";
import type { CloseInfo, Connection, DialOptions, ListenOptions } from "../../src/transport/types.js";
import {
  nextEvent,
  seededRandom,
  spawnFixture,
  tempDir,
  testCertificates,
  wireFrames,
  within,
} from "../helpers.js";

interface Kind {
  name: string;
  /** A fresh address to listen on. */
  address(): string;
  /** An address nothing listens on. */
  deadAddress(): Promise<string>;
  /** A raw byte stream to a listener's bound URL. */
  rawDial(url: string): Promise<Duplex>;
  /** Whether a peer can be a separate process. */
  crossProcess: boolean;
  /** Options every listen / dial of this kind needs (certificates). */
  listenOptions?: ListenOptions;
  dialOptions?: DialOptions;
  /** The URL a child process dials (with what it needs in the query). */
  clientUrl?(url: string): string;
  /**
   * Datagrams (udp://): only the cases that hold without a byte stream run here — no ordering or delivery
   * guarantee, no refusal by an absent peer, frames bounded by a datagram; test/transport/udp.test.ts has
   * the datagram cases.
   */
  datagram?: boolean;
}

const tmp = tempDir();
const certs = testCertificates(tmp.dir);
let listen = listenAny;
let dial = dialAny;
let n = 0;

function netRaw(opts: net.NetConnectOpts): Promise<Duplex> {
  return new Promise((resolve, reject) => {
    const s = net.connect(opts, () => resolve(s));
    s.once("error", reject);
  });
}

function tcpKind(name: string, host: string): Kind {
  return {
    name,
    crossProcess: true,
    address: () => `tcp://${host}:0`,
    deadAddress: async () => {
      const l = await listen(`tcp://${host}:0`);
      const url = l.url;
      await l.close();
      return url;
    },
    rawDial: (url) => {
      const u = new URL(url);
      return netRaw({ host: u.hostname.replace(/^\[|\]$/g, ""), port: Number(u.port) });
    },
  };
}

/** ws:// and wss://: a raw byte stream is a WebSocket whose writes are binary messages. */
function wsKind(scheme: "ws" | "wss", clientTls: { ca?: Buffer }): Kind {
  return {
    name: scheme,
    crossProcess: true,
    address: () => `${scheme}://127.0.0.1:0`,
    deadAddress: async () => {
      const l = await listenAny("tcp://127.0.0.1:0");
      const url = l.url.replace(/^tcp:/, `${scheme}:`);
      await l.close();
      return url;
    },
    rawDial: (url) =>
      new Promise((resolve, reject) => {
        const ws = new WebSocket(url, clientTls);
        ws.once("open", () => resolve(createWebSocketStream(ws)));
        ws.once("error", reject);
      }),
    ...(scheme === "wss"
      ? {
          listenOptions: { tls: { cert: certs.cert, key: certs.key } },
          dialOptions: { tls: { ca: certs.ca } },
          clientUrl: (url: string) => `${url}?ca=${encodeURIComponent(certs.caFile)}`,
        }
      : {}),
  };
}

const kinds: Kind[] = [
  tcpKind("tcp (IPv4)", "127.0.0.1"),
  tcpKind("tcp (IPv6)", "[::1]"),
  {
    name: "unix",
    crossProcess: true,
    address: () => `unix://${path.join(tmp.dir, `s${++n}.sock`)}`,
    deadAddress: async () => `unix://${path.join(tmp.dir, `dead${++n}.sock`)}`,
    rawDial: (url) => netRaw({ path: new URL(url).pathname }),
  },
  {
    name: "tls",
    crossProcess: true,
    address: () => "tls://127.0.0.1:0",
    deadAddress: async () => {
      const l = await listenAny("tcp://127.0.0.1:0");
      const url = l.url.replace(/^tcp:/, "tls:");
      await l.close();
      return url;
    },
    rawDial: (url) => {
      const u = new URL(url);
      return new Promise((resolve, reject) => {
        const s = tls.connect({ host: u.hostname, port: Number(u.port), ca: certs.ca }, () => resolve(s));
        s.once("error", reject);
      });
    },
    listenOptions: { tls: { cert: certs.cert, key: certs.key } },
    dialOptions: { tls: { ca: certs.ca } },
    clientUrl: (url) => `${url}?ca=${encodeURIComponent(certs.caFile)}`,
  },
  wsKind("ws", {}),
  wsKind("wss", { ca: certs.ca }),
  {
    name: "udp",
    datagram: true,
    crossProcess: true,
    address: () => "udp://127.0.0.1:0",
    deadAddress: async () => "udp://127.0.0.1:9",
    rawDial: () => Promise.reject(new Error("udp:// has no byte stream")),
  },
  {
    name: "memory",
    crossProcess: false,
    address: () => `memory://conformance-${++n}`,
    deadAddress: async () => `memory://nobody-${++n}`,
    rawDial: async (url) => dialMemoryRaw(new URL(url).host),
  },
];

after(() => tmp.cleanup());

/** Listens, and resolves the first accepted connection along with a dialled one. */
async function pair(
  kind: Kind,
  options: ListenOptions = {},
  dialOptions: DialOptions = options as DialOptions,
) {
  const listener = await listen(kind.address(), options);
  const accepted = nextEvent<[Connection]>(listener, "connection");
  const client = await dial(listener.url, dialOptions);
  const [server] = await accepted;
  return { listener, client, server };
}

function closeInfo(conn: Connection, ms = 5_000): Promise<CloseInfo> {
  return within(conn.closed, ms, `connection ${conn.id} to close`);
}

for (const kind of kinds) {
  describe(`transport conformance: ${kind.name}`, () => {
    /** A case of a byte-stream transport: not registered for datagrams (see Kind.datagram). */
    const streamOnly = (name: string, fn: () => Promise<void>) => {
      if (!kind.datagram) it(name, fn);
    };
    // Every listen and dial of this kind gets the options it needs (certificates for tls).
    before(() => {
      listen = (url, o = {}) => listenAny(url, { ...kind.listenOptions, ...o });
      dial = (url, o = {}) => dialAny(url, { ...kind.dialOptions, ...o });
    });
    after(() => {
      listen = listenAny;
      dial = dialAny;
    });
    it("binds and reports the bound address (port 0 → a real port)", async () => {
      const l = await listen(kind.address());
      if (kind.name.startsWith("tcp")) {
        assert.match(l.url, /:\d+$/);
        assert.doesNotMatch(l.url, /:0$/);
      }
      const c = await dial(l.url);
      assert.ok(c.id > 0);
      assert.equal(c.state, "open");
      await c.close();
      await l.close();
    });

    streamOnly("refuses a connect to an address nobody listens on", async () => {
      const url = await kind.deadAddress();
      await assert.rejects(dial(url), (e) => isEzipcError(e, "EZIPC_CONNECTION_REFUSED"));
    });

    streamOnly("aborts a dial in progress (AbortSignal) and a dialer closed while dialling", async () => {
      const l = await listen(kind.address());
      const ac = new AbortController();
      const p = dial(l.url, { signal: ac.signal });
      ac.abort();
      await assert.rejects(p, (e) => isEzipcError(e, "EZIPC_CONNECT_ABORTED"));
      const dialer = new Dialer(await kind.deadAddress(), {
        ...kind.dialOptions,
        reconnect: { initialDelayMs: 5 },
      });
      const statuses: DialerStatus["type"][] = [];
      dialer.on("status", (s) => statuses.push(s.type));
      const connected = dialer.connected();
      await nextEvent(dialer, "status");
      await dialer.close();
      await assert.rejects(connected, (e) => isEzipcError(e, "EZIPC_CONNECT_ABORTED"));
      assert.equal(statuses.at(-1), "closed");
      assert.equal(l.connections.size, 0, "no connection left behind");
      await l.close();
    });

    streamOnly("exchanges 100k frames of random sizes in order, echoed back intact", async () => {
      const { listener, client, server } = await pair(kind);
      server.on("message", (m) => {
        if (!server.send(m)) {
          server.pause();
          void server.drain().then(() => server.resume());
        }
      });
      const rnd = seededRandom(7);
      const total = 100_000;
      const sizes = Array.from({ length: total }, () =>
        rnd() < 0.01 ? 4 + Math.floor(rnd() * 64 * 1024) : 4 + Math.floor(rnd() * 256),
      );
      const frameFor = (i: number) => {
        const b = Buffer.alloc(sizes[i]!, i & 0xff);
        b.writeUInt32BE(i, 0);
        return b;
      };
      let received = 0;
      const done = new Promise<void>((resolve, reject) => {
        client.on("message", (m) => {
          const i = m.readUInt32BE(0);
          if (i !== received || m.length !== sizes[i] || m[m.length - 1] !== (i & 0xff)) {
            reject(new Error(`frame ${received}: got seq ${i}, ${m.length} bytes`));
          }
          if (++received === total) resolve();
        });
      });
      for (let i = 0; i < total; i++) {
        if (!client.send(frameFor(i))) await client.drain();
      }
      await within(done, 60_000, "100k echoed frames");
      assert.equal(client.stats.framesIn, total);
      assert.equal(server.stats.framesIn, total);
      await client.close();
      await listener.close();
    });

    streamOnly(
      "sendParts sends head + body as one frame, in order with send(); the head is copied at once",
      async () => {
        const { listener, client, server } = await pair(kind, { maxFrameBytes: 1_000_000 });
        const got: Buffer[] = [];
        const sizes = [0, 1, 100, 16 * 1024 - 1, 16 * 1024, 200_000];
        const done = new Promise<void>((resolve) => {
          server.on("message", (m) => {
            got.push(Buffer.from(m));
            if (got.length === sizes.length * 2) resolve();
          });
        });
        const head = Buffer.alloc(7);
        for (const [i, size] of sizes.entries()) {
          head.fill(i);
          client.sendParts(head, Buffer.alloc(size, 0x80 + i));
          head.fill(0xff); // reused at once: the frame must carry the bytes as they were
          client.send(Buffer.from([i]));
        }
        await within(done, 10_000, "sendParts frames");
        for (const [i, size] of sizes.entries()) {
          assert.deepEqual(got[2 * i], Buffer.concat([Buffer.alloc(7, i), Buffer.alloc(size, 0x80 + i)]));
          assert.deepEqual(got[2 * i + 1], Buffer.from([i]));
        }
        assert.throws(
          () => client.sendParts(head, Buffer.alloc(1_000_000 - 6)),
          (e) => isEzipcError(e, "EZIPC_MESSAGE_TOO_LARGE"),
        );
        await client.close();
        await listener.close();
      },
    );

    streamOnly(
      "sendParts' `more` parts follow the body; a pieces handler gets long split frames, in order with the rest",
      async () => {
        const { listener, client, server } = await pair(kind, { maxFrameBytes: 1_000_000 });
        const got: Buffer[] = [];
        let inPieces = 0;
        const sizes = [
          [1, 2],
          [100, 30_000],
          [20_000, 20_000, 20_000],
          [200_000, 7],
        ];
        const done = new Promise<void>((resolve) => {
          const take = (b: Buffer) => {
            got.push(b);
            if (got.length === sizes.length * 2) resolve();
          };
          server.on("message", (m) => take(Buffer.from(m)));
          assert.ok(server.setPiecesHandler, "stream transports take pieces handlers");
          server.setPiecesHandler((pieces, length) => {
            inPieces++;
            const b = Buffer.concat(pieces);
            assert.equal(b.length, length);
            take(b);
          });
        });
        const expected: Buffer[] = [];
        for (const [i, parts] of sizes.entries()) {
          const bodies = parts.map((n, j) => Buffer.alloc(n, 16 * i + j));
          client.sendParts(Buffer.from([i]), bodies[0]!, bodies.slice(1));
          client.send(Buffer.from([0xf0 + i]));
          expected.push(Buffer.concat([Buffer.from([i]), ...bodies]), Buffer.from([0xf0 + i]));
        }
        await within(done, 10_000, "frames");
        assert.deepEqual(got, expected);
        // A 200 kB frame cannot come in one read of a socket (64 KiB at most): it came in pieces.
        if (kind.name.startsWith("tcp") || kind.name === "unix")
          assert.ok(inPieces > 0, "a frame came in pieces");
        await client.close();
        await listener.close();
      },
    );

    streamOnly(
      "reassembles a frame split at every byte offset, and many frames written in one chunk",
      async () => {
        const listener = await listen(kind.address());
        const got: Buffer[] = [];
        listener.on("connection", (c) => c.on("message", (m) => got.push(Buffer.from(m))));
        const raw = await kind.rawDial(listener.url);
        const payload = Buffer.from("split-me-anywhere");
        const wire = wireFrames([payload]);
        for (let k = 1; k < wire.length; k++) {
          await new Promise<void>((r) => raw.write(wire.subarray(0, k), () => r()));
          await new Promise<void>((r) => raw.write(wire.subarray(k), () => r()));
        }
        const many = Array.from({ length: 1000 }, (_, i) => Buffer.from(`frame ${i}`));
        raw.write(wireFrames(many));
        await within(
          (async () => {
            while (got.length < wire.length - 1 + 1000) await new Promise((r) => setImmediate(r));
          })(),
          5_000,
          "all raw frames",
        );
        for (let k = 0; k < wire.length - 1; k++) assert.deepEqual(got[k], payload);
        assert.deepEqual(got.slice(wire.length - 1), many);
        raw.destroy();
        await listener.close();
      },
    );

    streamOnly(
      "accepts maxFrameBytes and closes only the offending connection at maxFrameBytes + 1",
      async () => {
        const max = 1024;
        const listener = await listen(kind.address(), { maxFrameBytes: max });
        const conns: Connection[] = [];
        listener.on("connection", (c) => {
          conns.push(c);
          c.on("message", (m) => c.send(m));
        });
        const good = await dial(listener.url, { maxFrameBytes: max });
        const bad = await dial(listener.url);
        good.send(Buffer.alloc(max, 1));
        const [echo] = await nextEvent<[Buffer]>(good, "message");
        assert.equal(echo.length, max);
        const before = transportCounters().framesTooLarge;
        assert.throws(
          () => good.send(Buffer.alloc(max + 1)),
          (e) => isEzipcError(e, "EZIPC_MESSAGE_TOO_LARGE"),
          "the sender refuses too, by code",
        );
        assert.throws(
          () => good.sendParts(Buffer.alloc(max), Buffer.alloc(1)),
          (e) => isEzipcError(e, "EZIPC_MESSAGE_TOO_LARGE"),
          "and counts every part",
        );
        const serverSide = conns[1]!;
        bad.send(Buffer.alloc(max + 1));
        const info = await closeInfo(serverSide);
        assert.ok(isEzipcError(info.error, "EZIPC_FRAME_TOO_LARGE"), info.reason);
        assert.equal(transportCounters().framesTooLarge, before + 1);
        const told = await closeInfo(bad);
        assert.match(told.reason, /^EZIPC_FRAME_TOO_LARGE: /, "the offender is told why, by code");
        good.send(Buffer.from("still here"));
        const [again] = await nextEvent<[Buffer]>(good, "message");
        assert.equal(again.toString(), "still here");
        await good.close();
        await listener.close();
      },
    );

    it("closes gracefully with the reason reaching the peer", async () => {
      const { listener, client, server } = await pair(kind);
      client.send(Buffer.from("last words"));
      const msg = nextEvent<[Buffer]>(server, "message");
      await client.close("bye now");
      assert.equal((await msg)[0].toString(), "last words", "queued frames are flushed before closing");
      const info = await closeInfo(server);
      assert.equal(info.initiator, "remote");
      assert.equal(info.reason, "bye now");
      assert.equal(info.error, undefined);
      assert.throws(
        () => client.send(Buffer.from("x")),
        (e) => isEzipcError(e, "EZIPC_CONNECTION_CLOSED"),
      );
      await listener.close();
    });

    streamOnly("detects a peer killed abruptly (kill -9 for processes)", async () => {
      const listener = await listen(kind.address());
      if (kind.crossProcess) {
        const accepted = nextEvent<[Connection]>(listener, "connection", 10_000);
        const { child } = await spawnFixture("peer.js", [kind.clientUrl?.(listener.url) ?? listener.url]);
        const [server] = await accepted;
        server.send(Buffer.from("ping"));
        await nextEvent(server, "message");
        child.kill("SIGKILL");
        const info = await closeInfo(server);
        assert.equal(info.initiator, "remote");
        assert.ok(isEzipcError(info.error, "EZIPC_CONNECTION_RESET"), info.reason);
      } else {
        const { client, server } = await pair(kind);
        client.destroy();
        const info = await closeInfo(server);
        assert.ok(isEzipcError(info.error, "EZIPC_CONNECTION_RESET"), info.reason);
      }
      await listener.close();
    });

    streamOnly("cuts a slow consumer over maxQueuedBytes while its queue stays bounded", async () => {
      const maxQueuedBytes = 2 * 1024 * 1024;
      const frame = Buffer.alloc(16 * 1024);
      const { listener, client, server } = await pair(kind, {
        maxQueuedBytes,
        sendHighWaterMarkBytes: 256 * 1024,
      });
      client.pause(); // the consumer stops reading
      const slow = nextEvent<[{ reason: string; queuedBytes: number }]>(server, "slowConsumer", 10_000);
      let peak = 0;
      // Ignore backpressure on purpose, as a careless publisher would; bounded by count.
      for (let i = 0; i < 100_000 && server.state === "open"; i++) {
        server.send(frame);
        peak = Math.max(peak, server.queuedBytes);
        if (i % 64 === 63) await new Promise((r) => setImmediate(r));
      }
      const [info] = await slow;
      assert.equal(info.reason, "maxQueuedBytes");
      assert.ok(peak <= maxQueuedBytes + frame.length, `queue peaked at ${peak}`);
      const closed = await closeInfo(server);
      assert.ok(isEzipcError(closed.error, "EZIPC_SLOW_CONSUMER"));
      client.destroy();
      await listener.close();
    });

    streamOnly("cuts a consumer that stops draining for stallTimeoutMs", async () => {
      const { listener, client, server } = await pair(kind, {
        stallTimeoutMs: 300,
        sendHighWaterMarkBytes: 64 * 1024,
      });
      client.pause();
      const slow = nextEvent<[{ reason: string }]>(server, "slowConsumer", 10_000);
      const frame = Buffer.alloc(32 * 1024);
      // A well-behaved producer: waits for drain, which never comes.
      const producing = (async () => {
        for (let i = 0; i < 10_000 && server.state === "open"; i++) {
          if (!server.send(frame)) await server.drain().catch(() => undefined);
        }
      })();
      const [info] = await slow;
      assert.equal(info.reason, "stall");
      await producing;
      client.destroy();
      await listener.close();
    });

    streamOnly("declares a silent peer dead after heartbeatTimeoutMs", async () => {
      const listener = await listen(kind.address(), { heartbeatIntervalMs: 0 });
      listener.on("connection", (c) => c.pause()); // a hung process: reads nothing, answers nothing
      const before = transportCounters().heartbeatTimeouts;
      const client = await dial(listener.url, { heartbeatIntervalMs: 50, heartbeatTimeoutMs: 250 });
      const info = await closeInfo(client);
      assert.ok(isEzipcError(info.error, "EZIPC_HEARTBEAT_TIMEOUT"), info.reason);
      assert.equal(transportCounters().heartbeatTimeouts, before + 1);
      await listener.close();
    });

    it("keeps a quiet but live connection open through heartbeats", async () => {
      const { listener, client, server } = await pair(kind, {
        heartbeatIntervalMs: 30,
        heartbeatTimeoutMs: 120,
      });
      // No data is sent; only heartbeats keep both sides alive, well past the timeout. Pongs are counted on
      // both sides: a PONG counts as sending, so one side's pings may keep the other from ever pinging.
      await within(
        (async () => {
          while (client.stats.pongsIn + server.stats.pongsIn < 6 && client.state === "open")
            await new Promise((r) => setImmediate(r));
        })(),
        5_000,
        "six heartbeat round trips",
      );
      assert.equal(client.stats.framesIn + client.stats.framesOut, 0, "no data frames were exchanged");
      assert.equal(client.state, "open");
      assert.equal(server.state, "open");
      await client.close();
      await listener.close();
    });

    streamOnly("reconnects after the server restarts", async () => {
      const first = await listen(kind.address());
      const url = first.url;
      const dialer = new Dialer(url, {
        ...kind.dialOptions,
        reconnect: { initialDelayMs: 10, maxDelayMs: 50 },
      });
      const c1 = await within(dialer.connected(), 5_000, "first connection");
      const reconnecting = new Promise<void>((resolve) => {
        dialer.on("status", (s) => s.type === "reconnecting" && resolve());
      });
      await first.close();
      await within(reconnecting, 5_000, "reconnecting status");
      assert.equal(c1.state, "closed");
      const second = await listen(url);
      second.on("connection", (c) => c.on("message", (m) => c.send(m)));
      const c2 = await within(
        new Promise<Connection>((resolve) => dialer.once("connection", resolve)),
        5_000,
        "reconnection",
      );
      assert.notEqual(c2.id, c1.id, "a new connection with a new id");
      c2.send(Buffer.from("back"));
      const [m] = await nextEvent<[Buffer]>(c2, "message");
      assert.equal(m.toString(), "back");
      await dialer.close();
      await second.close();
    });

    streamOnly(
      "a list of addresses: each attempt dials the next; a lost one is followed by another",
      async () => {
        const a = await listen(kind.address());
        const b = await listen(kind.address());
        const gone = await listen(kind.address());
        const goneUrl = gone.url;
        await gone.close(); // nothing listens there any more
        const dialer = new Dialer(`${goneUrl}, ${a.url},${b.url}`, {
          ...kind.dialOptions,
          reconnect: { initialDelayMs: 10, maxDelayMs: 50 },
        });
        const onA = nextEvent<[Connection]>(a, "connection");
        await within(dialer.connected(), 5_000, "a connection past the dead address");
        await within(onA, 5_000, "the second address took it");
        const onB = nextEvent<[Connection]>(b, "connection");
        await a.close();
        await within(onB, 5_000, "after losing the second address, the third");
        await dialer.close();
        await b.close();
      },
    );
  });
}

describe("unix socket files", () => {
  let dir: ReturnType<typeof tempDir>;
  before(() => {
    dir = tempDir();
  });
  after(() => dir.cleanup());

  it("replaces a dead server's socket but never steals a live one", async () => {
    const file = path.join(dir.dir, "hub.sock");
    // a dead server: a child that listened, then was killed -9 (its socket file stays behind)
    const { child } = await spawnFixture("listen.js", [`unix://${file}`]);
    const gone = new Promise((r) => child.once("exit", r));
    child.kill("SIGKILL");
    await gone;
    const l = await listen(`unix://${file}`);
    await assert.rejects(listen(`unix://${file}`), (e) => isEzipcError(e, "EZIPC_ADDRESS_IN_USE"));
    const c = await dial(`unix://${file}`);
    assert.equal(c.state, "open", "the first server still serves");
    await c.close();
    await l.close();
  });

  it("refuses to replace a file that is not a socket", async () => {
    const { writeFileSync, readFileSync } = await import("node:fs");
    const file = path.join(dir.dir, "precious.txt");
    writeFileSync(file, "data");
    await assert.rejects(listen(`unix://${file}`), (e) => isEzipcError(e, "EZIPC_ADDRESS_IN_USE"));
    assert.equal(readFileSync(file, "utf8"), "data");
  });

  it("rejects relative and over-long paths", async () => {
    await assert.rejects(listen("unix://relative/x.sock"), (e) => isEzipcError(e, "EZIPC_INVALID_URL"));
    await assert.rejects(listen(`unix:///${"x".repeat(200)}`), (e) => isEzipcError(e, "EZIPC_INVALID_URL"));
  });
});

describe("URLs", () => {
  it("rejects unknown schemes and malformed URLs with EZIPC_INVALID_URL", async () => {
    await assert.rejects(dial("carrier-pigeon://x"), (e) => isEzipcError(e, "EZIPC_INVALID_URL"));
    await assert.rejects(dial("not a url"), (e) => isEzipcError(e, "EZIPC_INVALID_URL"));
    await assert.rejects(dial("tcp://127.0.0.1"), (e) => isEzipcError(e, "EZIPC_INVALID_URL"));
    await assert.rejects(listen("tcp://127.0.0.1:99999"), (e) => isEzipcError(e, "EZIPC_INVALID_URL"));
  });

  it("reports EZIPC_ADDRESS_IN_USE for a taken TCP port", async () => {
    const l = await listen("tcp://127.0.0.1:0");
    await assert.rejects(listen(l.url), (e) => isEzipcError(e, "EZIPC_ADDRESS_IN_USE"));
    await l.close();
  });
});
