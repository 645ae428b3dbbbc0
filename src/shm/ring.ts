/**
 * A topic's ring in shared memory: variable-length packets, many writers (one at a time, under the file's
 * robust mutex), any number of readers that never block a writer.
 *
 * Consistency, whatever instruction a process dies at:
 * - The ring's state (next seq, oldest seq, head, tail, bytes used, newest packet) lives in two blocks;
 *   the generation word names the current one. A writer fills the other block, then stores the new
 *   generation (one atomic store): that store is the commit. A writer that dies before it leaves the last
 *   committed state, which describes only whole packets. The next writer gets EOWNERDEAD from the mutex,
 *   marks it consistent and goes on from that state: there is nothing to repair.
 * - Bytes of a packet are overwritten only after a committed state has evicted it (the writer commits
 *   the eviction first, then writes). So a reader that copies a packet and then sees, in the state read
 *   after the copy, that the packet is still kept, has an intact copy; otherwise it drops the copy and
 *   reports a gap. A reader never returns a torn packet, and never waits for a writer.
 * - Readers read the state as a seqlock: generation, block, generation again; retry if it changed.
 */
import { EzipcError } from "../errors.js";
import { viewAt } from "../views.js";
import { lockFile, unlockFile } from "./file-lock.js";
import {
  H_GEN,
  H_STATE,
  HEADER_BYTES,
  KIND_MESSAGE,
  KIND_PAD,
  P_BODY,
  P_KIND,
  P_META,
  P_SEQ_HI,
  P_SEQ_LO,
  P_SIZE,
  P_TIME,
  PACKET_HEAD,
  S_HEAD,
  S_LAST,
  S_NEXT_HI,
  S_NEXT_LO,
  S_RECOVERIES,
  S_TAIL,
  S_TAIL_SEQ_HI,
  S_TAIL_SEQ_LO,
  S_USED,
  STATE_BYTES,
} from "./layout.js";
import { type PacketSource, SinglePacket } from "./packed.js";
import { populate } from "./populate.js";
import { readBuffer } from "./read-blocks.js";
import type { MappedFile } from "./shm-file.js";

const TWO32 = 2 ** 32;
/** A committed state of the ring (seqs as numbers: exact up to 2^53). */
export interface RingState {
  /** The seq the next message gets. */
  next: number;
  /** The oldest message kept (== next when the ring is empty). */
  tailSeq: number;
  head: number;
  tail: number;
  used: number;
  /** Ring offset of the newest message (meaningless when empty). */
  last: number;
  recoveries: number;
}

/**
 * A message read from a ring: its packet (head, meta, body) is copied out of shared memory into one buffer
 * (shared by the messages of one read, as a socket's chunk is shared by the frames it carries), valid
 * forever. The body is a view made with the message; the meta, just before it, and the time, in the
 * packet's head before that, are read from the copy when asked. A message carries three fields (at 64 B, the
 * young-generation GC was a sixth of a subscriber's time; a time field cost a number box per message).
 * Layers above extend it (a topic message adds its topic).
 */
export class RingMessage {
  constructor(
    /** The message's seq in its ring. */
    readonly seqNumber: number,
    /** The body's bytes; the meta's `metaLength` bytes are just before them, the packet's head before that. */
    readonly body: Buffer,
    readonly metaLength: number,
  ) {}

  get bodyLength(): number {
    return this.body.length;
  }

  /** The meta's bytes (a view, made at each call). */
  get meta(): Buffer {
    const b = this.body;
    return Buffer.from(b.buffer, b.byteOffset - this.metaLength, this.metaLength);
  }

  /** The publisher's time (ms since the epoch), from the packet's head. */
  get time(): number {
    const b = this.body;
    return Buffer.from(b.buffer, b.byteOffset - this.metaLength - PACKET_HEAD + P_TIME, 8).readDoubleLE(0);
  }
}

/**
 * Makes the message objects a read returns (a RingMessage or a subclass): `body` is a view of the read's
 * copy, the meta's `metaLength` bytes just before it.
 */
export type RingMessageFactory<M extends RingMessage> = (seq: number, body: Buffer, metaLength: number) => M;

export const ringMessage: RingMessageFactory<RingMessage> = (seq, body, ml) => new RingMessage(seq, body, ml);

/** Bytes of a ring a writer populates at once, ahead of its writes (one madvise per 64 KiB of its first lap:
 * a topic with a few messages costs that much memory, not its whole ring). */
const POPULATE_CHUNK = 64 * 1024;

/** Bytes one read copies out at most (more only for a single larger message). */
const READ_CHUNK = 64 * 1024;
/** The most packets one run of a read can hold. */
const MAX_RUN_PACKETS = READ_CHUNK / PACKET_HEAD + 1;

/** Where a reader is: the seq it reads next and that packet's ring offset (-1: find it from the state). */
export interface RingCursor {
  seq: number;
  offset: number;
}

/** A private word for full fences (an atomic read-modify-write orders the plain reads before it). */
const fenceWord = new Int32Array(new SharedArrayBuffer(4));

export class TopicRing {
  private readonly R: number;
  private readonly ringBase: number;
  private readonly writerState = emptyState();
  /** The last read's copy of the ring (its messages are views of it), and the ring offset of its first byte. */
  lastRunCopy: Buffer = Buffer.alloc(0);
  lastRunStart = 0;
  /** A read's run: offset, meta length, body length per packet (reused). */
  private found = new Uint32Array(256 * 3);

  constructor(readonly file: MappedFile) {
    this.R = file.ringBytes;
    this.ringBase = HEADER_BYTES;
  }

  /** The committed state (retries while a writer commits; throws EZIPC_SHM_BAD_FILE if it is insane). */
  state(out: RingState = emptyState()): RingState {
    const { u32, i32 } = this.file;
    for (let tries = 0; tries < 10_000; tries++) {
      // A seqlock read: the generation, plain reads of its block, a full fence, the generation again (an
      // atomic per field cost 2/3 of the read; a torn block is caught by the second look, or the checks).
      const g = Atomics.load(i32, H_GEN / 4);
      const b = (H_STATE + (g & 1) * STATE_BYTES) / 4;
      out.next = u32[b + S_NEXT_LO / 4]! + u32[b + S_NEXT_HI / 4]! * TWO32;
      out.tailSeq = u32[b + S_TAIL_SEQ_LO / 4]! + u32[b + S_TAIL_SEQ_HI / 4]! * TWO32;
      out.head = u32[b + S_HEAD / 4]!;
      out.tail = u32[b + S_TAIL / 4]!;
      out.used = u32[b + S_USED / 4]!;
      out.last = u32[b + S_LAST / 4]!;
      out.recoveries = u32[b + S_RECOVERIES / 4]!;
      Atomics.add(fenceWord, 0, 0); // the reads above happen before the look below
      if (Atomics.load(i32, H_GEN / 4) !== g) continue;
      const R = this.R;
      if (
        out.tailSeq > out.next ||
        out.head >= R ||
        out.tail >= R ||
        out.last >= R ||
        out.used > R ||
        (out.head | out.tail | out.last) % 8 !== 0 ||
        (out.tailSeq === out.next) !== (out.used === 0)
      ) {
        throw new EzipcError("EZIPC_SHM_BAD_FILE", `${this.file.path}: the ring's state is corrupted`);
      }
      return out;
    }
    throw new EzipcError("EZIPC_SHM_BAD_FILE", `${this.file.path}: the ring's state never settled`);
  }

  /** The seq the next message will get (a consistent read of the state's `next` alone: no allocation). */
  nextSeq(): number {
    const { u32, i32 } = this.file;
    for (let tries = 0; tries < 10_000; tries++) {
      const g = Atomics.load(i32, H_GEN / 4);
      const b = (H_STATE + (g & 1) * STATE_BYTES) / 4;
      const next = Atomics.load(u32, b + S_NEXT_LO / 4) + Atomics.load(u32, b + S_NEXT_HI / 4) * TWO32;
      if (Atomics.load(i32, H_GEN / 4) === g) return next;
    }
    throw new EzipcError("EZIPC_SHM_BAD_FILE", `${this.file.path}: the ring's state never settled`);
  }

  private commit(s: RingState): void {
    const { u32, i32 } = this.file;
    const g = Atomics.load(i32, H_GEN / 4);
    const b = (H_STATE + ((g + 1) & 1) * STATE_BYTES) / 4;
    // Plain stores into the block nobody reads now, then one sequentially consistent store of the
    // generation: it orders them before it (a release) and is the commit.
    u32[b + S_NEXT_LO / 4] = s.next % TWO32;
    u32[b + S_NEXT_HI / 4] = Math.floor(s.next / TWO32);
    u32[b + S_TAIL_SEQ_LO / 4] = s.tailSeq % TWO32;
    u32[b + S_TAIL_SEQ_HI / 4] = Math.floor(s.tailSeq / TWO32);
    u32[b + S_HEAD / 4] = s.head;
    u32[b + S_TAIL / 4] = s.tail;
    u32[b + S_USED / 4] = s.used;
    u32[b + S_LAST / 4] = s.last;
    u32[b + S_RECOVERIES / 4] = s.recoveries;
    Atomics.store(i32, H_GEN / 4, (g + 1) | 0); // the commit
  }

  /** Takes the writers' mutex; returns true if its last holder had died holding it. */
  private lock(): boolean {
    return lockFile(this.file);
  }

  private unlock(): void {
    unlockFile(this.file);
  }

  /** Largest packet a ring takes: a quarter of it, so a full ring always holds several. */
  get maxPacketBytes(): number {
    return this.R >> 2;
  }

  /** Throws `EZIPC_SHM_TOO_LARGE` unless a packet of `size` bytes (see {@link PacketSource.packetBytes}) fits the ring. */
  checkFits(size: number): void {
    if (size <= this.maxPacketBytes) return;
    throw new EzipcError(
      "EZIPC_SHM_TOO_LARGE",
      `${size - PACKET_HEAD} bytes do not fit ${this.file.path} (at most ${this.maxPacketBytes - PACKET_HEAD} per message, meta included)`,
    );
  }

  /**
   * Appends one message (meta and body copied in; `head`, if given, goes before the body: the message's
   * body is the two back to back); returns its seq. With `floor`, the messages it would
   * have to evict must all be below `floor(first seq to evict)` (asked once, when an eviction is first
   * needed); otherwise nothing is written and it returns -1 (a reader holds the writers).
   */
  append(
    meta: Uint8Array,
    body: Uint8Array,
    time: number,
    floor?: (evicting: number) => number,
    head?: Uint8Array,
  ): number {
    const n = this.appendMany(this.single.set(meta, body, head), 0, 1, time, floor);
    this.single.forget();
    return n === 1 ? this.writerState.next - 1 : -1;
  }

  private readonly single = new SinglePacket();

  // The packets placed in the state and not yet copied into the ring: `run.src` packets [from, to), at
  // ring offset `start` on, with seqs from `seq` on. They are copied with one bulk copy before anything
  // reads their place: before an eviction (which may read their headers, and commits) and at the end.
  private readonly run = { src: null as PacketSource | null, from: 0, to: 0, start: 0, seq: 0, time: 0 };

  /**
   * Appends packets `from..to` of `src` in order under one lock, with one commit (plus one per eviction).
   * Returns how many were appended: fewer than asked when `floor` stops an eviction (see {@link append}).
   * Their seqs are consecutive.
   */
  appendMany(
    src: PacketSource,
    from: number,
    to: number,
    time: number,
    floor?: (evicting: number) => number,
  ): number {
    if (to > from) this.checkFits(src.largestPacket());
    const recovered = this.lock();
    const run = this.run;
    try {
      const s = this.state(this.writerState); // the writer holds the lock: one object suffices
      if (recovered) s.recoveries++;
      const bound = { value: Number.POSITIVE_INFINITY, asked: floor === undefined };
      run.src = src;
      run.from = run.to = from;
      run.time = time;
      let i = from;
      if (to - from > 1 && this.file.maxCount === 0) {
        // A batch that fits before the ring's end is placed as one block: what placing it packet by packet
        // would give (no pad, the same packets in the same places), with the evictions for all of it made
        // at once instead of one check per packet. A reader's hold that stops them: packet by packet.
        const total = src.bytesBetween(from, to);
        if (s.head + total <= this.R && total <= this.maxPacketBytes) {
          const start = this.place(s, total, floor, bound);
          if (start >= 0) {
            run.start = start;
            run.seq = s.next - 1;
            s.next += to - from - 1;
            s.last = start + total - src.packetBytes(to - 1);
            i = to;
          }
        }
      }
      for (; i < to; i++) {
        run.to = i;
        const start = this.place(s, src.packetBytes(i), floor, bound);
        if (start < 0) break;
        if (run.from === i) {
          run.start = start;
          run.seq = s.next - 1;
        }
      }
      run.to = i;
      this.copyRun();
      if (i > from) this.commit(s);
      return i - from;
    } finally {
      run.src = null;
      this.unlock();
    }
  }

  /** Copies the pending run into the ring, with its seqs and time. */
  private copyRun(): void {
    const run = this.run;
    if (run.to === run.from) return;
    const { u32, f64, bytes } = this.file;
    run.src!.writePackets(run.from, run.to, bytes, u32, f64, this.ringBase + run.start, run.seq, run.time);
    run.seq += run.to - run.from;
    run.from = run.to;
  }

  /**
   * Makes room for a packet of `size` bytes at the head of `s`: evicts what it must (committing that
   * first), pads to the ring's start if the packet does not fit before the end. Returns the packet's
   * offset (its bytes are the pending run's to copy), or -1 if `floor` stopped an eviction.
   */
  private place(
    s: RingState,
    size: number,
    floor: ((evicting: number) => number) | undefined,
    bound: { value: number; asked: boolean },
  ): number {
    const R = this.R;
    const maxCount = this.file.maxCount;
    const { u32 } = this.file;
    let evicted = false;
    const pos = s.head;
    // A packet never wraps: if it does not fit before the ring's end, a pad fills the rest.
    const pad = pos + size > R ? R - pos : 0;
    // When it must evict, it evicts a little more than it needs (rings of 1 MiB or more: 1/16 of the
    // ring, at most 64 KiB), so that the next appends need no eviction and commit once instead of twice.
    // Only what is needed is mandatory: a reader's hold stops the extra quietly.
    const extra = R >= 1024 * 1024 ? Math.min(R >> 4, 64 * 1024) : 0;
    for (;;) {
      const needed = s.used + pad + size > R || (maxCount > 0 && s.next - s.tailSeq >= maxCount);
      if (!needed && (!evicted || s.used === 0 || s.used + pad + size + extra <= R)) break;
      if (!evicted) this.copyRun(); // what it evicts, and what it commits, must be written
      // Evict the oldest packet (or the pad at the tail).
      const at = (this.ringBase + s.tail) / 4;
      const kind = u32[at + P_KIND / 4]!;
      const psize = u32[at + P_SIZE / 4]!;
      if (
        psize < 8 ||
        psize % 8 !== 0 ||
        s.tail + psize > R ||
        (kind !== KIND_MESSAGE && kind !== KIND_PAD)
      ) {
        throw new EzipcError("EZIPC_SHM_BAD_FILE", `${this.file.path}: a packet header is corrupted`);
      }
      if (kind === KIND_MESSAGE) {
        if (!bound.asked) {
          bound.value = floor!(s.tailSeq);
          bound.asked = true;
        }
        if (s.tailSeq >= bound.value) {
          if (!needed) break; // the extra stops at the reader
          if (evicted) this.commit(s); // what was evicted stays evicted; nothing of this packet written
          return -1; // a reader has not read it
        }
        s.tailSeq++;
      }
      s.used -= psize;
      s.tail = s.tail + psize === R ? 0 : s.tail + psize;
      evicted = true;
    }
    if (evicted) this.commit(s); // evicted before anything is overwritten
    // Pages this process has not written yet get their memory first (EZIPC_SHM_FULL, not SIGBUS, when
    // /dev/shm is full); nothing of this packet is written or committed if that fails.
    const end = pad > 0 ? Math.max(pos + 8, size) : pos + size;
    if (end > this.populated) this.populateTo(end);
    let start = pos;
    if (pad > 0) {
      this.copyRun(); // the run ends at the pad
      const at = (this.ringBase + pos) / 4;
      u32[at + P_SIZE / 4] = pad;
      u32[at + P_KIND / 4] = KIND_PAD;
      start = 0;
    }
    s.used += pad + size;
    s.head = start + size === R ? 0 : start + size;
    s.last = start;
    s.next++;
    return start;
  }

  /** Ring offset up to which this process gave the ring's pages their memory (all of it after one lap). */
  private populated = 0;

  private populateTo(end: number): void {
    const to = Math.min(this.R, Math.ceil(end / POPULATE_CHUNK) * POPULATE_CHUNK);
    populate(this.file, this.ringBase + this.populated, to - this.populated);
    this.populated = to;
  }

  /**
   * Copies up to `max` messages from `cursor` on (advancing it) into `out`, as objects made by `make` (one
   * copy per run of at most 64 KiB; the messages are views of it). Messages evicted before they were read
   * are reported with `onGap(first, last)` and skipped. Returns how many were read.
   */
  read<M extends RingMessage>(
    cursor: RingCursor,
    max: number,
    out: M[],
    onGap: (first: number, last: number) => void,
    make: RingMessageFactory<M> = ringMessage as RingMessageFactory<M>,
  ): number {
    if (this.nextSeq() <= cursor.seq) return 0; // nothing new: no state to read (readers that spin)
    // One state object per ring for reads (reads do not nest, except through onGap: then a fresh one).
    const s = this.state(this.reading > 0 ? emptyState() : this.readerState);
    this.reading++;
    try {
      return this.readFrom(s, cursor, max, out, onGap, make);
    } finally {
      this.reading--;
    }
  }

  private reading = 0;
  private readonly readerState = emptyState();

  private readFrom<M extends RingMessage>(
    s: RingState,
    cursor: RingCursor,
    max: number,
    out: M[],
    onGap: (first: number, last: number) => void,
    make: RingMessageFactory<M>,
  ): number {
    const R = this.R;
    const { u32, bytes } = this.file;
    const ringBase = this.ringBase;
    let relocated = 0;
    for (let attempt = 0; attempt < 1_000; attempt++) {
      if (cursor.seq < s.tailSeq) {
        onGap(cursor.seq, s.tailSeq - 1);
        cursor.seq = s.tailSeq;
        cursor.offset = s.tail;
      }
      if (cursor.seq >= s.next) return 0;
      if (cursor.offset < 0) cursor.offset = this.locate(cursor.seq, s);
      const first = out.length;
      let seq = cursor.seq;
      let off = cursor.offset;
      let broken = false;
      // Walk the headers of a run of consecutive packets (never across the ring's end), then copy the run
      // out at once; the messages are views of that copy.
      let runStart = off;
      // (off, meta length, body length) per packet found, in a typed array kept between reads: an
      // array emptied per read was regrown per read (a measurable part of a 64 B subscriber).
      // A run holds at most READ_CHUNK / PACKET_HEAD + 1 packets, which bounds the array whatever `max` is.
      const limit = Math.min(max, MAX_RUN_PACKETS) * 3;
      if (this.found.length < limit) this.found = new Uint32Array(limit);
      const found = this.found;
      let nFound = 0;
      while (seq < s.next && nFound < limit) {
        const at = (ringBase + off) >> 2;
        const size = u32[at + P_SIZE / 4]!;
        const kind = u32[at + P_KIND / 4]!;
        if (kind === KIND_PAD && size === R - off && off !== 0) {
          if (nFound > 0) break; // the run ends here; the next read goes on from offset 0
          off = 0;
          runStart = 0;
          continue;
        }
        const pseq = u32[at + P_SEQ_LO / 4]! + u32[at + P_SEQ_HI / 4]! * TWO32;
        const ml = u32[at + P_META / 4]!;
        const bl = u32[at + P_BODY / 4]!;
        if (
          kind !== KIND_MESSAGE ||
          pseq !== seq ||
          size % 8 !== 0 ||
          size < PACKET_HEAD ||
          off + size > R ||
          PACKET_HEAD + ml + bl > size
        ) {
          broken = true; // overwritten while we read (checked below), or corrupted
          break;
        }
        if (nFound > 0 && off + size - runStart > READ_CHUNK) break;
        found[nFound] = off;
        found[nFound + 1] = ml;
        found[nFound + 2] = bl;
        nFound += 3;
        seq++;
        off = off + size === R ? 0 : off + size;
        if (off === 0) break; // the run reached the ring's end
      }
      if (nFound > 0) {
        const last = nFound - 3;
        const end = found[last]! + PACKET_HEAD + found[last + 1]! + found[last + 2]!;
        const copy = readBuffer(end - runStart);
        this.lastRunStart = runStart;
        this.lastRunCopy = copy;
        bytes.copy(copy, 0, ringBase + runStart, ringBase + end);
        // (The copy's ArrayBuffer read once: `copy.buffer` is a call into the runtime.)
        const ab = copy.buffer;
        const base = copy.byteOffset + PACKET_HEAD - runStart;
        for (let i = 0, q = cursor.seq; i < nFound; i += 3, q++) {
          const ml = found[i + 1]!;
          out.push(make(q, viewAt(ab, base + found[i]! + ml, found[i + 2]!), ml));
        }
      }
      Atomics.add(fenceWord, 0, 0); // the copies above happen before the state read below
      const after = this.state(s);
      if (after.tailSeq <= cursor.seq) {
        // Nothing we copied was evicted: every copy is whole.
        if (broken && seq === cursor.seq) {
          // Not evicted, yet not where the cursor says. The cursor may be stale: it was placed at the
          // head while the ring was caught up, and this message went to offset 0 behind a pad that has
          // since been evicted and written over. The only other place it can be is offset 0; failing
          // that, walk from the tail once. Still not there: the ring is corrupted.
          if (relocated >= 2) {
            throw new EzipcError("EZIPC_SHM_BAD_FILE", `${this.file.path}: packet ${seq} is corrupted`);
          }
          cursor.offset = relocated++ === 0 && cursor.offset !== 0 ? 0 : this.locate(cursor.seq, after);
          continue;
        }
        const n = out.length - first;
        cursor.seq = seq;
        cursor.offset = off;
        if (!broken || n > 0) return n;
        continue;
      }
      // Some were evicted (and perhaps overwritten) while we copied: keep those still kept.
      let keep = first;
      for (let i = first; i < out.length; i++) if (out[i]!.seqNumber >= after.tailSeq) out[keep++] = out[i]!;
      out.length = keep;
      if (keep > first) {
        // Whole copies, in order, up to where we stopped (the next read goes on from there).
        onGap(cursor.seq, after.tailSeq - 1);
        cursor.seq = seq;
        cursor.offset = off;
        return keep - first;
      }
      out.length = first;
      // Nothing we copied was still kept: the writers lap us. Start over from the newest message, the
      // last one they will overwrite (from the tail, the oldest, we could lose the race forever).
      if (after.next > after.tailSeq && after.next - 1 > cursor.seq) {
        onGap(cursor.seq, after.next - 2);
        cursor.seq = after.next - 1;
        cursor.offset = after.last;
      }
    }
    throw new EzipcError("EZIPC_SHM_BAD_FILE", `${this.file.path}: could not read past the writers`);
  }

  /**
   * The ring offset of message `seq` (tailSeq <= seq < next), walking from the tail. A writer that evicts
   * while we walk can make the walk go astray: the walk is kept only if the tail did not move meanwhile.
   */
  private locate(seq: number, s: RingState): number {
    if (seq === s.next - 1) return s.last;
    const R = this.R;
    const { u32 } = this.file;
    const now = { ...s };
    for (let attempt = 0; attempt < 100; attempt++) {
      if (seq < now.tailSeq) return now.tail; // evicted: the read reports the gap
      let off = now.tail;
      let cur = now.tailSeq;
      for (let steps = 0; steps < R / 8 && cur < seq; steps++) {
        const at = (this.ringBase + off) / 4;
        const size = u32[at + P_SIZE / 4]!;
        const kind = u32[at + P_KIND / 4]!;
        if (size < 8 || size % 8 !== 0 || off + size > R) break;
        if (kind === KIND_MESSAGE) cur++;
        off = off + size === R ? 0 : off + size;
      }
      Atomics.add(fenceWord, 0, 0);
      const { tailSeq, tail } = now;
      this.state(now);
      if (now.tailSeq === tailSeq && now.tail === tail) return off; // nothing was evicted meanwhile
    }
    return now.tail;
  }
}

export function emptyState(): RingState {
  return { next: 1, tailSeq: 1, head: 0, tail: 0, used: 0, last: 0, recoveries: 0 };
}
