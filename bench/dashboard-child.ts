/**
 * Dashboard-cost benchmark roles (dashboard-bench.ts), each its own process:
 *   hub TCP_URL                 a hub with its defaults on TCP_URL and ws://127.0.0.1:0, serving the
 *                               dashboard; print "ready TCP_URL WS_URL"
 *   dashboards WS_URL N         N dashboards: N clients over ws:// doing what the page does — `monitor("")`
 *                               every 500 ms — after allocating 100 keys for them to show; print "ready"
 */
import { connect, Hub, serveMonitoring } from "../src/index.js";

const [role, url, count] = process.argv.slice(2) as [string, string, string?];

switch (role) {
  case "hub": {
    const hub = await Hub.listen({ urls: [url, "ws://127.0.0.1:0"], heartbeatIntervalMs: 0 });
    serveMonitoring(hub);
    console.log(`ready ${hub.urls[0]} ${hub.urls[1]}`);
    process.once("SIGINT", () => process.exit(0));
    break;
  }
  case "dashboards": {
    const n = Number(count);
    const keeper = await connect(url, { name: "keys", heartbeatIntervalMs: 0, reconnect: false });
    for (let i = 0; i < 100; i++) await keeper.allocate(`dash.key${i}`, 64, "request");
    for (let i = 0; i < n; i++) {
      const page = await connect(url, { name: "dashboard", heartbeatIntervalMs: 0, reconnect: false });
      // As the page: one monitor request at a time, every 500 ms.
      let busy = false;
      setInterval(() => {
        if (busy) return;
        busy = true;
        page.monitor("").then(
          () => {
            busy = false;
          },
          () => process.exit(1),
        );
      }, 500);
    }
    console.log("ready");
    process.once("SIGINT", () => process.exit(0));
    break;
  }
  default:
    throw new Error(`unknown role ${role}`);
}
