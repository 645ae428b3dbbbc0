/**
 * The Node globals the client code uses, for the browser build (injected by scripts/build-browser.mjs):
 * `Buffer` (the `buffer` package, with the few Node-internal fast paths the codecs call —
 * `utf8Slice`, `latin1Slice`, `asciiSlice`, `utf8Write` — defined by its public methods, and `subarray`
 * returning a Buffer as Node's does) and the little of
 * `process` the client touches.
 */
import { Buffer } from "buffer";

type FastPaths = {
  utf8Slice?(this: Buffer, start?: number, end?: number): string;
  latin1Slice?(this: Buffer, start?: number, end?: number): string;
  asciiSlice?(this: Buffer, start?: number, end?: number): string;
  utf8Write?(this: Buffer, s: string, offset?: number, length?: number): number;
};
const proto = Buffer.prototype as unknown as FastPaths;
// Node's Buffer#subarray returns a Buffer; the package's inherits Uint8Array's, which does not.
const subarray = Uint8Array.prototype.subarray;
Buffer.prototype.subarray = function (this: Buffer, start?: number, end?: number) {
  const view = subarray.call(this, start, end);
  Object.setPrototypeOf(view, Buffer.prototype);
  return view as Buffer;
};
proto.utf8Slice ??= function (start, end) {
  return this.toString("utf8", start, end);
};
proto.latin1Slice ??= function (start, end) {
  return this.toString("latin1", start, end);
};
proto.asciiSlice ??= function (start, end) {
  return this.toString("ascii", start, end);
};
proto.utf8Write ??= function (s, offset = 0, length) {
  return this.write(s, offset, length ?? this.length - offset, "utf8");
};

export { Buffer };

export const process = {
  pid: 0,
  platform: "browser",
  env: {} as Record<string, string | undefined>,
  nextTick(fn: (...args: unknown[]) => void, ...args: unknown[]): void {
    queueMicrotask(() => fn(...args));
  },
  stderr: { write: (s: string) => console.error(s.trimEnd()) },
};
