/**
 * Long `publish` and `message` frames that arrive split across socket reads are kept and parsed as their
 * pieces, not joined (FrameDecoder's PiecesSink, parsePublishPieces, parseMessagePieces, entries kept in
 * pieces). A raw publisher writes each frame in parts, waiting until the hub has read one before it writes
 * the next, so the hub sees exactly these reads; subscribers must get every message intact, in order, live
 * and replayed with a small prefetch (which sends parts of entries kept in pieces).
 */
import assert from "node:assert/strict";
import net from "node:net";
import { describe, it } from "node:test";
import { connect, HUB_PROTOCOL_VERSION, type TopicMessage } from "../../src/index.js";
import { until, within } from "../helpers.js";
import { withHub } from "../hub/hubs.js";
import { proto } from "../hub/raw-client.js";

const RECORDS = 8;
const PAYLOAD = 5000;

function framed(body: Uint8Array): Buffer {
  const header = Buffer.alloc(4);
  header.writeUInt32BE(body.length);
  return Buffer.concat([header, body]);
}

/** Payload `i` of frame `f`: its bytes say which it is. */
function payloadOf(f: number, i: number): Buffer {
  const b = Buffer.alloc(PAYLOAD + i * 37);
  for (let k = 0; k < b.length; k++) b[k] = (f * 31 + i * 7 + k) & 0xff;
  return b;
}

describe("long frames in pieces through the hub", () => {
  it("publishes split inside the head, a header, a payload and at many points arrive whole, live and replayed", async () => {
    await withHub({}, async (hub, url) => {
      const topic = "pieces.t";
      const live = await connect(url, { name: "live" });
      const got: TopicMessage[] = [];
      await live.subscribe(topic, {}, (m) => {
        got.push(m);
      });
      const { port } = new URL(url);
      const sock = net.connect(Number(port), "127.0.0.1");
      await within(new Promise((r) => sock.once("connect", r)), 5_000, "connect");
      sock.on("data", () => {});
      let written = 0;
      const baseIn = hub.metrics().bytesIn;
      /** Writes `bytes` and waits until the hub has read them (so the next write is a read of its own). */
      const write = async (bytes: Buffer) => {
        sock.write(bytes);
        written += bytes.length;
        await until(() => hub.metrics().bytesIn - baseIn >= written, "the hub read the part");
      };
      await write(
        framed(proto.encode("hello", { protocol: HUB_PROTOCOL_VERSION, name: "raw", features: [] })),
      );

      const frames: Buffer[] = [];
      for (let f = 0; f < 5; f++) {
        const records = Array.from({ length: RECORDS }, (_, i) => ({
          headers: [{ key: "i", value: `${f}.${i}` }],
          payload: payloadOf(f, i),
        }));
        frames.push(framed(proto.encode("publish", { rid: 0, topic, records })));
      }
      // Cut points in each frame's bytes (after its 4-byte length): inside the head (the first piece too
      // short to parse: joined), inside a record's header list, inside a payload, at many points.
      const cuts = [
        [4 + 3],
        [4 + 16 + 2],
        [4 + 16 + 9 + 2500],
        [4 + 3000, 4 + 12_000, 4 + 12_001, 4 + 30_000],
      ];
      for (const [f, frame] of frames.entries()) {
        const at = [...(cuts[f] ?? Array.from({ length: 20 }, (_, k) => 4 + (k + 1) * 2011)), frame.length];
        let from = 0;
        for (const c of at) {
          await write(frame.subarray(from, c));
          from = c;
        }
      }
      const total = frames.length * RECORDS;
      await until(() => got.length === total, `${total} messages live`, 10_000);

      const check = (ms: TopicMessage[], what: string) => {
        assert.equal(ms.length, total, what);
        ms.forEach((m, n) => {
          const f = Math.floor(n / RECORDS);
          const i = n % RECORDS;
          assert.equal(m.seq, BigInt(n + 1), `${what}: seq of message ${n}`);
          assert.equal(m.headers.i, `${f}.${i}`, `${what}: headers of message ${n}`);
          assert.ok(Buffer.from(m.payload).equals(payloadOf(f, i)), `${what}: payload of message ${n}`);
        });
      };
      check(got, "live");

      // Replayed from the history with a prefetch of 3: parts of each entry, from its offsets.
      const late = await connect(url, { name: "late" });
      const replayed: TopicMessage[] = [];
      await late.subscribe(topic, { init: "oldest", prefetch: 3 }, (m) => {
        replayed.push(m);
      });
      await until(() => replayed.length === total, `${total} messages replayed`, 10_000);
      check(replayed, "replayed");

      sock.destroy();
      await live.close();
      await late.close();
    });
  });
});
