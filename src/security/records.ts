/**
 * The record layer of the secure channel, as pure state machines (no streams), so that it can be tested
 * byte by byte and fuzzed at in-process speed: a record is `u16 BE length · AEAD ciphertext` (length ≤
 * 65,535, the tag included), sealed with the next nonce of the sender's CipherState, and rekeyed every
 * `rekeyInterval` records. channel.ts runs them over a socket.
 */
import { EzipcError } from "../errors.js";
import { type CipherState, MAX_MESSAGE, TAG_BYTES } from "./noise.js";

/** Most plaintext bytes in one record. */
export const MAX_PLAINTEXT = MAX_MESSAGE - TAG_BYTES;

const EMPTY = new Uint8Array(0);
const EMPTY_BUF = Buffer.alloc(0);

/**
 * Seals `chunks` in records of at most {@link MAX_PLAINTEXT} bytes, without joining them first; returns
 * the pieces to write, in order. Throws `EZIPC_PROTOCOL` when the nonces are exhausted.
 */
export function sealRecords(cs: CipherState, chunks: readonly Buffer[], rekeyInterval: number): Buffer[] {
  const out: Buffer[] = [];
  let parts: Buffer[] = [];
  let length = 0;
  const seal = () => {
    const sealed = cs.encryptParts(EMPTY, parts, length);
    if (cs.n % rekeyInterval === 0) cs.rekey();
    const head = Buffer.allocUnsafe(2);
    head.writeUInt16BE(length + TAG_BYTES, 0);
    out.push(head, ...sealed);
    parts = [];
    length = 0;
  };
  for (const chunk of chunks) {
    for (let pos = 0; pos < chunk.length; ) {
      const take = Math.min(chunk.length - pos, MAX_PLAINTEXT - length);
      parts.push(pos === 0 && take === chunk.length ? chunk : chunk.subarray(pos, pos + take));
      length += take;
      pos += take;
      if (length === MAX_PLAINTEXT) seal();
    }
  }
  if (length > 0) seal();
  return out;
}

/**
 * Opens records as their bytes arrive, split anywhere. Holds at most one incomplete record (≤ 65,537
 * bytes). A record that fails authentication throws `EZIPC_DECRYPT`; the reader is then unusable (the
 * connection closes).
 */
export class RecordReader {
  private pending: Buffer = EMPTY_BUF;
  private failed: EzipcError | null = null;

  constructor(
    private readonly cs: CipherState,
    private readonly rekeyInterval: number,
  ) {}

  /** Bytes of an incomplete record held. */
  get pendingBytes(): number {
    return this.pending.length;
  }

  /** Opens every complete record in what arrived so far, calling `onPlain` with each non-empty plaintext. */
  push(chunk: Buffer, onPlain: (plain: Buffer) => void): void {
    if (this.failed) throw this.failed;
    const buf = this.pending.length === 0 ? chunk : Buffer.concat([this.pending, chunk]);
    let pos = 0;
    while (buf.length - pos >= 2) {
      const len = buf.readUInt16BE(pos);
      if (buf.length - pos - 2 < len) break;
      const plain = this.cs.decrypt(EMPTY, buf.subarray(pos + 2, pos + 2 + len));
      if (plain === null) {
        this.pending = EMPTY_BUF;
        this.failed = new EzipcError("EZIPC_DECRYPT", "a record failed authentication: connection closed");
        throw this.failed;
      }
      if (this.cs.n % this.rekeyInterval === 0) this.cs.rekey();
      pos += 2 + len;
      if (plain.length > 0) onPlain(plain);
    }
    // Node does not reuse a socket's chunks: the unread tail is kept as a view, not copied.
    this.pending = pos < buf.length ? buf.subarray(pos) : EMPTY_BUF;
  }
}
