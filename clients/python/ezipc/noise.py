"""Noise (revision 34) for the two handshakes ezipc uses, XX and IK, with X25519, ChaChaPoly or AESGCM, and
SHA256 (docs/security.md). Needs the `cryptography` package (Debian: python3-cryptography); importing this
module without it raises ImportError, which the client turns into a clear EZIPC_SECURE_UNAVAILABLE.
"""

from __future__ import annotations

import hashlib
import hmac
import struct

from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM, ChaCha20Poly1305
from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat, PublicFormat

DHLEN = 32
HASHLEN = 32
MAX_NONCE = 2**64 - 1


class KeyPair:
    def __init__(self, private: bytes):
        self.private = private
        key = X25519PrivateKey.from_private_bytes(private)
        self.public = key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)

    @staticmethod
    def generate() -> KeyPair:
        k = X25519PrivateKey.generate()
        return KeyPair(k.private_bytes(Encoding.Raw, PrivateFormat.Raw, NoEncryption()))


def dh(kp: KeyPair, public: bytes) -> bytes:
    return X25519PrivateKey.from_private_bytes(kp.private).exchange(X25519PublicKey.from_public_bytes(public))


def _hmac(key: bytes, data: bytes) -> bytes:
    return hmac.new(key, data, hashlib.sha256).digest()


def hkdf(ck: bytes, ikm: bytes, n: int) -> list[bytes]:
    temp = _hmac(ck, ikm)
    out1 = _hmac(temp, b"\x01")
    out2 = _hmac(temp, out1 + b"\x02")
    if n == 2:
        return [out1, out2]
    return [out1, out2, _hmac(temp, out2 + b"\x03")]


class CipherState:
    def __init__(self, cipher: str):
        self.cipher = cipher
        self.k: bytes | None = None
        self.n = 0

    def _nonce(self, n: int) -> bytes:
        if self.cipher == "ChaChaPoly":
            return b"\x00" * 4 + struct.pack("<Q", n)
        return b"\x00" * 4 + struct.pack(">Q", n)

    def _aead(self, k: bytes):
        return ChaCha20Poly1305(k) if self.cipher == "ChaChaPoly" else AESGCM(k)

    def init(self, k: bytes) -> None:
        self.k, self.n = k, 0

    def encrypt(self, ad: bytes, plaintext: bytes) -> bytes:
        if self.k is None:
            return plaintext
        if self.n >= MAX_NONCE:
            raise ValueError("nonce exhausted")
        c = self._aead(self.k).encrypt(self._nonce(self.n), plaintext, ad)
        self.n += 1
        return c

    def decrypt(self, ad: bytes, ciphertext: bytes) -> bytes:
        if self.k is None:
            return ciphertext
        p = self._aead(self.k).decrypt(self._nonce(self.n), ciphertext, ad)
        self.n += 1
        return p

    def rekey(self) -> None:
        assert self.k is not None
        self.k = self._aead(self.k).encrypt(self._nonce(MAX_NONCE), b"\x00" * 32, b"")[:32]


class SymmetricState:
    def __init__(self, protocol_name: str):
        name = protocol_name.encode()
        self.h = name + b"\x00" * (HASHLEN - len(name)) if len(name) <= HASHLEN else hashlib.sha256(name).digest()
        self.ck = self.h
        self.cs = CipherState(protocol_name.split("_")[3])

    def mix_key(self, ikm: bytes) -> None:
        self.ck, temp_k = hkdf(self.ck, ikm, 2)
        self.cs.init(temp_k[:32])

    def mix_hash(self, data: bytes) -> None:
        self.h = hashlib.sha256(self.h + data).digest()

    def encrypt_and_hash(self, plaintext: bytes) -> bytes:
        c = self.cs.encrypt(self.h, plaintext)
        self.mix_hash(c)
        return c

    def decrypt_and_hash(self, ciphertext: bytes) -> bytes:
        p = self.cs.decrypt(self.h, ciphertext)
        self.mix_hash(ciphertext)
        return p

    def split(self) -> tuple[CipherState, CipherState]:
        k1, k2 = hkdf(self.ck, b"", 2)
        c1, c2 = CipherState(self.cs.cipher), CipherState(self.cs.cipher)
        c1.init(k1[:32])
        c2.init(k2[:32])
        return c1, c2


PATTERNS = {
    "XX": ([], [["e"], ["e", "ee", "s", "es"], ["s", "se"]]),
    "IK": (["<-s"], [["e", "es", "s", "ss"], ["e", "ee", "se"]]),
}


class HandshakeState:
    """One side of a Noise handshake (XX or IK)."""

    def __init__(self, protocol_name: str, initiator: bool, prologue: bytes, s: KeyPair | None = None, e: KeyPair | None = None, rs: bytes | None = None):
        self.pattern = protocol_name.split("_")[1]
        self.initiator = initiator
        self.ss = SymmetricState(protocol_name)
        self.ss.mix_hash(prologue)
        self.s, self.e, self.rs, self.re = s, e, rs, None
        pre, self.messages = PATTERNS[self.pattern]
        for token in pre:  # IK: the responder's static key is known beforehand
            self.ss.mix_hash((self.rs if initiator else self.s.public) if token == "<-s" else b"")
        self.index = 0

    def _dh(self, token: str) -> bytes:
        mine, theirs = token[0], token[1]
        if not self.initiator:
            mine, theirs = theirs, mine
        kp = self.e if mine == "e" else self.s
        pub = self.re if theirs == "e" else self.rs
        return dh(kp, pub)

    def write_message(self, payload: bytes) -> tuple[bytes, tuple[CipherState, CipherState] | None]:
        out = bytearray()
        for token in self.messages[self.index]:
            if token == "e":
                if self.e is None:
                    self.e = KeyPair.generate()
                out += self.e.public
                self.ss.mix_hash(self.e.public)
            elif token == "s":
                out += self.ss.encrypt_and_hash(self.s.public)
            else:
                self.ss.mix_key(self._dh(token))
        out += self.ss.encrypt_and_hash(payload)
        self.index += 1
        return bytes(out), (self.ss.split() if self.index == len(self.messages) else None)

    def read_message(self, message: bytes) -> tuple[bytes, tuple[CipherState, CipherState] | None]:
        at = 0
        for token in self.messages[self.index]:
            if token == "e":
                self.re = message[at : at + DHLEN]
                at += DHLEN
                self.ss.mix_hash(self.re)
            elif token == "s":
                n = DHLEN + (16 if self.ss.cs.k is not None else 0)
                self.rs = self.ss.decrypt_and_hash(message[at : at + n])
                at += n
            else:
                self.ss.mix_key(self._dh(token))
        payload = self.ss.decrypt_and_hash(message[at:])
        self.index += 1
        return payload, (self.ss.split() if self.index == len(self.messages) else None)

    @property
    def handshake_hash(self) -> bytes:
        return self.ss.h
