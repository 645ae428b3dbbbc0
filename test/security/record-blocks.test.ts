/**
 * Sealed records' reused memory (src/security/record-blocks.ts): a block is taken back only once the socket
 * has flushed its bytes, never while they are queued; only for plain sockets; and an encrypted connection
 * that reuses blocks under backpressure delivers every byte intact, in both directions (records opened in
 * place across reads on the way in).
 */
import assert from "node:assert/strict";
import crypto from "node:crypto";
import net from "node:net";
import { Duplex } from "node:stream";
import { describe, it } from "node:test";
import { dial, listen } from "../../src/index.js";
import { secureDial, secureListen } from "../../src/security/channel.js";
import { freeRecordBlocks, RecordBlocks } from "../../src/security/record-blocks.js";
import { MAX_RECORD_BYTES } from "../../src/security/records.js";
import { dh25519 } from "../../src/security/suite.js";
import { nextEvent, within } from "../helpers.js";

describe("record blocks", () => {
  it("are only for plain sockets", () => {
    assert.equal(RecordBlocks.for(new Duplex()), undefined, "a stream that passes buffers on");
    assert.ok(RecordBlocks.for(new net.Socket()));
  });

  it("a block still queued on the socket is never handed out again; a flushed one is", async () => {
    const server = net.createServer();
    server.listen(0, "127.0.0.1");
    await nextEvent(server, "listening");
    const port = (server.address() as net.AddressInfo).port;
    const accepted = nextEvent<[net.Socket]>(server, "connection");
    const writer = net.connect(port, "127.0.0.1");
    await nextEvent(writer, "connect");
    const [reader] = await accepted;
    reader.pause(); // nothing is read: the writes back up
    try {
      const blocks = RecordBlocks.for(writer)!;
      const inFlight = new Set<ArrayBufferLike>();
      const handedOut = new Set<ArrayBufferLike>();
      // 128 blocks of 64 KiB (8 MiB) are more than the kernel takes from a socket nobody reads.
      for (let i = 0; i < 128; i++) {
        const b = blocks.take(MAX_RECORD_BYTES);
        assert.equal(b.length, MAX_RECORD_BYTES);
        assert.ok(!inFlight.has(b.buffer), `block ${i} was handed out while an earlier one was queued`);
        handedOut.add(b.buffer);
        b.fill(i);
        writer.write(b);
        blocks.written([b]);
        if (writer.writableLength > 0) inFlight.add(b.buffer);
      }
      assert.ok(writer.writableLength > 0, "the socket queues");
      assert.equal(
        blocks.take(100).buffer.byteLength !== MAX_RECORD_BYTES,
        true,
        "a small record is no block",
      );
      // Read everything: the queue empties, and the next take reuses a block.
      reader.resume();
      if (writer.writableLength > 0) await within(nextEvent(writer, "drain"), 10_000, "drain");
      const again = blocks.take(MAX_RECORD_BYTES);
      assert.ok(handedOut.has(again.buffer), "a flushed block comes back");
      assert.equal(freeRecordBlocks(), 31, "the pool keeps 32 blocks at most (one was just taken)");
    } finally {
      writer.destroy();
      reader.destroy();
      server.close();
    }
  });

  it("an encrypted connection under backpressure delivers every byte intact, both ways", async () => {
    const hubKey = dh25519.generateKeyPair();
    const l = await listen("tcp://127.0.0.1:0", { upgrade: secureListen({ staticKey: hubKey }) });
    const frames = 3_000;
    const make = (i: number) => {
      // Sizes across the record boundary and the copy threshold; the payload's hash is its last 32 bytes.
      const body = crypto.randomBytes(40 + ((i * 7919) % 30_000));
      body.writeUInt32BE(i, 0);
      return Buffer.concat([body, crypto.createHash("sha256").update(body).digest()]);
    };
    const check = (m: Uint8Array, i: number, who: string) => {
      const b = Buffer.from(m);
      const body = b.subarray(0, b.length - 32);
      assert.equal(body.readUInt32BE(0), i, `${who}: frame ${i} in order`);
      assert.deepEqual(
        crypto.createHash("sha256").update(body).digest(),
        b.subarray(b.length - 32),
        `${who}: frame ${i} intact`,
      );
    };
    try {
      const serverSide = new Promise<void>((resolve, reject) => {
        l.on("connection", (c) => {
          let n = 0;
          c.on("message", (m) => {
            try {
              check(m, n, "server");
            } catch (err) {
              reject(err);
              return;
            }
            // Echo it back from the server's own buffer, which the client checks.
            c.send(Buffer.from(m));
            if (++n % 200 === 0) {
              c.pause(); // backpressure on the client's records
              setImmediate(() => c.resume());
            }
            if (n === frames) resolve();
          });
        });
      });
      const client = await dial(l.url, {
        upgrade: secureDial({ hubKey: hubKey.publicKey, cipher: "AESGCM" }),
      });
      let back = 0;
      const clientSide = new Promise<void>((resolve, reject) => {
        client.on("message", (m) => {
          try {
            check(m, back, "client");
          } catch (err) {
            reject(err);
            return;
          }
          if (++back === frames) resolve();
        });
      });
      for (let i = 0; i < frames; i++) {
        if (!client.send(make(i))) await client.drain();
      }
      await within(Promise.all([serverSide, clientSide]), 60_000, "every frame both ways");
      await client.close();
    } finally {
      await l.close();
    }
  });
});
