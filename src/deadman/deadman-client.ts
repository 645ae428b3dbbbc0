import { EventEmitter } from "node:events";
import { EzipcError } from "../errors.js";
import {
  OP_RELEASE,
  OP_STATE,
  OP_TAKE,
  OP_TRY_TAKE,
  OP_WAIT_RELEASED,
  OP_WAIT_TAKEN,
} from "./deadman-hub.js";

/** A deadman token's state as the hub reported it. */
export interface DeadmanState {
  taken: boolean;
  /** `name#id` of the holder, or empty. */
  holder: string;
  /** Whether this client holds it. */
  mine: boolean;
  /** Counts the takes of this token since it last went idle on the hub. */
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

  /** Takes the token, waiting until it is free. Rejects with `EZIPC_CANCELLED` if `signal` aborts first. */
  async take(options: { signal?: AbortSignal } = {}): Promise<DeadmanState> {
    const s = await this.op(this.name, OP_TAKE, options.signal);
    this.heldFlag = s.mine;
    return s;
  }

  /** Takes the token if it is free; resolves with whether it did. */
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
