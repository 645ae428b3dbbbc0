"""An asyncio client of an ezipc hub, written from docs/protocol.md alone.

One connection (tcp:// or unix://), the hello/welcome handshake, PING answered with PONG, and the hub's
messages: shared variables (pointers with the three sync policies, config variables), pub/sub (publish,
subscribe with every init x iter, credit), RPC (request, serve) and deadman tokens. Replies are matched by
rid; pushes (update, stale, invalidated, message, gap, call, end) by their ids.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any, Callable
from urllib.parse import unquote, urlparse

from . import schema
from .common import FEATURES, ITERS, PROTOCOL
from .errors import EzipcError
from .pubsub import Gap, Message, PubSubPart, Subscription
from .rpc import Deadman, Reply, Request, RpcPart, Stream
from .secure import handshake as secure_handshake
from .vars import ConfigVar, KeyState, Pointer, VarsPart
from .wire import CLOSE, PING, PONG, Control, FrameDecoder, check_frame, control_frame, data_frame


class _Plain:
    """The raw stream, with the secure stream's interface."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter):
        self.reader, self.writer = reader, writer

    async def read(self) -> bytes:
        return await self.reader.read(65536)

    def write(self, data: bytes) -> None:
        self.writer.write(data)

# ---- the client ---------------------------------------------------------------------------------------


@dataclass
class _Pending:
    future: asyncio.Future
    state: KeyState | None = None
    on_reply: Callable[[str, dict], None] | None = None
    extra: dict = field(default_factory=dict)


class Client(VarsPart, PubSubPart, RpcPart):
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
        #: Fire-and-forget publishes of this turn: (topic, encoded records, [bytes]).
        self._batch: tuple[str, list[bytes], list[int]] | None = None
        self._calls: dict[int, asyncio.Future] = {}
        self._streams: dict[int, Stream] = {}
        self._serving: dict = {}
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
        #: The features the hub named in its welcome ("pages": listings a page at a time).
        self.hub_features = set(w["features"])

    def _write_frame(self, name: str, body: dict) -> None:
        if self._writer is None or self._writer.is_closing() or self._io is None:
            raise EzipcError("EZIPC_CONNECTION_CLOSED", "not connected")
        encoded = schema.encode(name, body)
        check_frame(name, len(encoded))
        if self._batch is not None:
            self._flush_batch()  # fire-and-forget publishes sent before this go before it
        self._io.write(data_frame(encoded))

    def _send(self, name: str, body: dict) -> None:
        if self.closed:
            raise EzipcError("EZIPC_CONNECTION_CLOSED", "this client is closed")
        if self.status != "connected":
            raise EzipcError("EZIPC_CONNECTION_CLOSED", "the connection is lost (reconnecting)")
        self._write_frame(name, body)

    async def _request(self, name: str, body: dict, state: KeyState | None = None, *, during_resync: bool = False, on_reply: Callable[[str, dict], None] | None = None) -> dict:
        """Sends a request with a fresh rid; resolves with the reply's body (raises its error)."""
        if state is not None and state.invalidated:
            raise EzipcError("EZIPC_KEY_DISPOSED", f"key {state.key} has been invalidated")
        if not during_resync and self.status == "reconnecting" and self._ready is not None:
            await self._ready.wait()  # sent once the connection is back (or fails if the client closes)
        self._rid = self._rid + 1 if self._rid < 0xFFFF_FFFF else 1
        rid = self._rid
        fut = asyncio.get_running_loop().create_future()
        self._pending[rid] = _Pending(fut, state, on_reply)
        try:
            if during_resync:
                self._write_frame(name, {"rid": rid, **body})
            else:
                self._send(name, {"rid": rid, **body})
        except BaseException:
            self._pending.pop(rid, None)  # nothing was sent: no reply to wait for
            raise
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
        for s in list(self._streams.values()):
            s._end(err)

    def _lost(self, err: EzipcError) -> None:
        self._batch = None  # fire-and-forget publishes not yet sent are lost with the connection
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

            def apply(name: str, r: dict, s: KeyState = s) -> None:
                # Applied as the reply is dispatched, before the frames after it: an update for the key that
                # follows its `opened` must find the new id, and must not be overwritten by this older value.
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

            try:
                await self._request("resync", {"key": s.key, "id": s.id, "counts": list(s.counts), "version": s.version}, during_resync=True, on_reply=apply)
            except EzipcError as e:
                if e.code in ("EZIPC_KEY_DISPOSED", "EZIPC_KEY_NOT_FOUND"):
                    self._invalidate(s)
                    continue
                raise
        await self._request("resyncDone", {}, during_resync=True)
        for topic in list(self._handlers):
            await self._request("serve", {"topic": topic, "host": "", "direct": ""}, during_resync=True)
        for sub in list(self._subs.values()):
            sub._consumed = 0
            credit = sub._initial_credit()
            resume = [{"topic": t, "seq": seq + 1} for t, seq in sub.last.items()]
            await self._request("subscribe", {"sid": sub.sid, "pattern": sub.pattern, "init": sub.init_code, "fromSeq": sub.from_seq, "iter": ITERS[sub.iter], "credit": credit, "resume": resume}, during_resync=True)

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
        if name in ("chunk", "flow", "end"):
            self._call_message(name, b)
            return
        if name == "publishFlow" or (name == "routeList" and b["rid"] == 0):
            return
        rid = b.get("rid")
        p = self._pending.pop(rid, None) if rid else None
        if p is None:
            return
        if name == "error":
            p.future.set_exception(EzipcError(b["code"], b["message"]))
        else:
            if p.on_reply is not None:
                p.on_reply(name, b)  # now, before the frames that follow it (updates for the key, say)
            p.future.set_result((name, b))

    async def close(self) -> None:
        """Says goodbye (CLOSE) and closes; the hub releases this client's pointers at once."""
        if self.closed:
            return
        if self._reconnecting:
            self._reconnecting.cancel()
        if self.status == "connected" and self._writer and not self._writer.is_closing():
            self._flush_batch()
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

async def connect(url: str, name: str = "python", *, reconnect: bool = True, secure: dict | None = None) -> Client:
    """Connects to the hub at `url` (tcp://HOST:PORT or unix:///PATH); returns once welcomed. With
    `reconnect` a lost connection is dialled again and the client's state resynced (see Client). With
    `secure` ({"hub_key": base64 or bytes} to pin the hub's key (IK), or {"verify_hub_key": fn} (XX), and
    optionally "token", "static_key", "cipher"), the connection is encrypted (docs/security.md); without the
    cryptography package that fails with EZIPC_SECURE_UNAVAILABLE."""
    c = Client(url, name, reconnect, secure=secure)
    await c._open()
    return c


__all__ = ["Client", "ConfigVar", "Deadman", "Gap", "Message", "Pointer", "Reply", "Request", "Stream", "Subscription", "connect"]
