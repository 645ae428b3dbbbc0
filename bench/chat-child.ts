/**
 * Chat benchmark roles, each its own process (run by chat-bench.ts):
 *   server DB                              a chat server on a free port; print "ready URL"
 *   clients URL ROOMS PER_ROOM SECONDS     ROOMS×PER_ROOM clients, each saying one line a second (so each
 *                                          room gets PER_ROOM lines/s); print "ready" once all are in,
 *                                          then JSON {p50Us, p99Us, sent, delivered}
 *   store DB LINES BATCH                   the store alone: LINES lines saved BATCH per transaction; JSON {linesPerSec}
 */
import { ChatClient } from "../src/apps/chat/client.js";
import { KIND_SAY } from "../src/apps/chat/protocol.js";
import { ChatServer } from "../src/apps/chat/server.js";
import { openChatStore, type StoredLine } from "../src/apps/chat/store.js";
import { percentile } from "./stats.js";

const [role, a, b, c, d] = process.argv.slice(2) as [string, string, string?, string?, string?];

switch (role) {
  case "server": {
    const server = new ChatServer({ store: openChatStore(a), ratePerSecond: 50, burst: 100 });
    console.log(`ready ${await server.listen("tcp://127.0.0.1:0")}`);
    process.once("SIGINT", () => void server.close().then(() => process.exit(0)));
    break;
  }
  case "clients": {
    const rooms = Number(b);
    const perRoom = Number(c);
    const seconds = Number(d);
    const clients: ChatClient[] = [];
    for (let r = 0; r < rooms; r++) {
      for (let i = 0; i < perRoom; i++) {
        const cl = await ChatClient.connect(a, { heartbeatIntervalMs: 0, reconnect: false });
        await cl.hello(`room${r}`, `c${r}x${i}`);
        clients.push(cl);
      }
    }
    const samples = new Float64Array(rooms * perRoom * (perRoom - 1) * (seconds + 1));
    let n = 0;
    let measuring = false;
    for (const cl of clients) {
      cl.on("line", (l) => {
        if (l.kind !== KIND_SAY || !measuring) return;
        const sent = BigInt(l.text.slice(0, l.text.indexOf(" ")));
        if (n < samples.length) samples[n++] = Number(process.hrtime.bigint() - sent) / 1000;
      });
    }
    console.log("ready");
    // Each client says one line a second, at its own offset within the second.
    let sent = 0;
    const timers: NodeJS.Timeout[] = [];
    clients.forEach((cl, i) => {
      const start = setTimeout(
        () => {
          const say = () => {
            sent++;
            cl.say(`${process.hrtime.bigint()} hello from ${i}`).catch(() => {});
          };
          say();
          timers.push(setInterval(say, 1_000));
        },
        (i * 997) % 1_000,
      );
      timers.push(start);
    });
    await new Promise((r) => setTimeout(r, 1_000)); // warm-up second, not measured
    measuring = true;
    await new Promise((r) => setTimeout(r, seconds * 1_000));
    measuring = false;
    for (const t of timers) clearInterval(t);
    const lat = samples.subarray(0, n).sort();
    console.log(
      JSON.stringify({ p50Us: percentile(lat, 0.5), p99Us: percentile(lat, 0.99), sent, delivered: n }),
    );
    process.exit(0);
    break;
  }
  case "store": {
    const store = openChatStore(a);
    await store.migrate();
    const lines = Number(b);
    const batch = Number(c);
    const line = (i: number): StoredLine => ({
      kind: KIND_SAY,
      time: Date.now(),
      room: `room${i % 10}`,
      from: `user${i % 100}`,
      to: "",
      text: `a line of about forty characters, #${i}`,
      day: "2026-11-26",
    });
    const t0 = process.hrtime.bigint();
    for (let i = 0; i < lines; i += batch) {
      await store.save(Array.from({ length: Math.min(batch, lines - i) }, (_, j) => line(i + j)));
    }
    const s = Number(process.hrtime.bigint() - t0) / 1e9;
    await store.close();
    console.log(JSON.stringify({ linesPerSec: lines / s }));
    process.exit(0);
    break;
  }
  default:
    console.error(`unknown role ${role}`);
    process.exit(2);
}
