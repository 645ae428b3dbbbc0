/**
 * Spin mode (`spin: true`): readers that never sleep. See {@link SpinLoop}.
 */

/** Something that looks for new data when pumped: a ring follower, the variables a client watches. */
export interface Spinner {
  /** Looks once, handing over what it finds. */
  pump(): void;
  /** What the last {@link pump} handed over (0: nothing: the loop's sign of no traffic). */
  readonly delivered: number;
}

/** How long the loop watches with nothing found before it lets the event loop turn. */
const SPIN_MS = 0.2;
/** How long the loop keeps the event loop from turning while data keeps coming. */
const SPIN_CHAIN_MS = 1;
const RESOLVED = Promise.resolve();

/**
 * Spin mode: one chain of looks for all the spinning followers of this process. Each follower with nothing to
 * read joins it; every look pumps each member once, as a microtask after the ones queued so far (the promise
 * reactions of what was delivered, the next request they make): a few µs to see a message, without a turn
 * of the event loop. After SPIN_MS without a message, or SPIN_CHAIN_MS in all, the event loop turns once
 * (timers, I/O) and the chain goes on. One chain, not one per follower: a follower spinning on its own would
 * keep the event loop, and so the other followers of the process (two shm:// clients of one process, a
 * caller and a server), from looking until its window ends.
 */
class SpinLoop {
  private readonly members: Spinner[] = [];
  private queued = false;
  private looking = false;
  private waitingForTurn = false;
  private looks = 0;
  private until = 0;
  private chainStart = 0;

  add(f: Spinner): void {
    if (!this.members.includes(f)) this.members.push(f);
    if (!this.queued && !this.waitingForTurn && !this.looking) this.begin();
  }

  remove(f: Spinner): void {
    const i = this.members.indexOf(f);
    if (i >= 0) this.members.splice(i, 1);
  }

  private begin(): void {
    this.chainStart = performance.now();
    this.until = this.chainStart + SPIN_MS;
    this.queued = true;
    void RESOLVED.then(this.look); // a microtask (queueMicrotask costs an async resource)
  }

  private readonly look = (): void => {
    this.queued = false;
    const members = this.members;
    let traffic = false;
    this.looking = true;
    try {
      for (let i = 0; i < members.length; i++) {
        const f = members[i]!;
        f.pump();
        if (f.delivered > 0) traffic = true;
      }
    } finally {
      this.looking = false;
    }
    if (members.length === 0) return;
    // The clock is read once every 16 looks without traffic: reading it costs more than a look.
    if (traffic || (++this.looks & 15) === 0) {
      const now = performance.now();
      if (traffic) this.until = now + SPIN_MS;
      if (now >= this.until || now - this.chainStart >= SPIN_CHAIN_MS) {
        this.waitingForTurn = true;
        setImmediate(this.afterTurn);
        return;
      }
    }
    this.queued = true;
    void RESOLVED.then(this.look);
  };

  private readonly afterTurn = (): void => {
    this.waitingForTurn = false;
    if (this.members.length > 0) this.begin();
  };
}

export const spinLoop = new SpinLoop();
