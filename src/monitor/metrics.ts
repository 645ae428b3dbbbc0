/**
 * The hub's metrics in the Prometheus text exposition format (version 0.0.4): `# HELP` and `# TYPE` lines,
 * then one sample per line; counters are named `…_total` (family and samples), histograms give cumulative `_bucket{le}` samples with
 * `+Inf`, `_sum` and `_count`. Rendered from {@link Hub.metrics} at each scrape (nothing is kept here), so
 * a scrape costs the hub one pass over its clients' holdings.
 */
import type { HistogramSnapshot } from "../histogram.js";
import type { HubMetrics } from "../hub/hub.js";

/** The Content-Type of {@link renderMetrics}' output. */
export const METRICS_CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8";

type Labels = Record<string, string>;

/** A label value escaped as the format asks (backslash, double quote, newline). */
function escapeLabel(v: string): string {
  return v.replace(/\\/g, "\\\\").replace(/"/g, '\\"').replace(/\n/g, "\\n");
}

function sample(name: string, value: number, labels?: Labels): string {
  const l = labels
    ? `{${Object.entries(labels)
        .map(([k, v]) => `${k}="${escapeLabel(v)}"`)
        .join(",")}}`
    : "";
  return `${name}${l} ${Number.isFinite(value) ? value : value > 0 ? "+Inf" : "-Inf"}`;
}

class Exposition {
  private readonly lines: string[] = [];

  private head(name: string, type: "counter" | "gauge" | "histogram", help: string): void {
    this.lines.push(
      `# HELP ${name} ${help.replace(/\\/g, "\\\\").replace(/\n/g, "\\n")}`,
      `# TYPE ${name} ${type}`,
    );
  }

  gauge(name: string, help: string, value: number | [Labels, number][]): void {
    this.head(name, "gauge", help);
    if (typeof value === "number") this.lines.push(sample(name, value));
    else for (const [labels, v] of value) this.lines.push(sample(name, v, labels));
  }

  /** A counter: its family and samples are named `NAME_total` (as the 0.0.4 format names counters). */
  counter(name: string, help: string, value: number | [Labels, number][]): void {
    this.head(`${name}_total`, "counter", help);
    if (typeof value === "number") this.lines.push(sample(`${name}_total`, value));
    else for (const [labels, v] of value) this.lines.push(sample(`${name}_total`, v, labels));
  }

  histogram(name: string, help: string, h: HistogramSnapshot): void {
    this.head(name, "histogram", help);
    for (let i = 0; i < h.bounds.length; i++) {
      this.lines.push(sample(`${name}_bucket`, h.cumulative[i]!, { le: String(h.bounds[i]) }));
    }
    this.lines.push(sample(`${name}_bucket`, h.count, { le: "+Inf" }));
    this.lines.push(sample(`${name}_sum`, h.sumSeconds), sample(`${name}_count`, h.count));
  }

  toString(): string {
    return `${this.lines.join("\n")}\n`;
  }
}

/** `m` as a Prometheus text exposition. */
export function renderMetrics(m: HubMetrics): string {
  const s = m.stats;
  const e = new Exposition();
  e.gauge("ezipc_hub_uptime_seconds", "Seconds since the hub started.", s.uptimeMs / 1000);
  e.gauge("ezipc_connections", "Clients connected now.", s.connectedClients);
  e.gauge("ezipc_clients", "Clients known (connected, or within their reconnect window).", s.clients);
  e.gauge("ezipc_open_connections", "Connections open now, handshaken or not.", m.connectionsOpen);
  e.counter("ezipc_connections_accepted", "Connections accepted (handshaken or not).", m.connectionsAccepted);
  e.counter("ezipc_received_bytes", "Bytes received over every connection.", m.bytesIn);
  e.counter("ezipc_sent_bytes", "Bytes sent over every connection.", m.bytesOut);
  e.counter("ezipc_received_frames", "Frames received over every connection.", m.framesIn);
  e.counter("ezipc_sent_frames", "Frames sent over every connection.", m.framesOut);
  e.gauge("ezipc_queued_bytes", "Bytes queued to clients, not yet written to the OS.", s.queuedBytes);
  e.counter("ezipc_protocol_errors", "Connections closed for a protocol violation.", s.protocolErrors);
  e.counter("ezipc_frames_too_large", "Connections closed for a frame over the limit.", s.framesTooLarge);
  e.counter("ezipc_slow_consumer_cuts", "Slow consumers cut.", s.slowConsumerCuts);
  e.counter("ezipc_heartbeat_timeouts", "Connections closed for silence.", s.heartbeatTimeouts);
  e.counter(
    "ezipc_decrypt_errors",
    "Secure connections closed for a record that failed authentication.",
    s.decryptErrors,
  );
  e.counter(
    "ezipc_connections_refused",
    "Connections refused because the hub had maxConnections open.",
    s.connectionsRefused,
  );
  e.counter(
    "ezipc_listings_refused",
    "Listings (topics, list, monitor) refused because they took more than listingEntriesPerSecond.",
    s.listingsRefused,
  );
  e.counter(
    "ezipc_handshake_failures",
    "Secure handshakes that failed, by reason.",
    Object.entries(s.handshakeFailures).map(([reason, n]) => [{ reason }, n ?? 0]),
  );
  e.gauge("ezipc_keys", "Keys (shared variables).", s.keys);
  e.gauge("ezipc_persistent_keys", "Persistent keys.", s.persistentKeys);
  e.gauge("ezipc_key_bytes", "Bytes held by every key's value.", s.totalBytes);
  e.gauge("ezipc_tombstones", "Disposed keys remembered as tombstones.", s.tombstones);
  e.gauge("ezipc_pointers", "Pointers held by clients, by sync policy.", [
    [{ policy: "request" }, m.pointersByPolicy.request],
    [{ policy: "lazy" }, m.pointersByPolicy.lazy],
    [{ policy: "poll" }, m.pointersByPolicy.poll],
  ]);
  e.counter("ezipc_writes", "Writes applied to keys.", s.writes);
  e.counter("ezipc_reads", "Reads answered.", s.reads);
  e.counter("ezipc_updates_sent", "Poll updates sent.", s.updatesSent);
  e.counter("ezipc_updates_coalesced", "Poll updates coalesced for congested clients.", s.updatesCoalesced);
  e.counter("ezipc_stale_sent", "Lazy stale notices sent.", s.staleSent);
  e.gauge("ezipc_topics", "Pub/sub topics.", s.topics);
  e.gauge("ezipc_history_bytes", "Bytes of topic history held.", s.historyBytes);
  e.counter("ezipc_messages_published", "Messages published.", s.published);
  e.counter("ezipc_messages_delivered", "Messages delivered to subscribers.", s.delivered);
  e.counter("ezipc_gaps", "Gaps reported to subscribers (evicted before they were sent).", s.gaps);
  e.counter("ezipc_publishes_rejected", "Fire-and-forget publishes the hub could not store.", s.rejected);
  e.counter("ezipc_publisher_holds", "Publishers told to wait for a lagging subscriber.", s.publisherHolds);
  e.gauge("ezipc_rpc_calls_in_flight", "RPC calls in flight.", s.callsInFlight);
  e.counter("ezipc_rpc_calls", "RPC calls by outcome.", [
    [{ outcome: "ended" }, Math.max(0, s.calls - s.callsInFlight - s.serverGone)],
    [{ outcome: "server_gone" }, s.serverGone],
    [{ outcome: "no_responders" }, s.noResponders],
  ]);
  e.gauge("ezipc_deadman_tokens", "Deadman tokens.", s.deadmanTokens);
  e.histogram(
    "ezipc_write_ack_seconds",
    "From a write's arrival to its acknowledgement (after the store's commit for a persistent key).",
    m.writeAckLatency,
  );
  e.histogram(
    "ezipc_publish_ack_seconds",
    "From an acknowledged publish's arrival to its acknowledgement (after the commit for a persisted topic).",
    m.publishAckLatency,
  );
  e.gauge("ezipc_process_resident_memory_bytes", "The hub process's resident memory.", s.rssBytes);
  e.gauge("ezipc_process_heap_used_bytes", "The hub process's V8 heap in use.", s.heapUsedBytes);
  return e.toString();
}
