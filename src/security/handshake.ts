/**
 * The parts of the secure channel's handshake (docs/security.md) that need no stream, shared by the Node
 * upgrade (channel.ts, over a socket) and the browser client (src/transport/browser-ws.ts, over a
 * WebSocket): the first byte naming the pattern and the cipher, the prologue, `u16 length · bytes`
 * handshake messages read from chunks split anywhere, and the initiator's side of the handshake up to the
 * hub's verdict.
 */
import { EzipcError } from "../errors.js";
import { type CipherState, HandshakeState, MAX_MESSAGE } from "./noise.js";
import type { KeyPair } from "./suite.js";

export const PATTERN_XX = 1;
export const PATTERN_IK = 2;
/** The AEAD ciphers a secure connection may use, by their Noise names, and their code in the first byte. */
export const SECURE_CIPHERS = ["ChaChaPoly", "AESGCM"] as const;
export type SecureCipher = (typeof SECURE_CIPHERS)[number];
const PATTERN_NAMES: Record<number, string> = { [PATTERN_XX]: "XX", [PATTERN_IK]: "IK" };
/** Records per direction between rekeys. */
export const DEFAULT_REKEY_INTERVAL = 2 ** 20;

const PROLOGUE = Buffer.from("ezipc-noise/1", "ascii");
const EMPTY = new Uint8Array(0);

/** The first byte of a handshake: pattern in the low nibble, cipher in the high one. */
export function handshakeByte(pattern: number, cipher: SecureCipher): number {
  return pattern | (SECURE_CIPHERS.indexOf(cipher) << 4);
}

/** The Noise protocol name a first byte names, or undefined for an unknown pattern or cipher. */
export function protocolOf(
  byte: number,
): { pattern: number; cipher: SecureCipher; name: string } | undefined {
  const pattern = byte & 0x0f;
  const cipher = SECURE_CIPHERS[byte >> 4];
  const p = PATTERN_NAMES[pattern];
  if (!p || !cipher) return undefined;
  return { pattern, cipher, name: `Noise_${p}_25519_${cipher}_SHA256` };
}

/** The prologue: the version and the first byte (pattern and cipher), so that neither can be changed. */
export function prologue(byte: number): Buffer {
  return Buffer.concat([PROLOGUE, Uint8Array.of(byte)]);
}

/** `u16 BE length · bytes`: a handshake message (or a record) on the wire. */
export function lengthPrefixed(bytes: Uint8Array): Buffer {
  const out = Buffer.allocUnsafe(2 + bytes.length);
  out.writeUInt16BE(bytes.length, 0);
  out.set(bytes, 2);
  return out;
}

/**
 * Handshake messages (`u16 length · bytes`) from chunks split anywhere, one {@link next} at a time; keeps
 * what arrives after the last one asked for (the first records) for {@link rest}. Holds at most two
 * messages' worth: more fails with `EZIPC_HANDSHAKE`.
 */
export class HandshakeMessages {
  private buf: Buffer = Buffer.alloc(0);
  private waiter: { resolve: (m: Buffer) => void; reject: (e: Error) => void } | null = null;
  private failure: Error | null = null;

  /** Bytes arrived. */
  push(chunk: Buffer): void {
    this.buf = this.buf.length === 0 ? chunk : Buffer.concat([this.buf, chunk]);
    if (this.buf.length > 2 * (MAX_MESSAGE + 2)) {
      this.fail(new EzipcError("EZIPC_HANDSHAKE", "the peer sent more than a handshake"));
      return;
    }
    this.deliver();
  }

  /** The transport failed or closed: the pending and later {@link next} reject with `e`. */
  fail(e: Error): void {
    this.failure ??= e;
    const w = this.waiter;
    this.waiter = null;
    w?.reject(e);
  }

  /**
   * Resolves with the next whole message — one that arrived before the transport failed too (a hub's
   * refusal is followed at once by its close) — or rejects with the failure.
   */
  next(): Promise<Buffer> {
    return new Promise((resolve, reject) => {
      this.waiter = { resolve, reject };
      this.deliver();
      if (this.waiter && this.failure) {
        this.waiter = null;
        reject(this.failure);
      }
    });
  }

  /** The bytes received after the last message. */
  rest(): Buffer {
    return this.buf;
  }

  private deliver(): void {
    if (!this.waiter || this.buf.length < 2) return;
    const len = this.buf.readUInt16BE(0);
    if (this.buf.length < 2 + len) return;
    const m = this.buf.subarray(2, 2 + len);
    this.buf = this.buf.subarray(2 + len);
    const w = this.waiter;
    this.waiter = null;
    w.resolve(m);
  }
}

/** What the initiator brings to a handshake. */
export interface InitiatorOptions {
  /** The hub's public key, pinned (IK). */
  hubKey?: Uint8Array;
  /** Without `hubKey` (XX): accepts (`true`) or refuses (a reason) the key the hub presented. */
  verifyHubKey?: (key: Buffer) => true | string;
  staticKey: KeyPair;
  token?: string;
  cipher: SecureCipher;
}

/**
 * The initiator's handshake over `write` (one message at a time) and `messages`, up to the hub's verdict.
 * Resolves with the transport cipher states; rejects with `EZIPC_AUTH` (refused, either way),
 * `EZIPC_HANDSHAKE` or `EZIPC_DECRYPT`.
 */
export async function initiate(
  write: (bytes: Buffer) => void,
  messages: HandshakeMessages,
  o: InitiatorOptions,
): Promise<{ send: CipherState; receive: CipherState; handshakeHash: Buffer }> {
  const pattern = o.hubKey ? PATTERN_IK : PATTERN_XX;
  const byte = handshakeByte(pattern, o.cipher);
  const hs = new HandshakeState({
    protocolName: protocolOf(byte)!.name,
    initiator: true,
    prologue: prologue(byte),
    s: o.staticKey,
    rs: o.hubKey,
  });
  const credentials = Buffer.from(JSON.stringify(o.token === undefined ? {} : { token: o.token }));
  const m1 = hs.writeMessage(pattern === PATTERN_IK ? credentials : EMPTY);
  write(lengthPrefixed(Buffer.concat([Uint8Array.of(byte), m1])));
  const m2 = await messages.next();
  if (m2.length === 0) {
    // The hub's refusal (an empty message): its reason follows.
    const reason = (await messages.next()).toString("utf8");
    throw new EzipcError("EZIPC_AUTH", `the hub refused the handshake: ${reason}`);
  }
  hs.readMessage(m2);
  if (pattern === PATTERN_XX) {
    const ok = o.verifyHubKey!(hs.remoteStatic!);
    if (ok !== true) throw new EzipcError("EZIPC_AUTH", `the hub's key is refused: ${ok}`);
    write(lengthPrefixed(hs.writeMessage(credentials)));
  }
  const { send, receive } = hs.ciphers;
  const verdictRecord = await messages.next();
  const plain = receive.decrypt(EMPTY, verdictRecord);
  if (plain === null) throw new EzipcError("EZIPC_DECRYPT", "the hub's first record failed authentication");
  let verdict: { ok?: unknown; reason?: unknown };
  try {
    verdict = JSON.parse(plain.toString("utf8")) as typeof verdict;
  } catch {
    throw new EzipcError("EZIPC_HANDSHAKE", "malformed answer from the hub");
  }
  if (verdict.ok !== true)
    throw new EzipcError("EZIPC_AUTH", `the hub refused this client: ${String(verdict.reason)}`);
  return { send, receive, handshakeHash: hs.handshakeHash };
}
