/**
 * `ezipc chat-server` and `ezipc chat` (docs/chat.md).
 */
import { mkdirSync } from "node:fs";
import path from "node:path";
import { type Command, InvalidArgumentError } from "commander";

function port(v: string): number {
  const n = Number(v);
  if (!Number.isInteger(n) || n < 0 || n > 65535) throw new InvalidArgumentError("expected a port (0-65535)");
  return n;
}

/** `--db`: checked before anything is created. */
function dbUrl(v: string): string {
  if (/^sqlite:.+/.test(v)) return v;
  if (/^mysql:\/\/[^/]+\/[^/]+$/.test(v)) return v;
  throw new InvalidArgumentError("expected sqlite:PATH or mysql://user:pass@host/db");
}

/** `--time-zone`: an IANA name this system knows. */
function timeZone(v: string): string {
  try {
    new Intl.DateTimeFormat("en-CA", { timeZone: v });
    return v;
  } catch {
    throw new InvalidArgumentError("expected an IANA time zone, e.g. Europe/Paris or UTC");
  }
}

function hostUrl(host: string, p: number): string {
  return `tcp://${host.includes(":") ? `[${host}]` : host}:${p}`;
}

export function addChatCommands(program: Command): void {
  program
    .command("chat-server")
    .description("run the chat server: rooms, unique nicknames, whispers, today's history")
    .option("--host <host>", "address to listen on", "127.0.0.1")
    .option("--port <port>", "port", port, 9993)
    .option("--db <url>", "sqlite:PATH or mysql://user:pass@host/db", dbUrl, "sqlite:./data/chat.db")
    .option("--time-zone <tz>", "the time zone whose day the history covers (IANA name)", timeZone)
    .action(async (o: { host: string; port: number; db: string; timeZone?: string }) => {
      if (o.db.startsWith("sqlite:"))
        mkdirSync(path.dirname(o.db.slice("sqlite:".length)), { recursive: true });
      // The chat app and its database drivers load only for these commands, not for every `ezipc` command.
      const { ChatServer } = await import("../apps/chat/server.js");
      const { openChatStore } = await import("../apps/chat/store.js");
      const server = new ChatServer({ store: openChatStore(o.db), timeZone: o.timeZone });
      const url = await server.listen(hostUrl(o.host, o.port));
      process.stdout.write(`chat server listening on ${url} (store ${o.db.replace(/:[^:@/]*@/, ":***@")})\n`);
      const stop = async (signal: string) => {
        process.stdout.write(`${signal}: closing\n`);
        await server.close();
        process.exit(0);
      };
      process.once("SIGINT", () => void stop("SIGINT"));
      process.once("SIGTERM", () => void stop("SIGTERM"));
    });

  program
    .command("chat")
    .description("the terminal chat client")
    .option("--host <host>", "chat server address", "127.0.0.1")
    .option("--port <port>", "port", port, 9993)
    .action(async (o: { host: string; port: number }) => {
      const { runTerminal } = await import("../apps/chat/terminal.js");
      process.exit(await runTerminal(hostUrl(o.host, o.port)));
    });
}
