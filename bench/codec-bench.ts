/**
 * Encode + decode of the peers' comparison message (a chat-like object) with JSON, msgpackr and the schema codec, in one process.
 */

import { Packr } from "msgpackr";
import { schemaCodec, t } from "../src/codec/schema.js";
import { median } from "./stats.js";

export const AnchorMessage = t.struct({
  id: t.u32,
  topic: t.string(),
  ts: t.f64,
  payload: t.struct({ user: t.string(), text: t.string(), room: t.u32 }),
});

export function sampleMessages(count: number) {
  return Array.from({ length: count }, (_, i) => ({
    id: i,
    topic: `sensors.room.${String(i % 1000).padStart(3, "0")}`,
    ts: 1_795_000_000_000 + i,
    payload: {
      user: `user${i % 97}`,
      text: `message number ${i} says hello to the room!!`.slice(0, 40),
      room: i % 10,
    },
  }));
}

type Msg = ReturnType<typeof sampleMessages>[number];

export interface CodecResult {
  name: string;
  bytes: number;
  opsPerSec: number;
}

/** Runs encode+decode over `msgs` for at least `ms` milliseconds; returns ops/s. */
function measure(msgs: Msg[], ms: number, roundTrip: (m: Msg) => unknown): number {
  let ops = 0;
  let sink = 0;
  const t0 = performance.now();
  let elapsed = 0;
  while (elapsed < ms) {
    for (let i = 0; i < msgs.length; i++) {
      if (roundTrip(msgs[i]!) !== null) sink++;
    }
    ops += msgs.length;
    elapsed = performance.now() - t0;
  }
  if (sink !== ops) throw new Error("round trip lost values");
  return (ops / elapsed) * 1000;
}

export function codecBench(ms = 700): CodecResult[] {
  const msgs = sampleMessages(1000);
  const schema = schemaCodec(AnchorMessage);
  const packr = new Packr({ useRecords: false });
  const candidates: Array<{ name: string; enc: (m: Msg) => Uint8Array; dec: (b: Uint8Array) => unknown }> = [
    {
      name: "JSON + UTF-8 Buffer",
      enc: (m) => Buffer.from(JSON.stringify(m)),
      dec: (b) => JSON.parse((b as Buffer).toString()),
    },
    { name: "msgpackr", enc: (m) => packr.pack(m), dec: (b) => packr.unpack(b) },
    { name: "ezipc schema codec", enc: (m) => schema.encode(m), dec: (b) => schema.decode(b) },
  ];
  // Check every codec round-trips before timing it.
  for (const c of candidates) {
    const back = c.dec(c.enc(msgs[5]!)) as Msg;
    if (back.payload.text !== msgs[5]!.payload.text || back.id !== 5)
      throw new Error(`${c.name} round trip failed`);
  }
  const results: CodecResult[] = candidates.map((c) => ({
    name: c.name,
    bytes: c.enc(msgs[5]!).length,
    opsPerSec: 0,
  }));
  const runs: number[][] = candidates.map(() => []);
  for (let round = 0; round < 3; round++) {
    candidates.forEach((c, i) => {
      runs[i]!.push(measure(msgs, ms, (m) => c.dec(c.enc(m))));
    });
  }
  results.forEach((r, i) => {
    r.opsPerSec = median(runs[i]!);
  });
  return results;
}
