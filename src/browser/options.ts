/**
 * The connect options of the browser build, in place of src/client/options.ts (whose secure upgrade needs
 * `node:crypto` and `node:fs`): the same types, and `secure` made into the browser's Noise dial
 * (./secure.ts). A page pins the hub's key (`hubKey`): there is no known-hosts file in a browser; and it
 * speaks ChaCha20-Poly1305 (src/browser/suite.ts).
 */
import { EzipcError } from "../errors.js";
import type { StreamUpgrade } from "../transport/types.js";
import { browserSecureUpgrade } from "./secure.js";

export type { ClientSecurity, ConnectOptions } from "../client/options.js";

/** The upgrade that makes a connection to `url` secure with `s` (hubKey required). */
export function secureUpgrade(
  _url: string,
  s: { hubKey?: string | Uint8Array; knownHosts?: string; token?: string; cipher?: "ChaChaPoly" | "AESGCM" },
): StreamUpgrade {
  if (!s.hubKey) {
    throw new EzipcError(
      "EZIPC_SECURE_UNAVAILABLE",
      "in a browser, secure needs hubKey (the hub's public key): there is no known-hosts file",
    );
  }
  if (s.cipher === "AESGCM") {
    throw new EzipcError("EZIPC_SECURE_UNAVAILABLE", "a page speaks ChaChaPoly only (secure.cipher)");
  }
  return browserSecureUpgrade({ hubKey: s.hubKey, token: s.token });
}
