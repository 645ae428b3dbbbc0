"""The Python client against a real hub: EZIPC_TEST_URLS names it (space-separated tcp:// and unix:// URLs;
test/clients/python.test.ts starts the hub and runs these). Every test runs on each URL."""

import asyncio
import os
import unittest

import ezipc
from ezipc import EzipcError

URLS = os.environ.get("EZIPC_TEST_URLS", "").split()
_n = 0


def unique(prefix: str) -> str:
    global _n
    _n += 1
    return f"{prefix}.{os.getpid()}.{_n}"


async def within(aw, seconds: float = 5.0):
    return await asyncio.wait_for(aw, seconds)


@unittest.skipUnless(URLS, "EZIPC_TEST_URLS names no hub (run through npm test)")
class HubTest(unittest.IsolatedAsyncioTestCase):
    async def clients(self, url: str, n: int = 2):
        cs = [await ezipc.connect(url, f"py{i}") for i in range(n)]
        for c in cs:
            self.addAsyncCleanup(c.close)
        return cs

    async def test_variables_under_every_policy(self):
        for url in URLS:
            with self.subTest(url=url):
                a, b = await self.clients(url)
                key = unique("py.var")
                self.assertIsNone(await b.watch(key, "poll"))
                w = await a.allocate(key, 4, "request")
                with self.assertRaises(EzipcError) as e:
                    await b.allocate(key, 4, "poll")
                self.assertEqual(e.exception.code, "EZIPC_KEY_EXISTS")
                poll = await b.watch(key, "poll")
                c, = await self.clients(url, 1)
                lazy = await c.watch(key, "lazy")
                changes = []
                lazy.on_change(lambda v, d: changes.append((v, d)))
                seen = poll.changes()
                first = asyncio.ensure_future(seen.__anext__())
                await asyncio.sleep(0)  # the iterator is listening
                self.assertEqual(await w.write(b"\x2a", 0), 2)
                self.assertEqual(w.version, 2)  # its own write: known without a read (request keeps no copy)
                # poll: pushed; the copy is there once the hub's update arrived
                version, data = await within(first)
                self.assertEqual((version, data), (2, b"\x2a\x00\x00\x00"))
                self.assertEqual(poll.value(), b"\x2a\x00\x00\x00")
                # lazy: one notice, then the read fetches
                await within(_until(lambda: changes))
                self.assertEqual(changes[0], (2, None))
                self.assertEqual(await lazy.read_versioned(), (b"\x2a\x00\x00\x00", 2))
                # request: asks the hub
                self.assertEqual(await w.read(), b"\x2a\x00\x00\x00")
                # compare-and-write
                self.assertEqual(await lazy.compare_and_write(1, b"\x01"), (False, 2))
                self.assertEqual(await lazy.compare_and_write(2, b"\x01"), (True, 3))
                self.assertEqual(await w.compare_and_write(2, b"\x02"), (False, 3))
                self.assertEqual(w.version, 3)  # the version a failed compare-and-write met
                with self.assertRaises(ValueError):
                    await w.write(b"12345")
                info = await a.info(key)
                self.assertEqual((info["state"], info["refcount"], info["version"]), ("live", 3, 3))
                for p in (w, poll, lazy):
                    p.dispose()
                await within(_until_async(lambda: _state(a, key, "grace")))

    async def test_three_clients_count_with_compare_and_write(self):
        for url in URLS:
            with self.subTest(url=url):
                cs = await self.clients(url, 3)
                key = unique("py.counter")
                ptrs = [await cs[0].allocate(key, 4, "poll")]
                ptrs.append(await cs[1].watch(key, "lazy"))
                ptrs.append(await cs[2].watch(key, "request"))

                async def inc(p, n):
                    for _ in range(n):
                        while True:
                            data, version = await p.read_versioned()
                            ok, _ = await p.compare_and_write(version, (int.from_bytes(data, "little") + 1).to_bytes(4, "little"))
                            if ok:
                                break

                await within(asyncio.gather(*(inc(p, 20) for p in ptrs)), 20)
                data, version = await cs[0].peek(key)
                self.assertEqual((int.from_bytes(data, "little"), version), (60, 61))

    async def test_config_variables(self):
        for url in URLS:
            with self.subTest(url=url):
                a, b = await self.clients(url)
                key = unique("py.cfg")
                cfg = await a.config(key, persistent=False)
                self.assertIsNone(await cfg.read())
                self.assertTrue(await cfg.write_if_empty({"speed": 1, "limits": {"max": 5}}))
                self.assertFalse(await cfg.write_if_empty({"other": 1}))
                await cfg.merge_patch({"limits": {"max": 9}, "name": "r2"})
                other = await b.config(key, persistent=False)
                self.assertEqual(await other.read(), {"speed": 1, "limits": {"max": 9}, "name": "r2"})

    async def test_pubsub_init_and_iter(self):
        for url in URLS:
            with self.subTest(url=url):
                a, b = await self.clients(url)
                topic = unique("py.topic")
                for i in range(3):
                    await a.publish(topic, f"m{i}")
                expect = {"oldest": ["m0", "m1", "m2", "n0"], "mostRecent": ["m2", "n0"], "awaitNew": ["n0"], 2: ["m1", "m2", "n0"]}
                subs = {k: await b.subscribe(topic, init=k) for k in expect}
                seq, _ = await a.publish(topic, "n0", {"h": "v"})
                self.assertEqual(seq, 4)
                for k, want in expect.items():
                    got = [(await within(subs[k].__anext__())).text() for _ in want]
                    self.assertEqual(got, want, k)
                # newest: one at a time, the newest each time it asks
                newest = await b.subscribe(topic, init="awaitNew", iter="newest")
                for i in range(5):
                    a.publish_and_forget(topic, f"x{i}")
                await a.publish(topic, "last")
                # the first delivery is the newest message when it is made: one of the fire-and-forget ones
                # (they travel together, in one frame), or "last"; the next is "last"
                m = await within(newest.__anext__())
                self.assertIn(m.text(), ["x0", "x1", "x2", "x3", "x4", "last"])
                if m.text() != "last":
                    m2 = await within(newest.__anext__())
                    self.assertEqual(m2.text(), "last")
                # headers and publisher
                first = subs["oldest"]
                self.assertTrue(first.sid > 0)
                handled = []
                await b.subscribe(topic, init="oldest", handler=lambda msg: handled.append((msg.seq, msg.text())))
                await within(_until(lambda: len(handled) >= 10))
                self.assertEqual(handled[0], (1, "m0"))
                self.assertEqual([s for s, _ in handled], list(range(1, len(handled) + 1)))

    async def test_many_messages_with_credit(self):
        for url in URLS:
            with self.subTest(url=url):
                a, b = await self.clients(url)
                topic = unique("py.many")
                sub = await b.subscribe(topic, prefetch=64)
                n = 2000
                for i in range(n):
                    a.publish_and_forget(topic, str(i))
                await a.publish(topic, "end")
                got = []
                async for m in sub:
                    if m.text() == "end":
                        break
                    got.append(int(m.text()))
                self.assertEqual(got, list(range(n)))

    async def test_headers_over_the_limits(self):
        for url in URLS:
            with self.subTest(url=url):
                a, b = await self.clients(url)
                topic = unique("py.headers")
                sub = await b.subscribe(topic)
                a.publish_and_forget(topic, "a")
                for headers in ({"big": "x" * 4097}, {"big": "\u00e9" * 2049}, {"k" * 257: "v"}, {f"h{i}": "v" for i in range(65)}, {"n": 1}):
                    # (the bad header used to go out in the batch: the hub refused it and closed the connection)
                    with self.assertRaises(EzipcError) as e:
                        a.publish_and_forget(topic, "bad", headers=headers)
                    self.assertEqual(e.exception.code, "EZIPC_ENCODE")
                    with self.assertRaises(EzipcError) as e:
                        await a.publish(topic, "bad", headers=headers)
                    self.assertEqual(e.exception.code, "EZIPC_ENCODE")
                a.publish_and_forget(topic, "b", headers={"ok": "x" * 4096})
                await a.publish(topic, "c")
                got = []
                async for m in sub:
                    got.append(m.text())
                    if len(got) == 3:
                        break
                self.assertEqual(got, ["a", "b", "c"])

    async def test_rpc(self):
        for url in URLS:
            with self.subTest(url=url):
                a, b = await self.clients(url)
                topic = unique("py.rpc")

                async def handler(req):
                    if req.text() == "fail":
                        raise EzipcError("EZIPC_BAD_REQUEST", "no")
                    if req.text() == "slow":
                        await asyncio.sleep(1)
                    return req.payload[::-1]

                await b.serve(topic, handler)
                self.assertEqual((await a.request(topic, "abc")).text(), "cba")
                with self.assertRaises(EzipcError) as e:
                    await a.request(topic, "fail")
                self.assertEqual(e.exception.code, "EZIPC_BAD_REQUEST")
                with self.assertRaises(EzipcError) as e:
                    await a.request(topic, "slow", timeout_ms=50)
                self.assertEqual(e.exception.code, "EZIPC_TIMEOUT")
                with self.assertRaises(EzipcError) as e:
                    await a.request(unique("py.nobody"), "x")
                self.assertEqual(e.exception.code, "EZIPC_NO_RESPONDERS")
                # a server that goes: its callers learn it
                await b.serve(topic + ".hang", lambda req: asyncio.sleep(30))
                call = asyncio.ensure_future(a.request(topic + ".hang", "x"))
                await asyncio.sleep(0.05)
                await b.close()
                with self.assertRaises(EzipcError) as e:
                    await within(call)
                self.assertEqual(e.exception.code, "EZIPC_SERVER_GONE")

    async def test_streaming_requests(self):
        for url in URLS:
            with self.subTest(url=url):
                a, b = await self.clients(url)
                topic = unique("py.stream")
                stopped = asyncio.Event()

                async def handler(req):
                    if req.text() == "fail":
                        raise EzipcError("EZIPC_BAD_REQUEST", "no stream for you")
                    if req.text() == "sync":
                        return (f"s{i}" for i in range(5))
                    if req.text() == "one":
                        return "just one"  # one value, not chunks: the stream's only chunk

                    async def chunks():
                        try:
                            for i in range(int(req.text())):
                                yield f"c{i}"
                                if req.text() == "1000":
                                    await asyncio.sleep(0.01)
                        finally:
                            stopped.set()

                    return chunks()

                await b.serve(topic, handler)
                # 40 chunks through a window of 4: the caller's credit paces the server
                got = [c.decode() async for c in await a.request_stream(topic, "40", prefetch=4)]
                self.assertEqual(got, [f"c{i}" for i in range(40)])
                self.assertEqual([c.decode() async for c in await a.request_stream(topic, "sync")], [f"s{i}" for i in range(5)])
                self.assertEqual([c async for c in await a.request_stream(topic, "one")], [b"just one"])
                with self.assertRaises(EzipcError) as e:
                    [c async for c in await a.request_stream(topic, "fail")]
                self.assertEqual(e.exception.code, "EZIPC_BAD_REQUEST")
                # a plain request to a stream is refused; a stream of nobody is EZIPC_NO_RESPONDERS
                with self.assertRaises(EzipcError) as e:
                    await a.request(topic, "3")
                self.assertEqual(e.exception.code, "EZIPC_BAD_REQUEST")
                with self.assertRaises(EzipcError) as e:
                    [c async for c in await a.request_stream(unique("py.nobody"), "x")]
                self.assertEqual(e.exception.code, "EZIPC_NO_RESPONDERS")
                # cancel: the server's generator stops
                s = await a.request_stream(topic, "1000", prefetch=2)
                self.assertEqual(await within(s.__anext__()), b"c0")
                s.cancel()
                await within(stopped.wait())
                with self.assertRaises(EzipcError) as e:
                    await s.__anext__()
                self.assertEqual(e.exception.code, "EZIPC_CANCELLED")
                # a deadline over the whole stream
                stopped.clear()
                with self.assertRaises(EzipcError) as e:
                    [c async for c in await a.request_stream(topic, "1000", timeout_ms=100)]
                self.assertEqual(e.exception.code, "EZIPC_TIMEOUT")
                await within(stopped.wait())

    @unittest.skipUnless(os.environ.get("EZIPC_TEST_TS_STREAM"), "EZIPC_TEST_TS_STREAM names no TypeScript server")
    async def test_a_typescript_stream(self):
        # test/clients/python.test.ts serves this topic from a TypeScript client: "0".."19"
        a, = await self.clients(URLS[0], 1)
        got = [c.decode() async for c in await a.request_stream(os.environ["EZIPC_TEST_TS_STREAM"], "20", prefetch=3)]
        self.assertEqual(got, [str(i) for i in range(20)])

    async def test_deadman(self):
        for url in URLS:
            with self.subTest(url=url):
                a, b = await self.clients(url)
                name = unique("py.leader")
                self.assertTrue(await a.deadman(name).try_take())
                self.assertFalse(await b.deadman(name).try_take())
                waiting = asyncio.ensure_future(b.deadman(name).take())
                await asyncio.sleep(0.05)
                self.assertFalse(waiting.done())
                await a.close()  # the holder goes: the next in line takes it
                await within(waiting)
                state = await b.deadman(name).state()
                self.assertTrue(state["mine"])

    async def test_reconnect_resyncs_pointers_subscriptions_and_served_topics(self):
        for url in URLS:
            with self.subTest(url=url):
                a, b = await self.clients(url)
                key, topic, svc = unique("py.rc.key"), unique("py.rc.topic"), unique("py.rc.svc")
                pa = await a.allocate(key, 4, "poll")
                pb = await b.watch(key, "request")
                sub = await a.subscribe(topic)
                await b.publish(topic, "before")
                self.assertEqual((await within(sub.__anext__())).text(), "before")
                await a.serve(svc, lambda req: req.text().upper())
                statuses, pointer_statuses = [], []
                a.on_status(statuses.append)
                pa.on_status(pointer_statuses.append)
                a._writer.transport.abort()  # the network drops
                await within(_until(lambda: statuses[:1] == ["reconnecting"]))
                await pb.write(b"\x07")  # while a is away
                await b.publish(topic, "during")
                await within(_until(lambda: a.status == "connected"))
                self.assertTrue(a.resumed, "the hub kept a's pointers within its reconnect window")
                self.assertEqual(pointer_statuses, ["stale", "live"])
                # the write reached a in its resync's reply or, when a was back first, as an update that may
                # still be on its way
                await within(_until(lambda: pa.version == 2))
                self.assertEqual(pa.value(), b"\x07\x00\x00\x00")
                m = await within(sub.__anext__())
                self.assertEqual((m.seq, m.text()), (2, "during"))
                await b.publish(topic, "after")
                m = await within(sub.__anext__())
                self.assertEqual((m.seq, m.text()), (3, "after"), "nothing lost, nothing twice")
                self.assertEqual((await b.request(svc, "x")).text(), "X")
                self.assertEqual((await a.info(key))["refcount"], 2)

    async def test_the_synchronous_facade(self):
        for url in URLS:
            with self.subTest(url=url):

                def script():
                    key, topic, svc = unique("py.sync.key"), unique("py.sync.topic"), unique("py.sync.svc")
                    with ezipc.SyncClient(url, "py-sync") as a, ezipc.SyncClient(url, "py-sync2") as b:
                        p = a.allocate(key, 2, "poll")
                        q = b.watch(key, "request")
                        assert b.watch(unique("py.none"), "poll") is None
                        assert q.write(b"\x05") == 2
                        assert q.read() == b"\x05\x00"
                        ok, version = p.compare_and_write(2, b"\x06")
                        assert (ok, version) == (True, 3), (ok, version)
                        sub = b.subscribe(topic, init="oldest")
                        a.publish(topic, "one")
                        assert sub.next(5).text() == "one"
                        b.serve(svc, lambda req: req.text() * 2)
                        assert a.request(svc, "ab").text() == "abab"
                        assert a.try_take(key) and not b.try_take(key)
                        return a.info(key)["version"]

                self.assertEqual(await within(asyncio.to_thread(script), 20), 3)

    async def test_a_message_over_the_frame_limit_is_refused_before_sending(self):
        # A publish or request frame leaves FORWARD_RESERVE (1 KiB) of the 16 MiB frame free for what the hub
        # adds when it forwards it: a larger one fails with EZIPC_MESSAGE_TOO_LARGE, nothing is sent, and the
        # connection goes on.
        from ezipc.wire import FORWARD_LIMIT

        c, = await self.clients(URLS[0], 1)
        topic, svc = unique("py.big"), unique("py.big.svc")
        await within(c.serve(svc, lambda req: str(len(req.payload))))
        big = b"\x01" * FORWARD_LIMIT
        for attempt in (c.publish(topic, big), c.request(svc, big)):
            with self.assertRaises(EzipcError) as e:
                await within(attempt)
            self.assertEqual(e.exception.code, "EZIPC_MESSAGE_TOO_LARGE")
        with self.assertRaises(EzipcError) as e:
            c.publish_and_forget(topic, big)
        self.assertEqual(e.exception.code, "EZIPC_MESSAGE_TOO_LARGE")
        self.assertEqual(c.status, "connected")
        self.assertEqual((c._pending, c._calls), ({}, {}), "no request left waiting for a reply")
        # A reply over one frame: the caller gets the code, the server goes on.
        big_svc = unique("py.big.reply")
        await within(c.serve(big_svc, lambda req: b"\x03" * (16 * 1024 * 1024 + 1)))
        with self.assertRaises(EzipcError) as e:
            await within(c.request(big_svc, "x"))
        self.assertEqual(e.exception.code, "EZIPC_MESSAGE_TOO_LARGE")
        fits = b"\x02" * (FORWARD_LIMIT - 2 * len(svc) - 64)
        self.assertEqual((await within(c.request(svc, fits))).text(), str(len(fits)))
        seq, _ = await within(c.publish(topic, fits))
        self.assertEqual(seq, 1)

    async def test_topics_lists_a_page_at_a_time(self):
        # 9,000 topics with long names are over one page (1 MiB): every one comes back, once, in order.
        url = URLS[0]
        c, = await self.clients(url, 1)
        self.assertIn("pages", c.hub_features)
        prefix = unique("py.pages")
        names = [f"{prefix}.{'n' * 100}.{i}" for i in range(9000)]
        for name in names:
            c.publish_and_forget(name, b"x")
        await c.publish(f"{prefix}.last", b"x")
        first = await c._request("topicsPage", {"pattern": f"{prefix}.>", "after": "", "maxBytes": 0})
        self.assertTrue(first["more"])
        self.assertLess(len(first["topics"]), len(names))
        listed = [t["name"] for t in await within(c.topics(f"{prefix}.>"), 30)]
        self.assertEqual(listed, sorted(names + [f"{prefix}.last"]))

    async def test_a_full_hub_refuses_with_a_code(self):
        # EZIPC_TEST_FULL_URL: a hub with maxConnections 0, which refuses every connection.
        # Many times: the refusal and the hub's close may come before or after the hello is written.
        for i in range(200):
            with self.assertRaises(EzipcError) as e:
                await within(ezipc.connect(os.environ["EZIPC_TEST_FULL_URL"], "py-full"))
            self.assertEqual(e.exception.code, "EZIPC_TOO_MANY_CONNECTIONS", f"attempt {i}")

    async def test_bad_urls(self):
        for bad in ["ws://x", "tcp://nohostport", "shm://", "unix://"]:
            with self.assertRaises(EzipcError) as e:
                await ezipc.connect(bad)
            self.assertEqual(e.exception.code, "EZIPC_INVALID_URL")


async def _until(cond, step: float = 0.005):
    while not cond():
        await asyncio.sleep(step)


async def _until_async(cond, step: float = 0.02):
    while not await cond():
        await asyncio.sleep(step)


async def _state(client, key, state):
    return (await client.info(key))["state"] == state


if __name__ == "__main__":
    unittest.main()
