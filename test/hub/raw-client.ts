import assert from "node:assert/strict";
import { type Connection, type DialOptions, dial, HUB_PROTOCOL_VERSION } from "../../src/index.js";
import { hubProtocol } from "../../src/wire/hub-protocol.js";
import { within } from "../helpers.js";

/** The hub protocol, for tests that speak it by hand. */
export const proto = hubProtocol();

export type RawMessage = {
  type: string;
  body: { [k: string]: unknown; code?: string; message?: string; id?: number };
};

/** A raw hub connection that has said hello; messages are decoded. */
export async function rawClient(
  url: string,
  name = "raw",
  options: DialOptions = {},
): Promise<{ conn: Connection; next: () => Promise<RawMessage> }> {
  const conn = await dial(url, options);
  const queue: RawMessage[] = [];
  let wake: (() => void) | null = null;
  conn.on("message", (f) => {
    queue.push(proto.decode(f) as RawMessage);
    wake?.();
  });
  const next = async () => {
    while (queue.length === 0) await within(new Promise<void>((r) => (wake = r)), 5_000, "hub message");
    return queue.shift()!;
  };
  conn.send(proto.encode("hello", { protocol: HUB_PROTOCOL_VERSION, name, features: [] }));
  assert.equal((await next()).type, "welcome");
  return { conn, next };
}
