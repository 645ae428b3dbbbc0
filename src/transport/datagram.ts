/**
 * The datagram format of udp:// (docs/protocol.md, "Over UDP"), as pure functions and a pure state
 * machine: one datagram is one ezipc frame, with no length prefix (the datagram has one) — a header byte,
 * an optional 64-bit sequence number, then the body.
 *
 * - Header byte: the kind in the low nibble (0 DATA, 1 PING, 2 PONG, 3 CLOSE), bit 7 set when a sequence
 *   number follows (u64 big-endian, per sender and connection, from 1). Other bits are zero.
 * - DATA carries the frame's payload; CLOSE a UTF-8 reason of at most 255 bytes; PING and PONG nothing.
 *
 * {@link SequenceWindow} is the receiver's side of the sequence numbers: the newest seen and a bitmap of
 * the 1024 before it, so a datagram is told apart as new, a duplicate, or older than what was delivered.
 */

export const KIND_DATA = 0;
export const KIND_PING = 1;
export const KIND_PONG = 2;
export const KIND_CLOSE = 3;
const SEQ_BIT = 0x80;

/** Bytes of header a datagram carries: the kind byte, and 8 more with a sequence number. */
export const datagramHeaderBytes = (sequenced: boolean): number => (sequenced ? 9 : 1);

/** The header of a datagram of `kind` (with `seq` when not 0) written at the start of `out`; returns its size. */
export function writeDatagramHeader(out: Buffer, kind: number, seq: number): number {
  if (seq === 0) {
    out[0] = kind;
    return 1;
  }
  out[0] = kind | SEQ_BIT;
  out.writeUInt32BE(Math.floor(seq / 2 ** 32), 1);
  out.writeUInt32BE(seq >>> 0, 5);
  return 9;
}

/** A parsed datagram (body is a view into it), or null when it is malformed. */
export function parseDatagram(d: Buffer): { kind: number; seq: number; body: Buffer } | null {
  if (d.length < 1) return null;
  const h = d[0]!;
  const kind = h & 0x0f;
  if ((h & 0x70) !== 0 || kind > KIND_CLOSE) return null;
  if (h & SEQ_BIT) {
    if (d.length < 9) return null;
    const high = d.readUInt32BE(1);
    if (high > 0x1fffff) return null; // beyond 2^53: no sender gets there
    const seq = high * 2 ** 32 + d.readUInt32BE(5);
    if (seq === 0) return null;
    return { kind, seq, body: d.subarray(9) };
  }
  return { kind, seq: 0, body: d.subarray(1) };
}

/** Sequence numbers remembered behind the newest. */
export const SEQUENCE_WINDOW = 1024;

/**
 * Tells new sequence numbers from duplicates and from ones older than the newest accepted, remembering the
 * last {@link SEQUENCE_WINDOW} (older ones are all "stale").
 */
export class SequenceWindow {
  /** The newest accepted (0: none yet). */
  newest = 0;
  /** Bit i: newest - i was seen (bit 0 is newest itself). */
  private readonly seen = new Uint32Array(SEQUENCE_WINDOW / 32);

  /**
   * `new` (accepted: newer than all before — delivery stays in order), `duplicate` (seen before) or `stale`
   * (older than the newest, not seen: reordered or too late).
   */
  accept(seq: number): "new" | "duplicate" | "stale" {
    if (seq > this.newest) {
      this.shift(seq - this.newest);
      this.newest = seq;
      this.seen[0] = this.seen[0]! | 1;
      return "new";
    }
    const age = this.newest - seq;
    if (age >= SEQUENCE_WINDOW) return "stale";
    const word = age >>> 5;
    const bit = 1 << (age & 31);
    if (this.seen[word]! & bit) return "duplicate";
    this.seen[word] = this.seen[word]! | bit; // seen now: a second copy is a duplicate
    return "stale";
  }

  /** Moves the window `n` places (bit i becomes bit i + n). */
  private shift(n: number): void {
    const s = this.seen;
    if (n >= SEQUENCE_WINDOW) {
      s.fill(0);
      return;
    }
    const words = n >>> 5;
    const bits = n & 31;
    for (let i = s.length - 1; i >= 0; i--) {
      const from = i - words;
      const lo = from >= 0 ? s[from]! : 0;
      const lower = from - 1 >= 0 ? s[from - 1]! : 0;
      s[i] = bits === 0 ? lo : ((lo << bits) | (lower >>> (32 - bits))) >>> 0;
    }
  }
}
