// The chat server (SQLite) on a slow disk: every fsync takes a second (strace injects the delay). A line
// waits for its sync before it is acknowledged; the rest of the server (members, rooms) does not wait.
import assert from "node:assert/strict";
import path from "node:path";
import { describe, it } from "node:test";
import { ChatClient } from "../../src/apps/chat/client.js";
import { childPid, ended, tempDir, underStrace, within } from "../helpers.js";
import { startChatServer } from "./chat-server-process.js";

describe("the chat server on a slow disk", () => {
  it("acknowledges a line once synced, and answers other requests meanwhile", async () => {
    const tmp = tempDir();
    const db = path.join(tmp.dir, "chat.db");
    const { child: tracer, url } = await startChatServer(
      "0",
      `sqlite:${db}`,
      underStrace(["fsync,fdatasync:delay_enter=1000000"]),
    );
    try {
      const alice = await ChatClient.connect(url);
      const bob = await ChatClient.connect(url);
      try {
        await alice.hello("lobby", "alice");
        await bob.hello("lobby", "bob");
        let acknowledged = false;
        const said = alice.say("a line for the slow disk").then(() => {
          acknowledged = true;
        });
        for (let i = 0; i < 10; i++) {
          assert.deepEqual((await bob.who()).sort(), ["alice", "bob"]);
          assert.equal((await bob.rooms()).find((r) => r.name === "lobby")?.members, 2);
        }
        assert.equal(acknowledged, false, "the line waits for its sync");
        await within(said, 15_000, "the line's acknowledgement");
      } finally {
        await alice.close();
        await bob.close();
      }
    } finally {
      // (The server, the tracer's child, is asked to stop; the tracer ends with it.)
      process.kill(childPid(tracer), "SIGINT");
      await within(ended(tracer), 10_000, "the chat server to exit");
      tmp.cleanup();
    }
  });
});
