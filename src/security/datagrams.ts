/**
 * Encrypted datagrams for udp:// (docs/security.md, "Datagrams"): the Noise IK handshake in one round trip,
 * then every datagram sealed on its own with an explicit nonce, so that loss and reordering never break the
 * session, and an anti-replay window (as WireGuard's) so that no datagram is delivered twice.
 *
 * The transport (src/transport/udp.ts) sends, resends and routes; this file makes and reads the datagrams:
 * - `[4] [pattern/cipher byte] [Noise IK message 1]` — the dialler's hello; its payload is the credentials
 *   JSON (`{"token":…}`), as on streams. Resent every `retransmitMs` until answered.
 * - `[5] [Noise IK message 2]` — the answer; its payload (encrypted and authenticated by the handshake) is
 *   the verdict `{"ok":true}` or `{"ok":false,"reason":…}`. The listener keeps it and sends it again for a
 *   repeated hello (the first answer was lost).
 * - `[6] [UTF-8 reason]` — a refusal the listener sends when it cannot read the hello (another hub key was
 *   pinned, an unknown cipher). Anyone could forge one, so a dial does not give up on it: it reports it only
 *   if no answer comes before its timeout.
 * - `[7] [u64 BE nonce] [AEAD(inner datagram)]` — a sealed datagram; the first 9 bytes are the associated
 *   data. Each side counts its nonces from 0 under its own key (Noise's split). The receiver checks the
 *   nonce against its window (the newest and the 1,024 before it), decrypts, and only then marks it: a
 *   forged datagram cannot move the window.
 *
 * The prologue is the stream handshake's followed by `/udp`, so a handshake message of one cannot be used
 * in the other. Sessions are not rekeyed: a 64-bit nonce per direction is never exhausted by a connection,
 * and a new dial makes new keys.
 */

import { EzipcError } from "../errors.js";
import { checkDurationMs } from "../ranges.js";
import {
  KIND_HANDSHAKE,
  KIND_HANDSHAKE_REPLY,
  KIND_REFUSAL,
  KIND_SEALED,
  SEQUENCE_WINDOW,
  SlidingWindow,
} from "../transport/datagram.js";
import type {
  DatagramHandshake,
  DatagramHandshakeStep,
  DatagramSecurity,
  DatagramSession,
  PeerIdentity,
} from "../transport/types.js";
import type { Verdict } from "./channel.js";
import { fastestCipher, processStaticKey } from "./channel.js";
import {
  handshakeByte,
  PATTERN_IK,
  prologue,
  protocolOf,
  SECURE_CIPHERS,
  type SecureCipher,
} from "./handshake.js";
import { type CipherState, HandshakeState } from "./noise.js";
import type { KeyPair } from "./suite.js";

const SEALED_HEADER = 9;
const TAG = 16;
/** Nonces beyond 2^53 are never sent (a sender would need 2^53 datagrams): a datagram claiming one is forged. */
const MAX_NONCE_HIGH = 0x1fffff;

function datagramPrologue(byte: number): Buffer {
  return Buffer.concat([prologue(byte), Buffer.from("/udp", "ascii")]);
}

/** A session's keys: seals with the next nonce, opens through the anti-replay window. */
export class SealedSession implements DatagramSession {
  readonly overheadBytes = SEALED_HEADER + TAG;
  private nextNonce = 0;
  private readonly window = new SlidingWindow(SEQUENCE_WINDOW);

  constructor(
    readonly peer: PeerIdentity,
    private readonly sendKey: CipherState,
    private readonly receiveKey: CipherState,
  ) {}

  seal(inner: Buffer): Buffer {
    const n = this.nextNonce++;
    const header = Buffer.allocUnsafe(SEALED_HEADER);
    header[0] = KIND_SEALED;
    header.writeUInt32BE(Math.floor(n / 2 ** 32), 1);
    header.writeUInt32BE(n >>> 0, 5);
    return Buffer.concat([header, ...this.sendKey.encryptPartsAt(n, header, inner)]);
  }

  open(sealed: Buffer): Buffer | "replayed" | "forged" | "tooOld" {
    if (sealed.length < SEALED_HEADER + TAG || sealed[0] !== KIND_SEALED) return "forged";
    const high = sealed.readUInt32BE(1);
    if (high > MAX_NONCE_HIGH) return "forged";
    const n = high * 2 ** 32 + sealed.readUInt32BE(5);
    const where = this.window.check(n);
    if (where === "seen") return "replayed";
    if (where === "tooOld") return "tooOld";
    const plain = this.receiveKey.decryptAt(
      n,
      sealed.subarray(0, SEALED_HEADER),
      sealed.subarray(SEALED_HEADER),
    );
    if (plain === null) return "forged";
    this.window.mark(n);
    return plain;
  }
}

function refusalDatagram(reason: string): Buffer {
  return Buffer.concat([Uint8Array.of(KIND_REFUSAL), Buffer.from(reason, "utf8").subarray(0, 1024)]);
}

export interface SecureDatagramDialOptions {
  /** The listener's public key, pinned (the handshake is IK: only its holder can answer). */
  hubKey: Uint8Array;
  /** This side's static key pair. Default: one per process (then only a token identifies it). */
  staticKey?: KeyPair;
  /** A secret the listener may admit this side by. Travels encrypted. */
  token?: string;
  /** The AEAD cipher. Default: the faster on this machine. */
  cipher?: SecureCipher;
  /** Give up when no answer came by then (`EZIPC_HANDSHAKE`, or the refusal heard). Default 2 s. */
  handshakeTimeoutMs?: number;
  /** Send the hello again this often until answered. Default 200 ms. */
  retransmitMs?: number;
}

/** The dialling side's datagram security: `dial("udp://…", { udp: { secure: secureDatagramDial({ hubKey }) } })`. */
export function secureDatagramDial(o: SecureDatagramDialOptions): DatagramSecurity {
  if (!(o.hubKey instanceof Uint8Array) || o.hubKey.length !== 32) {
    throw new TypeError("secureDatagramDial: hubKey must be a 32-byte public key");
  }
  const cipher = o.cipher ?? fastestCipher();
  if (!SECURE_CIPHERS.includes(cipher)) {
    throw new TypeError(`secureDatagramDial: unknown cipher ${String(cipher)}`);
  }
  checkDurationMs("handshakeTimeoutMs", o.handshakeTimeoutMs ?? 2_000);
  checkDurationMs("retransmitMs", o.retransmitMs ?? 200);
  return {
    side: "dial",
    handshakeTimeoutMs: o.handshakeTimeoutMs ?? 2_000,
    retransmitMs: o.retransmitMs ?? 200,
    begin(): DatagramHandshake {
      const byte = handshakeByte(PATTERN_IK, cipher);
      const hs = new HandshakeState({
        protocolName: protocolOf(byte)!.name,
        initiator: true,
        prologue: datagramPrologue(byte),
        s: o.staticKey ?? processStaticKey(),
        rs: o.hubKey,
      });
      const credentials = Buffer.from(JSON.stringify(o.token === undefined ? {} : { token: o.token }));
      const hello = Buffer.concat([Uint8Array.of(KIND_HANDSHAKE, byte), hs.writeMessage(credentials)]);
      let done = false;
      return {
        hello,
        receive(d: Buffer): DatagramHandshakeStep {
          if (done) return {};
          if (d[0] === KIND_REFUSAL) {
            const reason = d.subarray(1).toString("utf8");
            return { hint: new EzipcError("EZIPC_AUTH", `the listener refused the handshake: ${reason}`) };
          }
          if (d[0] !== KIND_HANDSHAKE_REPLY) return {};
          let verdict: { ok?: unknown; reason?: unknown };
          try {
            verdict = JSON.parse(hs.readMessage(d.subarray(1)).toString("utf8")) as typeof verdict;
          } catch {
            return {}; // not an answer to this hello (a forgery, or garbage): keep waiting
          }
          done = true;
          if (verdict.ok !== true) {
            return {
              refused: new EzipcError(
                "EZIPC_AUTH",
                `the listener refused this peer: ${String(verdict.reason)}`,
              ),
            };
          }
          const { send, receive } = hs.ciphers;
          const key = Buffer.from(o.hubKey).toString("base64");
          return { session: new SealedSession({ name: key, publicKey: key }, send, receive) };
        },
      };
    },
  };
}

export interface SecureDatagramListenOptions {
  /** The listener's static key pair (its identity). */
  staticKey: KeyPair;
  /** Whether a peer may talk, given its proved public key and its token. Default: everyone, by public key. */
  authorize?: (peer: { publicKey: Buffer; token: string | undefined }) => Verdict;
  /** The ciphers peers may pick. Default both. */
  ciphers?: readonly SecureCipher[];
  /**
   * Hellos answered per second, in all (each costs three X25519 operations): more are ignored, so a flood of
   * forged hellos costs bounded CPU. Default 1,000.
   */
  maxHandshakesPerSecond?: number;
}

/** Counters of a listening side's handshakes. */
export interface DatagramHandshakeCounters {
  /** Peers admitted. */
  admitted: number;
  /** Hellos refused (by the verdict, or unreadable: another key pinned, an unknown cipher). */
  refused: number;
  /** Hellos ignored over `maxHandshakesPerSecond`. */
  limited: number;
}

/** The listening side's datagram security: `listen("udp://…", { udp: { secure: secureDatagramListen({ staticKey }) } })`. */
export function secureDatagramListen(
  o: SecureDatagramListenOptions,
): DatagramSecurity & { readonly counters: DatagramHandshakeCounters } {
  const ciphers = o.ciphers ?? SECURE_CIPHERS;
  const perSecond = o.maxHandshakesPerSecond ?? 1_000;
  const authorize =
    o.authorize ??
    ((p: { publicKey: Buffer }): Verdict => ({
      ok: true,
      identity: { name: p.publicKey.toString("base64"), publicKey: p.publicKey.toString("base64") },
    }));
  const counters: DatagramHandshakeCounters = { admitted: 0, refused: 0, limited: 0 };
  let second = 0;
  let thisSecond = 0;

  function respond(d: Buffer): { reply: Buffer; session?: SealedSession } {
    const protocol = d.length >= 2 ? protocolOf(d[1]!) : undefined;
    if (!protocol || protocol.pattern !== PATTERN_IK) {
      return { reply: refusalDatagram("not an ezipc datagram handshake (unknown pattern or cipher)") };
    }
    if (!ciphers.includes(protocol.cipher)) {
      return {
        reply: refusalDatagram(
          `cipher ${protocol.cipher} is not accepted here (accepted: ${ciphers.join(", ")})`,
        ),
      };
    }
    const hs = new HandshakeState({
      protocolName: protocol.name,
      initiator: false,
      prologue: datagramPrologue(d[1]!),
      s: o.staticKey,
    });
    let token: string | undefined;
    try {
      const payload = hs.readMessage(d.subarray(2));
      const auth = payload.length > 0 ? (JSON.parse(payload.toString("utf8")) as { token?: unknown }) : {};
      if (auth.token !== undefined && typeof auth.token !== "string") throw new Error("token");
      token = auth.token as string | undefined;
    } catch {
      return {
        reply: refusalDatagram("the listener's key is not the one this peer pinned, or a malformed hello"),
      };
    }
    const verdict = authorize({ publicKey: hs.remoteStatic!, token });
    const answer = verdict.ok ? { ok: true } : { ok: false, reason: verdict.reason };
    const reply = Buffer.concat([
      Uint8Array.of(KIND_HANDSHAKE_REPLY),
      hs.writeMessage(Buffer.from(JSON.stringify(answer))),
    ]);
    if (!verdict.ok) return { reply };
    const { send, receive } = hs.ciphers;
    return { reply, session: new SealedSession(verdict.identity, send, receive) };
  }

  return {
    side: "listen",
    handshakeTimeoutMs: 0,
    retransmitMs: 0,
    counters,
    begin(): DatagramHandshake | null {
      const now = Math.floor(Date.now() / 1000);
      if (now !== second) {
        second = now;
        thisSecond = 0;
      }
      if (++thisSecond > perSecond) {
        counters.limited++;
        return null;
      }
      /** The hello answered and its answer: a repeated hello (our answer was lost) gets the same answer. */
      let answered: { hello: Buffer; reply: Buffer } | null = null;
      return {
        hello: null,
        receive(d: Buffer): DatagramHandshakeStep {
          if (d[0] !== KIND_HANDSHAKE) return {};
          if (answered) return answered.hello.equals(d) ? { reply: answered.reply } : {};
          const r = respond(d);
          answered = { hello: Buffer.from(d), reply: r.reply };
          if (r.session) counters.admitted++;
          else counters.refused++;
          return r.session ? { reply: r.reply, session: r.session } : { reply: r.reply };
        },
      };
    },
  };
}
