// The C# client against a real hub: EZIPC_TEST_URLS names it (space-separated tcp:// and unix:// URLs;
// test/clients/csharp.test.ts starts the hub and runs these). Every test runs on each URL.
using System;
using System.Collections.Generic;
using System.Linq;
using System.Text;
using System.Threading;
using System.Threading.Tasks;
using Ezipc;
using NUnit.Framework;

[TestFixture]
public class HubTests
{
    static readonly string[] Urls = (Environment.GetEnvironmentVariable("EZIPC_TEST_URLS") ?? "").Split(new[] { ' ' }, StringSplitOptions.RemoveEmptyEntries);
    static int n;
    readonly List<Client> open = new List<Client>();

    static string Unique(string prefix) => prefix + "." + System.Diagnostics.Process.GetCurrentProcess().Id + "." + Interlocked.Increment(ref n);

    static T Within<T>(Task<T> t, int ms = 10000)
    {
        Assert.IsTrue(t.Wait(ms), "not done within " + ms + " ms");
        return t.Result;
    }

    static void Within(Task t, int ms = 10000) => Assert.IsTrue(t.Wait(ms), "not done within " + ms + " ms");

    /// <summary>The code of the EzipcException the task fails with.</summary>
    static string Code(Task t, int ms = 10000)
    {
        try
        {
            t.Wait(ms);
        }
        catch (AggregateException e) when (e.InnerException is EzipcException x)
        {
            return x.Code;
        }
        Assert.Fail("expected an EzipcException, the task " + (t.IsCompleted ? "succeeded" : "did not end"));
        return null;
    }

    static void Until(Func<bool> cond, int ms = 10000)
    {
        var end = DateTime.UtcNow.AddMilliseconds(ms);
        while (!cond())
        {
            Assert.IsTrue(DateTime.UtcNow < end, "the condition did not hold within " + ms + " ms");
            Thread.Sleep(5);
        }
    }

    Client[] Clients(string url, int count = 2)
    {
        var cs = Enumerable.Range(0, count).Select(i => Within(Client.ConnectAsync(url, "cs" + i))).ToArray();
        open.AddRange(cs);
        return cs;
    }

    [SetUp]
    public void HasHub() => Assert.IsNotEmpty(Urls, "EZIPC_TEST_URLS names no hub (run through npm test)");

    [TearDown]
    public void CloseAll()
    {
        foreach (var c in open) Within(c.CloseAsync());
        open.Clear();
    }

    static byte[] B(params int[] b) => b.Select(x => (byte)x).ToArray();

    [Test]
    public void VariablesUnderEveryPolicy()
    {
        foreach (var url in Urls)
        {
            var cs = Clients(url, 3);
            var key = Unique("cs.var");
            Assert.IsNull(Within(cs[1].WatchAsync(key, Policy.Poll)));
            var w = Within(cs[0].AllocateAsync(key, 4, Policy.Request));
            Assert.AreEqual("EZIPC_KEY_EXISTS", Code(cs[1].AllocateAsync(key, 4, Policy.Poll)));
            var poll = Within(cs[1].WatchAsync(key, Policy.Poll));
            var lazy = Within(cs[2].WatchAsync(key, Policy.Lazy));
            var lazyChanges = new List<Change>();
            lazy.Changed += (v, d) => { lock (lazyChanges) lazyChanges.Add(new Change { Version = v, Data = d }); };
            var first = poll.NextChangeAsync();
            Assert.AreEqual(2UL, Within(w.WriteAsync(B(0x2a))));
            Assert.AreEqual(2UL, w.Version); // its own write: known without a read (request keeps no copy)
            // poll: pushed with the value; the copy is there at once
            var c = Within(first);
            Assert.AreEqual(2UL, c.Version);
            CollectionAssert.AreEqual(B(0x2a, 0, 0, 0), c.Data);
            CollectionAssert.AreEqual(B(0x2a, 0, 0, 0), poll.Value);
            // lazy: one notice without the value, then the read fetches it
            Until(() => { lock (lazyChanges) return lazyChanges.Count > 0; });
            Assert.IsNull(lazyChanges[0].Data);
            var r = Within(lazy.ReadVersionedAsync());
            Assert.AreEqual(2UL, r.Version);
            CollectionAssert.AreEqual(B(0x2a, 0, 0, 0), r.Data);
            // request: asks the hub
            CollectionAssert.AreEqual(B(0x2a, 0, 0, 0), Within(w.ReadAsync()));
            var cas = Within(lazy.CompareAndWriteAsync(1, B(1)));
            Assert.IsFalse(cas.Ok);
            Assert.AreEqual(2UL, cas.Version);
            cas = Within(lazy.CompareAndWriteAsync(2, B(1)));
            Assert.IsTrue(cas.Ok);
            Assert.AreEqual(3UL, cas.Version);
            Assert.IsFalse(Within(w.CompareAndWriteAsync(2, B(2))).Ok);
            Assert.AreEqual(3UL, w.Version); // the version a failed compare-and-write met
            Assert.Throws<ArgumentOutOfRangeException>(() => w.WriteAsync(B(1, 2, 3, 4, 5)));
            var info = Within(cs[0].InfoAsync(key));
            Assert.AreEqual("live", info.State);
            Assert.AreEqual(3, info.Refcount);
            Assert.AreEqual(3UL, info.Version);
            foreach (var p in new[] { w, poll, lazy }) p.Dispose();
            Assert.AreEqual("EZIPC_KEY_DISPOSED", Code(poll.ReadAsync()));
            Until(() => Within(cs[0].InfoAsync(key)).State == "grace");
        }
    }

    [Test]
    public void ThreeClientsCountWithCompareAndWrite()
    {
        foreach (var url in Urls)
        {
            var cs = Clients(url, 3);
            var key = Unique("cs.counter");
            var ptrs = new[] { Within(cs[0].AllocateAsync(key, 4, Policy.Poll)), Within(cs[1].WatchAsync(key, Policy.Lazy)), Within(cs[2].WatchAsync(key, Policy.Request)) };
            Func<Pointer, Task> inc = async p =>
            {
                for (int i = 0; i < 20; i++)
                {
                    while (true)
                    {
                        var v = await p.ReadVersionedAsync();
                        var next = BitConverter.GetBytes(BitConverter.ToInt32(v.Data, 0) + 1);
                        if ((await p.CompareAndWriteAsync(v.Version, next)).Ok) break;
                    }
                }
            };
            Within(Task.WhenAll(ptrs.Select(p => Task.Run(() => inc(p)))), 30000);
            var peek = Within(cs[0].PeekAsync(key));
            Assert.AreEqual(60, BitConverter.ToInt32(peek.Data, 0));
            Assert.AreEqual(61UL, peek.Version);
        }
    }

    [Test]
    public void ConfigVariables()
    {
        foreach (var url in Urls)
        {
            var cs = Clients(url);
            var key = Unique("cs.cfg");
            var cfg = Within(cs[0].ConfigAsync(key, Policy.Poll, false));
            Assert.IsNull(Within(cfg.ReadJsonAsync()));
            Assert.IsTrue(Within(cfg.WriteIfEmptyAsync("{\"speed\":1,\"limits\":{\"max\":5}}")));
            Assert.IsFalse(Within(cfg.WriteIfEmptyAsync("{\"other\":1}")));
            Within(cfg.MergePatchAsync("{\"limits\":{\"max\":9},\"name\":\"r2\"}"));
            var other = Within(cs[1].ConfigAsync(key, Policy.Lazy, false));
            Assert.AreEqual("{\"speed\":1,\"limits\":{\"max\":9},\"name\":\"r2\"}", Within(other.ReadJsonAsync()));
            Assert.AreEqual("EZIPC_BAD_REQUEST", Code(cfg.WriteJsonAsync("{not json")));
        }
    }

    [Test]
    public void PubSubEveryInitAndIter()
    {
        foreach (var url in Urls)
        {
            var cs = Clients(url);
            var topic = Unique("cs.topic");
            for (int i = 0; i < 3; i++) Within(cs[0].PublishAsync(topic, "m" + i));
            var expect = new Dictionary<SubscribeOptions, string[]>
            {
                { new SubscribeOptions { Init = Init.Oldest }, new[] { "m0", "m1", "m2", "n0" } },
                { new SubscribeOptions { Init = Init.MostRecent }, new[] { "m2", "n0" } },
                { new SubscribeOptions { Init = Init.AwaitNew }, new[] { "n0" } },
                { new SubscribeOptions { Init = Init.FromSeq, FromSeq = 2 }, new[] { "m1", "m2", "n0" } },
            };
            var subs = expect.Keys.ToDictionary(o => o, o => Within(cs[1].SubscribeAsync(topic, o)));
            var published = Within(cs[0].PublishAsync(topic, "n0", new Dictionary<string, string> { { "h", "v" } }));
            Assert.AreEqual(4UL, published.Seq);
            foreach (var kv in expect)
            {
                var got = kv.Value.Select(_ => Within(subs[kv.Key].NextAsync())).ToList();
                CollectionAssert.AreEqual(kv.Value, got.Select(m => m.Text).ToArray(), kv.Key.Init.ToString());
                Assert.AreEqual("v", got.Last().Headers["h"]);
                StringAssert.StartsWith("cs0#", got.Last().Publisher);
            }
            // newest: one at a time, the newest each time it asks
            var newest = Within(cs[1].SubscribeAsync(topic, new SubscribeOptions { Iter = Iter.Newest }));
            for (int i = 0; i < 5; i++) cs[0].PublishAndForget(topic, Encoding.UTF8.GetBytes("x" + i));
            Within(cs[0].PublishAsync(topic, "last"));
            // The first delivery is the newest message when it is made: one of the fire-and-forget ones
            // (they travel together), or "last"; the next is "last".
            var first = Within(newest.NextAsync()).Text;
            Assert.That(new[] { "x0", "x1", "x2", "x3", "x4", "last" }.Contains(first), first);
            if (first != "last") Assert.AreEqual("last", Within(newest.NextAsync()).Text);
            // a handler gets every message in order
            var handled = new List<ulong>();
            Within(cs[1].SubscribeAsync(topic, new SubscribeOptions { Init = Init.Oldest, Handler = m => { lock (handled) handled.Add(m.Seq); } }));
            Until(() => { lock (handled) return handled.Count >= 10; });
            lock (handled) CollectionAssert.AreEqual(Enumerable.Range(1, handled.Count).Select(i => (ulong)i).ToArray(), handled);
        }
    }

    [Test]
    public void HeadersOverTheLimits()
    {
        foreach (var url in Urls)
        {
            var cs = Clients(url);
            var topic = Unique("cs.headers");
            var sub = Within(cs[1].SubscribeAsync(topic));
            cs[0].PublishAndForget(topic, Encoding.UTF8.GetBytes("a"));
            var bad = new[]
            {
                new Dictionary<string, string> { { "big", new string('x', 4097) } },
                new Dictionary<string, string> { { "big", new string('\u00e9', 2049) } },
                new Dictionary<string, string> { { new string('k', 257), "v" } },
                Enumerable.Range(0, 65).ToDictionary(i => "h" + i, i => "v"),
                new Dictionary<string, string> { { "n", null } },
            };
            foreach (var headers in bad)
            {
                // (the bad header used to go out in the batch: the hub refused it and closed the connection)
                var e = Assert.Throws<EzipcException>(() => cs[0].PublishAndForget(topic, Encoding.UTF8.GetBytes("bad"), headers));
                Assert.AreEqual("EZIPC_ENCODE", e.Code);
                Assert.AreEqual("EZIPC_ENCODE", Code(cs[0].PublishAsync(topic, "bad", headers)));
            }
            cs[0].PublishAndForget(topic, Encoding.UTF8.GetBytes("b"), new Dictionary<string, string> { { "ok", new string('x', 4096) } });
            Within(cs[0].PublishAsync(topic, "c"));
            CollectionAssert.AreEqual(new[] { "a", "b", "c" }, Enumerable.Range(0, 3).Select(_ => Within(sub.NextAsync()).Text).ToArray());
        }
    }

    [Test]
    public void AMessageOverTheFrameLimitIsRefusedBeforeSending()
    {
        // A publish or request frame leaves Wire.ForwardReserve (1 KiB) of the 16 MiB frame free for what the
        // hub adds when it forwards it: a larger one fails with EZIPC_MESSAGE_TOO_LARGE, nothing is sent, and
        // the connection goes on.
        var c = Clients(Urls[0], 1)[0];
        var topic = Unique("cs.big");
        var svc = Unique("cs.big.svc");
        Within(c.ServeAsync(svc, req => Encoding.UTF8.GetBytes(req.Payload.Length.ToString())));
        var big = new byte[Wire.ForwardLimit];
        Assert.AreEqual("EZIPC_MESSAGE_TOO_LARGE", Code(c.PublishAsync(topic, big)));
        Assert.AreEqual("EZIPC_MESSAGE_TOO_LARGE", Code(c.RequestAsync(svc, big)));
        var e = Assert.Throws<EzipcException>(() => c.PublishAndForget(topic, big));
        Assert.AreEqual("EZIPC_MESSAGE_TOO_LARGE", e.Code);
        Assert.AreEqual(ClientStatus.Connected, c.Status);
        // A reply over one frame: the caller gets the code, the server goes on.
        var bigReply = Unique("cs.big.reply");
        Within(c.ServeAsync(bigReply, req => new byte[16 * 1024 * 1024 + 1]));
        Assert.AreEqual("EZIPC_MESSAGE_TOO_LARGE", Code(c.RequestAsync(bigReply, new byte[1])));
        var fits = new byte[Wire.ForwardLimit - 2 * svc.Length - 64];
        Assert.AreEqual(fits.Length.ToString(), Within(c.RequestAsync(svc, fits), 30000).Text);
        Assert.AreEqual(1UL, Within(c.PublishAsync(topic, fits), 30000).Seq);
    }

    [Test]
    public void TopicsAndKeysAreListedAPageAtATime()
    {
        var c = Clients(Urls[0], 1)[0];
        Assert.IsTrue(c.HubFeatures.Contains("pages"));
        // 9,000 topics with long names are over one page (1 MiB): every one comes back, once, in order.
        var prefix = Unique("cs.pages");
        var names = Enumerable.Range(0, 9000).Select(i => prefix + "." + new string('n', 100) + "." + i).ToList();
        foreach (var name in names) c.PublishAndForget(name, B(1));
        Within(c.PublishAsync(prefix + ".last", "x"));
        names.Add(prefix + ".last");
        var listed = Within(c.TopicsAsync(prefix + ".>"), 30000);
        CollectionAssert.AreEqual(names.OrderBy(n => n, StringComparer.Ordinal).ToList(), listed.Select(t => t.Name).ToList());
        Assert.AreEqual(1UL, listed[0].FirstSeq);
        Assert.AreEqual(1UL, listed[0].LastSeq);
        Assert.AreEqual(1U, listed[0].Count);
        Assert.IsFalse(listed[0].Persist);
        Assert.AreEqual("EZIPC_INVALID_TOPIC", Code(c.TopicsAsync("a..b")));
        // keys, with their holders and their pointers per policy
        var key = Unique("cs.listed");
        var p1 = Within(c.AllocateAsync(key + ".a", 4, Policy.Lazy));
        var p2 = Within(c.WatchAsync(key + ".a", Policy.Poll));
        var cfg = Within(c.ConfigAsync(key + ".b"));
        var keys = Within(c.ListAsync(key + ".*"));
        CollectionAssert.AreEqual(new[] { key + ".a", key + ".b" }, keys.Select(k => k.Key).ToArray());
        Assert.AreEqual("bytes", keys[0].Kind);
        Assert.AreEqual(4, keys[0].Size);
        Assert.AreEqual("live", keys[0].State);
        Assert.AreEqual(2, keys[0].Refcount);
        Assert.AreEqual(1, keys[0].Holders.Count);
        Assert.AreEqual(c.Label, keys[0].Holders[0].Client);
        Assert.AreEqual(0U, keys[0].Holders[0].Request);
        Assert.AreEqual(1U, keys[0].Holders[0].Lazy);
        Assert.AreEqual(1U, keys[0].Holders[0].Poll);
        Assert.AreEqual("json", keys[1].Kind);
        p1.Dispose();
        p2.Dispose();
        cfg.Dispose();
    }

    [Test]
    public void ManyMessagesWithCredit()
    {
        foreach (var url in Urls)
        {
            var cs = Clients(url);
            var topic = Unique("cs.many");
            var sub = Within(cs[1].SubscribeAsync(topic, new SubscribeOptions { Prefetch = 64 }));
            const int count = 5000;
            for (int i = 0; i < count; i++) cs[0].PublishAndForget(topic, Encoding.UTF8.GetBytes(i.ToString()));
            Within(cs[0].PublishAsync(topic, "end"));
            var got = new List<int>();
            while (true)
            {
                var m = Within(sub.NextAsync());
                if (m.Text == "end") break;
                got.Add(int.Parse(m.Text));
            }
            CollectionAssert.AreEqual(Enumerable.Range(0, count).ToArray(), got);
        }
    }

    [Test]
    public void Rpc()
    {
        foreach (var url in Urls)
        {
            var cs = Clients(url);
            var topic = Unique("cs.rpc");
            Within(cs[1].ServeAsync(topic, async req =>
            {
                if (req.Text == "fail") throw new EzipcException("EZIPC_BAD_REQUEST", "no");
                if (req.Text == "boom") throw new InvalidOperationException("boom");
                if (req.Text == "slow") await Task.Delay(2000);
                return req.Payload.Reverse().ToArray();
            }));
            Assert.AreEqual("cba", Within(cs[0].RequestAsync(topic, "abc")).Text);
            Assert.AreEqual("EZIPC_BAD_REQUEST", Code(cs[0].RequestAsync(topic, "fail")));
            Assert.AreEqual("EZIPC_REMOTE", Code(cs[0].RequestAsync(topic, "boom")));
            Assert.AreEqual("EZIPC_TIMEOUT", Code(cs[0].RequestAsync(topic, "slow", 50)));
            Assert.AreEqual("EZIPC_NO_RESPONDERS", Code(cs[0].RequestAsync(Unique("cs.nobody"), "x")));
            using (var cancel = new CancellationTokenSource(50))
            {
                var t = cs[0].RequestAsync(topic, Encoding.UTF8.GetBytes("slow"), 10000, null, cancel.Token);
                try
                {
                    t.Wait(5000);
                    Assert.Fail("not cancelled");
                }
                catch (AggregateException e)
                {
                    Assert.IsInstanceOf<OperationCanceledException>(e.InnerException);
                }
            }
            // a server that goes: its callers learn it
            var hang = topic + ".hang";
            Within(cs[1].ServeAsync(hang, async req =>
            {
                await Task.Delay(30000);
                return req.Payload;
            }));
            var call = cs[0].RequestAsync(hang, "x");
            Thread.Sleep(50);
            Within(cs[1].CloseAsync());
            Assert.AreEqual("EZIPC_SERVER_GONE", Code(call));
        }
    }

    [Test]
    public void DeadmanTokens()
    {
        foreach (var url in Urls)
        {
            var cs = Clients(url);
            var name = Unique("cs.leader");
            Assert.IsTrue(Within(cs[0].Deadman(name).TryTakeAsync()));
            Assert.IsFalse(Within(cs[1].Deadman(name).TryTakeAsync()));
            Assert.AreEqual("EZIPC_BAD_REQUEST", Code(cs[1].Deadman(name).ReleaseAsync()));
            var waiting = cs[1].Deadman(name).TakeAsync();
            Assert.IsFalse(waiting.Wait(50));
            Within(cs[0].CloseAsync()); // the holder goes: the next in line takes it
            Within(waiting);
            var state = Within(cs[1].Deadman(name).StateAsync());
            Assert.IsTrue(state.Mine);
            Assert.IsTrue(state.Taken);
        }
    }

    [Test]
    public void ReconnectResyncsPointersSubscriptionsAndServedTopics()
    {
        foreach (var url in Urls)
        {
            var cs = Clients(url);
            Client a = cs[0], b = cs[1];
            string key = Unique("cs.rc.key"), topic = Unique("cs.rc.topic"), svc = Unique("cs.rc.svc");
            var pa = Within(a.AllocateAsync(key, 4, Policy.Poll));
            var pb = Within(b.WatchAsync(key, Policy.Request));
            var sub = Within(a.SubscribeAsync(topic));
            Within(b.PublishAsync(topic, "before"));
            Assert.AreEqual("before", Within(sub.NextAsync()).Text);
            Within(a.ServeAsync(svc, req => Encoding.UTF8.GetBytes(req.Text.ToUpperInvariant())));
            var statuses = new List<ClientStatus>();
            var pointerStatuses = new List<PointerStatus>();
            a.StatusChanged += s => { lock (statuses) statuses.Add(s); };
            pa.StatusChanged += s => { lock (pointerStatuses) pointerStatuses.Add(s); };
            a.Abort(); // the network drops
            Until(() => { lock (statuses) return statuses.Contains(ClientStatus.Reconnecting); });
            Within(pb.WriteAsync(B(7))); // while a is away
            Within(b.PublishAsync(topic, "during"));
            Until(() => a.Status == ClientStatus.Connected);
            Assert.IsTrue(a.Resumed, "the hub kept a's pointers within its reconnect window");
            lock (pointerStatuses) CollectionAssert.AreEqual(new[] { PointerStatus.Stale, PointerStatus.Live }, pointerStatuses);
            // The write reached a either in its resync's reply or, when a was back first, as an update
            // that may still be on its way.
            Until(() => pa.Version == 2);
            CollectionAssert.AreEqual(B(7, 0, 0, 0), pa.Value);
            var m = Within(sub.NextAsync());
            Assert.AreEqual(2UL, m.Seq);
            Assert.AreEqual("during", m.Text);
            Within(b.PublishAsync(topic, "after"));
            m = Within(sub.NextAsync());
            Assert.AreEqual(3UL, m.Seq, "nothing lost, nothing twice");
            Assert.AreEqual("X", Within(b.RequestAsync(svc, "x")).Text);
            Assert.AreEqual(2, Within(a.InfoAsync(key)).Refcount);
        }
    }

    [Test]
    public void ClosingFailsWhatWaitsAndReleasesAtOnce()
    {
        foreach (var url in Urls)
        {
            var cs = Clients(url);
            var topic = Unique("cs.close");
            var key = Unique("cs.close.key");
            var sub = Within(cs[0].SubscribeAsync(topic));
            var next = sub.NextAsync();
            Within(cs[0].AllocateAsync(key, 1, Policy.Poll));
            Within(cs[0].CloseAsync());
            Assert.AreEqual("EZIPC_CONNECTION_CLOSED", Code(next));
            Assert.AreEqual("EZIPC_CONNECTION_CLOSED", Code(cs[0].PublishAsync(topic, "x")));
            // A graceful close releases at once: well before the hub's reconnect window (5 s) would.
            Until(() => Within(cs[1].InfoAsync(key)).Refcount == 0, 2000);
        }
    }

    [Test]
    public void AFullHubRefusesWithACode()
    {
        // EZIPC_TEST_FULL_URL: a hub with maxConnections 0, which refuses every connection.
        var url = Environment.GetEnvironmentVariable("EZIPC_TEST_FULL_URL");
        Assert.IsNotNull(url, "EZIPC_TEST_FULL_URL names no hub (run through npm test)");
        // Many times: the hub's refusal and close can come before the hello is written (the reader thread has
        // closed the socket by then); the refusal's code is still what the connect fails with.
        for (int i = 0; i < 300; i++)
            Assert.AreEqual("EZIPC_TOO_MANY_CONNECTIONS", Code(Client.ConnectAsync(url, "cs-full")), "attempt " + i);
    }

    [Test]
    public void BadUrls()
    {
        foreach (var bad in new[] { "ws://x:1", "tcp://nohostport", "shm://", "unix://", "nonsense" })
            Assert.AreEqual("EZIPC_INVALID_URL", Code(Client.ConnectAsync(bad)), bad);
    }
}
