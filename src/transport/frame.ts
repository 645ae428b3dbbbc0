/**
 * The frame format shared by every stream transport (tcp://, unix://, memory://).
 *
 * Each frame is a 4-byte unsigned **big-endian** (network byte order) word `W` followed by a body:
 *
 * - `W < 2^31` — a data frame whose payload is the next `W` bytes (0 ≤ W ≤ maxFrameBytes).
 * - `W ≥ 2^31` — a control frame of `W - 2^31` bytes (1 to {@link MAX_CONTROL_BYTES}); its first byte is a
 *   {@link ControlType}, the rest its argument.
 *
 * Control frames never reach the application: they carry heartbeats and the close reason.
 */

/** Bytes in a frame header. */
export const HEADER_BYTES = 4;
/** Bit set in the header word of a control frame. */
export const CONTROL_BIT = 0x8000_0000;
/** Largest body of a control frame (type byte included). */
export const MAX_CONTROL_BYTES = 1024;
/** Largest possible value of maxFrameBytes: the header's 31 length bits. */
export const MAX_FRAME_BYTES_LIMIT = 0x7fff_ffff;
/** Default maxFrameBytes: 16 MiB. */
export const DEFAULT_MAX_FRAME_BYTES = 16 * 1024 * 1024;

/** The first byte of a control frame. */
export const ControlType = {
  /** Heartbeat request; the peer answers PONG. No argument. */
  PING: 1,
  /** Heartbeat answer. No argument. */
  PONG: 2,
  /** The sender is closing; the argument is the UTF-8 reason (may be empty). */
  CLOSE: 3,
} as const;
export type ControlType = (typeof ControlType)[keyof typeof ControlType];

/**
 * The parts of a `Connection.sendParts(head, body, more)` frame's payload in order, for a connection that
 * sends a list of parts (ws://, udp://).
 */
export function payloadParts(head: Uint8Array, body: Uint8Array, more?: readonly Uint8Array[]): Uint8Array[] {
  return more === undefined || more.length === 0 ? [head, body] : [head, body, ...more];
}

/** Bytes of `parts` together. */
export function partsLength(parts: readonly Uint8Array[]): number {
  let size = 0;
  for (const p of parts) size += p.length;
  return size;
}
