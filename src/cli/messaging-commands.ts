/**
 * The messaging subcommands: `pub`, `sub`, `req` and `reply`, against a hub or shared memory (`shm://`).
 */
import { type Command, InvalidArgumentError } from "commander";
import { escapeUnsafe } from "../protocol/names.js";
import type { SubscribeInit } from "../pubsub/subscription.js";
import {
  type Format,
  formatValue,
  hubUrlOption,
  messagingClient,
  nonNegativeInt,
  parseFormat,
  withMessaging,
} from "./hub-commands.js";

/** Adds pub, sub, req and reply to `program`. */
export function addMessagingCommands(program: Command, defaults: { tcp: string }): void {
  const urlOption = hubUrlOption(defaults.tcp);

  program
    .command("pub")
    .description("publish MESSAGE to TOPIC, or each line of stdin when MESSAGE is omitted")
    .argument("<topic>")
    .argument("[message]")
    .option(...urlOption)
    .option("-H, --header <key=value...>", "headers")
    .action(async (topic: string, message: string | undefined, o: { url: string; header?: string[] }) => {
      const headers: Record<string, string> = {};
      for (const h of o.header ?? []) {
        const i = h.indexOf("=");
        if (i <= 0) throw new InvalidArgumentError(`header ${h} is not key=value`);
        headers[h.slice(0, i)] = h.slice(i + 1);
      }
      await withMessaging(o.url, async (c) => {
        if (message !== undefined) {
          const r = await c.publish(topic, message, { headers });
          process.stdout.write(`${topic} seq ${r.seq}\n`);
          return;
        }
        const { createInterface } = await import("node:readline");
        let last = 0n;
        for await (const line of createInterface({ input: process.stdin })) {
          last = (await c.publish(topic, line, { headers })).seq;
        }
        process.stdout.write(`${topic} up to seq ${last}\n`);
      });
    });

  program
    .command("sub")
    .description("print messages of a topic or pattern (* one token, > the rest) until interrupted")
    .argument("<pattern>")
    .option(...urlOption)
    .option("--init <init>", "oldest, mostRecent, awaitNew, or a seq to start from", "awaitNew")
    .option("--iter <iter>", "next or newest", "next")
    .option("-n, --count <n>", "exit after n messages", nonNegativeInt)
    .option("-f, --format <format>", "auto, hex, utf8, json or base64", parseFormat, "auto" as Format)
    .action(
      async (
        pattern: string,
        o: { url: string; init: string; iter: string; count?: number; format: Format },
      ) => {
        let init: SubscribeInit;
        if (o.init === "oldest" || o.init === "mostRecent" || o.init === "awaitNew") init = o.init;
        else if (/^\d+$/.test(o.init)) init = { fromSeq: BigInt(o.init) };
        else throw new InvalidArgumentError("--init is oldest, mostRecent, awaitNew or a seq");
        if (o.iter !== "next" && o.iter !== "newest")
          throw new InvalidArgumentError("--iter is next or newest");
        const client = await messagingClient(o.url, `ezipc-sub:${process.pid}`);
        const sub = await client.subscribe(pattern, { init, iter: o.iter });
        sub.on("gap", (g) =>
          process.stderr.write(`(gap in ${g.topic}: ${g.first}..${g.last} were evicted)\n`),
        );
        const stop = async () => {
          sub.unsubscribe();
          await client.close();
          process.exit(0);
        };
        process.once("SIGINT", () => void stop());
        process.once("SIGTERM", () => void stop());
        let n = 0;
        for await (const m of sub) {
          process.stdout.write(`${m.topic} #${m.seq} ${formatValue("bytes", m.payload, o.format)}\n`);
          if (o.count !== undefined && ++n >= o.count) break;
        }
        await client.close();
      },
    );

  program
    .command("req")
    .description("send a request to whoever serves TOPIC and print the reply")
    .argument("<topic>")
    .argument("[message]", "request body", "")
    .option(...urlOption)
    .option("-t, --timeout <ms>", "give up after this long", nonNegativeInt, 10_000)
    .action(async (topic: string, message: string, o: { url: string; timeout: number }) => {
      const reply = await withMessaging(o.url, (c) => c.request(topic, message, { timeoutMs: o.timeout }));
      process.stdout.write(`${formatValue("bytes", reply.payload, "auto")}\n`);
    });

  program
    .command("reply")
    .description("a demo responder: serve TOPIC, answering each request with its own body")
    .argument("<topic>")
    .option(...urlOption)
    .action(async (topic: string, o: { url: string }) => {
      const client = await messagingClient(o.url, `ezipc-reply:${process.pid}`);
      await client.serve(topic, (req) => {
        process.stdout.write(`${escapeUnsafe(req.caller)}: ${formatValue("bytes", req.payload, "auto")}\n`);
        return req.payload;
      });
      process.stdout.write(`serving ${topic}\n`);
      const stop = async () => {
        await client.close();
        process.exit(0);
      };
      process.once("SIGINT", () => void stop());
      process.once("SIGTERM", () => void stop());
    });
}
