/**
 * Listings a page at a time (`topicsPage`, `listPage`, feature "pages"): any number of topics or keys, each
 * answer a bounded frame and a bounded turn of the hub's event loop.
 *
 * The hub keeps nothing between pages: a page names where the last one ended (`after`, a name), and the
 * next holds the names after it, in order. A page walks the names once, picks the first of those after the
 * cursor without sorting them all (a selection: linear in the names, with a random pivot so that no order
 * of names makes it quadratic), and sorts only those. What is created or removed between two pages shows or
 * not as it happens; no entry that lives throughout is listed twice or left out.
 */

import { isEzipcError } from "./errors.js";

/** Most entries one page holds. */
export const PAGE_ENTRIES = 10_000;

/**
 * Bytes of answer one page holds at most (an entry larger than this, a key with thousands of holders, goes
 * in a page of its own). Building and encoding a MiB of entries takes the hub a few tens of ms.
 */
export const PAGE_BYTES = 1024 * 1024;

/** Bytes of an answer before its entries (index, rid, count, flag), at most. */
export const ANSWER_HEAD_BYTES = 16;

/** Entries a listing only compares with its cursor or pattern, per entry charged (a 30th of building one). */
const LOOKS_PER_ENTRY = 32;

/** What one page of a listing is made from (the topics' or the keys'). */
export interface PageSource<T, E> {
  /** Every candidate, in no order (each one counts as walked). */
  items: Iterable<T>;
  /** Whether a candidate after the cursor is listed (the pattern, the asker's permission). */
  keep(t: T): boolean;
  name(t: T): string;
  /** The bytes `t` takes in an answer, at most. */
  bytesOf(t: T): number;
  /** The entries `t` counts (a topic one, a key one and one per holder). */
  entriesOf(t: T): number;
  build(t: T): E;
  /** The hub's budget of listings (listing-budget.ts), and the listing's name in its refusal (`topics`, `list`). */
  listings: { check(what: string): void; charge(entries: number): void };
  what: string;
  /** The hub's frame limit. */
  maxFrameBytes: number;
}

/**
 * One page of a listing: the candidates kept whose names sort after `after`, in name order, as many as fit
 * {@link pageBytes} of answer and {@link PAGE_ENTRIES} entries (at least one); `more` if others follow.
 * Charged to the budget: the entries built, and a fraction of those only looked at. Throws
 * `EZIPC_TOO_MANY_REQUESTS` while the budget is overdrawn.
 */
export function listingPage<T, E>(
  src: PageSource<T, E>,
  after: string,
  maxBytes: number,
): { entries: E[]; more: boolean } {
  src.listings.check(src.what);
  const found: T[] = [];
  let walked = 0;
  for (const t of src.items) {
    walked++;
    if (src.name(t) > after && src.keep(t)) found.push(t);
  }
  const first = firstByName(found, PAGE_ENTRIES, src.name);
  const budget = pageBytes(src.maxFrameBytes, maxBytes) - ANSWER_HEAD_BYTES;
  let n = 0;
  let entries = 0;
  for (let bytes = 0; n < first.length; n++) {
    bytes += src.bytesOf(first[n]!);
    if (n > 0 && (bytes > budget || entries >= PAGE_ENTRIES)) break;
    entries += src.entriesOf(first[n]!);
  }
  src.listings.charge(Math.ceil(walked / LOOKS_PER_ENTRY) + entries);
  const out: E[] = [];
  for (let i = 0; i < n; i++) out.push(src.build(first[i]!));
  return { entries: out, more: n < found.length };
}

/** The bytes of answer a page may hold: {@link PAGE_BYTES}, within both ends' frame limits (0: no limit). */
export function pageBytes(hubMaxFrameBytes: number, askerMaxBytes: number): number {
  const limit = Math.min(PAGE_BYTES, hubMaxFrameBytes);
  return askerMaxBytes > 0 ? Math.min(limit, askerMaxBytes) : limit;
}

/** The first `n` of `items` by `name`, in order (reorders `items`). */
export function firstByName<T>(items: T[], n: number, name: (t: T) => string): T[] {
  let first = items;
  if (items.length > n) {
    selectSmallest(items, n, name);
    first = items.slice(0, n);
  }
  first.sort((a, b) => {
    const x = name(a);
    const y = name(b);
    return x < y ? -1 : x > y ? 1 : 0;
  });
  return first;
}

/** Reorders `a` so that its `n` smallest by name (distinct names) come first, in any order. */
function selectSmallest<T>(a: T[], n: number, name: (t: T) => string): void {
  const k = n - 1;
  let lo = 0;
  let hi = a.length - 1;
  while (lo < hi) {
    const pivot = name(a[lo + Math.floor(Math.random() * (hi - lo + 1))]!);
    let i = lo;
    let j = hi;
    while (i <= j) {
      while (name(a[i]!) < pivot) i++;
      while (name(a[j]!) > pivot) j--;
      if (i <= j) {
        const t = a[i]!;
        a[i] = a[j]!;
        a[j] = t;
        i++;
        j--;
      }
    }
    // a[lo..j] ≤ pivot ≤ a[i..hi], and what is between them is the pivot.
    if (k <= j) hi = j;
    else if (k >= i) lo = i;
    else return;
  }
}

/** Longest a client waits, in all, for the hub's listing budget while it walks pages (then it fails). */
export const PAGES_MAX_WAIT_MS = 30_000;

/**
 * A client's walk of a listing: asks `ask(after)` for each page, from the first ("") to the last, and
 * returns every entry in name order. The hub's budget of listings (listing-budget.ts) can refuse a page
 * once a large listing has begun: the walk then waits as long as the refusal says (`try again in N ms`) and
 * asks again, for at most {@link PAGES_MAX_WAIT_MS} in all, so that a listing of everything goes on at
 * the rate the hub allows. A refusal of the first page, or any other error, rejects at once.
 */
export async function allPages<E>(
  ask: (after: string) => Promise<{ entries: E[]; more: boolean }>,
  nameOf: (e: E) => string,
): Promise<E[]> {
  const out: E[] = [];
  let waited = 0;
  for (let after = ""; ; ) {
    let page: { entries: E[]; more: boolean };
    try {
      page = await ask(after);
    } catch (err) {
      const wait = retryAfterMs(err);
      if (after === "" || wait === null || waited + wait > PAGES_MAX_WAIT_MS) throw err;
      waited += wait;
      await new Promise((resolve) => setTimeout(resolve, wait));
      continue;
    }
    for (const e of page.entries) out.push(e);
    const last = page.entries.at(-1);
    // (A page that does not move on ends the walk: no hub sends one, and the loop stays bounded.)
    if (!page.more || last === undefined || nameOf(last) <= after) return out;
    after = nameOf(last);
  }
}

/** How long a listing refused by the hub's budget should wait (from its message), else null. */
function retryAfterMs(err: unknown): number | null {
  if (!isEzipcError(err, "EZIPC_TOO_MANY_REQUESTS")) return null;
  const m = /try again in (\d+) ms/.exec(err.message);
  return m ? Math.max(1, Number(m[1])) : null;
}
