"""Encrypted connections (docs/security.md) against a real secure hub: EZIPC_TEST_SECURE_URL and its public key
EZIPC_TEST_HUB_KEY (base64), which admits one client by the token "s3cret" and lets it only subscribe to py.>."""

import base64
import os
import unittest

import ezipc
from ezipc import EzipcError

URL = os.environ.get("EZIPC_TEST_SECURE_URL", "")
HUB_KEY = os.environ.get("EZIPC_TEST_HUB_KEY", "")


@unittest.skipUnless(URL and HUB_KEY, "EZIPC_TEST_SECURE_URL names no secure hub (run through npm test)")
class SecureTest(unittest.IsolatedAsyncioTestCase):
    async def connect(self, **secure):
        c = await ezipc.connect(URL, "py-secure", reconnect=False, secure=secure)
        self.addAsyncCleanup(c.close)
        return c

    async def test_pinned_key_ik_both_ciphers_and_permissions(self):
        for cipher in ("ChaChaPoly", "AESGCM"):
            with self.subTest(cipher=cipher):
                c = await self.connect(hub_key=HUB_KEY, token="s3cret", cipher=cipher)
                sub = await c.subscribe("py.secure.topic", init="oldest")
                self.assertGreater(sub.sid, 0)
                with self.assertRaises(EzipcError) as e:
                    await c.allocate("py.secure.key", 4, "poll")
                self.assertEqual(e.exception.code, "EZIPC_PERMISSION_DENIED")
                with self.assertRaises(EzipcError) as e:
                    await c.publish("py.secure.topic", "x")
                self.assertEqual(e.exception.code, "EZIPC_PERMISSION_DENIED")
                # a large frame crosses several records
                with self.assertRaises(EzipcError) as e:
                    await c.publish("py.secure.topic", b"x" * 200_000)
                self.assertEqual(e.exception.code, "EZIPC_PERMISSION_DENIED")

    async def test_xx_with_a_checked_key(self):
        seen = []

        def verify(key: bytes):
            seen.append(key)
            return True if base64.b64encode(key).decode() == HUB_KEY else "not the hub we know"

        c = await self.connect(verify_hub_key=verify, token="s3cret")
        self.assertEqual(len(seen), 1)
        self.assertTrue(c.label.startswith("py-secure"))
        with self.assertRaises(EzipcError) as e:
            await self.connect(verify_hub_key=lambda key: "unknown host", token="s3cret")
        self.assertEqual(e.exception.code, "EZIPC_AUTH")

    async def test_refusals_are_coded(self):
        cases = [
            ({"hub_key": HUB_KEY, "token": "wrong"}, "EZIPC_AUTH"),
            ({"hub_key": base64.b64encode(b"\x09" * 32).decode(), "token": "s3cret"}, "EZIPC_AUTH"),
        ]
        for secure, code in cases:
            with self.subTest(secure=list(secure)):
                with self.assertRaises(EzipcError) as e:
                    await ezipc.connect(URL, "py-bad", reconnect=False, secure=secure)
                self.assertEqual(e.exception.code, code)
        # a plain client is told, in plain, that the hub wants encryption
        with self.assertRaises(EzipcError) as e:
            await ezipc.connect(URL, "py-plain", reconnect=False)
        self.assertEqual(e.exception.code, "EZIPC_AUTH")


if __name__ == "__main__":
    unittest.main()
