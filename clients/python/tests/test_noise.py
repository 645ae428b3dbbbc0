"""The Noise handshakes against the cacophony test vectors (test/fixtures/noise/cacophony.txt): every XX and
IK vector with X25519, ChaChaPoly or AESGCM, and SHA256, byte for byte."""

import json
import os
import unittest

try:
    from ezipc.noise import HandshakeState, KeyPair

    HAVE_CRYPTO = True
except ImportError:  # without python3-cryptography: the secure client says so (tested in test_hub)
    HAVE_CRYPTO = False

VECTORS = os.path.join(os.path.dirname(__file__), "..", "..", "..", "test", "fixtures", "noise", "cacophony.txt")
WANTED = {f"Noise_{p}_25519_{c}_SHA256" for p in ("XX", "IK") for c in ("ChaChaPoly", "AESGCM")}


@unittest.skipUnless(HAVE_CRYPTO, "needs the cryptography package")
class NoiseVectorsTest(unittest.TestCase):
    def test_cacophony_vectors(self):
        with open(VECTORS) as f:
            vectors = [v for v in json.load(f)["vectors"] if v["protocol_name"] in WANTED and "init_psks" not in v]
        self.assertEqual(len(vectors), 4)
        for v in vectors:
            with self.subTest(v["protocol_name"]):
                kp = lambda k: KeyPair(bytes.fromhex(v[k])) if k in v else None
                init = HandshakeState(v["protocol_name"], True, bytes.fromhex(v["init_prologue"]), s=kp("init_static"), e=kp("init_ephemeral"), rs=bytes.fromhex(v["init_remote_static"]) if "init_remote_static" in v else None)
                resp = HandshakeState(v["protocol_name"], False, bytes.fromhex(v["resp_prologue"]), s=kp("resp_static"), e=kp("resp_ephemeral"))
                sides = [init, resp]
                split = None
                for i, m in enumerate(v["messages"]):
                    payload, ciphertext = bytes.fromhex(m["payload"]), bytes.fromhex(m["ciphertext"])
                    if split is None:
                        writer, reader = sides[i % 2], sides[(i + 1) % 2]
                        out, done = writer.write_message(payload)
                        self.assertEqual(out.hex(), ciphertext.hex(), f"message {i}")
                        got, _ = reader.read_message(out)
                        self.assertEqual(got, payload)
                        if done:
                            split = done
                            self.assertEqual(init.handshake_hash.hex(), v["handshake_hash"])
                    else:
                        # transport: initiator sends with the first cipher state, responder with the second
                        cs = split[0] if i % 2 == 0 else split[1]
                        # both sides share the split here: encrypt, then rewind the nonce to decrypt
                        c = cs.encrypt(b"", payload)
                        self.assertEqual(c.hex(), ciphertext.hex(), f"transport message {i}")


if __name__ == "__main__":
    unittest.main()
