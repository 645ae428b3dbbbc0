/** Whether `x` is a promise or another thenable: what a handler returns when it finishes later. */
export function isThenable(x: unknown): x is PromiseLike<unknown> {
  return x !== null && typeof x === "object" && typeof (x as { then?: unknown }).then === "function";
}
