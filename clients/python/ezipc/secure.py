"""The secure channel under the ezipc frames (docs/security.md, "Wire format"): a Noise handshake (IK when the
hub's key is pinned, XX otherwise), the hub's verdict, then records `u16 BE length · ciphertext` of at most
65,519 plaintext bytes each, rekeyed after every 2^20 records per direction."""

from __future__ import annotations

import asyncio
import base64
import json
import struct
from typing import Callable

from .errors import EzipcError

PROLOGUE = b"ezipc-noise/1"
MAX_PLAINTEXT = 65519
REKEY_INTERVAL = 2**20
_process_key = None


def _noise():
    try:
        from . import noise
    except ImportError as e:
        raise EzipcError("EZIPC_SECURE_UNAVAILABLE", f"encrypted connections need the cryptography package (Debian: python3-cryptography): {e}") from None
    return noise


def _key(k: bytes | str) -> bytes:
    return base64.b64decode(k) if isinstance(k, str) else bytes(k)


class SecureStream:
    """Records over a raw stream: `read()` returns the next plaintext, `write()` encrypts."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, send, recv):
        self.reader, self.writer = reader, writer
        self.send_cs, self.recv_cs = send, recv
        self.sent = 0
        self.received = 0
        self.hub_key = b""

    async def read_message(self) -> bytes:
        head = await self.reader.readexactly(2)
        (n,) = struct.unpack(">H", head)
        return await self.reader.readexactly(n)

    async def read(self) -> bytes:
        try:
            record = await self.read_message()
        except asyncio.IncompleteReadError:
            return b""
        try:
            plain = self.recv_cs.decrypt(b"", record)
        except Exception:
            raise EzipcError("EZIPC_DECRYPT", "a record failed authentication") from None
        self.received += 1
        if self.received % REKEY_INTERVAL == 0:
            self.recv_cs.rekey()
        return plain

    def write(self, data: bytes) -> None:
        for at in range(0, len(data), MAX_PLAINTEXT):
            c = self.send_cs.encrypt(b"", data[at : at + MAX_PLAINTEXT])
            self.writer.write(struct.pack(">H", len(c)) + c)
            self.sent += 1
            if self.sent % REKEY_INTERVAL == 0:
                self.send_cs.rekey()


async def handshake(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, *, hub_key: bytes | str | None = None, verify_hub_key: Callable[[bytes], object] | None = None, static_key=None, token: str | None = None, cipher: str = "ChaChaPoly") -> SecureStream:
    """The initiator's side; raises EZIPC_AUTH with the hub's reason when it refuses."""
    global _process_key
    noise = _noise()
    if hub_key is None and verify_hub_key is None:
        raise TypeError("a secure connection needs hub_key (pinned) or verify_hub_key (known hosts)")
    ik = hub_key is not None
    byte = (0x10 if cipher == "AESGCM" else 0x00) | (0x02 if ik else 0x01)
    name = f"Noise_{'IK' if ik else 'XX'}_25519_{cipher}_SHA256"
    if static_key is None:
        _process_key = _process_key or noise.KeyPair.generate()
        static_key = _process_key
    elif isinstance(static_key, (bytes, str)):
        static_key = noise.KeyPair(_key(static_key))
    hs = noise.HandshakeState(name, True, PROLOGUE + bytes([byte]), s=static_key, rs=_key(hub_key) if ik else None)
    credentials = json.dumps({} if token is None else {"token": token}).encode()
    m1, _ = hs.write_message(credentials if ik else b"")
    writer.write(struct.pack(">H", 1 + len(m1)) + bytes([byte]) + m1)
    stream = SecureStream(reader, writer, None, None)

    async def message() -> bytes:
        try:
            return await stream.read_message()
        except asyncio.IncompleteReadError:
            raise EzipcError("EZIPC_AUTH", "the hub closed the connection during the handshake") from None

    m2 = await message()
    if m2 == b"":
        reason = (await message()).decode("utf-8", "replace")
        raise EzipcError("EZIPC_AUTH", reason)
    try:
        _, split = hs.read_message(m2)
    except Exception:
        raise EzipcError("EZIPC_AUTH", "the hub's handshake message failed authentication (not the pinned key?)") from None
    if not ik:
        verdict = verify_hub_key(hs.rs)
        if verdict is not True:
            raise EzipcError("EZIPC_AUTH", f"the hub's key was refused: {verdict}")
        m3, split = hs.write_message(credentials)
        writer.write(struct.pack(">H", len(m3)) + m3)
    stream.send_cs, stream.recv_cs = split
    stream.hub_key = hs.rs
    verdict = json.loads(await stream.read())
    if not verdict.get("ok"):
        raise EzipcError("EZIPC_AUTH", verdict.get("reason", "refused by the hub"))
    return stream
