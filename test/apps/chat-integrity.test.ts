// Chat integrity on every store: names that grow under NFKC, a failing line that must not take its batch
// down, one history order under concurrent senders, a joiner that gets each line exactly once, and names
// and messages counted as a person counts them.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { ChatClient } from "../../src/apps/chat/client.js";
import { KIND_SAY } from "../../src/apps/chat/protocol.js";
import { ChatServer, MAX_TEXT } from "../../src/apps/chat/server.js";
import type { ChatStore, Line, StoredLine } from "../../src/apps/chat/store.js";
import { isEzipcError } from "../../src/index.js";
import { tempDir, until } from "../helpers.js";
import { engines } from "./chat-stores.js";

const code = (c: string) => (e: unknown) => isEzipcError(e, c as never);

/** A real store that refuses lines whose text is "poison" (a fault injected into the real engine). */
function poisoned(store: ChatStore, failures: { n: number }): ChatStore {
  return {
    migrate: () => store.migrate(),
    history: (room, day, nick) => store.history(room, day, nick),
    close: () => store.close(),
    save: (lines: readonly StoredLine[]) => {
      if (lines.some((l) => l.text === "poison" || (l.from === "Unlucky" && failures.n-- > 0))) {
        return Promise.reject(new Error("refused by the store"));
      }
      return store.save(lines);
    },
  };
}

for (const engine of engines)
  describe(`chat integrity (${engine.name})`, () => {
    async function withServer(fn: (url: string, server: ChatServer) => Promise<void>, failures = { n: 0 }) {
      const tmp = tempDir();
      const newStore = await engine.stores(tmp.dir);
      const server = new ChatServer({ store: poisoned(newStore(), failures), timeZone: "UTC", burst: 1_000 });
      const url = await server.listen("tcp://127.0.0.1:0");
      try {
        await fn(url, server);
      } finally {
        await server.close();
        tmp.cleanup();
      }
    }

    it("a nickname that grows under NFKC is stored; a failing line is refused alone; a failed join frees its name", async () => {
      const failures = { n: 1 };
      await withServer(async (url) => {
        const clients = await Promise.all(Array.from({ length: 4 }, () => ChatClient.connect(url)));
        try {
          const [a, b, c, d] = clients as [ChatClient, ChatClient, ChatClient, ChatClient];
          await a.hello("lobby", "ann");
          await b.hello("lobby", "bob");
          const wide = "\uFDFA".repeat(4); // 4 characters, 72 once normalised
          const said = [...Array(10).keys()].map((i) => a.say(`a${i}`));
          const joined = c.hello("lobby", wide);
          const poison = assert.rejects(b.say("poison"), code("EZIPC_STORE"));
          said.push(...[...Array(10).keys()].map((i) => b.say(`b${i}`)));
          await Promise.all(said);
          assert.equal((await joined).nick, wide);
          await poison;
          // A join the store refuses leaves the name free: the next try (the store is fine now) gets it.
          await assert.rejects(d.hello("lobby", "Unlucky"), code("EZIPC_STORE"));
          const w = await d.hello("lobby", "Unlucky");
          const texts = w.history.filter((l) => l.kind === KIND_SAY).map((l) => l.text);
          assert.equal(texts.length, 20, "every other line of the poisoned batch is stored");
          assert.ok(!texts.includes("poison"));
          assert.ok(w.history.some((l) => l.from === wide));
        } finally {
          await Promise.all(clients.map((x) => x.close()));
        }
      }, failures);
    });

    it("history comes out in the order lines were accepted, with 10 members sending 20 lines each at once", async () => {
      await withServer(async (url) => {
        const members = await Promise.all(Array.from({ length: 10 }, () => ChatClient.connect(url)));
        const joiner = await ChatClient.connect(url);
        try {
          await Promise.all(members.map((m, i) => m.hello("busy", `m${i}`)));
          await Promise.all(
            members.map(async (m) => {
              const sent = [...Array(20).keys()].map((j) => m.say(String(j)));
              await Promise.all(sent);
            }),
          );
          const w = await joiner.hello("busy", "late");
          let lastTime = 0;
          const next = new Map<string, number>();
          for (const l of w.history) {
            assert.ok(l.time >= lastTime, "times never go backwards");
            lastTime = l.time;
            if (l.kind !== KIND_SAY) continue;
            assert.equal(Number(l.text), next.get(l.from) ?? 0, `${l.from}'s lines in order`);
            next.set(l.from, Number(l.text) + 1);
          }
          for (let i = 0; i < 10; i++) assert.equal(next.get(`m${i}`), 20);
        } finally {
          await Promise.all([...members, joiner].map((x) => x.close()));
        }
      });
    });

    it("a joiner of a busy room gets history, then live lines: each line exactly once", async () => {
      await withServer(async (url) => {
        const talkers = await Promise.all(Array.from({ length: 3 }, () => ChatClient.connect(url)));
        const joiner = await ChatClient.connect(url);
        try {
          await Promise.all(talkers.map((t, i) => t.hello("busy", `t${i}`)));
          let stop = false;
          const sent: string[] = [];
          const talking = talkers.map(async (t, i) => {
            for (let j = 0; j < 2_000 && !stop; j++) {
              const text = `t${i}-${j}`;
              await t.say(text);
              sent.push(text);
            }
          });
          await until(() => sent.length >= 60, "the room to be busy");
          const live: Line[] = [];
          joiner.on("line", (l) => live.push(l));
          const w = await joiner.hello("busy", "joiner");
          const seenAtWelcome = live.length;
          await until(() => sent.length >= 200, "more lines");
          stop = true;
          await Promise.all(talking);
          const got = () => [...w.history, ...live].filter((l) => l.kind === KIND_SAY).map((l) => l.text);
          await until(() => got().length >= sent.length, "every line, in the history or live");
          assert.equal(seenAtWelcome, 0, "no live line before the welcome");
          assert.equal(new Set(got()).size, got().length, "no line twice");
          assert.deepEqual(new Set(got()), new Set(sent), "every line once");
        } finally {
          await Promise.all([...talkers, joiner].map((x) => x.close()));
        }
      });
    });

    it("names in any script with their marks; messages counted in characters as a person counts them", async () => {
      await withServer(async (url) => {
        const c = await ChatClient.connect(url);
        try {
          const w = await c.hello("चौपाल", "राम");
          assert.equal(w.nick, "राम");
          await c.say("😀".repeat(1_500)); // 1,500 characters (3,000 UTF-16 units)
          await assert.rejects(c.say("x".repeat(MAX_TEXT + 1)), code("EZIPC_BAD_REQUEST"));
          await assert.rejects(c.nick("x".repeat(21)), code("EZIPC_BAD_REQUEST"));
          await c.nick("é".normalize("NFD").repeat(20)); // 20 letters with a combining mark each
        } finally {
          await c.close();
        }
      });
    });
  });
