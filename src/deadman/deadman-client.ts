/**
 * The client part of deadman tokens: one {@link Deadman} object per name, its operations as requests to the
 * hub (the waiting ones without a deadline, cancelled by an `OP_CANCEL`), and the loss of every held token
 * with the connection. The hub side is deadman-hub.ts.
 */
import { EventEmitter } from "node:events";
import { EzipcError } from "../errors.js";
import {
  type ClientLink,
  type ClientPart,
  jsonSafe,
  unexpected,
  type WireMessages,
} from "../protocol/client-link.js";
import type { coreMessages } from "../protocol/core-messages.js";
import { checkKey } from "../protocol/names.js";
import {
  type deadmanMessages,
  OP_CANCEL,
  OP_RELEASE,
  OP_STATE,
  OP_TAKE,
  OP_TRY_TAKE,
  OP_WAIT_RELEASED,
  OP_WAIT_TAKEN,
} from "./deadman-messages.js";

/** A deadman token's state as the hub reported it. */
export interface DeadmanState {
  taken: boolean;
  /** `name#id` of the holder, or empty. */
  holder: string;
  /** Whether this client holds it. */
  mine: boolean;
  /**
   * The holder's take, as a fencing number: every take gets a greater one than any take before it on this
   * hub (of any token), so a holder that lost the token holds a smaller epoch than the next. 0: never taken
   * since the token was last idle. A hub restarted begins again at 1 (its holders lost the token with their
   * connections); a cluster's epochs are the cluster's and keep growing.
   */
  epoch: bigint;
}

export interface DeadmanEvents {
  /** This client held the token and lost it with its connection to the hub. */
  lost: [];
}

/** How a Deadman reaches the hub (kept internal). */
export type DeadmanOp = (name: string, op: number, signal?: AbortSignal) => Promise<DeadmanState>;

/**
 * A named token at most one client holds (AlephZero's deadman): the holder is alive as long as it holds it.
 * The hub releases it when the holder disconnects or its heartbeats stop.
 */
export class Deadman extends EventEmitter<DeadmanEvents> {
  private heldFlag = false;

  /** @internal */
  constructor(
    readonly name: string,
    private readonly op: DeadmanOp,
  ) {
    super();
  }

  /** Whether this client holds the token (as far as it knows: false from the moment its connection drops). */
  get held(): boolean {
    return this.heldFlag;
  }

  /**
   * Takes the token, waiting until it is free; resolves once this client holds it. Rejects with
   * `EZIPC_CANCELLED` if `signal` aborts first, `EZIPC_BAD_REQUEST` if this client holds it already.
   */
  async take(options: { signal?: AbortSignal } = {}): Promise<DeadmanState> {
    const s = await this.op(this.name, OP_TAKE, options.signal);
    this.heldFlag = s.mine;
    return s;
  }

  /** Takes the token if it is free; resolves with whether it did (`EZIPC_BAD_REQUEST` if this client holds it). */
  async tryTake(): Promise<boolean> {
    const s = await this.op(this.name, OP_TRY_TAKE);
    this.heldFlag = s.mine;
    return s.mine;
  }

  /** Releases the token (`EZIPC_BAD_REQUEST` if this client does not hold it). */
  async release(): Promise<void> {
    await this.op(this.name, OP_RELEASE);
    this.heldFlag = false;
  }

  /** Resolves once somebody holds the token (at once if somebody does). */
  waitTaken(options: { signal?: AbortSignal } = {}): Promise<DeadmanState> {
    return this.op(this.name, OP_WAIT_TAKEN, options.signal);
  }

  /** Resolves once nobody holds the token (at once if nobody does). */
  waitReleased(options: { signal?: AbortSignal } = {}): Promise<DeadmanState> {
    return this.op(this.name, OP_WAIT_RELEASED, options.signal);
  }

  /** The token's current state, with the holder's identity. */
  state(): Promise<DeadmanState> {
    return this.op(this.name, OP_STATE);
  }

  /** Whether somebody holds the token. */
  async isTaken(): Promise<boolean> {
    return (await this.state()).taken;
  }

  /** @internal The connection to the hub was lost. */
  connectionLost(): void {
    if (!this.heldFlag) return;
    this.heldFlag = false;
    this.emit("lost");
  }
}

export function cancelled(reason: unknown): EzipcError {
  return new EzipcError("EZIPC_CANCELLED", "cancelled", { cause: reason });
}

/** What the hub may send this part. */
export type DeadmanMessage = WireMessages<typeof coreMessages & typeof deadmanMessages>;

export class DeadmanClient implements ClientPart<DeadmanMessage> {
  private readonly deadmen = new Map<string, Deadman>();

  constructor(private readonly link: ClientLink<DeadmanMessage>) {}

  /** See HubClient.deadman. */
  deadman(name: string): Deadman {
    checkKey(name);
    let d = this.deadmen.get(name);
    if (!d) {
      d = new Deadman(name, (n, op, signal) => this.op(n, op, signal));
      this.deadmen.set(name, d);
    }
    return d;
  }

  /** Every token this client held is lost with its connection. */
  connectionClosed(_conn: unknown, _error: EzipcError, current: boolean): void {
    if (current) for (const d of this.deadmen.values()) d.connectionLost();
  }

  private async op(name: string, op: number, signal?: AbortSignal): Promise<DeadmanState> {
    if (signal?.aborted) throw cancelled(signal.reason);
    await this.link.readyWithin(name);
    const conn = this.link.conn!;
    const waits = op === OP_TAKE || op === OP_WAIT_TAKEN || op === OP_WAIT_RELEASED;
    const body: Record<string, unknown> = { name, op };
    const reply = this.link.requestOn(
      conn,
      "deadman",
      body,
      undefined,
      waits ? Number.POSITIVE_INFINITY : this.link.timeoutMs,
    );
    const onAbort = () => this.link.send("deadman", { rid: body.rid, name, op: OP_CANCEL });
    signal?.addEventListener("abort", onAbort, { once: true });
    if (signal?.aborted) onAbort(); // aborted while this call was getting ready
    try {
      const r = await reply;
      if (r.type !== "deadmanState") throw unexpected(r);
      return jsonSafe({ taken: r.body.taken, holder: r.body.holder, mine: r.body.mine, epoch: r.body.epoch });
    } catch (err) {
      if (signal?.aborted) throw cancelled(signal.reason);
      throw err;
    } finally {
      signal?.removeEventListener("abort", onAbort);
    }
  }
}
