#!/usr/bin/env node
/**
 * The `ezipc` command line. Every subcommand has `--help`.
 */
import { readFileSync, realpathSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { Command } from "commander";
import { isEzipcError } from "../errors.js";
import { setLogger, stderrLogger } from "../log.js";
import { escapeUnsafe } from "../protocol/names.js";
import { loadOrCreateKeyFile, parsePublicKey } from "../security/keys.js";
import { dial, listen } from "../transport/registry.js";
import type { Listener } from "../transport/types.js";
import { addBenchCommand } from "./bench-command.js";
import { addChatCommands } from "./chat-commands.js";
import { addHubCommands, positiveInt } from "./hub-commands.js";
import { addMessagingCommands } from "./messaging-commands.js";

const pkg = JSON.parse(readFileSync(new URL("../../../package.json", import.meta.url), "utf8")) as {
  version: string;
};

/** Default addresses of the hub (and of the demo echo server). */
export const DEFAULT_TCP_URL = "tcp://127.0.0.1:7700";
/** Where `ezipc serve` also listens for browsers (WebSocket) unless told otherwise (`--ws`, `--no-ws`). */
export const DEFAULT_WS_URL = "ws://127.0.0.1:7701";
export const DEFAULT_UNIX_URL = `unix://${path.join(os.tmpdir(), "ezipc.sock")}`;

export function buildProgram(): Command {
  const program = new Command("ezipc")
    .description("Easy, robust, fast communication between processes.")
    .version(pkg.version, "-V, --version", "print the version")
    .option("-v, --verbose", "log connection events to stderr")
    .hook("preAction", (cmd) => {
      if (cmd.opts().verbose) setLogger(stderrLogger);
    });

  addHubCommands(program, { tcp: DEFAULT_TCP_URL, unix: DEFAULT_UNIX_URL, ws: DEFAULT_WS_URL });
  addMessagingCommands(program, { tcp: DEFAULT_TCP_URL });
  addChatCommands(program);
  addBenchCommand(program, { tcp: DEFAULT_TCP_URL });

  program
    .command("echo-server")
    .description("run a demo echo server: every frame received is sent back")
    .argument("[urls...]", "addresses to listen on", [DEFAULT_TCP_URL, DEFAULT_UNIX_URL])
    .action(async (urls: string[]) => {
      const listeners: Listener[] = [];
      for (const url of urls) {
        const l = await listen(url);
        l.on("connection", (conn) => {
          conn.on("message", (frame) => conn.send(frame));
        });
        listeners.push(l);
        process.stdout.write(`echo server listening on ${l.url}\n`);
      }
      const stop = async () => {
        await Promise.all(listeners.map((l) => l.close()));
        process.exit(0);
      };
      process.once("SIGINT", stop);
      process.once("SIGTERM", stop);
    });

  program
    .command("echo")
    .description("send messages to an echo server and print the replies with their round-trip time")
    .argument("<message>", "text to send")
    .option("-u, --url <url>", "server address", DEFAULT_TCP_URL)
    .option("-n, --count <n>", "how many times", positiveInt, 1)
    .action(async (message: string, opts: { url: string; count: number }) => {
      const conn = await dial(opts.url);
      const frames = conn[Symbol.asyncIterator]();
      for (let i = 0; i < opts.count; i++) {
        const t0 = process.hrtime.bigint();
        conn.send(Buffer.from(message, "utf8"));
        const r = await frames.next();
        if (r.done) throw new Error("connection closed before the reply");
        const us = Number(process.hrtime.bigint() - t0) / 1000;
        process.stdout.write(`${escapeUnsafe(r.value.toString("utf8"))}  (${us.toFixed(0)} µs)\n`);
      }
      await conn.close();
    });

  program
    .command("send")
    .description(
      "send each message as one frame to an address (any transport; udp:// sends datagrams), then close",
    )
    .argument("<url>", "where to send, e.g. udp://127.0.0.1:7703")
    .argument("<messages...>", "texts to send, one frame each")
    .option("--sequence", "udp://: number the datagrams (the receiver drops duplicates and late ones)")
    .option(
      "--hub-key <key>",
      "udp://: encrypt, to the listener holding this public key (base64; or EZIPC_HUB_KEY)",
    )
    .option("--token <secret>", "udp:// encrypted: the token the listener asks for (or EZIPC_TOKEN)")
    .action(
      async (
        url: string,
        messages: string[],
        opts: { sequence?: boolean; hubKey?: string; token?: string },
      ) => {
        const hubKey = opts.hubKey ?? process.env.EZIPC_HUB_KEY;
        const token = opts.token ?? process.env.EZIPC_TOKEN;
        const { secureDatagramDial } = await import("../security/datagrams.js");
        const secure = hubKey ? secureDatagramDial({ hubKey: parsePublicKey(hubKey), token }) : undefined;
        const conn = await dial(url, { udp: { sequence: opts.sequence ?? false, secure } });
        for (const m of messages) {
          if (!conn.send(Buffer.from(m, "utf8"))) await conn.drain();
        }
        await conn.close();
      },
    );

  program
    .command("listen")
    .description(
      "print every frame received at an address, one line each: the sender's address, then the text",
    )
    .argument("<url>", "where to listen, e.g. udp://127.0.0.1:7703")
    .option("--max-renters <n>", "udp://: most peer addresses at once", positiveInt, 1024)
    .option(
      "--key <file>",
      "udp://: accept only encrypted datagrams, with this key file (created if missing)",
    )
    .option("--token <secret>", "with --key: admit only peers that send this token")
    .action(async (url: string, opts: { maxRenters: number; key?: string; token?: string }) => {
      if (opts.token && !opts.key) throw new Error("--token needs --key");
      const staticKey = opts.key ? loadOrCreateKeyFile(opts.key) : undefined;
      const { secureDatagramListen } = await import("../security/datagrams.js");
      const secure = staticKey
        ? secureDatagramListen({
            staticKey,
            authorize: ({ publicKey, token }) =>
              opts.token === undefined || token === opts.token
                ? {
                    ok: true,
                    identity: { name: publicKey.toString("base64"), publicKey: publicKey.toString("base64") },
                  }
                : { ok: false, reason: "wrong or missing token" },
          })
        : undefined;
      const l = await listen(url, { udp: { maxRenters: opts.maxRenters, secure } });
      process.stdout.write(`listening on ${l.url}\n`);
      if (staticKey) process.stdout.write(`public key ${staticKey.publicKey.toString("base64")}\n`);
      l.on("connection", (conn) => {
        // What a peer sent, on one line, with nothing the terminal would act on (escape sequences).
        conn.on("message", (frame) =>
          process.stdout.write(`${conn.remoteUrl} ${escapeUnsafe(frame.toString("utf8"))}\n`),
        );
      });
      const stop = async () => {
        await l.close();
        process.exit(0);
      };
      process.once("SIGINT", stop);
      process.once("SIGTERM", stop);
    });

  return program;
}

const isMain =
  process.argv[1] !== undefined && realpathSync(process.argv[1]) === fileURLToPath(import.meta.url);
if (isMain) {
  // `ezipc ls | head`: a closed stdout is not an error.
  process.stdout.on("error", (err: NodeJS.ErrnoException) => {
    if (err.code === "EPIPE") process.exit(0);
    throw err;
  });
  buildProgram()
    .parseAsync()
    .catch((err: unknown) => {
      // One line, coded where ezipc raised it; never a class name or a stack.
      const text = isEzipcError(err)
        ? `${err.code}: ${err.message}`
        : err instanceof Error
          ? err.message
          : String(err);
      // (Escaped: a remote error's message is the peer's text.)
      process.stderr.write(`ezipc: ${escapeUnsafe(text.split("\n")[0]!)}\n`);
      process.exit(1);
    });
}
