/**
 * The transports of a Node process, registered in the transport table (./transports.ts) when ezipc loads:
 * tcp, tls, unix, memory, ws, wss and udp. The browser build puts src/browser/registry.ts in this file's place.
 */
import { memoryTransport } from "./memory.js";
import { tcpTransport } from "./tcp.js";
import { registerTransport } from "./transports.js";
import type { Transport } from "./types.js";
import { unixTransport } from "./unix.js";

export { dial, listen, registerTransport, transportFor } from "./transports.js";

registerTransport(tcpTransport);
registerTransport(unixTransport);
registerTransport(memoryTransport);
/**
 * A transport whose module loads at its first listen or dial: ws:// and wss:// (the `ws` package, node:http
 * and node:https: about 9 MiB of resident memory that a process using only tcp:// or unix:// never needs),
 * tls:// (node:tls) and udp:// (node:dgram and the datagram layer).
 */
function loadedOnUse(scheme: string, load: () => Promise<Transport>): Transport {
  let loaded: Promise<Transport> | null = null;
  const transport = (): Promise<Transport> => {
    loaded ??= load();
    return loaded;
  };
  return {
    scheme,
    listen: async (url, options) => (await transport()).listen(url, options),
    dial: async (url, options) => (await transport()).dial(url, options),
  };
}

registerTransport(loadedOnUse("ws", async () => (await import("./ws.js")).webSocketTransport));
registerTransport(loadedOnUse("wss", async () => (await import("./ws.js")).secureWebSocketTransport));
registerTransport(loadedOnUse("tls", async () => (await import("./tls.js")).tlsTransport));
registerTransport(loadedOnUse("udp", async () => (await import("./udp.js")).udpTransport));
