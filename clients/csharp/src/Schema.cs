// The schema codec (docs/codecs.md, "Schema wire format") and the hub's message table (docs/protocol.md,
// "The hub protocol (version 2)").
//
// A type is a small tree (U8 … F64, Bool, Str, Bytes, Array, Fixed, Opt, Struct); a message body is a
// Body (field name → value). Little-endian numbers, LEB128 lengths, structs as their fields in order,
// optional as a presence byte. Decoded numbers: u8/u16/u32 as long, u64 as ulong, f64 as double; encoding
// takes any numeric value.
using System;
using System.Collections.Generic;
using System.Text;

namespace Ezipc
{
    /// <summary>A message body: field name → value.</summary>
    public sealed class Body : Dictionary<string, object>
    {
        public long Long(string f) => Convert.ToInt64(this[f]);
        public uint U32(string f) => Convert.ToUInt32(this[f]);
        public ulong U64(string f) => Convert.ToUInt64(this[f]);
        public double F64(string f) => Convert.ToDouble(this[f]);
        public bool Bool(string f) => (bool)this[f];
        public string Str(string f) => (string)this[f];
        public byte[] Bytes(string f) => (byte[])this[f];
        public List<object> List(string f) => (List<object>)this[f];

        /// <summary>A body from name, value, name, value, ….</summary>
        public static Body Of(params object[] pairs)
        {
            var b = new Body();
            for (int i = 0; i < pairs.Length; i += 2) b[(string)pairs[i]] = pairs[i + 1];
            return b;
        }
    }

    /// <summary>A named field of a struct (or a message of the table).</summary>
    public sealed class Field
    {
        public readonly string Name;
        public readonly SchemaType Type;

        public Field(string name, SchemaType type)
        {
            Name = name;
            Type = type;
        }
    }

    public sealed class SchemaType
    {
        public enum K { U8, U16, U32, U64, I32, F64, Bool, Str, Bytes, Array, Fixed, Opt, Struct }

        public readonly K Kind;
        public readonly SchemaType Element;
        public readonly int Count;
        public readonly Field[] Fields;

        SchemaType(K kind, SchemaType element = null, int count = 0, Field[] fields = null)
        {
            Kind = kind;
            Element = element;
            Count = count;
            Fields = fields;
        }

        public static readonly SchemaType U8 = new SchemaType(K.U8);
        public static readonly SchemaType U16 = new SchemaType(K.U16);
        public static readonly SchemaType U32 = new SchemaType(K.U32);
        public static readonly SchemaType U64 = new SchemaType(K.U64);
        public static readonly SchemaType F64 = new SchemaType(K.F64);
        public static readonly SchemaType Bool = new SchemaType(K.Bool);
        public static readonly SchemaType Str = new SchemaType(K.Str);
        public static readonly SchemaType Bytes = new SchemaType(K.Bytes);
        public static SchemaType Array(SchemaType t) => new SchemaType(K.Array, t);
        public static SchemaType Fixed(SchemaType t, int n) => new SchemaType(K.Fixed, t, n);
        public static SchemaType Opt(SchemaType t) => new SchemaType(K.Opt, t);
        public static SchemaType Struct(params Field[] fields) => new SchemaType(K.Struct, null, 0, fields);
    }

    /// <summary>Encodes and decodes the hub's messages.</summary>
    public static class Schema
    {
        static SchemaType U8 => SchemaType.U8;
        static SchemaType U16 => SchemaType.U16;
        static SchemaType U32 => SchemaType.U32;
        static SchemaType U64 => SchemaType.U64;
        static SchemaType F64 => SchemaType.F64;
        static SchemaType Bool => SchemaType.Bool;
        static SchemaType Str => SchemaType.Str;
        static SchemaType Bytes => SchemaType.Bytes;
        static SchemaType Arr(SchemaType t) => SchemaType.Array(t);
        static SchemaType Opt(SchemaType t) => SchemaType.Opt(t);
        static SchemaType S(params Field[] f) => SchemaType.Struct(f);
        static Field F(string name, SchemaType t) => new Field(name, t);

        static readonly SchemaType Headers = Arr(S(F("key", Str), F("value", Str)));
        static readonly SchemaType Record = S(F("headers", Headers), F("payload", Bytes));
        static readonly SchemaType Counts = SchemaType.Fixed(U32, 3);
        static readonly SchemaType Topics = Arr(S(F("name", Str), F("firstSeq", U64), F("lastSeq", U64), F("count", U32), F("bytes", F64), F("subscribers", U32), F("persist", Bool)));
        static readonly SchemaType Keys = Arr(S(F("key", Str), F("kind", U8), F("size", U32), F("version", U64), F("refcount", U32), F("persistent", Bool), F("state", U8), F("holders", Arr(S(F("client", Str), F("counts", Counts))))));

        /// <summary>The hub protocol, version 2: a message's index is its position.</summary>
        public static readonly Field[] Messages =
        {
            F("hello", S(F("protocol", U16), F("name", Str), F("resume", Opt(Str)), F("features", Arr(Str)))),
            F("welcome", S(F("protocol", U16), F("clientId", Str), F("resumed", Bool), F("hub", Str), F("features", Arr(Str)), F("maxBlockBytes", U32), F("label", Str))),
            F("error", S(F("rid", U32), F("code", Str), F("message", Str))),
            F("ok", S(F("rid", U32), F("version", U64))),
            F("allocate", S(F("rid", U32), F("key", Str), F("kind", U8), F("size", U32), F("policy", U8), F("persistent", Bool), F("ifExists", U8))),
            F("watch", S(F("rid", U32), F("key", Str), F("policy", U8))),
            F("opened", S(F("rid", U32), F("id", U32), F("kind", U8), F("size", U32), F("version", U64), F("persistent", Bool), F("created", Bool), F("data", Opt(Bytes)))),
            F("release", S(F("id", U32), F("policy", U8))),
            F("read", S(F("rid", U32), F("id", U32))),
            F("value", S(F("rid", U32), F("id", U32), F("version", U64), F("data", Bytes))),
            F("write", S(F("rid", U32), F("id", U32), F("offset", U32), F("expect", Opt(U64)), F("data", Bytes))),
            F("conflict", S(F("rid", U32), F("version", U64))),
            F("update", S(F("id", U32), F("version", U64), F("data", Bytes))),
            F("stale", S(F("id", U32), F("version", U64))),
            F("invalidated", S(F("id", U32), F("code", Str))),
            F("resync", S(F("rid", U32), F("key", Str), F("id", U32), F("counts", Counts), F("version", U64))),
            F("resyncDone", S(F("rid", U32))),
            F("config", S(F("rid", U32), F("id", U32), F("op", U8), F("json", Str))),
            F("list", S(F("rid", U32), F("pattern", Str))),
            F("listing", S(F("rid", U32), F("keys", Keys))),
            F("stats", S(F("rid", U32))),
            F("statsReply", S(F("rid", U32), F("json", Str))),
            F("peek", S(F("rid", U32), F("key", Str))),
            F("publish", S(F("rid", U32), F("topic", Str), F("records", Arr(Record)))),
            F("published", S(F("rid", U32), F("seq", U64), F("time", F64))),
            F("subscribe", S(F("rid", U32), F("sid", U32), F("pattern", Str), F("init", U8), F("fromSeq", U64), F("iter", U8), F("credit", U32), F("resume", Arr(S(F("topic", Str), F("seq", U64)))))),
            F("message", S(F("sid", U32), F("topic", Str), F("seq", U64), F("time", F64), F("publisher", Str), F("records", Arr(Record)))),
            F("gap", S(F("sid", U32), F("topic", Str), F("first", U64), F("last", U64))),
            F("credit", S(F("sid", U32), F("n", U32))),
            F("unsubscribe", S(F("sid", U32))),
            F("topics", S(F("rid", U32), F("pattern", Str))),
            F("topicList", S(F("rid", U32), F("topics", Topics))),
            F("topicConfig", S(F("rid", U32), F("topic", Str), F("maxBytes", U32), F("maxCount", U32), F("persist", Bool))),
            F("serve", S(F("rid", U32), F("topic", Str), F("host", Str), F("direct", Str))),
            F("unserve", S(F("topic", Str))),
            F("request", S(F("rid", U32), F("topic", Str), F("kind", U8), F("timeoutMs", U32), F("credit", U32), F("headers", Headers), F("payload", Bytes))),
            F("call", S(F("cid", U32), F("topic", Str), F("kind", U8), F("timeoutMs", U32), F("credit", U32), F("caller", Str), F("headers", Headers), F("payload", Bytes))),
            F("chunk", S(F("side", U8), F("id", U32), F("payload", Bytes))),
            F("flow", S(F("side", U8), F("id", U32), F("n", U32))),
            F("end", S(F("side", U8), F("id", U32), F("status", U8), F("code", Str), F("message", Str), F("payload", Bytes))),
            F("deadman", S(F("rid", U32), F("name", Str), F("op", U8))),
            F("deadmanState", S(F("rid", U32), F("taken", Bool), F("holder", Str), F("mine", Bool), F("epoch", U64))),
            F("routes", S(F("rid", U32), F("topic", Str))),
            F("routeList", S(F("rid", U32), F("topic", Str), F("routes", Arr(S(F("server", Str), F("host", Str), F("url", Str)))))),
            F("info", S(F("rid", U32), F("key", Str))),
            F("keyInfo", S(F("rid", U32), F("state", U8), F("kind", U8), F("size", U32), F("version", U64), F("refcount", U32), F("persistent", Bool))),
            F("publishFlow", S(F("topic", Str), F("held", Bool))),
            F("monitor", S(F("rid", U32), F("pattern", Str))),
            F("monitorReply", S(F("rid", U32), F("json", Str))),
            F("topicsPage", S(F("rid", U32), F("pattern", Str), F("after", Str), F("maxBytes", U32))),
            F("topicPage", S(F("rid", U32), F("topics", Topics), F("more", Bool))),
            F("listPage", S(F("rid", U32), F("pattern", Str), F("after", Str), F("maxBytes", U32))),
            F("listingPage", S(F("rid", U32), F("keys", Keys), F("more", Bool))),
        };

        static readonly Dictionary<string, int> Index = BuildIndex();

        /// <summary>A message's index on the wire (its position in <see cref="Messages"/>).</summary>
        public static int IndexOf(string name) => Index[name];

        static Dictionary<string, int> BuildIndex()
        {
            var d = new Dictionary<string, int>();
            for (int i = 0; i < Messages.Length; i++) d[Messages[i].Name] = i;
            return d;
        }

        /// <summary>A data frame's payload: u16 LE message index, then the body.</summary>
        public static byte[] Encode(string name, Body body)
        {
            int index = Index[name];
            var w = new Writer();
            w.U16((ushort)index);
            w.Value(Messages[index].Type, body);
            return w.ToArray();
        }

        /// <summary>One `record` (headers, payload) as `publish` carries it: the generic codec's bytes, faster.</summary>
        /// <summary>Headers within the wire's limits (docs/protocol.md): at most 64, keys of at most 256 UTF-8 bytes,
        /// values of at most 4096, none null; EZIPC_ENCODE otherwise. Every publish and request checks its headers here before
        /// anything is queued: a fire-and-forget publish with a bad header fails alone, not in a batch the hub refuses.</summary>
        public static void CheckHeaders(IDictionary<string, string> headers)
        {
            if (headers == null) return;
            if (headers.Count > 64) throw new EzipcException("EZIPC_ENCODE", headers.Count + " headers: at most 64");
            foreach (var kv in headers)
            {
                if (kv.Key == null || kv.Value == null) throw new EzipcException("EZIPC_ENCODE", "a header key or value is null");
                if (Encoding.UTF8.GetByteCount(kv.Key) > 256) throw new EzipcException("EZIPC_ENCODE", "a header key is over 256 bytes");
                if (Encoding.UTF8.GetByteCount(kv.Value) > 4096) throw new EzipcException("EZIPC_ENCODE", "header " + kv.Key + ": the value is over 4096 bytes");
            }
        }

        public static byte[] EncodeRecord(byte[] payload, IDictionary<string, string> headers)
        {
            CheckHeaders(headers);
            var w = new Writer();
            if (headers == null || headers.Count == 0) w.Byte(0);
            else
            {
                var list = new List<object>();
                foreach (var kv in headers) list.Add(Body.Of("key", kv.Key, "value", kv.Value));
                w.Value(Headers, list);
            }
            w.Value(SchemaType.Bytes, payload);
            return w.ToArray();
        }

        /// <summary>`publish` with records encoded by <see cref="EncodeRecord"/>.</summary>
        public static byte[] EncodePublish(uint rid, string topic, List<byte[]> records)
        {
            var w = new Writer();
            w.U16((ushort)Index["publish"]);
            w.Value(U32, rid);
            w.Value(Str, topic);
            w.Leb(records.Count);
            foreach (var r in records) w.Raw(r, false);
            return w.ToArray();
        }

        /// <summary>The message's name and body; EZIPC_UNKNOWN_MESSAGE / EZIPC_DECODE for what does not decode.</summary>
        public static (string Name, Body Body) Decode(byte[] payload)
        {
            if (payload.Length < 2) throw new EzipcException("EZIPC_DECODE", "message shorter than its index");
            int index = payload[0] | payload[1] << 8;
            if (index >= Messages.Length) throw new EzipcException("EZIPC_UNKNOWN_MESSAGE", "message index " + index);
            var r = new Reader(payload, 2);
            var body = (Body)r.Value(Messages[index].Type);
            if (r.At != payload.Length)
                throw new EzipcException("EZIPC_DECODE", (payload.Length - r.At) + " trailing bytes after " + Messages[index].Name);
            return (Messages[index].Name, body);
        }

        sealed class Writer
        {
            byte[] buf = new byte[64];
            int len;

            void Need(int n)
            {
                if (len + n <= buf.Length) return;
                var b = new byte[Math.Max(buf.Length * 2, len + n)];
                Buffer.BlockCopy(buf, 0, b, 0, len);
                buf = b;
            }

            public byte[] ToArray()
            {
                var b = new byte[len];
                Buffer.BlockCopy(buf, 0, b, 0, len);
                return b;
            }

            public void Byte(byte v)
            {
                Need(1);
                buf[len++] = v;
            }

            public void U16(ushort v)
            {
                Byte((byte)v);
                Byte((byte)(v >> 8));
            }

            void Le(ulong v, int n)
            {
                Need(n);
                for (int i = 0; i < n; i++) buf[len++] = (byte)(v >> (8 * i));
            }

            public void Leb(int n)
            {
                uint v = (uint)n;
                while (true)
                {
                    byte b = (byte)(v & 0x7f);
                    v >>= 7;
                    if (v != 0) Byte((byte)(b | 0x80));
                    else
                    {
                        Byte(b);
                        return;
                    }
                }
            }

            public void Raw(byte[] b, bool withLength = true)
            {
                if (withLength) Leb(b.Length);
                Need(b.Length);
                Buffer.BlockCopy(b, 0, buf, len, b.Length);
                len += b.Length;
            }

            public void Value(SchemaType t, object v)
            {
                switch (t.Kind)
                {
                    case SchemaType.K.U8: Byte(Convert.ToByte(v)); break;
                    case SchemaType.K.U16: U16(Convert.ToUInt16(v)); break;
                    case SchemaType.K.U32: Le(Convert.ToUInt32(v), 4); break;
                    case SchemaType.K.I32: Le((uint)Convert.ToInt32(v), 4); break;
                    case SchemaType.K.U64: Le(Convert.ToUInt64(v), 8); break;
                    case SchemaType.K.F64: Le((ulong)BitConverter.DoubleToInt64Bits(Convert.ToDouble(v)), 8); break;
                    case SchemaType.K.Bool: Byte((bool)v ? (byte)1 : (byte)0); break;
                    case SchemaType.K.Str: Raw(Encoding.UTF8.GetBytes((string)v)); break;
                    case SchemaType.K.Bytes: Raw((byte[])v ?? new byte[0]); break;
                    case SchemaType.K.Array:
                    {
                        var list = (System.Collections.IList)v;
                        Leb(list.Count);
                        foreach (var e in list) Value(t.Element, e);
                        break;
                    }
                    case SchemaType.K.Fixed:
                    {
                        var list = (System.Collections.IList)v;
                        if (list.Count != t.Count) throw new ArgumentException("fixed array of " + t.Count + " needs " + t.Count + " elements");
                        foreach (var e in list) Value(t.Element, e);
                        break;
                    }
                    case SchemaType.K.Opt:
                        if (v == null) Byte(0);
                        else
                        {
                            Byte(1);
                            Value(t.Element, v);
                        }
                        break;
                    case SchemaType.K.Struct:
                    {
                        var d = (IDictionary<string, object>)v;
                        foreach (var f in t.Fields)
                        {
                            if (!d.TryGetValue(f.Name, out var fv) && f.Type.Kind != SchemaType.K.Opt)
                                throw new ArgumentException("field " + f.Name + " is missing");
                            Value(f.Type, fv);
                        }
                        break;
                    }
                }
            }
        }

        /// <summary>A `message` frame decoded without the generic walk (the frame a subscriber gets most).</summary>
        internal sealed class MessageFrame
        {
            public uint Sid;
            public string Topic;
            public ulong Seq;
            public double Time;
            public string Publisher;
            public readonly List<KeyValuePair<Dictionary<string, string>, byte[]>> Records = new List<KeyValuePair<Dictionary<string, string>, byte[]>>();
        }

        internal const int MessageIndex = 26;

        /// <summary>`message` as <see cref="Decode"/> would decode it (same checks, same codes), into records.</summary>
        internal static MessageFrame DecodeMessage(byte[] payload)
        {
            var r = new Reader(payload, 2);
            var m = new MessageFrame
            {
                Sid = (uint)(long)r.Value(U32),
                Topic = (string)r.Value(Str),
                Seq = (ulong)r.Value(U64),
                Time = (double)r.Value(F64),
                Publisher = (string)r.Value(Str),
            };
            int n = r.Count();
            for (int i = 0; i < n; i++)
            {
                Dictionary<string, string> headers = null;
                int h = r.Count();
                for (int j = 0; j < h; j++)
                {
                    if (headers == null) headers = new Dictionary<string, string>();
                    var k = (string)r.Value(Str);
                    headers[k] = (string)r.Value(Str);
                }
                m.Records.Add(new KeyValuePair<Dictionary<string, string>, byte[]>(headers, (byte[])r.Value(Bytes)));
            }
            if (r.At != payload.Length)
                throw new EzipcException("EZIPC_DECODE", (payload.Length - r.At) + " trailing bytes after message");
            return m;
        }

        sealed class Reader
        {
            readonly byte[] data;
            public int At;

            public Reader(byte[] data, int at)
            {
                this.data = data;
                At = at;
            }

            void Need(long n)
            {
                if (At + n > data.Length) throw new EzipcException("EZIPC_DECODE", "truncated message");
            }

            ulong Le(int n)
            {
                Need(n);
                ulong v = 0;
                for (int i = 0; i < n; i++) v |= (ulong)data[At + i] << (8 * i);
                At += n;
                return v;
            }

            int Leb()
            {
                long n = 0;
                for (int shift = 0; shift < 35; shift += 7)
                {
                    Need(1);
                    byte b = data[At++];
                    n |= (long)(b & 0x7f) << shift;
                    if ((b & 0x80) == 0)
                    {
                        if (n > int.MaxValue) throw new EzipcException("EZIPC_DECODE", "length " + n);
                        return (int)n;
                    }
                }
                throw new EzipcException("EZIPC_DECODE", "length over 5 bytes");
            }

            /// <summary>An array's element count, refused when the elements cannot fit.</summary>
            public int Count()
            {
                int n = Leb();
                if (n > data.Length - At) throw new EzipcException("EZIPC_DECODE", n + " elements cannot fit");
                return n;
            }

            byte[] Raw()
            {
                int n = Leb();
                Need(n);
                var b = new byte[n];
                Buffer.BlockCopy(data, At, b, 0, n);
                At += n;
                return b;
            }

            byte Flag(string what)
            {
                Need(1);
                byte b = data[At++];
                if (b > 1) throw new EzipcException("EZIPC_DECODE", what + " byte " + b);
                return b;
            }

            public object Value(SchemaType t)
            {
                switch (t.Kind)
                {
                    case SchemaType.K.U8: return (long)Le(1);
                    case SchemaType.K.U16: return (long)Le(2);
                    case SchemaType.K.U32: return (long)Le(4);
                    case SchemaType.K.I32: return (long)(int)(uint)Le(4);
                    case SchemaType.K.U64: return Le(8);
                    case SchemaType.K.F64: return BitConverter.Int64BitsToDouble((long)Le(8));
                    case SchemaType.K.Bool: return Flag("bool") == 1;
                    case SchemaType.K.Str:
                        try
                        {
                            return new UTF8Encoding(false, true).GetString(Raw());
                        }
                        catch (ArgumentException)
                        {
                            throw new EzipcException("EZIPC_DECODE", "string is not UTF-8");
                        }
                    case SchemaType.K.Bytes: return Raw();
                    case SchemaType.K.Array:
                    {
                        int n = Leb();
                        if (n > data.Length - At) throw new EzipcException("EZIPC_DECODE", n + " elements cannot fit");
                        var list = new List<object>(n);
                        for (int i = 0; i < n; i++) list.Add(Value(t.Element));
                        return list;
                    }
                    case SchemaType.K.Fixed:
                    {
                        var list = new List<object>(t.Count);
                        for (int i = 0; i < t.Count; i++) list.Add(Value(t.Element));
                        return list;
                    }
                    case SchemaType.K.Opt: return Flag("optional") == 1 ? Value(t.Element) : null;
                    default:
                    {
                        var b = new Body();
                        foreach (var f in t.Fields) b[f.Name] = Value(f.Type);
                        return b;
                    }
                }
            }
        }
    }
}
