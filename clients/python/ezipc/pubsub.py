"""Pub/sub (docs/protocol.md, "Pub/sub"): publish, subscribe with every init x iter, credit, gaps.
`PubSubPart` is the Client's part for them (mixed into Client)."""

from __future__ import annotations

import asyncio
import json
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from . import schema
from .common import INITS, ITERS, Payload, _bytes, _headers
from .errors import EzipcError
from .wire import FORWARD_LIMIT, check_frame, data_frame

#: The most record bytes one fire-and-forget `publish` frame carries.
BATCH_BYTES = 64 * 1024

if TYPE_CHECKING:
    from .client import Client

# ---- pub/sub ------------------------------------------------------------------------------------------


#: Longest `topics()` waits, in all, for the hub's listing budget while it walks pages (then it fails).
PAGES_MAX_WAIT_S = 30.0


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
        self._async_handler = asyncio.iscoroutinefunction(handler)
        self._on_gap = on_gap
        #: Credit goes back in batches of half the prefetch (one at a time for iter newest).
        self._credit_every = 1 if iter_ == "newest" else max(1, prefetch // 2)
        self._queue: asyncio.Queue = asyncio.Queue()
        self._consumed = 0
        #: iter newest pulls: one credit when the reader is ready (credit given, message not yet come).
        self._asked = False
        self.closed = False
        self.start_seq = 0

    def _initial_credit(self) -> int:
        """The credit of a (re)subscription: newest pulls (a handler is always ready; an iterator only
        while it waits), next lets the hub send `prefetch` ahead."""
        if self.iter != "newest":
            return self.prefetch
        self._asked = self._handler is not None or self._waiting
        return 1 if self._asked else 0

    _waiting = False

    def _deliver(self, m: Message) -> None:
        self.last[m.topic] = m.seq
        self._asked = False
        if self._handler is not None:
            r = self._handler(m)
            if self._async_handler or (r is not None and asyncio.iscoroutine(r)):
                asyncio.ensure_future(r)
            self._consumed_one()
        else:
            self._queue.put_nowait(m)

    def _consumed_one(self) -> None:
        if self.iter == "newest" and self._handler is None:
            return  # the iterator asks when it next waits
        self._consumed += 1
        if self._consumed >= self._credit_every and self._client.status == "connected":
            # (while reconnecting, the resubscription gives a fresh credit)
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
        if self._queue.empty() and self.iter == "newest" and not self._asked and self._client.status == "connected":
            # AlephZero's ITER_NEWEST: one credit now that the reader is ready; the hub sends the newest message
            self._asked = True
            self._client._send("credit", {"sid": self.sid, "n": 1})
        self._waiting = True
        try:
            m = await self._queue.get()
        finally:
            self._waiting = False
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



class PubSubPart:
    """The Client's pub/sub methods (the Client holds `_subs`, `_sid`)."""

    async def publish(self, topic: str, payload: Payload, headers: dict[str, str] | None = None) -> tuple[int, float]:
        """Publishes and resolves with (seq, time) once the hub stored it."""
        r = await self._request("publish", {"topic": topic, "records": [{"headers": _headers(headers), "payload": _bytes(payload)}]})
        return r["seq"], r["time"]

    def publish_and_forget(self, topic: str, payload: Payload, headers: dict[str, str] | None = None) -> None:
        """Publishes without an acknowledgement. The fire-and-forget publishes of one event-loop turn to one
        topic go out as one frame (up to 64 KiB of records), as docs/protocol.md asks; anything else this
        client sends meanwhile goes after them, so its order is kept."""
        if self.closed or self.status != "connected":
            self._send("publish", {})  # raises the reason
        record = schema.encode_record(_bytes(payload), _headers(headers) if headers else None)
        if len(record) > FORWARD_LIMIT - 300:  # alone in a frame: index, rid, topic, count, the record
            check_frame("publish", len(schema.encode_publish(0, topic.encode("utf-8"), [record])))
        batch = self._batch
        if batch is not None and batch[0] != topic:
            self._flush_batch()
            batch = None
        if batch is None:
            self._batch = batch = (topic, [], [0])
            asyncio.get_running_loop().call_soon(self._flush_batch)
        batch[1].append(record)
        batch[2][0] += len(record)
        if batch[2][0] >= BATCH_BYTES or len(batch[1]) >= 65_536:
            self._flush_batch()

    def _flush_batch(self) -> None:
        """Sends the pending fire-and-forget records as one `publish` (rid 0)."""
        batch, self._batch = self._batch, None
        if batch is None or self._io is None or self._writer is None or self._writer.is_closing():
            return
        self._io.write(data_frame(schema.encode_publish(0, batch[0].encode("utf-8"), batch[1])))

    async def drain(self) -> None:
        """Resolves once what was sent left this process."""
        self._flush_batch()
        if self._writer:
            await self._writer.drain()

    async def subscribe(self, topic: str, *, init: str | int = "awaitNew", iter: str = "next", prefetch: int = 4096, handler=None, on_gap=None) -> Subscription:
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
        sub = Subscription(self, sid, prefetch, iter, handler, on_gap)
        credit = sub._initial_credit()
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
        """Topics matching `pattern` (empty: all) in name order; from a hub that names "pages", a page at a time
        (each answer a bounded frame), however many there are."""
        if "pages" not in getattr(self, "hub_features", ()):
            return (await self._request("topics", {"pattern": pattern}))["topics"]
        out: list[dict] = []
        after = ""
        waited = 0.0
        while True:
            try:
                r = await self._request("topicsPage", {"pattern": pattern, "after": after, "maxBytes": FORWARD_LIMIT})
            except EzipcError as e:
                # The hub's listing budget refused a page of a listing under way: wait as it says, then go on.
                m = re.search(r"try again in (\d+) ms", e.message) if e.code == "EZIPC_TOO_MANY_REQUESTS" else None
                wait = int(m.group(1)) / 1000 if m else None
                if after == "" or wait is None or waited + wait > PAGES_MAX_WAIT_S:
                    raise
                waited += wait
                await asyncio.sleep(wait)
                continue
            out += r["topics"]
            if not r["more"] or not r["topics"] or r["topics"][-1]["name"] <= after:
                return out
            after = r["topics"][-1]["name"]
