import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { ChatClient } from "../../src/apps/chat/client.js";
import { KIND_JOIN, KIND_LEAVE, KIND_RENAME, KIND_SAY, KIND_WHISPER } from "../../src/apps/chat/protocol.js";
import { ChatServer } from "../../src/apps/chat/server.js";
import type { ChatStore, Line } from "../../src/apps/chat/store.js";
import { isEzipcError } from "../../src/index.js";
import { nextEvent, tempDir, within } from "../helpers.js";
import { engines } from "./chat-stores.js";

const code = (c: string) => (e: unknown) => isEzipcError(e) && e.code === c;

let newStore: () => ChatStore = () => {
  throw new Error("no store");
};

/** A server on a fresh store with a clock the test moves. */
async function start(clock: { t: number }, options: { burst?: number } = {}) {
  const server = new ChatServer({ store: newStore(), timeZone: "UTC", now: () => clock.t, ...options });
  const url = await server.listen("tcp://127.0.0.1:0");
  return { server, url };
}

function nextLine(c: ChatClient, what: string, match: (l: Line) => boolean = () => true): Promise<Line> {
  return within(
    new Promise<Line>((resolve) => {
      const on = (l: Line) => {
        if (!match(l)) return;
        c.off("line", on);
        resolve(l);
      };
      c.on("line", on);
    }),
    5_000,
    what,
  );
}

for (const engine of engines)
  describe(`chat server (${engine.name})`, () => {
    const setUp = async (dir: string) => {
      newStore = await engine.stores(dir);
    };
    it("nicknames: unique case-insensitively, validated with a reason, retried; a race has one winner", async () => {
      const tmp = tempDir();
      await setUp(tmp.dir);
      const clock = { t: Date.UTC(2026, 10, 26, 9) };
      const { server, url } = await start(clock);
      const clients: ChatClient[] = [];
      const client = async () => {
        const c = await ChatClient.connect(url);
        clients.push(c);
        return c;
      };
      try {
        const ann = await client();
        await ann.hello("lobby", "Ann");
        const other = await client();
        await assert.rejects(other.hello("lobby", "aNN"), code("EZIPC_NICK_TAKEN"));
        await assert.rejects(
          other.hello("lobby", "no spaces"),
          (e) => code("EZIPC_BAD_REQUEST")(e) && /letters/.test((e as Error).message),
        );
        await assert.rejects(other.hello("lobby", "x".repeat(21)), code("EZIPC_BAD_REQUEST"));
        await assert.rejects(other.hello("bad room!", "Bob"), code("EZIPC_BAD_REQUEST"));
        const w = await other.hello("lobby", "Bob"); // the client may try again
        assert.equal(w.nick, "Bob");
        const racers = await Promise.all(Array.from({ length: 5 }, () => client()));
        const results = await Promise.allSettled(racers.map((r) => r.hello("lobby", "Winner")));
        assert.equal(results.filter((r) => r.status === "fulfilled").length, 1);
        for (const r of results) if (r.status === "rejected") assert.ok(code("EZIPC_NICK_TAKEN")(r.reason));
        assert.deepEqual((await ann.who()).sort(), ["Ann", "Bob", "Winner"]);
      } finally {
        await Promise.all(clients.map((c) => c.close()));
        await server.close();
        tmp.cleanup();
      }
    });

    it("rename, whispers within the room only, members, rooms and moving, with announcements", async () => {
      const tmp = tempDir();
      await setUp(tmp.dir);
      const clock = { t: Date.UTC(2026, 10, 26, 9) };
      const { server, url } = await start(clock);
      const [a, b, c] = await Promise.all([
        ChatClient.connect(url),
        ChatClient.connect(url),
        ChatClient.connect(url),
      ]);
      try {
        await a.hello("lobby", "ann");
        const bJoined = nextLine(a, "bob's join", (l) => l.kind === KIND_JOIN);
        await b.hello("lobby", "bob");
        assert.equal((await bJoined).from, "bob");
        await c.hello("garden", "cid");
        const renamed = nextLine(b, "the rename", (l) => l.kind === KIND_RENAME);
        await assert.rejects(a.nick("BOB"), code("EZIPC_NICK_TAKEN"));
        await a.nick("anna");
        assert.deepEqual([(await renamed).from, (await renamed).to], ["ann", "anna"]);
        const whisper = nextLine(b, "the whisper", (l) => l.kind === KIND_WHISPER);
        await a.whisper("Bob", "psst");
        assert.deepEqual(
          [(await whisper).from, (await whisper).to, (await whisper).text],
          ["anna", "bob", "psst"],
        );
        await assert.rejects(a.whisper("cid", "not here"), code("EZIPC_NO_SUCH_MEMBER"));
        const said = nextLine(b, "anna's message", (l) => l.kind === KIND_SAY);
        await a.say("hello lobby");
        assert.equal((await said).text, "hello lobby");
        assert.deepEqual(await a.who(), ["anna", "bob"]);
        assert.deepEqual(await a.rooms(), [
          { name: "garden", members: 1 },
          { name: "lobby", members: 2 },
        ]);
        const left = nextLine(a, "bob leaving", (l) => l.kind === KIND_LEAVE);
        const arrived = nextLine(c, "bob arriving", (l) => l.kind === KIND_JOIN);
        await b.join("garden");
        assert.equal((await left).from, "bob");
        assert.equal((await arrived).from, "bob");
        assert.deepEqual(await b.who(), ["bob", "cid"]);
        // Lines of one room do not reach another.
        const seenByC: Line[] = [];
        c.on("line", (l) => seenByC.push(l));
        await a.say("only for the lobby");
        await b.say("only for the garden");
        await nextLine(c, "the garden line", (l) => l.text === "only for the garden");
        assert.ok(!seenByC.some((l) => l.text === "only for the lobby"));
      } finally {
        await Promise.all([a.close(), b.close(), c.close()]);
        await server.close();
        tmp.cleanup();
      }
    });

    it("entering a room gives its lines of the day; a returning nickname also gets its whispers; the day boundary", async () => {
      const tmp = tempDir();
      await setUp(tmp.dir);
      const clock = { t: Date.UTC(2026, 10, 25, 23, 30) }; // late on the 25th
      const { server, url } = await start(clock);
      const a = await ChatClient.connect(url);
      const b = await ChatClient.connect(url);
      try {
        await a.hello("lobby", "ann");
        await b.hello("lobby", "bob");
        await a.say("yesterday's news");
        clock.t = Date.UTC(2026, 10, 26, 8); // the 26th
        await a.say("good morning");
        await b.whisper("ann", "secret for ann");
        await b.close();
        const c = await ChatClient.connect(url);
        const fresh = await c.hello("lobby", "cid");
        const texts = (h: Line[]) =>
          h.filter((l) => l.kind === KIND_SAY || l.kind === KIND_WHISPER).map((l) => l.text);
        assert.deepEqual(texts(fresh.history), ["good morning"], "today's lines only, no whisper of others");
        await c.close();
        const back = await ChatClient.connect(url);
        const returning = await back.hello("lobby", "BOB"); // the same nickname, differently cased
        assert.deepEqual(texts(returning.history), ["good morning", "secret for ann"]);
        await back.close();
      } finally {
        await a.close();
        await server.close();
        tmp.cleanup();
      }
    });

    it("acknowledged messages survive a server restart; clients reconnect and rejoin under their nickname", async () => {
      const tmp = tempDir();
      await setUp(tmp.dir);
      const clock = { t: Date.UTC(2026, 10, 26, 12) };
      let { server, url } = await start(clock);
      const port = new URL(url).port;
      const a = await ChatClient.connect(url, { reconnect: { initialDelayMs: 20, maxDelayMs: 100 } });
      try {
        await a.hello("lobby", "ann");
        for (let i = 0; i < 20; i++) await a.say(`durable ${i}`);
        const disconnected = nextEvent(a, "disconnected");
        await server.close();
        await within(disconnected, 5_000, "the client to notice");
        const rejoined = nextEvent<[{ room: string; nick: string; history: Line[] }]>(a, "rejoined", 10_000);
        server = new ChatServer({ store: newStore(), timeZone: "UTC", now: () => clock.t });
        url = await server.listen(`tcp://127.0.0.1:${port}`);
        const [w] = await rejoined;
        assert.deepEqual([w.room, w.nick], ["lobby", "ann"]);
        assert.deepEqual(
          w.history.filter((l) => l.kind === KIND_SAY).map((l) => l.text),
          Array.from({ length: 20 }, (_, i) => `durable ${i}`),
        );
        await a.say("after the restart");
      } finally {
        await a.close();
        await server.close();
        tmp.cleanup();
      }
    });

    it("bad input and flooding: clear refusals; the flooder is limited and its room goes on", async () => {
      const tmp = tempDir();
      await setUp(tmp.dir);
      const clock = { t: Date.UTC(2026, 10, 26, 12) };
      const { server, url } = await start(clock, { burst: 10 });
      const flooder = await ChatClient.connect(url);
      const calm = await ChatClient.connect(url);
      try {
        await assert.rejects(flooder.say("before hello"), code("EZIPC_BAD_REQUEST"));
        await flooder.hello("lobby", "flood");
        await calm.hello("lobby", "calm");
        await assert.rejects(flooder.say("x".repeat(2_001)), code("EZIPC_BAD_REQUEST"));
        await assert.rejects(
          flooder.say("bell\u0007"),
          (e) => code("EZIPC_BAD_REQUEST")(e) && /control/.test((e as Error).message),
        );
        await assert.rejects(flooder.say(""), code("EZIPC_BAD_REQUEST"));
        const results = await Promise.allSettled(
          Array.from({ length: 30 }, (_, i) => flooder.say(`spam ${i}`)),
        );
        const refused = results.filter((r) => r.status === "rejected");
        assert.equal(results.length - refused.length, 10, "the burst went through");
        for (const r of refused) assert.ok(code("EZIPC_RATE_LIMITED")((r as PromiseRejectedResult).reason));
        // The calm member is not affected: its message is stored and delivered at once.
        const got = nextLine(flooder, "the calm line", (l) => l.text === "still talking");
        await calm.say("still talking");
        await got;
        clock.t += 2_000; // the allowance refills with time
        await flooder.say("calmer now");
      } finally {
        await Promise.all([flooder.close(), calm.close()]);
        await server.close();
        tmp.cleanup();
      }
    });
  });
