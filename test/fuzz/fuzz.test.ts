/** A seeded slice of `npm run fuzz` (test/fuzz/fuzzers.ts): the same properties, fewer inputs. */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { seededRandom } from "../helpers.js";
import { fuzzDatagrams, fuzzFrameDecoder, fuzzHubMessages, fuzzRecords, fuzzWsFrames } from "./fuzzers.js";

describe("fuzz (seeded slice)", () => {
  it("frame decoder: 20,000 frame streams, half of them damaged", () => {
    const r = fuzzFrameDecoder(seededRandom(1), 20_000);
    assert.ok(r.accepted >= 10_000 && r.accepted < 20_000, `accepted ${r.accepted}`);
  });

  it("ws:// frames: 20,000 WebSocket streams, masked or not, half of them damaged", () => {
    const r = fuzzWsFrames(seededRandom(4), 20_000);
    assert.ok(r.accepted >= 10_000 && r.accepted < 20_000, `accepted ${r.accepted}`);
  });

  it("hub messages: 30,000 frames of every type, most of them damaged", () => {
    const r = fuzzHubMessages(seededRandom(2), 30_000);
    assert.ok(r.accepted > 6_000 && r.accepted < 30_000, `accepted ${r.accepted}`);
  });

  it("secure records: 5,000 record streams, most of them damaged", () => {
    const r = fuzzRecords(seededRandom(3), 5_000);
    assert.ok(r.accepted >= 1_500 && r.accepted < 5_000, `accepted ${r.accepted}`);
  });

  it("udp:// datagrams: 20,000 sealed, replayed, reordered or damaged datagrams, and hellos", () => {
    const r = fuzzDatagrams(seededRandom(5), 20_000);
    assert.ok(r.accepted >= 3_000 && r.accepted < 20_000, `accepted ${r.accepted}`);
  });
});
