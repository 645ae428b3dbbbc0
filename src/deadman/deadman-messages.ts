/** The deadman-token messages of the hub protocol (feature "deadman"), wire indexes from {@link DEADMAN_BASE}. */
import { t } from "../codec/schema.js";
import { key, str } from "../protocol/fields.js";

/** The `op` of a `deadman` message. */
export const OP_TAKE = 0;
export const OP_TRY_TAKE = 1;
export const OP_RELEASE = 2;
export const OP_WAIT_TAKEN = 3;
export const OP_WAIT_RELEASED = 4;
export const OP_STATE = 5;
export const OP_CANCEL = 6;

export const DEADMAN_BASE = 40;
export const deadmanMessages = {
  /**
   * c→h: op 0 take (reply when taken), 1 tryTake, 2 release, 3 waitTaken, 4 waitReleased, 5 state,
   * 6 cancel the waiting op `rid` of this client.
   */
  deadman: t.struct({ rid: t.u32, name: key, op: t.u8 }),
  /** h→c: the token's state when the op completed. */
  deadmanState: t.struct({ rid: t.u32, taken: t.bool, holder: str, mine: t.bool, epoch: t.u64 }),
} as const;
