/**
 * Secure connections from a page: the Noise handshake of docs/security.md (IK, the hub's key pinned) and
 * the record layer, over the browser's WebSocket — src/security/handshake.ts and records.ts unchanged, on
 * the @noble suite of ./suite.ts in the browser build. The client's token travels encrypted in the
 * handshake, as from Node. A page gets a new static key per load, so a hub admits it by its token.
 */
import { withTimeout } from "../deadline.js";
import { EzipcError } from "../errors.js";
import { checkDurationMs } from "../ranges.js";
import { DEFAULT_REKEY_INTERVAL, HandshakeMessages, initiate } from "../security/handshake.js";
import { RecordReader, sealRecords } from "../security/records.js";
import { dh25519, type KeyPair } from "../security/suite.js";
import type { BrowserUpgrade, WithBrowserUpgrade } from "../transport/browser-ws.js";
import type { StreamUpgrade } from "../transport/types.js";

/** How a page connects to a secure hub. */
export interface BrowserSecurity {
  /** The hub's public key (base64 or 32 bytes), pinned: only that hub can complete the handshake. */
  hubKey: string | Uint8Array;
  /** A token the hub admits this page by. */
  token?: string;
  /** This page's static key pair. Default: a new one per page. */
  staticKey?: KeyPair;
  /** A handshake not done by then fails with `EZIPC_HANDSHAKE`. Default 5 s. */
  handshakeTimeoutMs?: number;
}

let pageKey: KeyPair | undefined;

function hubKeyBytes(key: string | Uint8Array): Buffer {
  const bytes = typeof key === "string" ? Buffer.from(key, "base64") : Buffer.from(key);
  if (bytes.length !== 32) {
    throw new EzipcError(
      "EZIPC_AUTH",
      "secure.hubKey: a hub's public key is 32 bytes (44 characters of base64)",
    );
  }
  return bytes;
}

/** The browser's secure dial, as the `upgrade` of a dial (src/transport/browser-ws.ts runs it). */
export function browserSecureUpgrade(s: BrowserSecurity): StreamUpgrade {
  const hubKey = hubKeyBytes(s.hubKey);
  const timeoutMs = s.handshakeTimeoutMs ?? 5_000;
  checkDurationMs("handshakeTimeoutMs", timeoutMs);
  const browserUpgrade: BrowserUpgrade = (io) => {
    const messages = new HandshakeMessages();
    io.onData((chunk) => messages.push(chunk));
    io.onClose((error) => messages.fail(error));
    pageKey ??= dh25519.generateKeyPair();
    const handshake = initiate((bytes) => io.send(bytes), messages, {
      hubKey,
      staticKey: s.staticKey ?? pageKey,
      token: s.token,
      cipher: "ChaChaPoly", // the one cipher of the browser suite (src/browser/suite.ts)
    }).then(({ send, receive }) => {
      const reader = new RecordReader(receive, DEFAULT_REKEY_INTERVAL);
      return {
        seal: (bytes: Uint8Array) => {
          const pieces = sealRecords(
            send,
            [Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength)],
            DEFAULT_REKEY_INTERVAL,
          );
          return [pieces.length === 1 ? pieces[0]! : Buffer.concat(pieces)];
        },
        open: (chunk: Buffer, deliver: (plain: Buffer) => void) => reader.push(chunk, deliver),
        leftover: messages.rest(),
      };
    });
    return withTimeout(
      handshake,
      timeoutMs,
      () => new EzipcError("EZIPC_HANDSHAKE", `the secure handshake did not finish within ${timeoutMs} ms`),
    );
  };
  const upgrade: StreamUpgrade & WithBrowserUpgrade = () =>
    Promise.reject(new EzipcError("EZIPC_SECURE_UNAVAILABLE", "a browser upgrade runs on a WebSocket only"));
  upgrade.browserUpgrade = browserUpgrade;
  return upgrade;
}
