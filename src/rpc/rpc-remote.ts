/**
 * RPC between the hubs of a cluster (docs/cluster.md): the hub's router (rpc-hub.ts) sees the other end of a
 * call that crosses hubs as one more peer — a {@link RemotePeer} standing for the server's hub (on the
 * caller's hub) or for the caller's hub (on the server's hub). Frames the router sends to it travel to the
 * other hub, which hands them to its own router as if they came from a peer there: the router's ids, credit
 * checks and endings hold end to end, and each hub keeps only its routing entries. Implemented over NATS in
 * src/cluster/; this interface keeps RPC free of NATS.
 */
import type { Connection } from "../transport/types.js";

/**
 * The far end of one call that crosses hubs. It stands in the router's tables where a connection would:
 * only `state` and `send` are used (sendTo). One per call.
 */
export type RemotePeer = Pick<Connection, "state" | "send">;

/** What the cluster hands the router. */
export interface RpcRouter {
  /**
   * A frame from the far end of a cross-hub call: a `call` (this hub serves the topic: route it to a local
   * server, with `peer` as the caller), or a `chunk`, `flow` or `end` of a call in flight, written from the
   * far router's view (the router turns it round).
   */
  fromCluster(peer: RemotePeer, type: string, body: unknown): void;
  /** The far end of `peer`'s call is gone (its hub died): end the call as when a connection closes. */
  peerGone(peer: RemotePeer): void;
}

export interface RpcCluster {
  /** Starts taking calls for the router. */
  start(router: RpcRouter): void;
  /** This hub has servers of `topic` (true) or no longer (false): calls from other hubs may come here. */
  serving(topic: string, yes: boolean): void;
  /**
   * A peer for a call of `topic` that no local server takes: the first frame sent to it (the `call`) goes to
   * one hub that serves the topic; if none does, the router is given an `end` with `EZIPC_NO_RESPONDERS`.
   */
  route(topic: string): RemotePeer;
  stop(): void;
}
