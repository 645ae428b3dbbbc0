/**
 * Spin mode (`spin: true`): readers that never sleep. See {@link SpinLoop}.
 */

/** Something that looks for new data when pumped: a ring follower, the variables a client watches. */
export interface Spinner {
  /** Looks once, handing over what it finds. */
  pump(): void;
  /** What the last {@link pump} handed over (0: nothing: the loop's sign of no traffic). */
  readonly delivered: number;
  /**
   * Whether it wants to be looked at without turns of the event loop between looks (spin mode, or the first
   * µs of a watch); when no member does, the loop looks once per turn of the event loop.
   */
  readonly tight: boolean;
  /**
   * Whether a {@link pump} now would find something (a cheap look at shared memory, no copy). Members that
   * have it let the loop watch in place between looks (see {@link IN_PLACE_CHECKS}).
   */
  hasNews?(): boolean;
}

/**
 * Checks of {@link Spinner.hasNews} a look makes when it found nothing, before it hands the thread back to
 * the promise and nextTick queues (~60 ns a check against ~250 ns a look: what arrives is seen sooner, and
 * a spinning process makes no garbage while it waits). Nothing else can run meanwhile: JavaScript queues
 * nothing while this loop runs, so no callback waits on it.
 */
const IN_PLACE_CHECKS = 32;

/** How long the loop watches with nothing found before it lets the event loop turn. */
const SPIN_MS = 0.2;
/** How long the loop keeps the event loop from turning while data keeps coming. */
const SPIN_CHAIN_MS = 1;
const RESOLVED = Promise.resolve();

/**
 * Spin mode, and the watches of RPC readers (RingFollower.watchFor): one chain of looks for all the looking
 * followers of this process. Each follower with nothing to read joins it; every look pumps each member once,
 * after the promise reactions and nextTick callbacks queued so far (what was delivered, the next request it
 * led to): a few µs to see a message, without a turn of the event loop. After SPIN_MS without a message, or
 * SPIN_CHAIN_MS in all, the event loop turns once (timers, I/O) and the chain goes on; when no member is
 * {@link Spinner.tight}, it turns after every look. One chain, not one per follower: a follower looking on
 * its own would keep the event loop, and so the other followers of the process (two shm:// clients of one
 * process, a caller and a server), from looking until its window ends.
 */
class SpinLoop {
  private readonly members: Spinner[] = [];
  private queued = false;
  private looking = false;
  private waitingForTurn = false;
  private looks = 0;
  /** Looks made so far in this process (for tests and diagnostics). */
  lookCount = 0;
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
    void RESOLVED.then(this.queueLook);
  }

  /**
   * The next look runs as a `process.nextTick` callback queued from a microtask: after the promise reactions
   * queued so far (what was delivered, the next request they make) and after the process's other nextTick
   * callbacks (a self wake-up, a publisher's flush). A chain of microtasks alone would starve nextTick
   * callbacks until the chain ends (Node runs them only once the microtask queue is empty); a chain of
   * nextTicks alone would starve promise reactions.
   */
  private readonly queueLook = (): void => {
    process.nextTick(this.look);
  };

  private readonly look = (): void => {
    this.queued = false;
    this.lookCount++;
    const members = this.members;
    let traffic = false;
    let tight = false;
    this.looking = true;
    try {
      for (let checks = 0; ; ) {
        let peek = true;
        for (let i = 0; i < members.length; i++) {
          const f = members[i]!;
          f.pump();
          if (f.delivered > 0) traffic = true;
          if (f.tight) tight = true;
          if (f.hasNews === undefined) peek = false;
        }
        if (traffic || !tight || !peek || checks >= IN_PLACE_CHECKS) break;
        let news = false;
        while (!news && checks < IN_PLACE_CHECKS) {
          checks++;
          for (let i = 0; i < members.length && !news; i++) news = members[i]!.hasNews!();
        }
        if (!news) break;
      }
    } finally {
      this.looking = false;
    }
    if (members.length === 0) return;
    if (!tight) {
      // Only loose watchers: one look per turn of the event loop.
      this.waitingForTurn = true;
      setImmediate(this.afterTurn);
      return;
    }
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
    void RESOLVED.then(this.queueLook);
  };

  private readonly afterTurn = (): void => {
    this.waitingForTurn = false;
    if (this.members.length > 0) this.begin();
  };
}

export const spinLoop = new SpinLoop();
