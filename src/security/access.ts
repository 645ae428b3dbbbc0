/**
 * Which clients a secure hub admits: a list of named clients, each known by its static public key, a
 * token, or both (then both must match). Tokens are compared in constant time.
 */
import { timingSafeEqual } from "node:crypto";
import { readFileSync } from "node:fs";
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

/** What makes `p` no pattern (topic syntax: 1-255 printable ASCII, tokens split by `.`, `>` only last), or "". */
function patternFault(p: unknown): string {
  if (typeof p !== "string") return "not a text";
  if (!/^[\x21-\x7e]{1,255}$/.test(p)) return "1-255 printable ASCII characters without spaces";
  const tokens = p.split(".");
  if (tokens.includes("")) return "an empty token";
  if (tokens.indexOf(">") !== -1 && tokens.indexOf(">") !== tokens.length - 1)
    return "> must be the last token";
  return "";
}

/**
 * Throws `EZIPC_AUTH` unless `clients` is a list a hub can admit by, checked whole before the hub listens
 * (a list read from a file is JSON anyone may have edited): each entry an object with a `name` of its own
 * (names are how the hub tells clients and their permissions apart: two entries of one name would share the
 * permissions of one of them), a `publicKey` (base64 of 32 bytes), a non-empty `token` text, or both, and
 * an `allow` (if any) mapping known operations to lists of valid patterns.
 */
export function checkAllowedClients(clients: unknown): asserts clients is readonly AllowedClient[] {
  const fail = (what: string): never => {
    throw new EzipcError("EZIPC_AUTH", `allowed clients: ${what} (docs/security.md)`);
  };
  if (!Array.isArray(clients)) fail("not a list");
  const names = new Set<string>();
  (clients as unknown[]).forEach((c, i) => {
    if (typeof c !== "object" || c === null || Array.isArray(c)) fail(`entry ${i} is not an object`);
    const { name, publicKey, token, allow } = c as Record<string, unknown>;
    if (typeof name !== "string" || name === "") fail(`entry ${i} has no name`);
    const who = `client ${JSON.stringify(name)}`;
    if (names.has(name as string)) fail(`two entries are named ${JSON.stringify(name)}`);
    names.add(name as string);
    if (publicKey !== undefined) {
      if (typeof publicKey !== "string") fail(`${who}: publicKey is not a text`);
      try {
        parsePublicKey(publicKey as string);
      } catch (err) {
        fail(`${who}: ${(err as Error).message}`);
      }
    }
    if (token !== undefined && (typeof token !== "string" || token === "")) {
      fail(`${who}: token is not a non-empty text`);
    }
    if (publicKey === undefined && token === undefined) fail(`${who} has neither a publicKey nor a token`);
    if (allow === undefined) return;
    if (typeof allow !== "object" || allow === null || Array.isArray(allow)) {
      fail(`${who}: allow is not an object of operations`);
    }
    for (const [op, patterns] of Object.entries(allow as object)) {
      if (!(OPERATIONS as readonly string[]).includes(op)) {
        fail(`${who}: unknown operation ${op} (known: ${OPERATIONS.join(", ")})`);
      }
      if (!Array.isArray(patterns)) fail(`${who}: allow.${op} is not a list of patterns`);
      for (const p of patterns as unknown[]) {
        const why = patternFault(p);
        if (why) fail(`${who}: allow.${op}: ${JSON.stringify(p)} is not a pattern: ${why}`);
      }
    }
  });
}

/**
 * The allowed clients a JSON file lists (`ezipc serve --clients FILE`), checked
 * ({@link checkAllowedClients}); throws `EZIPC_AUTH` naming the file.
 */
export function readAllowedClientsFile(file: string): AllowedClient[] {
  let list: unknown;
  try {
    list = JSON.parse(readFileSync(file, "utf8"));
  } catch (err) {
    throw new EzipcError(
      "EZIPC_AUTH",
      `${file}: not a JSON file of allowed clients: ${(err as Error).message}`,
      {
        cause: err,
      },
    );
  }
  try {
    checkAllowedClients(list);
  } catch (err) {
    throw new EzipcError("EZIPC_AUTH", `${file}: ${(err as Error).message}`, { cause: err });
  }
  return list as AllowedClient[];
}

/** Checks operations against a client's permissions. */
export class AccessPolicy {
  private readonly byName = new Map<string, Permissions>();

  /** Throws `EZIPC_AUTH` unless `clients` passes {@link checkAllowedClients}. */
  constructor(clients: readonly AllowedClient[]) {
    checkAllowedClients(clients);
    for (const c of clients) if (c.allow) this.byName.set(c.name, c.allow);
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
  checkAllowedClients(clients);
  const entries = clients.map((c) => ({ ...c, key: c.publicKey ? parsePublicKey(c.publicKey) : undefined }));
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
