/**
 * Encrypted, authenticated connections: a Noise handshake on the raw byte stream, then a stream of
 * encrypted records under the ezipc frames. It plugs into any stream transport as its `upgrade`
 * ({@link secureListen} on the listening side, {@link secureDial} on the dialling side), so that framing,
 * heartbeats and backpressure work unchanged above it.
 *
 * Wire format (docs/security.md):
 * - Every handshake message and every record is `u16 BE length · bytes` (at most 65,535 bytes: Noise's
 *   message limit). The first handshake message starts with one byte naming the pattern and the cipher:
 *   low nibble 1 XX (the client learns the hub's key) or 2 IK (the client already knows it); high nibble 0
 *   ChaChaPoly, 1 AESGCM. So `0x01`/`0x02` are the ChaCha20-Poly1305 protocols every earlier peer speaks.
 * - Protocol `Noise_{XX,IK}_25519_{ChaChaPoly,AESGCM}_SHA256`; the prologue is `ezipc-noise/1` and that
 *   byte, so a peer of another version or a tampered byte (a downgrade of the cipher too) fails. The client
 *   picks the cipher (by default the faster on its machine, measured once per process); the hub accepts
 *   either unless told otherwise (`ciphers`).
 * - The client's credentials (its static key, proved by the handshake, and an optional token) travel
 *   encrypted in its handshake payload. The hub answers with a first record, `{"ok":true}` or
 *   `{"ok":false,"reason":…}`, before anything else; nothing reaches the hub's state before that.
 * - After the handshake, each direction encrypts its bytes in records of at most 65,519 bytes of
 *   plaintext with its own 64-bit nonce counter, and rekeys every `rekeyInterval` records. A record that
 *   fails to decrypt (tampered, replayed, reordered, truncated) closes the connection (`EZIPC_DECRYPT`).
 */
import { Duplex } from "node:stream";
import { withTimeout } from "../deadline.js";
import { EzipcError } from "../errors.js";
import { checkDurationMs } from "../ranges.js";
import { CONTROL_BIT, ControlType } from "../transport/frame.js";
import { markReleasesChunks } from "../transport/stream-connection.js";
import type { PeerIdentity, StreamUpgrade } from "../transport/types.js";
import {
  DEFAULT_REKEY_INTERVAL,
  HandshakeMessages,
  initiate as initiateHandshake,
  lengthPrefixed,
  PATTERN_IK,
  PATTERN_XX,
  prologue,
  protocolOf,
  SECURE_CIPHERS,
  type SecureCipher,
} from "./handshake.js";
import { type CipherState, HandshakeState } from "./noise.js";
import { RecordBlocks } from "./record-blocks.js";
import { MAX_PLAINTEXT, RecordReader, sealRecords } from "./records.js";

/** Plaintext bytes per record. */
export { MAX_PLAINTEXT };

import { aesGcm, type CipherFn, chaChaPoly, dh25519, type KeyPair } from "./suite.js";

export { DEFAULT_REKEY_INTERVAL, PATTERN_IK, PATTERN_XX, SECURE_CIPHERS, type SecureCipher };

let fasterCipher: SecureCipher | undefined;

/**
 * The faster AEAD on this machine: AES-GCM where the CPU has AES instructions, else ChaCha20-Poly1305.
 * Measured once per process (about a millisecond: each seals the same 16 KiB records, best of three).
 */
export function fastestCipher(): SecureCipher {
  fasterCipher ??= (() => {
    const key = Buffer.alloc(32, 1);
    const data = Buffer.alloc(16 * 1024, 2);
    const time = (c: CipherFn) => {
      const t0 = process.hrtime.bigint();
      for (let i = 0; i < 8; i++) c.encrypt(key, i, EMPTY, data);
      return Number(process.hrtime.bigint() - t0);
    };
    // The best of three alternate rounds each (the first warms both up), so a busy moment does not decide.
    let aes = Number.POSITIVE_INFINITY;
    let chacha = Number.POSITIVE_INFINITY;
    for (let round = 0; round < 4; round++) {
      const a = time(aesGcm);
      const c = time(chaChaPoly);
      if (round === 0) continue;
      aes = Math.min(aes, a);
      chacha = Math.min(chacha, c);
    }
    return aes < chacha ? "AESGCM" : "ChaChaPoly";
  })();
  return fasterCipher;
}
/** Encrypted bytes queued on the socket before writes wait for it to drain. */
const INNER_QUEUE_BYTES = 1024 * 1024;

/** A plain ezipc data frame (transport/frame.ts), for answering a plain client. */
function plainFrame(payload: Uint8Array): Buffer {
  const out = Buffer.allocUnsafe(4 + payload.length);
  out.writeUInt32BE(payload.length, 0);
  out.set(payload, 4);
  return out;
}

/** A plain ezipc CLOSE control frame with its reason. */
function closeFrame(reason: string): Buffer {
  const text = Buffer.from(reason, "utf8");
  const out = Buffer.allocUnsafe(5 + text.length);
  out.writeUInt32BE((CONTROL_BIT | (1 + text.length)) >>> 0, 0);
  out[4] = ControlType.CLOSE;
  out.set(text, 5);
  return out;
}

const frame = lengthPrefixed;

/**
 * Reads handshake messages from a stream ({@link HandshakeMessages} fed by its events); keeps what arrives
 * after the last one it was asked for, for the record layer.
 */
class MessageReader {
  private readonly messages = new HandshakeMessages();
  private readonly onEnd = () =>
    this.messages.fail(new EzipcError("EZIPC_HANDSHAKE", "the peer closed during the handshake"));
  private readonly onError = (e: Error) => this.messages.fail(e);
  private readonly onData = (chunk: Buffer): void => {
    this.onFirstData?.();
    this.messages.push(chunk);
  };

  constructor(
    private readonly stream: Duplex,
    /** Called when the first bytes arrive. */
    private readonly onFirstData?: () => void,
  ) {
    stream.on("data", this.onData);
    stream.on("end", this.onEnd);
    stream.on("close", this.onEnd);
    stream.on("error", this.onError);
  }

  next(): Promise<Buffer> {
    return this.messages.next();
  }

  /** Stops reading; returns the bytes received after the last message. */
  detach(): Buffer {
    this.stream.off("data", this.onData);
    this.stream.off("end", this.onEnd);
    this.stream.off("close", this.onEnd);
    this.stream.off("error", this.onError);
    return this.messages.rest();
  }

  /** The messages, for {@link initiate}. */
  get source(): HandshakeMessages {
    return this.messages;
  }
}

/** The encrypted stream over a finished handshake: ezipc's frames travel inside its records. */
export class SecureStream extends Duplex {
  peer?: PeerIdentity;
  private readonly reader: RecordReader;
  /** Reused memory for large records, where the inner stream is a socket (record-blocks.ts). */
  private readonly blocks: RecordBlocks | undefined;

  constructor(
    private readonly inner: Duplex,
    private readonly sendCs: CipherState,
    receiveCs: CipherState,
    leftover: Buffer,
    private readonly rekeyInterval: number,
    /** The handshake hash: both ends hold the same value (channel binding). */
    readonly handshakeHash: Buffer,
  ) {
    super({ allowHalfOpen: false });
    // A chunk is encrypted into buffers of its own before its write's callback runs.
    markReleasesChunks(this);
    // The socket's chunks are this stream's alone: records are opened in place.
    this.reader = new RecordReader(receiveCs, rekeyInterval, true);
    this.blocks = RecordBlocks.for(inner);
    inner.on("data", (chunk: Buffer) => this.onData(chunk));
    inner.once("end", () => this.push(null));
    inner.once("error", (e) => this.destroy(e));
    inner.once("close", () => this.destroy());
    if (leftover.length > 0) queueMicrotask(() => this.onData(leftover));
  }

  private onData(chunk: Buffer): void {
    try {
      this.reader.push(chunk, (plain) => {
        if (!this.push(plain)) this.inner.pause();
      });
    } catch (err) {
      this.destroy(err as EzipcError);
    }
  }

  override _read(): void {
    this.inner.resume();
  }

  override _write(chunk: Buffer, _encoding: BufferEncoding, cb: (e?: Error | null) => void): void {
    this.sendRecords([chunk], cb);
  }

  override _writev(chunks: { chunk: Buffer }[], cb: (e?: Error | null) => void): void {
    this.sendRecords(
      chunks.map((c) => c.chunk),
      cb,
    );
  }

  /** Encrypts `chunks` in records of at most MAX_PLAINTEXT bytes, without joining them first. */
  private sendRecords(chunks: Buffer[], cb: (e?: Error | null) => void): void {
    let out: Buffer[];
    try {
      out = sealRecords(this.sendCs, chunks, this.rekeyInterval, this.blocks?.take);
    } catch (err) {
      cb(err as Error);
      return;
    }
    if (out.length === 0) {
      cb();
      return;
    }
    this.inner.cork();
    for (const b of out) this.inner.write(b);
    this.inner.uncork();
    this.blocks?.written(out);
    // The socket's own high-water mark (16 KiB) is below one record: wait for it only when far behind, so
    // the next records are encrypted while these are written.
    if (this.inner.writableLength < INNER_QUEUE_BYTES) cb();
    else this.inner.once("drain", () => cb());
  }

  override _final(cb: (e?: Error | null) => void): void {
    this.inner.end();
    cb();
  }

  override _destroy(err: Error | null, cb: (e: Error | null) => void): void {
    this.inner.destroy();
    cb(err);
  }
}

const EMPTY = new Uint8Array(0);

/** A handshake ran out of time: the stream is dropped. */
function handshakeTimedOut(stream: Duplex, ms: number): EzipcError {
  stream.destroy();
  return new EzipcError("EZIPC_HANDSHAKE", `no secure handshake within ${ms} ms`);
}

/** What the hub decides about a client that finished the handshake. */
export type Verdict = { ok: true; identity: PeerIdentity } | { ok: false; reason: string };

export interface SecureListenOptions {
  /** The listener's static key pair (the hub's identity). */
  staticKey: KeyPair;
  /**
   * Whether a client may connect, given its proved static public key and the token it sent. Default:
   * everyone, known by its public key.
   */
  authorize?: (client: { publicKey: Buffer; token: string | undefined }) => Verdict;
  /** A handshake not finished by then is dropped. Default 2 s. */
  handshakeTimeoutMs?: number;
  /** Handshakes in progress per remote address; a new one beyond this drops that address's oldest. Default 32. */
  maxPendingPerAddress?: number;
  /** Handshakes in progress in all; a new one beyond this drops the oldest. Default 1,024. */
  maxPending?: number;
  /** Records per direction between rekeys. Default 2^20. */
  rekeyInterval?: number;
  /**
   * What to answer a client that speaks plain ezipc frames to this secure listener (its first bytes are a
   * frame header, never a handshake message): an ezipc data frame's payload (the hub sends an `error` telling
   * the client the hub requires encryption), sent as a plain frame before closing. Default: nothing.
   */
  plainRefusal?: Uint8Array;
  /** Counts each failed handshake by reason (for the hub's stats). */
  onFailure?: (reason: HandshakeFailure) => void;
  /** The ciphers clients may pick. Default both: ChaChaPoly and AESGCM. */
  ciphers?: readonly SecureCipher[];
}

/** Why a secure handshake failed, as counted in the hub's stats. */
export type HandshakeFailure =
  | "plain"
  | "malformed"
  | "wrongKey"
  | "refused"
  | "timeout"
  | "evicted"
  | "closed";

/**
 * A handshake refusal the client can read: an empty handshake message (never a valid Noise message 2) and
 * then the reason as a message of UTF-8 text. The client raises `EZIPC_AUTH` with that reason.
 */
function refusal(reason: string): Buffer {
  return Buffer.concat([frame(EMPTY), frame(Buffer.from(reason, "utf8").subarray(0, 1024))]);
}

function addressOf(remoteUrl: string): string {
  try {
    const u = new URL(remoteUrl);
    return u.protocol === "tcp:" ? u.hostname : u.protocol + u.pathname;
  } catch {
    return remoteUrl;
  }
}

/** The listening side's upgrade: runs the responder's handshake and the authorisation on each stream. */
export function secureListen(o: SecureListenOptions): StreamUpgrade {
  const timeoutMs = o.handshakeTimeoutMs ?? 2_000;
  checkDurationMs("handshakeTimeoutMs", timeoutMs);
  const perAddress = o.maxPendingPerAddress ?? 32;
  const maxPending = o.maxPending ?? 1_024;
  const rekeyInterval = o.rekeyInterval ?? DEFAULT_REKEY_INTERVAL;
  const ciphers = o.ciphers ?? SECURE_CIPHERS;
  const authorize =
    o.authorize ??
    ((c: { publicKey: Buffer }): Verdict => ({
      ok: true,
      identity: { name: c.publicKey.toString("base64"), publicKey: c.publicKey.toString("base64") },
    }));
  const pending = new Set<Duplex>();
  const pendingByAddress = new Map<string, Set<Duplex>>();
  /** Pending handshakes whose client has sent its first message (they give way last). */
  const started = new WeakSet<Duplex>();
  const evicted = new WeakSet<Duplex>();

  /**
   * Over a bound, one pending handshake gives way to the new one: the oldest that has not sent its first
   * message yet, else the oldest. So idle connections (the cheap flood) never push out a client that is
   * handshaking, whether it comes from another address or from the same one (every local client shares
   * 127.0.0.1 or the Unix socket).
   */
  function evictFrom(set: Set<Duplex>): void {
    let victim: Duplex | undefined;
    for (const s of set) {
      if (!started.has(s)) {
        victim = s;
        break;
      }
      victim ??= s;
    }
    if (!victim) return;
    evicted.add(victim);
    victim.destroy();
  }

  return async (stream, { remoteUrl }) => {
    const address = addressOf(remoteUrl);
    let mine = pendingByAddress.get(address);
    if (!mine) {
      mine = new Set();
      pendingByAddress.set(address, mine);
    }
    if (mine.size >= perAddress) evictFrom(mine);
    if (pending.size >= maxPending) evictFrom(pending);
    pending.add(stream);
    mine.add(stream);
    const reader = new MessageReader(stream, () => started.add(stream));
    let why: HandshakeFailure | undefined;
    const fail = (reason: HandshakeFailure) => {
      why ??= reason;
    };
    try {
      return await withTimeout(respond(stream, reader, fail), timeoutMs, () => {
        fail("timeout");
        return handshakeTimedOut(stream, timeoutMs);
      });
    } catch (err) {
      o.onFailure?.(evicted.has(stream) ? "evicted" : (why ?? "closed"));
      throw err;
    } finally {
      pending.delete(stream);
      mine.delete(stream);
      if (mine.size === 0) pendingByAddress.delete(address);
    }
  };

  async function respond(
    stream: Duplex,
    reader: MessageReader,
    fail: (reason: HandshakeFailure) => void,
  ): Promise<SecureStream> {
    const first = await reader.next();
    if (first.length === 0) {
      // A frame header (a plain client): a handshake message is never empty.
      fail("plain");
      if (o.plainRefusal) {
        stream.end(Buffer.concat([plainFrame(o.plainRefusal), closeFrame("this hub requires encryption")]));
      }
      throw new EzipcError("EZIPC_AUTH", "a plain client at a secure listener");
    }
    const protocol = protocolOf(first[0]!);
    if (!protocol) {
      fail("malformed");
      stream.end(refusal("not an ezipc secure handshake (unknown pattern or cipher)"));
      throw new EzipcError("EZIPC_HANDSHAKE", "not an ezipc secure handshake");
    }
    if (!ciphers.includes(protocol.cipher)) {
      fail("refused");
      stream.end(refusal(`cipher ${protocol.cipher} is not accepted here (accepted: ${ciphers.join(", ")})`));
      throw new EzipcError("EZIPC_HANDSHAKE", `a client picked cipher ${protocol.cipher}`);
    }
    const pattern = protocol.pattern;
    const hs = new HandshakeState({
      protocolName: protocol.name,
      initiator: false,
      prologue: prologue(first[0]!),
      s: o.staticKey,
    });
    let payload: Buffer;
    try {
      payload = hs.readMessage(first.subarray(1));
    } catch (err) {
      // IK: the client encrypted to the key it pinned; if that is not ours, its first message fails here.
      if (pattern === PATTERN_IK) {
        fail("wrongKey");
        stream.end(refusal("the hub's key is not the one this client pinned (check EZIPC_HUB_KEY)"));
        throw new EzipcError("EZIPC_AUTH", "a client pinned another hub key", { cause: err });
      }
      fail("malformed");
      throw err;
    }
    stream.write(frame(hs.writeMessage()));
    if (!hs.done) {
      const m3 = await reader.next();
      try {
        payload = hs.readMessage(m3);
      } catch (err) {
        fail("malformed");
        throw err;
      }
    }
    let token: string | undefined;
    try {
      const auth = payload.length > 0 ? (JSON.parse(payload.toString("utf8")) as { token?: unknown }) : {};
      if (auth.token !== undefined && typeof auth.token !== "string") throw new Error("token");
      token = auth.token as string | undefined;
    } catch {
      fail("malformed");
      throw new EzipcError("EZIPC_HANDSHAKE", "malformed credentials in the handshake");
    }
    const verdict = authorize({ publicKey: hs.remoteStatic!, token });
    const { send, receive } = hs.ciphers;
    const answer = verdict.ok ? { ok: true } : { ok: false, reason: verdict.reason };
    stream.write(frame(send.encrypt(EMPTY, Buffer.from(JSON.stringify(answer)))));
    if (!verdict.ok) {
      fail("refused");
      stream.end();
      throw new EzipcError("EZIPC_AUTH", `client refused: ${verdict.reason}`);
    }
    const secure = new SecureStream(stream, send, receive, reader.detach(), rekeyInterval, hs.handshakeHash);
    secure.peer = verdict.identity;
    return secure;
  }
}

export interface SecureDialOptions {
  /** The hub's public key, pinned: the handshake is IK and only that key's holder can complete it. */
  hubKey?: Uint8Array;
  /**
   * Without `hubKey` (XX): accepts or refuses the key the hub presented (a known-hosts check, or trust on
   * first use). Required then: a client never accepts an unchecked key.
   */
  verifyHubKey?: (key: Buffer) => true | string;
  /** This client's static key pair. Default: a new one per process (then only a token identifies it). */
  staticKey?: KeyPair;
  /** A secret the hub may admit this client by. Travels encrypted. */
  token?: string;
  /** Default 2 s. */
  handshakeTimeoutMs?: number;
  /** Records per direction between rekeys. Default 2^20 (both sides must agree). */
  rekeyInterval?: number;
  /** The AEAD cipher. Default: the faster on this machine ({@link fastestCipher}). */
  cipher?: SecureCipher;
}

let processKey: KeyPair | undefined;

/** This process's static key pair, made on first use: a dialling side's default (then a token identifies it). */
export function processStaticKey(): KeyPair {
  processKey ??= dh25519.generateKeyPair();
  return processKey;
}

/** The dialling side's upgrade: the initiator's handshake, the hub key check and the hub's verdict. */
export function secureDial(o: SecureDialOptions): StreamUpgrade {
  if (!o.hubKey && !o.verifyHubKey) {
    throw new TypeError(
      "secureDial needs hubKey (pinned) or verifyHubKey (known hosts / trust on first use)",
    );
  }
  const timeoutMs = o.handshakeTimeoutMs ?? 2_000;
  checkDurationMs("handshakeTimeoutMs", timeoutMs);
  const rekeyInterval = o.rekeyInterval ?? DEFAULT_REKEY_INTERVAL;
  return (stream) => {
    const reader = new MessageReader(stream);
    return withTimeout(initiate(stream, reader), timeoutMs, () => handshakeTimedOut(stream, timeoutMs));
  };

  async function initiate(stream: Duplex, reader: MessageReader): Promise<SecureStream> {
    const { send, receive, handshakeHash } = await initiateHandshake((b) => stream.write(b), reader.source, {
      hubKey: o.hubKey,
      verifyHubKey: o.verifyHubKey,
      staticKey: o.staticKey ?? processStaticKey(),
      token: o.token,
      cipher: o.cipher ?? fastestCipher(),
    });
    return new SecureStream(stream, send, receive, reader.detach(), rekeyInterval, handshakeHash);
  }
}
