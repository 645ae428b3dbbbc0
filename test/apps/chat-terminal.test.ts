import assert from "node:assert/strict";
import { execFileSync, spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import path from "node:path";
import { describe, it } from "node:test";
import { fileURLToPath } from "node:url";
import { ChatClient } from "../../src/apps/chat/client.js";
import type { Line } from "../../src/apps/chat/store.js";
import { ended, tempDir, within } from "../helpers.js";
import { startChatServer } from "./chat-server-process.js";

const cli = fileURLToPath(new URL("../../src/cli/main.js", import.meta.url));

/** The visible text of a tmux pane. */
function screen(session: string): string {
  return execFileSync("tmux", ["capture-pane", "-p", "-t", session], { encoding: "utf8" });
}

/** Waits (bounded) until `probe` returns a value; a terminal has no event to wait for, so it polls. */
async function poll<T>(
  what: string,
  probe: () => T | undefined,
  failure: () => string,
  ms = 10_000,
): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    const v = probe();
    if (v !== undefined) return v;
    if (Date.now() > deadline) assert.fail(`${what}: ${failure()}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** Waits until the pane shows what `test` looks for; fails with the screen if it never does. */
function until(session: string, what: string, test: (s: string) => boolean): Promise<string> {
  return poll(
    `the screen never showed ${what}`,
    () => {
      const s = screen(session);
      return test(s) ? s : undefined;
    },
    () => `\n${screen(session)}`,
  );
}

function alive(session: string): boolean {
  try {
    execFileSync("tmux", ["has-session", "-t", session], { stdio: "ignore" });
    return true;
  } catch {
    return false;
  }
}

function keys(session: string, ...k: string[]): void {
  execFileSync("tmux", ["send-keys", "-t", session, ...k]);
}

describe("ezipc chat in a terminal (tmux)", () => {
  it("asks for room and nickname, shows lines above what the user is typing, runs the commands", async () => {
    const tmp = tempDir();
    const { child: server, url } = await startChatServer("0", `sqlite:${path.join(tmp.dir, "chat.db")}`);
    const session = `ezipc-chat-${randomBytes(4).toString("hex")}`;
    let bob: ChatClient | undefined;
    try {
      const port = new URL(url).port;
      execFileSync("tmux", [
        "new-session",
        "-d",
        "-s",
        session,
        "-x",
        "100",
        "-y",
        "30",
        `NO_COLOR=1 ${process.execPath} ${cli} chat --port ${port}`,
      ]);
      await until(session, "the room question", (s) => s.includes("room:"));
      keys(session, "lobby", "Enter");
      await until(session, "the nickname question", (s) => s.includes("nickname:"));
      keys(session, "alice", "Enter");
      await until(session, "the welcome", (s) => s.includes("you are alice in lobby"));

      bob = await ChatClient.connect(url);
      await bob.hello("lobby", "bob");
      await until(session, "bob's arrival", (s) => s.includes("* bob joined"));
      keys(session, "-l", "half-typed");
      await until(session, "the half-typed input", (s) => s.includes("> half-typed"));
      await bob.say("hi alice");
      const s1 = await until(session, "bob's line", (s) => s.includes("bob: hi alice"));
      const rows = s1.trimEnd().split("\n");
      assert.equal(rows.at(-1), "> half-typed", "the incoming line went above the input, which is intact");
      const heard = new Promise<Line>((resolve) => bob!.on("line", (l) => l.kind === 0 && resolve(l)));
      keys(session, "-l", " message");
      keys(session, "Enter");
      assert.equal((await within(heard, 5_000, "alice's message")).text, "half-typed message");

      keys(session, "-l", "/who");
      keys(session, "Enter");
      await until(session, "the member list", (s) => s.includes("in the room: alice, bob"));
      const whisper = new Promise<Line>((resolve) => bob!.on("line", (l) => l.kind === 1 && resolve(l)));
      keys(session, "-l", "/w bob just between us");
      keys(session, "Enter");
      assert.equal((await within(whisper, 5_000, "the whisper")).text, "just between us");
      keys(session, "-l", "/bogus");
      keys(session, "Enter");
      await until(session, "the unknown-command help", (s) =>
        s.includes("unknown command /bogus: /help lists"),
      );
      keys(session, "-l", "/quit");
      keys(session, "Enter");
      await poll(
        "the client did not exit after /quit",
        () => (alive(session) ? undefined : true),
        () => screen(session),
      );
    } finally {
      await bob?.close();
      if (alive(session)) execFileSync("tmux", ["kill-session", "-t", session], { stdio: "ignore" });
      server.kill("SIGINT");
      await new Promise((r) => server.once("exit", r));
      tmp.cleanup();
    }
  });

  it("piped: no prompts or escape codes, no crash at the end of input; after a server restart the lines missed are shown once", async () => {
    const tmp = tempDir();
    const db = `sqlite:${path.join(tmp.dir, "chat.db")}`;
    const startServer = (port: string) => startChatServer(port, db);
    let server = await startServer("0");
    const port = new URL(server.url).port;
    const alice = spawn(process.execPath, [cli, "chat", "--port", port], {
      stdio: ["pipe", "pipe", "inherit"],
    });
    let out = "";
    alice.stdout!.on("data", (d: Buffer) => {
      out += d.toString();
    });
    const shows = (what: string, test: (o: string) => boolean) =>
      poll(
        what,
        () => (test(out) ? true : undefined),
        () => out,
      );
    let bob: ChatClient | undefined;
    try {
      alice.stdin!.write("lobby\nalice\nhello from a pipe\n");
      await shows("the welcome", (o) => o.includes("you are alice in lobby"));
      // The server dies and comes back on the same port and store; bob speaks before alice is back.
      server.child.kill("SIGKILL");
      await new Promise((r) => server.child.once("exit", r));
      server = await startServer(port);
      bob = await ChatClient.connect(server.url);
      await bob.hello("lobby", "bob");
      await bob.say("said while alice was away");
      await shows("alice back", (o) => o.includes("back in lobby as alice"));
      await shows("the missed line", (o) => o.includes("bob: said while alice was away"));
      await bob.say("said after");
      await shows("a live line", (o) => o.includes("bob: said after"));
      alice.stdin!.end(); // the end of input ends the client, without a crash
      const code = await within(ended(alice), 10_000, "alice to exit");
      assert.equal(code, 0, out);
      assert.equal(out.split("bob: said while alice was away").length, 2, "the missed line, once");
      assert.equal(out.split("connection lost; reconnecting").length, 2, "one notice for the outage");
      assert.ok(!out.includes("\u001b["), "no escape codes when stdout is not a terminal");
      assert.ok(!/room: |nickname: |^> /m.test(out), "no prompts when stdout is not a terminal");
      assert.ok(!out.includes("hello from a pipe\nhello from a pipe"), "own line not repeated");
    } finally {
      await bob?.close();
      if (alice.exitCode === null) alice.kill("SIGKILL");
      server.child.kill("SIGINT");
      await new Promise((r) => (server.child.exitCode !== null ? r(null) : server.child.once("exit", r)));
      tmp.cleanup();
    }
  });
});
