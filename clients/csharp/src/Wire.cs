// Frames (docs/protocol.md, "Framing" and "Control frames").
//
// A frame is a 4-byte big-endian word W and a body: W < 2^31 is a data frame of W bytes; W >= 2^31 a
// control frame of W - 2^31 bytes (1..1024: a type byte and its argument). The decoder is a pure state
// machine: feed it bytes, get frames out, in order, whatever the chunking.
using System;
using System.Collections.Generic;

namespace Ezipc
{
    /// <summary>One decoded frame: a data frame's payload, or a control frame's type and argument.</summary>
    public struct Frame
    {
        public bool IsControl;
        public byte ControlType;
        public byte[] Body;
    }

    public static class Wire
    {
        public const uint ControlBit = 0x8000_0000;
        public const byte Ping = 0x01;
        public const byte Pong = 0x02;
        public const byte Close = 0x03;
        public const int MaxControl = 1024;
        public const int DefaultMaxFrame = 16 * 1024 * 1024;
        /// <summary>Bytes a `publish` or `request` frame leaves free under the frame limit: the hub forwards what
        /// it carries with fields of its own added (docs/protocol.md, "Frame sizes").</summary>
        public const int ForwardReserve = 1024;
        public const int ForwardLimit = DefaultMaxFrame - ForwardReserve;

        /// <summary>Throws EZIPC_MESSAGE_TOO_LARGE for a frame the hub would refuse or could not forward
        /// (nothing is sent; the connection goes on).</summary>
        public static void CheckFrame(string name, int size)
        {
            int limit = name == "publish" || name == "request" ? ForwardLimit : DefaultMaxFrame;
            if (size > limit)
                throw new EzipcException("EZIPC_MESSAGE_TOO_LARGE", name + ": a frame of " + size + " bytes is over the " + limit + " it may take; nothing was sent");
        }

        /// <summary>The bytes of one data frame.</summary>
        public static byte[] DataFrame(byte[] payload)
        {
            var out_ = new byte[4 + payload.Length];
            WriteWord(out_, (uint)payload.Length);
            Buffer.BlockCopy(payload, 0, out_, 4, payload.Length);
            return out_;
        }

        /// <summary>The bytes of one control frame (PING, PONG, CLOSE with a reason).</summary>
        public static byte[] ControlFrame(byte type, byte[] argument = null)
        {
            int n = 1 + (argument?.Length ?? 0);
            var out_ = new byte[4 + n];
            WriteWord(out_, ControlBit | (uint)n);
            out_[4] = type;
            if (argument != null) Buffer.BlockCopy(argument, 0, out_, 5, argument.Length);
            return out_;
        }

        static void WriteWord(byte[] b, uint w)
        {
            b[0] = (byte)(w >> 24);
            b[1] = (byte)(w >> 16);
            b[2] = (byte)(w >> 8);
            b[3] = (byte)w;
        }
    }

    /// <summary>Turns a byte stream into frames. Throws EZIPC_FRAME_TOO_LARGE / EZIPC_PROTOCOL before
    /// buffering a body it refuses.</summary>
    public sealed class FrameDecoder
    {
        readonly int maxFrameBytes;
        byte[] buf = new byte[4096];
        int len;

        public FrameDecoder(int maxFrameBytes = Wire.DefaultMaxFrame)
        {
            this.maxFrameBytes = maxFrameBytes;
        }

        /// <summary>Adds <paramref name="count"/> bytes and returns every frame now complete.</summary>
        public List<Frame> Feed(byte[] chunk, int offset, int count)
        {
            if (len + count > buf.Length)
            {
                var bigger = new byte[Math.Max(buf.Length * 2, len + count)];
                Buffer.BlockCopy(buf, 0, bigger, 0, len);
                buf = bigger;
            }
            Buffer.BlockCopy(chunk, offset, buf, len, count);
            len += count;
            var frames = new List<Frame>();
            int at = 0;
            while (len - at >= 4)
            {
                uint w = (uint)(buf[at] << 24 | buf[at + 1] << 16 | buf[at + 2] << 8 | buf[at + 3]);
                bool control = (w & Wire.ControlBit) != 0;
                long size = control ? w - Wire.ControlBit : w;
                if (control && (size < 1 || size > Wire.MaxControl))
                    throw new EzipcException("EZIPC_PROTOCOL", "control frame of " + size + " bytes");
                if (!control && size > maxFrameBytes)
                    throw new EzipcException("EZIPC_FRAME_TOO_LARGE", "frame of " + size + " bytes");
                if (len - at < 4 + size) break;
                var body = new byte[size];
                Buffer.BlockCopy(buf, at + 4, body, 0, (int)size);
                at += 4 + (int)size;
                if (control)
                {
                    byte type = body[0];
                    if (type != Wire.Ping && type != Wire.Pong && type != Wire.Close)
                        throw new EzipcException("EZIPC_PROTOCOL", "unknown control frame type " + type);
                    var arg = new byte[body.Length - 1];
                    Buffer.BlockCopy(body, 1, arg, 0, arg.Length);
                    frames.Add(new Frame { IsControl = true, ControlType = type, Body = arg });
                }
                else
                {
                    frames.Add(new Frame { Body = body });
                }
            }
            if (at > 0)
            {
                Buffer.BlockCopy(buf, at, buf, 0, len - at);
                len -= at;
            }
            return frames;
        }
    }
}
