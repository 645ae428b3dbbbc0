"""Reading shm:// topics with mmap alone (ezipc.shm), against topics a TypeScript publisher writes.

Needs EZIPC_TEST_SHM_NS (a namespace to use) and EZIPC_TEST_SHM_WRITER (the command of
test/fixtures/shm-topic-writer: URL TOPIC COUNT RING_BYTES), as test/clients/python.test.ts sets them.
"""

import os
import shlex
import struct
import subprocess
import unittest
import zlib

from ezipc.errors import EzipcError
from ezipc.shm import ShmGap, ShmMessage, ShmTopic, topic_path

NS = os.environ.get("EZIPC_TEST_SHM_NS", "")
WRITER = shlex.split(os.environ.get("EZIPC_TEST_SHM_WRITER", ""))


def check_payload(test: unittest.TestCase, m: ShmMessage) -> int:
    """The writer's message i: [u32 i][filler][u32 crc32]; returns i."""
    p = m.payload
    (i,) = struct.unpack_from("<I", p, 0)
    filler = (i * 13) % 700
    test.assertEqual(len(p), 4 + filler + 4, f"seq {m.seq}: length")
    test.assertEqual(p[4 : 4 + filler], bytes([i & 0xFF]) * filler, f"seq {m.seq}: filler")
    (crc,) = struct.unpack_from("<I", p, 4 + filler)
    test.assertEqual(crc, zlib.crc32(p[: 4 + filler]), f"seq {m.seq}: torn payload")
    test.assertEqual(m.headers, {"i": str(i)})
    test.assertTrue(m.publisher.startswith("pywriter"), m.publisher)
    test.assertEqual(m.seq, i + 1, "the writer's message i is seq i + 1")
    return i


def start_writer(topic: str, count: int, ring: int) -> subprocess.Popen:
    p = subprocess.Popen(WRITER + [f"shm:///{NS}", topic, str(count), str(ring)], stdout=subprocess.PIPE, text=True)
    line = p.stdout.readline()  # waits for the topic to exist
    if line.strip() != "ready":
        p.kill()
        raise AssertionError(f"the writer said {line!r}")
    return p


def finish(p: subprocess.Popen) -> None:
    out, _ = p.communicate(timeout=60)
    if p.returncode != 0 or "done" not in out:
        raise AssertionError(f"the writer ended with {p.returncode}: {out!r}")


@unittest.skipUnless(NS and WRITER, "run by test/clients/python.test.ts")
class ShmTopicTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        # 400 messages into an 8 KiB ring: it wraps many times (pads), and most are evicted.
        finish(start_writer("py.static", 400, 8192))

    def test_reads_every_kept_message_whole_with_a_gap_for_the_evicted(self):
        with ShmTopic.open("py.static", namespace=NS) as t:
            s = t.state()
            self.assertEqual(s.next_seq, 401)
            self.assertGreater(s.tail_seq, 1)
            items = t.read(t.cursor(1), 10_000)
            self.assertEqual(items[0], ShmGap(1, s.tail_seq - 1))
            msgs = items[1:]
            self.assertEqual([m.seq for m in msgs], list(range(s.tail_seq, 401)))
            for m in msgs:
                check_payload(self, m)
            self.assertEqual(t.read(t.cursor("oldest"), 10_000), msgs)
            newest = t.read(t.cursor("newest"))
            self.assertEqual([m.seq for m in newest], [400])
            self.assertEqual(t.read(t.cursor("next")), [])
            # A read a few at a time goes on where the last one stopped.
            c = t.cursor("oldest")
            seen = []
            while True:
                part = t.read(c, 7)
                if not part:
                    break
                self.assertLessEqual(len(part), 7)
                seen.extend(part)
            self.assertEqual(seen, msgs)

    def test_follows_a_writer_that_laps_it_without_a_torn_message(self):
        # A writer flat out into a 64 KiB ring while this process reads: it is lapped, so it misses messages,
        # reported as gaps; every message it returns is whole, in order, and everything is accounted for.
        count = 60_000
        p = start_writer("py.live", count, 64 * 1024)
        try:
            with ShmTopic.open("py.live", namespace=NS) as t:
                expected = 1
                read = gaps = 0
                for item in t.follow("oldest", poll_s=0.0005, idle_timeout=30):
                    if isinstance(item, ShmGap):
                        self.assertEqual(item.first, expected)
                        self.assertGreaterEqual(item.last, item.first)
                        expected = item.last + 1
                        gaps += 1
                    else:
                        self.assertEqual(item.seq, expected)
                        check_payload(self, item)
                        expected += 1
                        read += 1
                    if expected == count + 1:
                        break
                self.assertEqual(expected, count + 1, "it saw every seq, as a message or in a gap")
                self.assertGreater(read, 0)
        finally:
            finish(p)

    def test_refuses_files_that_are_not_topics(self):
        d = os.path.dirname(topic_path("x", NS))
        os.makedirs(d, exist_ok=True)
        with open(topic_path("py.static", NS), "rb") as f:
            good = f.read()
        cases = {
            "py.bad.short": good[:100],
            "py.bad.truncated": good[:-8],
            "py.bad.magic": b"XXXX" + good[4:],
            "py.bad.version": good[:4] + struct.pack("<I", 2) + good[8:],
            "py.bad.kind": good[:8] + struct.pack("<I", 5) + good[12:],
            "py.bad.ring": good[:16] + struct.pack("<I", 12345) + good[20:],
        }
        for name, data in cases.items():
            with open(topic_path(name, NS), "wb") as f:
                f.write(data)
        os.symlink(topic_path("py.static", NS), topic_path("py.bad.link", NS))
        os.mkfifo(topic_path("py.bad.fifo", NS))
        for name in [*cases, "py.bad.link", "py.bad.fifo"]:
            with self.subTest(name=name):
                with self.assertRaises(EzipcError) as e:
                    ShmTopic.open(name, namespace=NS)
                self.assertEqual(e.exception.code, "EZIPC_SHM_BAD_FILE")
        with self.assertRaises(FileNotFoundError):
            ShmTopic.open("py.nobody", namespace=NS)
        with self.assertRaises(EzipcError) as e:
            ShmTopic.open(".rpc.x", namespace=NS)
        self.assertEqual(e.exception.code, "EZIPC_INVALID_TOPIC")

    def test_a_corrupted_packet_is_refused_not_returned(self):
        # A copy of a good topic with one packet header overwritten: reading it fails with a coded error.
        with open(topic_path("py.static", NS), "rb") as f:
            data = bytearray(f.read())
        with ShmTopic.open("py.static", namespace=NS) as t:
            s = t.state()
        struct.pack_into("<I", data, 4096 + s.tail + 4, 9)  # the oldest packet's kind
        with open(topic_path("py.bad.packet", NS), "wb") as f:
            f.write(data)
        with ShmTopic.open("py.bad.packet", namespace=NS) as t:
            with self.assertRaises(EzipcError) as e:
                t.read(t.cursor("oldest"))
            self.assertEqual(e.exception.code, "EZIPC_SHM_BAD_FILE")
        # A state that names offsets past the ring (both blocks, whichever is current).
        for block in (0, 1):
            struct.pack_into("<I", data, 128 + block * 64 + 20, 1 << 30)  # tail
        with open(topic_path("py.bad.state", NS), "wb") as f:
            f.write(data)
        with ShmTopic.open("py.bad.state", namespace=NS) as t:
            for call in (t.state, lambda: t.read(t.cursor(1))):
                with self.assertRaises(EzipcError) as e:
                    call()
                self.assertEqual(e.exception.code, "EZIPC_SHM_BAD_FILE")


if __name__ == "__main__":
    unittest.main()
