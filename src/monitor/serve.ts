/**
 * Monitoring over the hub's own HTTP: on its ws:// (and wss://) port, `GET /metrics` answers the Prometheus
 * exposition of src/monitor/metrics.ts. Anything else is 404 (WebSocket upgrades are not HTTP requests
 * here: they reach the hub as connections).
 */
import type { IncomingMessage, ServerResponse } from "node:http";
import type { Hub } from "../hub/hub.js";
import { METRICS_CONTENT_TYPE, renderMetrics } from "./metrics.js";

/** Serves `/metrics` on every ws:// listener of `hub` (`ezipc serve` does; `--no-metrics` does not). */
export function serveMonitoring(hub: Hub): void {
  hub.setHttpHandler((req: IncomingMessage, res: ServerResponse) => {
    const path = (req.url ?? "/").split("?")[0];
    if (path === "/metrics" && (req.method === "GET" || req.method === "HEAD")) {
      const body = renderMetrics(hub.metrics());
      res.writeHead(200, { "content-type": METRICS_CONTENT_TYPE, "cache-control": "no-store" });
      res.end(req.method === "HEAD" ? undefined : body);
      return;
    }
    res.writeHead(404, { "content-type": "text/plain" });
    res.end("ezipc: GET /metrics (Prometheus), or connect a WebSocket client\n");
  });
}
