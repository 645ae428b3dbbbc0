/**
 * The transports of the browser build, in place of src/transport/registry.ts (whose transports need
 * `node:net`): ws:// and wss:// over the browser's `WebSocket` (src/transport/browser-ws.ts), registered in
 * the same transport table.
 */
import { browserWebSocketTransport } from "../transport/browser-ws.js";
import { registerTransport } from "../transport/transports.js";

export { dial, listen, registerTransport, transportFor } from "../transport/transports.js";

registerTransport(browserWebSocketTransport("ws"));
registerTransport(browserWebSocketTransport("wss"));
