"""Shared variables (docs/protocol.md, "Semantics"): pointers with the three sync policies, config variables,
peek and info. `VarsPart` is the Client's part for them (mixed into Client)."""

from __future__ import annotations

import asyncio
import json
from typing import TYPE_CHECKING, Any, Callable

from .common import KIND_BYTES, KIND_JSON, POLICIES, Payload, _bytes
from .errors import EzipcError

if TYPE_CHECKING:
    from .client import Client

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



class _Opened:
    """An `opened` reply applied as it is dispatched, before the frames after it: an update for the block
    that follows the reply finds its key (the TypeScript client does the same)."""

    def __init__(self, part: VarsPart, key: str, policy: int):
        self.part, self.key, self.policy = part, key, policy
        self.state: KeyState | None = None

    def __call__(self, name: str, reply: dict) -> None:
        if name == "opened":
            self.state = self.part._opened(self.key, reply, self.policy)


class VarsPart:
    """The Client's shared-variable methods (the Client holds `_keys`, `_by_key`)."""

    def _on_opened(self, key: str, policy: int) -> _Opened:
        return _Opened(self, key, policy)

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
        got = self._on_opened(key, pol)
        await self._request("allocate", {"key": key, "kind": KIND_BYTES, "size": size, "policy": pol, "persistent": persistent, "ifExists": 1 if open_existing else 0}, on_reply=got)
        return self._pointer(got.state, policy)

    async def watch(self, key: str, policy: str = "poll") -> Pointer | None:
        """A pointer on an existing key; None if it was never created (EZIPC_KEY_DISPOSED if disposed)."""
        pol = _policy(policy)
        try:
            got = self._on_opened(key, pol)
            await self._request("watch", {"key": key, "policy": pol}, on_reply=got)
        except EzipcError as e:
            if e.code == "EZIPC_KEY_NOT_FOUND":
                return None
            raise
        return self._pointer(got.state, policy)

    async def config(self, key: str, policy: str = "poll", persistent: bool = True) -> ConfigVar:
        """A JSON config variable, created empty if missing."""
        pol = _policy(policy)
        got = self._on_opened(key, pol)
        await self._request("allocate", {"key": key, "kind": KIND_JSON, "size": 0, "policy": pol, "persistent": persistent, "ifExists": 1}, on_reply=got)
        return ConfigVar(self._pointer(got.state, policy))

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
        return {"ok": r["_type"] == "ok", "version": _learnt(s, r["version"])}

    async def _config(self, s: KeyState, op: int, doc: str) -> tuple[bool, int]:
        r = await self._request("config", {"id": s.id, "op": op, "json": doc}, s)
        return r["_type"] == "ok", _learnt(s, r["version"])

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

    def _invalidate(self, s: KeyState) -> None:
        s.invalidated = True
        self._keys.pop(s.id, None)
        if self._by_key.get(s.key) is s:
            del self._by_key[s.key]
        s.set_status("invalidated")
        for p in list(s.pointers):
            p._end()


def _policy(policy: str) -> int:
    if policy not in POLICIES:
        raise ValueError(f"sync policy must be request, lazy or poll, got {policy}")
    return POLICIES[policy]


def _learnt(s: KeyState, version: int) -> int:
    """A version the hub named in an answer (a write's, a conflict's) is known from then on: by a request
    pointer, which keeps no copy for the hub to update, and by a lazy one whose copy went stale earlier (the
    hub says so once): the copy is then stale. A poll copy gets there by the hub's pushes, which come first."""
    if version > s.version and s.policy != 2:
        s.version = version
        s.fresh = False
    return version
