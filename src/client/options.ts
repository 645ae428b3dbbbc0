/** The options of `connect()`, and the secure upgrade they describe. */
import type { SecureCipher } from "../security/channel.js";
import { knownHosts, parsePublicKey } from "../security/keys.js";
import type { KeyPair } from "../security/x25519.js";
import type { DialerOptions } from "../transport/dialer.js";
import type { StreamUpgrade } from "../transport/types.js";

/** Options of {@link connect}. Dial and reconnect options apply to every (re)connection. */
export interface ConnectOptions extends Omit<DialerOptions, "resetOnConnect"> {
  /** This client's name, shown by `ezipc ls`. Default `pid:<pid>`. */
  name?: string;
  /** A request with no reply by then rejects with `EZIPC_TIMEOUT`. Default 10 s. */
  requestTimeoutMs?: number;
  /**
   * Keep retrying when the first connection fails (refused, or closed before the hub's welcome), instead of
   * rejecting. Default false.
   */
  waitOnFirstConnect?: boolean;
  /**
   * Direct RPC (docs/rpc.md): serve requests on a private Unix socket too, and call servers on this host
   * directly once the hub named them. Default true; false sends every call through the hub.
   */
  directRpc?: boolean;
  /** Connect to a secure hub (docs/security.md): how to check its key, and this client's credentials. */
  secure?: ClientSecurity;
}

/** How a client checks a secure hub and proves itself to it. */
export interface ClientSecurity {
  /** The hub's public key (base64 or bytes), pinned: only that hub can complete the handshake. */
  hubKey?: string | Uint8Array;
  /** Without `hubKey`: a known-hosts file the hub's key must be listed in. */
  knownHosts?: string;
  /** With `knownHosts`: add an unknown hub's key to it instead of refusing. */
  trustOnFirstUse?: boolean;
  /** This client's static key pair (`readKeyFile`). Default: one per process. */
  staticKey?: KeyPair;
  /** A token the hub admits this client by. */
  token?: string;
  /** The AEAD cipher: `AESGCM` or `ChaChaPoly`. Default: the faster on this machine. */
  cipher?: SecureCipher;
}

/**
 * The upgrade that makes a connection to `url` secure with `s` (the options are checked now; the secure
 * channel's modules load at the first secure connection: a client of a plain hub never loads them).
 */
export function secureUpgrade(url: string, s: ClientSecurity): StreamUpgrade {
  const hubKey = typeof s.hubKey === "string" ? parsePublicKey(s.hubKey) : s.hubKey;
  if (!hubKey && !s.knownHosts) {
    throw new TypeError("secure: give hubKey (pinned) or knownHosts (with trustOnFirstUse to learn it)");
  }
  const verifyHubKey = s.knownHosts
    ? knownHosts(s.knownHosts, url, { trustOnFirstUse: s.trustOnFirstUse ?? false })
    : undefined;
  let upgrade: Promise<StreamUpgrade> | null = null;
  return async (stream, context) => {
    upgrade ??= import("../security/channel.js").then((m) =>
      m.secureDial({ hubKey, verifyHubKey, staticKey: s.staticKey, token: s.token, cipher: s.cipher }),
    );
    return (await upgrade)(stream, context);
  };
}
