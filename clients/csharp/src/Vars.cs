// Shared variables (docs/protocol.md, "Semantics"): pointers on keys with the three sync policies, config
// variables (JSON documents with RFC 7396 merge patches), peek and info.
//
// A client holds one KeyState per key: the copy (lazy/poll), its version and the pointers per policy. The
// highest policy among them decides what the hub sends (poll: update with the value; lazy: stale once).
using System;
using System.Collections.Generic;
using System.Threading;
using System.Threading.Tasks;

namespace Ezipc
{
    public enum PointerStatus
    {
        /// <summary>Connected; the poll copy follows the hub.</summary>
        Live,

        /// <summary>The hub is unreachable (the client is reconnecting): the copy may be old.</summary>
        Stale,

        /// <summary>The key was invalidated or the pointer disposed: for good.</summary>
        Invalidated,
    }

    /// <summary>A value and the version it had.</summary>
    public sealed class Versioned
    {
        public byte[] Data;
        public ulong Version;
    }

    /// <summary>The outcome of a compare-and-write: whether it applied, and the version now.</summary>
    public sealed class CasResult
    {
        public bool Ok;
        public ulong Version;
    }

    /// <summary>One change a pointer saw: the version, and the value (null for a lazy notice).</summary>
    public sealed class Change
    {
        public ulong Version;
        public byte[] Data;
    }

    /// <summary>What <see cref="Client.InfoAsync"/> tells of a key without holding it.</summary>
    public sealed class KeyInfo
    {
        /// <summary>none, live, grace or disposed.</summary>
        public string State;

        /// <summary>bytes or json (live and grace only).</summary>
        public string Kind;

        public int Size;
        public ulong Version;
        public int Refcount;
        public bool Persistent;
    }

    sealed class KeyState
    {
        public readonly string Key;
        public uint Id;
        public readonly int Kind;
        public int Size;
        public ulong Version;
        public readonly bool Persistent;
        public byte[] Data;
        public bool Fresh;
        public readonly int[] Counts = new int[3];
        public readonly List<Pointer> Pointers = new List<Pointer>();
        public bool Invalidated;
        public PointerStatus Status = PointerStatus.Live;

        public KeyState(string key, Body opened)
        {
            Key = key;
            Id = opened.U32("id");
            Kind = (int)opened.Long("kind");
            Size = (int)opened.Long("size");
            Version = opened.U64("version");
            Persistent = opened.Bool("persistent");
            Data = opened["data"] as byte[];
            Fresh = Data != null;
        }

        /// <summary>The highest policy held (-1: none).</summary>
        public int Policy => Counts[2] > 0 ? 2 : Counts[1] > 0 ? 1 : Counts[0] > 0 ? 0 : -1;

        public void SetStatus(PointerStatus s)
        {
            if (Status == s || Status == PointerStatus.Invalidated) return;
            Status = s;
            foreach (var p in Pointers.ToArray()) p.RaiseStatus(s);
        }
    }

    /// <summary>A pointer on a key, holding one reference on the hub (the TypeScript client's IpcPtr).
    /// Dispose it to release the reference.</summary>
    public sealed class Pointer : IDisposable
    {
        readonly Client client;
        internal readonly KeyState State;
        readonly AsyncQueue<Change> changes = new AsyncQueue<Change>(1);
        internal Client Client => client;

        public Policy Policy { get; }
        public bool Disposed { get; private set; }

        /// <summary>Raised (on the client's reader thread) on each change: version and value (null for lazy).</summary>
        public event Action<ulong, byte[]> Changed;

        /// <summary>Raised when the pointer goes stale, live again, or invalidated.</summary>
        public event Action<PointerStatus> StatusChanged;

        internal Pointer(Client client, KeyState state, Policy policy)
        {
            this.client = client;
            State = state;
            Policy = policy;
        }

        public string Key => State.Key;
        public ulong Version => State.Version;
        public int Size => State.Size;
        public PointerStatus Status => Disposed ? PointerStatus.Invalidated : State.Status;

        void Check()
        {
            if (Disposed || State.Invalidated)
                throw new EzipcException("EZIPC_KEY_DISPOSED", "key " + Key + " has been invalidated");
        }

        /// <summary>The local copy, at once (needs a poll pointer, or the client holding the key under poll).</summary>
        public byte[] Value
        {
            get
            {
                Check();
                if (State.Policy < 2 || State.Data == null)
                    throw new EzipcException("EZIPC_BAD_REQUEST", Key + ": Value needs a poll pointer; use ReadAsync()");
                return State.Data;
            }
        }

        /// <summary>The value and its version, taken together: from the copy when it is current (poll, or
        /// lazy since the last notice), else from the hub. Rejects with EZIPC_KEY_DISPOSED once invalidated.</summary>
        public async Task<Versioned> ReadVersionedAsync()
        {
            Check();
            var s = State;
            lock (client.Sync)
            {
                if (s.Data != null && (s.Policy == 2 || s.Fresh)) return new Versioned { Data = s.Data, Version = s.Version };
            }
            var r = (await client.AskAsync("read", Body.Of("id", s.Id), s).ConfigureAwait(false)).Body;
            var data = r.Bytes("data");
            ulong version = r.U64("version");
            lock (client.Sync)
            {
                if (version >= s.Version)
                {
                    s.Version = version;
                    if (s.Policy >= 1)
                    {
                        s.Data = data;
                        s.Fresh = true;
                    }
                }
            }
            return new Versioned { Data = data, Version = version };
        }

        public async Task<byte[]> ReadAsync() => (await ReadVersionedAsync().ConfigureAwait(false)).Data;

        /// <summary>Refuses (at once, before anything is sent) a write that cannot fit or is not to a bytes key.</summary>
        void CheckWriteArguments(byte[] data, int offset)
        {
            if (data == null) throw new ArgumentNullException(nameof(data));
            if (State.Kind != Client.KindBytes) throw new InvalidOperationException(Key + " is a JSON config: use its config operations");
            if (offset < 0 || offset + data.Length > State.Size)
                throw new ArgumentOutOfRangeException(nameof(offset), "write of " + data.Length + " bytes at " + offset + " is outside " + Key + " (" + State.Size + " bytes)");
        }

        /// <summary>Writes <paramref name="data"/> at <paramref name="offset"/>; resolves with the new version
        /// once the hub applied it (stored it, for a persistent key). Throws ArgumentOutOfRangeException at once
        /// for a write outside the block; rejects with EZIPC_KEY_DISPOSED once invalidated.</summary>
        public Task<ulong> WriteAsync(byte[] data, int offset = 0)
        {
            CheckWriteArguments(data, offset);
            return WriteChecked(data, offset);
        }

        async Task<ulong> WriteChecked(byte[] data, int offset)
        {
            Check();
            return (await client.WriteAsync(State, data, offset, null).ConfigureAwait(false)).Version;
        }

        /// <summary>Writes only if the version is still <paramref name="expectedVersion"/>: Ok with the new
        /// version, or not Ok with the current one.</summary>
        public Task<CasResult> CompareAndWriteAsync(ulong expectedVersion, byte[] data, int offset = 0)
        {
            CheckWriteArguments(data, offset);
            return CompareAndWriteChecked(expectedVersion, data, offset);
        }

        async Task<CasResult> CompareAndWriteChecked(ulong expectedVersion, byte[] data, int offset)
        {
            Check();
            return await client.WriteAsync(State, data, offset, expectedVersion).ConfigureAwait(false);
        }

        /// <summary>The next change not yet taken (the latest only, when the taker lags). Rejects with
        /// EZIPC_KEY_DISPOSED once the pointer is disposed or the key invalidated.</summary>
        public Task<Change> NextChangeAsync(CancellationToken cancel = default(CancellationToken)) => changes.TakeAsync(cancel);

        internal void Emit(ulong version, byte[] data)
        {
            Changed?.Invoke(version, data);
            changes.Put(new Change { Version = version, Data = data });
        }

        internal void RaiseStatus(PointerStatus s)
        {
            StatusChanged?.Invoke(s);
            if (s == PointerStatus.Invalidated) End();
        }

        internal void End() => changes.End(new EzipcException("EZIPC_KEY_DISPOSED", "key " + Key + " has been invalidated"));

        /// <summary>Releases this pointer's reference on the hub (idempotent).</summary>
        public void Dispose()
        {
            if (Disposed) return;
            Disposed = true;
            client.Release(this);
            End();
        }
    }

    /// <summary>A JSON config variable: one document, written whole or by an RFC 7396 merge patch on the hub.
    /// Documents are JSON text: bring your own serializer.</summary>
    public sealed class ConfigVar : IDisposable
    {
        public Pointer Pointer { get; }

        internal ConfigVar(Pointer pointer)
        {
            Pointer = pointer;
        }

        public ulong Version => Pointer.Version;

        /// <summary>The document as JSON text; null while the variable is empty.</summary>
        public async Task<string> ReadJsonAsync()
        {
            var data = await Pointer.ReadAsync().ConfigureAwait(false);
            return data.Length == 0 ? null : System.Text.Encoding.UTF8.GetString(data);
        }

        /// <summary>Replaces the document; resolves with the new version.</summary>
        public async Task<ulong> WriteJsonAsync(string json) => (await Op(0, json).ConfigureAwait(false)).Version;

        /// <summary>Writes only into an empty variable; resolves with whether it did.</summary>
        public async Task<bool> WriteIfEmptyAsync(string json) => (await Op(1, json).ConfigureAwait(false)).Ok;

        /// <summary>Applies an RFC 7396 merge patch atomically on the hub; resolves with the new version.</summary>
        public async Task<ulong> MergePatchAsync(string patchJson) => (await Op(2, patchJson).ConfigureAwait(false)).Version;

        Task<CasResult> Op(int op, string json) => Pointer.Client.ConfigOpAsync(Pointer.State, op, json);

        public void Dispose() => Pointer.Dispose();
    }

    public sealed partial class Client
    {
        internal const int KindBytes = 0;
        internal const int KindJson = 1;
        readonly Dictionary<uint, KeyState> keys = new Dictionary<uint, KeyState>();
        readonly Dictionary<string, KeyState> byKey = new Dictionary<string, KeyState>();

        internal object Sync => sync;

        /// <summary>An `opened` reply applied as it is dispatched, before the frames after it: an update for the
        /// block that follows the reply finds its key (the TypeScript client does the same).</summary>
        sealed class OpenedReply
        {
            readonly Client client;
            readonly string key;
            readonly int policy;
            public KeyState State;

            public OpenedReply(Client client, string key, int policy)
            {
                this.client = client;
                this.key = key;
                this.policy = policy;
            }

            public void Apply(Incoming reply)
            {
                if (reply.Name == "opened") State = client.Opened(key, reply.Body, policy);
            }
        }

        KeyState Opened(string key, Body reply, int policy)
        {
            lock (sync)
            {
                byKey.TryGetValue(key, out var s);
                if (s != null && s.Id != reply.U32("id"))
                {
                    s.Invalidated = true;
                    s = null;
                }
                if (s == null)
                {
                    s = new KeyState(key, reply);
                    byKey[key] = s;
                    keys[s.Id] = s;
                }
                else if (reply["data"] is byte[] data)
                {
                    s.Data = data;
                    s.Fresh = true;
                    s.Version = reply.U64("version");
                }
                s.Counts[policy]++;
                return s;
            }
        }

        Pointer NewPointer(KeyState s, Policy policy)
        {
            var p = new Pointer(this, s, policy);
            lock (sync) s.Pointers.Add(p);
            return p;
        }

        /// <summary>Creates <paramref name="key"/> with <paramref name="size"/> zero bytes (or opens it with
        /// <paramref name="openExisting"/>) and returns a pointer. Rejects with EZIPC_KEY_EXISTS,
        /// EZIPC_INVALID_KEY, EZIPC_BAD_REQUEST, EZIPC_PERMISSION_DENIED, EZIPC_BLOCK_TOO_LARGE, ….</summary>
        public Task<Pointer> AllocateAsync(string key, int size, Policy policy = Policy.Poll, bool persistent = false, bool openExisting = false)
        {
            if (size < 1) throw new ArgumentOutOfRangeException(nameof(size), "size must be a positive integer, got " + size);
            return Allocate(key, size, policy, persistent, openExisting);
        }

        async Task<Pointer> Allocate(string key, int size, Policy policy, bool persistent, bool openExisting)
        {
            var got = new OpenedReply(this, key, (int)policy);
            await AskAsync("allocate", Body.Of("key", key, "kind", KindBytes, "size", size, "policy", (int)policy, "persistent", persistent, "ifExists", openExisting ? 1 : 0), null, false, got.Apply).ConfigureAwait(false);
            return NewPointer(got.State, policy);
        }

        /// <summary>A pointer on an existing key; null if it was never created (rejects with EZIPC_KEY_DISPOSED
        /// if it was disposed).</summary>
        public async Task<Pointer> WatchAsync(string key, Policy policy = Policy.Poll)
        {
            var got = new OpenedReply(this, key, (int)policy);
            try
            {
                await AskAsync("watch", Body.Of("key", key, "policy", (int)policy), null, false, got.Apply).ConfigureAwait(false);
            }
            catch (EzipcException e) when (e.Code == "EZIPC_KEY_NOT_FOUND")
            {
                return null;
            }
            return NewPointer(got.State, policy);
        }

        /// <summary>A JSON config variable, created empty if missing.</summary>
        public async Task<ConfigVar> ConfigAsync(string key, Policy policy = Policy.Poll, bool persistent = true)
        {
            var got = new OpenedReply(this, key, (int)policy);
            await AskAsync("allocate", Body.Of("key", key, "kind", KindJson, "size", 0, "policy", (int)policy, "persistent", persistent, "ifExists", 1), null, false, got.Apply).ConfigureAwait(false);
            return new ConfigVar(NewPointer(got.State, policy));
        }

        /// <summary>The value and version of a key without holding it; null if there is none.</summary>
        public async Task<Versioned> PeekAsync(string key)
        {
            try
            {
                var r = (await AskAsync("peek", Body.Of("key", key)).ConfigureAwait(false)).Body;
                return new Versioned { Data = (byte[])r["data"] ?? new byte[0], Version = r.U64("version") };
            }
            catch (EzipcException e) when (e.Code == "EZIPC_KEY_NOT_FOUND" || e.Code == "EZIPC_KEY_DISPOSED")
            {
                return null;
            }
        }

        /// <summary>What the hub knows of a key; holds nothing and revives nothing.</summary>
        public async Task<KeyInfo> InfoAsync(string key)
        {
            var r = (await AskAsync("info", Body.Of("key", key)).ConfigureAwait(false)).Body;
            var state = new[] { "none", "live", "grace", "disposed" }[r.Long("state")];
            if (state == "none" || state == "disposed") return new KeyInfo { State = state };
            return new KeyInfo
            {
                State = state,
                Kind = r.Long("kind") == KindJson ? "json" : "bytes",
                Size = (int)r.Long("size"),
                Version = r.U64("version"),
                Refcount = (int)r.Long("refcount"),
                Persistent = r.Bool("persistent"),
            };
        }

        internal async Task<CasResult> WriteAsync(KeyState s, byte[] data, int offset, ulong? expect)
        {
            var r = await AskAsync("write", Body.Of("id", s.Id, "offset", offset, "expect", expect, "data", data), s).ConfigureAwait(false);
            return new CasResult { Ok = r.Name == "ok", Version = Learnt(s, r.Body.U64("version")) };
        }

        internal async Task<CasResult> ConfigOpAsync(KeyState s, int op, string json)
        {
            var r = await AskAsync("config", Body.Of("id", s.Id, "op", op, "json", json), s).ConfigureAwait(false);
            return new CasResult { Ok = r.Name == "ok", Version = Learnt(s, r.Body.U64("version")) };
        }

        /// <summary>A version the hub named in an answer (a write's, a conflict's) is known from then on: by a
        /// request pointer, which keeps no copy for the hub to update, and by a lazy one whose copy went stale
        /// earlier (the hub says so once): the copy is then stale. A poll copy gets there by the hub's pushes,
        /// which come first.</summary>
        ulong Learnt(KeyState s, ulong version)
        {
            lock (sync)
            {
                if (version > s.Version && s.Policy != 2)
                {
                    s.Version = version;
                    s.Fresh = false;
                }
            }
            return version;
        }

        internal void Release(Pointer p)
        {
            var s = p.State;
            int pol = (int)p.Policy;
            bool send;
            lock (sync)
            {
                s.Pointers.Remove(p);
                if (s.Invalidated || s.Counts[pol] == 0) return;
                s.Counts[pol]--;
                if (s.Policy < 1)
                {
                    s.Data = null;
                    s.Fresh = false;
                }
                if (s.Counts[0] + s.Counts[1] + s.Counts[2] == 0)
                {
                    keys.Remove(s.Id);
                    byKey.Remove(s.Key);
                }
                send = Status == ClientStatus.Connected; // else the resync tells the hub the counts
            }
            if (send)
            {
                try
                {
                    Send("release", Body.Of("id", s.Id, "policy", pol));
                }
                catch (EzipcException)
                {
                    // lost meanwhile: the resync (or the hub's cleanup) accounts for it
                }
            }
        }

        void Invalidate(KeyState s)
        {
            s.Invalidated = true;
            keys.Remove(s.Id);
            if (byKey.TryGetValue(s.Key, out var cur) && cur == s) byKey.Remove(s.Key);
            s.SetStatus(PointerStatus.Invalidated);
            foreach (var p in s.Pointers.ToArray()) p.End();
        }

        /// <summary>update, stale, invalidated (under the client's lock, on the reader thread).</summary>
        void DispatchVar(string name, Body b)
        {
            if (!keys.TryGetValue(b.U32("id"), out var s)) return;
            if (name == "invalidated")
            {
                Invalidate(s);
                return;
            }
            ulong version = b.U64("version");
            if (name == "update")
            {
                if (version < s.Version) return;
                s.Version = version;
                if (s.Policy >= 1)
                {
                    s.Data = b.Bytes("data");
                    s.Size = s.Data.Length;
                    s.Fresh = true;
                }
                foreach (var p in s.Pointers.ToArray()) p.Emit(s.Version, s.Data);
                return;
            }
            if (version <= s.Version && s.Fresh) return; // stale for what this client already has
            s.Version = Math.Max(s.Version, version);
            s.Fresh = false;
            foreach (var p in s.Pointers.ToArray()) p.Emit(s.Version, null);
        }

        List<KeyState> HeldKeys()
        {
            var held = new List<KeyState>();
            foreach (var s in keys.Values)
                if (s.Counts[0] + s.Counts[1] + s.Counts[2] > 0 && !s.Invalidated) held.Add(s);
            return held;
        }

        async Task ResyncKeyAsync(KeyState s)
        {
            // Applied as the reply is dispatched (reader thread, under the lock), before the frames after it: an
            // update for the key that follows its `opened` must find the new id, and must not be overwritten by
            // this older value.
            Action<Incoming> apply = reply =>
            {
                var r = reply.Body;
                if (keys.TryGetValue(s.Id, out var cur) && cur == s) keys.Remove(s.Id);
                s.Id = r.U32("id");
                keys[s.Id] = s;
                bool changed = r.U64("version") != s.Version;
                s.Version = r.U64("version");
                s.Size = (int)r.Long("size");
                if (r["data"] is byte[] data)
                {
                    s.Data = data;
                    s.Fresh = true;
                }
                else if (changed) s.Fresh = false;
                s.SetStatus(PointerStatus.Live);
                if (changed)
                    foreach (var p in s.Pointers.ToArray()) p.Emit(s.Version, s.Fresh ? s.Data : null);
            };
            try
            {
                var counts = new List<object> { s.Counts[0], s.Counts[1], s.Counts[2] };
                await AskAsync("resync", Body.Of("key", s.Key, "id", s.Id, "counts", counts, "version", s.Version), null, true, apply).ConfigureAwait(false);
            }
            catch (EzipcException e) when (e.Code == "EZIPC_KEY_DISPOSED" || e.Code == "EZIPC_KEY_NOT_FOUND")
            {
                lock (sync) Invalidate(s);
            }
        }
    }
}
