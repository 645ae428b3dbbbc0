"""Reading an ezipc ``shm://`` topic with ``mmap`` alone (Linux), written from docs/shm.md ("File layout").

A topic of namespace ``N`` is a file under ``/dev/shm/ezipc.N/``: a 4096-byte header (with two state blocks,
committed like a seqlock) and a ring of packets. This module maps it read-only and follows the reading steps
of docs/shm.md: copy a packet, then read the state again; a packet that writers evicted meanwhile may be
torn, so it is dropped and reported as a gap. What it returns is always whole.

This reader takes no reader slot in the file: it never holds writers back (what they evict before it reads
it is a gap) and nobody wakes it (:meth:`ShmTopic.follow` polls). It only reads: publishing, subscriptions
that hold writers, RPC and shared variables are the TypeScript client's (``connect("shm://")``).

Loads here are ordered as the program reads them on x86-64 (loads are not reordered with other loads),
which the steps rely on: the packet's bytes before the state read after them.

    from ezipc.shm import ShmTopic
    with ShmTopic.open("sensors", namespace="default") as t:
        for item in t.follow("oldest", idle_timeout=1.0):
            print(item)          # ShmMessage(seq, time, publisher, headers, payload) or ShmGap(first, last)
"""

from __future__ import annotations

import mmap
import os
import stat
import struct
import time
from dataclasses import dataclass, field
from typing import Iterator, Union

from .errors import EzipcError

SHM_ROOT = "/dev/shm"
MAGIC = 0x48535A45  # the bytes "EZSH"
VERSION = 1
KIND_TOPIC = 1
HEADER_BYTES = 4096
MIN_RING_BYTES = 4096
MAX_RING_BYTES = 1024 * 1024 * 1024
# Header offsets.
H_GEN = 24
H_CLAIMS = 40
H_STATE = 128
STATE_BYTES = 64
# Packets.
PACKET_HEAD = 32
KIND_MESSAGE = 1
KIND_PAD = 2

_HEAD = struct.Struct("<IIIIII")  # magic, version, kind, header bytes, ring bytes, kept at most
_STATE = struct.Struct("<IIIIIIIII")  # next (lo, hi), tail seq (lo, hi), head, tail, used, last, recoveries
_PACKET = struct.Struct("<IIIIdII")  # size, kind, seq lo, seq hi, time, meta length, body length
_SIZE_KIND = struct.Struct("<II")
_I32 = struct.Struct("<i")
_U16 = struct.Struct("<H")


@dataclass(frozen=True)
class ShmState:
    """A topic's committed state (docs/shm.md, "State block")."""

    next_seq: int
    tail_seq: int
    head: int
    tail: int
    used: int
    last: int
    recoveries: int


@dataclass(frozen=True)
class ShmMessage:
    """One message: its seq, publish time (ms since the epoch), publisher, headers and payload (a copy)."""

    seq: int
    time: float
    publisher: str
    headers: dict = field(default_factory=dict)
    payload: bytes = b""

    def text(self) -> str:
        return self.payload.decode("utf-8")


@dataclass(frozen=True)
class ShmGap:
    """Messages ``first`` to ``last`` (inclusive) were evicted before this reader read them."""

    first: int
    last: int


@dataclass
class ShmCursor:
    """Where a reader is: the seq it reads next and that packet's ring offset (None: found on the next read)."""

    seq: int
    offset: int | None = None


def topic_path(topic: str, namespace: str = "default", root: str = SHM_ROOT) -> str:
    """The file of ``topic`` in ``namespace``: ``/dev/shm/ezipc.NAMESPACE/TOPIC`` with ``%`` and ``/`` escaped."""
    if not namespace or "/" in namespace or namespace in (".", ".."):
        raise EzipcError("EZIPC_INVALID_URL", f"{namespace!r} is not a namespace name")
    if not topic or topic.startswith("."):
        raise EzipcError("EZIPC_INVALID_TOPIC", f"{topic!r} is not a topic name")
    name = topic.replace("%", "%25").replace("/", "%2F")
    return os.path.join(root, f"ezipc.{namespace}", name)


def parse_meta(meta: bytes) -> tuple[str, dict]:
    """A packet's meta: u8 publisher length, publisher, u8 header count, per header u16 length + key, u16 + value."""
    try:
        plen = meta[0]
        publisher = meta[1 : 1 + plen].decode("utf-8")
        pos = 1 + plen
        count = meta[pos]
        pos += 1
        headers = {}
        for _ in range(count):
            (kl,) = _U16.unpack_from(meta, pos)
            key = meta[pos + 2 : pos + 2 + kl]
            pos += 2 + kl
            (vl,) = _U16.unpack_from(meta, pos)
            value = meta[pos + 2 : pos + 2 + vl]
            pos += 2 + vl
            if len(key) != kl or len(value) != vl:
                raise ValueError("short")
            headers[key.decode("utf-8")] = value.decode("utf-8")
        if pos != len(meta) or len(publisher.encode("utf-8")) != plen:
            raise ValueError("length")
        return publisher, headers
    except (IndexError, ValueError, struct.error) as err:
        raise EzipcError("EZIPC_SHM_BAD_FILE", "a message's meta bytes do not parse") from err


class ShmTopic:
    """A topic file mapped read-only. :meth:`open` it; :meth:`close` (or ``with``) unmaps it."""

    def __init__(self, path: str, mm: mmap.mmap, ring_bytes: int, max_count: int):
        self.path = path
        self.ring_bytes = ring_bytes
        self.max_count = max_count
        self._mm = mm

    @classmethod
    def open(cls, topic: str, namespace: str = "default", root: str = SHM_ROOT) -> "ShmTopic":
        """Maps ``topic`` of ``namespace``. Raises ``FileNotFoundError`` if nobody made it yet, and
        ``EzipcError("EZIPC_SHM_BAD_FILE")`` for a file that is not a valid topic (truncated, foreign, of
        another layout version or kind, a symbolic link, not a regular file)."""
        return cls.open_path(topic_path(topic, namespace, root))

    @classmethod
    def open_path(cls, path: str) -> "ShmTopic":
        """:meth:`open` by the file's path."""

        def bad(why: str) -> EzipcError:
            return EzipcError("EZIPC_SHM_BAD_FILE", f"{path}: {why}")

        try:
            fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
        except OSError as err:
            if err.errno == 40:  # ELOOP: a symbolic link, never followed
                raise bad("a symbolic link") from err
            raise
        try:
            st = os.fstat(fd)
            if not stat.S_ISREG(st.st_mode):
                raise bad("not a regular file")
            size = st.st_size
            if size < HEADER_BYTES:
                raise bad(f"{size} bytes, shorter than its {HEADER_BYTES}-byte header")
            head = os.pread(fd, 64, 0)
            magic, version, kind, header_bytes, ring_bytes, max_count = _HEAD.unpack_from(head, 0)
            if magic != MAGIC:
                raise bad("not an ezipc shared-memory file (bad magic)")
            if version != VERSION:
                raise bad(f"layout version {version}; this reader reads version {VERSION}")
            if kind != KIND_TOPIC:
                raise bad(f"kind {kind}, not a topic (1)")
            if header_bytes != HEADER_BYTES:
                raise bad("unexpected header size")
            if ring_bytes < MIN_RING_BYTES or ring_bytes > MAX_RING_BYTES or ring_bytes % 8:
                raise bad(f"ring of {ring_bytes} bytes")
            (claims,) = struct.unpack_from("<I", head, H_CLAIMS)
            if claims != 0:
                raise bad(f"{claims} claim entries in a topic")
            if size != HEADER_BYTES + ring_bytes:
                raise bad(f"{size} bytes, but its header says {HEADER_BYTES + ring_bytes} (truncated?)")
            mm = mmap.mmap(fd, size, flags=mmap.MAP_SHARED, prot=mmap.PROT_READ)
        finally:
            os.close(fd)
        return cls(path, mm, ring_bytes, max_count)

    def close(self) -> None:
        self._mm.close()

    def __enter__(self) -> "ShmTopic":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def state(self) -> ShmState:
        """The committed state: read G, read block G & 1, read G again; start over if G moved."""
        mm = self._mm
        for _ in range(100_000):
            (g,) = _I32.unpack_from(mm, H_GEN)
            v = _STATE.unpack_from(mm, H_STATE + (g & 1) * STATE_BYTES)
            (g2,) = _I32.unpack_from(mm, H_GEN)
            if g != g2:
                continue
            s = ShmState(v[0] + (v[1] << 32), v[2] + (v[3] << 32), v[4], v[5], v[6], v[7], v[8])
            R = self.ring_bytes
            if (
                s.tail_seq > s.next_seq
                or max(s.head, s.tail, s.last) >= R
                or s.used > R
                or (s.head | s.tail | s.last) % 8
                or (s.tail_seq == s.next_seq) != (s.used == 0)
            ):
                raise EzipcError("EZIPC_SHM_BAD_FILE", f"{self.path}: the ring's state is corrupted")
            return s
        raise bad_state(self.path)

    def cursor(self, init: Union[str, int] = "oldest") -> ShmCursor:
        """A cursor at the oldest message kept, the newest, the next one published, or at seq ``init``."""
        s = self.state()
        if init == "oldest":
            return ShmCursor(s.tail_seq, s.tail)
        if init == "newest":
            return ShmCursor(s.next_seq - 1, s.last) if s.next_seq > s.tail_seq else ShmCursor(s.next_seq, s.head)
        if init == "next":
            return ShmCursor(s.next_seq, s.head)
        if isinstance(init, int) and not isinstance(init, bool) and init >= 1:
            return ShmCursor(init, None)
        raise ValueError(f"init must be 'oldest', 'newest', 'next' or a seq >= 1, not {init!r}")

    def read(self, cursor: ShmCursor, max_messages: int = 1024) -> list:
        """Up to ``max_messages`` messages from ``cursor`` on (advancing it), with a :class:`ShmGap` before
        any that were evicted unread. Never waits: an empty list when there is nothing new."""
        out: list = []
        relocated = 0
        R = self.ring_bytes
        mm = self._mm
        for _ in range(1000):
            s = self.state()
            if cursor.seq < s.tail_seq:
                out.append(ShmGap(cursor.seq, s.tail_seq - 1))
                cursor.seq, cursor.offset = s.tail_seq, s.tail
            if cursor.seq >= s.next_seq:
                return out
            if cursor.offset is None:
                cursor.offset = self._locate(cursor.seq, s)
            seq, off = cursor.seq, cursor.offset
            copied = []  # (seq, time, meta, body)
            broken = False
            while seq < s.next_seq and len(copied) < max_messages:
                at = HEADER_BYTES + off
                size, kind = _SIZE_KIND.unpack_from(mm, at)
                if kind == KIND_PAD and size == R - off and off != 0:
                    off = 0  # a pad fills the rest of the ring (it may be 8 bytes): the packet is at offset 0
                    continue
                if off + PACKET_HEAD > R:
                    broken = True  # no room for a message here: overwritten while we read, or corrupted
                    break
                size, kind, lo, hi, t, ml, bl = _PACKET.unpack_from(mm, at)
                if (
                    kind != KIND_MESSAGE
                    or lo + (hi << 32) != seq
                    or size % 8
                    or size < PACKET_HEAD
                    or off + size > R
                    or PACKET_HEAD + ml + bl > size
                ):
                    broken = True  # overwritten while we read (the state says), or corrupted
                    break
                data = mm[at + PACKET_HEAD : at + PACKET_HEAD + ml + bl]
                copied.append((seq, t, data[:ml], data[ml:]))
                seq += 1
                off = 0 if off + size == R else off + size
            after = self.state()  # after the copies: what it evicted meanwhile may be torn
            if after.tail_seq <= cursor.seq:
                # Nothing copied was evicted: every copy is whole.
                if broken and not copied:
                    # Not evicted, yet not where the cursor says: a cursor placed at the head while the ring
                    # was caught up, whose message went to offset 0 behind a pad since overwritten. Try
                    # offset 0, then walk from the tail; still not there: the file is corrupted.
                    if relocated >= 2:
                        raise EzipcError("EZIPC_SHM_BAD_FILE", f"{self.path}: packet {seq} is corrupted")
                    cursor.offset = 0 if relocated == 0 and cursor.offset != 0 else self._locate(cursor.seq, after)
                    relocated += 1
                    continue
                out.extend(self._messages(copied))
                cursor.seq, cursor.offset = seq, off
                return out
            kept = [c for c in copied if c[0] >= after.tail_seq]
            if kept:
                out.append(ShmGap(cursor.seq, after.tail_seq - 1))
                out.extend(self._messages(kept))
                cursor.seq, cursor.offset = seq, off
                return out
            # Writers lapped us: go on from the newest (from the oldest we could lose the race for ever).
            if after.next_seq > after.tail_seq and after.next_seq - 1 > cursor.seq:
                out.append(ShmGap(cursor.seq, after.next_seq - 2))
                cursor.seq, cursor.offset = after.next_seq - 1, after.last
        raise EzipcError("EZIPC_SHM_BAD_FILE", f"{self.path}: could not read past the writers")

    def follow(
        self, init: Union[str, int] = "oldest", poll_s: float = 0.001, idle_timeout: float | None = None
    ) -> Iterator[Union[ShmMessage, ShmGap]]:
        """Messages and gaps from ``init`` on, as they come (polling every ``poll_s``); ends after
        ``idle_timeout`` seconds with nothing new (never, if None)."""
        cursor = self.cursor(init)
        idle_since = time.monotonic()
        while True:
            items = self.read(cursor)
            if items:
                idle_since = time.monotonic()
                yield from items
                continue
            if idle_timeout is not None and time.monotonic() - idle_since >= idle_timeout:
                return
            time.sleep(poll_s)

    def _messages(self, copied: list) -> list:
        out = []
        for seq, t, meta, body in copied:
            publisher, headers = parse_meta(meta)
            out.append(ShmMessage(seq, t, publisher, headers, body))
        return out

    def _locate(self, seq: int, s: ShmState) -> int:
        """The ring offset of message ``seq`` (kept): walk from the tail, kept if the tail did not move."""
        if seq == s.next_seq - 1:
            return s.last
        R = self.ring_bytes
        for _ in range(100):
            if seq < s.tail_seq:
                return s.tail  # evicted: the read reports the gap
            off, cur = s.tail, s.tail_seq
            for _ in range(R // 8):
                if cur >= seq:
                    break
                size, kind = _SIZE_KIND.unpack_from(self._mm, HEADER_BYTES + off)
                if size < 8 or size % 8 or off + size > R:
                    break
                if kind == KIND_MESSAGE:
                    cur += 1
                off = 0 if off + size == R else off + size
            now = self.state()
            if now.tail_seq == s.tail_seq and now.tail == s.tail:
                return off
            s = now
        return s.tail


def bad_state(path: str) -> EzipcError:
    return EzipcError("EZIPC_SHM_BAD_FILE", f"{path}: its state never held still (a writer that never stops?)")
