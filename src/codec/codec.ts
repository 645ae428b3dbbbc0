/**
 * A codec turns values into bytes and back.
 *
 * - `encode` throws `EZIPC_ENCODE` when the value does not fit (wrong type, out of range, over a limit).
 * - `decode` throws `EZIPC_DECODE` on truncated, malformed or hostile input, and never allocates more than a
 *   small multiple of the input's length.
 */
export interface Codec<T = unknown> {
  /** The codec's registered name, e.g. `json`, `msgpack`, `bytes`, or a schema codec's own name. */
  readonly name: string;
  /**
   * True when `encode` returns a view into a buffer it reuses: the bytes are valid until the next `encode`
   * call on the same codec. Copy them to keep them longer.
   */
  readonly reusesBuffer: boolean;
  encode(value: T): Uint8Array;
  decode(bytes: Uint8Array): T;
}
