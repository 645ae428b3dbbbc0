// RPC (docs/protocol.md, "RPC, streams and sessions") and deadman tokens ("Deadman tokens").
//
// A caller's request is named by its rid (side 0); the hub ends it with `end`. A server's call is named by
// the hub's cid (side 1); the handler's result (or exception) goes back as `end`.
using System;
using System.Collections.Generic;
using System.Text;
using System.Threading;
using System.Threading.Tasks;

namespace Ezipc
{
    /// <summary>A call a server received.</summary>
    public sealed class Request
    {
        public string Topic;

        /// <summary>How the hub names the caller.</summary>
        public string Caller;

        public Dictionary<string, string> Headers;
        public byte[] Payload;

        /// <summary>The caller's deadline (0: none).</summary>
        public int TimeoutMs;

        public string Text => Encoding.UTF8.GetString(Payload);
    }

    public sealed class Reply
    {
        public byte[] Payload;
        public string Text => Encoding.UTF8.GetString(Payload);
    }

    /// <summary>A named token at most one connection holds; released when its holder goes.</summary>
    public sealed class Deadman
    {
        readonly Client client;
        public string Name { get; }

        internal Deadman(Client client, string name)
        {
            this.client = client;
            Name = name;
        }

        Task<Client.Incoming> Op(int op) => client.AskAsync("deadman", Body.Of("name", Name, "op", op));

        /// <summary>Resolves once this client holds the token (waits in line).</summary>
        public Task TakeAsync() => Op(0);

        /// <summary>Takes the token if it is free; resolves with whether this client holds it.</summary>
        public async Task<bool> TryTakeAsync() => (await Op(1).ConfigureAwait(false)).Body.Bool("mine");

        /// <summary>Releases the token (EZIPC_BAD_REQUEST if this client does not hold it).</summary>
        public Task ReleaseAsync() => Op(2);

        public async Task<DeadmanState> StateAsync()
        {
            var b = (await Op(5).ConfigureAwait(false)).Body;
            return new DeadmanState { Taken = b.Bool("taken"), Holder = b.Str("holder"), Mine = b.Bool("mine"), Epoch = b.U64("epoch") };
        }
    }

    public sealed class DeadmanState
    {
        public bool Taken;
        public string Holder;
        public bool Mine;
        public ulong Epoch;
    }

    public sealed partial class Client
    {
        internal const int SideCaller = 0;
        const int SideServer = 1;
        const int EndOk = 0;
        const int EndError = 1;
        const int EndCancel = 2;
        readonly Dictionary<uint, TaskCompletionSource<Body>> calls = new Dictionary<uint, TaskCompletionSource<Body>>();
        readonly Dictionary<string, Func<Request, Task<byte[]>>> handlers = new Dictionary<string, Func<Request, Task<byte[]>>>();

        /// <summary>Calls <paramref name="topic"/> and resolves with the reply. Rejects with the server's error
        /// (its code), EZIPC_NO_RESPONDERS, EZIPC_SERVER_GONE, EZIPC_TIMEOUT after <paramref name="timeoutMs"/>
        /// (0: none), or is cancelled by <paramref name="cancel"/>; the hub and the server are told of both.</summary>
        public async Task<Reply> RequestAsync(string topic, byte[] payload, int timeoutMs = 10000, IDictionary<string, string> headers = null, CancellationToken cancel = default(CancellationToken))
        {
            var done = NewTcs<Body>();
            uint r = NextRid();
            lock (sync) calls[r] = done;
            try
            {
                Send("request", Body.Of("rid", r, "topic", topic, "kind", 0, "timeoutMs", timeoutMs, "credit", 0, "headers", HeaderList(headers), "payload", payload ?? new byte[0]));
            }
            catch
            {
                lock (sync) calls.Remove(r);
                throw;
            }
            using (var timer = timeoutMs > 0 ? new CancellationTokenSource(timeoutMs) : new CancellationTokenSource())
            using (var both = CancellationTokenSource.CreateLinkedTokenSource(timer.Token, cancel))
            {
                var gaveUp = NewTcs<bool>();
                using (both.Token.Register(() => gaveUp.TrySetResult(true)))
                {
                    if (await Task.WhenAny(done.Task, gaveUp.Task).ConfigureAwait(false) != done.Task)
                    {
                        bool timedOut = !cancel.IsCancellationRequested;
                        lock (sync) calls.Remove(r);
                        try
                        {
                            Send("end", Body.Of("side", SideCaller, "id", r, "status", EndCancel, "code", timedOut ? "EZIPC_TIMEOUT" : "EZIPC_CANCELLED", "message", timedOut ? "timed out" : "cancelled", "payload", new byte[0]));
                        }
                        catch (EzipcException)
                        {
                        }
                        if (timedOut) throw new EzipcException("EZIPC_TIMEOUT", topic + ": no reply within " + timeoutMs + " ms");
                        throw new OperationCanceledException(cancel);
                    }
                }
            }
            var end = await done.Task.ConfigureAwait(false);
            if (end.Long("status") == EndOk) return new Reply { Payload = end.Bytes("payload") };
            var code = end.Str("code");
            throw new EzipcException(code == "" ? "EZIPC_REMOTE" : code, end.Str("message"));
        }

        public Task<Reply> RequestAsync(string topic, string text, int timeoutMs = 10000) => RequestAsync(topic, Utf8(text), timeoutMs);

        /// <summary>Serves <paramref name="topic"/>: each call runs the handler; its result is the reply, an
        /// EzipcException it throws goes back with its code, any other exception as EZIPC_REMOTE. Resolves once
        /// the hub added this client to the topic's pool.</summary>
        public async Task ServeAsync(string topic, Func<Request, Task<byte[]>> handler)
        {
            lock (sync)
            {
                if (handlers.ContainsKey(topic)) throw new EzipcException("EZIPC_BAD_REQUEST", "this client already serves " + topic);
                handlers[topic] = handler;
            }
            try
            {
                await AskAsync("serve", Body.Of("topic", topic, "host", "", "direct", "")).ConfigureAwait(false);
            }
            catch
            {
                lock (sync) handlers.Remove(topic);
                throw;
            }
        }

        public Task ServeAsync(string topic, Func<Request, byte[]> handler) => ServeAsync(topic, r => Task.FromResult(handler(r)));

        /// <summary>Leaves the topic's pool.</summary>
        public void Unserve(string topic)
        {
            bool had;
            lock (sync) had = handlers.Remove(topic);
            if (had && Status == ClientStatus.Connected) Send("unserve", Body.Of("topic", topic));
        }

        async Task ServeCallAsync(Body c)
        {
            Func<Request, Task<byte[]>> handler;
            lock (sync) handlers.TryGetValue(c.Str("topic"), out handler);
            var end = Body.Of("side", SideServer, "id", c.U32("cid"), "status", EndOk, "code", "", "message", "", "payload", new byte[0]);
            if (handler == null || c.Long("kind") != 0)
            {
                end["status"] = EndError;
                end["code"] = handler == null ? "EZIPC_NO_RESPONDERS" : "EZIPC_BAD_REQUEST";
                end["message"] = handler == null ? "not served here" : "the C# client serves requests only (no streams or sessions)";
            }
            else
            {
                var req = new Request
                {
                    Topic = c.Str("topic"),
                    Caller = c.Str("caller"),
                    Headers = Headers(c.List("headers")),
                    Payload = c.Bytes("payload"),
                    TimeoutMs = (int)Math.Min(c.Long("timeoutMs"), int.MaxValue), // a u32 on the wire
                };
                try
                {
                    end["payload"] = await handler(req).ConfigureAwait(false) ?? new byte[0];
                }
                catch (EzipcException e)
                {
                    end["status"] = EndError;
                    end["code"] = e.Code;
                    end["message"] = e.Message;
                }
                catch (Exception e)
                {
                    end["status"] = EndError;
                    end["code"] = "EZIPC_REMOTE";
                    end["message"] = e.GetType().Name + ": " + e.Message;
                }
            }
            try
            {
                try
                {
                    Send("end", end);
                }
                catch (EzipcException e) when (e.Code == "EZIPC_MESSAGE_TOO_LARGE")
                {
                    // A reply over one frame: the caller is told why instead (nothing else was sent).
                    end["status"] = EndError;
                    end["code"] = e.Code;
                    end["message"] = "the reply does not fit one frame: " + e.Message;
                    end["payload"] = new byte[0];
                    Send("end", end);
                }
            }
            catch (EzipcException)
            {
                // the connection is gone: the hub ended the call with EZIPC_SERVER_GONE
            }
        }

        /// <summary>The deadman token <paramref name="name"/>.</summary>
        public Deadman Deadman(string name) => new Deadman(this, name);
    }
}
