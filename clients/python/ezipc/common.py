"""What the client's parts share: protocol constants and payload helpers (docs/protocol.md)."""

from __future__ import annotations

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
