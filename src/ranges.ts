/**
 * Range checks of numeric arguments and options: a value out of range is a programmer mistake, refused with
 * a RangeError that names it (docs/errors.md), never taken as some other behaviour.
 */

/**
 * The longest delay a timer takes: Node fires a longer one after 1 ms (with a TimeoutOverflowWarning), so a
 * duration option above it would act at once instead of (almost) never.
 */
export const MAX_TIMER_MS = 2 ** 31 - 1;

/** Throws a RangeError naming `name` unless `v` is a number (an integer if `integer`) in `min..max`. */
export function checkRange(name: string, v: unknown, min: number, max: number, integer = true): void {
  if (typeof v !== "number" || !(v >= min && v <= max) || (integer && !Number.isInteger(v))) {
    throw new RangeError(
      `${name} must be ${integer ? "an integer" : "a number"} in ${min}..${max}, got ${String(v)}`,
    );
  }
}

/** Throws a RangeError naming `name` unless `ms` is an integer number of ms a timer can hold. */
export function checkDurationMs(name: string, ms: unknown): void {
  checkRange(name, ms, 0, MAX_TIMER_MS);
}
