// The C# client's conformance driver (conformance/README.md): JSON commands on stdin, answers on stdout.
using System;
using System.Collections.Generic;
using System.Linq;
using System.Text;
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
                await client.ServeAsync((string)a["topic"], req =>
                {
                    if (mode == "fail") throw new EzipcException("EZIPC_BAD_REQUEST", "refused");
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
            try
            {
                Out(R("id", id, "ok", true, "result", Run((string)cmd["op"], args).GetAwaiter().GetResult()));
            }
            catch (EzipcException e)
            {
                Out(R("id", id, "ok", false, "code", e.Code, "message", e.Message));
            }
            catch (ArgumentException e)
            {
                Out(R("id", id, "ok", false, "code", "ARGUMENT", "message", e.Message));
            }
            catch (Exception e)
            {
                Out(R("id", id, "ok", false, "code", "ERROR", "message", e.GetType().Name + ": " + e.Message));
            }
        }
    }
}
