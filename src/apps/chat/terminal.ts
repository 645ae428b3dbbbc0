/**
 * The terminal chat client (`ezipc chat`): asks for a room and a nickname, then gives a line-editing prompt.
 * Incoming lines are printed above the input line without disturbing what the user is typing; timestamps,
 * and colours unless the output is not a terminal or NO_COLOR is set.
 */
import readline from "node:readline";
import { isEzipcError } from "../../errors.js";
import { ChatClient } from "./client.js";
import { KIND_JOIN, KIND_LEAVE, KIND_RENAME, KIND_WHISPER } from "./protocol.js";
import type { Line } from "./store.js";

export const HELP = `commands:
  /help              this help
  /nick NAME         change your nickname
  /w NAME TEXT       whisper to NAME (in your room)
  /who               who is in your room
  /rooms             the rooms and how many are in each
  /join ROOM         move to another room
  /quit              leave
anything else is said to your room`;

interface Io {
  input: NodeJS.ReadableStream;
  output: NodeJS.WritableStream & { isTTY?: boolean };
}

function paint(enabled: boolean) {
  const c = (code: number) => (s: string) => (enabled ? `\u001b[${code}m${s}\u001b[0m` : s);
  return { dim: c(2), bold: c(1), cyan: c(36), magenta: c(35), yellow: c(33), red: c(31) };
}

/** Runs the client until /quit or the input ends. Resolves with the exit code. */
export async function runTerminal(
  url: string,
  io: Io = { input: process.stdin, output: process.stdout },
): Promise<number> {
  const color = paint(Boolean(io.output.isTTY) && !process.env.NO_COLOR);
  const rl = readline.createInterface({
    input: io.input,
    output: io.output,
    terminal: Boolean(io.output.isTTY),
  });
  const ask = (q: string) => new Promise<string>((resolve) => rl.question(q, resolve));
  const time = (t: number) => new Date(t).toTimeString().slice(0, 5);
  const format = (l: Line): string => {
    const at = color.dim(time(l.time));
    switch (l.kind) {
      case KIND_WHISPER:
        return `${at} ${color.magenta(`${l.from} → ${l.to}`)}: ${l.text}`;
      case KIND_JOIN:
      case KIND_LEAVE:
      case KIND_RENAME:
        return `${at} ${color.yellow(`* ${l.text}`)}`;
      default:
        return `${at} ${color.cyan(l.from)}: ${l.text}`;
    }
  };
  /** Prints above the prompt, keeping what the user has typed. */
  const print = (text: string) => {
    readline.clearLine(io.output, 0);
    readline.cursorTo(io.output, 0);
    io.output.write(`${text}\n`);
    rl.prompt(true);
  };

  let client: ChatClient;
  try {
    client = await ChatClient.connect(url, { reconnect: { initialDelayMs: 200, maxDelayMs: 2_000 } });
  } catch (err) {
    io.output.write(`cannot reach the chat server at ${url}: ${(err as Error).message}\n`);
    rl.close();
    return 1;
  }
  // Room and nickname, asked until the server takes them.
  for (;;) {
    const room = (await ask("room: ")).trim();
    const nick = (await ask("nickname: ")).trim();
    try {
      const w = await client.hello(room, nick);
      io.output.write(`${color.bold(`you are ${w.nick} in ${w.room}`)} — /help for commands\n`);
      for (const l of w.history) io.output.write(`${format(l)}\n`);
      break;
    } catch (err) {
      io.output.write(`${color.red(isEzipcError(err) ? err.message : String(err))}; try again\n`);
    }
  }
  client.on("line", (l) => print(format(l)));
  client.on("disconnected", () => print(color.red("connection lost; reconnecting…")));
  client.on("rejoined", (w) => print(color.bold(`back in ${w.room} as ${w.nick}`)));
  rl.setPrompt("> ");
  rl.prompt();
  const run = async (input: string): Promise<boolean> => {
    const text = input.trim();
    if (text === "") return true;
    if (!text.startsWith("/")) {
      await client.say(text);
      print(format({ kind: 0, time: Date.now(), room: "", from: "you", to: "", text }));
      return true;
    }
    const [cmd, ...rest] = text.split(/\s+/);
    const arg = text.slice(cmd!.length).trim();
    switch (cmd) {
      case "/help":
        print(HELP);
        return true;
      case "/quit":
        return false;
      case "/nick":
        await client.nick(arg);
        print(color.bold(`you are now ${arg}`));
        return true;
      case "/w": {
        const [to] = rest;
        const message = arg.slice((to ?? "").length).trim();
        if (!to || !message) {
          print(color.red("usage: /w NAME TEXT"));
          return true;
        }
        await client.whisper(to, message);
        print(format({ kind: KIND_WHISPER, time: Date.now(), room: "", from: "you", to, text: message }));
        return true;
      }
      case "/who":
        print(`in the room: ${(await client.who()).join(", ")}`);
        return true;
      case "/rooms":
        print((await client.rooms()).map((r) => `${r.name} (${r.members})`).join(", ") || "no rooms");
        return true;
      case "/join": {
        const w = await client.join(arg);
        print(color.bold(`you are in ${w.room}`));
        for (const l of w.history) print(format(l));
        return true;
      }
      default:
        print(color.red(`unknown command ${cmd}: /help lists the commands`));
        return true;
    }
  };
  return new Promise<number>((resolve) => {
    let chain = Promise.resolve(true);
    rl.on("line", (input) => {
      chain = chain.then(async (go) => {
        if (!go) return false;
        try {
          const more = await run(input);
          if (!more) rl.close();
          return more;
        } catch (err) {
          print(color.red(isEzipcError(err) ? err.message : String(err)));
          return true;
        }
      });
    });
    rl.on("close", () => {
      void client.close().then(() => resolve(0));
    });
  });
}
