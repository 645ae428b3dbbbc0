"""An asyncio client of an ezipc hub, written from docs/protocol.md alone.

One connection (tcp:// or unix://), the hello/welcome handshake, PING answered with PONG, and the hub's
messages: shared variables (pointers with the three sync policies, config variables), pub/sub (publish,
subscribe with every init x iter, credit), RPC (request, serve) and deadman tokens. Replies are matched by
rid; pushes (update, stale, invalidated, message, gap, call, end) by their ids.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass, field
from typing import Any, Awaitable, Callable
from urllib.parse import unquote, urlparse

from . import schema
from .errors import EzipcError
from .secure import handshake as secure_handshake
from .wire import CLOSE, PING, PONG, Control, FrameDecoder, control_frame, data_frame


class _Plain:
    """The raw stream, with the secure stream's interface."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter):
        self.reader, self.writer = reader, writer

    async def read(self) -> bytes:
        return await self.reader.read(65536)

    def write(self, data: bytes) -> None:
        self.writer.write(data)

PROTOCOL = 2
POLICIES = {"request": 0, "lazy": 1, "poll": 2}
KIND_BYTES = 0
KIND_JSON = 1
INITS = {"oldest": 0, "mostRecent": 1, "awaitNew": 2}
ITERS = {"next": 0, "newest": 1}
SIDE_CALLER = 0
SIDE_SERVER = 1
END_OK = 0
END_ERROR = 1
END_CANCEL = 2
FEATURES = ["vars", "config", "pubsub", "rpc", "deadman", "info"]

Payload = bytes | bytearray | memoryview | str


def _bytes(p: Payload | None) -> bytes:
    if p is None:
        return b""
    if isinstance(p, str):
        return p.encode("utf-8")
    return bytes(p)


def _headers(h: dict[str, str] | None) -> list[dict[str, str]]:
    return [{"key": k, "value": v} for k, v in (h or {}).items()]


# ---- shared variables ----------------------------------------------------------------------------------


class KeyState:
    """What this client knows of one key: the copy (lazy/poll), its version, pointers per policy."""

    def __init__(self, key: str, opened: dict):
        self.key = key
        self.id: int = opened["id"]
        self.kind: int = opened["kind"]
        self.size: int = opened["size"]
        self.version: int = opened["version"]
        self.persistent: bool = opened["persistent"]
        self.data: bytes | None = opened.get("data")
        self.fresh = self.data is not None
        self.counts = [0, 0, 0]
        self.pointers: list[Pointer] = []
        self.invalidated = False
        self.status = "live"  # "stale" while the connection is lost; "invalidated" for good

    def set_status(self, status: str) -> None:
        if self.status == status or self.status == "invalidated":
            return
        self.status = status
        for p in list(self.pointers):
            for fn in list(p._status_listeners):
                fn(status)

    @property
    def policy(self) -> int:
        for p in (2, 1, 0):
            if self.counts[p] > 0:
                return p
        return -1


class Pointer:
    """A pointer on a key holding one reference on the hub (the TypeScript client's IpcPtr)."""

    def __init__(self, client: Client, state: KeyState, policy: str):
        self._client = client
        self.state = state
        self.policy = policy
        self.disposed = False
        self._listeners: list[Callable[[int, bytes | None], Any]] = []
        self._status_listeners: list[Callable[[str], Any]] = []
        self._queues: list[asyncio.Queue] = []

    @property
    def status(self) -> str:
        """live; stale while the hub is unreachable (the poll copy may be old); invalidated for good."""
        return "invalidated" if self.disposed else self.state.status

    def on_status(self, fn: Callable[[str], Any]) -> None:
        """Calls fn(status) when the pointer goes stale, live again, or invalidated."""
        self._status_listeners.append(fn)

    @property
    def key(self) -> str:
        return self.state.key

    @property
    def version(self) -> int:
        return self.state.version

    @property
    def size(self) -> int:
        return self.state.size

    def _check(self) -> None:
        if self.disposed or self.state.invalidated:
            raise EzipcError("EZIPC_KEY_DISPOSED", f"key {self.key} has been invalidated")

    def value(self) -> bytes:
        """The local copy, at once (poll; or any pointer while this client holds the key under poll)."""
        self._check()
        if self.state.policy < 2 or self.state.data is None:
            raise EzipcError("EZIPC_BAD_REQUEST", f"{self.key}: value() needs a poll pointer; use read()")
        return self.state.data

    async def read_versioned(self) -> tuple[bytes, int]:
        """The value and its version, taken together: from the copy when it is current, else from the hub."""
        self._check()
        s = self.state
        if s.data is not None and (s.policy == 2 or s.fresh):
            return s.data, s.version
        r = await self._client._request("read", {"id": s.id}, s)
        data, version = r["data"], r["version"]
        if version >= s.version:
            s.version = version
            if s.policy >= 1:
                s.data, s.fresh = data, True
        return data, version

    async def read(self) -> bytes:
        return (await self.read_versioned())[0]

    def _check_write(self, data: bytes, offset: int) -> None:
        self._check()
        if self.state.kind != KIND_BYTES:
            raise TypeError(f"{self.key} is a JSON config: use its config operations")
        if offset < 0 or offset + len(data) > self.state.size:
            raise ValueError(f"write of {len(data)} bytes at {offset} is outside {self.key} ({self.state.size} bytes)")

    async def write(self, data: Payload, offset: int = 0) -> int:
        """Writes `data` at `offset`; returns the new version once the hub applied it."""
        b = _bytes(data)
        self._check_write(b, offset)
        r = await self._client._write(self.state, b, offset, None)
        return r["version"]

    async def compare_and_write(self, expected_version: int, data: Payload, offset: int = 0) -> tuple[bool, int]:
        """Writes only if the version is still `expected_version`: (True, new version) or (False, current)."""
        b = _bytes(data)
        self._check_write(b, offset)
        r = await self._client._write(self.state, b, offset, expected_version)
        return r["ok"], r["version"]

    def on_change(self, fn: Callable[[int, bytes | None], Any]) -> None:
        """Calls fn(version, data) on each change (data is None for lazy notices)."""
        self._listeners.append(fn)

    async def changes(self):
        """Changes from now on as (version, data); the latest only when the consumer lags."""
        q: asyncio.Queue = asyncio.Queue(maxsize=1)
        self._queues.append(q)
        try:
            while not self.disposed and not self.state.invalidated:
                item = await q.get()
                if item is None:
                    return
                yield item
        finally:
            self._queues.remove(q)

    def _emit(self, version: int, data: bytes | None) -> None:
        for fn in list(self._listeners):
            fn(version, data)
        for q in self._queues:
            if q.full():
                q.get_nowait()
            q.put_nowait((version, data))

    def _end(self) -> None:
        for q in self._queues:
            if q.full():
                q.get_nowait()
            q.put_nowait(None)

    def dispose(self) -> None:
        """Releases this pointer's reference on the hub (idempotent)."""
        if self.disposed:
            return
        self.disposed = True
        self._client._release(self)
        self._end()


class ConfigVar:
    """A JSON config variable: one document, written whole or by an RFC 7396 merge patch on the hub."""

    def __init__(self, pointer: Pointer):
        self.pointer = pointer

    @property
    def version(self) -> int:
        return self.pointer.version

    async def read(self) -> Any:
        data = await self.pointer.read()
        return json.loads(data) if data else None

    async def _op(self, op: int, doc: Any) -> tuple[bool, int]:
        s = self.pointer.state
        return await self.pointer._client._config(s, op, json.dumps(doc, separators=(",", ":")))

    async def write(self, doc: Any) -> int:
        return (await self._op(0, doc))[1]

    async def write_if_empty(self, doc: Any) -> bool:
        return (await self._op(1, doc))[0]

    async def merge_patch(self, patch: Any) -> int:
        return (await self._op(2, patch))[1]

    def dispose(self) -> None:
        self.pointer.dispose()


# ---- pub/sub ------------------------------------------------------------------------------------------


@dataclass
class Message:
    topic: str
    seq: int
    time: float
    publisher: str
    headers: dict[str, str]
    payload: bytes

    def text(self) -> str:
        return self.payload.decode("utf-8")

    def json(self) -> Any:
        return json.loads(self.payload)


@dataclass
class Gap:
    topic: str
    first: int
    last: int


class Subscription:
    """Messages of a topic (or pattern) in order; an async iterator, or a handler's calls."""

    def __init__(self, client: Client, sid: int, prefetch: int, iter_: str, handler, on_gap):
        self._client = client
        self.sid = sid
        self.pattern = ""
        self.init_code = 2
        self.from_seq = 0
        #: The last seq delivered per topic: a resubscription after a reconnect resumes after it.
        self.last: dict[str, int] = {}
        self.prefetch = prefetch
        self.iter = iter_
        self._handler = handler
        self._on_gap = on_gap
        self._queue: asyncio.Queue = asyncio.Queue()
        self._consumed = 0
        self.closed = False
        self.start_seq = 0

    def _deliver(self, m: Message) -> None:
        self.last[m.topic] = m.seq
        if self._handler is not None:
            r = self._handler(m)
            if asyncio.iscoroutine(r):
                asyncio.ensure_future(r)
            self._consumed_one()
        else:
            self._queue.put_nowait(m)

    def _consumed_one(self) -> None:
        self._consumed += 1
        if self._client.status != "connected":
            return  # the resubscription gives a fresh credit
        if self.iter == "newest":
            self._client._send("credit", {"sid": self.sid, "n": 1})
            self._consumed = 0
        elif self._consumed >= max(1, self.prefetch // 2):
            self._client._send("credit", {"sid": self.sid, "n": self._consumed})
            self._consumed = 0

    def _gap(self, g: Gap) -> None:
        if self._on_gap:
            self._on_gap(g)

    def __aiter__(self):
        return self

    async def __anext__(self) -> Message:
        if self._handler is not None:
            raise TypeError("this subscription delivers to its handler")
        if self.closed and self._queue.empty():
            raise StopAsyncIteration
        m = await self._queue.get()
        if m is None:
            raise StopAsyncIteration
        self._consumed_one()
        return m

    def unsubscribe(self) -> None:
        if self.closed:
            return
        self.closed = True
        self._client._subs.pop(self.sid, None)
        if self._client.status == "connected":
            self._client._send("unsubscribe", {"sid": self.sid})
        self._queue.put_nowait(None)


# ---- RPC ----------------------------------------------------------------------------------------------


@dataclass
class Request:
    topic: str
    caller: str
    headers: dict[str, str]
    payload: bytes
    timeout_ms: int

    def text(self) -> str:
        return self.payload.decode("utf-8")

    def json(self) -> Any:
        return json.loads(self.payload)


@dataclass
class Reply:
    payload: bytes

    def text(self) -> str:
        return self.payload.decode("utf-8")

    def json(self) -> Any:
        return json.loads(self.payload)


class Deadman:
    """A named token at most one connection holds; released when its holder goes."""

    def __init__(self, client: Client, name: str):
        self._client = client
        self.name = name

    async def _op(self, op: int) -> dict:
        return await self._client._request("deadman", {"name": self.name, "op": op})

    async def take(self) -> None:
        """Resolves once this client holds the token (waits in line)."""
        await self._op(0)

    async def try_take(self) -> bool:
        return (await self._op(1))["mine"]

    async def release(self) -> None:
        await self._op(2)

    async def state(self) -> dict:
        r = await self._op(5)
        return {"taken": r["taken"], "holder": r["holder"], "mine": r["mine"], "epoch": r["epoch"]}


# ---- the client ---------------------------------------------------------------------------------------


@dataclass
class _Pending:
    future: asyncio.Future
    state: KeyState | None = None
    on_reply: Callable[[str, dict], None] | None = None
    extra: dict = field(default_factory=dict)


class Client:
    """A connection to a hub. Use `await connect(url)`.

    With `reconnect` (the default) a lost connection is dialled again with backoff; the hello names the
    client's id so that a hub within its reconnect window keeps its pointers; then every held key is
    resynced, every served topic served again, every subscription resumed after the last seq it delivered.
    Requests in flight when the connection was lost fail with EZIPC_CONNECTION_CLOSED (a write may or may
    not have been applied); pointers are `stale` meanwhile.
    """

    def __init__(self, url: str, name: str, reconnect: bool = True, max_delay: float = 2.0, secure: dict | None = None):
        self.url = url
        #: Options of an encrypted connection (ezipc.secure.handshake's: hub_key or verify_hub_key, static_key, token, cipher).
        self.secure = secure
        self._io = None
        self.name = name
        self.reconnect = reconnect
        self.max_delay = max_delay
        self.client_id = ""
        self.label = ""
        self.hub = ""
        #: True when the last welcome resumed this client (the hub kept its pointers).
        self.resumed = False
        self.status = "connecting"
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None
        self._decoder = FrameDecoder()
        self._rid = 0
        self._pending: dict[int, _Pending] = {}
        self._keys: dict[int, KeyState] = {}
        self._by_key: dict[str, KeyState] = {}
        self._subs: dict[int, Subscription] = {}
        self._sid = 0
        self._calls: dict[int, asyncio.Future] = {}
        self._handlers: dict[str, Callable[[Request], Any]] = {}
        self._task: asyncio.Task | None = None
        self._welcome: asyncio.Future | None = None
        self._ready: asyncio.Event | None = None
        self._reconnecting: asyncio.Task | None = None
        self._status_listeners: list[Callable[[str], Any]] = []
        self.closed = False
        self.close_reason: EzipcError | None = None

    # -- connection --

    def on_status(self, fn: Callable[[str], Any]) -> None:
        """Calls fn(status): connected, reconnecting, closed."""
        self._status_listeners.append(fn)

    def _set_status(self, status: str) -> None:
        self.status = status
        for fn in list(self._status_listeners):
            fn(status)

    async def _open(self) -> None:
        self._ready = asyncio.Event()
        await self._dial()
        self._ready.set()
        self._set_status("connected")

    async def _dial(self) -> None:
        """Opens the socket, says hello (resuming this client if it has an id) and waits for welcome."""
        u = urlparse(self.url)
        if u.scheme == "tcp":
            if not u.hostname or not u.port:
                raise EzipcError("EZIPC_INVALID_URL", f"{self.url}: expected tcp://HOST:PORT")
            self._reader, self._writer = await asyncio.open_connection(u.hostname, u.port)
        elif u.scheme == "unix":
            path = unquote(u.path)
            if not path:
                raise EzipcError("EZIPC_INVALID_URL", f"{self.url}: expected unix:///PATH")
            self._reader, self._writer = await asyncio.open_unix_connection(path)
        elif u.scheme in ("tls", "shm", "memory"):
            raise EzipcError("EZIPC_INVALID_URL", f"{self.url}: the Python client speaks tcp:// and unix://")
        else:
            raise EzipcError("EZIPC_INVALID_URL", f"{self.url}: unknown scheme {u.scheme!r}")
        self._io = _Plain(self._reader, self._writer)
        if self.secure is not None:
            self._io = await asyncio.wait_for(secure_handshake(self._reader, self._writer, **self.secure), 10)
        self._decoder = FrameDecoder()
        self._welcome = asyncio.get_running_loop().create_future()
        self._task = asyncio.ensure_future(self._read_loop(self._io))
        self._write_frame("hello", {"protocol": PROTOCOL, "name": self.name, "resume": self.client_id or None, "features": FEATURES})
        w = await asyncio.wait_for(self._welcome, 10)
        self.client_id, self.label, self.hub, self.resumed = w["clientId"], w["label"], w["hub"], w["resumed"]

    def _write_frame(self, name: str, body: dict) -> None:
        if self._writer is None or self._writer.is_closing() or self._io is None:
            raise EzipcError("EZIPC_CONNECTION_CLOSED", "not connected")
        self._io.write(data_frame(schema.encode(name, body)))

    def _send(self, name: str, body: dict) -> None:
        if self.closed:
            raise EzipcError("EZIPC_CONNECTION_CLOSED", "this client is closed")
        if self.status != "connected":
            raise EzipcError("EZIPC_CONNECTION_CLOSED", "the connection is lost (reconnecting)")
        self._write_frame(name, body)

    async def _request(self, name: str, body: dict, state: KeyState | None = None, *, during_resync: bool = False) -> dict:
        """Sends a request with a fresh rid; resolves with the reply's body (raises its error)."""
        if state is not None and state.invalidated:
            raise EzipcError("EZIPC_KEY_DISPOSED", f"key {state.key} has been invalidated")
        if not during_resync and self.status == "reconnecting" and self._ready is not None:
            await self._ready.wait()  # sent once the connection is back (or fails if the client closes)
        self._rid = self._rid + 1 if self._rid < 0xFFFF_FFFF else 1
        rid = self._rid
        fut = asyncio.get_running_loop().create_future()
        self._pending[rid] = _Pending(fut, state)
        if during_resync:
            self._write_frame(name, {"rid": rid, **body})
        else:
            self._send(name, {"rid": rid, **body})
        name_, reply = await fut
        reply["_type"] = name_
        return reply

    async def _read_loop(self, io) -> None:
        err: EzipcError | None = None
        try:
            while True:
                chunk = await io.read()
                if not chunk:
                    err = EzipcError("EZIPC_CONNECTION_RESET", "the hub closed the connection")
                    break
                for f in self._decoder.feed(chunk):
                    if isinstance(f, Control):
                        if f.kind == PING:
                            io.write(control_frame(PONG))
                        elif f.kind == CLOSE:
                            err = EzipcError("EZIPC_CONNECTION_CLOSED", f.argument.decode("utf-8", "replace"))
                    else:
                        self._dispatch(*schema.decode(f))
                if err:
                    break
        except EzipcError as e:
            err = e
        except (ConnectionError, OSError) as e:
            err = EzipcError("EZIPC_CONNECTION_RESET", str(e))
        if io is self._io:
            self._lost(err or EzipcError("EZIPC_CONNECTION_CLOSED", "closed"))

    def _fail_in_flight(self, err: EzipcError) -> None:
        if self._welcome and not self._welcome.done():
            self._welcome.set_exception(err)
        pending, self._pending = self._pending, {}
        for p in pending.values():
            if not p.future.done():
                p.future.set_exception(err)
        calls, self._calls = self._calls, {}
        for f in calls.values():
            if not f.done():
                f.set_exception(err)

    def _lost(self, err: EzipcError) -> None:
        if self._writer:
            self._writer.close()
        if self.closed:
            return
        if self.reconnect and self.status == "connected":
            self._fail_in_flight(EzipcError("EZIPC_CONNECTION_CLOSED", f"the connection was lost: {err.message or err.code}"))
            self._ready = asyncio.Event()
            for s in self._keys.values():
                s.set_status("stale")
            self._set_status("reconnecting")
            self._reconnecting = asyncio.ensure_future(self._reconnect_loop())
            return
        if self.status == "reconnecting":
            return  # a failed dial: the loop tries again
        self._shut(err)

    def _shut(self, err: EzipcError) -> None:
        self.closed = True
        self.close_reason = err
        self._fail_in_flight(err)
        for s in list(self._subs.values()):
            s.closed = True
            s._queue.put_nowait(None)
        if self._ready is not None:
            self._ready.set()
        self._set_status("closed")

    async def _reconnect_loop(self) -> None:
        delay = 0.02
        while not self.closed:
            try:
                await self._dial()
                await self._resync()
                self._set_status("connected")
                if self._ready is not None:
                    self._ready.set()
                return
            except (EzipcError, ConnectionError, OSError, asyncio.TimeoutError):
                if self._writer:
                    self._writer.close()
                await asyncio.sleep(delay)
                delay = min(delay * 2, self.max_delay)

    async def _resync(self) -> None:
        """After a welcome: every held key, then every served topic and subscription, again."""
        held = [s for s in list(self._keys.values()) if sum(s.counts) > 0 and not s.invalidated]
        for s in held:
            try:
                r = await self._request("resync", {"key": s.key, "id": s.id, "counts": list(s.counts), "version": s.version}, during_resync=True)
            except EzipcError as e:
                if e.code in ("EZIPC_KEY_DISPOSED", "EZIPC_KEY_NOT_FOUND"):
                    self._invalidate(s)
                    continue
                raise
            if self._keys.get(s.id) is s:
                del self._keys[s.id]
            s.id = r["id"]
            self._keys[s.id] = s
            changed = r["version"] != s.version
            s.version, s.size = r["version"], r["size"]
            if r.get("data") is not None:
                s.data, s.fresh = r["data"], True
            elif changed:
                s.fresh = False
            s.set_status("live")
            if changed:
                for p in list(s.pointers):
                    p._emit(s.version, s.data if s.fresh else None)
        await self._request("resyncDone", {}, during_resync=True)
        for topic in list(self._handlers):
            await self._request("serve", {"topic": topic, "host": "", "direct": ""}, during_resync=True)
        for sub in list(self._subs.values()):
            sub._consumed = 0
            credit = 1 if sub.iter == "newest" else sub.prefetch
            resume = [{"topic": t, "seq": seq + 1} for t, seq in sub.last.items()]
            await self._request("subscribe", {"sid": sub.sid, "pattern": sub.pattern, "init": sub.init_code, "fromSeq": sub.from_seq, "iter": ITERS[sub.iter], "credit": credit, "resume": resume}, during_resync=True)

    def _invalidate(self, s: KeyState) -> None:
        s.invalidated = True
        self._keys.pop(s.id, None)
        if self._by_key.get(s.key) is s:
            del self._by_key[s.key]
        s.set_status("invalidated")
        for p in list(s.pointers):
            p._end()

    def _dispatch(self, name: str, b: dict) -> None:
        if name == "welcome":
            if self._welcome and not self._welcome.done():
                self._welcome.set_result(b)
            return
        if name == "error" and b["rid"] == 0:
            err = EzipcError(b["code"], b["message"])
            if self._welcome and not self._welcome.done():
                self._welcome.set_exception(err)
            return
        if name == "update":
            s = self._keys.get(b["id"])
            if s and b["version"] >= s.version:
                s.version = b["version"]
                if s.policy >= 1:
                    s.data, s.size, s.fresh = b["data"], len(b["data"]), True
                for p in list(s.pointers):
                    p._emit(s.version, s.data)
            return
        if name == "stale":
            s = self._keys.get(b["id"])
            if s and not (b["version"] <= s.version and s.fresh):
                s.version = max(s.version, b["version"])
                s.fresh = False
                for p in list(s.pointers):
                    p._emit(s.version, None)
            return
        if name == "invalidated":
            s = self._keys.get(b["id"])
            if s:
                self._invalidate(s)
            return
        if name == "message":
            sub = self._subs.get(b["sid"])
            if sub:
                for i, r in enumerate(b["records"]):
                    headers = {h["key"]: h["value"] for h in r["headers"]}
                    sub._deliver(Message(b["topic"], b["seq"] + i, b["time"], b["publisher"], headers, r["payload"]))
            return
        if name == "gap":
            sub = self._subs.get(b["sid"])
            if sub:
                sub._gap(Gap(b["topic"], b["first"], b["last"]))
            return
        if name == "call":
            asyncio.ensure_future(self._serve_call(b))
            return
        if name == "end":
            if b["side"] == SIDE_CALLER:
                f = self._calls.pop(b["id"], None)
                if f and not f.done():
                    f.set_result(b)
            return
        if name in ("chunk", "flow", "publishFlow") or (name == "routeList" and b["rid"] == 0):
            return
        rid = b.get("rid")
        p = self._pending.pop(rid, None) if rid else None
        if p is None:
            return
        if name == "error":
            p.future.set_exception(EzipcError(b["code"], b["message"]))
        else:
            p.future.set_result((name, b))

    async def close(self) -> None:
        """Says goodbye (CLOSE) and closes; the hub releases this client's pointers at once."""
        if self.closed:
            return
        if self._reconnecting:
            self._reconnecting.cancel()
        if self.status == "connected" and self._writer and not self._writer.is_closing():
            self._io.write(control_frame(CLOSE, b"client closed"))
            try:
                await self._writer.drain()
            except (ConnectionError, OSError):
                pass
        self._shut(EzipcError("EZIPC_CONNECTION_CLOSED", "this client is closed"))
        if self._writer:
            self._writer.close()
        if self._task:
            try:
                await asyncio.wait_for(self._task, 2)
            except (asyncio.TimeoutError, Exception):
                pass

    async def __aenter__(self) -> Client:
        return self

    async def __aexit__(self, *exc) -> None:
        await self.close()

    # -- shared variables --

    def _opened(self, key: str, reply: dict, policy: int) -> KeyState:
        s = self._by_key.get(key)
        if s is not None and s.id != reply["id"]:
            s.invalidated = True
            s = None
        if s is None:
            s = KeyState(key, reply)
            self._by_key[key] = s
            self._keys[s.id] = s
        elif reply.get("data") is not None:
            s.data, s.fresh = reply["data"], True
            s.version = reply["version"]
        s.counts[policy] += 1
        return s

    def _pointer(self, s: KeyState, policy: str) -> Pointer:
        p = Pointer(self, s, policy)
        s.pointers.append(p)
        return p

    async def allocate(self, key: str, size: int, policy: str = "poll", *, persistent: bool = False, open_existing: bool = False) -> Pointer:
        """Creates `key` with `size` zero bytes (or opens it with open_existing) and returns a pointer."""
        pol = _policy(policy)
        if not isinstance(size, int) or size < 1:
            raise ValueError(f"size must be a positive integer, got {size}")
        r = await self._request("allocate", {"key": key, "kind": KIND_BYTES, "size": size, "policy": pol, "persistent": persistent, "ifExists": 1 if open_existing else 0})
        return self._pointer(self._opened(key, r, pol), policy)

    async def watch(self, key: str, policy: str = "poll") -> Pointer | None:
        """A pointer on an existing key; None if it was never created (EZIPC_KEY_DISPOSED if disposed)."""
        pol = _policy(policy)
        try:
            r = await self._request("watch", {"key": key, "policy": pol})
        except EzipcError as e:
            if e.code == "EZIPC_KEY_NOT_FOUND":
                return None
            raise
        return self._pointer(self._opened(key, r, pol), policy)

    async def config(self, key: str, policy: str = "poll", persistent: bool = True) -> ConfigVar:
        """A JSON config variable, created empty if missing."""
        pol = _policy(policy)
        r = await self._request("allocate", {"key": key, "kind": KIND_JSON, "size": 0, "policy": pol, "persistent": persistent, "ifExists": 1})
        return ConfigVar(self._pointer(self._opened(key, r, pol), policy))

    async def peek(self, key: str) -> tuple[bytes, int] | None:
        try:
            r = await self._request("peek", {"key": key})
        except EzipcError as e:
            if e.code in ("EZIPC_KEY_NOT_FOUND", "EZIPC_KEY_DISPOSED"):
                return None
            raise
        return r["data"], r["version"]

    async def info(self, key: str) -> dict:
        r = await self._request("info", {"key": key})
        state = ["none", "live", "grace", "disposed"][r["state"]]
        if state in ("none", "disposed"):
            return {"state": state}
        return {"state": state, "kind": "json" if r["kind"] == KIND_JSON else "bytes", "size": r["size"], "version": r["version"], "refcount": r["refcount"], "persistent": r["persistent"]}

    async def _write(self, s: KeyState, data: bytes, offset: int, expect: int | None) -> dict:
        r = await self._request("write", {"id": s.id, "offset": offset, "expect": expect, "data": data}, s)
        return {"ok": r["_type"] == "ok", "version": r["version"]}

    async def _config(self, s: KeyState, op: int, doc: str) -> tuple[bool, int]:
        r = await self._request("config", {"id": s.id, "op": op, "json": doc}, s)
        return r["_type"] == "ok", r["version"]

    def _release(self, p: Pointer) -> None:
        s = p.state
        if p in s.pointers:
            s.pointers.remove(p)
        pol = POLICIES[p.policy]
        if s.invalidated or s.counts[pol] == 0:
            return
        s.counts[pol] -= 1
        if s.policy < 1:
            s.data, s.fresh = None, False
        if sum(s.counts) == 0:
            self._keys.pop(s.id, None)
            self._by_key.pop(s.key, None)
        if self.status == "connected":
            self._send("release", {"id": s.id, "policy": pol})  # else the resync tells the hub the counts

    # -- pub/sub --

    async def publish(self, topic: str, payload: Payload, headers: dict[str, str] | None = None) -> tuple[int, float]:
        """Publishes and resolves with (seq, time) once the hub stored it."""
        r = await self._request("publish", {"topic": topic, "records": [{"headers": _headers(headers), "payload": _bytes(payload)}]})
        return r["seq"], r["time"]

    def publish_and_forget(self, topic: str, payload: Payload, headers: dict[str, str] | None = None) -> None:
        """Publishes without an acknowledgement."""
        self._send("publish", {"rid": 0, "topic": topic, "records": [{"headers": _headers(headers), "payload": _bytes(payload)}]})

    async def drain(self) -> None:
        """Resolves once what was sent left this process."""
        if self._writer:
            await self._writer.drain()

    async def subscribe(self, topic: str, *, init: str | int = "awaitNew", iter: str = "next", prefetch: int = 256, handler=None, on_gap=None) -> Subscription:
        """Subscribes to a topic or pattern. `init`: oldest, mostRecent, awaitNew, or a seq (fromSeq)."""
        if iter not in ITERS:
            raise ValueError(f"iter must be next or newest, got {iter}")
        if isinstance(init, int):
            init_code, from_seq = 3, init
        elif init in INITS:
            init_code, from_seq = INITS[init], 0
        else:
            raise ValueError(f"init must be oldest, mostRecent, awaitNew or a seq, got {init}")
        self._sid += 1
        sid = self._sid
        credit = 1 if iter == "newest" else prefetch
        sub = Subscription(self, sid, prefetch, iter, handler, on_gap)
        sub.pattern, sub.init_code, sub.from_seq = topic, init_code, from_seq
        self._subs[sid] = sub
        try:
            r = await self._request("subscribe", {"sid": sid, "pattern": topic, "init": init_code, "fromSeq": from_seq, "iter": ITERS[iter], "credit": credit, "resume": []})
        except Exception:
            self._subs.pop(sid, None)
            raise
        sub.start_seq = r["version"]
        return sub

    async def topics(self, pattern: str = "") -> list[dict]:
        return (await self._request("topics", {"pattern": pattern}))["topics"]

    # -- RPC --

    async def request(self, topic: str, payload: Payload | None = None, *, timeout_ms: int = 10_000, headers: dict[str, str] | None = None) -> Reply:
        """Calls `topic` and returns the reply; raises the server's error, EZIPC_NO_RESPONDERS, EZIPC_TIMEOUT."""
        self._rid = self._rid + 1 if self._rid < 0xFFFF_FFFF else 1
        rid = self._rid
        fut = asyncio.get_running_loop().create_future()
        self._calls[rid] = fut
        self._send("request", {"rid": rid, "topic": topic, "kind": 0, "timeoutMs": timeout_ms, "credit": 0, "headers": _headers(headers), "payload": _bytes(payload)})
        try:
            end = await asyncio.wait_for(asyncio.shield(fut), timeout_ms / 1000 if timeout_ms > 0 else None)
        except asyncio.TimeoutError:
            self._calls.pop(rid, None)
            if self.status == "connected":
                self._send("end", {"side": SIDE_CALLER, "id": rid, "status": END_CANCEL, "code": "EZIPC_TIMEOUT", "message": "timed out", "payload": b""})
            raise EzipcError("EZIPC_TIMEOUT", f"{topic}: no reply within {timeout_ms} ms") from None
        except asyncio.CancelledError:
            self._calls.pop(rid, None)
            if self.status == "connected":
                self._send("end", {"side": SIDE_CALLER, "id": rid, "status": END_CANCEL, "code": "EZIPC_CANCELLED", "message": "cancelled", "payload": b""})
            raise
        if end["status"] == END_OK:
            return Reply(end["payload"])
        raise EzipcError(end["code"] or "EZIPC_REMOTE", end["message"])

    async def serve(self, topic: str, handler: Callable[[Request], Any]) -> None:
        """Serves `topic`: each call runs handler(request); its return (bytes, str, or an awaitable of them) is the reply."""
        if topic in self._handlers:
            raise EzipcError("EZIPC_BAD_REQUEST", f"this client already serves {topic}")
        self._handlers[topic] = handler
        try:
            await self._request("serve", {"topic": topic, "host": "", "direct": ""})
        except Exception:
            self._handlers.pop(topic, None)
            raise

    def unserve(self, topic: str) -> None:
        if self._handlers.pop(topic, None) is not None and self.status == "connected":
            self._send("unserve", {"topic": topic})

    async def _serve_call(self, c: dict) -> None:
        handler = self._handlers.get(c["topic"])
        end = {"side": SIDE_SERVER, "id": c["cid"], "status": END_OK, "code": "", "message": "", "payload": b""}
        if handler is None or c["kind"] != 0:
            end.update(status=END_ERROR, code="EZIPC_NO_RESPONDERS" if handler is None else "EZIPC_BAD_REQUEST", message="not served here")
        else:
            req = Request(c["topic"], c["caller"], {h["key"]: h["value"] for h in c["headers"]}, c["payload"], c["timeoutMs"])
            try:
                r = handler(req)
                if isinstance(r, Awaitable):
                    r = await r
                end["payload"] = _bytes(r)
            except EzipcError as e:
                end.update(status=END_ERROR, code=e.code, message=e.message)
            except Exception as e:  # a handler's failure goes back to its caller
                end.update(status=END_ERROR, code="EZIPC_REMOTE", message=f"{type(e).__name__}: {e}")
        if self.status == "connected":
            self._send("end", end)

    # -- deadman --

    def deadman(self, name: str) -> Deadman:
        return Deadman(self, name)


def _policy(policy: str) -> int:
    if policy not in POLICIES:
        raise ValueError(f"sync policy must be request, lazy or poll, got {policy}")
    return POLICIES[policy]


async def connect(url: str, name: str = "python", *, reconnect: bool = True, secure: dict | None = None) -> Client:
    """Connects to the hub at `url` (tcp://HOST:PORT or unix:///PATH); returns once welcomed. With
    `reconnect` a lost connection is dialled again and the client's state resynced (see Client). With
    `secure` ({"hub_key": base64 or bytes} to pin the hub's key (IK), or {"verify_hub_key": fn} (XX), and
    optionally "token", "static_key", "cipher"), the connection is encrypted (docs/security.md); without the
    cryptography package that fails with EZIPC_SECURE_UNAVAILABLE."""
    c = Client(url, name, reconnect, secure=secure)
    await c._open()
    return c


__all__ = ["Client", "ConfigVar", "Deadman", "Gap", "Message", "Pointer", "Reply", "Request", "Subscription", "connect"]
