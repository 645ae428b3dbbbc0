/**
 * Which clients a secure hub admits: a list of named clients, each known by its static public key, a
 * token, or both (then both must match). Tokens are compared in constant time.
 */
import { timingSafeEqual } from "node:crypto";
import { EzipcError } from "../errors.js";
import type { Verdict } from "./channel.js";
import { parsePublicKey } from "./keys.js";

/** One client a hub admits. */
export interface AllowedClient {
  /** How the hub knows it (logs, `ezipc ls`). */
  name: string;
  /** Its static public key (base64), proved by the handshake. */
  publicKey?: string;
  /** A shared secret it sends inside the encrypted handshake. */
  token?: string;
}

function sameSecret(a: string, b: string): boolean {
  const x = Buffer.from(a, "utf8");
  const y = Buffer.from(b, "utf8");
  return x.length === y.length && timingSafeEqual(x, y);
}

/**
 * The `authorize` of `secureListen` for an allow-list. With an empty list every client that completes the
 * handshake is admitted (encryption without client authentication), known by its public key.
 */
export function allowList(
  clients: readonly AllowedClient[],
): (c: { publicKey: Buffer; token: string | undefined }) => Verdict {
  const entries = clients.map((c) => {
    if (!c.publicKey && !c.token) {
      throw new EzipcError("EZIPC_AUTH", `allowed client ${c.name} has neither a publicKey nor a token`);
    }
    return { ...c, key: c.publicKey ? parsePublicKey(c.publicKey) : undefined };
  });
  return ({ publicKey, token }) => {
    const key = publicKey.toString("base64");
    if (entries.length === 0) return { ok: true, identity: { name: key, publicKey: key } };
    for (const e of entries) {
      if (e.key && !e.key.equals(publicKey)) continue;
      if (e.token !== undefined && (token === undefined || !sameSecret(e.token, token))) continue;
      return { ok: true, identity: { name: e.name, publicKey: key } };
    }
    return { ok: false, reason: "this client's key or token is not on the hub's list" };
  };
}
