// `ezipc chat-server` in a child process, for the tests that need the real CLI.
import { type ChildProcess, spawn } from "node:child_process";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";
import { within } from "../helpers.js";

const cli = fileURLToPath(new URL("../../src/cli/main.js", import.meta.url));

/**
 * `ezipc chat-server` on `port` (0: any) and the SQLite store `db`; resolves with it and its URL once it
 * listens. With `under`, it runs under that command (e.g. strace making its syncs slow): the child is that
 * command.
 */
export async function startChatServer(
  port: string,
  db: string,
  under: string[] = [],
): Promise<{ child: ChildProcess; url: string }> {
  const argv = [cli, "chat-server", "--port", port, "--db", db];
  const child =
    under.length > 0
      ? spawn(under[0]!, [...under.slice(1), process.execPath, ...argv], {
          stdio: ["ignore", "pipe", "inherit"],
        })
      : spawn(process.execPath, argv, { stdio: ["ignore", "pipe", "inherit"] });
  const url = await within(
    new Promise<string>((resolve) => {
      createInterface({ input: child.stdout! }).on("line", (l) => {
        const m = /listening on (\S+)/.exec(l);
        if (m) resolve(m[1]!);
      });
    }),
    15_000,
    "the chat server",
  );
  return { child, url };
}
