"""Frames (docs/protocol.md, "Framing" and "Control frames").

A frame is a 4-byte big-endian word W and a body: W < 2**31 is a data frame of W bytes; W >= 2**31 a
control frame of W - 2**31 bytes (1..1024: a type byte and its argument). The decoder is a pure state
machine: feed it bytes, get frames out, in order, whatever the chunking.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from .errors import EzipcError

CONTROL_BIT = 0x8000_0000
PING = 0x01
PONG = 0x02
CLOSE = 0x03
MAX_CONTROL = 1024
DEFAULT_MAX_FRAME = 16 * 1024 * 1024
# Bytes a `publish` or `request` frame leaves free under the frame limit: the hub forwards what it carries
# with fields of its own added (docs/protocol.md, "Frame sizes").
FORWARD_RESERVE = 1024
FORWARD_LIMIT = DEFAULT_MAX_FRAME - FORWARD_RESERVE


def check_frame(name: str, size: int) -> None:
    """Raises EZIPC_MESSAGE_TOO_LARGE for a frame the hub would refuse or could not forward; nothing is sent."""
    limit = FORWARD_LIMIT if name in ("publish", "request") else DEFAULT_MAX_FRAME
    if size > limit:
        raise EzipcError("EZIPC_MESSAGE_TOO_LARGE", f"{name}: a frame of {size} bytes is over the {limit} it may take; nothing was sent")


def data_frame(payload: bytes) -> bytes:
    """The bytes of one data frame."""
    return struct.pack(">I", len(payload)) + payload


def control_frame(kind: int, argument: bytes = b"") -> bytes:
    """The bytes of one control frame (PING, PONG, CLOSE)."""
    body = bytes([kind]) + argument
    return struct.pack(">I", CONTROL_BIT | len(body)) + body


@dataclass
class Control:
    kind: int
    argument: bytes


class FrameDecoder:
    """Turns a byte stream into data frames (bytes) and control frames (Control)."""

    def __init__(self, max_frame_bytes: int = DEFAULT_MAX_FRAME):
        self.max_frame_bytes = max_frame_bytes
        self._buf = bytearray()

    def feed(self, chunk: bytes) -> list[bytes | Control]:
        buf = self._buf
        buf += chunk
        out: list[bytes | Control] = []
        at, end = 0, len(buf)
        unpack = struct.unpack_from
        while end - at >= 4:
            (word,) = unpack(">I", buf, at)
            if word & CONTROL_BIT:
                size = word - CONTROL_BIT
                if size < 1 or size > MAX_CONTROL:
                    raise EzipcError("EZIPC_PROTOCOL", f"control frame of {size} bytes")
            else:
                size = word
                if size > self.max_frame_bytes:
                    raise EzipcError("EZIPC_FRAME_TOO_LARGE", f"frame of {size} bytes")
            if end - at < 4 + size:
                break
            body = bytes(buf[at + 4 : at + 4 + size])
            at += 4 + size
            if word & CONTROL_BIT:
                if body[0] not in (PING, PONG, CLOSE):
                    raise EzipcError("EZIPC_PROTOCOL", f"unknown control frame type {body[0]}")
                out.append(Control(body[0], body[1:]))
            else:
                out.append(body)
        if at:
            del buf[:at]  # once per chunk, not once per frame
        return out
