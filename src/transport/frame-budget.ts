/**
 * One bound on the memory that incomplete frames take over many connections (a hub's: every connection of
 * every listener). Each connection holds at most one incomplete frame, of at most `maxFrameBytes`; without
 * this, a peer that opens many connections and starts a large frame on each, never finishing it, makes the
 * receiver hold connections × maxFrameBytes.
 *
 * A decoder reserves a frame's announced length when the frame does not come whole in one read, and gives it
 * back when the frame is complete or the connection ends. A reservation that would go over the bound first
 * cuts the holders of larger incomplete frames, largest first (the connections doing what the bound is
 * against), then, if it still does not fit, is refused (that connection is cut): a connection sending
 * frames smaller than those held against the bound goes on.
 */
import { EzipcError } from "../errors.js";

/** What holds part of a budget: an incomplete frame of one connection. */
export interface BudgetHolder {
  /** Bytes it holds now. */
  readonly reserved: number;
  /** Cuts its connection with `error`, giving its bytes back at once (through {@link FrameBudget.give}). */
  evict(error: EzipcError): void;
}

export class FrameBudget {
  private held = 0;
  private readonly holders = new Set<BudgetHolder>();
  /** Connections cut to keep within the bound (they held the largest incomplete frames). */
  evictions = 0;

  constructor(readonly maxBytes: number) {
    if (!Number.isInteger(maxBytes) || maxBytes < 0) {
      throw new RangeError(`maxIncompleteFrameBytes must be a non-negative integer, got ${maxBytes}`);
    }
  }

  /** Bytes held now, over every holder. */
  get heldBytes(): number {
    return this.held;
  }

  /**
   * Reserves `n` bytes for `holder` (which holds nothing yet). Returns the error to cut `holder` with if they
   * do not fit even once every holder of more than `n` bytes was cut; null once reserved.
   */
  take(holder: BudgetHolder, n: number): EzipcError | null {
    while (this.held + n > this.maxBytes) {
      let largest: BudgetHolder | null = null;
      for (const h of this.holders) if (h.reserved > (largest?.reserved ?? n)) largest = h;
      if (largest === null) {
        return new EzipcError(
          "EZIPC_FRAME_TOO_LARGE",
          `a frame of ${n} bytes does not fit: the receiver's connections hold ${this.held} bytes of incomplete frames (at most ${this.maxBytes}, maxIncompleteFrameBytes)`,
        );
      }
      this.evictions++;
      largest.evict(
        new EzipcError(
          "EZIPC_FRAME_TOO_LARGE",
          `cut while holding an incomplete frame of ${largest.reserved} bytes: the receiver's connections held more incomplete frames than maxIncompleteFrameBytes (${this.maxBytes})`,
        ),
      );
      // (evict gave its bytes back; if it did not, it no longer counts as a holder to cut)
      this.holders.delete(largest);
    }
    this.held += n;
    this.holders.add(holder);
    return null;
  }

  /** Gives back what `holder` reserved (`n` bytes). */
  give(holder: BudgetHolder, n: number): void {
    if (this.holders.delete(holder)) this.held -= n;
  }
}
