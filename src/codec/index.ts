/**
 * # Codec layer
 *
 * A {@link Codec} turns values into bytes and back: raw `bytes`, `json`, `msgpack` (msgpackr) and the
 * schema codec (declare a shape with `t.*`, get its type inferred and straight-line encode/decode
 * generated). Every codec reports bad input the same way: `EZIPC_ENCODE` for a value that does not fit,
 * `EZIPC_DECODE` for bytes that do not decode — never a crash, a hang or an allocation out of proportion
 * to the input.
 */
export { bytesCodec } from "./bytes.js";
export type { Codec } from "./codec.js";
export { jsonCodec } from "./json.js";
export { type MsgpackCodecOptions, msgpackCodec } from "./msgpack.js";
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
  type SchemaCodec,
  type SchemaType,
  type StringType,
  type StructType,
  schemaCodec,
  t,
} from "./schema.js";
