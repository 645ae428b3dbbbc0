/**
 * The stream message format of clustered topics (src/cluster/js-topics.ts), byte by byte: what a hub
 * writes it reads back; anything else on a topic's subject (a truncated message, a bad time, a record that
 * is not exactly one well-formed record) is refused, so it never reaches a subscriber.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { decodeTopicMessage, encodeTopicMessage, topicSuffix } from "../../src/cluster/js-topics.js";
import { encodeHeaders, encodeRecord } from "../../src/pubsub/records.js";

describe("clustered topics: the stream message format", () => {
  const record = encodeRecord(encodeHeaders([{ key: "k", value: "v" }]), Buffer.from("payload"));
  const publisher = Buffer.from("pub#1");

  it("reads back what it writes", () => {
    const m = decodeTopicMessage(7, encodeTopicMessage(1_700_000_000_000, publisher, record));
    assert.ok(m);
    assert.equal(m.seq, 7n);
    assert.equal(m.time, 1_700_000_000_000);
    assert.deepEqual([...m.publisher], [...publisher]);
    assert.deepEqual([...m.record], [...record]);
  });

  it("refuses every truncation, a bad format byte, a bad time and records that are not exactly one", () => {
    const good = encodeTopicMessage(1, publisher, record);
    for (let n = 0; n < good.length; n++) {
      assert.equal(decodeTopicMessage(1, good.subarray(0, n)), null, `truncated to ${n} bytes`);
    }
    const format = Buffer.from(good);
    format[0] = 2;
    assert.equal(decodeTopicMessage(1, format), null);
    for (const time of [Number.NaN, Number.POSITIVE_INFINITY, -1]) {
      assert.equal(decodeTopicMessage(1, encodeTopicMessage(time, publisher, record)), null, `time ${time}`);
    }
    const two = Buffer.concat([record, record]);
    assert.equal(decodeTopicMessage(1, encodeTopicMessage(1, publisher, two)), null, "two records");
    const trailing = Buffer.concat([record, Buffer.from([0])]);
    assert.equal(decodeTopicMessage(1, encodeTopicMessage(1, publisher, trailing)), null, "trailing byte");
    assert.equal(decodeTopicMessage(1, encodeTopicMessage(1, publisher, Buffer.from([0xff]))), null);
  });

  it("names streams: safe characters kept, others escaped, long names hashed, never two topics in one", () => {
    assert.equal(topicSuffix("a.b-c_d"), "a=2Eb-c_d");
    assert.equal(topicSuffix("x".repeat(64)), "x".repeat(64));
    const long = topicSuffix("y".repeat(65));
    assert.match(long, /^==[0-9a-f]{40}$/);
    assert.notEqual(topicSuffix("y".repeat(66)), long);
    assert.notEqual(topicSuffix("a.b"), topicSuffix("a=2Eb"));
  });
});
