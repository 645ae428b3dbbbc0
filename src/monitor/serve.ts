/**
 * Monitoring over the hub's own HTTP, on its ws:// (and wss://) port:
 * - `GET /` — the dashboard (src/monitor/dashboard/): a page whose script is an `ezipc/browser` client of
 *   this hub, showing its state live through the `monitor` message. Its files are served from
 *   dist/browser/ (built by scripts/build-browser.mjs), read once. On a secure hub the page carries the
 *   hub's public key (to pin) and asks for a token: it connects through the Noise handshake as any client.
 * - `GET /metrics` — the Prometheus exposition of src/monitor/metrics.ts.
 * Anything else is 404 (WebSocket upgrades are not HTTP requests here: they reach the hub as connections).
 */
import { readFileSync } from "node:fs";
import type { IncomingMessage, ServerResponse } from "node:http";
import { fileURLToPath } from "node:url";
import type { Hub } from "../hub/hub.js";
import { DASHBOARD_CSS, dashboardHtml } from "./dashboard-html.js";
import { METRICS_CONTENT_TYPE, renderMetrics } from "./metrics.js";

/** What to serve. */
export interface MonitoringOptions {
  /** Serve the dashboard at `/`. Default true. */
  dashboard?: boolean;
  /** Serve `/metrics`. Default true. */
  metrics?: boolean;
}

interface Asset {
  type: string;
  body: Buffer;
}

let bundles: Map<string, Asset> | null = null;

/** The dashboard's files: the page (with `hubKey` to pin on a secure hub), its CSS, and the bundles. */
function dashboardAssets(hubKey: string | null): Map<string, Asset> {
  bundles ??= readBundles();
  return new Map([
    ["/", { type: "text/html; charset=utf-8", body: Buffer.from(dashboardHtml(hubKey)) }],
    ["/dashboard/dashboard.css", { type: "text/css; charset=utf-8", body: Buffer.from(DASHBOARD_CSS) }],
    ...bundles,
  ]);
}

/** dist/browser/'s files, read once per process. */
function readBundles(): Map<string, Asset> {
  const built = (name: string) => fileURLToPath(new URL(`../../browser/${name}`, import.meta.url));
  const js = "text/javascript; charset=utf-8";
  const css = "text/css; charset=utf-8";
  return new Map([
    ["/dashboard/dashboard.js", { type: js, body: readFileSync(built("dashboard.js")) }],
    ["/dashboard/uplot.css", { type: css, body: readFileSync(built("uplot.css")) }],
    ["/ezipc.js", { type: js, body: readFileSync(built("ezipc.js")) }],
  ]);
}

/**
 * Serves the dashboard and `/metrics` on every ws:// listener of `hub` (`ezipc serve` does;
 * `--no-dashboard` and `--no-metrics` turn each off). Throws if the dashboard is asked for and
 * dist/browser/ was not built.
 */
export function serveMonitoring(hub: Hub, options: MonitoringOptions = {}): void {
  const files = options.dashboard === false ? new Map<string, Asset>() : dashboardAssets(hub.publicKey);
  const metrics = options.metrics !== false;
  hub.setHttpHandler((req: IncomingMessage, res: ServerResponse) => {
    const path = (req.url ?? "/").split("?")[0] ?? "/";
    const head = req.method === "HEAD";
    if (req.method !== "GET" && !head) {
      res.writeHead(405, { allow: "GET, HEAD", "content-type": "text/plain" });
      res.end("ezipc: GET only\n");
      return;
    }
    if (path === "/metrics" && metrics) {
      const body = renderMetrics(hub.metrics());
      res.writeHead(200, { "content-type": METRICS_CONTENT_TYPE, "cache-control": "no-store" });
      res.end(head ? undefined : body);
      return;
    }
    const file = files.get(path);
    if (file) {
      res.writeHead(200, {
        "content-type": file.type,
        "cache-control": "no-cache",
        "x-content-type-options": "nosniff",
        // The schema codec compiles its encoders with new Function: hence 'unsafe-eval' for scripts.
        "content-security-policy":
          "default-src 'self'; script-src 'self' 'unsafe-eval'; connect-src 'self'; img-src 'self' data:",
      });
      res.end(head ? undefined : file.body);
      return;
    }
    res.writeHead(404, { "content-type": "text/plain" });
    res.end(
      `ezipc: ${[files.size > 0 ? "GET / (dashboard)" : "", metrics ? "GET /metrics (Prometheus)" : ""].filter(Boolean).join(", ") || "nothing here"}, or connect a WebSocket client\n`,
    );
  });
}
