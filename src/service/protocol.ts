import type { Codec } from "../codec/codec.js";
import { jsonCodec } from "../codec/json.js";
import { msgpackCodec } from "../codec/msgpack.js";
import type { Infer, SchemaCodec, SchemaType } from "../codec/schema.js";
import { schemaCodec } from "../codec/schema.js";
import { EzipcError } from "../errors.js";

/** A decoded message: its type name and body. */
export interface Message<B = unknown> {
  type: string;
  body: B;
}

/**
 * What a session speaks: frames ⇄ typed messages. `encode` throws `EZIPC_ENCODE`; `decode` throws
 * `EZIPC_DECODE` or `EZIPC_UNKNOWN_MESSAGE`. A protocol is a per-session object (it may hold state, such as
 * a cipher later), made by a {@link ProtocolFactory}.
 */
export interface Protocol {
  readonly name: string;
  encode(type: string, body: unknown): Uint8Array;
  decode(frame: Uint8Array): Message;
}

/** Makes one {@link Protocol} per session. */
export type ProtocolFactory = () => Protocol;

const TYPE_MAX = 255;

/**
 * A protocol over any codec: a frame is `u8 typeLength, type (UTF-8), codec(body)`. Output bytes are
 * always fresh, whatever the codec reuses.
 */
export function codecProtocol(codec: Codec<unknown>, name = codec.name): ProtocolFactory {
  const typeCache = new Map<string, Buffer>();
  return () => ({
    name,
    encode(type: string, body: unknown): Uint8Array {
      let head = typeCache.get(type);
      if (!head) {
        const bytes = Buffer.from(type, "utf8");
        if (bytes.length === 0 || bytes.length > TYPE_MAX)
          throw new RangeError(`message type must be 1..${TYPE_MAX} bytes`);
        head = Buffer.concat([Buffer.from([bytes.length]), bytes]);
        if (typeCache.size < 10_000) typeCache.set(type, head);
      }
      const payload = codec.encode(body);
      const frame = Buffer.allocUnsafe(head.length + payload.length);
      head.copy(frame, 0);
      frame.set(payload, head.length);
      return frame;
    },
    decode(frame: Uint8Array): Message {
      const n = frame[0];
      if (n === undefined || n === 0 || n + 1 > frame.length) {
        throw new EzipcError("EZIPC_DECODE", `${name}: frame has no valid message type`);
      }
      const buf = Buffer.isBuffer(frame)
        ? frame
        : Buffer.from(frame.buffer, frame.byteOffset, frame.byteLength);
      return { type: buf.toString("utf8", 1, n + 1), body: codec.decode(buf.subarray(n + 1)) };
    },
  });
}

/** A map of message type → schema, for {@link schemaProtocol}. */
export type SchemaMap = Record<string, SchemaType<unknown>>;
/** The message union of a {@link SchemaMap}. */
export type SchemaMessages<M extends SchemaMap> = { [K in keyof M & string]: Message<Infer<M[K]>> }[keyof M &
  string];

function checkedNames(messages: SchemaMap, firstIndex: number): string[] {
  const names = Object.keys(messages);
  if (names.length === 0 || firstIndex + names.length > 0xffff)
    throw new RangeError("schemaProtocol needs 1..65535 message types");
  return names;
}

/** One message type of a {@link schemaProtocol}: its 2-byte wire prefix and its body's codec. */
export interface SchemaFrame {
  readonly prefix: Buffer;
  readonly codec: SchemaCodec<unknown>;
}

/**
 * The frames of a {@link schemaProtocol}, by type: for a writer that copies a frame's two parts where they go
 * (a shared-memory ring) instead of joining them first. The codec's output is valid until its next encode.
 */
export function schemaFrames(messages: SchemaMap, firstIndex = 0): Map<string, SchemaFrame> {
  const names = checkedNames(messages, firstIndex);
  return new Map(
    names.map((n, i) => {
      const wire = firstIndex + i;
      return [
        n,
        { prefix: Buffer.from([wire & 0xff, wire >>> 8]), codec: schemaCodec(messages[n]!, { name: n }) },
      ];
    }),
  );
}

/**
 * A protocol for a fixed set of message types, each with a schema: a frame is `u16 type index
 * (little-endian: `firstIndex` + the position in the map's declaration order), schema(body)`. Both ends
 * must declare the same map. A `firstIndex` above 0 speaks one slice of a larger protocol with its indexes.
 */
export function schemaProtocol(messages: SchemaMap, name = "schema", firstIndex = 0): ProtocolFactory {
  const names = checkedNames(messages, firstIndex);
  return () => {
    const frames = schemaFrames(messages, firstIndex);
    const codecs = names.map((n) => frames.get(n)!.codec);
    const first = firstIndex;
    return {
      name,
      encode(type: string, body: unknown): Uint8Array {
        const f = frames.get(type);
        if (f === undefined)
          throw new EzipcError("EZIPC_UNKNOWN_MESSAGE", `${name}: no schema for message type ${type}`);
        const payload = f.codec.encode(body) as Buffer;
        const frame = Buffer.allocUnsafe(2 + payload.length);
        frame[0] = f.prefix[0]!;
        frame[1] = f.prefix[1]!;
        payload.copy(frame, 2);
        return frame;
      },
      decode(frame: Uint8Array): Message {
        if (frame.length < 2) throw new EzipcError("EZIPC_DECODE", `${name}: frame shorter than its type`);
        const wire = frame[0]! | (frame[1]! << 8);
        const i = wire - first;
        const codec = codecs[i];
        if (!codec)
          throw new EzipcError("EZIPC_UNKNOWN_MESSAGE", `${name}: unknown message type index ${wire}`);
        return { type: names[i]!, body: codec.decode(frame.subarray(2)) };
      },
    };
  };
}

const protocols = new Map<string, ProtocolFactory>([
  ["json", codecProtocol(jsonCodec)],
  ["msgpack", codecProtocol(msgpackCodec())],
]);

/** Registers a protocol under `name` (replacing any earlier one). `json` and `msgpack` are built in. */
export function registerProtocol(name: string, factory: ProtocolFactory): void {
  protocols.set(name, factory);
}

/** The factory registered as `name`; throws `EZIPC_UNKNOWN_PROTOCOL`. */
export function protocolFactory(name: string): ProtocolFactory {
  const f = protocols.get(name);
  if (!f) {
    throw new EzipcError(
      "EZIPC_UNKNOWN_PROTOCOL",
      `no protocol named ${name} (known: ${[...protocols.keys()].join(", ")})`,
    );
  }
  return f;
}
