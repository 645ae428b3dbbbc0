// The C# client's conformance driver (conformance/README.md): JSON commands on stdin, answers on stdout.
using System;
using System.Collections.Generic;
using System.IO;
using System.Linq;
using System.Net.Sockets;
using System.Text;
using System.Text.RegularExpressions;
using System.Threading;
using System.Threading.Tasks;
using System.Web.Script.Serialization;
using Ezipc;

static class ConformanceDriver
{
    static readonly JavaScriptSerializer Json = new JavaScriptSerializer { MaxJsonLength = int.MaxValue };
    static Client client;
    static readonly Dictionary<string, Pointer> Ptrs = new Dictionary<string, Pointer>();
    static readonly Dictionary<string, ConfigVar> Configs = new Dictionary<string, ConfigVar>();
    static readonly Dictionary<string, Subscription> Subs = new Dictionary<string, Subscription>();
    /// <summary>Ops started with a tag, awaited by "await".</summary>
    static readonly Dictionary<string, Task<object>> Tagged = new Dictionary<string, Task<object>>();
    /// <summary>Calls received per served topic.</summary>
    static readonly Dictionary<string, TaskCompletionSource<bool>> Called = new Dictionary<string, TaskCompletionSource<bool>>();
    static int reconnects;
    static int reconnectsSeen;
    static TaskCompletionSource<bool> reconnected = new TaskCompletionSource<bool>(TaskCreationOptions.RunContinuationsAsynchronously);

    static TaskCompletionSource<bool> CalledOn(string topic)
    {
        lock (Called)
        {
            if (!Called.TryGetValue(topic, out var t)) Called[topic] = t = new TaskCompletionSource<bool>(TaskCreationOptions.RunContinuationsAsynchronously);
            return t;
        }
    }

    /// <summary>A raw connection: hello with <paramref name="protocol"/>; the hub's first message.</summary>
    sealed class Raw : IDisposable
    {
        public NetworkStream Stream;
        public readonly FrameDecoder Decoder = new FrameDecoder();
        readonly byte[] buf = new byte[65536];
        readonly Queue<Frame> frames = new Queue<Frame>();

        public Raw(string url, int protocol)
        {
            var u = new Uri(url);
            var s = new Socket(SocketType.Stream, ProtocolType.Tcp);
            s.Connect(u.Host, u.Port);
            Stream = new NetworkStream(s, true);
            Send(Schema.Encode("hello", Body.Of("protocol", protocol, "name", "raw", "resume", null, "features", new List<object>())));
        }

        public void Send(byte[] payload)
        {
            var f = Wire.DataFrame(payload);
            Stream.Write(f, 0, f.Length);
        }

        /// <summary>The next frame; null at the end of the stream.</summary>
        public Frame? Next()
        {
            while (frames.Count == 0)
            {
                int n;
                try
                {
                    n = Stream.Read(buf, 0, buf.Length);
                }
                catch (IOException)
                {
                    return null;
                }
                if (n == 0) return null;
                foreach (var f in Decoder.Feed(buf, 0, n)) frames.Enqueue(f);
            }
            return frames.Dequeue();
        }

        public Body First(out string name)
        {
            while (true)
            {
                var f = Next();
                if (f == null) throw new EzipcException("EZIPC_CONNECTION_CLOSED", "closed before answering");
                if (f.Value.IsControl) continue;
                var m = Schema.Decode(f.Value.Body);
                name = m.Name;
                return m.Body;
            }
        }

        public void Dispose() => Stream.Dispose();
    }

    static Pointer Ptr(string key)
    {
        if (!Ptrs.TryGetValue(key, out var p)) throw new InvalidOperationException("no pointer on " + key);
        return p;
    }

    static string Hex(byte[] b) => string.Concat(b.Select(x => x.ToString("x2")));

    static byte[] FromHex(string h)
    {
        var b = new byte[h.Length / 2];
        for (int i = 0; i < b.Length; i++) b[i] = Convert.ToByte(h.Substring(2 * i, 2), 16);
        return b;
    }

    static Policy ParsePolicy(object p)
    {
        switch ((string)p)
        {
            case "request": return Policy.Request;
            case "lazy": return Policy.Lazy;
            case "poll": return Policy.Poll;
            default: throw new ArgumentException("sync policy must be request, lazy or poll, got " + p);
        }
    }

    static object Get(Dictionary<string, object> a, string k, object dflt = null) => a.TryGetValue(k, out var v) ? v : dflt;

    static Dictionary<string, object> R(params object[] kv)
    {
        var d = new Dictionary<string, object>();
        for (int i = 0; i < kv.Length; i += 2) d[(string)kv[i]] = kv[i + 1];
        return d;
    }

    static async Task<object> Run(string op, Dictionary<string, object> a)
    {
        switch (op)
        {
            case "connect":
                client = await Client.ConnectAsync((string)a["url"], (string)a["name"]);
                client.StatusChanged += s =>
                {
                    if (s != ClientStatus.Connected) return;
                    Interlocked.Increment(ref reconnects);
                    reconnected.TrySetResult(true);
                };
                return R();
            case "waitReconnect":
                while (Volatile.Read(ref reconnects) <= reconnectsSeen)
                {
                    await reconnected.Task;
                    reconnected = new TaskCompletionSource<bool>(TaskCreationOptions.RunContinuationsAsynchronously);
                }
                reconnectsSeen = reconnects;
                return R();
            case "rawHello":
                return await Task.Run(() =>
                {
                    using (var raw = new Raw((string)a["url"], Convert.ToInt32(a["protocol"])))
                    {
                        var b = raw.First(out var name);
                        if (name == "error") throw new EzipcException(b.Str("code"), b.Str("message"));
                        return (object)R("protocol", b.Long("protocol"));
                    }
                });
            case "rawFrame":
                return await Task.Run(() =>
                {
                    using (var raw = new Raw((string)a["url"], 2))
                    {
                        raw.First(out var name);
                        if (name != "welcome") throw new InvalidOperationException("expected welcome, got " + name);
                        raw.Send(FromHex((string)a["hex"]));
                        while (true)
                        {
                            var f = raw.Next();
                            if (f == null) return (object)R("closed", "");
                            if (f.Value.IsControl)
                            {
                                if (f.Value.ControlType != Wire.Close) continue;
                                var m = Regex.Match(Encoding.UTF8.GetString(f.Value.Body), "^(EZIPC_[A-Z_]+)");
                                return R("closed", m.Success ? m.Groups[1].Value : "");
                            }
                            var msg = Schema.Decode(f.Value.Body);
                            if (msg.Name == "error") return R("error", msg.Body.Str("code"));
                        }
                    }
                });
            case "await":
            {
                var t = Tagged[(string)a["tag"]];
                Tagged.Remove((string)a["tag"]);
                return await t;
            }
            case "casIncrement":
            {
                var p = Ptr((string)a["key"]);
                int times = Convert.ToInt32(a["times"]);
                for (int i = 0; i < times; i++)
                {
                    while (true)
                    {
                        var v = await p.ReadVersionedAsync();
                        var next = BitConverter.GetBytes(BitConverter.ToUInt32(v.Data, 0) + 1);
                        if ((await p.CompareAndWriteAsync(v.Version, next)).Ok) break;
                    }
                }
                return R();
            }
            case "take":
                await client.Deadman((string)a["name"]).TakeAsync();
                return R();
            case "waitCalled":
                await CalledOn((string)a["topic"]).Task;
                return R();
            case "allocate":
            {
                var p = await client.AllocateAsync((string)a["key"], Convert.ToInt32(a["size"]), ParsePolicy(a["policy"]), (bool)Get(a, "persistent", false), (bool)Get(a, "openExisting", false));
                Ptrs[(string)a["key"]] = p;
                return R("version", p.Version);
            }
            case "watch":
            {
                var p = await client.WatchAsync((string)a["key"], ParsePolicy(a["policy"]));
                if (p == null) return null;
                Ptrs[(string)a["key"]] = p;
                return R("version", p.Version);
            }
            case "write":
                return R("version", await Ptr((string)a["key"]).WriteAsync(FromHex((string)a["hex"]), Convert.ToInt32(Get(a, "offset", 0))));
            case "cas":
            {
                var r = await Ptr((string)a["key"]).CompareAndWriteAsync(Convert.ToUInt64(a["expect"]), FromHex((string)a["hex"]));
                return R("ok", r.Ok, "version", r.Version);
            }
            case "read":
            {
                var r = await Ptr((string)a["key"]).ReadVersionedAsync();
                return R("hex", Hex(r.Data), "version", r.Version);
            }
            case "waitVersion":
            {
                var p = Ptr((string)a["key"]);
                ulong want = Convert.ToUInt64(a["version"]);
                while (p.Version < want) await p.NextChangeAsync();
                return R("version", p.Version);
            }
            case "dispose":
                Ptr((string)a["key"]).Dispose();
                Ptrs.Remove((string)a["key"]);
                return R();
            case "config":
                Configs[(string)a["key"]] = await client.ConfigAsync((string)a["key"], Policy.Poll, false);
                return R();
            case "configWrite":
                return R("version", await Configs[(string)a["key"]].WriteJsonAsync(Json.Serialize(a["doc"])));
            case "configMerge":
                return R("version", await Configs[(string)a["key"]].MergePatchAsync(Json.Serialize(a["doc"])));
            case "configRead":
            {
                var text = await Configs[(string)a["key"]].ReadJsonAsync();
                return R("doc", text == null ? null : Json.DeserializeObject(text));
            }
            case "info":
            {
                var i = await client.InfoAsync((string)a["key"]);
                if (i.State == "none" || i.State == "disposed") return R("state", i.State);
                return R("state", i.State, "refcount", i.Refcount, "version", i.Version, "size", i.Size, "kind", i.Kind, "persistent", i.Persistent);
            }
            case "publish":
            {
                Dictionary<string, string> headers = null;
                if (Get(a, "headers") is Dictionary<string, object> h) headers = h.ToDictionary(kv => kv.Key, kv => (string)kv.Value);
                return R("seq", (await client.PublishAsync((string)a["topic"], (string)a["text"], headers)).Seq);
            }
            case "subscribe":
            {
                var o = new SubscribeOptions();
                var init = a["init"];
                if (init is string s)
                {
                    switch (s)
                    {
                        case "oldest": o.Init = Init.Oldest; break;
                        case "mostRecent": o.Init = Init.MostRecent; break;
                        case "awaitNew": o.Init = Init.AwaitNew; break;
                        default: throw new ArgumentException("init must be oldest, mostRecent, awaitNew or a seq, got " + s);
                    }
                }
                else
                {
                    o.Init = Init.FromSeq;
                    o.FromSeq = Convert.ToUInt64(init);
                }
                var iter = (string)Get(a, "iter", "next");
                if (iter != "next" && iter != "newest") throw new ArgumentException("iter must be next or newest, got " + iter);
                o.Iter = iter == "newest" ? Iter.Newest : Iter.Next;
                Subs[(string)a["sub"]] = await client.SubscribeAsync((string)a["topic"], o);
                return R();
            }
            case "next":
            {
                var m = await Subs[(string)a["sub"]].NextAsync();
                return R("seq", m.Seq, "text", m.Text, "headers", m.Headers, "topic", m.Topic);
            }
            case "serve":
            {
                var mode = (string)a["mode"];
                var topic = (string)a["topic"];
                await client.ServeAsync(topic, async req =>
                {
                    CalledOn(topic).TrySetResult(true);
                    if (mode == "fail") throw new EzipcException("EZIPC_BAD_REQUEST", "refused");
                    if (mode == "slow") await Task.Delay(2000);
                    if (mode == "hang") await Task.Delay(60000);
                    return mode == "upper" ? Encoding.UTF8.GetBytes(req.Text.ToUpperInvariant()) : req.Payload;
                });
                return R();
            }
            case "request":
                return R("text", (await client.RequestAsync((string)a["topic"], Encoding.UTF8.GetBytes((string)a["text"]), Convert.ToInt32(Get(a, "timeoutMs", 5000)))).Text);
            case "tryTake":
                return R("mine", await client.Deadman((string)a["name"]).TryTakeAsync());
            case "release":
                await client.Deadman((string)a["name"]).ReleaseAsync();
                return R();
            case "deadmanState":
            {
                var s = await client.Deadman((string)a["name"]).StateAsync();
                return R("taken", s.Taken, "mine", s.Mine);
            }
            case "close":
                if (client != null) await client.CloseAsync();
                return R();
        }
        throw new InvalidOperationException("unknown op " + op);
    }

    static Exception Unwrap(Exception e) => e is AggregateException a && a.InnerException != null ? a.InnerException : e;

    static void Out(object v)
    {
        Console.Out.Write(Json.Serialize(v) + "\n");
        Console.Out.Flush();
    }

    static void Main()
    {
        Out(R("ready", true));
        string line;
        while ((line = Console.In.ReadLine()) != null)
        {
            var cmd = Json.Deserialize<Dictionary<string, object>>(line);
            var id = cmd["id"];
            var args = Get(cmd, "args") as Dictionary<string, object> ?? new Dictionary<string, object>();
            if (Get(cmd, "tag") is string tag)
            {
                // Started, not awaited: "await" answers with its outcome.
                Task<object> started;
                try
                {
                    started = Run((string)cmd["op"], args);
                }
                catch (Exception e)
                {
                    started = Task.FromException<object>(e);
                }
                Tagged[tag] = started;
                Out(R("id", id, "ok", true, "result", R("started", tag)));
                continue;
            }
            try
            {
                Out(R("id", id, "ok", true, "result", Run((string)cmd["op"], args).GetAwaiter().GetResult()));
            }
            catch (Exception e) when (Unwrap(e) is EzipcException x)
            {
                Out(R("id", id, "ok", false, "code", x.Code, "message", x.Message));
            }
            catch (Exception e) when (Unwrap(e) is ArgumentException x)
            {
                Out(R("id", id, "ok", false, "code", "ARGUMENT", "message", x.Message));
            }
            catch (Exception e)
            {
                Out(R("id", id, "ok", false, "code", "ERROR", "message", e.GetType().Name + ": " + e.Message));
            }
        }
        // Mono aborts the threads still running when Main returns, which can crash the exit (README: "Ending
        // a program").
        Environment.Exit(0);
    }
}
