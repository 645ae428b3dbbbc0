/**
 * The call machinery of RPC, streaming RPC and sessions, at both ends of a call: what a caller and a server
 * send and receive over an {@link RpcLink}. The same code runs over the hub connection (rpc-client.ts, the
 * hub routes between the ends: rpc-hub.ts) and over a direct connection (direct.ts).
 *
 * A call's data channel (streams, sessions) is channel.ts.
 */

import { type CallDeadline, callerDeadlines, serverDeadlines } from "../call-deadlines.js";
import type { Infer } from "../codec/schema.js";
import { type ErrorCode, ErrorCodes, EzipcError, isEzipcError } from "../errors.js";
import { IdMap } from "../id-map.js";
import { headerList } from "../protocol/fields.js";
import { setHeader } from "../protocol/names.js";
import { checkDurationMs, MAX_TIMER_MS } from "../ranges.js";
import { isThenable } from "../thenable.js";
import { Channel, type RpcLink, RpcSession } from "./channel.js";
import {
  END_CANCEL,
  END_ERROR,
  END_OK,
  KIND_REQUEST,
  KIND_SESSION,
  KIND_STREAM,
  SIDE_CALLER,
  SIDE_SERVER,
} from "./rpc-hub.js";
import type { rpcMessages } from "./rpc-messages.js";
import {
  type Body,
  body,
  CallAbort,
  CallRequest,
  type Payload,
  type RpcHandler,
  type RpcRequest,
  toBytes,
} from "./rpc-request.js";

export { Channel, type RpcLink, RpcSession } from "./channel.js";
export { type Body, body, type Payload, type RpcHandler, type RpcRequest, toBytes } from "./rpc-request.js";

export interface RequestOptions {
  /** Rejects with `EZIPC_TIMEOUT` (and cancels the call at the server) after this long. Default 10 s; 0 for none. */
  timeoutMs?: number;
  /** Cancels the call (`EZIPC_CANCELLED`). */
  signal?: AbortSignal;
  headers?: Record<string, string>;
}

export interface StreamOptions extends RequestOptions {
  /** Chunks the server may send ahead of the consumer. Default 16. */
  prefetch?: number;
}

type Msg<K extends keyof typeof rpcMessages> = Infer<(typeof rpcMessages)[K]>;

const NO_PAYLOAD = new Uint8Array(0);

function endError(code: string, message: string): EzipcError {
  const known = code in ErrorCodes ? (code as ErrorCode) : "EZIPC_REMOTE";
  return new EzipcError(known, message);
}

/** Checks a stream's options (RangeError); returns its prefetch. */
function streamPrefetch(o: StreamOptions): number {
  checkDurationMs("timeoutMs", o.timeoutMs ?? 0);
  const prefetch = o.prefetch ?? 16;
  if (!Number.isInteger(prefetch) || prefetch < 1)
    throw new RangeError("prefetch must be a positive integer");
  return prefetch;
}

interface PendingCall {
  resolve: (b: Body) => void;
  reject: (e: EzipcError) => void;
  cleanup: () => void;
}

/** A topic this client serves; {@link close} stops serving (calls in flight finish). */
export class Server {
  private closedFlag = false;
  /** @internal */
  constructor(
    readonly topic: string,
    private readonly stop: () => void,
  ) {}
  get closed(): boolean {
    return this.closedFlag;
  }
  close(): void {
    if (this.closedFlag) return;
    this.closedFlag = true;
    this.stop();
  }
}

/** The topics a client serves and their handlers (shared with its direct listener). */
export type Handlers = Map<
  string,
  { handler: RpcHandler | null; accept: ((s: RpcSession) => unknown) | null }
>;

export class RpcCalls {
  // By rid or cid: one entry added and removed per call (IdMap, not Map: see id-map.ts).
  private readonly calls = new IdMap<PendingCall>();
  private readonly callerChannels = new IdMap<Channel>();
  private readonly serverChannels = new IdMap<Channel>();
  private readonly running = new IdMap<CallAbort>();

  /** `maxRunning`: calls this end serves at once (more end with `EZIPC_TOO_MANY_REQUESTS`). */
  constructor(
    private readonly link: RpcLink,
    readonly handlers: Handlers = new Map(),
    private readonly maxRunning = Number.POSITIVE_INFINITY,
  ) {}

  /** Ends call `id` (on `side`) without a payload; dropped when not connected. */
  private sendEnd(side: number, id: number, status: number, code: string, message: string): void {
    this.link.trySend("end", { side, id, status, code, message, payload: NO_PAYLOAD });
  }

  /** Topics to serve again after a reconnect. */
  servedTopics(): string[] {
    return [...this.handlers.keys()];
  }

  async serve(topic: string, handler: RpcHandler): Promise<Server> {
    return this.register(topic, { handler, accept: null });
  }

  async acceptSessions(topic: string, accept: (s: RpcSession) => unknown): Promise<Server> {
    return this.register(topic, { handler: null, accept });
  }

  private async register(
    topic: string,
    entry: { handler: RpcHandler | null; accept: ((s: RpcSession) => unknown) | null },
  ): Promise<Server> {
    if (this.handlers.has(topic))
      throw new EzipcError("EZIPC_BAD_REQUEST", `this client already serves ${topic}`);
    this.handlers.set(topic, entry);
    try {
      await this.link.serveRequest(topic);
    } catch (err) {
      this.handlers.delete(topic);
      throw err;
    }
    return new Server(topic, () => {
      this.handlers.delete(topic);
      this.link.trySend("unserve", { topic });
      this.link.unserved(topic);
    });
  }

  request(topic: string, payload: Payload | undefined, o: RequestOptions): Promise<Body> {
    try {
      checkDurationMs("timeoutMs", o.timeoutMs ?? 0);
    } catch (err) {
      return Promise.reject(err);
    }
    const rid = this.link.nextRid();
    return new Promise<Body>((resolve, reject) => {
      let timer: CallDeadline | undefined;
      const onAbort = () => {
        this.calls.delete(rid);
        this.sendEnd(SIDE_CALLER, rid, END_CANCEL, "EZIPC_CANCELLED", "cancelled");
        cleanup();
        reject(new EzipcError("EZIPC_CANCELLED", `${topic}: request cancelled`, { cause: o.signal?.reason }));
      };
      const cleanup = () => {
        if (timer) callerDeadlines.cancel(timer);
        o.signal?.removeEventListener("abort", onAbort);
      };
      if (o.signal?.aborted) {
        reject(new EzipcError("EZIPC_CANCELLED", `${topic}: request cancelled`, { cause: o.signal.reason }));
        return;
      }
      const timeoutMs = o.timeoutMs ?? 10_000;
      this.calls.set(rid, { resolve, reject, cleanup });
      try {
        this.link.send("request", {
          rid,
          topic,
          kind: KIND_REQUEST,
          timeoutMs,
          credit: 0,
          headers: headerList(o.headers),
          payload: toBytes(payload),
        });
      } catch (err) {
        this.calls.delete(rid);
        reject(err);
        return;
      }
      o.signal?.addEventListener("abort", onAbort, { once: true });
      if (timeoutMs > 0) {
        timer = callerDeadlines.add(timeoutMs, () => {
          if (!this.calls.delete(rid)) return;
          this.sendEnd(SIDE_CALLER, rid, END_CANCEL, "EZIPC_TIMEOUT", "timed out");
          cleanup();
          reject(new EzipcError("EZIPC_TIMEOUT", `${topic}: no reply within ${timeoutMs} ms`));
        });
      }
    });
  }

  /**
   * A stream that ended before it began (e.g. nobody serves its topic): its iterator throws `error`, as a
   * stream the hub ends at once does. Nothing is sent.
   */
  endedStream(error: EzipcError, o: StreamOptions): Channel {
    const channel = new Channel(this.link, SIDE_CALLER, 0, streamPrefetch(o), 0, () => {});
    channel.onEnd(error);
    return channel;
  }

  /** Starts a streaming call; chunks arrive through the returned channel. */
  stream(topic: string, payload: Payload | undefined, o: StreamOptions): Channel {
    const prefetch = streamPrefetch(o);
    const rid = this.link.nextRid();
    let timer: CallDeadline | undefined;
    const onAbort = () => channel.end(END_CANCEL, "EZIPC_CANCELLED", "cancelled");
    const channel = new Channel(this.link, SIDE_CALLER, rid, prefetch, 0, () => {
      this.callerChannels.delete(rid);
      if (timer) callerDeadlines.cancel(timer);
      o.signal?.removeEventListener("abort", onAbort);
    });
    this.callerChannels.set(rid, channel);
    const timeoutMs = o.timeoutMs ?? 0;
    try {
      this.link.send("request", {
        rid,
        topic,
        kind: KIND_STREAM,
        timeoutMs,
        credit: prefetch,
        headers: headerList(o.headers),
        payload: toBytes(payload),
      });
    } catch (err) {
      this.callerChannels.delete(rid); // (e.g. EZIPC_MESSAGE_TOO_LARGE: nothing was sent)
      throw err;
    }
    if (o.signal) {
      if (o.signal.aborted) onAbort();
      else o.signal.addEventListener("abort", onAbort, { once: true });
    }
    if (timeoutMs > 0) {
      timer = callerDeadlines.add(timeoutMs, () => {
        this.sendEnd(SIDE_CALLER, rid, END_CANCEL, "EZIPC_TIMEOUT", "timed out");
        channel.onEnd(
          new EzipcError("EZIPC_TIMEOUT", `${topic}: stream not finished within ${timeoutMs} ms`),
        );
      });
    }
    return channel;
  }

  /** Opens a session; resolves once an acceptor took it (its first credit arrived). */
  async openSession(topic: string, payload: Payload | undefined, prefetch: number): Promise<RpcSession> {
    const rid = this.link.nextRid();
    const channel = new Channel(this.link, SIDE_CALLER, rid, prefetch, 0, () =>
      this.callerChannels.delete(rid),
    );
    this.callerChannels.set(rid, channel);
    const accepted = new Promise<void>((resolve, reject) => {
      const onFlow = channel.onFlow.bind(channel);
      channel.onFlow = (n: number) => {
        channel.onFlow = onFlow;
        onFlow(n);
        resolve();
      };
      void channel
        .closed()
        .then((e) => reject(e ?? new EzipcError("EZIPC_CANCELLED", "session closed before it was accepted")));
    });
    try {
      this.link.send("request", {
        rid,
        topic,
        kind: KIND_SESSION,
        timeoutMs: 0,
        credit: prefetch,
        headers: [],
        payload: toBytes(payload),
      });
    } catch (err) {
      this.callerChannels.delete(rid); // (e.g. EZIPC_MESSAGE_TOO_LARGE: nothing was sent)
      throw err;
    }
    await accepted;
    return new RpcSession(channel, topic, "");
  }

  // ---- messages from the hub ----------------------------------------------------------------------------

  onCall(m: Msg<"call">): void {
    if (this.running.has(m.cid) || this.running.size >= this.maxRunning) {
      const busy = !this.running.has(m.cid);
      this.sendEnd(
        SIDE_SERVER,
        m.cid,
        END_ERROR,
        busy ? "EZIPC_TOO_MANY_REQUESTS" : "EZIPC_BAD_REQUEST",
        busy ? `at most ${this.maxRunning} calls in flight per connection` : `call id ${m.cid} is in use`,
      );
      return;
    }
    const entry = this.handlers.get(m.topic);
    if (!entry) {
      this.sendEnd(
        SIDE_SERVER,
        m.cid,
        END_ERROR,
        "EZIPC_NO_RESPONDERS",
        `${m.topic} is no longer served here`,
      );
      return;
    }
    const ac = new CallAbort();
    this.running.set(m.cid, ac);
    let timer: CallDeadline | undefined;
    if (m.timeoutMs > 0) {
      timer = serverDeadlines.add(Math.min(m.timeoutMs, MAX_TIMER_MS), () =>
        ac.abort(new EzipcError("EZIPC_TIMEOUT", "the caller's deadline passed")),
      );
    }
    const finish = () => {
      if (timer) serverDeadlines.cancel(timer);
      this.running.delete(m.cid);
      this.serverChannels.delete(m.cid);
    };
    const headers: Record<string, string> = {};
    for (const h of m.headers) setHeader(headers, h.key, h.value);
    if (m.kind === KIND_SESSION) {
      if (!entry.accept) {
        finish();
        this.sendEnd(
          SIDE_SERVER,
          m.cid,
          END_ERROR,
          "EZIPC_BAD_REQUEST",
          `${m.topic} takes requests, not sessions`,
        );
        return;
      }
      const prefetch = 16;
      const channel = new Channel(this.link, SIDE_SERVER, m.cid, prefetch, m.credit, finish);
      this.serverChannels.set(m.cid, channel);
      this.link.trySend("flow", { side: SIDE_SERVER, id: m.cid, n: prefetch });
      const session = new RpcSession(channel, m.topic, m.caller);
      void (async () => {
        try {
          await entry.accept!(session);
        } catch (err) {
          channel.end(
            END_ERROR,
            isEzipcError(err) ? err.code : "EZIPC_REMOTE",
            (err as Error).message ?? String(err),
          );
        }
      })();
      return;
    }
    if (!entry.handler) {
      finish();
      this.sendEnd(
        SIDE_SERVER,
        m.cid,
        END_ERROR,
        "EZIPC_BAD_REQUEST",
        `${m.topic} takes sessions, not requests`,
      );
      return;
    }
    const req = new CallRequest(m.payload, m.topic, headers, m.caller, ac);
    const channel = new Channel(this.link, SIDE_SERVER, m.cid, 0, m.credit, finish);
    this.serverChannels.set(m.cid, channel);
    void this.runHandler(entry.handler, req, m.kind, channel, ac);
  }

  private async runHandler(
    handler: RpcHandler,
    req: RpcRequest,
    kind: number,
    channel: Channel,
    ac: CallAbort,
  ): Promise<void> {
    try {
      // A handler that answers at once is answered at once (no promise hop between the call and its end).
      const returned = handler(req);
      const result = isThenable(returned) ? await returned : returned;
      if (isIterable(result)) {
        if (kind !== KIND_STREAM)
          throw new EzipcError("EZIPC_BAD_REQUEST", "a stream answers a request; use requestStream");
        const source = result as object;
        const it = (
          Symbol.asyncIterator in source
            ? (source as AsyncIterable<Payload>)[Symbol.asyncIterator]()
            : (source as Iterable<Payload>)[Symbol.iterator]()
        ) as AsyncIterator<Payload> | Iterator<Payload>;
        const stopped = new Promise<"stop">((resolve) => {
          if (ac.aborted) resolve("stop");
          else ac.signal.addEventListener("abort", () => resolve("stop"), { once: true });
        });
        try {
          while (!ac.aborted && !channel.done) {
            const r = await Promise.race([it.next(), stopped]);
            if (r === "stop" || r.done) break;
            await Promise.race([channel.send(r.value), stopped]);
          }
        } finally {
          if (ac.aborted) void Promise.resolve(it.return?.()).catch(() => {});
        }
        if (!ac.aborted) channel.end(END_OK);
        return;
      }
      if (ac.aborted) return;
      channel.end(END_OK, "", "", toBytes(result as Payload | undefined));
    } catch (err) {
      if (ac.aborted && channel.done) return;
      const code = isEzipcError(err) ? err.code : "EZIPC_REMOTE";
      channel.end(END_ERROR, code, err instanceof Error ? err.message : String(err));
    }
  }

  onChunk(m: Msg<"chunk">): void {
    (m.side === SIDE_CALLER ? this.callerChannels : this.serverChannels).get(m.id)?.onChunk(m.payload);
  }

  onFlow(m: Msg<"flow">): void {
    (m.side === SIDE_CALLER ? this.callerChannels : this.serverChannels).get(m.id)?.onFlow(m.n);
  }

  onEnd(m: Msg<"end">): void {
    const error =
      m.status === END_OK
        ? null
        : m.status === END_CANCEL && m.code === "EZIPC_CANCELLED"
          ? null
          : endError(m.code, m.message);
    if (m.side === SIDE_CALLER) {
      const call = this.calls.get(m.id);
      if (call) {
        this.calls.delete(m.id);
        call.cleanup();
        if (m.status === END_OK) call.resolve(body(m.payload));
        else call.reject(endError(m.code || "EZIPC_CANCELLED", m.message));
        return;
      }
      const channel = this.callerChannels.get(m.id);
      if (!channel) return;
      // A server whose handler returned one value to a stream sends it in the end: the last chunk.
      if (m.status === END_OK && m.payload.length > 0) channel.onChunk(m.payload);
      channel.onEnd(error);
      return;
    }
    // The caller cancelled (or left): abort the handler, end the channel.
    this.running
      .get(m.id)
      ?.abort(endError(m.code || "EZIPC_CANCELLED", m.message || "cancelled by the caller"));
    this.serverChannels.get(m.id)?.onEnd(error);
  }

  /** The connection is gone: every call in flight fails, every handler is aborted. */
  connectionLost(error: EzipcError): void {
    for (const [rid, c] of [...this.calls]) {
      this.calls.delete(rid);
      c.cleanup();
      c.reject(error);
    }
    for (const ch of [...this.callerChannels.values()]) ch.onEnd(error);
    for (const ac of [...this.running.values()]) ac.abort(error);
    for (const ch of [...this.serverChannels.values()]) ch.onEnd(error);
  }
}

function isIterable(x: unknown): x is AsyncIterable<Payload> | Iterable<Payload> {
  if (x === null || typeof x !== "object") return false;
  if (x instanceof Uint8Array) return false;
  return Symbol.asyncIterator in x || Symbol.iterator in x;
}
