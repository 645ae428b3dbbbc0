// Frames and the schema codec, byte by byte (docs/protocol.md's examples); no hub needed.
using System;
using System.Collections.Generic;
using System.Linq;
using Ezipc;
using NUnit.Framework;

[TestFixture]
public class WireTests
{
    static byte[] B(params int[] b) => b.Select(x => (byte)x).ToArray();

    [Test]
    public void DataAndControlFramesAsDocumented()
    {
        CollectionAssert.AreEqual(B(0, 0, 0, 2, 0x68, 0x69), Wire.DataFrame(B(0x68, 0x69)));
        CollectionAssert.AreEqual(B(0x80, 0, 0, 1, 1), Wire.ControlFrame(Wire.Ping));
        CollectionAssert.AreEqual(B(0x80, 0, 0, 4, 3, 0x62, 0x79, 0x65), Wire.ControlFrame(Wire.Close, B(0x62, 0x79, 0x65)));
    }

    [Test]
    public void TheDecoderGivesTheSameFramesWhateverTheChunking()
    {
        var stream = Wire.DataFrame(B(1, 2, 3)).Concat(Wire.ControlFrame(Wire.Ping)).Concat(Wire.DataFrame(new byte[0])).Concat(Wire.DataFrame(B(9))).ToArray();
        for (int chunk = 1; chunk <= stream.Length; chunk++)
        {
            var d = new FrameDecoder();
            var frames = new List<Frame>();
            for (int at = 0; at < stream.Length; at += chunk) frames.AddRange(d.Feed(stream, at, Math.Min(chunk, stream.Length - at)));
            Assert.AreEqual(4, frames.Count, "chunk " + chunk);
            CollectionAssert.AreEqual(B(1, 2, 3), frames[0].Body);
            Assert.IsTrue(frames[1].IsControl);
            Assert.AreEqual(Wire.Ping, frames[1].ControlType);
            Assert.AreEqual(0, frames[2].Body.Length);
            CollectionAssert.AreEqual(B(9), frames[3].Body);
        }
    }

    [Test]
    public void OversizeAndBadControlFramesAreRefusedBeforeTheirBody()
    {
        var e = Assert.Throws<EzipcException>(() => new FrameDecoder(100).Feed(B(0, 0, 0, 101), 0, 4));
        Assert.AreEqual("EZIPC_FRAME_TOO_LARGE", e.Code);
        e = Assert.Throws<EzipcException>(() => new FrameDecoder().Feed(B(0x80, 0, 0, 0), 0, 4));
        Assert.AreEqual("EZIPC_PROTOCOL", e.Code);
        e = Assert.Throws<EzipcException>(() => new FrameDecoder().Feed(B(0x80, 0, 0, 1, 9), 0, 5));
        Assert.AreEqual("EZIPC_PROTOCOL", e.Code);
    }

    [Test]
    public void WatchEncodesAsTheProtocolExampleSays()
    {
        var bytes = Schema.Encode("watch", Body.Of("rid", 7, "key", "temp", "policy", 2));
        CollectionAssert.AreEqual(B(5, 0, 7, 0, 0, 0, 4, 0x74, 0x65, 0x6d, 0x70, 2), bytes);
        var m = Schema.Decode(bytes);
        Assert.AreEqual("watch", m.Name);
        Assert.AreEqual(7, m.Body.Long("rid"));
        Assert.AreEqual("temp", m.Body.Str("key"));
    }

    [Test]
    public void EveryMessageRoundTrips()
    {
        var msg = Body.Of("sid", 3, "topic", "a.b", "seq", ulong.MaxValue, "time", 1.5, "publisher", "p#1",
            "records", new List<object> { Body.Of("headers", new List<object> { Body.Of("key", "k", "value", "v") }, "payload", B(1, 2)) });
        var m = Schema.Decode(Schema.Encode("message", msg));
        Assert.AreEqual(ulong.MaxValue, m.Body.U64("seq"));
        Assert.AreEqual(1.5, m.Body.F64("time"));
        var rec = (Body)m.Body.List("records")[0];
        CollectionAssert.AreEqual(B(1, 2), rec.Bytes("payload"));
        var opened = Schema.Decode(Schema.Encode("opened", Body.Of("rid", 1, "id", 2, "kind", 0, "size", 4, "version", 9UL, "persistent", true, "created", false, "data", null)));
        Assert.IsNull(opened.Body["data"]);
        var page = Schema.Decode(Schema.Encode("topicPage", Body.Of("rid", 5, "topics", new List<object>
        {
            Body.Of("name", "a.b", "firstSeq", 1UL, "lastSeq", 2UL, "count", 2, "bytes", 130.0, "subscribers", 1, "persist", false),
        }, "more", true)));
        Assert.AreEqual(50, Schema.IndexOf("topicPage"));
        Assert.IsTrue(page.Body.Bool("more"));
        Assert.AreEqual("a.b", ((Body)page.Body.List("topics")[0]).Str("name"));
        Assert.AreEqual(53, Schema.Messages.Length);
    }

    [Test]
    public void TheFastPathsGiveTheGenericCodecsBytesAndValues()
    {
        var headers = new Dictionary<string, string> { { "k", "v\u00e9" } };
        var records = new List<object>
        {
            Body.Of("headers", new List<object>(), "payload", new byte[64]),
            Body.Of("headers", new List<object> { Body.Of("key", "k", "value", "v\u00e9") }, "payload", new byte[0]),
        };
        var generic = Schema.Encode("publish", Body.Of("rid", 0, "topic", "a.b", "records", records));
        var fast = Schema.EncodePublish(0, "a.b", new List<byte[]> { Schema.EncodeRecord(new byte[64], null), Schema.EncodeRecord(new byte[0], headers) });
        CollectionAssert.AreEqual(generic, fast);
        var frame = Schema.Encode("message", Body.Of("sid", 7, "topic", "a.b", "seq", 1UL << 60, "time", 1.25, "publisher", "p#abc", "records", records));
        var m = Schema.DecodeMessage(frame);
        Assert.AreEqual(7u, m.Sid);
        Assert.AreEqual("a.b", m.Topic);
        Assert.AreEqual(1UL << 60, m.Seq);
        Assert.AreEqual(1.25, m.Time);
        Assert.AreEqual("p#abc", m.Publisher);
        Assert.AreEqual(2, m.Records.Count);
        Assert.IsNull(m.Records[0].Key);
        Assert.AreEqual(64, m.Records[0].Value.Length);
        Assert.AreEqual("v\u00e9", m.Records[1].Key["k"]);
        foreach (var bad in new[] { frame.Take(frame.Length - 1).ToArray(), frame.Concat(B(0)).ToArray(), frame.Take(7).ToArray() })
            Assert.AreEqual("EZIPC_DECODE", Assert.Throws<EzipcException>(() => Schema.DecodeMessage(bad)).Code);
    }

    [Test]
    public void WhatDoesNotDecodeIsCoded()
    {
        Assert.AreEqual("EZIPC_DECODE", Assert.Throws<EzipcException>(() => Schema.Decode(B(5))).Code);
        Assert.AreEqual("EZIPC_UNKNOWN_MESSAGE", Assert.Throws<EzipcException>(() => Schema.Decode(B(200, 0))).Code);
        Assert.AreEqual("EZIPC_DECODE", Assert.Throws<EzipcException>(() => Schema.Decode(B(5, 0, 7, 0, 0, 0, 9, 0x74))).Code);
        Assert.AreEqual("EZIPC_DECODE", Assert.Throws<EzipcException>(() => Schema.Decode(B(3, 0, 1, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0xff))).Code, "a trailing byte");
        Assert.AreEqual("EZIPC_DECODE", Assert.Throws<EzipcException>(() => Schema.Decode(B(14, 0, 1, 0, 0, 0, 1, 0xff))).Code, "a string that is not UTF-8");
    }
}
