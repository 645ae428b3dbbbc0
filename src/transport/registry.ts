/**
 * The transports of a Node process, registered in the transport table (./transports.ts) when ezipc loads:
 * tcp, tls, unix, memory, ws, wss and udp. The browser build puts src/browser/registry.ts in this file's place.
 */
import { memoryTransport } from "./memory.js";
import { tcpTransport } from "./tcp.js";
import { tlsTransport } from "./tls.js";
import { registerTransport } from "./transports.js";
import { udpTransport } from "./udp.js";
import { unixTransport } from "./unix.js";
import { secureWebSocketTransport, webSocketTransport } from "./ws.js";

export { dial, listen, registerTransport, transportFor } from "./transports.js";

registerTransport(tcpTransport);
registerTransport(tlsTransport);
registerTransport(unixTransport);
registerTransport(memoryTransport);
registerTransport(webSocketTransport);
registerTransport(secureWebSocketTransport);
registerTransport(udpTransport);
