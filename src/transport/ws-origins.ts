/**
 * Which web pages may open a WebSocket to a ws:// or wss:// listener. A browser lets any page it shows open
 * a WebSocket to any address, the user's own machine included, and tells the server only the page's origin
 * (the `Origin` header). Without a check, every web site the user visits could read and write a hub on
 * 127.0.0.1. So a listener admits a WebSocket:
 *
 * - without an `Origin` header: not a browser (Node, Python, C# clients; a browser always sends it);
 * - from a page of this machine: an origin whose host is `localhost`, `*.localhost`, 127.0.0.0/8 or [::1]
 *   (a page served by a development server here; no site elsewhere has such an origin);
 * - from a page served by the listener itself at an IP address (`http://192.0.2.7:7701`, the dashboard over
 *   a network): its origin is the address the request came to. A host *name* is not enough: a site can point
 *   its own name at this machine (DNS rebinding), and its pages would then be "same origin";
 * - from an origin listed in `allowOrigins` (`"*"`: any page, for a hub that is protected otherwise).
 *
 * Anything else (another site, a name not listed, `null`: a sandboxed frame or a local file) gets
 * `403 Forbidden`.
 */
import net from "node:net";

/** Throws `TypeError` naming the entry for an `allowOrigins` entry that is not `*` or an origin. */
export function checkAllowOrigins(allow: readonly string[] | undefined): void {
  if (allow === undefined) return;
  if (!Array.isArray(allow)) throw new TypeError("allowOrigins must be a list of origins");
  for (const o of allow) {
    if (o === "*") continue;
    if (typeof o !== "string" || normalOrigin(o) !== o.replace(/\/$/, "").toLowerCase()) {
      throw new TypeError(
        `allowOrigins: ${JSON.stringify(o)} is not an origin (scheme://host[:port], e.g. http://localhost:5173) or "*"`,
      );
    }
  }
}

/** `scheme://host[:port]` of an origin (lower case, default port left out), or null if it is not one. */
function normalOrigin(origin: string): string | null {
  let u: URL;
  try {
    u = new URL(origin);
  } catch {
    return null;
  }
  if ((u.protocol !== "http:" && u.protocol !== "https:") || u.username || u.password) return null;
  if (u.pathname !== "/" || u.search || u.hash) return null;
  return u.origin.toLowerCase();
}

function isLoopbackHost(hostname: string): boolean {
  const h = hostname.toLowerCase().replace(/^\[|\]$/g, "");
  if (h === "localhost" || h.endsWith(".localhost")) return true;
  if (net.isIPv4(h)) return h.startsWith("127.");
  return h === "::1";
}

/**
 * Whether a WebSocket upgrade with this `Origin` header, sent to `host` (the request's `Host` header) of a
 * listener with this scheme, is admitted (see the module's note).
 */
export function originAllowed(
  origin: string | undefined,
  host: string | undefined,
  secure: boolean,
  allow: readonly string[] = [],
): boolean {
  if (origin === undefined) return true;
  if (allow.includes("*")) return true;
  const o = normalOrigin(origin);
  if (o === null) return false;
  if (allow.some((a) => normalOrigin(a) === o)) return true;
  const u = new URL(o);
  if (isLoopbackHost(u.hostname)) return true;
  // Served by this listener at an IP address: the origin is the address the request was sent to.
  if (host === undefined) return false;
  const self = normalOrigin(`${secure ? "https" : "http"}://${host}`);
  return self === o && net.isIP(u.hostname.replace(/^\[|\]$/g, "")) !== 0;
}
