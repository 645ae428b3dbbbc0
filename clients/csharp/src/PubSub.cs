// Pub/sub (docs/protocol.md, "Pub/sub"): acknowledged and fire-and-forget publishes, subscriptions with
// every init (oldest, mostRecent, awaitNew, a seq) × iter (next, newest), credit-based flow, gaps, resume
// after a reconnect.
using System;
using System.Collections.Generic;
using System.IO;
using System.Net.Sockets;
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

        /// <summary>How many messages the hub may send ahead of the reader (iter next). 4096: the TypeScript client asks for 16384, bounded by 8 MiB of payload, which this client does not count.</summary>
        public int Prefetch = 4096;

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

        /// <summary>iter newest pulls: a credit was given for the next message, which has not come yet.</summary>
        bool asked;
        bool waiting;

        internal Body SubscribeBody(bool resume)
        {
            consumed = 0;
            var r = new List<object>();
            if (resume)
                foreach (var kv in Last) r.Add(Body.Of("topic", kv.Key, "seq", kv.Value + 1));
            // newest pulls (a handler is always ready; NextAsync only while it waits); next lets the hub send
            // Prefetch ahead.
            int credit = options.Prefetch;
            if (options.Iter == Iter.Newest)
            {
                asked = options.Handler != null || waiting;
                credit = asked ? 1 : 0;
            }
            return Body.Of("sid", Sid, "pattern", Pattern, "init", (int)options.Init, "fromSeq", options.FromSeq, "iter", (int)options.Iter, "credit", credit, "resume", r);
        }

        internal void Deliver(Message m)
        {
            Last[m.Topic] = m.Seq;
            asked = false;
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
            if (options.Iter == Iter.Newest && options.Handler == null) return; // NextAsync asks when it waits
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
            bool ask = false;
            lock (client.Sync)
            {
                waiting = true;
                if (options.Iter == Iter.Newest && queue.Count == 0 && !asked && client.Status == ClientStatus.Connected && !Closed)
                {
                    // AlephZero's ITER_NEWEST: one credit now that the reader is ready; the hub sends the newest.
                    asked = ask = true;
                }
            }
            try
            {
                if (ask) client.Send("credit", Body.Of("sid", Sid, "n", 1));
            }
            catch (EzipcException)
            {
                // lost meanwhile: the resubscription asks again for a waiting reader
            }
            try
            {
                var m = await queue.TakeAsync(cancel).ConfigureAwait(false);
                ConsumedOne();
                return m;
            }
            finally
            {
                lock (client.Sync) waiting = false;
            }
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

        /// <summary>Publishes without an acknowledgement (throws EZIPC_CONNECTION_CLOSED when not connected).
        /// Publishes made while the previous ones are still being written go out together, as one `publish`
        /// of many records per topic (up to 64 KiB, as docs/protocol.md asks): the caller never waits for a
        /// socket write, and anything else this client sends goes after them, in order.</summary>
        public void PublishAndForget(string topic, byte[] payload, IDictionary<string, string> headers = null)
        {
            var record = Schema.EncodeRecord(payload ?? new byte[0], headers);
            if (record.Length > Wire.ForwardLimit - 300) // alone in a frame: index, rid, topic, count, the record
                Wire.CheckFrame("publish", Schema.EncodePublish(0, topic, new List<byte[]> { record }).Length);
            Stream s;
            lock (sync)
            {
                if (Status == ClientStatus.Closed) throw new EzipcException("EZIPC_CONNECTION_CLOSED", "this client is closed");
                if (Status != ClientStatus.Connected) throw new EzipcException("EZIPC_CONNECTION_CLOSED", "the connection is lost (reconnecting)");
                s = stream;
            }
            bool schedule;
            lock (writeLock)
            {
                if (batchTopic != null && (batchTopic != topic || batchStream != s)) FlushBatchSafe(batchStream);
                schedule = batchTopic == null;
                batchTopic = topic;
                batchStream = s;
                batch.Add(record);
                batchBytes += record.Length;
                if (batchBytes >= BatchBytes)
                {
                    FlushBatchSafe(s);
                    schedule = false;
                }
            }
            if (schedule) ThreadPool.QueueUserWorkItem(_ => FlushBatch(s));
        }

        const int BatchBytes = 64 * 1024;
        string batchTopic;
        /// <summary>The connection the pending records were published on: they never go out on another.</summary>
        Stream batchStream;
        readonly List<byte[]> batch = new List<byte[]>();
        int batchBytes;

        /// <summary>Drops the pending fire-and-forget records: they are lost with the connection.</summary>
        void DropBatch()
        {
            lock (writeLock)
            {
                batchTopic = null;
                batchStream = null;
                batch.Clear();
                batchBytes = 0;
            }
        }

        /// <summary>Writes the pending fire-and-forget records (the scheduled flush).</summary>
        void FlushBatch(Stream s)
        {
            lock (writeLock) FlushBatchSafe(s);
        }

        void FlushBatchSafe(Stream s)
        {
            try
            {
                FlushBatchLocked(s);
            }
            catch (Exception e) when (e is IOException || e is ObjectDisposedException || e is SocketException)
            {
                // lost with the connection, as fire-and-forget publishes are
            }
        }

        /// <summary>Under writeLock: the pending records as one `publish` frame.</summary>
        void FlushBatchLocked(Stream s)
        {
            if (batchTopic == null) return;
            // Records published on a connection that was lost since are lost with it (never sent on the next
            // one, where the hello must come first).
            var frame = batchStream == s ? Wire.DataFrame(Schema.EncodePublish(0, batchTopic, batch)) : null;
            batchTopic = null;
            batchStream = null;
            batch.Clear();
            batchBytes = 0;
            if (frame != null) s.Write(frame, 0, frame.Length);
        }

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

        /// <summary>`gap` (under the client's lock, on the reader thread); `message` has its own fast path.</summary>
        void DispatchGap(Body b)
        {
            if (!subs.TryGetValue(b.U32("sid"), out var sub)) return;
            sub.OnGap(new Gap { Topic = b.Str("topic"), First = b.U64("first"), Last = b.U64("last") });
        }

        /// <summary>`message` (under the client's lock, on the reader thread).</summary>
        void DispatchMessage(Schema.MessageFrame m)
        {
            if (!subs.TryGetValue(m.Sid, out var sub)) return;
            ulong seq = m.Seq;
            foreach (var r in m.Records)
            {
                sub.Deliver(new Message
                {
                    Topic = m.Topic,
                    Seq = seq++,
                    Time = m.Time,
                    Publisher = m.Publisher,
                    Headers = r.Key ?? new Dictionary<string, string>(),
                    Payload = r.Value,
                });
            }
        }
    }
}
