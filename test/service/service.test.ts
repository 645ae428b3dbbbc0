import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { t } from "../../src/codec/schema.js";
import { isEzipcError } from "../../src/errors.js";
import { type Message, registerProtocol, schemaProtocol } from "../../src/service/protocol.js";
import { Service } from "../../src/service/service.js";
import type { Session } from "../../src/service/session.js";
import { dial } from "../../src/transport/registry.js";
import type { CloseInfo } from "../../src/transport/types.js";
import { nextEvent, within } from "../helpers.js";

let n = 0;
const url = () => `memory://service-${++n}`;

describe("Service", () => {
  for (const protocol of ["json", "msgpack"]) {
    it(`dispatches messages by type over ${protocol}, both ways`, async () => {
      const server = new Service();
      server.handle<{ name: string }>("greet", (body, session) => {
        session.send("greeting", { text: `hello ${body.name}` });
      });
      const listener = await server.accept(url(), protocol);
      const client = new Service();
      const got = new Promise<unknown>((resolve) => client.handle("greeting", (body) => resolve(body)));
      const connector = client.connect(listener.url, protocol);
      const session = await within(connector.connected(), 5_000, "connector session");
      session.send("greet", { name: "ann" });
      assert.deepEqual(await within(got, 5_000, "greeting"), { text: "hello ann" });
      assert.equal(server.sessions.size, 1);
      const [serverSession] = [...server.sessions.values()];
      assert.equal(server.session(serverSession!.id), serverSession);
      await client.close();
      await server.close();
    });
  }

  it("runs over udp://: each message one datagram, a message too large for one refused at send", async () => {
    const server = new Service();
    server.handle<{ name: string }>("greet", (body, session) => {
      session.send("greeting", { text: `hello ${body.name}` });
    });
    const listener = await server.accept("udp://127.0.0.1:0", "json");
    const client = new Service();
    const got = new Promise<unknown>((resolve) => client.handle("greeting", (body) => resolve(body)));
    const session = await within(client.connect(listener.url, "json").connected(), 5_000, "udp session");
    session.send("greet", { name: "dee" });
    assert.deepEqual(await within(got, 5_000, "greeting over udp"), { text: "hello dee" });
    assert.throws(
      () => session.send("greet", { name: "x".repeat(2_000) }),
      (e) => isEzipcError(e, "EZIPC_MESSAGE_TOO_LARGE"),
    );
    await client.close();
    await server.close();
  });

  it("speaks a schema protocol with typed messages", async () => {
    const messages = {
      join: t.struct({ room: t.string(), nick: t.string() }),
      say: t.struct({ text: t.string(), at: t.f64 }),
    };
    registerProtocol("test-chat", schemaProtocol(messages));
    const server = new Service();
    const said: unknown[] = [];
    server.handle("join", (body: { room: string }, s) =>
      s.send("say", { text: `welcome to ${body.room}`, at: 1 }),
    );
    server.handle("say", (body) => said.push(body));
    const listener = await server.accept(url(), "test-chat");
    const client = new Service();
    const welcome = new Promise<unknown>((r) => client.handle("say", r));
    const s = await client.connect(listener.url, "test-chat").connected();
    s.send("join", { room: "lobby", nick: "ann" });
    assert.deepEqual(await within(welcome, 5_000, "welcome"), { text: "welcome to lobby", at: 1 });
    assert.throws(
      () => s.send("nope", {}),
      (e) => isEzipcError(e, "EZIPC_UNKNOWN_MESSAGE"),
    );
    assert.throws(
      () => s.send("say", { text: 5 }),
      (e) => isEzipcError(e, "EZIPC_ENCODE"),
    );
    await client.close();
    await server.close();
  });

  it("closes only the session whose peer sends an undecodable frame", async () => {
    const server = new Service();
    server.handle("echo", (body, s) => s.send("echo", body));
    const listener = await server.accept(url(), "json");
    const closed = nextEvent<[Session, CloseInfo]>(server, "sessionClosed");
    const bad = await dial(listener.url);
    bad.send(Buffer.from([4, 0x65, 0x63, 0x68, 0x6f, 0x7b])); // type "echo", body "{" (invalid JSON)
    const [, info] = await closed;
    assert.ok(isEzipcError(info.error, "EZIPC_DECODE"), info.reason);
    const client = new Service();
    const back = new Promise<unknown>((r) => client.handle("echo", r));
    (await client.connect(listener.url, "json").connected()).send("echo", [1, 2]);
    assert.deepEqual(await within(back, 5_000, "echo after the bad peer"), [1, 2]);
    await client.close();
    await server.close();
  });

  it("closes the session of a handler that throws, and reports unhandled types", async () => {
    const server = new Service();
    server.handle("boom", () => {
      throw new Error("handler bug");
    });
    const unhandled = nextEvent<[Message]>(server, "unhandled");
    const listener = await server.accept(url(), "json");
    const client = new Service();
    const s = await client.connect(listener.url, "json", { reconnect: false }).connected();
    s.send("mystery", 1);
    const [m] = await unhandled;
    assert.equal(m.type, "mystery");
    s.send("boom", 1);
    const info = await within(s.connection.closed, 5_000, "session close");
    assert.equal(info.initiator, "remote");
    assert.match(info.reason, /boom/);
    await client.close();
    await server.close();
  });

  it("rejects an unknown protocol name", async () => {
    await assert.rejects(new Service().accept(url(), "klingon"), (e) =>
      isEzipcError(e, "EZIPC_UNKNOWN_PROTOCOL"),
    );
  });
});
