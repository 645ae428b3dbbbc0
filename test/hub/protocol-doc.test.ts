// docs/protocol.md and docs/security.md are the spec a client in another language is written from. These
// tests read the numbers out of the docs (message indexes, the protocol version, the Noise prologue) and
// speak to a real hub with them, so the docs and the code cannot drift apart.
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import net from "node:net";
import { describe, it } from "node:test";
import { HUB_PROTOCOL_VERSION, Hub } from "../../src/index.js";
import { HUB_FEATURES } from "../../src/protocol/core-messages.js";
import { hubMessages } from "../../src/wire/hub-protocol.js";
import { within } from "../helpers.js";
import { proto } from "./raw-client.js";

const doc = (name: string) => readFileSync(new URL(`../../../docs/${name}`, import.meta.url), "utf8");

/** `| index | \`name\` | direction | …` rows of the protocol's message table. */
function documentedMessages(text: string): Map<string, { index: number; direction: string }> {
  const out = new Map<string, { index: number; direction: string }>();
  for (const m of text.matchAll(/^\|\s*(\d+)\s*\|\s*`(\w+)`\s*\|\s*(c→h|h→c|both)\s*\|/gm)) {
    out.set(m[2]!, { index: Number(m[1]), direction: m[3]! });
  }
  return out;
}

describe("docs/protocol.md matches the hub", () => {
  const text = doc("protocol.md");
  const messages = documentedMessages(text);

  it("lists every message at the index the code uses", () => {
    const names = Object.keys(hubMessages);
    assert.equal(messages.size, names.length, "one row per message");
    for (const [index, name] of names.entries()) {
      assert.equal(messages.get(name)?.index, index, `${name}'s index`);
    }
  });

  it("states the protocol version the hub speaks, in the hello row and in the handshake", () => {
    const inRow = /`hello`[^\n]*`protocol: u16` \((\d+)\)/.exec(text);
    const inHandshake = /first frame is `hello` with `protocol = (\d+)`/.exec(text);
    assert.equal(Number(inRow?.[1]), HUB_PROTOCOL_VERSION);
    assert.equal(Number(inHandshake?.[1]), HUB_PROTOCOL_VERSION);
    assert.match(text, new RegExp(`## The hub protocol \\(version ${HUB_PROTOCOL_VERSION}\\)`));
    for (const f of HUB_FEATURES) assert.match(text, new RegExp(`\`${f}\` \\(`), `feature ${f} documented`);
  });

  it("a handshake built from the doc's numbers alone gets a welcome from a real hub", async () => {
    const hub = await Hub.listen({ urls: ["tcp://127.0.0.1:0"] });
    try {
      const version = Number(/first frame is `hello` with `protocol = (\d+)`/.exec(text)![1]);
      // hello by hand: u16 LE index, then the schema body (u16 version, LEB128-length strings, an optional
      // as a presence byte, an array as a LEB128 count).
      const name = Buffer.from("doc", "utf8");
      const body = Buffer.concat([
        u16(messages.get("hello")!.index),
        u16(version),
        Buffer.from([name.length]),
        name,
        Buffer.from([0]), // resume: absent
        Buffer.from([0]), // features: none (a minimal client)
      ]);
      const port = Number(new URL(hub.urls[0]!).port);
      const sock = net.connect(port, "127.0.0.1");
      const header = Buffer.alloc(4);
      header.writeUInt32BE(body.length);
      sock.write(Buffer.concat([header, body]));
      const reply = await within(
        new Promise<Buffer>((resolve) => {
          let got = Buffer.alloc(0);
          sock.on("data", (d: Buffer) => {
            got = Buffer.concat([got, d]);
            if (got.length >= 4 && got.length >= 4 + got.readUInt32BE(0)) resolve(got);
          });
        }),
        5_000,
        "welcome",
      );
      const frame = reply.subarray(4, 4 + reply.readUInt32BE(0));
      assert.equal(frame.readUInt16LE(0), messages.get("welcome")!.index);
      const welcome = proto.decode(frame) as { type: string; body: { protocol: number; features: string[] } };
      assert.equal(welcome.type, "welcome");
      assert.equal(welcome.body.protocol, version);
      sock.destroy();
    } finally {
      await hub.close();
    }
  });
});

describe("docs/security.md matches the secure channel", () => {
  it("states the Noise prologue as the bytes the code uses", () => {
    const text = doc("security.md");
    const hex = /hex\s+`([0-9a-f ]+) 01` \(XX, ChaChaPoly\)/.exec(text)?.[1];
    assert.ok(hex, "the prologue's hex is in the doc");
    assert.equal(Buffer.from(hex.replaceAll(" ", ""), "hex").toString("ascii"), "ezipc-noise/1");
    const source = readFileSync(new URL("../../../src/security/handshake.ts", import.meta.url), "utf8");
    assert.match(source, /const PROLOGUE = Buffer\.from\("ezipc-noise\/1", "ascii"\)/);
  });
});

function u16(n: number): Buffer {
  const b = Buffer.alloc(2);
  b.writeUInt16LE(n);
  return b;
}
