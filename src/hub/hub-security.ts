/**
 * A secure hub (docs/security.md): the Noise handshake each of its listeners runs before a connection is
 * handed to the hub, and the permission check of each operation against the client the handshake proved.
 */
import { AccessPolicy, allowList } from "../security/access.js";
import { secureListen } from "../security/channel.js";
import type { Protocol } from "../service/protocol.js";
import type { Connection, StreamUpgrade } from "../transport/types.js";
import type { HubFaults } from "./hub-counters.js";
import type { AccessCheck, HubSecurity } from "./hub-types.js";

/** The handshake of a secure hub's listeners; failed handshakes are counted in `faults` by reason. */
export function secureUpgrade(sec: HubSecurity, protocol: Protocol, faults: HubFaults): StreamUpgrade {
  return secureListen({
    staticKey: sec.staticKey,
    authorize: allowList(sec.clients ?? []),
    handshakeTimeoutMs: sec.handshakeTimeoutMs,
    maxPendingPerAddress: sec.maxPendingPerAddress,
    ciphers: sec.ciphers,
    plainRefusal: protocol.encode("error", {
      rid: 0,
      code: "EZIPC_AUTH",
      message:
        "this hub requires encryption: connect with its public key (secure.hubKey, or EZIPC_HUB_KEY for the CLI)",
    }),
    onFailure: (reason) => {
      faults.handshakeFailures[reason] = (faults.handshakeFailures[reason] ?? 0) + 1;
    },
  });
}

/**
 * The permission check of a hub whose admitted clients have `allow` rules; undefined when none has (every
 * client may do everything). Connections in `trusted` (the hub's own bridge) are never checked.
 */
export function accessCheck(
  sec: HubSecurity | undefined,
  trusted: WeakSet<Connection>,
): AccessCheck | undefined {
  const clients = sec?.clients ?? [];
  if (!clients.some((c) => c.allow)) return undefined;
  const policy = new AccessPolicy(clients);
  return (conn, op, subject) => {
    if (!trusted.has(conn)) policy.check(conn.peer?.name ?? null, op, subject);
  };
}
