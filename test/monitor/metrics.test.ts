import assert from "node:assert/strict";
import net from "node:net";
import { describe, it } from "node:test";
// The reference parser of the text format (no type definitions of its own).
// @ts-expect-error -- untyped CommonJS module
import parsePrometheusTextFormat from "parse-prometheus-text-format";
import { connect, Hub, METRICS_CONTENT_TYPE, serveMonitoring } from "../../src/index.js";
import { until, within } from "../helpers.js";

interface Family {
  name: string;
  type: "COUNTER" | "GAUGE" | "HISTOGRAM";
  metrics: {
    value?: string;
    labels?: Record<string, string>;
    buckets?: Record<string, string>;
    count?: string;
    sum?: string;
  }[];
}

async function scrape(url: string): Promise<Map<string, Family>> {
  const res = await fetch(`${url.replace(/^ws:/, "http:")}/metrics`);
  assert.equal(res.status, 200);
  assert.equal(res.headers.get("content-type"), METRICS_CONTENT_TYPE);
  const families = (parsePrometheusTextFormat as (t: string) => Family[])(await res.text());
  return new Map(families.map((f) => [f.name, f]));
}

/** One sample's value: the family's only sample, or the one with `labels`. */
function value(m: Map<string, Family>, name: string, labels?: Record<string, string>): number {
  const f = m.get(name);
  assert.ok(f, `no family ${name}`);
  const s = labels
    ? f.metrics.find((x) => Object.entries(labels).every(([k, v]) => x.labels?.[k] === v))
    : f.metrics[0];
  assert.ok(s, `${name} has no sample ${JSON.stringify(labels)}`);
  return Number(s.value ?? s.count);
}

describe("GET /metrics (Prometheus text format) on the hub's ws:// port", () => {
  it("parses, names every family the issue asks for, and its counters move with the traffic", async () => {
    const hub = await Hub.listen({ urls: ["tcp://127.0.0.1:0", "ws://127.0.0.1:0"] });
    serveMonitoring(hub);
    const [tcpUrl, wsUrl] = hub.urls as [string, string];
    const c = await connect(tcpUrl, { name: "metered" });
    try {
      const before = await scrape(wsUrl);
      for (const [name, type] of [
        ["ezipc_connections", "GAUGE"],
        ["ezipc_received_bytes_total", "COUNTER"],
        ["ezipc_sent_frames_total", "COUNTER"],
        ["ezipc_protocol_errors_total", "COUNTER"],
        ["ezipc_slow_consumer_cuts_total", "COUNTER"],
        ["ezipc_keys", "GAUGE"],
        ["ezipc_pointers", "GAUGE"],
        ["ezipc_topics", "GAUGE"],
        ["ezipc_messages_published_total", "COUNTER"],
        ["ezipc_messages_delivered_total", "COUNTER"],
        ["ezipc_history_bytes", "GAUGE"],
        ["ezipc_rpc_calls_total", "COUNTER"],
        ["ezipc_write_ack_seconds", "HISTOGRAM"],
        ["ezipc_publish_ack_seconds", "HISTOGRAM"],
      ] as const) {
        assert.equal(before.get(name)?.type, type, name);
      }
      assert.equal(value(before, "ezipc_connections"), 1);

      const p = await c.allocate("m.key", 8, "poll");
      await p.write(Buffer.from([1]));
      await c.publish("m.topic", "acked");
      c.publishAndForget("m.topic", "forgotten");
      await c.drain();
      await assert.rejects(
        c.request("m.nobody", "x"),
        (e: Error & { code?: string }) => e.code === "EZIPC_NO_RESPONDERS",
      );
      // A peer that sends garbage: a protocol error.
      const bad = net.connect(Number(new URL(tcpUrl).port), "127.0.0.1");
      bad.on("error", () => {});
      bad.on("data", () => {});
      bad.write(Buffer.from([0, 0, 0, 2, 0xff, 0xff]));
      await within(new Promise((r) => bad.once("close", r)), 5_000, "the garbage peer closed");
      await until(() => hub.stats().protocolErrors === 1, "the protocol error counted");

      const after = await scrape(wsUrl);
      assert.equal(value(after, "ezipc_writes_total") - value(before, "ezipc_writes_total"), 1);
      // Two publishes, and the hub's own announcement of the new topic on $hub.topics.
      assert.equal(
        value(after, "ezipc_messages_published_total") - value(before, "ezipc_messages_published_total"),
        3,
      );
      assert.equal(value(after, "ezipc_write_ack_seconds") - value(before, "ezipc_write_ack_seconds"), 1);
      assert.equal(
        value(after, "ezipc_publish_ack_seconds") - value(before, "ezipc_publish_ack_seconds"),
        1,
        "the fire-and-forget publish is not timed",
      );
      assert.equal(value(after, "ezipc_pointers", { policy: "poll" }), 1);
      assert.equal(value(after, "ezipc_pointers", { policy: "lazy" }), 0);
      assert.equal(value(after, "ezipc_keys"), 1);
      assert.equal(value(after, "ezipc_topics") >= 1, true);
      assert.equal(value(after, "ezipc_rpc_calls_total", { outcome: "no_responders" }), 1);
      assert.equal(value(after, "ezipc_protocol_errors_total"), 1);
      assert.ok(value(after, "ezipc_received_bytes_total") > value(before, "ezipc_received_bytes_total"));
      assert.equal(
        value(after, "ezipc_connections_accepted_total"),
        2,
        "the client and the garbage peer (scrapes are plain HTTP, not connections)",
      );
      // Histograms: cumulative buckets ending at +Inf = count.
      const h = after.get("ezipc_write_ack_seconds")!.metrics[0]!;
      const buckets = Object.entries(h.buckets!)
        .map(([le, n]) => [Number(le), Number(n)] as const)
        .sort((x, y) => x[0] - y[0]); // ("1" and "10" are integer-like keys: objects put them first)
      for (let i = 1; i < buckets.length; i++) assert.ok(buckets[i]![1] >= buckets[i - 1]![1]);
      assert.equal(buckets.at(-1)![1], Number(h.count));
      assert.ok(Number(h.sum) > 0);

      const other = await fetch(`${wsUrl.replace(/^ws:/, "http:")}/nothing`);
      assert.equal(other.status, 404);
      await other.text();
    } finally {
      await c.close();
      await hub.close();
    }
  });
});
