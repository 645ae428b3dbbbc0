/**
 * The waiting ops of a hub's deadman tokens (take, waitTaken, waitReleased), shared by the hub's own tokens
 * (deadman-hub.ts) and a clustered hub's (deadman-cluster.ts): each connection's waits counted against a
 * bound, a `cancel` that drops one and answers it with `EZIPC_CANCELLED`, and the monitor view's listing.
 */
import { EzipcError } from "../errors.js";
import type { Protocol } from "../service/protocol.js";
import { sendTo } from "../transport/send.js";
import type { Connection } from "../transport/types.js";

/** Most waiting ops (take, waitTaken, waitReleased) per connection (`EZIPC_TOO_MANY_REQUESTS`). */
export const MAX_WAITS_PER_CONNECTION = 1_000;
/** The same over all connections. */
export const MAX_WAITS_IN_ALL = 100_000;

export interface Waiter {
  readonly conn: Connection;
  readonly rid: number;
}

/** A token's three queues of waiters. */
export interface WaitLists {
  takers: Waiter[];
  waitTaken: Waiter[];
  waitReleased: Waiter[];
}

/** A token as the monitor view lists it. */
export interface TokenView {
  name: string;
  holder: string;
  waiting: number;
}

/**
 * The tokens of `tokens` (name → its holder's label, "" if free, and its waiting lists) that `match` and are
 * listed (`shown`), sorted by name, at most `limit` (and how many more).
 */
export function describeTokens<T extends WaitLists>(
  tokens: Iterable<[string, T]>,
  match: (name: string) => boolean,
  limit: number,
  holder: (t: T) => string,
  shown: (t: T) => boolean = () => true,
): { deadman: TokenView[]; more: number } {
  const deadman: TokenView[] = [];
  let more = 0;
  for (const [name, t] of tokens) {
    if (!match(name) || !shown(t)) continue;
    if (deadman.length >= limit) {
      more++;
      continue;
    }
    const waiting = t.takers.length + t.waitTaken.length + t.waitReleased.length;
    deadman.push({ name, holder: holder(t), waiting });
  }
  deadman.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  return { deadman, more };
}

/** Whether `conn` waits on any of `t`'s lists. */
export function waitsOn(t: WaitLists, conn: Connection): boolean {
  const on = (ws: Waiter[]) => ws.some((w) => w.conn === conn);
  return on(t.takers) || on(t.waitTaken) || on(t.waitReleased);
}

export class Waits {
  private readonly counts = new Map<Connection, number>();
  private total = 0;
  /**
   * The tokens each connection holds or waits on (or did: the names are pruned as they pile up), so that a
   * closing connection visits those, not every token of the hub (with 100,000 tokens held, every close
   * walked all of them).
   */
  private readonly names = new Map<Connection, { set: Set<string>; pruneAt: number }>();

  constructor(
    private readonly protocol: Protocol,
    /** Whether `conn` still holds or waits on token `name`. */
    private readonly involves: (conn: Connection, name: string) => boolean,
  ) {}

  /** `conn` holds or waits on token `name` now. */
  involve(conn: Connection, name: string): void {
    let e = this.names.get(conn);
    if (!e) {
      e = { set: new Set(), pruneAt: 64 };
      this.names.set(conn, e);
    }
    e.set.add(name);
    if (e.set.size > e.pruneAt) {
      for (const n of e.set) if (!this.involves(conn, n)) e.set.delete(n);
      e.pruneAt = Math.max(64, 2 * e.set.size);
    }
  }

  /** The tokens `conn` may hold or wait on (its connection closed: check each). */
  involvedIn(conn: Connection): string[] {
    return [...(this.names.get(conn)?.set ?? [])];
  }

  /** A waiting op of `conn` on token `name`; throws `EZIPC_TOO_MANY_REQUESTS` over the bound. */
  add(conn: Connection, rid: number, name: string): Waiter {
    const n = this.counts.get(conn) ?? 0;
    if (n >= MAX_WAITS_PER_CONNECTION) {
      throw new EzipcError(
        "EZIPC_TOO_MANY_REQUESTS",
        `at most ${MAX_WAITS_PER_CONNECTION} waiting deadman ops per client`,
      );
    }
    if (this.total >= MAX_WAITS_IN_ALL) {
      throw new EzipcError(
        "EZIPC_TOO_MANY_REQUESTS",
        `the hub has its maximum of ${MAX_WAITS_IN_ALL} waiting deadman ops`,
      );
    }
    this.counts.set(conn, n + 1);
    this.total++;
    this.involve(conn, name);
    return { conn, rid };
  }

  /** One of `conn`'s waits was answered. */
  done(conn: Connection): void {
    const n = this.counts.get(conn);
    if (n !== undefined && n > 0) {
      this.counts.set(conn, n - 1);
      this.total--;
    }
  }

  /** `conn` closed: its waits are dropped from `t`'s lists (and no longer counted, once for all tokens). */
  dropFrom(t: WaitLists, conn: Connection): void {
    const drop = (ws: Waiter[]) => ws.filter((w) => w.conn !== conn);
    t.takers = drop(t.takers);
    t.waitTaken = drop(t.waitTaken);
    t.waitReleased = drop(t.waitReleased);
  }

  forget(conn: Connection): void {
    this.total -= this.counts.get(conn) ?? 0;
    this.counts.delete(conn);
    this.names.delete(conn);
  }

  /** `cancel`: `conn`'s waiting op `rid` is dropped from `t`'s lists and answered with `EZIPC_CANCELLED`. */
  cancel(t: WaitLists, conn: Connection, rid: number): void {
    const keep = (ws: Waiter[]) =>
      ws.filter((w) => {
        if (w.conn !== conn || w.rid !== rid) return true;
        this.done(conn);
        sendTo(
          conn,
          this.protocol.encode("error", { rid: w.rid, code: "EZIPC_CANCELLED", message: "cancelled" }),
        );
        return false;
      });
    t.takers = keep(t.takers);
    t.waitTaken = keep(t.waitTaken);
    t.waitReleased = keep(t.waitReleased);
  }
}
