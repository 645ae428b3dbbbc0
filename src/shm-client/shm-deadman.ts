/**
 * Deadman tokens over shared memory, with the hub client's {@link Deadman} API: the token is a lock word
 * in `.deadman.NAME` naming its holder by pid and start time (src/shm/deadman.ts), so it is free as soon
 * as its holder's process is dead, with no hub to notice. Waiters sleep on the namespace's wake-up pipe (a take or release wakes them) and look
 * again every {@link DEADMAN_CHECK_MS} for a holder that died.
 */

import { cancelled, Deadman, type DeadmanState } from "../deadman/deadman-client.js";
import {
  OP_RELEASE,
  OP_STATE,
  OP_TAKE,
  OP_TRY_TAKE,
  OP_WAIT_RELEASED,
  OP_WAIT_TAKEN,
} from "../deadman/deadman-messages.js";
import { EzipcError } from "../errors.js";
import { checkKey } from "../protocol/names.js";
import { tokenState, tryLockToken, unlockToken } from "../shm/deadman.js";
import { shmFileName } from "../shm/file-names.js";
import type { LocalTopic, ShmNamespace } from "./shm-namespace.js";

/** How often a waiter looks for a holder that died (a release wakes it at once). */
export const DEADMAN_CHECK_MS = 50;

/** Clients of shm:// deadman tokens in this process (a token names its holder's client). */
let clientsInProcess = 0;

export class ShmDeadmen {
  private readonly client = ++clientsInProcess;
  private readonly deadmen = new Map<string, Deadman>();
  private readonly held = new Set<string>();
  private closed = false;

  constructor(
    private readonly ns: ShmNamespace,
    private readonly label: string,
  ) {}

  /** See HubClient.deadman. */
  deadman(name: string): Deadman {
    checkKey(name);
    shmFileName(".deadman.", name, "EZIPC_INVALID_KEY"); // (its file is made at the first take)
    let d = this.deadmen.get(name);
    if (!d) {
      d = new Deadman(name, (n, op, signal) => this.op(n, op, signal));
      this.deadmen.set(name, d);
    }
    return d;
  }

  private state(name: string, t: LocalTopic): DeadmanState {
    const s = tokenState(t.ring.file);
    return { taken: s.taken, holder: s.holder, mine: this.held.has(name), epoch: s.epoch };
  }

  private tryTake(name: string, t: LocalTopic): DeadmanState {
    if (tryLockToken(t.ring.file, this.label, this.client)) {
      this.held.add(name);
      this.ns.waker.wakeSleepers(t.ring.file);
    }
    return this.state(name, t);
  }

  private async op(name: string, op: number, signal?: AbortSignal): Promise<DeadmanState> {
    if (this.closed) throw new EzipcError("EZIPC_CONNECTION_CLOSED", "this shm:// client is closed");
    if (signal?.aborted) throw cancelled(signal.reason);
    const t = this.ns.deadmanFile(name);
    if ((op === OP_TAKE || op === OP_TRY_TAKE) && this.held.has(name)) {
      throw new EzipcError("EZIPC_BAD_REQUEST", `${name}: this client already holds it`); // (as a hub says)
    }
    switch (op) {
      case OP_TRY_TAKE:
        return this.tryTake(name, t);
      case OP_STATE:
        return this.state(name, t);
      case OP_RELEASE:
        if (!this.held.has(name)) {
          throw new EzipcError("EZIPC_BAD_REQUEST", `${name}: this client does not hold it`);
        }
        this.held.delete(name);
        unlockToken(t.ring.file, this.client);
        this.ns.waker.wakeSleepers(t.ring.file);
        return this.state(name, t);
      case OP_TAKE:
        return this.waitFor(t, signal, () => {
          const s = this.tryTake(name, t);
          return s.mine ? s : null;
        });
      case OP_WAIT_TAKEN:
      case OP_WAIT_RELEASED: {
        // A release and a take between two looks are seen by the take count (epoch) moving on.
        const epoch = tokenState(t.ring.file).epoch;
        const want = op === OP_WAIT_TAKEN;
        return this.waitFor(t, signal, () => {
          const s = this.state(name, t);
          return s.taken === want || s.epoch !== epoch ? s : null;
        });
      }
      default:
        throw new EzipcError("EZIPC_BAD_REQUEST", `unknown deadman operation ${op}`);
    }
  }

  /** Resolves with `check()`'s first non-null answer, looking again after each wake-up and every 50 ms. */
  private waitFor(
    t: LocalTopic,
    signal: AbortSignal | undefined,
    check: () => DeadmanState | null,
  ): Promise<DeadmanState> {
    const first = check();
    if (first) return Promise.resolve(first);
    return new Promise<DeadmanState>((resolve, reject) => {
      const slot = this.ns.waker.claimSlot(t.ring.file);
      const look = () => {
        if (this.closed) {
          done();
          reject(new EzipcError("EZIPC_CONNECTION_CLOSED", "this shm:// client is closed"));
          return;
        }
        this.ns.waker.unpark(t.ring.file, slot);
        const s = check();
        if (s) {
          done();
          resolve(s);
          return;
        }
        this.ns.waker.park(t.ring.file, slot);
      };
      const timer = setInterval(look, DEADMAN_CHECK_MS);
      const onAbort = () => {
        done();
        reject(cancelled(signal?.reason));
      };
      const done = () => {
        clearInterval(timer);
        this.ns.wakeListeners.delete(look);
        signal?.removeEventListener("abort", onAbort);
        this.ns.waker.releaseSlot(t.ring.file, slot);
        this.waits.delete(look);
      };
      this.waits.add(look);
      this.ns.wakeListeners.add(look);
      signal?.addEventListener("abort", onAbort, { once: true });
      this.ns.waker.park(t.ring.file, slot);
      // A change between the first check and the park would have found no one parked: look once more.
      look();
    });
  }

  private readonly waits = new Set<() => void>();

  /** Releases every token this client holds; pending waits fail with `EZIPC_CONNECTION_CLOSED`. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    for (const name of this.held) {
      const t = this.ns.deadmanFile(name);
      unlockToken(t.ring.file, this.client);
      this.ns.waker.wakeSleepers(t.ring.file);
    }
    this.held.clear();
    for (const w of [...this.waits]) w();
  }
}
