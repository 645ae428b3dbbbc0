/**
 * Async iteration over an emitter's events until it closes: what `for await (const frame of conn)` and
 * `for await (const conn of listener)` are for the transports that need no more than that (the stream
 * connection adds its own read pausing).
 */
import type { EventEmitter } from "node:events";
import { EzipcError } from "../errors.js";
import type { CloseInfo } from "./types.js";

/**
 * Yields the first argument of each `event` of `emitter`, in order, until `closed()` holds and nothing is
 * left (re-checked at each `close` event).
 */
export async function* eventsUntilClosed<T>(
  emitter: EventEmitter,
  event: string,
  closed: () => boolean,
): AsyncGenerator<T> {
  const queue: T[] = [];
  let wake: (() => void) | null = null;
  const onEvent = (v: T) => {
    queue.push(v);
    wake?.();
  };
  const onClose = () => wake?.();
  emitter.on(event, onEvent);
  emitter.on("close", onClose);
  try {
    while (true) {
      if (queue.length > 0) {
        yield queue.shift()!;
        continue;
      }
      if (closed()) return;
      await new Promise<void>((resolve) => {
        wake = resolve;
      });
      wake = null;
    }
  } finally {
    emitter.off(event, onEvent);
    emitter.off("close", onClose);
  }
}

/** Resolves at `emitter`'s next `drain`; rejects with the close error (or `EZIPC_CONNECTION_CLOSED`) if it closes first. */
export function nextDrain(emitter: EventEmitter): Promise<void> {
  return new Promise((resolve, reject) => {
    const onDrain = () => {
      emitter.off("close", onClose);
      resolve();
    };
    const onClose = (info: CloseInfo) => {
      emitter.off("drain", onDrain);
      reject(info.error ?? new EzipcError("EZIPC_CONNECTION_CLOSED", `connection closed: ${info.reason}`));
    };
    emitter.once("drain", onDrain);
    emitter.once("close", onClose);
  });
}
