/**
 * The schema codec: seed 003's bitsery idea in TypeScript. Declare a message's shape in code, get its
 * TypeScript type inferred, and encode/decode with straight-line code generated once per schema.
 *
 * @example
 * const Chat = t.struct({ id: t.u32, room: t.string({ maxBytes: 64 }), at: t.f64, text: t.string() });
 * type Chat = Infer<typeof Chat>;
 * const codec = schemaCodec(Chat);
 * const bytes = codec.encode({ id: 1, room: "lobby", at: Date.now(), text: "hi" });
 * const back: Chat = codec.decode(bytes);
 *
 * ## Wire format (all multi-byte numbers little-endian)
 * | type | bytes |
 * |---|---|
 * | `u8 i8 u16 i16 u32 i32 f32 f64` | 1, 1, 2, 2, 4, 4, 4, 8 — two's complement / IEEE 754 |
 * | `u64 i64` | 8, values are `bigint` |
 * | `bool` | 1 byte, 0 or 1 (anything else is `EZIPC_DECODE`) |
 * | `string` | LEB128 byte length (1–5 bytes; non-minimal forms accepted), then UTF-8 |
 * | `bytes` | LEB128 byte length, then the bytes |
 * | `array(T)` | LEB128 element count, then each element |
 * | `fixedArray(T, n)` | n elements, no count |
 * | `optional(T)` | 1 byte 0 (absent) or 1 (present), then T if present |
 * | `struct({...})` | the fields in declaration order, no names, no padding |
 *
 * A schema made only of numbers, bools, fixed arrays and structs of them has a `fixedSize` in bytes.
 *
 * Decoding checks every length against the bytes left before allocating, so hostile input costs at most a
 * small multiple of its own size; trailing bytes are an error.
 *
 * The schema types and `t` are in schema-types.ts; this file compiles them.
 */
import { EzipcError } from "../errors.js";
import type { Codec } from "./codec.js";
import {
  type ArrayType,
  assertSchema,
  type BytesType,
  type Fields,
  type FixedArrayType,
  type Infer,
  type OptionalType,
  type SchemaType,
  type StringType,
  type StructType,
  UNBOUNDED,
} from "./schema-types.js";

export {
  type ArrayType,
  type BigIntType,
  type BoolType,
  type BytesType,
  type Fields,
  type FixedArrayType,
  type Infer,
  type InferStruct,
  type NumberType,
  type OptionalType,
  type SchemaType,
  type StringType,
  type StructType,
  t,
} from "./schema-types.js";

// ---- code generation ------------------------------------------------------------------------------

/** Generates JS source for encode/decode. Variables: buf (Buffer), dv (DataView), pos, end, R (runtime). */
class Gen {
  private n = 0;

  v(prefix: string): string {
    return `${prefix}${this.n++}`;
  }

  /** Statements that write value expression `x` (already in a variable) at pos. `path` is for errors. */
  enc(s: SchemaType<unknown>, x: string, path: string): string {
    const P = JSON.stringify(path);
    switch (s.kind) {
      case "u8":
        return `if ((${x} & 0xff) !== ${x}) R.bad(${P}, ${x}, "u8"); buf[pos++] = ${x};\n`;
      case "i8":
        return `if (((${x} << 24) >> 24) !== ${x}) R.bad(${P}, ${x}, "i8"); buf[pos++] = ${x} & 0xff;\n`;
      case "u16":
        return `if ((${x} & 0xffff) !== ${x}) R.bad(${P}, ${x}, "u16"); buf[pos] = ${x}; buf[pos + 1] = ${x} >>> 8; pos += 2;\n`;
      case "i16":
        return `if (((${x} << 16) >> 16) !== ${x}) R.bad(${P}, ${x}, "i16"); buf[pos] = ${x}; buf[pos + 1] = ${x} >>> 8; pos += 2;\n`;
      case "u32":
        return `if ((${x} >>> 0) !== ${x}) R.bad(${P}, ${x}, "u32"); dv.setUint32(pos, ${x}, true); pos += 4;\n`;
      case "i32":
        return `if ((${x} | 0) !== ${x}) R.bad(${P}, ${x}, "i32"); dv.setInt32(pos, ${x}, true); pos += 4;\n`;
      case "f32":
        return `if (typeof ${x} !== "number") R.bad(${P}, ${x}, "f32"); dv.setFloat32(pos, ${x}, true); pos += 4;\n`;
      case "f64":
        return `if (typeof ${x} !== "number") R.bad(${P}, ${x}, "f64"); dv.setFloat64(pos, ${x}, true); pos += 8;\n`;
      case "u64":
        return `if (typeof ${x} !== "bigint" || BigInt.asUintN(64, ${x}) !== ${x}) R.bad(${P}, ${x}, "u64"); dv.setBigUint64(pos, ${x}, true); pos += 8;\n`;
      case "i64":
        return `if (typeof ${x} !== "bigint" || BigInt.asIntN(64, ${x}) !== ${x}) R.bad(${P}, ${x}, "i64"); dv.setBigInt64(pos, ${x}, true); pos += 8;\n`;
      case "bool":
        return `if (${x} === true) buf[pos++] = 1; else if (${x} === false) buf[pos++] = 0; else R.bad(${P}, ${x}, "bool");\n`;
      case "string": {
        const st = s as StringType;
        return (
          `if (typeof ${x} !== "string") R.bad(${P}, ${x}, "string");\n` +
          `if (pos + 5 + ${x}.length * 3 > buf.length) { R.grow(pos, 5 + ${x}.length * 3); buf = R.buf; dv = R.dv; }\n` +
          `pos = R.writeString(buf, pos, ${x}, ${st.maxBytes}, ${P});\n`
        );
      }
      case "bytes": {
        const bt = s as BytesType;
        return (
          `if (!(${x} instanceof Uint8Array)) R.bad(${P}, ${x}, "Uint8Array");\n` +
          `if (${x}.length > ${bt.maxBytes}) R.tooLong(${P}, ${x}.length, ${bt.maxBytes});\n` +
          `if (pos + 5 + ${x}.length > buf.length) { R.grow(pos, 5 + ${x}.length); buf = R.buf; dv = R.dv; }\n` +
          `pos = R.writeVarint(buf, pos, ${x}.length); buf.set(${x}, pos); pos += ${x}.length;\n`
        );
      }
      case "array":
      case "fixedArray": {
        const at = s as ArrayType<SchemaType<unknown>> | FixedArrayType<SchemaType<unknown>>;
        const i = this.v("i");
        const e = this.v("e");
        let head = `if (!Array.isArray(${x})) R.bad(${P}, ${x}, "array");\n`;
        if (at.kind === "array") {
          head += `if (${x}.length > ${at.maxLength}) R.tooLong(${P}, ${x}.length, ${at.maxLength});\n`;
          head += `if (pos + 5 > buf.length) { R.grow(pos, 5); buf = R.buf; dv = R.dv; }\npos = R.writeVarint(buf, pos, ${x}.length);\n`;
        } else {
          head += `if (${x}.length !== ${at.length}) R.bad(${P}, ${x}, "array of length ${at.length}");\n`;
        }
        return (
          `${head}for (let ${i} = 0; ${i} < ${x}.length; ${i}++) {\nconst ${e} = ${x}[${i}];\n` +
          this.ensure(at.element) +
          this.enc(at.element, e, `${path}[]`) +
          "}\n"
        );
      }
      case "optional": {
        const ot = s as OptionalType<SchemaType<unknown>>;
        return (
          `if (${x} === undefined) { if (pos + 1 > buf.length) { R.grow(pos, 1); buf = R.buf; dv = R.dv; } buf[pos++] = 0; }\n` +
          `else {\nif (pos + 1 > buf.length) { R.grow(pos, 1); buf = R.buf; dv = R.dv; }\nbuf[pos++] = 1;\n` +
          this.ensure(ot.element) +
          this.enc(ot.element, x, path) +
          "}\n"
        );
      }
      case "struct": {
        const so = s as StructType<Fields>;
        let out = `if (typeof ${x} !== "object" || ${x} === null) R.bad(${P}, ${x}, "object");\n`;
        const fields = Object.entries(so.fields);
        // The caller ensured room for the leading run of fixed-size fields (fixedPrefix). Each later run
        // (after a variable-size field) is ensured here, before its first field; a variable field ensures
        // its own room (and a struct's leading run, through ensure()).
        let ensured = 0;
        while (ensured < fields.length && fields[ensured]![1].fixedSize !== undefined) ensured++;
        for (const [k, [name, f]] of fields.entries()) {
          if (k >= ensured) {
            if (f.fixedSize === undefined) {
              out += this.ensure(f);
              ensured = k + 1;
            } else {
              let n = 0;
              for (ensured = k; ensured < fields.length; ensured++) {
                const size = fields[ensured]![1].fixedSize;
                if (size === undefined) break;
                n += size;
              }
              out += `if (pos + ${n} > buf.length) { R.grow(pos, ${n}); buf = R.buf; dv = R.dv; }\n`;
            }
          }
          const fv = this.v("f");
          out += `const ${fv} = ${x}.${name};\n`;
          out += this.enc(f, fv, path ? `${path}.${name}` : name);
        }
        return out;
      }
      default:
        throw new TypeError(`unknown schema kind ${s.kind}`);
    }
  }

  /** Capacity check for a fixed-size part (variable parts check themselves). */
  ensure(s: SchemaType<unknown>): string {
    const n = s.fixedSize ?? fixedPrefix(s);
    return n > 0 ? `if (pos + ${n} > buf.length) { R.grow(pos, ${n}); buf = R.buf; dv = R.dv; }\n` : "";
  }

  /** An expression or statements producing the decoded value of `s` into a new variable; returns [code, var]. */
  dec(s: SchemaType<unknown>, path: string, checked: boolean): [string, string] {
    const r = this.v("r");
    const P = JSON.stringify(path);
    const need = (n: number) => (checked ? "" : `if (pos + ${n} > end) R.short(${P});\n`);
    switch (s.kind) {
      case "u8":
        return [`${need(1)}const ${r} = buf[pos++];\n`, r];
      case "i8":
        return [`${need(1)}const ${r} = (buf[pos++] << 24) >> 24;\n`, r];
      case "u16":
        return [`${need(2)}const ${r} = buf[pos] | (buf[pos + 1] << 8); pos += 2;\n`, r];
      case "i16":
        return [`${need(2)}const ${r} = ((buf[pos] | (buf[pos + 1] << 8)) << 16) >> 16; pos += 2;\n`, r];
      case "u32":
        return [
          `${need(4)}const ${r} = (buf[pos] | (buf[pos + 1] << 8) | (buf[pos + 2] << 16)) + buf[pos + 3] * 0x1000000; pos += 4;\n`,
          r,
        ];
      case "i32":
        return [
          `${need(4)}const ${r} = buf[pos] | (buf[pos + 1] << 8) | (buf[pos + 2] << 16) | (buf[pos + 3] << 24); pos += 4;\n`,
          r,
        ];
      case "f32":
        return [`${need(4)}const ${r} = dv.getFloat32(pos, true); pos += 4;\n`, r];
      case "f64":
        return [`${need(8)}const ${r} = dv.getFloat64(pos, true); pos += 8;\n`, r];
      case "u64":
        return [`${need(8)}const ${r} = dv.getBigUint64(pos, true); pos += 8;\n`, r];
      case "i64":
        return [`${need(8)}const ${r} = dv.getBigInt64(pos, true); pos += 8;\n`, r];
      case "bool":
        return [`${need(1)}const ${r} = R.bool(buf[pos++], ${P});\n`, r];
      case "string": {
        const st = s as StringType;
        const len = this.v("n");
        return [
          `const ${len} = R.readLength(buf, pos, end, ${st.maxBytes}, ${P}); pos = R.pos;\n` +
            `const ${r} = R.readString(buf, pos, pos + ${len}); pos += ${len};\n`,
          r,
        ];
      }
      case "bytes": {
        const bt = s as BytesType;
        const len = this.v("n");
        return [
          `const ${len} = R.readLength(buf, pos, end, ${bt.maxBytes}, ${P}); pos = R.pos;\n` +
            `const ${r} = R.copyBytes(buf, pos, ${len}); pos += ${len};\n`,
          r,
        ];
      }
      case "array":
      case "fixedArray": {
        const at = s as ArrayType<SchemaType<unknown>> | FixedArrayType<SchemaType<unknown>>;
        const len = this.v("n");
        const i = this.v("i");
        const el = at.element;
        let head: string;
        if (at.kind === "array") {
          head = `const ${len} = R.readCount(buf, pos, end, ${at.maxLength}, ${Math.max(1, el.minSize)}, ${P}); pos = R.pos;\n`;
          if (el.fixedSize !== undefined)
            head += `if (pos + ${len} * ${el.fixedSize} > end) R.short(${P});\n`;
        } else {
          head = `const ${len} = ${at.length};\n`;
          if (el.fixedSize !== undefined && !checked) head += need(el.fixedSize * at.length);
        }
        const [ec, ev] = this.dec(el, `${path}[]`, el.fixedSize !== undefined);
        return [
          `${head}const ${r} = [];\nfor (let ${i} = 0; ${i} < ${len}; ${i}++) {\n${ec}${r}.push(${ev});\n}\n`,
          r,
        ];
      }
      case "optional": {
        const ot = s as OptionalType<SchemaType<unknown>>;
        const [ec, ev] = this.dec(ot.element, path, false);
        return [
          `${need(1)}let ${r};\nconst ${r}p = R.bool(buf[pos++], ${P});\nif (${r}p) {\n${ec}${r} = ${ev};\n}\n`,
          r,
        ];
      }
      case "struct": {
        const so = s as StructType<Fields>;
        let code = "";
        const props: string[] = [];
        // Bytes already bounds-checked ahead: a run of fixed-size fields is checked with one comparison.
        let covered = checked ? Number.POSITIVE_INFINITY : 0;
        const entries = Object.entries(so.fields);
        for (let k = 0; k < entries.length; k++) {
          const [name, f] = entries[k]!;
          const fieldPath = path ? `${path}.${name}` : name;
          const fixed = f.fixedSize;
          if (fixed !== undefined && covered < fixed) {
            let run = 0;
            for (let j = k; j < entries.length && entries[j]![1].fixedSize !== undefined; j++) {
              run += entries[j]![1].fixedSize!;
            }
            code += `if (pos + ${run} > end) R.short(${JSON.stringify(fieldPath)});\n`;
            covered = run;
          }
          const [fc, fv] = this.dec(f, fieldPath, fixed !== undefined);
          code += fc;
          covered = fixed !== undefined ? covered - fixed : 0;
          props.push(`${name}: ${fv}`);
        }
        code += `const ${r} = { ${props.join(", ")} };\n`;
        return [code, r];
      }
      default:
        throw new TypeError(`unknown schema kind ${s.kind}`);
    }
  }
}

/** Bytes that every value of `s` starts with a fixed layout for (0 when it starts variable). */
function fixedPrefix(s: SchemaType<unknown>): number {
  if (s.fixedSize !== undefined) return s.fixedSize;
  if (s.kind === "struct") {
    let n = 0;
    for (const f of Object.values((s as StructType<Fields>).fields)) {
      if (f.fixedSize === undefined) return n;
      n += f.fixedSize;
    }
    return n;
  }
  return 0;
}

const TEXT_DECODER = new TextDecoder("utf-8", { fatal: false });
/** The view a decoder that reads no floats or 64-bit integers gets (it never touches it). */
const NO_VIEW = new DataView(new ArrayBuffer(0));

/**
 * Decoded `bytes` under {@link POOLED_MAX} are copied into a shared block of {@link POOL_BYTES}, as
 * `Buffer.allocUnsafe` does into Node's pool: allocating an ArrayBuffer costs 1.5–3 µs here (more than
 * decoding the rest of a message), a slice of a block ~0.2 µs. A kept view keeps its block (at most
 * POOL_BYTES: twice Node's pool, so that 1 KiB values share one eight at a time); larger values get their
 * own ArrayBuffer. docs/codecs.md says so.
 */
const POOL_BYTES = 16 * 1024;
const POOLED_MAX = 2 * 1024;
/** The block being filled (shared by every codec of the process), and its bytes used. */
let pool = Buffer.alloc(0);
/** The pool's ArrayBuffer and offset in it, read once per pool (`buf.buffer` is a call into the runtime). */
let poolBuffer: ArrayBufferLike = pool.buffer;
let poolBase = 0;
let poolUsed = 0;

/** Helpers the generated code calls; `buf`/`dv`/`pos` carry results out of calls that grow or parse. */
class Runtime {
  buf: Buffer;
  dv: DataView;
  pos = 0;

  constructor(initialBytes: number) {
    this.buf = Buffer.allocUnsafeSlow(initialBytes);
    this.dv = new DataView(this.buf.buffer, this.buf.byteOffset, this.buf.byteLength);
  }

  grow(pos: number, need: number): void {
    let size = this.buf.length * 2;
    while (size < pos + need) size *= 2;
    if (size > UNBOUNDED) throw new EzipcError("EZIPC_ENCODE", "schema: encoded value over 2 GiB");
    const next = Buffer.allocUnsafeSlow(size);
    this.buf.copy(next, 0, 0, pos);
    this.buf = next;
    this.dv = new DataView(next.buffer, next.byteOffset, next.byteLength);
  }

  bad(path: string, value: unknown, expected: string): never {
    const shown =
      typeof value === "bigint"
        ? `${value}n`
        : typeof value === "string"
          ? JSON.stringify(value.slice(0, 32))
          : String(value);
    throw new EzipcError("EZIPC_ENCODE", `schema: ${path || "value"} must be ${expected}, got ${shown}`);
  }

  tooLong(path: string, length: number, max: number): never {
    throw new EzipcError(
      "EZIPC_ENCODE",
      `schema: ${path || "value"} has length ${length}, over its limit ${max}`,
    );
  }

  short(path: string): never {
    throw new EzipcError("EZIPC_DECODE", `schema: input ends inside ${path || "value"}`);
  }

  trailing(n: number): never {
    throw new EzipcError("EZIPC_DECODE", `schema: ${n} trailing bytes after the value`);
  }

  bool(b: number, path: string): boolean {
    if (b === 1) return true;
    if (b === 0) return false;
    throw new EzipcError("EZIPC_DECODE", `schema: ${path || "value"} is not a bool (byte ${b})`);
  }

  writeVarint(buf: Buffer, pos: number, v: number): number {
    while (v > 0x7f) {
      buf[pos++] = (v & 0x7f) | 0x80;
      v >>>= 7;
    }
    buf[pos++] = v;
    return pos;
  }

  /** Writes a length-prefixed string; capacity for 5 + 3·length bytes was ensured by the caller. */
  writeString(buf: Buffer, pos: number, s: string, maxBytes: number, path: string): number {
    const n = s.length;
    // Reserve the varint's width from the worst case (3 bytes per UTF-16 unit), pad it afterwards.
    const width = n * 3 < 0x80 ? 1 : n * 3 < 0x4000 ? 2 : n * 3 < 0x20_0000 ? 3 : 5;
    const start = pos + width;
    let p = start;
    let ascii = true;
    if (n <= 64) {
      for (let i = 0; i < n; i++) {
        const c = s.charCodeAt(i);
        if (c >= 0x80) {
          ascii = false;
          break;
        }
        buf[p++] = c;
      }
    } else {
      ascii = false;
    }
    const bytes = ascii ? n : buf.utf8Write(s, start);
    if (bytes > maxBytes) this.tooLong(path, bytes, maxBytes);
    let v = bytes;
    for (let i = 0; i < width - 1; i++) {
      buf[pos++] = (v & 0x7f) | 0x80;
      v >>>= 7;
    }
    buf[pos] = v;
    return start + bytes;
  }

  /** Reads a LEB128 length (≤ 5 bytes) at pos, checks it against `max` and the bytes left; sets R.pos. */
  readLength(buf: Buffer, pos: number, end: number, max: number, path: string): number {
    const n = this.readVarint(buf, pos, end, path);
    if (n > max)
      throw new EzipcError("EZIPC_DECODE", `schema: ${path || "value"} length ${n} over its limit ${max}`);
    if (this.pos + n > end) this.short(path);
    return n;
  }

  /** Reads an element count and checks that `count · minElementBytes` fits in the bytes left. */
  readCount(
    buf: Buffer,
    pos: number,
    end: number,
    max: number,
    minElementBytes: number,
    path: string,
  ): number {
    const n = this.readVarint(buf, pos, end, path);
    if (n > max)
      throw new EzipcError("EZIPC_DECODE", `schema: ${path || "value"} count ${n} over its limit ${max}`);
    if (this.pos + n * minElementBytes > end) this.short(path);
    return n;
  }

  private readVarint(buf: Buffer, pos: number, end: number, path: string): number {
    let v = 0;
    for (let shift = 0; shift < 35; shift += 7) {
      if (pos >= end) this.short(path);
      const b = buf[pos++]!;
      v += (b & 0x7f) * 2 ** shift;
      if (b < 0x80) {
        this.pos = pos;
        return v;
      }
    }
    throw new EzipcError("EZIPC_DECODE", `schema: ${path || "value"} has a length over 5 bytes`);
  }

  /** A copy of `buf[start, start + n)` that shares no memory with `buf` (see {@link POOL_BYTES}). */
  copyBytes(buf: Buffer, start: number, n: number): Uint8Array {
    if (n >= POOLED_MAX)
      return new Uint8Array(buf.buffer.slice(buf.byteOffset + start, buf.byteOffset + start + n));
    if (poolUsed + n > pool.length) {
      pool = Buffer.allocUnsafeSlow(POOL_BYTES); // (a Buffer: the browser build's Buffer#copy wants one)
      poolBuffer = pool.buffer;
      poolBase = pool.byteOffset;
      poolUsed = 0;
    }
    const at = poolUsed;
    if (n > 0) buf.copy(pool, at, start, start + n);
    poolUsed = (at + n + 7) & ~7; // 8-aligned, as Node's pool
    return new Uint8Array(poolBuffer, poolBase + at, n);
  }

  readString(buf: Buffer, start: number, end: number): string {
    const n = end - start;
    if (n <= 16) {
      let s = "";
      for (let i = start; i < end; i++) {
        const c = buf[i]!;
        if (c >= 0x80) return buf.utf8Slice(start, end);
        s += String.fromCharCode(c);
      }
      return s;
    }
    return n < 256 ? buf.utf8Slice(start, end) : TEXT_DECODER.decode(buf.subarray(start, end));
  }
}

declare global {
  interface Buffer {
    /** Node's internal fast UTF-8 write (no encoding lookup). */
    utf8Write(s: string, offset?: number, length?: number): number;
    /** Node's internal fast UTF-8 read. */
    utf8Slice(start?: number, end?: number): string;
    /** Node's internal fast Latin-1 read (ASCII text such as topic names). */
    latin1Slice(start?: number, end?: number): string;
  }
}

/** A compiled codec for one schema. */
export interface SchemaCodec<T> extends Codec<T> {
  readonly schema: SchemaType<T>;
  /** The encoded size when fixed (see {@link SchemaType.fixedSize}). */
  readonly fixedSize: number | undefined;
  /**
   * Encodes into the codec's reused buffer and returns a view of it, valid until the next encode on this
   * codec. Throws `EZIPC_ENCODE` for a value that does not match the schema.
   */
  encode(value: T): Buffer;
  /** Decodes exactly one value that fills `bytes`; throws `EZIPC_DECODE` otherwise. */
  decode(bytes: Uint8Array): T;
}

/**
 * Compiles `schema` into a codec (code generated once; keep the codec and reuse it).
 *
 * @param options.name the codec's name (default `schema`).
 * @param options.initialBytes the first size of the reused encode buffer (default 4 KiB; it doubles as needed).
 */
export function schemaCodec<S extends SchemaType<unknown>>(
  schema: S,
  options: { name?: string; initialBytes?: number } = {},
): SchemaCodec<Infer<S>> {
  assertSchema(schema);
  const gen = new Gen();
  const encBody = gen.ensure(schema) + gen.enc(schema, "value", "");
  const [decCode, decVar] = gen.dec(schema, "", false);
  const R = new Runtime(options.initialBytes ?? 4096);
  const encode = new Function(
    "R",
    `return function encode(value) {\nlet buf = R.buf, dv = R.dv, pos = 0;\n${encBody}return buf.subarray(0, pos);\n};`,
  )(R) as (value: unknown) => Buffer;
  const decodeBuf = new Function(
    "R",
    `return function decode(buf, dv, end) {\nlet pos = 0;\n${decCode}if (pos !== end) R.trailing(end - pos);\nreturn ${decVar};\n};`,
  )(R) as (buf: Buffer, dv: DataView, end: number) => unknown;
  const usesDataView = decCode.includes("dv.");
  const name = options.name ?? "schema";
  return {
    name,
    schema: schema as SchemaType<Infer<S>>,
    fixedSize: schema.fixedSize,
    reusesBuffer: true,
    encode: encode as (value: Infer<S>) => Buffer,
    decode(bytes: Uint8Array): Infer<S> {
      if (!(bytes instanceof Uint8Array)) throw new TypeError("decode expects a Uint8Array");
      const buf = Buffer.isBuffer(bytes)
        ? bytes
        : Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
      // A DataView only for the types that need one (floats, 64-bit integers): making one costs more than
      // decoding a small message's integers from its bytes.
      const dv = usesDataView ? new DataView(buf.buffer, buf.byteOffset, buf.byteLength) : NO_VIEW;
      return decodeBuf(buf, dv, buf.length) as Infer<S>;
    },
  };
}
