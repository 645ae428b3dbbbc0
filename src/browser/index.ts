/**
 * `ezipc/browser`: the hub client for web pages. The same {@link HubClient} as `connect()` in Node —
 * shared variables with the three policies, config variables, pub/sub with every init × iter, RPC request
 * and serve, deadman tokens — over ws:// or wss:// with the browser's `WebSocket`.
 *
 * What differs from Node (docs/browser.md): only ws:// and wss:// URLs; no direct RPC (calls go through
 * the hub); a secure hub's key is pinned (`secure.hubKey`; no known-hosts file); no msgpack codec. scripts/build-browser.mjs bundles this file, with the Node-only modules swapped for the files of
 * this folder, into dist/browser/ezipc.js (ESM, no Node built-ins).
 *
 * This file is the whole public surface of the browser entry: every export is listed by name.
 */
import { type ConnectOptions, HubClient } from "../client/client.js";
import { EzipcError } from "../errors.js";

export type {
  AllocateOptions,
  ClientStatus,
  ConnectOptions,
  HubClientEvents,
  KeyDescription,
  KeyInfo,
  PublishOptions,
  TopicInfo,
} from "../client/client.js";
export { HubClient } from "../client/client.js";
export {
  type BytesType,
  bytesCodec,
  type Codec,
  type Infer,
  jsonCodec,
  type SchemaCodec,
  type SchemaType,
  schemaCodec,
  t,
} from "../codec/index.js";
export type { Deadman, DeadmanState } from "../deadman/deadman-client.js";
export { type ErrorCode, ErrorCodes, EzipcError, isEzipcError } from "../errors.js";
export type { ClientView, HubStats, HubView, KeyView, TopicView } from "../protocol/core-messages.js";
export type { Payload } from "../pubsub/pubsub-client.js";
export type { Gap, SubscribeOptions, Subscription, TopicMessage } from "../pubsub/subscription.js";
export type {
  Body,
  Channel,
  RequestOptions,
  RpcHandler,
  RpcSession,
  Server,
  StreamOptions,
} from "../rpc/rpc-calls.js";
export type { WebSocketClass, WebSocketLike } from "../transport/browser-ws.js";
export type { ConfigVar } from "../vars/config-var.js";
export type { IpcPtr } from "../vars/pointer.js";
export type { SyncPolicy } from "../vars/vars-messages.js";

/**
 * Connects to a hub at a `ws://` or `wss://` URL. Resolves once the handshake is done; rejects with
 * `EZIPC_INVALID_URL` (another scheme), `EZIPC_CONNECTION_REFUSED`, `EZIPC_HANDSHAKE`, `EZIPC_AUTH` (a
 * secure hub refused the page, or its key did not match `secure.hubKey`), or `EZIPC_SECURE_UNAVAILABLE`
 * (`secure` without `hubKey`). The client name defaults to `browser`.
 *
 * @example
 * const client = await connect("ws://127.0.0.1:7701/");
 * for await (const m of await client.subscribe("sensors.>")) console.log(m.topic, m.payload);
 */
export async function connect(url: string, options: ConnectOptions = {}): Promise<HubClient> {
  const scheme = url.slice(0, url.indexOf(":"));
  if (scheme !== "ws" && scheme !== "wss") {
    throw new EzipcError("EZIPC_INVALID_URL", `${url}: the browser client connects to ws:// or wss:// only`);
  }
  const client = new HubClient(url, { name: "browser", ...options, directRpc: false });
  await client.whenReady();
  return client;
}
