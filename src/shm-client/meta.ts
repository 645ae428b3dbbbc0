/**
 * The meta bytes of a shm:// message: who published it and its headers (docs/shm.md).
 *
 *   u8 publisher length, publisher (UTF-8), u8 header count, then per header:
 *   u16 key length, key (UTF-8), u16 value length, value (UTF-8)        (lengths little-endian)
 */
import { EzipcError } from "../errors.js";
import { checkedHeaders } from "../protocol/fields.js";
import { setHeader } from "../protocol/names.js";

/** Encodes the meta of a message; throws `EZIPC_ENCODE` on headers over the limits (as a hub client does). */
export function encodeMeta(publisher: Buffer, headers: Record<string, string> | undefined): Buffer {
  const keys = headers ? checkedHeaders(headers) : [];
  let size = 2 + publisher.length;
  for (const k of keys) size += 4 + Buffer.byteLength(k) + Buffer.byteLength(headers![k]!);
  const out = Buffer.allocUnsafe(size);
  out[0] = publisher.length;
  publisher.copy(out, 1);
  let pos = 1 + publisher.length;
  out[pos++] = keys.length;
  for (const k of keys) {
    const v = headers![k]!;
    const kl = out.write(k, pos + 2, "utf8");
    out.writeUInt16LE(kl, pos);
    pos += 2 + kl;
    const vl = out.write(v, pos + 2, "utf8");
    out.writeUInt16LE(vl, pos);
    pos += 2 + vl;
  }
  return out;
}

const NO_HEADERS: Record<string, string> = Object.freeze({}) as Record<string, string>;

/** Decodes meta bytes; throws `EZIPC_SHM_BAD_FILE` if they do not parse. */
export function decodeMeta(meta: Buffer): { publisher: string; headers: Record<string, string> } {
  const bad = () => new EzipcError("EZIPC_SHM_BAD_FILE", "a message's meta bytes do not parse");
  if (meta.length < 2) throw bad();
  const plen = meta[0]!;
  if (1 + plen + 1 > meta.length) throw bad();
  const publisher = meta.toString("utf8", 1, 1 + plen);
  let pos = 1 + plen;
  const count = meta[pos++]!;
  if (count === 0) {
    if (pos !== meta.length) throw bad();
    return { publisher, headers: NO_HEADERS };
  }
  const headers: Record<string, string> = {};
  for (let i = 0; i < count * 2; i++) {
    if (pos + 2 > meta.length) throw bad();
    const len = meta.readUInt16LE(pos);
    if (pos + 2 + len > meta.length) throw bad();
    pos += 2 + len;
  }
  if (pos !== meta.length) throw bad();
  pos = 2 + plen;
  for (let i = 0; i < count; i++) {
    const kl = meta.readUInt16LE(pos);
    const key = meta.toString("utf8", pos + 2, pos + 2 + kl);
    pos += 2 + kl;
    const vl = meta.readUInt16LE(pos);
    setHeader(headers, key, meta.toString("utf8", pos + 2, pos + 2 + vl));
    pos += 2 + vl;
  }
  return { publisher, headers };
}
