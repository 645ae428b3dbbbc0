/**
 * The browser client's transport (src/transport/browser-ws.ts) against the Node ws:// listener, run in
 * Node with the `ws` package's client (the WHATWG WebSocket interface): framing, limits, coded closes,
 * heartbeats, the bounded hold of a paused connection, and a whole hub client over it. The bundle itself
 * runs in Chromium in test/web/.
 */
import assert from "node:assert/strict";
import { after, describe, it } from "node:test";
import WebSocket, { WebSocketServer } from "ws";
import { connect } from "../../src/client/client.js";
import { isEzipcError } from "../../src/errors.js";
import { Hub } from "../../src/hub/hub.js";
import { browserWebSocketTransport, type WebSocketClass } from "../../src/transport/browser-ws.js";
import { listen, dial as nodeDial, registerTransport, transportFor } from "../../src/transport/registry.js";
import type { CloseInfo, Connection, DialOptions, ListenOptions } from "../../src/transport/types.js";
import { nextEvent, seededRandom, until, within } from "../helpers.js";

const browser = browserWebSocketTransport("ws", WebSocket as unknown as WebSocketClass);
const dial = (url: string, options: DialOptions = {}) => browser.dial(new URL(url), options);

async function pair(options: DialOptions = {}) {
  const listener = await listen("ws://127.0.0.1:0", options as ListenOptions);
  const accepted = nextEvent<[Connection]>(listener, "connection");
  const client = await dial(listener.url, options);
  const [server] = await within(accepted, 5_000, "the accepted connection");
  return { listener, client, server };
}

const closeInfo = (c: Connection): Promise<CloseInfo> =>
  within(c.closed, 5_000, `connection ${c.id} to close`);

describe("browser ws:// transport (WHATWG WebSocket)", () => {
  it("echoes 20k frames of random sizes in order, intact, with sendParts (and further parts) beside send", async () => {
    const { listener, client, server } = await pair();
    server.on("message", (m) => server.send(m));
    const random = seededRandom(7);
    const sent: Buffer[] = [];
    for (let i = 0; i < 20_000; i++) {
      const size = random() < 0.01 ? Math.floor(random() * 200_000) : Math.floor(random() * 300);
      const b = Buffer.alloc(size);
      for (let j = 0; j < Math.min(size, 16); j++) b[j] = Math.floor(random() * 256);
      sent.push(b);
    }
    const got: Buffer[] = [];
    const done = new Promise<void>((resolve) =>
      client.on("message", (m) => {
        got.push(Buffer.from(m));
        if (got.length === sent.length) resolve();
      }),
    );
    for (let i = 0; i < sent.length; i++) {
      const b = sent[i]!;
      if (i % 3 === 0 && b.length > 4) client.sendParts(b.subarray(0, 4), b.subarray(4));
      else if (i % 3 === 1 && b.length > 8)
        client.sendParts(b.subarray(0, 4), b.subarray(4, 6), [b.subarray(6, 8), b.subarray(8)]);
      else if (!client.send(b)) await client.drain();
    }
    await within(done, 30_000, "every echo");
    for (let i = 0; i < sent.length; i++) assert.ok(got[i]!.equals(sent[i]!), `frame ${i} differs`);
    assert.equal(client.stats.framesIn, sent.length);
    await client.close();
    await listener.close();
  });

  it("refuses a dial nobody answers with EZIPC_CONNECTION_REFUSED, and an aborted one with EZIPC_CONNECT_ABORTED", async () => {
    const l = await listen("tcp://127.0.0.1:0");
    const dead = l.url.replace("tcp:", "ws:");
    await l.close();
    await assert.rejects(dial(dead), (e) => isEzipcError(e, "EZIPC_CONNECTION_REFUSED"));
    const live = await listen("ws://127.0.0.1:0");
    const ac = new AbortController();
    ac.abort();
    await assert.rejects(dial(live.url, { signal: ac.signal }), (e) =>
      isEzipcError(e, "EZIPC_CONNECT_ABORTED"),
    );
    await live.close();
  });

  it("a frame over the listener's maxFrameBytes closes only that connection, with the code on both sides", async () => {
    const listener = await listen("ws://127.0.0.1:0", { maxFrameBytes: 1000 });
    const bad = await dial(listener.url);
    const good = await dial(listener.url);
    bad.send(Buffer.alloc(1001));
    const info = await closeInfo(bad);
    assert.ok(isEzipcError(info.error, "EZIPC_FRAME_TOO_LARGE"), info.reason);
    assert.equal(good.state, "open");
    const echoed = nextEvent<[Buffer]>(good, "message");
    for (const c of listener.connections) c.on("message", (m) => c.send(m));
    good.send(Buffer.from("still here"));
    assert.equal((await within(echoed, 5_000, "echo"))[0].toString(), "still here");
    assert.throws(
      () => good.send(Buffer.alloc(17 * 1024 * 1024)),
      (e) => isEzipcError(e, "EZIPC_MESSAGE_TOO_LARGE"),
    );
    await good.close();
    await listener.close();
  });

  it("a frame over its own maxFrameBytes from the peer closes with EZIPC_FRAME_TOO_LARGE", async () => {
    const listener = await listen("ws://127.0.0.1:0");
    const accepted = nextEvent<[Connection]>(listener, "connection");
    const client = await dial(listener.url, { maxFrameBytes: 100 });
    const [server] = await accepted;
    server.send(Buffer.alloc(101));
    const info = await closeInfo(client);
    assert.ok(isEzipcError(info.error, "EZIPC_FRAME_TOO_LARGE"), info.reason);
    const serverInfo = await closeInfo(server);
    assert.ok(isEzipcError(serverInfo.error, "EZIPC_FRAME_TOO_LARGE"), serverInfo.reason);
    await listener.close();
  });

  it("closes gracefully: the reason reaches the peer, and the peer's reason reaches it", async () => {
    const a = await pair();
    const serverClosed = closeInfo(a.server);
    await a.client.close("bye from the page");
    assert.equal((await serverClosed).reason, "bye from the page");
    assert.throws(
      () => a.client.send(Buffer.from("x")),
      (e) => isEzipcError(e, "EZIPC_CONNECTION_CLOSED"),
    );
    const b = await pair();
    const clientClosed = closeInfo(b.client);
    await b.server.close("hub going down");
    const info = await clientClosed;
    assert.equal(info.reason, "hub going down");
    assert.equal(info.initiator, "remote");
    await a.listener.close();
    await b.listener.close();
  });

  it("answers pings, and declares a silent peer dead with EZIPC_HEARTBEAT_TIMEOUT", async () => {
    const quiet = await pair({ heartbeatIntervalMs: 50, heartbeatTimeoutMs: 400 });
    // A side pings only when it sent nothing for a heartbeat interval, and a PONG counts as sending: once the
    // two timers fall in step, one side's pings keep the other from pinging. So the pongs are counted over
    // both sides — enough of them to outlast the timeout several times, with both connections still open.
    await until(
      () => quiet.server.stats.pongsIn + quiet.client.stats.pongsIn >= 20,
      "pings answered for 20 intervals (2.5 × the timeout)",
      10_000,
    );
    assert.equal(quiet.client.state, "open");
    assert.equal(quiet.server.state, "open");
    await quiet.client.close();
    await quiet.listener.close();

    const listener = await listen("ws://127.0.0.1:0");
    listener.on("connection", (c) => c.pause()); // hung: reads nothing, so answers nothing
    const client = await dial(listener.url, { heartbeatIntervalMs: 50, heartbeatTimeoutMs: 250 });
    const info = await closeInfo(client);
    assert.ok(isEzipcError(info.error, "EZIPC_HEARTBEAT_TIMEOUT"), info.reason);
    await listener.close();
  });

  it("a text message is refused with EZIPC_PROTOCOL", async () => {
    const wss = new WebSocketServer({ host: "127.0.0.1", port: 0 });
    await nextEvent(wss, "listening");
    wss.on("connection", (ws) => ws.send("not binary"));
    const port = (wss.address() as { port: number }).port;
    const client = await dial(`ws://127.0.0.1:${port}/`);
    const info = await closeInfo(client);
    assert.ok(isEzipcError(info.error, "EZIPC_PROTOCOL"), info.reason);
    await new Promise((r) => wss.close(r));
  });

  it("pause holds frames and resume delivers them in order; holding over maxQueuedBytes cuts with EZIPC_SLOW_CONSUMER", async () => {
    const { listener, client, server } = await pair({ maxQueuedBytes: 100_000 });
    client.pause();
    const got: number[] = [];
    client.on("message", (m) => got.push(m.readUInt32BE(0)));
    for (let i = 0; i < 10; i++) server.send(Buffer.alloc(1000).fill(0).fill(i, 3, 4));
    await until(() => client.stats.framesIn === 10, "frames held");
    assert.deepEqual(got, []);
    client.resume();
    assert.deepEqual(got, [0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
    client.pause();
    const cut = nextEvent(client, "slowConsumer");
    for (let i = 0; i < 200; i++) server.send(Buffer.alloc(1000));
    await within(cut, 5_000, "slowConsumer");
    const info = await closeInfo(client);
    assert.ok(isEzipcError(info.error, "EZIPC_SLOW_CONSUMER"), info.reason);
    await listener.close();
  });

  describe("a hub client over it", () => {
    const node = transportFor("ws://x").transport;
    let hub: Hub | undefined;
    after(async () => {
      registerTransport(node);
      await hub?.close();
    });

    it("allocates, writes, publishes, subscribes and calls through a hub", async () => {
      hub = await Hub.listen({ urls: ["ws://127.0.0.1:0"] });
      const url = hub.urls[0]!;
      // The browser transport dials; the Node one still listens.
      registerTransport({ scheme: "ws", listen: node.listen, dial: (u, o) => browser.dial(u, o) });
      const page = await connect(url, { directRpc: false });
      registerTransport(node);
      const other = await connect(url);
      assert.ok(page.label.length > 0);
      const ptr = await page.allocate("page.k", 4, "poll");
      const seen = (await other.watch("page.k", "poll"))!;
      const changed = nextEvent(seen, "change");
      await ptr.write(Buffer.from([1, 2, 3, 4]));
      await within(changed, 5_000, "the write at the other client");
      assert.deepEqual([...seen.read()], [1, 2, 3, 4]);
      const sub = await other.subscribe("page.t");
      await page.publish("page.t", Buffer.from("from the page"));
      const it = sub[Symbol.asyncIterator]();
      assert.equal((await within(it.next(), 5_000, "message")).value.payload.toString(), "from the page");
      await other.serve("page.rpc", (req) => `hi ${req.text()}`);
      assert.equal((await page.request("page.rpc", "page")).text(), "hi page");
      assert.equal(await nodeDial(url).then((c) => c.close().then(() => true)), true);
      await page.close();
      await other.close();
    });
  });
});
