"""RPC (docs/protocol.md, "RPC, streams and sessions") and deadman tokens. `RpcPart` is the Client's part
for them (mixed into Client)."""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Awaitable, Callable

from .common import END_CANCEL, END_ERROR, END_OK, SIDE_CALLER, SIDE_SERVER, Payload, _bytes, _headers
from .errors import EzipcError

if TYPE_CHECKING:
    from .client import Client

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



class Stream:
    """A streaming request's replies, in order: `async for chunk in stream` (bytes). Gives the server credit
    as the reader consumes (half the prefetch at a time); `cancel()` ends it at the server too."""

    def __init__(self, client: Client, rid: int, topic: str, prefetch: int):
        self._client = client
        self.rid = rid
        self.topic = topic
        self.prefetch = prefetch
        self._queue: asyncio.Queue = asyncio.Queue()
        self._consumed = 0
        self._timer: asyncio.TimerHandle | None = None
        self.done = False
        self.error: EzipcError | None = None

    def _chunk(self, payload: bytes) -> None:
        if not self.done:
            self._queue.put_nowait(payload)

    def _end(self, error: EzipcError | None) -> None:
        if self.done:
            return
        self.done = True
        self.error = error
        if self._timer:
            self._timer.cancel()
        self._client._streams.pop(self.rid, None)
        self._queue.put_nowait(None)

    def _cancel(self, code: str, message: str) -> None:
        if self.done:
            return
        if self._client.status == "connected":
            self._client._send("end", {"side": SIDE_CALLER, "id": self.rid, "status": END_CANCEL, "code": code, "message": message, "payload": b""})
        self._end(EzipcError(code, message))

    def cancel(self) -> None:
        """Stops the stream here and at the server; the iterator raises EZIPC_CANCELLED."""
        self._cancel("EZIPC_CANCELLED", "cancelled")

    def __aiter__(self):
        return self

    async def __anext__(self) -> bytes:
        item = await self._queue.get()
        if item is None:
            self._queue.put_nowait(None)  # every later call ends too
            if self.error is not None:
                raise self.error
            raise StopAsyncIteration
        self._consumed += 1
        if self._consumed >= max(1, self.prefetch // 2) and not self.done and self._client.status == "connected":
            self._client._send("flow", {"side": SIDE_CALLER, "id": self.rid, "n": self._consumed})
            self._consumed = 0
        return item


class _ServerCall:
    """A call this client serves: the caller's credit for stream chunks, and the handler's task."""

    def __init__(self, credit: int, task: asyncio.Task | None):
        self.credit = credit
        self.task = task
        self.wake = asyncio.Event()
        self.stopped = False

    def grant(self, n: int) -> None:
        self.credit += n
        self.wake.set()

    def stop(self) -> None:
        self.stopped = True
        if self.task is not None:
            self.task.cancel()


def _is_stream(r: Any) -> bool:
    """Whether a handler returned chunks (an iterable or async iterable) rather than one reply."""
    if isinstance(r, (bytes, bytearray, memoryview, str)) or r is None:
        return False
    return hasattr(r, "__aiter__") or hasattr(r, "__iter__")


class RpcPart:
    """The Client's RPC and deadman methods (the Client holds `_calls`, `_streams`, `_serving`, `_handlers`)."""

    async def request(self, topic: str, payload: Payload | None = None, *, timeout_ms: int = 10_000, headers: dict[str, str] | None = None) -> Reply:
        """Calls `topic` and returns the reply; raises the server's error, EZIPC_NO_RESPONDERS, EZIPC_TIMEOUT."""
        self._rid = self._rid + 1 if self._rid < 0xFFFF_FFFF else 1
        rid = self._rid
        fut = asyncio.get_running_loop().create_future()
        self._calls[rid] = fut
        try:
            self._send("request", {"rid": rid, "topic": topic, "kind": 0, "timeoutMs": timeout_ms, "credit": 0, "headers": _headers(headers), "payload": _bytes(payload)})
        except BaseException:
            self._calls.pop(rid, None)  # nothing was sent (EZIPC_MESSAGE_TOO_LARGE, not connected)
            raise
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

    async def request_stream(self, topic: str, payload: Payload | None = None, *, timeout_ms: int = 0, prefetch: int = 16, headers: dict[str, str] | None = None) -> Stream:
        """Calls `topic` for a stream of replies: an async iterator of chunks (bytes) that ends when the server
        ends the stream, or raises its error (EZIPC_NO_RESPONDERS, EZIPC_SERVER_GONE, the handler's code;
        EZIPC_TIMEOUT when the whole stream takes over `timeout_ms`, 0: no bound). The server may send
        `prefetch` chunks ahead of the reader."""
        if not isinstance(prefetch, int) or prefetch < 1:
            raise ValueError(f"prefetch must be a positive integer, got {prefetch}")
        self._rid = self._rid + 1 if self._rid < 0xFFFF_FFFF else 1
        rid = self._rid
        stream = Stream(self, rid, topic, prefetch)
        self._streams[rid] = stream
        try:
            self._send("request", {"rid": rid, "topic": topic, "kind": 1, "timeoutMs": timeout_ms, "credit": prefetch, "headers": _headers(headers), "payload": _bytes(payload)})
        except Exception:
            self._streams.pop(rid, None)
            raise
        if timeout_ms > 0:
            stream._timer = asyncio.get_running_loop().call_later(timeout_ms / 1000, stream._cancel, "EZIPC_TIMEOUT", f"{topic}: stream not finished within {timeout_ms} ms")
        return stream

    def _call_message(self, name: str, b: dict) -> None:
        """chunk, flow and end of calls in flight (this client's streams, the calls it serves)."""
        if b["side"] == SIDE_CALLER:
            if name == "end":
                f = self._calls.pop(b["id"], None)
                if f and not f.done():
                    f.set_result(b)
            s = self._streams.get(b["id"])
            if s is not None:
                if name == "chunk":
                    s._chunk(b["payload"])
                elif name == "end":
                    if b["status"] == END_OK and b["payload"]:
                        s._chunk(b["payload"])  # a server's one value for a stream comes in its end: the last chunk
                    s._end(None if b["status"] == END_OK else EzipcError(b["code"] or "EZIPC_REMOTE", b["message"]))
            return
        call = self._serving.get(b["id"])
        if call is None:
            return
        if name == "flow":
            call.grant(b["n"])
        elif name == "end":  # the caller cancelled (or went): stop the handler; the hub ended the call
            call.stop()

    async def _serve_call(self, c: dict) -> None:
        handler = self._handlers.get(c["topic"])
        cid = c["cid"]
        end = {"side": SIDE_SERVER, "id": cid, "status": END_OK, "code": "", "message": "", "payload": b""}
        if handler is None or c["kind"] == 2:
            end.update(status=END_ERROR, code="EZIPC_NO_RESPONDERS" if handler is None else "EZIPC_BAD_REQUEST", message="not served here" if handler is None else "the Python client does not accept sessions")
            self._end_call(end)
            return
        call = _ServerCall(c["credit"], asyncio.current_task())
        self._serving[cid] = call
        req = Request(c["topic"], c["caller"], {h["key"]: h["value"] for h in c["headers"]}, c["payload"], c["timeoutMs"])
        try:
            r = handler(req)
            if isinstance(r, Awaitable):
                r = await r
            if _is_stream(r):
                if c["kind"] != 1:
                    raise EzipcError("EZIPC_BAD_REQUEST", "a stream answers a request; call it with request_stream")
                if hasattr(r, "__aiter__"):
                    async for chunk in r:
                        await self._send_chunk(call, cid, chunk)
                else:
                    for chunk in r:
                        await self._send_chunk(call, cid, chunk)
            else:
                end["payload"] = _bytes(r)
        except asyncio.CancelledError:
            if not call.stopped:
                raise
            return  # the caller cancelled: the hub already ended the call
        except EzipcError as e:
            end.update(status=END_ERROR, code=e.code, message=e.message)
        except Exception as e:  # a handler's failure goes back to its caller
            end.update(status=END_ERROR, code="EZIPC_REMOTE", message=f"{type(e).__name__}: {e}")
        finally:
            self._serving.pop(cid, None)
        self._end_call(end)

    async def _send_chunk(self, call: _ServerCall, cid: int, chunk: Payload) -> None:
        """Sends one chunk of a stream once the caller's credit allows it."""
        while call.credit < 1:
            call.wake.clear()
            await call.wake.wait()
        call.credit -= 1
        self._send("chunk", {"side": SIDE_SERVER, "id": cid, "payload": _bytes(chunk)})

    def _end_call(self, end: dict) -> None:
        if self.status != "connected":
            return
        try:
            self._send("end", end)
        except EzipcError as e:
            if e.code != "EZIPC_MESSAGE_TOO_LARGE":
                raise
            # A reply over one frame: the caller is told why instead (nothing else was sent).
            self._send("end", {**end, "status": END_ERROR, "code": e.code, "message": f"the reply does not fit one frame: {e.message}", "payload": b""})

    # -- deadman --

    def deadman(self, name: str) -> Deadman:
        return Deadman(self, name)
