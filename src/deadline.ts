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
