// A client of an ezipc hub, written from docs/protocol.md alone.
//
// One connection (tcp:// or unix://), the hello/welcome handshake, PING answered with PONG, and the hub's
// messages: shared variables (Vars.cs), pub/sub (PubSub.cs), RPC and deadman tokens (Rpc.cs). One reader
// thread decodes frames and dispatches them under the client's lock: replies are matched by rid, pushes
// (update, stale, invalidated, message, gap, call, end) by their ids. Tasks the client hands out complete
// asynchronously (never inline on the reader thread); event handlers (Pointer.Changed, a subscription's
// handler) run on the reader thread and must not block.
//
// With Reconnect (the default) a lost connection is dialled again with backoff; the hello names the
// client's id so that a hub within its reconnect window keeps its pointers; then every held key is
// resynced, every served topic served again and every subscription resumed after the last seq it
// delivered. Requests in flight when the connection was lost fail with EZIPC_CONNECTION_CLOSED.
using System;
using System.Collections.Generic;
using System.IO;
using System.Net.Sockets;
using System.Text;
using System.Threading;
using System.Threading.Tasks;

namespace Ezipc
{
    /// <summary>The three sync policies of a pointer (docs/protocol.md: 0 request, 1 lazy, 2 poll).</summary>
    public enum Policy
    {
        Request = 0,
        Lazy = 1,
        Poll = 2,
    }

    public enum ClientStatus
    {
        Connecting,
        Connected,
        Reconnecting,
        Closed,
    }

    public sealed class ClientOptions
    {
        /// <summary>Dial again when the connection is lost, and resync (default true).</summary>
        public bool Reconnect = true;

        /// <summary>The longest wait between two dials while reconnecting.</summary>
        public int MaxReconnectDelayMs = 2000;

        /// <summary>How long a dial and its handshake may take.</summary>
        public int ConnectTimeoutMs = 10000;
    }

    /// <summary>A connection to a hub. Use <see cref="ConnectAsync"/>.</summary>
    public sealed partial class Client : IDisposable
    {
        public const int Protocol = 2;
        static readonly string[] Features = { "vars", "config", "pubsub", "rpc", "deadman", "info" };

        readonly object sync = new object();
        readonly object writeLock = new object();
        readonly ClientOptions options;
        Stream stream;
        Socket socket;
        uint rid;
        readonly Dictionary<uint, Pending> pending = new Dictionary<uint, Pending>();
        TaskCompletionSource<Body> welcome;
        TaskCompletionSource<bool> ready;
        TaskCompletionSource<bool> readerExit;

        public string Url { get; }
        public string Name { get; }

        /// <summary>This client's identity on the hub (given in welcome).</summary>
        public string ClientId { get; private set; } = "";

        /// <summary>How the hub names this client.</summary>
        public string Label { get; private set; } = "";

        public string Hub { get; private set; } = "";

        /// <summary>What the hub said it can do in its last welcome (e.g. "pages").</summary>
        public ISet<string> HubFeatures { get; private set; } = new HashSet<string>();

        /// <summary>True when the last welcome resumed this client (the hub kept its pointers).</summary>
        public bool Resumed { get; private set; }

        public ClientStatus Status { get; private set; } = ClientStatus.Connecting;

        /// <summary>Why the client closed (null while open).</summary>
        public EzipcException CloseReason { get; private set; }

        /// <summary>Raised on the reader thread (or the closing one) when the status changes.</summary>
        public event Action<ClientStatus> StatusChanged;

        sealed class Pending
        {
            public TaskCompletionSource<Incoming> Reply;
            public KeyState State;

            /// <summary>Run as the reply is dispatched (reader thread, under the lock), before later frames.</summary>
            public Action<Incoming> OnReply;
        }

        /// <summary>A reply: the message's name and body.</summary>
        internal sealed class Incoming
        {
            public string Name;
            public Body Body;
        }

        Client(string url, string name, ClientOptions options)
        {
            Url = url;
            Name = name;
            this.options = options ?? new ClientOptions();
        }

        /// <summary>Connects to the hub at <paramref name="url"/> (tcp://HOST:PORT or unix:///PATH). Resolves once
        /// welcomed; rejects with EZIPC_INVALID_URL, EZIPC_HANDSHAKE (the hub speaks another protocol version),
        /// EZIPC_TOO_MANY_CONNECTIONS (the hub is full), EZIPC_TIMEOUT, or the socket's failure as
        /// EZIPC_CONNECTION_RESET.</summary>
        public static async Task<Client> ConnectAsync(string url, string name = "csharp", ClientOptions options = null)
        {
            var c = new Client(url, name, options);
            c.ready = NewTcs<bool>();
            try
            {
                await c.DialAsync().ConfigureAwait(false);
            }
            catch
            {
                c.Shut(new EzipcException("EZIPC_CONNECTION_CLOSED", "connect failed"));
                throw;
            }
            c.ready.TrySetResult(true);
            c.SetStatus(ClientStatus.Connected);
            return c;
        }

        /// <summary>Whether <paramref name="t"/> ended within <paramref name="ms"/>; the timer is disposed either way
        /// (Mono's timer scheduler does not like many live timers).</summary>
        static async Task<bool> Within(Task t, int ms)
        {
            using (var cancel = new CancellationTokenSource())
            {
                var won = await Task.WhenAny(t, Task.Delay(ms, cancel.Token)).ConfigureAwait(false) == t;
                cancel.Cancel();
                return won;
            }
        }

        internal static TaskCompletionSource<T> NewTcs<T>() =>
            new TaskCompletionSource<T>(TaskCreationOptions.RunContinuationsAsynchronously);

        void SetStatus(ClientStatus s)
        {
            Status = s;
            StatusChanged?.Invoke(s);
        }

        // ---- connection -------------------------------------------------------------------------------

        static Socket Dial(Uri u, string url)
        {
            if (u.Scheme == "tcp")
            {
                if (string.IsNullOrEmpty(u.Host) || u.Port <= 0)
                    throw new EzipcException("EZIPC_INVALID_URL", url + ": expected tcp://HOST:PORT");
                var s = new Socket(SocketType.Stream, ProtocolType.Tcp) { NoDelay = true };
                s.Connect(u.Host, u.Port);
                return s;
            }
            if (u.Scheme == "unix")
            {
                string path = Uri.UnescapeDataString(u.AbsolutePath);
                if (path.Length <= 1) throw new EzipcException("EZIPC_INVALID_URL", url + ": expected unix:///PATH");
                var s = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
                s.Connect(new Mono.Unix.UnixEndPoint(path));
                return s;
            }
            if (u.Scheme == "tls" || u.Scheme == "shm" || u.Scheme == "memory" || u.Scheme == "ws")
                throw new EzipcException("EZIPC_INVALID_URL", url + ": the C# client speaks tcp:// and unix://");
            throw new EzipcException("EZIPC_INVALID_URL", url + ": unknown scheme '" + u.Scheme + "'");
        }

        /// <summary>Opens the socket, says hello (resuming this client if it has an id), waits for welcome.</summary>
        async Task DialAsync()
        {
            if (!Uri.TryCreate(Url, UriKind.Absolute, out var u))
                throw new EzipcException("EZIPC_INVALID_URL", Url + ": not a URL");
            Socket s;
            try
            {
                s = await Task.Run(() => Dial(u, Url)).ConfigureAwait(false);
            }
            catch (SocketException e)
            {
                throw new EzipcException("EZIPC_CONNECTION_RESET", Url + ": " + e.Message);
            }
            var ns = new NetworkStream(s, true);
            var w = NewTcs<Body>();
            var exit = NewTcs<bool>();
            lock (sync)
            {
                socket = s;
                stream = ns;
                welcome = w;
                readerExit = exit;
            }
            var reader = new Thread(() => ReadLoop(ns, exit)) { IsBackground = true, Name = "ezipc reader" };
            reader.Start();
            try
            {
                WriteFrame(ns, "hello", Body.Of("protocol", Protocol, "name", Name, "resume", ClientId == "" ? null : ClientId, "features", Features));
            }
            catch (EzipcException)
            {
                // A hub that refuses at once (full: EZIPC_TOO_MANY_CONNECTIONS) may have said so and closed before
                // the hello went out, and the reader thread closed the socket: its reason is the connect's error.
                await Within(exit.Task, options.ConnectTimeoutMs).ConfigureAwait(false);
                if (w.Task.IsFaulted) throw w.Task.Exception.InnerException;
                throw;
            }
            if (!await Within(w.Task, options.ConnectTimeoutMs).ConfigureAwait(false))
            {
                ns.Dispose();
                throw new EzipcException("EZIPC_TIMEOUT", Url + ": no welcome within " + options.ConnectTimeoutMs + " ms");
            }
            var b = await w.Task.ConfigureAwait(false);
            ClientId = b.Str("clientId");
            Label = b.Str("label");
            Hub = b.Str("hub");
            Resumed = b.Bool("resumed");
            var features = new HashSet<string>();
            foreach (var f in b.List("features")) features.Add((string)f);
            HubFeatures = features;
        }

        void WriteFrame(Stream s, string name, Body body)
        {
            var encoded = Schema.Encode(name, body);
            Wire.CheckFrame(name, encoded.Length);
            var frame = Wire.DataFrame(encoded);
            try
            {
                lock (writeLock)
                {
                    FlushBatchLocked(s); // fire-and-forget publishes sent before this go before it
                    s.Write(frame, 0, frame.Length);
                }
            }
            catch (Exception e) when (e is IOException || e is ObjectDisposedException || e is SocketException)
            {
                throw new EzipcException("EZIPC_CONNECTION_CLOSED", "not connected: " + e.Message);
            }
        }

        /// <summary>Sends a message that has no reply (or whose reply is matched elsewhere).</summary>
        internal void Send(string name, Body body)
        {
            Stream s;
            lock (sync)
            {
                if (Status == ClientStatus.Closed) throw new EzipcException("EZIPC_CONNECTION_CLOSED", "this client is closed");
                if (Status != ClientStatus.Connected) throw new EzipcException("EZIPC_CONNECTION_CLOSED", "the connection is lost (reconnecting)");
                s = stream;
            }
            WriteFrame(s, name, body);
        }

        internal uint NextRid()
        {
            lock (sync)
            {
                rid = rid == uint.MaxValue ? 1 : rid + 1;
                return rid;
            }
        }

        /// <summary>Sends a request with a fresh rid; resolves with the reply (rejects with its error).</summary>
        internal async Task<Incoming> AskAsync(string name, Body body, KeyState state = null, bool duringResync = false, Action<Incoming> onReply = null)
        {
            if (state != null && state.Invalidated)
                throw new EzipcException("EZIPC_KEY_DISPOSED", "key " + state.Key + " has been invalidated");
            if (!duringResync && Status == ClientStatus.Reconnecting) await ready.Task.ConfigureAwait(false);
            var p = new Pending { Reply = NewTcs<Incoming>(), State = state, OnReply = onReply };
            uint r = NextRid();
            body["rid"] = r;
            Stream s;
            lock (sync)
            {
                if (Status == ClientStatus.Closed) throw new EzipcException("EZIPC_CONNECTION_CLOSED", "this client is closed");
                if (!duringResync && Status != ClientStatus.Connected)
                    throw new EzipcException("EZIPC_CONNECTION_CLOSED", "the connection is lost (reconnecting)");
                pending[r] = p;
                s = stream;
            }
            try
            {
                WriteFrame(s, name, body);
            }
            catch
            {
                lock (sync) pending.Remove(r); // nothing was sent: no reply to wait for
                throw;
            }
            return await p.Reply.Task.ConfigureAwait(false);
        }

        void ReadLoop(Stream s, TaskCompletionSource<bool> exit)
        {
            var decoder = new FrameDecoder();
            var buf = new byte[65536];
            EzipcException err = null;
            try
            {
                while (err == null)
                {
                    int n = s.Read(buf, 0, buf.Length);
                    if (n == 0)
                    {
                        err = new EzipcException("EZIPC_CONNECTION_RESET", "the hub closed the connection");
                        break;
                    }
                    foreach (var f in decoder.Feed(buf, 0, n))
                    {
                        if (f.IsControl)
                        {
                            if (f.ControlType == Wire.Ping)
                            {
                                var pong = Wire.ControlFrame(Wire.Pong);
                                lock (writeLock) s.Write(pong, 0, pong.Length);
                            }
                            else if (f.ControlType == Wire.Close)
                                err = new EzipcException("EZIPC_CONNECTION_CLOSED", Encoding.UTF8.GetString(f.Body));
                        }
                        else if (f.Body.Length >= 2 && f.Body[0] == Schema.MessageIndex && f.Body[1] == 0)
                        {
                            var m = Schema.DecodeMessage(f.Body);
                            lock (sync) DispatchMessage(m);
                        }
                        else
                        {
                            var m = Schema.Decode(f.Body);
                            lock (sync) Dispatch(m.Name, m.Body);
                        }
                    }
                }
            }
            catch (EzipcException e)
            {
                err = e;
            }
            catch (Exception e) when (e is IOException || e is ObjectDisposedException || e is SocketException)
            {
                err = new EzipcException("EZIPC_CONNECTION_RESET", e.Message);
            }
            s.Dispose();
            bool current;
            lock (sync) current = ReferenceEquals(s, stream);
            if (current) Lost(err);
            exit.TrySetResult(true); // last: CloseAsync resolves once this thread has nothing left to do
        }

        void FailInFlight(EzipcException err)
        {
            List<Pending> ps;
            List<TaskCompletionSource<Body>> cs;
            lock (sync)
            {
                welcome?.TrySetException(err);
                ps = new List<Pending>(pending.Values);
                pending.Clear();
                cs = new List<TaskCompletionSource<Body>>(calls.Values);
                calls.Clear();
            }
            foreach (var p in ps) p.Reply.TrySetException(err);
            foreach (var c in cs) c.TrySetException(err);
        }

        void Lost(EzipcException err)
        {
            lock (sync)
            {
                if (Status == ClientStatus.Closed) return;
                if (Status == ClientStatus.Reconnecting) return; // a failed dial: the loop tries again
                if (!(options.Reconnect && Status == ClientStatus.Connected))
                {
                    ShutLocked(err);
                    return;
                }
                ready = NewTcs<bool>();
                foreach (var k in keys.Values) k.SetStatus(PointerStatus.Stale);
                SetStatus(ClientStatus.Reconnecting);
            }
            DropBatch(); // before the next connection's hello
            FailInFlight(new EzipcException("EZIPC_CONNECTION_CLOSED", "the connection was lost: " + err.Message));
            Task.Run(ReconnectLoop);
        }

        async Task ReconnectLoop()
        {
            int delay = 20;
            while (Status == ClientStatus.Reconnecting)
            {
                try
                {
                    await DialAsync().ConfigureAwait(false);
                    await ResyncAsync().ConfigureAwait(false);
                    lock (sync)
                    {
                        if (Status != ClientStatus.Reconnecting) return;
                        SetStatus(ClientStatus.Connected);
                    }
                    ready.TrySetResult(true);
                    return;
                }
                catch (EzipcException)
                {
                    lock (sync) stream?.Dispose();
                    await Task.Delay(delay).ConfigureAwait(false);
                    delay = Math.Min(delay * 2, options.MaxReconnectDelayMs);
                }
            }
        }

        /// <summary>After a welcome: every held key, then every served topic and subscription, again.</summary>
        async Task ResyncAsync()
        {
            List<KeyState> held;
            lock (sync) held = HeldKeys();
            foreach (var s in held) await ResyncKeyAsync(s).ConfigureAwait(false);
            await AskAsync("resyncDone", new Body(), null, true).ConfigureAwait(false);
            List<string> topics;
            List<Subscription> subsNow;
            lock (sync)
            {
                topics = new List<string>(handlers.Keys);
                subsNow = new List<Subscription>(subs.Values);
            }
            foreach (var t in topics)
                await AskAsync("serve", Body.Of("topic", t, "host", "", "direct", ""), null, true).ConfigureAwait(false);
            foreach (var sub in subsNow) await AskAsync("subscribe", sub.SubscribeBody(true), null, true).ConfigureAwait(false);
        }

        void Shut(EzipcException err)
        {
            lock (sync) ShutLocked(err);
        }

        void ShutLocked(EzipcException err)
        {
            if (Status == ClientStatus.Closed) return;
            CloseReason = err;
            SetStatus(ClientStatus.Closed);
            FailInFlight(err);
            foreach (var sub in subs.Values) sub.End(err);
            foreach (var k in keys.Values) k.SetStatus(PointerStatus.Stale);
            ready?.TrySetResult(false);
        }

        void Dispatch(string name, Body b)
        {
            if (name == "error" && b.U32("rid") == 0)
            {
                welcome?.TrySetException(new EzipcException(b.Str("code"), b.Str("message")));
                return;
            }
            switch (name)
            {
                case "welcome":
                    welcome?.TrySetResult(b);
                    return;
                case "update":
                case "stale":
                case "invalidated":
                    DispatchVar(name, b);
                    return;
                case "gap":
                    DispatchGap(b);
                    return;
                case "call":
                    var c = b;
                    Task.Run(() => ServeCallAsync(c));
                    return;
                case "end":
                    if (b.Long("side") == SideCaller && calls.TryGetValue(b.U32("id"), out var call))
                    {
                        calls.Remove(b.U32("id"));
                        call.TrySetResult(b);
                    }
                    return;
                case "chunk":
                case "flow":
                case "publishFlow":
                    return;
            }
            if (!b.ContainsKey("rid")) return;
            uint r = b.U32("rid");
            if (r == 0 || !pending.TryGetValue(r, out var p)) return;
            pending.Remove(r);
            if (name == "error") p.Reply.TrySetException(new EzipcException(b.Str("code"), b.Str("message")));
            else
            {
                var reply = new Incoming { Name = name, Body = b };
                p.OnReply?.Invoke(reply);
                p.Reply.TrySetResult(reply);
            }
        }

        /// <summary>Says goodbye (CLOSE) and closes; the hub releases this client's pointers at once. Resolves
        /// once the socket is closed.</summary>
        public async Task CloseAsync()
        {
            Stream s;
            Task exited;
            lock (sync)
            {
                if (Status == ClientStatus.Closed) return;
                s = Status == ClientStatus.Connected ? stream : null;
                exited = readerExit?.Task ?? Task.CompletedTask;
                ShutLocked(new EzipcException("EZIPC_CONNECTION_CLOSED", "this client is closed"));
            }
            if (s != null)
            {
                try
                {
                    var close = Wire.ControlFrame(Wire.Close, Encoding.UTF8.GetBytes("client closed"));
                    lock (writeLock)
                    {
                        FlushBatchLocked(s);
                        s.Write(close, 0, close.Length);
                    }
                    socket?.Shutdown(SocketShutdown.Send);
                }
                catch (Exception e) when (e is IOException || e is ObjectDisposedException || e is SocketException)
                {
                }
                // The hub ends its side once it read the CLOSE; closing before that could reset the connection
                // with the CLOSE unread.
                await Within(exited, 2000).ConfigureAwait(false);
            }
            lock (sync) stream?.Dispose();
        }

        public void Dispose() => CloseAsync().Wait();

        /// <summary>Drops the connection without a CLOSE, as a network failure would (tests).</summary>
        internal void Abort()
        {
            lock (sync) socket?.Close();
        }

        internal static byte[] Utf8(string s) => s == null ? new byte[0] : Encoding.UTF8.GetBytes(s);

        internal static List<object> HeaderList(IDictionary<string, string> headers)
        {
            Schema.CheckHeaders(headers);
            var list = new List<object>();
            if (headers != null)
                foreach (var kv in headers) list.Add(Body.Of("key", kv.Key, "value", kv.Value));
            return list;
        }

        internal static Dictionary<string, string> Headers(List<object> list)
        {
            var d = new Dictionary<string, string>();
            foreach (Body h in list) d[h.Str("key")] = h.Str("value");
            return d;
        }
    }
}
