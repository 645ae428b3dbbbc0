/**
 * The byte layout of an ezipc shared-memory file (version 1), as docs/shm.md describes it for readers in
 * any language. All integers are little-endian; every offset below is in bytes.
 *
 * A file is a 4096-byte header followed by a ring of `ringBytes` bytes.
 *
 * Header:
 *   0  u32  magic "EZSH"            4  u32  layout version (1)
 *   8  u32  kind (1 topic, 2 RPC requests, 3 inbox, 4 deadman)   12  u32  header bytes (4096)
 *  16  u32  ring bytes R           20  u32  messages kept at most (0: bounded by bytes only)
 *  24  i32  generation G: state block (G & 1) is the current state (a seqlock; see ring.ts)
 *  28  i32  sleepers: consumer slots whose `sleeping` word is 1
 *  32  f64  created, ms since the epoch        40  u32  claim entries C (RPC request files; else 0)
 *  44  i32  writers waiting: slots whose `writer waiting` word is 1 (publishers held for a slow reader)
 *  64       robust process-shared pthread mutex (writers take it; 64 bytes reserved)
 * 128       state block 0 (64 bytes)       192   state block 1 (64 bytes)
 * 256       60 consumer slots of 64 bytes
 *
 * State block (u32 words; a 64-bit seq is lo, hi):
 *   0 next seq (the seq the next message gets; the first is 1)    8 tail seq (the oldest kept)
 *  16 head (ring offset of the next packet)  20 tail (ring offset of the oldest packet)
 *  24 used (bytes from tail to head, pads included)  28 last (ring offset of the newest packet)
 *  32 recoveries (writers that died holding the lock and were taken over)
 *
 * After the ring (RPC request files): C claim entries of 24 bytes, entry (seq mod C) for request seq:
 *   0 u32 low 32 bits of the seq claimed (the claim: set by compare-and-swap), 4 i32 pid of the server
 *   that claimed it, 8 f64 its start time, 16 u32 the seq's low bits again once pid and start are written.
 *
 * Consumer slot: 0 i32 pid (0: free), 4 i32 sleeping, 8 f64 process start time (/proc/PID/stat field 22),
 * 16 u32×2 next seq its readers read, 24 i32 holds (1: writers must not evict from that seq on), 28 i32
 * writer waiting (1: this process has messages held back until readers move on), 32 u32×3 (variable files)
 * the pointers the process holds on the variable per policy: request, lazy, poll, 48 u32×2 wake at: the
 * seq the holding readers must all have reached before they wake the waiting writer (0: any move).
 *
 * Packet (at an 8-byte aligned ring offset): 0 u32 size (multiple of 8), 4 u32 kind (1 message, 2 pad:
 * the rest of the ring is unused, continue at offset 0), 8 u32×2 seq, 16 f64 time, 24 u32 meta length,
 * 28 u32 body length, 32 meta bytes then body bytes.
 */

export const MAGIC = 0x48535a45; // "EZSH" read as a little-endian u32
export const VERSION = 1;
export const KIND_TOPIC = 1;
export const KIND_RPC = 2;
export const KIND_INBOX = 3;
/** A deadman token: no ring; the ring's first bytes hold the holder (deadman.ts). */
export const KIND_DEADMAN = 4;
/** A shared variable: no ring; two value buffers where a topic's ring would be (var-file.ts). */
export const KIND_VAR = 5;
export const HEADER_BYTES = 4096;

// Header word offsets (bytes).
export const H_MAGIC = 0;
export const H_VERSION = 4;
export const H_KIND = 8;
export const H_HEADER_BYTES = 12;
export const H_RING_BYTES = 16;
export const H_MAX_COUNT = 20;
export const H_GEN = 24;
export const H_SLEEPERS = 28;
export const H_CREATED = 32;
export const H_CLAIMS = 40;
export const H_WRITERS_WAITING = 44;
export const CLAIM_BYTES = 24;
/** Claim entries of an RPC request file. */
export const RPC_CLAIMS = 4096;
export const H_MUTEX = 64;
export const H_STATE = 128;
export const STATE_BYTES = 64;
export const H_SLOTS = 256;
export const SLOT_BYTES = 64;
export const SLOT_COUNT = (HEADER_BYTES - H_SLOTS) / SLOT_BYTES;

// State block word offsets (bytes, within a block).
export const S_NEXT_LO = 0;
export const S_NEXT_HI = 4;
export const S_TAIL_SEQ_LO = 8;
export const S_TAIL_SEQ_HI = 12;
export const S_HEAD = 16;
export const S_TAIL = 20;
export const S_USED = 24;
export const S_LAST = 28;
export const S_RECOVERIES = 32;

// Consumer slot offsets (bytes, within a slot).
export const C_PID = 0;
export const C_SLEEPING = 4;
export const C_START = 8;
export const C_NEXT_LO = 16;
export const C_NEXT_HI = 20;
export const C_HOLDS = 24;
export const C_WRITER_WAITING = 28;
/** The i32/u32 index of `field` (a byte offset within a slot) of consumer slot `slot`. */
export const slotWord = (slot: number, field: number): number => (H_SLOTS + slot * SLOT_BYTES + field) / 4;
/** The f64 index of slot `slot`'s process start time. */
export const slotStart = (slot: number): number => (H_SLOTS + slot * SLOT_BYTES + C_START) / 8;
/** Shared variables: the pointers this slot's process holds, per policy (u32 × 3: request, lazy, poll). */
export const C_REFS = 32;
/** A waiting writer is woken once every holding reader has reached this seq (u32 × 2; 0: at any move). */
export const C_WAKE_AT_LO = 48;
export const C_WAKE_AT_HI = 52;
/** Readers (subscriptions) of this slot's process on the file, for `topics()` (0 in files of older versions: one). */
export const C_READERS = 56;

// Packet.
export const P_SIZE = 0;
export const P_KIND = 4;
export const P_SEQ_LO = 8;
export const P_SEQ_HI = 12;
export const P_TIME = 16;
export const P_META = 24;
export const P_BODY = 28;
export const PACKET_HEAD = 32;
export const KIND_MESSAGE = 1;
export const KIND_PAD = 2;

/** Default ring: 16 MiB, as AlephZero's default topic. */
export const DEFAULT_RING_BYTES = 16 * 1024 * 1024;
export const MIN_RING_BYTES = 4096;
export const MAX_RING_BYTES = 1024 * 1024 * 1024;

export const align8 = (n: number): number => (n + 7) & ~7;
