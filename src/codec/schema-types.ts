/**
 * The schema types: what a schema is made of (`t.u32`, `t.string()`, `t.struct({...})`…), their limits,
 * and the TypeScript types they infer. The codec that compiles them to encoders and decoders, and the wire
 * format, are in schema.ts.
 */
type Num = "u8" | "i8" | "u16" | "i16" | "u32" | "i32" | "f32" | "f64";
type Big = "u64" | "i64";

/** A node of a schema. `T` is the TypeScript type of the values it describes. */
export interface SchemaType<T> {
  readonly kind: string;
  /** Encoded size in bytes when every value has the same size, else undefined. */
  readonly fixedSize: number | undefined;
  /** Smallest possible encoded size (bounds hostile element counts). */
  readonly minSize: number;
  /** @internal Phantom field carrying `T`. */
  readonly _type?: T;
}

export interface NumberType extends SchemaType<number> {
  readonly kind: Num;
}
export interface BigIntType extends SchemaType<bigint> {
  readonly kind: Big;
}
export interface BoolType extends SchemaType<boolean> {
  readonly kind: "bool";
}
export interface StringType extends SchemaType<string> {
  readonly kind: "string";
  readonly maxBytes: number;
}
export interface BytesType extends SchemaType<Uint8Array> {
  readonly kind: "bytes";
  readonly maxBytes: number;
}
export interface ArrayType<E extends SchemaType<unknown>> extends SchemaType<Infer<E>[]> {
  readonly kind: "array";
  readonly element: E;
  readonly maxLength: number;
}
export interface FixedArrayType<E extends SchemaType<unknown>> extends SchemaType<Infer<E>[]> {
  readonly kind: "fixedArray";
  readonly element: E;
  readonly length: number;
}
export interface OptionalType<E extends SchemaType<unknown>> extends SchemaType<Infer<E> | undefined> {
  readonly kind: "optional";
  readonly element: E;
}
export type Fields = Record<string, SchemaType<unknown>>;
export interface StructType<F extends Fields> extends SchemaType<InferStruct<F>> {
  readonly kind: "struct";
  readonly fields: F;
}

/** The TypeScript type of the values a schema describes. */
export type Infer<S> = S extends SchemaType<infer T> ? T : never;

type Simplify<T> = { [K in keyof T]: T[K] } & {};
type OptionalKeys<F extends Fields> = {
  [K in keyof F]: F[K] extends OptionalType<SchemaType<unknown>> ? K : never;
}[keyof F];
/** A struct's value type: optional() fields become optional properties. */
export type InferStruct<F extends Fields> = Simplify<
  { [K in Exclude<keyof F, OptionalKeys<F>>]: Infer<F[K]> } & { [K in OptionalKeys<F>]?: Infer<F[K]> }
>;

const NUM_SIZE: Record<Num | Big | "bool", number> = {
  u8: 1,
  i8: 1,
  u16: 2,
  i16: 2,
  u32: 4,
  i32: 4,
  f32: 4,
  f64: 8,
  u64: 8,
  i64: 8,
  bool: 1,
};

function num<K extends Num>(kind: K): NumberType {
  return Object.freeze({ kind, fixedSize: NUM_SIZE[kind], minSize: NUM_SIZE[kind] }) as NumberType;
}
function big<K extends Big>(kind: K): BigIntType {
  return Object.freeze({ kind, fixedSize: 8, minSize: 8 }) as BigIntType;
}

/** Largest length any string/bytes/array may declare: the transport's frame limit bounds it anyway. */
export const UNBOUNDED = 0x7fff_ffff;

function checkLimit(name: string, v: number | undefined): number {
  if (v === undefined) return UNBOUNDED;
  if (!Number.isInteger(v) || v < 0 || v > UNBOUNDED)
    throw new RangeError(`${name} must be an integer 0..2^31-1`);
  return v;
}

/** Schema builders. */
export const t = {
  u8: num("u8"),
  i8: num("i8"),
  u16: num("u16"),
  i16: num("i16"),
  u32: num("u32"),
  i32: num("i32"),
  f32: num("f32"),
  f64: num("f64"),
  /** Unsigned 64-bit integer as `bigint`. */
  u64: big("u64"),
  /** Signed 64-bit integer as `bigint`. */
  i64: big("i64"),
  bool: Object.freeze({ kind: "bool", fixedSize: 1, minSize: 1 }) as BoolType,
  /** UTF-8 string; `maxBytes` bounds its encoded length (both ways). */
  string(options: { maxBytes?: number } = {}): StringType {
    return Object.freeze({
      kind: "string",
      fixedSize: undefined,
      minSize: 1,
      maxBytes: checkLimit("maxBytes", options.maxBytes),
    }) as StringType;
  },
  /** Raw bytes; decoded as a Uint8Array copy. */
  bytes(options: { maxBytes?: number } = {}): BytesType {
    return Object.freeze({
      kind: "bytes",
      fixedSize: undefined,
      minSize: 1,
      maxBytes: checkLimit("maxBytes", options.maxBytes),
    }) as BytesType;
  },
  /** Variable-length array; `maxLength` bounds the element count (both ways). */
  array<E extends SchemaType<unknown>>(element: E, options: { maxLength?: number } = {}): ArrayType<E> {
    assertSchema(element);
    return Object.freeze({
      kind: "array",
      element,
      fixedSize: undefined,
      minSize: 1,
      maxLength: checkLimit("maxLength", options.maxLength),
    }) as ArrayType<E>;
  },
  /** Exactly `length` elements. */
  fixedArray<E extends SchemaType<unknown>>(element: E, length: number): FixedArrayType<E> {
    assertSchema(element);
    if (!Number.isInteger(length) || length < 0 || length > 0xffff)
      throw new RangeError("fixedArray length must be 0..65535");
    return Object.freeze({
      kind: "fixedArray",
      element,
      length,
      fixedSize: element.fixedSize === undefined ? undefined : element.fixedSize * length,
      minSize: element.minSize * length,
    }) as FixedArrayType<E>;
  },
  /** A value that may be absent (`undefined`); as a struct field it becomes an optional property. */
  optional<E extends SchemaType<unknown>>(element: E): OptionalType<E> {
    assertSchema(element);
    return Object.freeze({ kind: "optional", element, fixedSize: undefined, minSize: 1 }) as OptionalType<E>;
  },
  /** Named fields in declaration order. */
  struct<F extends Fields>(fields: F): StructType<F> {
    let fixed: number | undefined = 0;
    let min = 0;
    for (const [name, f] of Object.entries(fields)) {
      if (!/^[A-Za-z_$][\w$]*$/.test(name))
        throw new TypeError(`struct field name ${JSON.stringify(name)} is not an identifier`);
      assertSchema(f);
      fixed = fixed === undefined || f.fixedSize === undefined ? undefined : fixed + f.fixedSize;
      min += f.minSize;
    }
    return Object.freeze({
      kind: "struct",
      fields: Object.freeze({ ...fields }),
      fixedSize: fixed,
      minSize: min,
    }) as StructType<F>;
  },
} as const;

export function assertSchema(s: unknown): asserts s is SchemaType<unknown> {
  if (typeof s !== "object" || s === null || typeof (s as SchemaType<unknown>).kind !== "string") {
    throw new TypeError("expected a schema type built with t.*");
  }
}
