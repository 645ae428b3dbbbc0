/**
 * `connect(url)`: the one entry point of clients. The URL's scheme picks the backend — a hub over a
 * transport (`tcp://`, `unix://`, `tls://`, `memory://`), or shared memory with no hub (`shm://`). Both
 * clients have the same methods and types for what they share (shared variables, pub/sub, RPC, deadman), so a
 * program switches by changing the URL.
 */
import { type ConnectOptions, connect as connectHub, type HubClient } from "./client/client.js";
import type { ShmClient, ShmConnectOptions } from "./shm-client/shm-client.js";

/** What the hub client and the shared-memory client both do, with the same signatures. */
export type MessagingClient = Pick<
  HubClient,
  | "allocate"
  | "watch"
  | "config"
  | "list"
  | "peek"
  | "info"
  | "exists"
  | "publish"
  | "publishAndForget"
  | "drain"
  | "subscribe"
  | "topics"
  | "configureTopic"
  | "serve"
  | "request"
  | "requestStream"
  | "deadman"
  | "close"
>;

// Compile-time check that ShmClient keeps the hub client's signatures.
const _sameApi = (c: ShmClient): MessagingClient => c;
void _sameApi;

/**
 * Connects to a hub, or opens a shared-memory namespace for `shm://` URLs. Resolves once usable; rejects
 * with the dial error (hub), `EZIPC_HANDSHAKE`, or `EZIPC_SHM_UNAVAILABLE` (shm:// where it cannot work).
 */
export function connect(url: `shm:${string}`, options?: ShmConnectOptions): Promise<ShmClient>;
export function connect(url: string, options?: ConnectOptions): Promise<HubClient>;
export function connect(
  url: string,
  options: ConnectOptions | ShmConnectOptions = {},
): Promise<HubClient | ShmClient> {
  // The shared-memory client is loaded on first use: a process that only talks to hubs never loads it.
  if (url.startsWith("shm:"))
    return import("./shm-client/shm-client.js").then((m) => m.connectShm(url, options as ShmConnectOptions));
  return connectHub(url, options as ConnectOptions);
}
