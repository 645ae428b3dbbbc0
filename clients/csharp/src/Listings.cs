// Listings (docs/protocol.md, messages 31/21 and, from a hub that names "pages", 49-52): the hub's topics and
// keys matching a pattern, in name order. A hub that names "pages" answers a page at a time (each answer a
// bounded frame), so a hub of any size can be listed; once a walk is under way, a page refused by the hub's
// listing budget (EZIPC_TOO_MANY_REQUESTS, "try again in N ms") is asked again after that long, 30 s at most.

using System;
using System.Collections.Generic;
using System.Text.RegularExpressions;
using System.Threading.Tasks;

namespace Ezipc
{
    /// <summary>A topic as <see cref="Client.TopicsAsync"/> lists it.</summary>
    public sealed class TopicInfo
    {
        public string Name;
        public ulong FirstSeq;
        public ulong LastSeq;
        public uint Count;
        public double Bytes;
        public uint Subscribers;
        public bool Persist;
    }

    /// <summary>A client holding a key, with its pointers per policy.</summary>
    public sealed class KeyHolder
    {
        public string Client;
        public uint Request;
        public uint Lazy;
        public uint Poll;
    }

    /// <summary>A key as <see cref="Client.ListAsync"/> lists it.</summary>
    public sealed class KeyListing
    {
        public string Key;
        /// <summary>bytes or json.</summary>
        public string Kind;
        public int Size;
        public ulong Version;
        public int Refcount;
        public bool Persistent;
        /// <summary>live or grace.</summary>
        public string State;
        public List<KeyHolder> Holders;
    }

    public sealed partial class Client
    {
        /// <summary>How long a listing under way waits in all for the hub's listing budget.</summary>
        const int PagesMaxWaitMs = 30000;

        static readonly Regex TryAgain = new Regex(@"try again in (\d+) ms");

        /// <summary>The topics matching <paramref name="pattern"/> (topic syntax; empty: all), in name order.
        /// Rejects with EZIPC_INVALID_TOPIC, EZIPC_TOO_MANY_REQUESTS (the first page refused by the listing
        /// budget, or the budget's wait over 30 s), EZIPC_MESSAGE_TOO_LARGE (a hub without pages whose answer
        /// would not fit one frame) or EZIPC_CONNECTION_CLOSED.</summary>
        public async Task<List<TopicInfo>> TopicsAsync(string pattern = "")
        {
            var items = HubFeatures.Contains("pages")
                ? await AllPagesAsync("topicsPage", "topics", "name", pattern).ConfigureAwait(false)
                : (await AskAsync("topics", Body.Of("pattern", pattern)).ConfigureAwait(false)).Body.List("topics");
            var out_ = new List<TopicInfo>(items.Count);
            foreach (Body t in items)
            {
                out_.Add(new TopicInfo
                {
                    Name = t.Str("name"),
                    FirstSeq = t.U64("firstSeq"),
                    LastSeq = t.U64("lastSeq"),
                    Count = t.U32("count"),
                    Bytes = t.F64("bytes"),
                    Subscribers = t.U32("subscribers"),
                    Persist = t.Bool("persist"),
                });
            }
            return out_;
        }

        /// <summary>The keys matching <paramref name="pattern"/> (* and ?; empty: all) that this client may
        /// watch, in key order, with their holders. Rejects as <see cref="TopicsAsync"/> does.</summary>
        public async Task<List<KeyListing>> ListAsync(string pattern = "")
        {
            var items = HubFeatures.Contains("pages")
                ? await AllPagesAsync("listPage", "keys", "key", pattern).ConfigureAwait(false)
                : (await AskAsync("list", Body.Of("pattern", pattern)).ConfigureAwait(false)).Body.List("keys");
            var out_ = new List<KeyListing>(items.Count);
            foreach (Body k in items)
            {
                var holders = new List<KeyHolder>();
                foreach (Body h in k.List("holders"))
                {
                    var c = h.List("counts");
                    holders.Add(new KeyHolder
                    {
                        Client = h.Str("client"),
                        Request = Convert.ToUInt32(c[0]),
                        Lazy = Convert.ToUInt32(c[1]),
                        Poll = Convert.ToUInt32(c[2]),
                    });
                }
                out_.Add(new KeyListing
                {
                    Key = k.Str("key"),
                    Kind = k.Long("kind") == KindJson ? "json" : "bytes",
                    Size = (int)k.Long("size"),
                    Version = k.U64("version"),
                    Refcount = (int)k.Long("refcount"),
                    Persistent = k.Bool("persistent"),
                    State = k.Long("state") == 1 ? "grace" : "live",
                    Holders = holders,
                });
            }
            return out_;
        }

        /// <summary>Every entry of a paged listing: pages after the last name of the one before, until the
        /// hub says there is no more.</summary>
        async Task<List<object>> AllPagesAsync(string ask, string field, string nameField, string pattern)
        {
            var all = new List<object>();
            string after = "";
            int waited = 0;
            while (true)
            {
                Body page;
                try
                {
                    page = (await AskAsync(ask, Body.Of("pattern", pattern, "after", after, "maxBytes", (uint)Wire.DefaultMaxFrame)).ConfigureAwait(false)).Body;
                }
                catch (EzipcException e) when (e.Code == "EZIPC_TOO_MANY_REQUESTS" && after != "")
                {
                    var m = TryAgain.Match(e.Message);
                    int wait = m.Success ? int.Parse(m.Groups[1].Value) : -1;
                    if (wait < 0 || waited + wait > PagesMaxWaitMs) throw;
                    waited += wait;
                    await Task.Delay(wait).ConfigureAwait(false);
                    continue;
                }
                var items = page.List(field);
                all.AddRange(items);
                if (!page.Bool("more") || items.Count == 0) return all;
                var last = ((Body)items[items.Count - 1]).Str(nameField);
                if (string.CompareOrdinal(last, after) <= 0) return all; // (a hub that does not move on)
                after = last;
            }
        }
    }
}
