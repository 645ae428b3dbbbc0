/**
 * Which clients a secure hub admits: a list of named clients, each known by its static public key, a
 * token, or both (then both must match). Tokens are compared in constant time.
 */
import { timingSafeEqual } from "node:crypto";
import { EzipcError } from "../errors.js";
import type { Verdict } from "./channel.js";
import { parsePublicKey } from "./keys.js";

/** What a client may do, each on keys or topics matching one of its patterns. */
export const OPERATIONS = [
  "allocate",
  "watch",
  "write",
  "publish",
  "subscribe",
  "serve",
  "request",
  "deadman",
  "monitor",
] as const;
export type Operation = (typeof OPERATIONS)[number];

/**
 * Per-operation patterns in the topic syntax, applied to keys as to topics: tokens separated by `.`, `*`
 * for exactly one token, a final `>` for one or more. An operation not listed is denied.
 */
export type Permissions = Partial<Record<Operation, readonly string[]>>;

/** One client a hub admits. */
export interface AllowedClient {
  /** How the hub knows it (logs, `ezipc ls`). */
  name: string;
  /** Its static public key (base64), proved by the handshake. */
  publicKey?: string;
  /** A shared secret it sends inside the encrypted handshake. */
  token?: string;
  /** What it may do. Absent: everything. */
  allow?: Permissions;
}

function tokensCover(allowed: readonly string[], requested: readonly string[]): boolean {
  for (let i = 0; i < allowed.length; i++) {
    const a = allowed[i]!;
    if (a === ">") return requested.length > i;
    if (i >= requested.length) return false;
    const r = requested[i]!;
    if (a === "*") {
      if (r === ">") return false;
      continue;
    }
    if (a !== r) return false;
  }
  return requested.length === allowed.length;
}

/**
 * Whether `allowed` covers `requested`: every key or topic `requested` can name (itself, if it has no
 * wildcard) is matched by `allowed`.
 */
export function patternCovers(allowed: string, requested: string): boolean {
  return tokensCover(allowed.split("."), requested.split("."));
}

/** Checks operations against a client's permissions. */
export class AccessPolicy {
  private readonly byName = new Map<string, Permissions>();

  constructor(clients: readonly AllowedClient[]) {
    for (const c of clients) {
      if (!c.allow) continue;
      for (const op of Object.keys(c.allow)) {
        if (!(OPERATIONS as readonly string[]).includes(op)) {
          throw new EzipcError(
            "EZIPC_AUTH",
            `client ${c.name}: unknown operation ${op} (known: ${OPERATIONS.join(", ")})`,
          );
        }
      }
      this.byName.set(c.name, c.allow);
    }
  }

  /** Whether the client known as `name` (null: an unauthenticated or unlisted client) may `op` `subject`. */
  permits(name: string | null, op: Operation, subject: string): boolean {
    const perms = name === null ? undefined : this.byName.get(name);
    if (!perms) return true;
    return (perms[op] ?? []).some((p) => patternCovers(p, subject));
  }

  /** Throws `EZIPC_PERMISSION_DENIED` unless {@link permits}. */
  check(name: string | null, op: Operation, subject: string): void {
    if (!this.permits(name, op, subject)) {
      throw new EzipcError("EZIPC_PERMISSION_DENIED", `${name} may not ${op} ${subject}`);
    }
  }
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
