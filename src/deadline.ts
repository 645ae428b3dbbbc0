/**
 * The longest delay a timer takes: Node fires a longer one after 1 ms (with a TimeoutOverflowWarning), so a
 * duration option above it would act at once instead of (almost) never.
 */
export const MAX_TIMER_MS = 2 ** 31 - 1;

/** Throws a RangeError naming `name` unless `ms` is an integer number of ms in 0..{@link MAX_TIMER_MS}. */
export function checkDurationMs(name: string, ms: unknown): void {
  if (!Number.isInteger(ms) || (ms as number) < 0 || (ms as number) > MAX_TIMER_MS) {
    throw new RangeError(`${name} must be an integer number of ms in 0..${MAX_TIMER_MS}, got ${String(ms)}`);
  }
}

/**
 * Resolves or rejects as `promise` does, or rejects with `onTimeout()` after `ms` (the timer does not keep
 * the process alive). `onTimeout` may also clean up (e.g. destroy a stream).
 */
export function withTimeout<T>(promise: Promise<T>, ms: number, onTimeout: () => Error): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const timer = setTimeout(() => reject(onTimeout()), ms);
    timer.unref?.(); // (absent in browsers, where timers are numbers)
    promise.then(
      (v) => {
        clearTimeout(timer);
        resolve(v);
      },
      (e) => {
        clearTimeout(timer);
        reject(e);
      },
    );
  });
}
