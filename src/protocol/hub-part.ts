/**
 * The plug between the hub (src/hub/hub.ts) and a capability's hub side, for the capabilities whose state
 * lives and dies with a connection: pub/sub (subscriptions), RPC (served topics, calls) and deadman
 * (tokens, waits). The hub admits each message (src/hub/admission.ts) and then offers it to each part in
 * turn. Shared variables are driven per client instead (vars-hub.ts, `VarsPeer`): a client's pointers
 * outlive its connection through the reconnect window.
 */
import type { Connection } from "../transport/types.js";

export interface HubPart {
  /** Handles message `type` from `conn` (admitted already; `client` is its label). False: not this part's. */
  handle(conn: Connection, client: string, type: string, body: unknown): boolean;
  /** `conn` closed: everything it held in this capability goes. */
  connectionClosed(conn: Connection): void;
}
