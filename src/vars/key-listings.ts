/**
 * What the hub answers about its keys: `list` (every match in one answer), `listPage` (a page at a time,
 * listing-pages.ts) and the monitor view's list. Each shows only the keys the asking client may watch, with
 * their holders.
 *
 * A listing costs what its answer holds: each key and each of its holders (10,000 keys held by 50 clients
 * are 510,000 entries, not 10,000). It is charged to the hub's budget (listing-budget.ts) for the entries
 * it builds, and a fraction of those it only counts; an answer over one frame is refused before it is built
 * (measured: building and encoding 23 MB of holders held the hub from every other client for 0.7–1.4 s,
 * to fail at the end). The monitor view shows at most {@link VIEW_HOLDERS} holders a key.
 */
import type { Infer } from "../codec/schema.js";
import { EzipcError } from "../errors.js";
import type { ListingBudget } from "../listing-budget.js";
import { listingTooLarge } from "../listing-budget.js";
import { ANSWER_HEAD_BYTES, firstByName, listingPage } from "../listing-pages.js";
import type { KeyView } from "../protocol/core-messages.js";
import type { Block } from "./block-table.js";
import { GlobMatcher } from "./glob.js";
import type { Holding, VarsPeer } from "./vars-holdings.js";
import { KIND_JSON, STATE_GRACE, STATE_LIVE, type varsMessages } from "./vars-messages.js";

/** A key as `listing` and `listingPage` carry it. */
export type ListedKey = Infer<typeof varsMessages.listing>["keys"][number];

/**
 * Most holders a key shows in the monitor view (a key held by every process of a fleet would otherwise make
 * the view as large as all their pointers); `moreHolders` counts the others.
 */
export const VIEW_HOLDERS = 50;

/** Bytes of a listed key besides its name (its length, kind, size, version, refcount, flags, holder count), at most. */
const LISTED_KEY_BYTES = 24;
/** Bytes of a listed holder besides its client's name (its length, `#` and id, counts), at most. */
const LISTED_HOLDER_BYTES = 21;

/** Steps a listing's glob may take besides {@link MATCH_STEPS_PER_CHAR} per character of the keys it walks. */
const MATCH_STEPS_BASE = 100_000;
/** Steps per character of a walked key a listing's glob may take (a plain pattern takes one or two). */
const MATCH_STEPS_PER_CHAR = 4;

/**
 * The glob of a listing (glob.ts), refused with `EZIPC_BAD_REQUEST` as soon as matching it costs many times
 * what reading the keys it walks would: a star followed by a long run that nearly matches (`*aaa…ab`) costs
 * up to key length × that run per key (65,000 steps for a 255-character key), and the hub lists for everyone.
 */
export function listingGlob(pattern: string): (key: string) => boolean {
  const g = new GlobMatcher(pattern);
  return (key) => {
    const matched = g.matches(key);
    if (g.steps > MATCH_STEPS_BASE + MATCH_STEPS_PER_CHAR * g.chars) {
      throw new EzipcError(
        "EZIPC_BAD_REQUEST",
        `list: the pattern ${JSON.stringify(pattern.length > 64 ? `${pattern.slice(0, 64)}…` : pattern)} takes too many steps to match (${g.steps} for ${g.chars} characters of keys); use fewer * in it`,
      );
    }
    return matched;
  };
}

/** What the listings read from the hub's shared variables. */
export interface KeySource {
  /** Every key. */
  blocks(): Iterable<Block>;
  /** How many keys there are. */
  readonly keyCount: number;
  /** Whether the asking client may watch `key` (listings show only those). */
  mayList(key: string): boolean;
  holdersOf(b: Block): ReadonlyMap<VarsPeer, Holding> | undefined;
  readonly listings: ListingBudget;
  readonly maxFrameBytes: number;
}

/** The bytes `b` takes in an answer, with its holders, at most. */
function keyBytes(b: Block, src: KeySource): number {
  let bytes = LISTED_KEY_BYTES + b.key.length;
  for (const c of src.holdersOf(b)?.keys() ?? []) bytes += LISTED_HOLDER_BYTES + c.name.length;
  return bytes;
}

function listed(b: Block, src: KeySource): ListedKey {
  const holders = [];
  for (const [c, h] of src.holdersOf(b) ?? []) {
    holders.push({ client: `${c.name}#${c.id.slice(0, 6)}`, counts: [...h.counts] });
  }
  return {
    key: b.key,
    kind: b.kind,
    size: b.data.length,
    version: BigInt(b.version),
    refcount: b.refcount,
    persistent: b.persistent,
    state: b.refcount === 0 && !b.persistent ? STATE_GRACE : STATE_LIVE,
    holders,
  };
}

const byKey = (b: Block) => b.key;

/**
 * Every key matching `match` the client may watch, in key order. Throws `EZIPC_TOO_MANY_REQUESTS` (the
 * budget) or `EZIPC_MESSAGE_TOO_LARGE` (over one frame: found before anything is built).
 */
export function listKeys(src: KeySource, match: (key: string) => boolean): ListedKey[] {
  src.listings.check("list");
  const found: Block[] = [];
  let holders = 0;
  let bytes = ANSWER_HEAD_BYTES;
  for (const b of src.blocks()) {
    if (!match(b.key) || !src.mayList(b.key)) continue;
    found.push(b);
    holders += src.holdersOf(b)?.size ?? 0;
    bytes += keyBytes(b, src);
  }
  // Counting is charged in full for the keys (as topics are), a fraction for the holders; building, in full.
  src.listings.charge(src.keyCount + Math.ceil(holders / 8));
  if (bytes > src.maxFrameBytes) {
    throw listingTooLarge("list", found.length + holders, bytes, src.maxFrameBytes);
  }
  src.listings.charge(holders);
  return firstByName(found, found.length, byKey).map((b) => listed(b, src));
}

/**
 * The keys matching `match` the client may watch whose names sort after `after` ("": from the first), in key
 * order, as many as a page holds (at least one, whatever its holders); `more` if others follow. Throws
 * `EZIPC_TOO_MANY_REQUESTS`.
 */
export function keysPage(
  src: KeySource,
  match: (key: string) => boolean,
  after: string,
  maxBytes: number,
): { keys: ListedKey[]; more: boolean } {
  const page = listingPage(
    {
      items: src.blocks(),
      keep: (b) => match(b.key) && src.mayList(b.key),
      name: byKey,
      bytesOf: (b) => keyBytes(b, src),
      entriesOf: (b) => 1 + (src.holdersOf(b)?.size ?? 0),
      build: (b) => listed(b, src),
      listings: src.listings,
      what: "list",
      maxFrameBytes: src.maxFrameBytes,
    },
    after,
    maxBytes,
  );
  return { keys: page.entries, more: page.more };
}

/**
 * The first `limit` keys by name matching `match` the client may watch (the monitor view), each with at
 * most {@link VIEW_HOLDERS} holders, and how many more keys there were.
 */
export function describeKeys(
  src: KeySource,
  match: (key: string) => boolean,
  limit: number,
  now: number,
  graceMs: number,
): { keys: KeyView[]; more: number } {
  const found: Block[] = [];
  for (const b of src.blocks()) if (match(b.key) && src.mayList(b.key)) found.push(b);
  const keys = firstByName(found, limit, byKey).map((b): KeyView => {
    const holders = [];
    const of = src.holdersOf(b);
    for (const [c, h] of of ?? []) {
      if (holders.length === VIEW_HOLDERS) break;
      holders.push({
        client: `${c.name}#${c.id.slice(0, 6)}`,
        request: h.counts[0],
        lazy: h.counts[1],
        poll: h.counts[2],
      });
    }
    const json = b.kind === KIND_JSON && b.data.length <= 1024 ? b.data.toString("utf8") : null;
    return {
      key: b.key,
      kind: b.kind === KIND_JSON ? "json" : "bytes",
      size: b.data.length,
      version: b.version,
      refcount: b.refcount,
      persistent: b.persistent,
      holders,
      moreHolders: (of?.size ?? 0) - holders.length,
      graceLeftMs:
        b.refcount === 0 && !b.persistent && b.graceSince > 0
          ? Math.max(0, b.graceSince + graceMs - now)
          : null,
      hex: b.data.subarray(0, 64).toString("hex"),
      json: json ?? jsonText(b.data),
    };
  });
  return { keys, more: found.length - keys.length };
}

/** `data` as JSON text if it is a short UTF-8 JSON document (as a dashboard shows it), else null. */
function jsonText(data: Buffer): string | null {
  if (data.length === 0 || data.length > 1024) return null;
  const first = data[0]!;
  // Only objects, arrays and strings: a few bytes that happen to parse as a number are not worth showing.
  if (first !== 0x7b && first !== 0x5b && first !== 0x22) return null;
  try {
    const text = new TextDecoder("utf-8", { fatal: true }).decode(data);
    JSON.parse(text);
    return text;
  } catch {
    return null;
  }
}
