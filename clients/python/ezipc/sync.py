"""A synchronous facade for scripts: the asyncio client runs on its own event loop in a daemon thread, and
each method waits for its result. Handlers given to `serve` and `subscribe` run on that loop's thread."""

from __future__ import annotations

import asyncio
import threading
from typing import Any, Callable

from .client import Client, Message, Pointer, Reply, Request, connect


class SyncPointer:
    """A pointer whose methods block (see ezipc.Pointer)."""

    def __init__(self, owner: SyncClient, pointer: Pointer):
        self._owner = owner
        self.pointer = pointer

    @property
    def key(self) -> str:
        return self.pointer.key

    @property
    def version(self) -> int:
        return self.pointer.version

    def value(self) -> bytes:
        return self._owner._call(self._value())

    async def _value(self) -> bytes:
        return self.pointer.value()

    def read(self) -> bytes:
        return self._owner._call(self.pointer.read())

    def read_versioned(self) -> tuple[bytes, int]:
        return self._owner._call(self.pointer.read_versioned())

    def write(self, data, offset: int = 0) -> int:
        return self._owner._call(self.pointer.write(data, offset))

    def compare_and_write(self, expected_version: int, data, offset: int = 0) -> tuple[bool, int]:
        return self._owner._call(self.pointer.compare_and_write(expected_version, data, offset))

    def dispose(self) -> None:
        self._owner._loop.call_soon_threadsafe(self.pointer.dispose)


class SyncSubscription:
    def __init__(self, owner: SyncClient, sub):
        self._owner = owner
        self.sub = sub

    def next(self, timeout: float | None = None) -> Message:
        """The next message; raises TimeoutError after `timeout` seconds."""
        return self._owner._call(self.sub.__anext__(), timeout)

    def __iter__(self):
        while True:
            try:
                yield self.next()
            except StopAsyncIteration:
                return

    def unsubscribe(self) -> None:
        self._owner._loop.call_soon_threadsafe(self.sub.unsubscribe)


class SyncClient:
    """`SyncClient(url, name)`: ezipc.Client's API, blocking."""

    def __init__(self, url: str, name: str = "python", **options: Any):
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="ezipc", daemon=True)
        self._thread.start()
        try:
            self.client: Client = self._call(connect(url, name, **options))
        except BaseException:
            self._stop()
            raise

    def _call(self, coro, timeout: float | None = None):
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(timeout)

    def _stop(self) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)

    def allocate(self, key: str, size: int, policy: str = "poll", **kw: Any) -> SyncPointer:
        return SyncPointer(self, self._call(self.client.allocate(key, size, policy, **kw)))

    def watch(self, key: str, policy: str = "poll") -> SyncPointer | None:
        p = self._call(self.client.watch(key, policy))
        return SyncPointer(self, p) if p else None

    def info(self, key: str) -> dict:
        return self._call(self.client.info(key))

    def publish(self, topic: str, payload, headers: dict[str, str] | None = None) -> tuple[int, float]:
        return self._call(self.client.publish(topic, payload, headers))

    def subscribe(self, topic: str, **kw: Any) -> SyncSubscription:
        return SyncSubscription(self, self._call(self.client.subscribe(topic, **kw)))

    def request(self, topic: str, payload=None, **kw: Any) -> Reply:
        return self._call(self.client.request(topic, payload, **kw))

    def serve(self, topic: str, handler: Callable[[Request], Any]) -> None:
        self._call(self.client.serve(topic, handler))

    def try_take(self, name: str) -> bool:
        return self._call(self.client.deadman(name).try_take())

    def release(self, name: str) -> None:
        self._call(self.client.deadman(name).release())

    def close(self) -> None:
        try:
            self._call(self.client.close(), 5)
        finally:
            self._stop()

    def __enter__(self) -> SyncClient:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()
