/**
 * The hub's budget for listings (`topics`, `list`, `monitor`): entries walked per second, over all clients.
 *
 * A listing walks what the hub holds (100,000 topics: about 100 ms of the hub's event loop, in which no other
 * client is served). Without a bound, one client asking again and again took the hub from everyone: measured,
 * another client's publish round trip went from under 1 ms to 81 ms (p50) and 278 ms (max). Every listing is
 * charged the entries it walked, after the walk; while the charges of the last moments exceed the budget, the
 * next listing is refused at once with `EZIPC_TOO_MANY_REQUESTS` (it costs the hub nothing). A token bucket:
 * `perSecond` come back each second, up to a burst of twice that, so a listing of everything a full hub holds
 * always goes through when none ran just before. A listing counts everything its answer holds (a key and
 * each of its holders), and one whose answer would be over a frame is refused before it is built.
 */
import { EzipcError } from "./errors.js";

export class ListingBudget {
  private tokens: number;
  private last: number;
  /** Listings refused so far. */
  refused = 0;

  constructor(
    /** Entries walked per second, over all clients (0: no bound). */
    readonly perSecond: number,
    private readonly now: () => number = () => performance.now(),
  ) {
    this.tokens = this.burst;
    this.last = now();
  }

  private get burst(): number {
    return 2 * this.perSecond;
  }

  private refill(): void {
    const t = this.now();
    this.tokens = Math.min(this.burst, this.tokens + ((t - this.last) / 1000) * this.perSecond);
    this.last = t;
  }

  /** Throws `EZIPC_TOO_MANY_REQUESTS` while the listings just made took more than the budget. */
  check(what: string): void {
    if (this.perSecond === 0) return;
    this.refill();
    if (this.tokens >= 0) return;
    this.refused++;
    const waitMs = Math.ceil((-this.tokens / this.perSecond) * 1000);
    throw new EzipcError(
      "EZIPC_TOO_MANY_REQUESTS",
      `${what}: the hub lists at most ${this.perSecond} entries per second over all clients (listingEntriesPerSecond); try again in ${waitMs} ms`,
    );
  }

  /** Charges a listing that walked `entries`. */
  charge(entries: number): void {
    if (this.perSecond === 0) return;
    this.refill();
    this.tokens -= entries;
  }
}

/**
 * The error for a listing whose answer would be over one frame, found before the answer is built (what it
 * would hold is counted first): `EZIPC_MESSAGE_TOO_LARGE`, with what to do instead.
 */
export function listingTooLarge(
  what: string,
  entries: number,
  bytes: number,
  maxFrameBytes: number,
): EzipcError {
  return new EzipcError(
    "EZIPC_MESSAGE_TOO_LARGE",
    `${what}: the answer would hold ${entries} entries, about ${bytes} bytes: over one frame (maxFrameBytes ${maxFrameBytes}); list with a narrower pattern`,
  );
}
