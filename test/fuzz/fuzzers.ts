/**
 * Fuzzers of everything that parses bytes from a peer: the frame decoder, every hub message (the generic
 * schema decoder, and the hand-written `publish` / `message` parsers against it), and the secure channel's
 * record layer, udp:// datagrams (plain and sealed). Each runs `inputs` generated inputs from a seed and throws on the first property broken:
 *
 * - no exception but a coded `EzipcError` of the expected kind;
 * - valid input, split anywhere, decodes to exactly what was encoded (differential);
 * - memory held stays bounded (the decoders' buffered bytes; the heap after the run);
 * - the record layer never delivers a plaintext it was not given, whatever bytes are changed.
 *
 * `npm run fuzz` runs ≥ 10 M inputs per fuzzer; `fuzz.test.ts` runs a seeded slice in `npm test`.
 */
import type { SchemaType } from "../../src/codec/schema.js";
import { EzipcError } from "../../src/errors.js";
import {
  MESSAGE_INDEX,
  PUBLISH_INDEX,
  parseMessage,
  parseMessagePieces,
  parsePublish,
  parsePublishPieces,
} from "../../src/pubsub/fast-frames.js";
import { SealedSession, secureDatagramDial, secureDatagramListen } from "../../src/security/datagrams.js";
import { CipherState } from "../../src/security/noise.js";
import { RecordReader, sealRecords } from "../../src/security/records.js";
import { aesGcm, chaChaPoly, dh25519 } from "../../src/security/suite.js";
import { parseDatagram, writeDatagramHeader } from "../../src/transport/datagram.js";
import { FrameDecoder } from "../../src/transport/frame-decoder.js";
import { WsFrameParser } from "../../src/transport/ws-frame-parser.js";
import { encodeMessages } from "../../src/transport/ws-stream.js";
import { hubMessages, hubProtocol } from "../../src/wire/hub-protocol.js";

export interface FuzzResult {
  readonly name: string;
  readonly inputs: number;
  readonly seconds: number;
  /** Inputs that decoded (the rest were refused with a coded error). */
  readonly accepted: number;
}

type Rng = () => number;

const int = (rng: Rng, n: number): number => Math.floor(rng() * n);

function randomBytes(rng: Rng, n: number): Buffer {
  const b = Buffer.allocUnsafe(n);
  for (let i = 0; i < n; i++) b[i] = int(rng, 256);
  return b;
}

/** Changes the input the way a hostile or broken peer would: flips, overwrites, cuts, inserts. */
function mutate(rng: Rng, input: Buffer): Buffer {
  if (input.length === 0) return randomBytes(rng, 1 + int(rng, 8));
  const b = Buffer.from(input);
  switch (int(rng, 5)) {
    case 0: {
      const i = int(rng, b.length);
      b[i] = b[i]! ^ (1 << int(rng, 8));
      return b;
    }
    case 1: {
      const i = int(rng, b.length);
      b[i] = [0, 0x7f, 0x80, 0xff][int(rng, 4)]!;
      return b;
    }
    case 2:
      return b.subarray(0, int(rng, b.length));
    case 3: {
      const i = int(rng, b.length + 1);
      return Buffer.concat([b.subarray(0, i), randomBytes(rng, 1 + int(rng, 6)), b.subarray(i)]);
    }
    default: {
      // A big LEB128 / length-looking value somewhere.
      const i = int(rng, b.length);
      b.fill(0xff, i, Math.min(b.length, i + 1 + int(rng, 5)));
      return b;
    }
  }
}

function expectCoded(err: unknown, codes: readonly string[], what: string): void {
  if (err instanceof EzipcError && codes.includes(err.code)) return;
  throw new Error(`${what}: expected a coded error (${codes.join(", ")}), got ${String(err)}`, {
    cause: err,
  });
}

function timed(name: string, inputs: number, run: () => number): FuzzResult {
  const t0 = process.hrtime.bigint();
  const accepted = run();
  return { name, inputs, seconds: Number(process.hrtime.bigint() - t0) / 1e9, accepted };
}

// ---- frame decoder ------------------------------------------------------------------------------------

/** Frame stream: valid frames (control and data) with random splits, mutated half the time. */
export function fuzzFrameDecoder(rng: Rng, inputs: number): FuzzResult {
  const MAX = 4096;
  return timed("frame decoder", inputs, () => {
    let accepted = 0;
    for (let n = 0; n < inputs; n++) {
      const payloads: Buffer[] = [];
      const parts: Buffer[] = [];
      for (let k = int(rng, 4); k >= 0; k--) {
        const p = randomBytes(rng, int(rng, 40));
        payloads.push(p);
        const h = Buffer.allocUnsafe(4);
        h.writeUInt32BE(p.length);
        parts.push(h, p);
      }
      const valid = Buffer.concat(parts);
      const mutated = rng() < 0.5;
      const stream = mutated ? mutate(rng, valid) : valid;
      // Half the streams with a pieces sink (frames of 8 bytes and more split across chunks come in pieces).
      const inPieces = rng() < 0.5;
      const d = new FrameDecoder(MAX, 8);
      const got: Buffer[] = [];
      const sink = (p: Buffer, control: number) => {
        if (control === 0) got.push(Buffer.from(p));
      };
      const piecesSink = (pieces: Buffer[], length: number) => {
        const joined = Buffer.concat(pieces);
        if (joined.length !== length || length < 8) throw new Error("pieces of another length");
        got.push(joined);
      };
      try {
        for (let pos = 0; pos < stream.length; ) {
          const step = 1 + int(rng, 16);
          // Each chunk in memory of its own, as a socket read is (pieces are views of chunks).
          d.push(Buffer.from(stream.subarray(pos, pos + step)), sink, inPieces ? piecesSink : undefined);
          pos += step;
          if (d.bufferedBytes > MAX + 4) throw new Error(`frame decoder holds ${d.bufferedBytes} bytes`);
        }
        accepted++;
      } catch (err) {
        if (!mutated) throw new Error("a valid frame stream was refused", { cause: err });
        expectCoded(err, ["EZIPC_PROTOCOL", "EZIPC_FRAME_TOO_LARGE"], "frame decoder");
        continue;
      }
      if (!mutated) {
        const ok = got.length === payloads.length && got.every((g, i) => g.equals(payloads[i]!));
        if (!ok) throw new Error("a valid frame stream decoded to other frames");
      }
    }
    return accepted;
  });
}

// ---- WebSocket frames ---------------------------------------------------------------------------------

/**
 * The ws:// receiver (ws-frame-parser.ts): streams of binary messages, masked (as a server reads them) or
 * not, split anywhere; half damaged. A valid stream gives back exactly its payloads, in order; a damaged
 * one gives a coded error or some bytes, never a crash; the parser never holds more than a header and a
 * control frame.
 */
export function fuzzWsFrames(rng: Rng, inputs: number): FuzzResult {
  const MAX = 4096;
  return timed("ws frames", inputs, () => {
    let accepted = 0;
    for (let n = 0; n < inputs; n++) {
      const payloads: Buffer[] = [];
      const bounds: number[] = [];
      let at = 0;
      for (let k = int(rng, 4); k >= 0; k--) {
        const p = randomBytes(rng, rng() < 0.05 ? 126 + int(rng, 300) : int(rng, 40));
        payloads.push(p);
        bounds.push(at, at + p.length);
        at += p.length;
      }
      const all = Buffer.concat(payloads);
      const masked = rng() < 0.5;
      const valid = encodeMessages({ buf: all, bounds, count: bounds.length }, masked);
      const mutated = rng() < 0.5;
      const stream = mutated ? mutate(rng, valid) : valid;
      const parser = new WsFrameParser({ expectMasked: masked, maxMessageBytes: MAX });
      const got: Buffer[] = [];
      const sink = {
        data: (b: Buffer) => got.push(Buffer.from(b)),
        ping: () => {},
        pong: () => {},
        close: () => {},
      };
      try {
        for (let pos = 0; pos < stream.length; ) {
          const step = 1 + int(rng, 24);
          parser.push(Buffer.from(stream.subarray(pos, pos + step)), sink);
          pos += step;
        }
        accepted++;
      } catch (err) {
        if (!mutated) throw new Error("a valid WebSocket stream was refused", { cause: err });
        expectCoded(err, ["EZIPC_PROTOCOL", "EZIPC_FRAME_TOO_LARGE"], "ws frames");
        continue;
      }
      if (!mutated && !Buffer.concat(got).equals(all)) {
        throw new Error("a valid WebSocket stream gave other bytes");
      }
    }
    return accepted;
  });
}

// ---- hub messages -------------------------------------------------------------------------------------

/** A random value of `schema` (within its limits, small). */
function randomValue(rng: Rng, schema: SchemaType<unknown>): unknown {
  const s = schema as SchemaType<unknown> & {
    kind: string;
    element?: SchemaType<unknown>;
    fields?: Record<string, SchemaType<unknown>>;
    length?: number;
    maxBytes?: number;
    maxLength?: number;
  };
  switch (s.kind) {
    case "u8":
      return int(rng, 256);
    case "i8":
      return int(rng, 256) - 128;
    case "u16":
      return int(rng, 65536);
    case "i16":
      return int(rng, 65536) - 32768;
    case "u32":
      return int(rng, 2 ** 32);
    case "i32":
      return int(rng, 2 ** 32) - 2 ** 31;
    case "f32":
      return Math.fround(rng() * 1000);
    case "f64":
      return rng() * 1e6;
    case "u64":
      return BigInt(int(rng, 2 ** 32)) * BigInt(int(rng, 4) + 1);
    case "i64":
      return BigInt(int(rng, 2 ** 32)) - 2n ** 31n;
    case "bool":
      return rng() < 0.5;
    case "string": {
      const n = Math.min(s.maxBytes ?? 64, int(rng, 12));
      let out = "";
      for (let i = 0; i < n; i++) out += String.fromCharCode(0x21 + int(rng, 94));
      return out;
    }
    case "bytes":
      return randomBytes(rng, Math.min(s.maxBytes ?? 64, int(rng, 24)));
    case "array": {
      const n = Math.min(s.maxLength ?? 4, int(rng, 4));
      return Array.from({ length: n }, () => randomValue(rng, s.element!));
    }
    case "fixedArray":
      return Array.from({ length: s.length! }, () => randomValue(rng, s.element!));
    case "optional":
      return rng() < 0.5 ? undefined : randomValue(rng, s.element!);
    case "struct":
      return Object.fromEntries(Object.entries(s.fields!).map(([k, f]) => [k, randomValue(rng, f)]));
    default:
      throw new Error(`no generator for ${s.kind}`);
  }
}

/**
 * Every hub message: a valid encoding of random fields (must decode to what was encoded), or one mutated,
 * or random bytes behind a valid index (must decode or be refused with a code). `publish` and `message`
 * frames go through the hand-written parsers too, which must accept exactly what the schema decoder accepts.
 */
export function fuzzHubMessages(rng: Rng, inputs: number): FuzzResult {
  const protocol = hubProtocol();
  const types = Object.keys(hubMessages) as (keyof typeof hubMessages)[];
  return timed("hub messages", inputs, () => {
    let accepted = 0;
    for (let n = 0; n < inputs; n++) {
      const type = types[int(rng, types.length)]!;
      const valid = Buffer.from(protocol.encode(type, randomValue(rng, hubMessages[type])));
      const choice = rng();
      let frame: Buffer;
      if (choice < 0.2) frame = valid;
      else if (choice < 0.85) frame = mutate(rng, valid);
      else frame = Buffer.concat([valid.subarray(0, 2), randomBytes(rng, int(rng, 48))]);
      let decoded: { type: string; body: unknown } | null = null;
      try {
        decoded = protocol.decode(frame);
        accepted++;
      } catch (err) {
        if (frame === valid) throw new Error(`a valid ${type} was refused`, { cause: err });
        expectCoded(err, ["EZIPC_DECODE", "EZIPC_UNKNOWN_MESSAGE"], `decode ${type}`);
      }
      if (frame === valid && decoded !== null) {
        const again = Buffer.from(protocol.encode(decoded.type, decoded.body));
        if (!again.equals(valid)) throw new Error(`${type} does not round-trip`);
      }
      const index = frame.length >= 2 ? frame.readUInt16LE(0) : -1;
      // The same frame cut in two: the pieces parsers never accept what the whole parser refuses, and
      // accept every cut after the head of a frame it accepts.
      const cut = 1 + int(rng, Math.max(1, frame.length - 1));
      const pieces = [frame.subarray(0, cut), frame.subarray(cut)].filter((p) => p.length > 0);
      if (index === PUBLISH_INDEX) {
        const whole = parsePublish(frame);
        const recordsStart = whole?.recordsStart ?? 0;
        const inPieces = parsePublishPieces(pieces) !== null;
        if (inPieces && whole === null)
          throw new Error("parsePublishPieces accepted what parsePublish refuses");
        if (whole !== null && cut >= recordsStart && !inPieces)
          throw new Error("parsePublishPieces refused a publish cut after its head");
      } else if (index === MESSAGE_INDEX) {
        const whole = parseMessage(frame) !== null;
        const inPieces = parseMessagePieces(pieces) !== null;
        if (inPieces && !whole) throw new Error("parseMessagePieces accepted what parseMessage refuses");
        if (whole && !inPieces && decoded !== null && cut >= messageHeadBytes(decoded.body))
          throw new Error("parseMessagePieces refused a message cut after its head");
      }
      if (index === PUBLISH_INDEX) {
        const fast = parsePublish(frame) !== null;
        // The fast parser may refuse more (a topic over 255 bytes, …) but never accept what decode refuses.
        if (fast && decoded === null) throw new Error("parsePublish accepted a frame decode refuses");
        if (frame === valid && !fast && isFastPublishable(decoded))
          throw new Error("parsePublish refused a valid publish");
      } else if (index === MESSAGE_INDEX) {
        const fast = parseMessage(frame) !== null;
        if (fast && decoded === null) throw new Error("parseMessage accepted a frame decode refuses");
        if (frame === valid && !fast) throw new Error("parseMessage refused a valid message");
      }
    }
    return accepted;
  });
}

/** The bytes of a `message` frame before its records (u16, u32 sid, topic, u64, f64, publisher, count). */
function messageHeadBytes(body: unknown): number {
  const m = body as { topic: string; publisher: string; records: unknown[] };
  const leb = (n: number) => (n < 0x80 ? 1 : n < 0x4000 ? 2 : n < 0x200000 ? 3 : 4);
  const t = Buffer.byteLength(m.topic, "utf8");
  const p = Buffer.byteLength(m.publisher, "utf8");
  return 2 + 4 + leb(t) + t + 16 + leb(p) + p + leb(m.records.length);
}

/** Whether a decoded publish is one the fast path takes (it refuses an empty batch; the hub answers those). */
function isFastPublishable(decoded: { body: unknown } | null): boolean {
  return decoded !== null && (decoded.body as { records: unknown[] }).records.length > 0;
}

// ---- secure records ------------------------------------------------------------------------------------

/**
 * Records sealed from random plaintexts, mutated or not, split anywhere: the reader must deliver exactly
 * the plaintexts up to the first damaged record and then refuse with `EZIPC_DECRYPT` — never a changed
 * plaintext — and hold at most one record.
 */
export function fuzzRecords(rng: Rng, inputs: number): FuzzResult {
  const key = randomBytes(rng, 32);
  const REKEY = 3; // rekeying often, so that it is fuzzed too
  return timed("secure records", inputs, () => {
    let accepted = 0;
    for (let n = 0; n < inputs; n++) {
      const send = new CipherState(chaChaPoly);
      const receive = new CipherState(chaChaPoly);
      send.initializeKey(Buffer.from(key));
      receive.initializeKey(Buffer.from(key));
      const plains = Array.from({ length: 1 + int(rng, 4) }, () => randomBytes(rng, 1 + int(rng, 64)));
      const records = plains.map((p) => Buffer.concat(sealRecords(send, [p], REKEY)));
      const valid = Buffer.concat(records);
      const mutated = rng() < 0.7;
      const stream = mutated ? mutate(rng, valid) : valid;
      // Half the time the reader owns the chunks and opens records in place (as a socket's reader does).
      const reader = new RecordReader(receive, REKEY, rng() < 0.5);
      const got: Buffer[] = [];
      try {
        for (let pos = 0; pos < stream.length; ) {
          const step = 1 + int(rng, 40);
          reader.push(stream.subarray(pos, pos + step), (p) => got.push(Buffer.from(p)));
          pos += step;
          if (reader.pendingBytes > 65_537)
            throw new Error(`record reader holds ${reader.pendingBytes} bytes`);
        }
        accepted++;
      } catch (err) {
        if (!mutated) throw new Error("valid records were refused", { cause: err });
        expectCoded(err, ["EZIPC_DECRYPT"], "record reader");
      }
      // Whatever was delivered is the senders' first k plaintexts, whole and in order (a record opened in
      // place may come out in pieces: the bytes are compared, joined).
      const delivered = Buffer.concat(got);
      let k = 0;
      for (let bytes = 0; bytes < delivered.length; k++) bytes += plains[k]?.length ?? Number.NaN;
      const expected = Buffer.concat(plains.slice(0, k));
      if (!delivered.equals(expected))
        throw new Error("the record reader delivered a plaintext it was not given");
      if (!mutated && k !== plains.length) throw new Error("valid records were not all delivered");
    }
    return accepted;
  });
}

// ---- udp:// datagrams -----------------------------------------------------------------------------------

/**
 * udp:// datagrams: sealed datagrams (a session's stream of them — replayed, reordered, mutated) opened by
 * the other side, plain datagrams parsed, and now and then a mutated hello answered by a listener. Nothing
 * throws; a session opens only what was sealed, each nonce at most once; the parser never reads a kind or a
 * sequence number that the datagram does not hold.
 */
export function fuzzDatagrams(rng: Rng, inputs: number): FuzzResult {
  const keyA = randomBytes(rng, 32);
  const keyB = randomBytes(rng, 32);
  const state = (k: Buffer) => {
    const c = new CipherState(aesGcm);
    c.initializeKey(Buffer.from(k));
    return c;
  };
  const listenerKey = dh25519.generateKeyPair();
  const listener = secureDatagramListen({ staticKey: listenerKey, maxHandshakesPerSecond: 1e9 });
  const dialler = secureDatagramDial({ hubKey: listenerKey.publicKey, cipher: "AESGCM" });
  return timed("udp datagrams", inputs, () => {
    let accepted = 0;
    for (let n = 0; n < inputs; ) {
      const a = new SealedSession({ name: "a" }, state(keyA), state(keyB));
      const b = new SealedSession({ name: "b" }, state(keyB), state(keyA));
      const sent = new Map<string, number>();
      const wire: Buffer[] = [];
      for (let i = 0; i < 1 + int(rng, 6); i++) {
        const body = randomBytes(rng, int(rng, 48));
        const inner = Buffer.alloc(9 + body.length);
        const at = writeDatagramHeader(inner, int(rng, 4), rng() < 0.5 ? 1 + int(rng, 1e6) : 0);
        body.copy(inner, at);
        const plain = inner.subarray(0, at + body.length);
        sent.set(plain.toString("hex"), (sent.get(plain.toString("hex")) ?? 0) + 1);
        const d = a.seal(plain);
        wire.push(d);
        if (rng() < 0.3) wire.push(d); // replayed
      }
      for (let i = 0; i + 1 < wire.length; i++)
        if (rng() < 0.3) [wire[i], wire[i + 1]] = [wire[i + 1]!, wire[i]!];
      for (const d of wire) {
        if (n++ >= inputs) break;
        const input = rng() < 0.5 ? mutate(rng, d) : d;
        const r = b.open(input);
        if (typeof r === "string") continue;
        const k = r.toString("hex");
        const left = sent.get(k);
        if (!left) throw new Error("a session opened a datagram that was not sealed (or opened one twice)");
        sent.set(k, left - 1);
        accepted++;
        const p = parseDatagram(r);
        if (!p || p.kind > 3) throw new Error("a sealed plain datagram did not parse");
      }
      // Plain datagrams from anyone: parsed or refused, never a throw or a read past the end.
      const junk = mutate(rng, randomBytes(rng, int(rng, 20)));
      const p = parseDatagram(junk);
      if (p && (p.body.length > junk.length || (p.seq !== 0 && junk.length < 9)))
        throw new Error("parseDatagram misread");
      n++;
      // Now and then a hello, mutated or not, to a listener (a handshake costs three X25519 operations).
      if (rng() < 0.002) {
        const hello = dialler.begin("udp://fuzz")!.hello!;
        const input = rng() < 0.5 ? mutate(rng, hello) : hello;
        const step = listener.begin("udp://fuzz")!.receive(input);
        // Every datagram of the hello kind is answered (a session's answer, or a refusal); others are not.
        if (Boolean(step.reply) !== (input[0] === 4)) throw new Error("a hello was answered wrong");
        n++;
      }
    }
    return accepted;
  });
}
