/**
 * The RPC messages of the hub protocol: calls, streams and sessions (feature "rpc", wire indexes from
 * {@link RPC_BASE}) and direct routes (feature "direct", from {@link DIRECT_BASE}). Direct connections
 * between a caller and a server speak the RPC messages alone, with the same indexes.
 */
import { t } from "../codec/schema.js";
import { headers, key, str } from "../protocol/fields.js";

export const RPC_BASE = 33;
export const rpcMessages = {
  /**
   * c→h: serve `topic` (one pool per topic: requests go round-robin to its servers). `direct`: the URL where
   * this client also takes calls directly ("" for none), on host `host`. Replied with `ok`.
   */
  serve: t.struct({ rid: t.u32, topic: key, host: str, direct: str }),
  /** c→h: stop serving `topic` (calls in flight go on). No reply. */
  unserve: t.struct({ topic: key }),
  /**
   * c→h: a call. kind: 0 request (one reply), 1 stream (chunks then end), 2 session (chunks both ways).
   * `timeoutMs` (0: none) reaches the server; `credit`: chunks the caller accepts before more `flow`.
   */
  request: t.struct({
    rid: t.u32,
    topic: key,
    kind: t.u8,
    timeoutMs: t.u32,
    credit: t.u32,
    headers,
    payload: t.bytes(),
  }),
  /** h→server: a call for a topic it serves, identified by `cid` on this connection. */
  call: t.struct({
    cid: t.u32,
    topic: key,
    kind: t.u8,
    timeoutMs: t.u32,
    credit: t.u32,
    caller: str,
    headers,
    payload: t.bytes(),
  }),
  /**
   * Both ways: data of a call. `side` says whose id `id` is, from the receiver's view of the sender:
   * 0 the caller's rid, 1 the server's cid.
   */
  chunk: t.struct({ side: t.u8, id: t.u32, payload: t.bytes() }),
  /** Both ways: the receiver of chunks allows `n` more. */
  flow: t.struct({ side: t.u8, id: t.u32, n: t.u32 }),
  /**
   * Both ways: the end of a call. status 0 ok (with the reply payload for a request), 1 error (`code`,
   * `message`), 2 cancelled (by the caller) or closed (a session, by either side).
   */
  end: t.struct({ side: t.u8, id: t.u32, status: t.u8, code: str, message: str, payload: t.bytes() }),
} as const;

export const DIRECT_BASE = 42;
export const directMessages = {
  /**
   * c→h: the direct routes of `topic`, now and whenever its pool changes (until this connection closes).
   * Replied with `routeList`.
   */
  routes: t.struct({ rid: t.u32, topic: key }),
  /**
   * h→c: the servers of `topic`, when every one of them takes direct calls (else none). `rid` 0: an update
   * after the pool changed.
   */
  routeList: t.struct({
    rid: t.u32,
    topic: key,
    routes: t.array(t.struct({ server: str, host: str, url: str }), { maxLength: 4096 }),
  }),
} as const;
