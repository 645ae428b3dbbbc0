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
  const tty = Boolean(io.output.isTTY);
  const color = paint(tty && !process.env.NO_COLOR);
  const rl = readline.createInterface({ input: io.input, output: io.output, terminal: tty });
  // Input lines, whether typed or piped: read in order by ask() and the main loop; null once input ends.
  const lines: string[] = [];
  let inputEnded = false;
  let wake: (() => void) | null = null;
  rl.on("line", (l) => {
    lines.push(l);
    wake?.();
  });
  rl.on("close", () => {
    inputEnded = true;
    wake?.();
  });
  rl.on("SIGINT", () => rl.close()); // Ctrl-C leaves like /quit
  const nextLine = async (prompt: string): Promise<string | null> => {
    if (tty && !inputEnded) {
      rl.setPrompt(prompt);
      rl.prompt();
    }
    while (lines.length === 0 && !inputEnded) {
      await new Promise<void>((r) => {
        wake = r;
      });
      wake = null;
    }
    return lines.shift() ?? null;
  };
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
  /** Prints above the prompt, keeping what the user has typed (on a terminal); a plain line otherwise. */
  const print = (text: string) => {
    if (!tty) {
      io.output.write(`${text}\n`);
      return;
    }
    readline.clearLine(io.output, 0);
    readline.cursorTo(io.output, 0);
    io.output.write(`${text}\n`);
    if (!inputEnded) rl.prompt(true);
  };

  let client: ChatClient;
  try {
    client = await ChatClient.connect(url, { reconnect: { initialDelayMs: 200, maxDelayMs: 2_000 } });
  } catch (err) {
    io.output.write(`cannot reach the chat server at ${url}: ${(err as Error).message}\n`);
    rl.close();
    return 1;
  }
  /** The last line shown from the server, and what this client said since (for what a reconnect missed). */
  let lastShown: Line | null = null;
  const saidSince: string[] = [];
  const show = (l: Line) => {
    lastShown = l;
    saidSince.length = 0;
    print(format(l));
  };
  // Room and nickname, asked until the server takes them: a taken or invalid nickname asks for it alone.
  let room: string | null = null;
  let me = "";
  for (;;) {
    room ??= (await nextLine("room: "))?.trim() ?? null;
    const nick = room === null ? null : (await nextLine("nickname: "))?.trim();
    if (room === null || nick === null || nick === undefined) {
      await client.close();
      rl.close();
      return 0;
    }
    try {
      const w = await client.hello(room, nick);
      me = w.nick;
      print(`${color.bold(`you are ${w.nick} in ${w.room}`)} — /help for commands`);
      for (const l of w.history) show(l);
      break;
    } catch (err) {
      const message = isEzipcError(err) ? err.message : String(err);
      print(`${color.red(message)}; try again`);
      if (/^a room/.test(message)) room = null;
    }
  }
  let quitting = false;
  let outage = false;
  client.on("line", (l) => show(l));
  client.on("disconnected", () => {
    if (quitting || outage) return; // once per outage, and nothing while leaving
    outage = true;
    print(color.red("connection lost; reconnecting…"));
  });
  client.on("rejoined", (w) => {
    outage = false;
    me = w.nick;
    print(color.bold(`back in ${w.room} as ${w.nick}`));
    // What was said while away: the history after the last line shown, without this client's own lines.
    const last = lastShown;
    let from = 0;
    if (last) {
      const i = w.history.findIndex(
        (l) => l.time === last.time && l.from === last.from && l.text === last.text && l.kind === last.kind,
      );
      from = i >= 0 ? i + 1 : w.history.findIndex((l) => l.time > last.time);
      if (from < 0) from = w.history.length;
    }
    for (const l of w.history.slice(from)) {
      const own = l.from === me;
      if (own && (l.kind === KIND_JOIN || l.kind === KIND_LEAVE)) continue;
      const mine = own ? saidSince.indexOf(l.text) : -1;
      if (mine >= 0) {
        saidSince.splice(mine, 1); // shown when it was said
        continue;
      }
      show(l);
    }
  });
  const run = async (input: string): Promise<boolean> => {
    const text = input.trim();
    if (text === "") return true;
    if (!text.startsWith("/")) {
      await client.say(text);
      saidSince.push(text);
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
        me = arg;
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
        saidSince.push(message);
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
        for (const l of w.history) show(l);
        return true;
      }
      default:
        print(color.red(`unknown command ${cmd}: /help lists the commands`));
        return true;
    }
  };
  for (;;) {
    const input = await nextLine("> ");
    if (input === null) break;
    try {
      if (!(await run(input))) break;
    } catch (err) {
      print(color.red(isEzipcError(err) ? err.message : String(err)));
    }
  }
  quitting = true;
  rl.close();
  await client.close();
  return 0;
}
