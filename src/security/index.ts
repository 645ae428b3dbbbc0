/**
 * The security layer: encrypted, authenticated connections after a Noise key exchange (XX, or IK when the
 * client knows the hub's key), static key files, known hosts and allow-lists. See docs/security.md.
 */
export {
  AccessPolicy,
  type AllowedClient,
  allowList,
  OPERATIONS,
  type Operation,
  type Permissions,
  patternCovers,
} from "./access.js";
export {
  type SecureDialOptions,
  type SecureListenOptions,
  SecureStream,
  secureDial,
  secureListen,
  type Verdict,
} from "./channel.js";
export {
  type DatagramHandshakeCounters,
  type SecureDatagramDialOptions,
  type SecureDatagramListenOptions,
  secureDatagramDial,
  secureDatagramListen,
} from "./datagrams.js";
export { generateKeyFile, knownHosts, loadOrCreateKeyFile, parsePublicKey, readKeyFile } from "./keys.js";
export { type HandshakeOptions, HandshakeState } from "./noise.js";
export { dh25519, type KeyPair, keyPairFromPrivate } from "./suite.js";
