"""Frames and the schema codec, byte by byte, against docs/protocol.md's examples (no hub needed)."""

import unittest

from ezipc import EzipcError
from ezipc import schema
from ezipc.schema import decode, encode
from ezipc.wire import CLOSE, PING, Control, FrameDecoder, control_frame, data_frame


class FramingTest(unittest.TestCase):
    def test_examples_from_the_protocol_page(self):
        self.assertEqual(data_frame(b"hi").hex(" "), "00 00 00 02 68 69")
        self.assertEqual(control_frame(PING).hex(" "), "80 00 00 01 01")
        self.assertEqual(control_frame(CLOSE, b"bye").hex(" "), "80 00 00 04 03 62 79 65")

    def test_decoder_is_a_state_machine_fed_one_byte_at_a_time(self):
        stream = data_frame(b"hello") + control_frame(PING) + data_frame(b"") + data_frame(b"x" * 300)
        d = FrameDecoder()
        out = []
        for i in range(len(stream)):
            out += d.feed(stream[i : i + 1])
        self.assertEqual(out[0], b"hello")
        self.assertEqual(out[1], Control(PING, b""))
        self.assertEqual(out[2], b"")
        self.assertEqual(out[3], b"x" * 300)

    def test_oversized_and_bad_control_frames_are_refused(self):
        with self.assertRaises(EzipcError) as e:
            FrameDecoder(max_frame_bytes=10).feed(data_frame(b"x" * 11))
        self.assertEqual(e.exception.code, "EZIPC_FRAME_TOO_LARGE")
        with self.assertRaises(EzipcError) as e:
            FrameDecoder().feed(bytes.fromhex("80000001 09"))
        self.assertEqual(e.exception.code, "EZIPC_PROTOCOL")


class SchemaTest(unittest.TestCase):
    def test_watch_example(self):
        p = encode("watch", {"rid": 7, "key": "temp", "policy": 2})
        self.assertEqual(p.hex(" "), "05 00 07 00 00 00 04 74 65 6d 70 02")
        self.assertEqual(decode(p), ("watch", {"rid": 7, "key": "temp", "policy": 2}))

    def test_round_trip_of_nested_types(self):
        body = {
            "sid": 3,
            "topic": "a.b",
            "seq": 2**40,
            "time": 1.5,
            "publisher": "p#abc",
            "records": [{"headers": [{"key": "k", "value": "v"}], "payload": b"\x00\xff"}],
        }
        self.assertEqual(decode(encode("message", body)), ("message", body))
        opened = {"rid": 1, "id": 2, "kind": 0, "size": 4, "version": 9, "persistent": False, "created": True, "data": None}
        self.assertEqual(decode(encode("opened", opened))[1], opened)

    def test_bad_input_is_a_coded_error(self):
        good = encode("watch", {"rid": 7, "key": "temp", "policy": 2})
        for bad, code in [(good[:-1], "EZIPC_DECODE"), (good + b"\x00", "EZIPC_DECODE"), (b"\xff\x00", "EZIPC_UNKNOWN_MESSAGE"), (b"\x05", "EZIPC_DECODE")]:
            with self.assertRaises(EzipcError) as e:
                decode(bad)
            self.assertEqual(e.exception.code, code)

    def test_the_fast_paths_give_the_generic_codecs_bytes_and_values(self):
        headers = [{"key": "k", "value": "v\u00e9"}]
        records = [{"headers": [], "payload": b"\x00" * 64}, {"headers": headers, "payload": b""}]
        generic = schema.encode("publish", {"rid": 0, "topic": "a.b", "records": records})
        fast = schema.encode_publish(0, b"a.b", [schema.encode_record(r["payload"], r["headers"] or None) for r in records])
        self.assertEqual(fast, generic)
        body = {"sid": 7, "topic": "a.b", "seq": 2**60, "time": 1.25, "publisher": "p#abc", "records": records}
        frame = schema.encode("message", body)
        self.assertEqual(schema.decode(frame), ("message", body))
        # whatever is cut or added, the fast decoder refuses it as the generic one does
        for bad in (frame[:-1], frame + b"\x00", frame[:7]):
            with self.assertRaises(EzipcError) as e:
                schema.decode(bad)
            self.assertEqual(e.exception.code, "EZIPC_DECODE")


if __name__ == "__main__":
    unittest.main()
