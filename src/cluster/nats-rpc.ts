/**
 * RPC between the hubs of a cluster over NATS (docs/cluster.md, rpc-remote.ts). Subjects (P: the prefix,
 * SUFFIX as js-topics.ts makes it from the RPC topic):
 *
 * - `P.rpc.q.SUFFIX`, queue group `hubs`: every hub with servers of the topic listens; a call (the router's
 *   `call` frame) goes to one of them, with the reply subject `P.rpc.r.CALLER.XID` (the calling hub's id and
 *   its number for the call). Nobody listening: NATS answers there with status 503; the call is sent again
 *   every 100 ms for a second (a server that has just started serving on another hub may not be known on
 *   every NATS node yet), then fails with `EZIPC_NO_RESPONDERS`.
 * - `P.rpc.r.CALLER.XID.SERVER`: frames of the call from the serving hub to the calling one. The first, empty,
 *   says which hub took it.
 * - `P.rpc.s.SERVER.CALLER.XID`: frames of the call from the calling hub to the serving one.
 *
 * A hub whose heartbeat (kv-holds.ts) is older than the hub timeout is dead: the calls it served or made end
 * as when a connection closes (`EZIPC_SERVER_GONE` for its callers, cancelled for its servers).
 */
import type { Msg, NatsConnection, Subscription } from "nats";
import { log } from "../log.js";
import type { RemotePeer, RpcCluster, RpcRouter } from "../rpc/rpc-remote.js";
import type { Protocol } from "../service/protocol.js";
import { topicSuffix } from "./js-topics.js";
import type { KvHolds } from "./kv-holds.js";

/** Frames held for a call before the hub that takes it is known (a cancel, credit: a handful). */
const MAX_HELD = 64;
/** How long a call nobody takes is sent again before it fails, and how often. */
const NO_RESPONDERS_MS = 1_000;
const RESEND_MS = 100;
const EMPTY = new Uint8Array(0);
/** The frames of a call in flight. */
const CALL_FRAMES: ReadonlySet<string> = new Set(["chunk", "flow", "end"]);
const CALL_FRAME: ReadonlySet<string> = new Set(["call"]);
/** A call no hub has taken after this long ends with `EZIPC_NO_RESPONDERS`. */
const UNTAKEN_MS = 5_000;

/** One call's far end. */
class Peer implements RemotePeer {
  state: "open" | "closed" = "open";
  /** The far hub (unknown for an outgoing call until it is taken). */
  hub: string | null;
  private held: Uint8Array[] | null = null;
  private sentCall = false;
  /** The router's id of an outgoing call on its server side (from the `call` frame). */
  cid = 0;
  /** An outgoing call's `call` frame and first sending, until a hub takes it (to send it again). */
  call: { frame: Uint8Array; topic: string; at: number } | null = null;

  constructor(
    private readonly rpc: NatsRpc,
    readonly outgoing: boolean,
    readonly xid: string,
    /** The calling hub (for an incoming call). */
    readonly caller: string,
    hub: string | null,
    private readonly topic: string,
  ) {
    this.hub = hub;
  }

  send(frame: Uint8Array): boolean {
    if (this.state !== "open") return false;
    if (this.outgoing && !this.sentCall) {
      this.sentCall = true;
      this.rpc.sendCall(this, this.topic, frame);
    } else if (this.hub === null) {
      this.held ??= [];
      if (this.held.length < MAX_HELD) this.held.push(frame);
    } else this.rpc.sendFrame(this, frame);
    return true;
  }

  /** The hub that took an outgoing call is known: sends what was held. */
  takenBy(hub: string): void {
    if (this.hub !== null) return;
    this.hub = hub;
    const held = this.held ?? [];
    this.held = null;
    for (const f of held) this.rpc.sendFrame(this, f);
  }
}

export class NatsRpc implements RpcCluster {
  private router: RpcRouter | null = null;
  private readonly queues = new Map<string, Subscription>();
  private readonly outgoing = new Map<string, Peer>();
  /** Incoming calls by `CALLER.XID`. */
  private readonly incoming = new Map<string, Peer>();
  private inboxes: Subscription[] = [];
  private nextXid = 1;
  private timer: NodeJS.Timeout | null = null;
  private checking = false;
  readonly counters = { callsOut: 0, callsIn: 0, noResponders: 0, hubsGone: 0 };

  constructor(
    private readonly nc: NatsConnection,
    private readonly protocol: Protocol,
    private readonly holds: KvHolds,
    private readonly o: { prefix: string; heartbeatMs: number },
  ) {
    const end = protocol.encode("end", { side: 0, id: 0, status: 0, code: "", message: "", payload: EMPTY });
    this.endIndex = end[0]! | (end[1]! << 8);
  }

  /** The wire index of `end` frames. */
  private readonly endIndex: number;

  private get me(): string {
    return this.holds.hubId;
  }

  start(router: RpcRouter): void {
    this.router = router;
    const p = this.o.prefix;
    this.inboxes = [
      this.nc.subscribe(`${p}.rpc.r.${this.me}.>`, { callback: (_e, m) => this.onReply(m) }),
      this.nc.subscribe(`${p}.rpc.s.${this.me}.>`, { callback: (_e, m) => this.onFromCaller(m) }),
    ];
    this.timer = setInterval(() => {
      this.checkHubs().catch((err) => log("warn", "cluster", "checking hubs of calls", { error: err }));
    }, this.o.heartbeatMs);
    this.timer.unref();
  }

  serving(topic: string, yes: boolean): void {
    const known = this.queues.get(topic);
    if (yes && !known) {
      const sub = this.nc.subscribe(`${this.o.prefix}.rpc.q.${topicSuffix(topic)}`, {
        queue: "hubs",
        callback: (_e, m) => this.onCall(m),
      });
      this.queues.set(topic, sub);
    } else if (!yes && known) {
      known.unsubscribe();
      this.queues.delete(topic);
    }
  }

  route(topic: string): RemotePeer {
    const xid = (this.nextXid++).toString(36);
    const peer = new Peer(this, true, xid, this.me, null, topic);
    this.outgoing.set(xid, peer);
    this.counters.callsOut++;
    return peer;
  }

  /** Sends an outgoing call's `call` frame to one hub serving `topic`. */
  sendCall(peer: Peer, topic: string, frame: Uint8Array): void {
    const p = this.o.prefix;
    if (!peer.call) {
      peer.call = { frame, topic, at: Date.now() };
      try {
        peer.cid = (this.protocol.decode(frame).body as { cid: number }).cid;
      } catch {
        // (the router's own frame: always decodes)
      }
    }
    this.publish(peer, `${p}.rpc.q.${topicSuffix(topic)}`, frame, `${p}.rpc.r.${this.me}.${peer.xid}`);
  }

  /** Sends a frame of a call to the hub at its other end. */
  sendFrame(peer: Peer, frame: Uint8Array): void {
    const p = this.o.prefix;
    const subject = peer.outgoing
      ? `${p}.rpc.s.${peer.hub}.${this.me}.${peer.xid}`
      : `${p}.rpc.r.${peer.caller}.${peer.xid}.${this.me}`;
    this.publish(peer, subject, frame);
  }

  /**
   * Publishes a frame of `peer`'s call. One NATS does not take (over its max_payload, the connection
   * closed) ends the call on both hubs with `EZIPC_CLUSTER`, never the connection whose frame it was.
   */
  private publish(peer: Peer, subject: string, frame: Uint8Array, reply?: string): void {
    try {
      this.nc.publish(subject, frame, reply ? { reply } : undefined);
    } catch (err) {
      const message = `the call could not cross to the other hub: ${(err as Error).message}`;
      this.forget(peer);
      if (!peer.outgoing) {
        // The calling hub is told too (a short frame, which fits).
        const end = { side: 0, id: peer.cid, status: 1, code: "EZIPC_CLUSTER", message, payload: EMPTY };
        try {
          this.nc.publish(
            `${this.o.prefix}.rpc.r.${peer.caller}.${peer.xid}.${this.me}`,
            this.protocol.encode("end", end),
          );
        } catch {
          // gone as well: its hub's death ends it there
        }
      }
      // This router is told after the send that failed has returned (it may be inside it).
      const side = peer.outgoing ? 0 : 1;
      const end = { side, id: peer.cid, status: 1, code: "EZIPC_CLUSTER", message, payload: EMPTY };
      queueMicrotask(() => this.router?.fromCluster(peer, "end", end));
      return;
    }
    this.afterSend(peer, frame);
  }

  /** An `end` sent closes this side of the call. */
  private afterSend(peer: Peer, frame: Uint8Array): void {
    // The frame's u16 type index, read in place (every chunk passes here: no decode).
    if (frame.length >= 2 && (frame[0]! | (frame[1]! << 8)) === this.endIndex) this.forget(peer);
  }

  private forget(peer: Peer): void {
    peer.state = "closed";
    if (peer.outgoing) this.outgoing.delete(peer.xid);
    else this.incoming.delete(`${peer.caller}.${peer.xid}`);
  }

  /**
   * Hands a frame from the far end to the router: a `call` on the queue subject, a `chunk`, `flow` or `end`
   * on a call's subjects; anything else (or undecodable) is dropped and logged.
   */
  private deliver(peer: Peer, data: Uint8Array): void {
    const msg = this.decode(data, CALL_FRAMES);
    if (!msg) return;
    if (msg.type === "end") this.forget(peer);
    this.router?.fromCluster(peer, msg.type, msg.body);
  }

  /** A frame from another hub if it decodes to one of `types`; else null (dropped and logged). */
  private decode(data: Uint8Array, types: ReadonlySet<string>): { type: string; body: unknown } | null {
    let msg: { type: string; body: unknown };
    try {
      msg = this.protocol.decode(data);
    } catch (err) {
      log("warn", "cluster", "undecodable RPC frame from another hub", { error: err });
      return null;
    }
    if (types.has(msg.type)) return msg;
    log("warn", "cluster", "unexpected RPC frame from another hub", { type: msg.type });
    return null;
  }

  /** A call from another hub, to a topic this hub serves. */
  private onCall(m: Msg): void {
    const tokens = (m.reply ?? "").split(".");
    const [caller, xid] = tokens.slice(-2);
    if (tokens.length < 5 || !caller || !xid) return;
    const key = `${caller}.${xid}`;
    if (this.incoming.has(key)) return;
    const msg = this.decode(m.data, CALL_FRAME); // (not taken: the calling hub gives up after UNTAKEN_MS)
    if (!msg) return;
    const peer = new Peer(this, false, xid, caller, caller, "");
    peer.cid = (msg.body as { cid: number }).cid;
    this.incoming.set(key, peer);
    this.counters.callsIn++;
    // Taken here: the calling hub learns where to send the rest.
    this.nc.publish(`${this.o.prefix}.rpc.r.${caller}.${xid}.${this.me}`, EMPTY);
    this.router?.fromCluster(peer, msg.type, msg.body);
  }

  /** A frame on this hub's reply inbox: `…r.ME.XID` (NATS: no responders) or `…r.ME.XID.SERVER`. */
  private onReply(m: Msg): void {
    const rest = m.subject.slice(`${this.o.prefix}.rpc.r.${this.me}.`.length).split(".");
    const peer = this.outgoing.get(rest[0]!);
    if (!peer) return;
    if (rest.length === 1) {
      if (m.headers?.code === 503 && peer.hub === null && peer.state === "open") {
        const call = peer.call;
        if (call && Date.now() - call.at < NO_RESPONDERS_MS) {
          setTimeout(() => {
            if (peer.hub === null && peer.state === "open") this.sendCall(peer, call.topic, call.frame);
          }, RESEND_MS).unref();
          return;
        }
        this.noResponders(peer, "no hub of the cluster has a server of this topic");
      }
      return;
    }
    peer.call = null;
    peer.takenBy(rest[1]!);
    if (m.data.length > 0) this.deliver(peer, m.data);
  }

  /** Ends an outgoing call nobody took, for its router, with `EZIPC_NO_RESPONDERS`. */
  private noResponders(peer: Peer, message: string): void {
    this.counters.noResponders++;
    this.forget(peer);
    const end = { side: 0, id: peer.cid, status: 1, code: "EZIPC_NO_RESPONDERS", message, payload: EMPTY };
    this.router?.fromCluster(peer, "end", end);
  }

  /** A frame on this hub's serving inbox: `…s.ME.CALLER.XID`. */
  private onFromCaller(m: Msg): void {
    const [caller, xid] = m.subject.slice(`${this.o.prefix}.rpc.s.${this.me}.`.length).split(".");
    const peer = this.incoming.get(`${caller}.${xid}`);
    if (peer) this.deliver(peer, m.data);
  }

  /**
   * Ends the calls whose far hub stopped beating, and the calls no hub took within {@link UNTAKEN_MS} (a
   * `call` lost while NATS moved between nodes gets neither an answer nor "no responders").
   */
  private async checkHubs(): Promise<void> {
    if (this.checking) return;
    this.checking = true;
    try {
      const now = Date.now();
      for (const p of [...this.outgoing.values()]) {
        if (p.hub !== null || !p.call || now - p.call.at < UNTAKEN_MS) continue;
        this.noResponders(p, `no hub of the cluster took the call within ${UNTAKEN_MS / 1000} s`);
      }
      const peers = [...this.outgoing.values(), ...this.incoming.values()];
      const hubs = new Set(peers.map((p) => p.hub).filter((h): h is string => h !== null));
      for (const hub of hubs) {
        if (await this.holds.running(hub)) continue;
        this.counters.hubsGone++;
        log("warn", "cluster", "a hub with calls in flight is gone", { hub });
        for (const p of peers) {
          if (p.hub !== hub || p.state !== "open") continue;
          this.forget(p);
          this.router?.peerGone(p);
        }
      }
    } finally {
      this.checking = false;
    }
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    for (const s of [...this.inboxes, ...this.queues.values()]) s.unsubscribe();
    this.queues.clear();
  }
}
