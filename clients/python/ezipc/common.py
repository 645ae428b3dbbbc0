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


MAX_HEADERS = 64
MAX_HEADER_KEY = 256
MAX_HEADER_VALUE = 4096


def _headers(h: dict[str, str] | None) -> list[dict[str, str]]:
    """Headers as the wire's list, checked against its limits (docs/protocol.md): at most 64, keys of at most
    256 UTF-8 bytes, values of at most 4096, every one a string; EZIPC_ENCODE otherwise, before anything is
    queued (a fire-and-forget publish with a bad header must fail alone, not in a batch the hub refuses)."""
    from .errors import EzipcError

    items = list((h or {}).items())
    if len(items) > MAX_HEADERS:
        raise EzipcError("EZIPC_ENCODE", f"{len(items)} headers: at most {MAX_HEADERS}")
    out = []
    for k, v in items:
        if not isinstance(k, str) or not isinstance(v, str):
            raise EzipcError("EZIPC_ENCODE", f"header {str(k)[:64]}: keys and values must be strings")
        if len(k.encode("utf-8")) > MAX_HEADER_KEY:
            raise EzipcError("EZIPC_ENCODE", f"header key {k[:64]}...: over {MAX_HEADER_KEY} bytes")
        if len(v.encode("utf-8")) > MAX_HEADER_VALUE:
            raise EzipcError("EZIPC_ENCODE", f"header {k[:64]}: the value is over {MAX_HEADER_VALUE} bytes")
        out.append({"key": k, "value": v})
    return out
