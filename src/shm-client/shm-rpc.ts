/**
 * RPC over shared memory, with the hub client's API (serve, request, requestStream) and no hub, after
 * AlephZero's RPC: a topic's requests go to its request file (`.rpc.TOPIC`), read by every process that
 * serves it; the first to claim a request (claims.ts) runs it. Replies, stream chunks and ends go to the
 * caller's inbox (`.inbox.PID.START`), which only the caller reads. Cancels and flow credit from the caller
 * go to the request file: every server reads them, the one running the call acts.
 *
 * The messages are the RPC messages of the hub protocol (`call`, `chunk`, `flow`, `end`, encoded as in
 * docs/protocol.md), one per packet; the packet's meta names the sending process (`PID.START`). The call
 * machinery is the hub client's own (rpc/rpc-calls.ts): deadlines, cancellation, AbortSignals, streams.
 *
 * A caller checks, every {@link LIVENESS_MS} while it has calls in flight, that the process that claimed each
 * one still lives (`EZIPC_SERVER_GONE` at once if not), and that an unclaimed one still has a server
 * (`EZIPC_NO_RESPONDERS`). A server likewise aborts the calls of a caller that died.
 */
import type { Infer } from "../codec/schema.js";
import { EzipcError, isEzipcError } from "../errors.js";
import { IdMap } from "../id-map.js";
import { log } from "../log.js";
import { checkTopic } from "../protocol/names.js";
import {
  type Body,
  type Channel,
  type Handlers,
  type Payload,
  type RequestOptions,
  RpcCalls,
  type RpcHandler,
  type RpcLink,
  type Server,
  type StreamOptions,
} from "../rpc/rpc-calls.js";
import { END_CANCEL, END_ERROR, SIDE_CALLER, SIDE_SERVER } from "../rpc/rpc-hub.js";
import { RPC_BASE, rpcMessages } from "../rpc/rpc-messages.js";
import { schemaFrames, schemaProtocol } from "../service/protocol.js";
import { claimRequest, requestClaimant } from "../shm/claims.js";
import { isAlive, SELF_START } from "../shm/processes.js";
import type { RingMessage } from "../shm/ring.js";
import { Waker } from "../shm/waker.js";
import { decodeMeta, encodeMeta } from "./meta.js";
import { RingFollower } from "./ring-follower.js";
import type { LocalTopic, ShmNamespace } from "./shm-namespace.js";

type Msg<K extends keyof typeof rpcMessages> = Infer<(typeof rpcMessages)[K]>;

/** How often callers and servers check that their peers live, while calls are in flight. */
export const LIVENESS_MS = 50;
/** Calls one process serves at once (more end with `EZIPC_TOO_MANY_REQUESTS`). */
const MAX_RUNNING = 10_000;
const NO_PAYLOAD = new Uint8Array(0);

const protocol = schemaProtocol(rpcMessages, "ezipc-shm-rpc", RPC_BASE)();
const frames = schemaFrames(rpcMessages, RPC_BASE);

/** Whether a live process holds a slot of a request file (serves its topic). */
function hasServer(t: LocalTopic): boolean {
  return Waker.liveSlots(t.ring.file, false, false, 1) > 0;
}

/** Clients of shm:// RPC in this process: each has its own inbox. */
let clientsInProcess = 0;

type Sender = { pid: number; start: number; n: number; name: string };

/** A client's identity as written in RPC packets' meta: `PID.START.N` (its inbox). */
function parseSender(meta: Buffer): Sender | null {
  const { publisher } = decodeMeta(meta);
  const m = /^(\d+)\.(\d+)\.(\d+)$/.exec(publisher);
  return m ? { pid: Number(m[1]), start: Number(m[2]), n: Number(m[3]), name: publisher } : null;
}

/** The last sender parsed (a server usually hears one caller many times in a row), by its meta bytes. */
let lastMeta: Buffer | null = null;
let lastSender: Sender | null = null;
function senderOf(m: RingMessage): Sender | null {
  const meta = m.meta;
  if (lastMeta !== null && sameBytes(lastMeta, meta)) return lastSender;
  const sender = parseSender(meta);
  lastMeta = Buffer.from(meta); // (a copy: the message's bytes may be shared with other readers)
  lastSender = sender;
  return sender;
}

/** Whether `b` holds `a`'s bytes (a loop: a meta is ~20 bytes, less than a call to compare). */
function sameBytes(a: Buffer, b: Buffer): boolean {
  const n = a.length;
  if (b.length !== n) return false;
  for (let i = 0; i < n; i++) if (a[i] !== b[i]) return false;
  return true;
}

/** Follows a ring from its current end, handing each message to `onMessage`. */
class Follower extends RingFollower {
  constructor(
    ns: ShmNamespace,
    topic: LocalTopic,
    private readonly onMessage: (m: RingMessage) => void,
  ) {
    const s = topic.ring.state();
    super(ns, topic, { seq: s.next, offset: s.head });
    this.start();
  }
  protected limit(): number {
    return Number.POSITIVE_INFINITY;
  }
  protected deliver(ms: readonly RingMessage[]): void {
    for (const m of ms) this.onMessage(m);
  }
  protected gap(first: number, last: number): void {
    log("warn", "shm", "rpc messages were overwritten before they were read", {
      file: this.topic.ring.file.path,
      first,
      last,
    });
  }
  protected failed(err: EzipcError): void {
    log("error", "shm", "an rpc file cannot be read", { file: this.topic.ring.file.path, error: err });
  }
  /**
   * Not published: no writer of an RPC file waits for its readers (nothing holds), and a slot written per
   * message is a cache line the callers' server check (hasServer) would fetch from this core every call.
   */
  protected override moved(): void {}
}

interface Outgoing {
  ring: LocalTopic;
  seq: number;
  topic: string;
}

interface Incoming {
  /** The call's topic (its request file's follower watches for the next request after an answer). */
  topic: string;
  sender: Sender;
  /** The caller's inbox, once opened. */
  inbox: LocalTopic | null;
  rid: number;
}

export class ShmRpc {
  private readonly handlers: Handlers = new Map();
  private readonly meta: Buffer;
  /** This client's number in its process (its inbox is `.inbox.PID.START.N`). */
  private readonly n: number;
  private readonly caller: RpcCalls;
  private readonly server: RpcCalls;
  private rid = 0;
  private inboxFollower: Follower | null = null;
  /** Calls made, by rid: where the request is (for the liveness check and follow-up messages). */
  private readonly outgoing = new IdMap<Outgoing>();
  /**
   * Calls served, by local call id, and the reverse map: by sender name, then by the sender's rid (a
   * sender's map stays while it has calls, or until the peers are next checked).
   */
  private readonly incoming = new IdMap<Incoming>();
  private readonly incomingBySender = new Map<string, IdMap<number>>();
  /** Request files of the topics called, by topic. */
  private readonly requestRings = new Map<string, LocalTopic>();
  private nextCid = 1;
  private readonly followers = new Map<string, Follower>();
  private liveness: NodeJS.Timeout | null = null;
  private closed = false;

  constructor(
    private readonly ns: ShmNamespace,
    /** `name#pid`, what servers see as the caller. */
    private readonly label: string,
  ) {
    this.n = ++clientsInProcess;
    this.meta = encodeMeta(Buffer.from(`${process.pid}.${SELF_START}.${this.n}`), undefined);
    this.caller = new RpcCalls(this.callerLink());
    this.server = new RpcCalls(this.serverLink(), this.handlers, MAX_RUNNING);
  }

  /** Writes one RPC message (the protocol's frame, its prefix and fields copied straight into the ring). */
  private append(t: LocalTopic, type: string, body: Record<string, unknown>): number {
    const f = frames.get(type)!;
    const seq = t.ring.append(this.meta, f.codec.encode(body), Date.now(), undefined, f.prefix);
    this.ns.waker.wakeSleepers(t.ring.file);
    return seq;
  }

  private callerLink(): RpcLink {
    const send = (type: string, body: Record<string, unknown>): boolean => {
      if (this.closed) throw new EzipcError("EZIPC_CONNECTION_CLOSED", "this shm:// client is closed");
      if (type === "request") {
        const m = body as Msg<"request">;
        const t = this.requestRing(m.topic);
        if (!t || !hasServer(t)) {
          throw new EzipcError("EZIPC_NO_RESPONDERS", `nobody serves ${m.topic}`);
        }
        this.startInbox();
        const seq = this.append(t, "call", {
          cid: m.rid,
          topic: m.topic,
          kind: m.kind,
          timeoutMs: m.timeoutMs,
          credit: m.credit,
          caller: this.label,
          headers: m.headers,
          payload: m.payload,
        });
        this.outgoing.set(m.rid, { ring: t, seq, topic: m.topic });
        this.watch();
        this.inboxFollower!.watchFor(this.ns.watchMs);
        return true;
      }
      // end, flow or chunk of one of our calls (side: caller), to the servers of its topic as the server side.
      const m = body as { side: number; id: number };
      const o = this.outgoing.get(m.id);
      if (!o) return true;
      this.append(o.ring, type, { ...body, side: SIDE_SERVER });
      if (type === "end") this.outgoing.delete(m.id);
      else this.inboxFollower?.watchFor(this.ns.watchMs);
      return true;
    };
    return {
      nextRid: () => {
        this.rid = this.rid >= 0xffffffff ? 1 : this.rid + 1;
        return this.rid;
      },
      send,
      trySend: (type, body) => {
        try {
          send(type, body);
        } catch {}
      },
      serveRequest: async () => {},
      unserved: () => {},
    };
  }

  private serverLink(): RpcLink {
    const send = (type: string, body: Record<string, unknown>): boolean => {
      if (type === "unserve") return true;
      const m = body as { side: number; id: number };
      const c = this.incoming.get(m.id);
      if (!c) return true;
      c.inbox ??= this.inboxOf(c.sender);
      const cid = m.id;
      // (the body is made for this message alone: readdressed in place)
      m.side = SIDE_CALLER;
      m.id = c.rid;
      if (c.inbox) this.append(c.inbox, type, body);
      if (type === "end") this.forgetIncoming(cid);
      this.followers.get(c.topic)?.watchFor(this.ns.watchMs);
      return true;
    };
    return {
      nextRid: () => 0,
      send,
      trySend: (type, body) => {
        try {
          send(type, body);
        } catch (err) {
          // A reply that cannot be written (too large for the caller's inbox, no room in /dev/shm): thrown
          // to the call's runner, which ends the call with that error instead, as a hub's client does for a
          // reply over maxFrameBytes. (The error's own end, with no payload, is not thrown again.)
          const payload = (body as { payload?: Uint8Array }).payload;
          if (type === "end" && payload !== undefined && payload.length > 0 && isEzipcError(err)) throw err;
          log("debug", "shm", "an rpc reply could not be written", { error: err });
        }
      },
      serveRequest: async (topic) => {
        const t = this.ns.rpcRing(topic, true);
        this.followers.set(topic, new Follower(this.ns, t, (m) => this.onRequestFile(t, m)));
      },
      unserved: (topic) => {
        this.followers.get(topic)?.close();
        this.followers.delete(topic);
      },
    };
  }

  /** The last caller answered and its inbox (a server usually answers one caller many times in a row). */
  private lastCaller: Sender | null = null;
  private lastInbox: LocalTopic | null = null;

  /** The inbox of `sender` (null if it is gone). */
  private inboxOf(sender: Sender): LocalTopic | null {
    if (sender === this.lastCaller) return this.lastInbox;
    const inbox = this.ns.inbox(sender.pid, sender.start, sender.n, false);
    if (inbox) {
      this.lastCaller = sender;
      this.lastInbox = inbox;
    }
    return inbox;
  }

  private forgetIncoming(cid: number): void {
    const c = this.incoming.get(cid);
    if (!c) return;
    this.incoming.delete(cid);
    const bySender = this.incomingBySender.get(c.sender.name);
    if (!bySender) return;
    bySender.delete(c.rid);
  }

  /** The request file of `topic` if it exists (kept once opened). */
  private requestRing(topic: string): LocalTopic | null {
    let t = this.requestRings.get(topic);
    if (t) return t;
    t = this.ns.rpcRing(topic, false) ?? undefined;
    if (t) this.requestRings.set(topic, t);
    return t ?? null;
  }

  private startInbox(): void {
    if (this.inboxFollower) return;
    const inbox = this.ns.inbox(process.pid, SELF_START, this.n, true)!;
    this.inboxFollower = new Follower(this.ns, inbox, (m) => this.onInbox(m));
  }

  /** A message in a request file of a topic this process serves. */
  private onRequestFile(t: LocalTopic, m: RingMessage): void {
    let sender: Sender | null;
    let msg: { type: string; body: unknown };
    try {
      sender = senderOf(m);
      msg = protocol.decode(m.body);
    } catch (err) {
      log("warn", "shm", "an rpc message that does not decode was skipped", {
        file: t.ring.file.path,
        error: err,
      });
      return;
    }
    if (!sender) return;
    if (msg.type === "call") {
      const call = msg.body as Msg<"call">;
      if (call.timeoutMs > 0 && Date.now() - m.time > call.timeoutMs) return; // its caller gave up
      if (!this.handlers.has(call.topic)) return;
      if (!claimRequest(t.ring.file, m.seqNumber, process.pid, SELF_START)) return;
      const cid = this.nextCid >= 0xffffffff ? 1 : this.nextCid;
      this.nextCid = cid + 1;
      const rid = call.cid;
      this.incoming.set(cid, { topic: call.topic, sender, inbox: null, rid });
      let bySender = this.incomingBySender.get(sender.name);
      if (!bySender) {
        bySender = new IdMap();
        this.incomingBySender.set(sender.name, bySender);
      }
      bySender.set(rid, cid);
      this.watch();
      call.cid = cid; // (the decoded object is ours: renumbered in place)
      this.server.onCall(call);
      return;
    }
    const body = msg.body as { side: number; id: number };
    const cid = this.incomingBySender.get(sender.name)?.get(body.id);
    if (cid === undefined) return; // a call another server runs
    const mine = { ...body, id: cid };
    if (msg.type === "end") {
      this.server.onEnd(mine as Msg<"end">);
      this.forgetIncoming(cid);
    } else if (msg.type === "flow") this.server.onFlow(mine as Msg<"flow">);
    else if (msg.type === "chunk") this.server.onChunk(mine as Msg<"chunk">);
  }

  /** A message in this process's inbox: about one of its calls. */
  private onInbox(m: RingMessage): void {
    let msg: { type: string; body: unknown };
    try {
      msg = protocol.decode(m.body);
    } catch (err) {
      log("warn", "shm", "an rpc reply that does not decode was skipped", { error: err });
      return;
    }
    if (msg.type === "end") {
      const e = msg.body as Msg<"end">;
      this.outgoing.delete(e.id);
      this.caller.onEnd(e);
    } else if (msg.type === "chunk") this.caller.onChunk(msg.body as Msg<"chunk">);
    else if (msg.type === "flow") this.caller.onFlow(msg.body as Msg<"flow">);
  }

  /** Checks peers while calls are in flight. */
  private watch(): void {
    if (this.liveness || this.closed) return;
    this.liveness = setInterval(() => this.checkPeers(), LIVENESS_MS);
    this.liveness.unref();
  }

  private checkPeers(): void {
    for (const [rid, o] of [...this.outgoing]) {
      const c = requestClaimant(o.ring.ring.file, o.seq);
      let code: "EZIPC_SERVER_GONE" | "EZIPC_NO_RESPONDERS" | "EZIPC_TOO_MANY_REQUESTS" | null = null;
      let message = "";
      if (typeof c === "object") {
        if (!isAlive(c.pid, c.start)) {
          code = "EZIPC_SERVER_GONE";
          message = `${o.topic}: the server process (pid ${c.pid}) died before it answered`;
        }
      } else if (c === "unclaimed") {
        if (o.seq < o.ring.ring.state().tailSeq) {
          code = "EZIPC_TOO_MANY_REQUESTS";
          message = `${o.topic}: the request was overwritten before a server took it (servers too slow)`;
        } else if (!hasServer(o.ring)) {
          code = "EZIPC_NO_RESPONDERS";
          message = `${o.topic}: no server is left`;
        }
      }
      if (code) {
        this.outgoing.delete(rid);
        this.caller.onEnd({
          side: SIDE_CALLER,
          id: rid,
          status: END_ERROR,
          code,
          message,
          payload: NO_PAYLOAD,
        });
      }
    }
    for (const [cid, c] of [...this.incoming]) {
      if (isAlive(c.sender.pid, c.sender.start)) continue;
      this.forgetIncoming(cid);
      this.server.onEnd({
        side: SIDE_SERVER,
        id: cid,
        status: END_CANCEL,
        code: "EZIPC_CANCELLED",
        message: "the caller's process died",
        payload: NO_PAYLOAD,
      });
    }
    for (const [name, calls] of this.incomingBySender)
      if (calls.size === 0) this.incomingBySender.delete(name);
    if (this.outgoing.size === 0 && this.incoming.size === 0 && this.liveness) {
      clearInterval(this.liveness);
      this.liveness = null;
    }
  }

  /** See HubClient.serve. */
  serve(topic: string, handler: RpcHandler): Promise<Server> {
    checkTopic(topic);
    if (this.closed)
      return Promise.reject(new EzipcError("EZIPC_CONNECTION_CLOSED", "this shm:// client is closed"));
    return this.server.serve(topic, handler);
  }

  /** See HubClient.request. (Not `async`: no promise hops between the caller and its answer.) */
  request(topic: string, payload?: Payload, options: RequestOptions = {}): Promise<Body> {
    try {
      checkTopic(topic);
    } catch (err) {
      return Promise.reject(err);
    }
    return this.caller.request(topic, payload, options);
  }

  /** See HubClient.requestStream. */
  async requestStream(topic: string, payload?: Payload, options: StreamOptions = {}): Promise<Channel> {
    checkTopic(topic);
    if (this.closed) throw new EzipcError("EZIPC_CONNECTION_CLOSED", "this shm:// client is closed");
    // Nobody serves it: as through a hub, the stream is returned, and its iterator throws why.
    const t = this.requestRing(topic);
    if (!t || !hasServer(t)) {
      return this.caller.endedStream(
        new EzipcError("EZIPC_NO_RESPONDERS", `nobody serves ${topic}`),
        options,
      );
    }
    try {
      return this.caller.stream(topic, payload, options);
    } catch (err) {
      if (!isEzipcError(err, "EZIPC_NO_RESPONDERS")) throw err;
      return this.caller.endedStream(err, options); // (its server went between the look and the send)
    }
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    if (this.liveness) clearInterval(this.liveness);
    // Callers of the calls this process runs learn at once that their server is gone.
    for (const [cid, c] of [...this.incoming]) {
      this.forgetIncoming(cid);
      const inbox = c.inbox ?? this.ns.inbox(c.sender.pid, c.sender.start, c.sender.n, false);
      if (!inbox) continue;
      try {
        this.append(inbox, "end", {
          side: SIDE_CALLER,
          id: c.rid,
          status: END_ERROR,
          code: "EZIPC_SERVER_GONE",
          message: "the server closed before it answered",
          payload: NO_PAYLOAD,
        });
      } catch {}
    }
    const gone = new EzipcError("EZIPC_CONNECTION_CLOSED", "this shm:// client is closed");
    this.caller.connectionLost(gone);
    this.server.connectionLost(gone);
    for (const f of this.followers.values()) f.close();
    this.followers.clear();
    if (this.inboxFollower) {
      this.inboxFollower.close();
      this.ns.remove(this.inboxFollower.topic);
    }
  }
}
