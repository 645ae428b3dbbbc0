/**
 * The datagram format of udp:// (docs/protocol.md, "Over UDP"), as pure functions and a pure state
 * machine: one datagram is one ezipc frame, with no length prefix (the datagram has one) — a header byte,
 * an optional 64-bit sequence number, then the body.
 *
 * - Header byte: the kind in the low nibble (0 DATA, 1 PING, 2 PONG, 3 CLOSE; 4–7 for encrypted
 *   datagrams), bit 7 set when a sequence number follows (u64 big-endian, per sender and connection, from 1).
 *   Other bits are zero.
 * - DATA carries the frame's payload; CLOSE a UTF-8 reason of at most 255 bytes; PING and PONG nothing.
 *
 * {@link SequenceWindow} is the receiver's side of the sequence numbers: the newest seen and a bitmap of
 * the 1024 before it, so a datagram is told apart as new, a duplicate, or older than what was delivered.
 */

export const KIND_DATA = 0;
export const KIND_PING = 1;
export const KIND_PONG = 2;
export const KIND_CLOSE = 3;
/**
 * Encrypted datagrams (docs/security.md, "Datagrams"): the handshake's first message, its answer, an
 * unauthenticated refusal, and a sealed datagram (whose plaintext is a datagram of the kinds above). The
 * transport routes them by kind; the security layer makes and reads them.
 */
export const KIND_HANDSHAKE = 4;
export const KIND_HANDSHAKE_REPLY = 5;
export const KIND_REFUSAL = 6;
export const KIND_SEALED = 7;
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
 * The newest number marked and which of the `size` numbers before it were marked too: the state both the
 * sequence numbers here and the encrypted datagrams' anti-replay window (src/security/datagrams.ts) keep.
 */
export class SlidingWindow {
  /** The newest marked (-1: none yet). */
  newest = -1;
  /** Bit i: newest - i was marked (bit 0 is newest itself). */
  private readonly bits: Uint32Array;

  constructor(readonly size = SEQUENCE_WINDOW) {
    if (size % 32 !== 0 || size < 32) throw new RangeError("a window is a multiple of 32 numbers");
    this.bits = new Uint32Array(size / 32);
  }

  /**
   * Where `n` stands: `ahead` (newer than every marked one), `seen` (marked), `tooOld` (`size` or more
   * behind the newest: no longer remembered), `missing` (in the window, not marked).
   */
  check(n: number): "ahead" | "seen" | "tooOld" | "missing" {
    if (n > this.newest) return "ahead";
    const age = this.newest - n;
    if (age >= this.size) return "tooOld";
    return this.bits[age >>> 5]! & (1 << (age & 31)) ? "seen" : "missing";
  }

  /** Marks `n` (ahead of the window: moves it; too old: nothing). */
  mark(n: number): void {
    if (n > this.newest) {
      this.shift(this.newest < 0 ? this.size : n - this.newest);
      this.newest = n;
      this.bits[0] = this.bits[0]! | 1;
      return;
    }
    const age = this.newest - n;
    if (age >= this.size) return;
    this.bits[age >>> 5] = this.bits[age >>> 5]! | (1 << (age & 31));
  }

  /** Moves the window `n` places (bit i becomes bit i + n). */
  private shift(n: number): void {
    const s = this.bits;
    if (n >= this.size) {
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

/**
 * Tells new sequence numbers from duplicates and from ones older than the newest accepted, remembering the
 * last {@link SEQUENCE_WINDOW} (older ones are all "stale").
 */
export class SequenceWindow {
  private readonly window = new SlidingWindow();

  /**
   * `new` (accepted: newer than all before — delivery stays in order), `duplicate` (seen before) or `stale`
   * (older than the newest, not seen: reordered or too late).
   */
  accept(seq: number): "new" | "duplicate" | "stale" {
    const where = this.window.check(seq);
    if (where === "ahead") {
      this.window.mark(seq);
      return "new";
    }
    if (where === "seen") return "duplicate";
    if (where === "missing") this.window.mark(seq); // seen now: a second copy is a duplicate
    return "stale";
  }
}
