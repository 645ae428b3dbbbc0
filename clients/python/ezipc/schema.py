"""The schema codec (docs/codecs.md, "Schema wire format") and the hub's message table (docs/protocol.md).

Types are plain values: "u8", "u16", "u32", "u64", "i32", "f64", "bool", "string", "bytes",
("array", T), ("fixed", T, n), ("opt", T), ("struct", [(name, T), ...]). Little-endian numbers, LEB128
lengths, structs as their fields in order, optional as a presence byte.
"""

from __future__ import annotations

import struct
from typing import Any

from .errors import EzipcError

_NUM = {"u8": "<B", "i8": "<b", "u16": "<H", "i16": "<h", "u32": "<I", "i32": "<i", "u64": "<Q", "i64": "<q", "f32": "<f", "f64": "<d"}


def _leb(n: int, out: bytearray) -> None:
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return


def encode_value(t: Any, v: Any, out: bytearray) -> None:
    if isinstance(t, str):
        if t in _NUM:
            out += struct.pack(_NUM[t], v)
        elif t == "bool":
            out.append(1 if v else 0)
        elif t == "string":
            b = v.encode("utf-8")
            _leb(len(b), out)
            out += b
        elif t == "bytes":
            _leb(len(v), out)
            out += v
        else:
            raise TypeError(f"unknown type {t}")
        return
    kind = t[0]
    if kind == "array":
        _leb(len(v), out)
        for e in v:
            encode_value(t[1], e, out)
    elif kind == "fixed":
        if len(v) != t[2]:
            raise ValueError(f"fixed array of {t[2]} needs {t[2]} elements")
        for e in v:
            encode_value(t[1], e, out)
    elif kind == "opt":
        if v is None:
            out.append(0)
        else:
            out.append(1)
            encode_value(t[1], v, out)
    elif kind == "struct":
        for name, ft in t[1]:
            encode_value(ft, v[name], out)
    else:
        raise TypeError(f"unknown type {t}")


class Reader:
    def __init__(self, data: bytes, at: int = 0):
        self.data = data
        self.at = at

    def need(self, n: int) -> None:
        if self.at + n > len(self.data):
            raise EzipcError("EZIPC_DECODE", "truncated message")

    def leb(self) -> int:
        n = 0
        shift = 0
        for _ in range(5):
            self.need(1)
            b = self.data[self.at]
            self.at += 1
            n |= (b & 0x7F) << shift
            if not b & 0x80:
                return n
            shift += 7
        raise EzipcError("EZIPC_DECODE", "length over 5 bytes")

    def value(self, t: Any) -> Any:
        if isinstance(t, str):
            if t in _NUM:
                fmt = _NUM[t]
                size = struct.calcsize(fmt)
                self.need(size)
                (v,) = struct.unpack_from(fmt, self.data, self.at)
                self.at += size
                return v
            if t == "bool":
                self.need(1)
                b = self.data[self.at]
                self.at += 1
                if b > 1:
                    raise EzipcError("EZIPC_DECODE", f"bool byte {b}")
                return b == 1
            if t in ("string", "bytes"):
                n = self.leb()
                self.need(n)
                raw = self.data[self.at : self.at + n]
                self.at += n
                return raw.decode("utf-8") if t == "string" else bytes(raw)
            raise TypeError(f"unknown type {t}")
        kind = t[0]
        if kind == "array":
            n = self.leb()
            if n > len(self.data) - self.at:
                raise EzipcError("EZIPC_DECODE", f"{n} elements cannot fit")
            return [self.value(t[1]) for _ in range(n)]
        if kind == "fixed":
            return [self.value(t[1]) for _ in range(t[2])]
        if kind == "opt":
            self.need(1)
            present = self.data[self.at]
            self.at += 1
            if present > 1:
                raise EzipcError("EZIPC_DECODE", f"optional byte {present}")
            return self.value(t[1]) if present else None
        if kind == "struct":
            return {name: self.value(ft) for name, ft in t[1]}
        raise TypeError(f"unknown type {t}")


HEADERS = ("array", ("struct", [("key", "string"), ("value", "string")]))
RECORD = ("struct", [("headers", HEADERS), ("payload", "bytes")])

# The hub protocol, version 2: (index, name, fields). Index = position (checked below).
_LISTED_TOPIC = [("name", "string"), ("firstSeq", "u64"), ("lastSeq", "u64"), ("count", "u32"), ("bytes", "f64"), ("subscribers", "u32"), ("persist", "bool")]
_LISTED_KEY = [("key", "string"), ("kind", "u8"), ("size", "u32"), ("version", "u64"), ("refcount", "u32"), ("persistent", "bool"), ("state", "u8"), ("holders", ("array", ("struct", [("client", "string"), ("counts", ("fixed", "u32", 3))])))]

MESSAGES: list[tuple[str, list[tuple[str, Any]]]] = [
    ("hello", [("protocol", "u16"), ("name", "string"), ("resume", ("opt", "string")), ("features", ("array", "string"))]),
    ("welcome", [("protocol", "u16"), ("clientId", "string"), ("resumed", "bool"), ("hub", "string"), ("features", ("array", "string")), ("maxBlockBytes", "u32"), ("label", "string")]),
    ("error", [("rid", "u32"), ("code", "string"), ("message", "string")]),
    ("ok", [("rid", "u32"), ("version", "u64")]),
    ("allocate", [("rid", "u32"), ("key", "string"), ("kind", "u8"), ("size", "u32"), ("policy", "u8"), ("persistent", "bool"), ("ifExists", "u8")]),
    ("watch", [("rid", "u32"), ("key", "string"), ("policy", "u8")]),
    ("opened", [("rid", "u32"), ("id", "u32"), ("kind", "u8"), ("size", "u32"), ("version", "u64"), ("persistent", "bool"), ("created", "bool"), ("data", ("opt", "bytes"))]),
    ("release", [("id", "u32"), ("policy", "u8")]),
    ("read", [("rid", "u32"), ("id", "u32")]),
    ("value", [("rid", "u32"), ("id", "u32"), ("version", "u64"), ("data", "bytes")]),
    ("write", [("rid", "u32"), ("id", "u32"), ("offset", "u32"), ("expect", ("opt", "u64")), ("data", "bytes")]),
    ("conflict", [("rid", "u32"), ("version", "u64")]),
    ("update", [("id", "u32"), ("version", "u64"), ("data", "bytes")]),
    ("stale", [("id", "u32"), ("version", "u64")]),
    ("invalidated", [("id", "u32"), ("code", "string")]),
    ("resync", [("rid", "u32"), ("key", "string"), ("id", "u32"), ("counts", ("fixed", "u32", 3)), ("version", "u64")]),
    ("resyncDone", [("rid", "u32")]),
    ("config", [("rid", "u32"), ("id", "u32"), ("op", "u8"), ("json", "string")]),
    ("list", [("rid", "u32"), ("pattern", "string")]),
    ("listing", [("rid", "u32"), ("keys", ("array", ("struct", _LISTED_KEY)))]),
    ("stats", [("rid", "u32")]),
    ("statsReply", [("rid", "u32"), ("json", "string")]),
    ("peek", [("rid", "u32"), ("key", "string")]),
    ("publish", [("rid", "u32"), ("topic", "string"), ("records", ("array", RECORD))]),
    ("published", [("rid", "u32"), ("seq", "u64"), ("time", "f64")]),
    ("subscribe", [("rid", "u32"), ("sid", "u32"), ("pattern", "string"), ("init", "u8"), ("fromSeq", "u64"), ("iter", "u8"), ("credit", "u32"), ("resume", ("array", ("struct", [("topic", "string"), ("seq", "u64")])))]),
    ("message", [("sid", "u32"), ("topic", "string"), ("seq", "u64"), ("time", "f64"), ("publisher", "string"), ("records", ("array", RECORD))]),
    ("gap", [("sid", "u32"), ("topic", "string"), ("first", "u64"), ("last", "u64")]),
    ("credit", [("sid", "u32"), ("n", "u32")]),
    ("unsubscribe", [("sid", "u32")]),
    ("topics", [("rid", "u32"), ("pattern", "string")]),
    ("topicList", [("rid", "u32"), ("topics", ("array", ("struct", _LISTED_TOPIC)))]),
    ("topicConfig", [("rid", "u32"), ("topic", "string"), ("maxBytes", "u32"), ("maxCount", "u32"), ("persist", "bool")]),
    ("serve", [("rid", "u32"), ("topic", "string"), ("host", "string"), ("direct", "string")]),
    ("unserve", [("topic", "string")]),
    ("request", [("rid", "u32"), ("topic", "string"), ("kind", "u8"), ("timeoutMs", "u32"), ("credit", "u32"), ("headers", HEADERS), ("payload", "bytes")]),
    ("call", [("cid", "u32"), ("topic", "string"), ("kind", "u8"), ("timeoutMs", "u32"), ("credit", "u32"), ("caller", "string"), ("headers", HEADERS), ("payload", "bytes")]),
    ("chunk", [("side", "u8"), ("id", "u32"), ("payload", "bytes")]),
    ("flow", [("side", "u8"), ("id", "u32"), ("n", "u32")]),
    ("end", [("side", "u8"), ("id", "u32"), ("status", "u8"), ("code", "string"), ("message", "string"), ("payload", "bytes")]),
    ("deadman", [("rid", "u32"), ("name", "string"), ("op", "u8")]),
    ("deadmanState", [("rid", "u32"), ("taken", "bool"), ("holder", "string"), ("mine", "bool"), ("epoch", "u64")]),
    ("routes", [("rid", "u32"), ("topic", "string")]),
    ("routeList", [("rid", "u32"), ("topic", "string"), ("routes", ("array", ("struct", [("server", "string"), ("host", "string"), ("url", "string")])))]),
    ("info", [("rid", "u32"), ("key", "string")]),
    ("keyInfo", [("rid", "u32"), ("state", "u8"), ("kind", "u8"), ("size", "u32"), ("version", "u64"), ("refcount", "u32"), ("persistent", "bool")]),
    ("publishFlow", [("topic", "string"), ("held", "bool")]),
    ("monitor", [("rid", "u32"), ("pattern", "string")]),
    ("monitorReply", [("rid", "u32"), ("json", "string")]),
    ("topicsPage", [("rid", "u32"), ("pattern", "string"), ("after", "string"), ("maxBytes", "u32")]),
    ("topicPage", [("rid", "u32"), ("topics", ("array", ("struct", _LISTED_TOPIC))), ("more", "bool")]),
    ("listPage", [("rid", "u32"), ("pattern", "string"), ("after", "string"), ("maxBytes", "u32")]),
    ("listingPage", [("rid", "u32"), ("keys", ("array", ("struct", _LISTED_KEY))), ("more", "bool")]),
]
INDEX = {name: i for i, (name, _) in enumerate(MESSAGES)}


def encode(name: str, body: dict) -> bytes:
    """A data frame's payload: u16 LE message index, then the body."""
    out = bytearray(struct.pack("<H", INDEX[name]))
    encode_value(("struct", MESSAGES[INDEX[name]][1]), body, out)
    return bytes(out)


def encode_publish(rid: int, topic: bytes, records: list[bytes]) -> bytes:
    """`publish` with records already encoded by `encode_record` (the generic codec's bytes, faster)."""
    out = bytearray(b"\x17\x00")
    out += struct.pack("<I", rid)
    _leb(len(topic), out)
    out += topic
    _leb(len(records), out)
    for r in records:
        out += r
    return bytes(out)


def encode_record(payload: bytes, headers: list[dict[str, str]] | None = None) -> bytes:
    """One `record` (headers, payload) as `publish` carries it."""
    out = bytearray()
    if headers:
        encode_value(HEADERS, headers, out)
    else:
        out.append(0)
    _leb(len(payload), out)
    out += payload
    return bytes(out)


_MESSAGE = 26
_U64_F64 = struct.Struct("<Qd")


def _decode_message(payload: bytes) -> dict:
    """`message` (the frame a subscriber gets most), decoded without the generic walk; same result."""
    r = Reader(payload, 2)
    (sid,) = struct.unpack_from("<I", payload, 2)
    r.at = 6
    topic = r.value("string")
    r.need(16)
    seq, time = _U64_F64.unpack_from(payload, r.at)
    r.at += 16
    publisher = r.value("string")
    n = r.leb()
    if n > len(payload) - r.at:
        raise EzipcError("EZIPC_DECODE", f"{n} elements cannot fit")
    records = []
    for _ in range(n):
        r.need(1)
        if payload[r.at] == 0:
            r.at += 1
            headers: list = []
        else:
            headers = r.value(HEADERS)
        size = r.leb()
        r.need(size)
        records.append({"headers": headers, "payload": payload[r.at : r.at + size]})
        r.at += size
    if r.at != len(payload):
        raise EzipcError("EZIPC_DECODE", f"{len(payload) - r.at} trailing bytes after message")
    return {"sid": sid, "topic": topic, "seq": seq, "time": time, "publisher": publisher, "records": records}


def decode(payload: bytes) -> tuple[str, dict]:
    """The message's name and body; EZIPC_UNKNOWN_MESSAGE / EZIPC_DECODE for what does not decode."""
    if len(payload) < 2:
        raise EzipcError("EZIPC_DECODE", "message shorter than its index")
    (index,) = struct.unpack_from("<H", payload, 0)
    if index == _MESSAGE and len(payload) >= 6:
        return "message", _decode_message(payload)
    if index >= len(MESSAGES):
        raise EzipcError("EZIPC_UNKNOWN_MESSAGE", f"message index {index}")
    name, fields = MESSAGES[index]
    r = Reader(payload, 2)
    body = r.value(("struct", fields))
    if r.at != len(payload):
        raise EzipcError("EZIPC_DECODE", f"{len(payload) - r.at} trailing bytes after {name}")
    return name, body
