/**
 * The Noise Protocol Framework, revision 34 (noiseprotocol.org/noise.html): CipherState, SymmetricState
 * and HandshakeState for the twelve fundamental interactive patterns (ezipc uses XX, and IK when the client
 * knows the hub's key), with Curve25519 and any cipher and hash of suite.ts. Checked against the
 * cacophony test vectors (test/security/noise-vectors.test.ts).
 *
 * Pure state machines over byte arrays: no I/O. A failed decryption throws `EZIPC_HANDSHAKE` during the
 * handshake; after it, `CipherState.decrypt` returns null and the caller ends the connection.
 */
import { EzipcError } from "../errors.js";
import {
  CIPHERS,
  type CipherFn,
  dh25519,
  HASHES,
  type HashFn,
  type KeyPair,
  keyPairFromPrivate,
} from "./suite.js";

/** The largest Noise message, in bytes (section 3). */
export const MAX_MESSAGE = 65_535;
/** Bytes the AEAD tag adds to an encrypted payload. */
export const TAG_BYTES = 16;
/** The nonce value reserved by the specification (2^64 - 1) is never reached: counters stop at 2^53. */
const MAX_NONCE = Number.MAX_SAFE_INTEGER;

const EMPTY = new Uint8Array(0);

export class CipherState {
  private k: Buffer | null = null;
  /** The next nonce. */
  n = 0;

  constructor(private readonly cipher: CipherFn) {}

  initializeKey(key: Buffer | null): void {
    this.k = key;
    this.n = 0;
  }
  hasKey(): boolean {
    return this.k !== null;
  }
  /** ENCRYPT with the next nonce (plaintext returned as is without a key). */
  encrypt(ad: Uint8Array, plaintext: Uint8Array): Buffer {
    if (this.k === null) return Buffer.from(plaintext);
    if (this.n >= MAX_NONCE) throw new EzipcError("EZIPC_PROTOCOL", "nonce space exhausted: reconnect");
    return this.cipher.encrypt(this.k, this.n++, ad, plaintext);
  }
  /** ENCRYPT of the concatenated `parts` with the next nonce, as pieces (a key is required). */
  encryptParts(ad: Uint8Array, parts: readonly Uint8Array[], length: number): Buffer[] {
    if (this.k === null) throw new EzipcError("EZIPC_PROTOCOL", "no key yet");
    if (this.n >= MAX_NONCE) throw new EzipcError("EZIPC_PROTOCOL", "nonce space exhausted: reconnect");
    return this.cipher.encryptParts(this.k, this.n++, ad, parts, length);
  }
  /**
   * DECRYPT with the next nonce; null if it fails (the nonce is not used up then). `inPlace`: the
   * plaintext may be written over `ciphertext` (garbage then if it fails; see CipherFn.decrypt).
   */
  decrypt(ad: Uint8Array, ciphertext: Uint8Array, inPlace = false): Buffer | null {
    if (this.k === null) return Buffer.from(ciphertext);
    if (this.n >= MAX_NONCE) return null;
    const plain = this.cipher.decrypt(this.k, this.n, ad, ciphertext, inPlace);
    if (plain !== null) this.n++;
    return plain;
  }
  /** Whether {@link encryptInto} and {@link decryptPartsInPlace} work (the cipher is the addon's). */
  get sealsInPlace(): boolean {
    return this.cipher.encryptInto !== undefined && this.cipher.decryptPartsInPlace !== undefined;
  }
  /** ENCRYPT of `parts` joined with the next nonce, into `out` (see CipherFn.encryptInto; a key is required). */
  encryptInto(ad: Uint8Array, parts: readonly Uint8Array[], out: Uint8Array): void {
    if (this.k === null) throw new EzipcError("EZIPC_PROTOCOL", "no key yet");
    if (this.n >= MAX_NONCE) throw new EzipcError("EZIPC_PROTOCOL", "nonce space exhausted: reconnect");
    this.cipher.encryptInto!(this.k, this.n++, ad, parts, out); // callers check sealsInPlace first
  }
  /** DECRYPT with the next nonce of a ciphertext lying in `parts`, in place; false if it fails. */
  decryptPartsInPlace(ad: Uint8Array, parts: readonly Uint8Array[]): boolean {
    if (this.k === null) throw new EzipcError("EZIPC_PROTOCOL", "no key yet");
    if (this.n >= MAX_NONCE) return false;
    const ok = this.cipher.decryptPartsInPlace!(this.k, this.n, ad, parts); // as encryptInto
    if (ok) this.n++;
    return ok;
  }
  /**
   * ENCRYPT with the explicit nonce `n` (the counter is neither used nor moved): for datagrams, which carry
   * their nonce because they may be lost or reordered (src/security/datagrams.ts). A key is required.
   */
  encryptAt(n: number, ad: Uint8Array, plaintext: Uint8Array): Buffer {
    if (this.k === null) throw new EzipcError("EZIPC_PROTOCOL", "no key yet");
    return this.cipher.encrypt(this.k, n, ad, plaintext);
  }
  /** {@link encryptAt} in pieces: the ciphertext of `plaintext`, then the tag (the caller joins them once). */
  encryptPartsAt(n: number, ad: Uint8Array, plaintext: Uint8Array): Buffer[] {
    if (this.k === null) throw new EzipcError("EZIPC_PROTOCOL", "no key yet");
    return this.cipher.encryptParts(this.k, n, ad, [plaintext], plaintext.length);
  }
  /** DECRYPT with the explicit nonce `n`; null if it fails. A key is required. */
  decryptAt(n: number, ad: Uint8Array, ciphertext: Uint8Array): Buffer | null {
    if (this.k === null) throw new EzipcError("EZIPC_PROTOCOL", "no key yet");
    return this.cipher.decrypt(this.k, n, ad, ciphertext);
  }
  /** Rekey(): k = the first 32 bytes of ENCRYPT(k, 2^64 - 1, empty, 32 zero bytes); n is kept. */
  rekey(): void {
    if (this.k === null) return;
    this.k = rekeyed(this.cipher, this.k);
  }
}

/** Rekey(): the first 32 bytes of ENCRYPT(k, 2^64 - 1, empty, 32 zero bytes) (section 4.2). */
function rekeyed(cipher: CipherFn, k: Buffer): Buffer {
  return cipher.encrypt(k, 2n ** 64n - 1n, EMPTY, Buffer.alloc(32)).subarray(0, 32);
}

class SymmetricState {
  readonly cs: CipherState;
  ck: Buffer;
  h: Buffer;

  constructor(
    protocolName: string,
    private readonly hash: HashFn,
    private readonly cipher: CipherFn,
  ) {
    this.cs = new CipherState(cipher);
    const name = Buffer.from(protocolName, "ascii");
    if (name.length <= hash.hashLen) {
      this.h = Buffer.alloc(hash.hashLen);
      name.copy(this.h);
    } else this.h = hash.hash(name);
    this.ck = this.h;
  }

  mixKey(ikm: Uint8Array): void {
    const [ck, temp] = this.hash.hkdf(this.ck, ikm, 2) as [Buffer, Buffer];
    this.ck = ck;
    this.cs.initializeKey(temp.subarray(0, 32));
  }
  mixHash(data: Uint8Array): void {
    this.h = this.hash.hash(this.h, data);
  }
  encryptAndHash(plaintext: Uint8Array): Buffer {
    const c = this.cs.encrypt(this.h, plaintext);
    this.mixHash(c);
    return c;
  }
  decryptAndHash(ciphertext: Uint8Array): Buffer {
    const p = this.cs.decrypt(this.h, ciphertext);
    if (p === null) throw new EzipcError("EZIPC_HANDSHAKE", "handshake message failed authentication");
    this.mixHash(ciphertext);
    return p;
  }
  split(): [CipherState, CipherState] {
    const [t1, t2] = this.hash.hkdf(this.ck, EMPTY, 2) as [Buffer, Buffer];
    const c1 = new CipherState(this.cipher);
    const c2 = new CipherState(this.cipher);
    c1.initializeKey(t1.subarray(0, 32));
    c2.initializeKey(t2.subarray(0, 32));
    return [c1, c2];
  }
}

type Token = "e" | "s" | "ee" | "es" | "se" | "ss";

interface Pattern {
  /** Pre-messages: the initiator's and the responder's static key known in advance. */
  readonly pre: readonly [initiator: readonly "s"[], responder: readonly "s"[]];
  readonly messages: readonly (readonly Token[])[];
}

/** The fundamental interactive patterns (section 7.5). */
export const PATTERNS: Record<string, Pattern> = {
  NN: { pre: [[], []], messages: [["e"], ["e", "ee"]] },
  NK: {
    pre: [[], ["s"]],
    messages: [
      ["e", "es"],
      ["e", "ee"],
    ],
  },
  NX: { pre: [[], []], messages: [["e"], ["e", "ee", "s", "es"]] },
  KN: { pre: [["s"], []], messages: [["e"], ["e", "ee", "se"]] },
  KK: {
    pre: [["s"], ["s"]],
    messages: [
      ["e", "es", "ss"],
      ["e", "ee", "se"],
    ],
  },
  KX: { pre: [["s"], []], messages: [["e"], ["e", "ee", "se", "s", "es"]] },
  XN: { pre: [[], []], messages: [["e"], ["e", "ee"], ["s", "se"]] },
  XK: {
    pre: [[], ["s"]],
    messages: [
      ["e", "es"],
      ["e", "ee"],
      ["s", "se"],
    ],
  },
  XX: { pre: [[], []], messages: [["e"], ["e", "ee", "s", "es"], ["s", "se"]] },
  IN: {
    pre: [[], []],
    messages: [
      ["e", "s"],
      ["e", "ee", "se"],
    ],
  },
  IK: {
    pre: [[], ["s"]],
    messages: [
      ["e", "es", "s", "ss"],
      ["e", "ee", "se"],
    ],
  },
  IX: {
    pre: [[], []],
    messages: [
      ["e", "s"],
      ["e", "ee", "se", "s", "es"],
    ],
  },
};

/** A parsed protocol name: `Noise_<pattern>_25519_<cipher>_<hash>`; null if not one this module speaks. */
export function parseProtocolName(name: string): { pattern: string; cipher: CipherFn; hash: HashFn } | null {
  const m = /^Noise_([A-Z]{2})_25519_(ChaChaPoly|AESGCM)_(SHA256|SHA512|BLAKE2s|BLAKE2b)$/.exec(name);
  if (!m || !PATTERNS[m[1]!]) return null;
  return { pattern: m[1]!, cipher: CIPHERS[m[2]!]!, hash: HASHES[m[3]!]! };
}

export interface HandshakeOptions {
  protocolName: string;
  initiator: boolean;
  prologue?: Uint8Array;
  /** Our static key pair (patterns that send or pre-know it). */
  s?: KeyPair;
  /** The peer's static public key, when known in advance (NK, KK, XK, IK…). */
  rs?: Uint8Array;
  /** Our ephemeral key pair: for test vectors only (generated otherwise). */
  e?: KeyPair;
}

/** One side of a handshake. Call writeMessage/readMessage in the pattern's order until {@link done}. */
export class HandshakeState {
  private readonly ss: SymmetricState;
  private readonly pattern: Pattern;
  private readonly initiator: boolean;
  private s: KeyPair | undefined;
  private e: KeyPair | undefined;
  private rs: Buffer | undefined;
  private re: Buffer | undefined;
  private step = 0;
  private result: [CipherState, CipherState] | null = null;

  constructor(o: HandshakeOptions) {
    const parsed = parseProtocolName(o.protocolName);
    if (!parsed) throw new EzipcError("EZIPC_HANDSHAKE", `unsupported Noise protocol ${o.protocolName}`);
    this.pattern = PATTERNS[parsed.pattern]!;
    this.ss = new SymmetricState(o.protocolName, parsed.hash, parsed.cipher);
    this.initiator = o.initiator;
    this.s = o.s;
    this.e = o.e;
    this.rs = o.rs ? Buffer.from(o.rs) : undefined;
    this.ss.mixHash(o.prologue ?? EMPTY);
    const [preI, preR] = this.pattern.pre;
    for (const _ of preI)
      this.ss.mixHash(this.initiator ? this.need(this.s, "s").publicKey : this.need(this.rs, "rs"));
    for (const _ of preR)
      this.ss.mixHash(this.initiator ? this.need(this.rs, "rs") : this.need(this.s, "s").publicKey);
  }

  private need<T>(x: T | undefined, what: string): T {
    if (x === undefined) throw new EzipcError("EZIPC_HANDSHAKE", `this handshake needs ${what}`);
    return x;
  }

  /** True when it is our turn to write. */
  get myTurn(): boolean {
    return this.step % 2 === (this.initiator ? 0 : 1);
  }
  get done(): boolean {
    return this.result !== null;
  }
  /** The handshake hash (channel binding), once done. */
  get handshakeHash(): Buffer {
    return this.ss.h;
  }
  /** The peer's static public key, once received (or known). */
  get remoteStatic(): Buffer | undefined {
    return this.rs;
  }
  /** The transport cipher states [send, receive], once done. */
  get ciphers(): { send: CipherState; receive: CipherState } {
    const r = this.result;
    if (r === null) throw new EzipcError("EZIPC_HANDSHAKE", "the handshake is not finished");
    return this.initiator ? { send: r[0], receive: r[1] } : { send: r[1], receive: r[0] };
  }

  private dh(token: "ee" | "es" | "se" | "ss"): void {
    const I = this.initiator;
    const pick = (mine: "e" | "s", theirs: "e" | "s") =>
      dh25519.dh(
        this.need(mine === "e" ? this.e : this.s, mine).privateKey,
        this.need(theirs === "e" ? this.re : this.rs, `r${theirs}`),
      );
    switch (token) {
      case "ee":
        this.ss.mixKey(pick("e", "e"));
        break;
      case "es":
        this.ss.mixKey(I ? pick("e", "s") : pick("s", "e"));
        break;
      case "se":
        this.ss.mixKey(I ? pick("s", "e") : pick("e", "s"));
        break;
      case "ss":
        this.ss.mixKey(pick("s", "s"));
        break;
    }
  }

  private next(): readonly Token[] {
    const tokens = this.pattern.messages[this.step];
    if (!tokens) throw new EzipcError("EZIPC_HANDSHAKE", "the handshake is over");
    return tokens;
  }

  private advance(): void {
    this.step++;
    if (this.step === this.pattern.messages.length) this.result = this.ss.split();
  }

  /** WriteMessage(payload): the next handshake message. */
  writeMessage(payload: Uint8Array = EMPTY): Buffer {
    if (!this.myTurn) throw new EzipcError("EZIPC_HANDSHAKE", "not our turn to write");
    const parts: Buffer[] = [];
    for (const t of this.next()) {
      if (t === "e") {
        this.e ??= dh25519.generateKeyPair();
        parts.push(this.e.publicKey);
        this.ss.mixHash(this.e.publicKey);
      } else if (t === "s") {
        parts.push(this.ss.encryptAndHash(this.need(this.s, "s").publicKey));
      } else this.dh(t);
    }
    parts.push(this.ss.encryptAndHash(payload));
    this.advance();
    const out = Buffer.concat(parts);
    if (out.length > MAX_MESSAGE) throw new EzipcError("EZIPC_HANDSHAKE", "handshake message too long");
    return out;
  }

  /** ReadMessage(message): the payload; throws `EZIPC_HANDSHAKE` if the message is malformed or forged. */
  readMessage(message: Uint8Array): Buffer {
    if (this.myTurn) throw new EzipcError("EZIPC_HANDSHAKE", "not our turn to read");
    if (message.length > MAX_MESSAGE) throw new EzipcError("EZIPC_HANDSHAKE", "handshake message too long");
    let pos = 0;
    const take = (n: number): Buffer => {
      if (pos + n > message.length) throw new EzipcError("EZIPC_HANDSHAKE", "handshake message too short");
      const b = Buffer.from(message.subarray(pos, pos + n));
      pos += n;
      return b;
    };
    for (const t of this.next()) {
      if (t === "e") {
        this.re = take(32);
        this.ss.mixHash(this.re);
      } else if (t === "s") {
        this.rs = this.ss.decryptAndHash(take(this.ss.cs.hasKey() ? 32 + TAG_BYTES : 32));
      } else this.dh(t);
    }
    const payload = this.ss.decryptAndHash(message.subarray(pos));
    this.advance();
    return payload;
  }
}

export { keyPairFromPrivate };
