// Every message a client may send, with random values that its schema admits (names valid and not, ids
// that exist and not, sizes at and past limits): the hub answers each with a reply or a coded error, and
// never fails in a handler. A handler that throws something unexpected closes the sender's connection with
// "hub failed on …" — how a listing of 100 topics (a codec bug) and a publish near the frame limit were
// found. Seeded, bounded in count.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import type { SchemaType } from "../../src/codec/schema.js";
import { CLIENT_MESSAGES } from "../../src/hub/admission.js";
import { type CloseInfo, dial, HUB_PROTOCOL_VERSION, type LogRecord, setLogger } from "../../src/index.js";
import { hubMessages } from "../../src/wire/hub-protocol.js";
import { seededRandom } from "../helpers.js";
import { withHub } from "./hubs.js";
import { proto } from "./raw-client.js";

type AnySchema = SchemaType<unknown> & {
  maxBytes?: number;
  maxLength?: number;
  length?: number;
  element?: AnySchema;
  fields?: Record<string, AnySchema>;
};

const NAMES = [
  "a",
  "a.b",
  "t",
  "k",
  "svc",
  "$hub.topics",
  "$x",
  "*",
  ">",
  "a.*",
  "a.>",
  "",
  " ",
  "é",
  "a..b",
];

/** A random value of schema `s` (within what the schema encodes; the hub judges the rest). */
function randomValue(s: AnySchema, random: () => number, depth = 0): unknown {
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(random() * xs.length)]!;
  switch (s.kind) {
    case "u8":
      return pick([0, 1, 2, 3, 5, 255, Math.floor(random() * 256)]);
    case "u16":
      return pick([0, 1, 65_535]);
    case "u32":
      return pick([0, 1, 2, 3, 7, 1_000, 65_536, 0xffffffff, Math.floor(random() * 2 ** 32)]);
    case "f64":
      return pick([0, 1, -1, 1e300, Number.NaN, Number.POSITIVE_INFINITY, 0.5]);
    case "u64":
      return pick([0n, 1n, 2n, 2n ** 64n - 1n, 2n ** 53n, BigInt(Math.floor(random() * 1000))]);
    case "bool":
      return random() < 0.5;
    case "string": {
      const v = pick([...NAMES, "x".repeat(255), "x".repeat(300)]);
      return Buffer.byteLength(v) > (s.maxBytes ?? 0) ? "a" : v;
    }
    case "bytes":
      return Buffer.alloc(
        Math.min(pick([0, 1, 4, 8, 100, 5_000]), s.maxBytes ?? 0),
        Math.floor(random() * 256),
      );
    case "array": {
      const n = depth > 2 ? 0 : pick([0, 1, 2, 5]);
      return Array.from({ length: Math.min(n, s.maxLength ?? 0) }, () =>
        randomValue(s.element!, random, depth + 1),
      );
    }
    case "fixedArray":
      return Array.from({ length: s.length! }, () => randomValue(s.element!, random, depth + 1));
    case "optional":
      return random() < 0.5 ? undefined : randomValue(s.element!, random, depth + 1);
    case "struct":
      return Object.fromEntries(
        Object.entries(s.fields!).map(([k, f]) => [k, randomValue(f, random, depth + 1)]),
      );
    default:
      throw new Error(`no generator for ${s.kind}`);
  }
}

describe("the hub under random messages", () => {
  it("answers every message a client may send, whatever its values, and never fails in a handler", async () => {
    const random = seededRandom(45);
    const types = Object.keys(CLIENT_MESSAGES) as (keyof typeof hubMessages)[];
    const failures: string[] = [];
    const previous = setLogger((r: LogRecord) => {
      if (r.level === "error") failures.push(`${r.message}: ${String(r.fields?.type ?? "")}`);
    });
    try {
      await withHub({ heartbeatIntervalMs: 0 }, async (_hub, url) => {
        const closes: string[] = [];
        let sent = 0;
        for (let c = 0; c < 80; c++) {
          const conn = await dial(url);
          conn.on("message", () => {});
          const closed = conn.closed.then((info: CloseInfo) => {
            if (info.reason !== "") closes.push(info.reason);
          });
          conn.send(
            proto.encode("hello", {
              protocol: HUB_PROTOCOL_VERSION,
              name: `fuzz${c}`,
              features: random() < 0.5 ? ["flow"] : [],
            }),
          );
          for (let i = 0; i < 40 && conn.state === "open"; i++) {
            const type = types[Math.floor(random() * types.length)]!;
            conn.send(proto.encode(type, randomValue(hubMessages[type] as AnySchema, random)));
            sent++;
            if (i % 8 === 7) await new Promise((r) => setImmediate(r));
          }
          await conn.close();
          await closed;
        }
        assert.ok(sent > 3_000, `${sent} messages sent`);
        assert.deepEqual(
          closes.filter((r) => r.includes("hub failed on")),
          [],
          "no handler failed",
        );
      });
    } finally {
      setLogger(previous);
    }
    assert.deepEqual(failures, [], "nothing logged as an error");
  });
});
