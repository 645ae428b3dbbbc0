// Pub/sub (docs/protocol.md, "Pub/sub"): acknowledged and fire-and-forget publishes, subscriptions with
// every init (oldest, mostRecent, awaitNew, a seq) × iter (next, newest), credit-based flow, gaps, resume
// after a reconnect.
using System;
using System.Collections.Generic;
using System.Text;
using System.Threading;
using System.Threading.Tasks;

namespace Ezipc
{
    /// <summary>Where a subscription starts.</summary>
    public enum Init
    {
        Oldest = 0,
        MostRecent = 1,
        AwaitNew = 2,

        /// <summary>At <see cref="SubscribeOptions.FromSeq"/>.</summary>
        FromSeq = 3,
    }

    /// <summary>next: every message in order; newest: the newest message at each delivery.</summary>
    public enum Iter
    {
        Next = 0,
        Newest = 1,
    }

    public sealed class SubscribeOptions
    {
        public Init Init = Init.AwaitNew;
        public ulong FromSeq;
        public Iter Iter = Iter.Next;

        /// <summary>How many messages the hub may send ahead of the reader (iter next).</summary>
        public int Prefetch = 256;

        /// <summary>Called on the reader thread for each message instead of queueing it for NextAsync.</summary>
        public Action<Message> Handler;

        /// <summary>Called on the reader thread when messages the subscription should have seen were evicted.</summary>
        public Action<Gap> OnGap;
    }

    public sealed class Message
    {
        public string Topic;
        public ulong Seq;

        /// <summary>Milliseconds since the epoch, hub clock.</summary>
        public double Time;

        public string Publisher;
        public Dictionary<string, string> Headers;
        public byte[] Payload;

        public string Text => Encoding.UTF8.GetString(Payload);
    }

    /// <summary>Messages <c>First</c> to <c>Last</c> of a topic were evicted before this subscription saw them.</summary>
    public sealed class Gap
    {
        public string Topic;
        public ulong First;
        public ulong Last;
    }

    /// <summary>What an acknowledged publish was given.</summary>
    public sealed class Published
    {
        public ulong Seq;
        public double Time;
    }

    /// <summary>A subscription: messages of a topic (or pattern) in order.</summary>
    public sealed class Subscription : IDisposable
    {
        readonly Client client;
        readonly AsyncQueue<Message> queue = new AsyncQueue<Message>();
        readonly SubscribeOptions options;
        int consumed;
        internal readonly uint Sid;

        /// <summary>The last seq delivered per topic: a resubscription after a reconnect resumes after it.</summary>
        internal readonly Dictionary<string, ulong> Last = new Dictionary<string, ulong>();

        public string Pattern { get; }

        /// <summary>The seq the subscription started at (single topic).</summary>
        public ulong StartSeq { get; internal set; }

        public bool Closed { get; private set; }

        internal Subscription(Client client, uint sid, string pattern, SubscribeOptions options)
        {
            this.client = client;
            Sid = sid;
            Pattern = pattern;
            this.options = options;
        }

        internal Body SubscribeBody(bool resume)
        {
            consumed = 0;
            var r = new List<object>();
            if (resume)
                foreach (var kv in Last) r.Add(Body.Of("topic", kv.Key, "seq", kv.Value + 1));
            int credit = options.Iter == Iter.Newest ? 1 : options.Prefetch;
            return Body.Of("sid", Sid, "pattern", Pattern, "init", (int)options.Init, "fromSeq", options.FromSeq, "iter", (int)options.Iter, "credit", credit, "resume", r);
        }

        internal void Deliver(Message m)
        {
            Last[m.Topic] = m.Seq;
            if (options.Handler != null)
            {
                options.Handler(m);
                ConsumedOne();
            }
            else queue.Put(m);
        }

        internal void OnGap(Gap g) => options.OnGap?.Invoke(g);

        void ConsumedOne()
        {
            int n;
            lock (client.Sync)
            {
                consumed++;
                if (client.Status != ClientStatus.Connected || Closed) return; // the resubscription gives a fresh credit
                if (options.Iter == Iter.Newest || consumed >= Math.Max(1, options.Prefetch / 2))
                {
                    n = consumed;
                    consumed = 0;
                }
                else return;
            }
            try
            {
                client.Send("credit", Body.Of("sid", Sid, "n", n));
            }
            catch (EzipcException)
            {
                // lost meanwhile: the resubscription gives a fresh credit
            }
        }

        /// <summary>The next message; rejects with the client's close reason once it closed, or
        /// EZIPC_CANCELLED once unsubscribed.</summary>
        public async Task<Message> NextAsync(CancellationToken cancel = default(CancellationToken))
        {
            if (options.Handler != null) throw new InvalidOperationException("this subscription delivers to its handler");
            var m = await queue.TakeAsync(cancel).ConfigureAwait(false);
            ConsumedOne();
            return m;
        }

        internal void End(EzipcException err)
        {
            Closed = true;
            queue.End(err);
        }

        /// <summary>Ends the subscription on the hub (idempotent).</summary>
        public void Dispose()
        {
            if (Closed) return;
            client.Unsubscribe(this);
            End(new EzipcException("EZIPC_CANCELLED", "unsubscribed"));
        }
    }

    public sealed partial class Client
    {
        readonly Dictionary<uint, Subscription> subs = new Dictionary<uint, Subscription>();
        uint sid;

        static Body PublishBody(uint rid, string topic, byte[] payload, IDictionary<string, string> headers) =>
            Body.Of("rid", rid, "topic", topic, "records", new List<object> { Body.Of("headers", HeaderList(headers), "payload", payload ?? new byte[0]) });

        /// <summary>Publishes and resolves with the seq and time once the hub stored it (durably, for a
        /// persisted topic). Rejects with EZIPC_INVALID_TOPIC, EZIPC_TOO_MANY_TOPICS, EZIPC_PERMISSION_DENIED, ….</summary>
        public async Task<Published> PublishAsync(string topic, byte[] payload, IDictionary<string, string> headers = null)
        {
            var b = PublishBody(0, topic, payload, headers);
            b.Remove("rid");
            var r = (await AskAsync("publish", b).ConfigureAwait(false)).Body;
            return new Published { Seq = r.U64("seq"), Time = r.F64("time") };
        }

        public Task<Published> PublishAsync(string topic, string text, IDictionary<string, string> headers = null) =>
            PublishAsync(topic, Utf8(text), headers);

        /// <summary>Publishes without an acknowledgement (throws EZIPC_CONNECTION_CLOSED when not connected).</summary>
        public void PublishAndForget(string topic, byte[] payload, IDictionary<string, string> headers = null) =>
            Send("publish", PublishBody(0, topic, payload, headers));

        /// <summary>Subscribes to a topic or pattern; resolves once the hub placed the cursor (rejects with
        /// EZIPC_INVALID_TOPIC, EZIPC_PERMISSION_DENIED). Throws ArgumentOutOfRangeException at once for a prefetch under 1.</summary>
        public Task<Subscription> SubscribeAsync(string topic, SubscribeOptions options = null)
        {
            options = options ?? new SubscribeOptions();
            if (options.Prefetch < 1) throw new ArgumentOutOfRangeException(nameof(options), "prefetch must be at least 1");
            return Subscribe(topic, options);
        }

        async Task<Subscription> Subscribe(string topic, SubscribeOptions options)
        {
            Subscription sub;
            lock (sync)
            {
                sub = new Subscription(this, ++sid, topic, options);
                subs[sub.Sid] = sub;
            }
            try
            {
                var r = await AskAsync("subscribe", sub.SubscribeBody(false)).ConfigureAwait(false);
                sub.StartSeq = r.Body.U64("version");
            }
            catch
            {
                lock (sync) subs.Remove(sub.Sid);
                throw;
            }
            return sub;
        }

        internal void Unsubscribe(Subscription sub)
        {
            bool send;
            lock (sync)
            {
                subs.Remove(sub.Sid);
                send = Status == ClientStatus.Connected;
            }
            if (send)
            {
                try
                {
                    Send("unsubscribe", Body.Of("sid", sub.Sid));
                }
                catch (EzipcException)
                {
                }
            }
        }

        void DispatchPubSub(string name, Body b)
        {
            if (!subs.TryGetValue(b.U32("sid"), out var sub)) return;
            string topic = b.Str("topic");
            if (name == "gap")
            {
                sub.OnGap(new Gap { Topic = topic, First = b.U64("first"), Last = b.U64("last") });
                return;
            }
            ulong seq = b.U64("seq");
            foreach (Body r in b.List("records"))
            {
                sub.Deliver(new Message
                {
                    Topic = topic,
                    Seq = seq++,
                    Time = b.F64("time"),
                    Publisher = b.Str("publisher"),
                    Headers = Headers(r.List("headers")),
                    Payload = r.Bytes("payload"),
                });
            }
        }
    }
}
