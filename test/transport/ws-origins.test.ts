/**
 * Which web pages may open a WebSocket to a ws:// listener (src/transport/ws-origins.ts): the rule case by
 * case, then against a hub with the `ws` client sending Origin headers as browsers do. A real browser is in
 * test/web/browser-origins.test.ts.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import WebSocket from "ws";
import { connect, Hub } from "../../src/index.js";
import { checkAllowOrigins, originAllowed } from "../../src/transport/ws-origins.js";

/** Opens a WebSocket with this Origin header: "open", or the HTTP status it was refused with. */
function tryOrigin(url: string, origin: string | undefined, host?: string): Promise<string> {
  return new Promise((resolve) => {
    const ws = new WebSocket(url, {
      ...(origin === undefined ? {} : { origin }),
      headers: host ? { host } : {},
    });
    ws.once("open", () => {
      ws.terminate();
      resolve("open");
    });
    ws.once("unexpected-response", (_req, res) => {
      resolve(String(res.statusCode));
      res.resume();
      ws.terminate();
    });
    ws.once("error", (err) => resolve(`error ${err.message}`));
  });
}

describe("ws:// origins", () => {
  it("admits clients that are not browsers, pages of this machine, pages it serves at an IP address and listed origins; refuses other sites", () => {
    const cases: [origin: string | undefined, host: string, secure: boolean, allow: string[], ok: boolean][] =
      [
        [undefined, "127.0.0.1:7701", false, [], true], // Node, Python, C#: no Origin
        ["http://localhost:5173", "127.0.0.1:7701", false, [], true], // a development server here
        ["http://app.localhost:3000", "127.0.0.1:7701", false, [], true],
        ["http://127.0.0.1:8080", "127.0.0.1:7701", false, [], true],
        ["http://127.9.9.9", "127.0.0.1:7701", false, [], true],
        ["http://[::1]:8080", "[::1]:7701", false, [], true],
        ["http://192.0.2.7:7701", "192.0.2.7:7701", false, [], true], // the dashboard over a network, by address
        ["https://192.0.2.7:7701", "192.0.2.7:7701", true, [], true],
        ["https://192.0.2.7:7701", "192.0.2.7:7701", false, [], false], // scheme differs from the listener's
        ["http://192.0.2.7:7702", "192.0.2.7:7701", false, [], false], // another port of that host
        ["http://198.51.100.1", "192.0.2.7:7701", false, [], false], // a site at another address
        ["https://evil.example", "127.0.0.1:7701", false, [], false],
        ["http://evil.example:7701", "evil.example:7701", false, [], false], // DNS rebinding: "same origin"
        ["http://localhost.evil.example", "127.0.0.1:7701", false, [], false],
        ["null", "127.0.0.1:7701", false, [], false], // a sandboxed frame, a local file
        ["not an origin", "127.0.0.1:7701", false, [], false],
        ["https://app.example", "hub.example:443", true, ["https://app.example"], true],
        ["https://APP.example:443", "hub.example:443", true, ["https://app.example/"], true],
        ["https://app.example:8443", "hub.example:443", true, ["https://app.example"], false],
        ["https://evil.example", "127.0.0.1:7701", false, ["*"], true],
        ["null", "127.0.0.1:7701", false, ["*"], true],
      ];
    for (const [origin, host, secure, allow, ok] of cases) {
      assert.equal(
        originAllowed(origin, host, secure, allow),
        ok,
        `${origin} → ${host} ${JSON.stringify(allow)}`,
      );
    }
    for (const bad of [
      ["app.example"],
      ["https://app.example/path"],
      ["ftp://x"],
      ["https://u:p@x"],
      [""],
      [7],
    ]) {
      assert.throws(() => checkAllowOrigins(bad as string[]), TypeError, JSON.stringify(bad));
    }
    checkAllowOrigins(["*", "http://localhost:5173", "https://app.example/"]);
  });

  it("a hub refuses another site's page with 403 before reading anything from it; the rest get in", async () => {
    const hub = await Hub.listen({ urls: ["ws://127.0.0.1:0"], allowOrigins: ["https://app.example"] });
    const url = hub.urls[0]!;
    try {
      assert.equal(await tryOrigin(url, "https://evil.example"), "403");
      assert.equal(await tryOrigin(url, "http://evil.example:1234", "evil.example:1234"), "403");
      assert.equal(await tryOrigin(url, "null"), "403");
      assert.equal(await tryOrigin(url, "https://app.example"), "open");
      assert.equal(await tryOrigin(url, "http://localhost:5173"), "open");
      assert.equal(await tryOrigin(url, `http://${new URL(url).host}`), "open");
      assert.equal(await tryOrigin(url, undefined), "open");
      // A client of the library (no Origin) works as before.
      const c = await connect(url, { name: "node" });
      assert.equal((await c.publish("t", "x")).seq, 1n);
      await c.close();
    } finally {
      await hub.close();
    }
    await assert.rejects(
      Hub.listen({ urls: ["ws://127.0.0.1:0"], allowOrigins: ["app.example"] }),
      TypeError,
    );
  });
});
