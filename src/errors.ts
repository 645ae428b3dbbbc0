/**
 * The one registry of ezipc's coded errors.
 *
 * Every error a peer, the network or bad input can cause is an {@link EzipcError} whose `code` is one of
 * {@link ErrorCode}. Codes are stable: programs may switch on them. Each code is documented in
 * `docs/errors.md`; a test fails when one is missing there.
 *
 * Programmer mistakes (a wrong argument type, an out-of-range offset) throw `TypeError` / `RangeError`
 * synchronously instead.
 */

/** Every code ezipc uses, with the one-line meaning that `docs/errors.md` expands on. */
export const ErrorCodes = {
  EZIPC_FRAME_TOO_LARGE: "A frame's length prefix exceeds maxFrameBytes; the connection is closed.",
  EZIPC_MESSAGE_TOO_LARGE:
    "A message would not fit one frame (maxFrameBytes; forwarded by a hub, with the fields it adds): nothing was sent, and the connection goes on.",
  EZIPC_PROTOCOL: "The peer broke the framing or session protocol; the connection is closed.",
  EZIPC_DECODE: "Bytes could not be decoded by the codec (truncated, malformed or over a limit).",
  EZIPC_ENCODE: "A value does not fit the codec or schema it was given to.",
  EZIPC_CONNECTION_CLOSED: "The connection is closed (or closing); nothing more can be sent on it.",
  EZIPC_CONNECTION_REFUSED: "Nothing accepts connections at the address dialled.",
  EZIPC_CONNECT_ABORTED: "The dial was cancelled (close() or an AbortSignal) before it completed.",
  EZIPC_CONNECTION_RESET: "The peer or the network ended the connection abruptly.",
  EZIPC_HEARTBEAT_TIMEOUT:
    "Nothing was heard from the peer for heartbeatTimeoutMs; the connection is closed.",
  EZIPC_SLOW_CONSUMER:
    "The peer did not read fast enough (queue over maxQueuedBytes or stalled); it was cut.",
  EZIPC_ADDRESS_IN_USE:
    "Another live server already listens at the address (a live Unix socket is never stolen).",
  EZIPC_INVALID_URL: "The URL is malformed or its scheme has no registered transport.",
  EZIPC_UNKNOWN_PROTOCOL: "A session asked for a protocol name that is not registered.",
  EZIPC_UNKNOWN_MESSAGE: "A message type arrived that no handler or schema knows.",
  EZIPC_HANDSHAKE: "The hub handshake failed: wrong protocol version, or no welcome in time.",
  EZIPC_INVALID_KEY: "A key is not 1-255 printable ASCII characters without spaces.",
  EZIPC_KEY_EXISTS: "allocate() on a key that is live on the hub.",
  EZIPC_KEY_NOT_FOUND: "The key was never created (or its tombstone has expired).",
  EZIPC_KEY_DISPOSED:
    "The key existed and has been invalidated (its last pointer released and the grace over).",
  EZIPC_BAD_REQUEST: "A request the hub cannot apply: wrong block kind, out-of-range write, invalid JSON.",
  EZIPC_BLOCK_TOO_LARGE: "A block would be larger than maxBlockBytes (the hub's, or a shm:// client's).",
  EZIPC_TOO_MANY_KEYS: "The hub already holds its maximum number of keys.",
  EZIPC_HUB_FULL: "The hub's blocks would exceed its maxTotalBytes.",
  EZIPC_TOO_MANY_POINTERS:
    "This client, or the hub over all clients, already holds its maximum number of pointers (shm://: 60 processes already hold the key).",
  EZIPC_PERMISSION_DENIED:
    "The hub does not let this client do that (e.g. create persistent keys); over shm://, a file this user may not read and write.",
  EZIPC_TIMEOUT: "A request got no reply within its timeout.",
  EZIPC_STORE: "The hub's persistent store failed (cannot open, read or write).",
  EZIPC_INVALID_TOPIC:
    "A topic or pattern is malformed (printable ASCII, dot-separated tokens, * and > only in patterns).",
  EZIPC_TOO_MANY_TOPICS:
    "The hub already holds its maximum number of topics (or wildcard subscriptions following a new one would go over theirs).",
  EZIPC_TOO_MANY_SUBSCRIPTIONS:
    "This client, or the hub over all clients, already holds its maximum number of subscriptions (served topics and route watches count too).",
  EZIPC_TOO_MANY_CONNECTIONS: "The hub already has its maximum number of connections open; try again later.",
  EZIPC_NO_RESPONDERS: "Nobody serves the topic of a request.",
  EZIPC_SERVER_GONE: "The server handling a call (or the peer of a session) disconnected before it ended.",
  EZIPC_CANCELLED: "The call was cancelled by its caller (an AbortSignal, a timeout, or the caller left).",
  EZIPC_REMOTE: "The server's handler failed; the message is the handler's error message.",
  EZIPC_TOO_MANY_REQUESTS:
    "This client, or the hub over all clients, already has its maximum number of calls (or deadman waits) in flight, or listings took their budget.",
  EZIPC_FLOW: "A peer sent stream chunks beyond the credit it was given; the call is ended.",
  EZIPC_NICK_TAKEN: "Chat: the nickname is held by another client (nicknames are unique, case-insensitive).",
  EZIPC_NO_SUCH_MEMBER: "Chat: nobody with that nickname is in the sender's room.",
  EZIPC_RATE_LIMITED:
    "Chat: the client sent more than its allowance of messages per second; that message is refused.",
  EZIPC_AUTH:
    "Authentication failed: the hub's key is not the pinned or known one, or the hub refused this client's key or token.",
  EZIPC_SECURE_UNAVAILABLE:
    "A client cannot make this secure connection: the cryptographic library it needs is missing (the Python client: the cryptography package), or, in the browser client, secure lacks hubKey or asks for AES-GCM; or OpenSSL failed to seal or open a record (not expected: the connection is closed).",
  EZIPC_DECRYPT:
    "An encrypted record failed authentication (tampered, replayed, reordered or cut); the connection is closed.",
  EZIPC_NOT_SUPPORTED:
    "This backend cannot do that (e.g. wildcard subscriptions or persistent topics over shm://); the message says what to use.",
  EZIPC_SHM_UNAVAILABLE:
    "shm:// cannot be used here: not Linux, /dev/shm missing, or the native addon was not built.",
  EZIPC_SHM_BAD_FILE:
    "A shared-memory file is not a valid ezipc file (truncated, corrupted, another version or kind), or cannot be one of ours (a symbolic link, a directory, a pipe; in a private namespace, owned by another user); it is not used.",
  EZIPC_SHM_TOO_LARGE: "A message does not fit the topic's ring (at most a quarter of its bytes).",
  EZIPC_SHM_GONE:
    "The shm:// namespace's directory was removed while this client used it (rm -r /dev/shm/ezipc.NAME): close the client and connect again.",
  EZIPC_SHM_FULL:
    "/dev/shm has no room for memory a shared-memory file needs now: a file being created or opened, or a part of a topic's ring a publish reaches first; nothing was written.",
  EZIPC_CLUSTER:
    "A clustered hub could not reach its cluster (NATS JetStream) in time, other hubs kept winning a write, or a message was larger than NATS carries (max_payload); the operation failed.",
} as const;

/** A stable ezipc error code such as `EZIPC_FRAME_TOO_LARGE`. */
export type ErrorCode = keyof typeof ErrorCodes;

/** Base class of every coded ezipc error. `code` is stable; `message` is for people. */
export class EzipcError extends Error {
  readonly code: ErrorCode;

  constructor(code: ErrorCode, message?: string, options?: { cause?: unknown }) {
    super(message ?? ErrorCodes[code], options);
    this.code = code;
    this.name = "EzipcError";
  }
}

/** True when `err` is an {@link EzipcError}, optionally with the given code. */
export function isEzipcError(err: unknown, code?: ErrorCode): err is EzipcError {
  return err instanceof EzipcError && (code === undefined || err.code === code);
}
