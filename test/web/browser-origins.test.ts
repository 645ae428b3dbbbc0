/**
 * A web site the user visits cannot reach a hub on the user's machine through the browser (headless
 * Chromium): a page of another site, here one whose name the browser resolves to 127.0.0.1 as a DNS
 * rebinding attack would, is refused its WebSocket; the same page served by the hub at its address, or by a
 * page of this machine on another port, gets in.
 */
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import path from "node:path";
import { describe, it } from "node:test";
import { fileURLToPath } from "node:url";
import { Hub } from "../../src/index.js";
import { launchChromium } from "./chromium.js";

const root = fileURLToPath(new URL("../../..", import.meta.url));
const bundle = readFileSync(path.join(root, "dist/browser/ezipc.js"));

const page = `<!doctype html><title>loading</title><script>
const ws = new WebSocket(new URLSearchParams(location.search).get("hub"));
ws.onopen = () => { document.title = "open"; };
ws.onerror = () => { document.title = "refused"; };
</script>`;

/** The same with ezipc's browser client: the title is what connect() resolved or rejected with. */
const clientPage = `<!doctype html><title>loading</title><script type="module">
import { connect } from "/ezipc.js";
try {
  const c = await connect(new URLSearchParams(location.search).get("hub"), { name: "page", reconnect: false });
  document.title = "open";
  await c.close();
} catch (err) {
  document.title = err.code + ": " + err.message;
}
</script>`;

describe("ws:// origins from a browser (Chromium)", () => {
  it("another site's page is refused, even under a name that leads to 127.0.0.1; the hub's own page and this machine's pages get in", async () => {
    const hub = await Hub.listen({ urls: ["ws://127.0.0.1:0"] });
    const port = new URL(hub.urls[0]!).port;
    hub.setHttpHandler((req, res) => {
      const p = req.url?.split("?")[0];
      res.writeHead(200, { "content-type": p === "/ezipc.js" ? "text/javascript" : "text/html" });
      res.end(p === "/ezipc.js" ? bundle : p === "/client.html" ? clientPage : page);
    });
    const browser = await launchChromium([`--host-resolver-rules=MAP evil.test 127.0.0.1`]);
    try {
      const titleOf = async (pageUrl: string, hubUrl: string, file = "page.html") => {
        const tab = await browser.newPage();
        try {
          await tab.goto(`${pageUrl}/${file}?hub=${encodeURIComponent(hubUrl)}`);
          await tab.waitForFunction('document.title !== "loading"', null, { timeout: 10_000 });
          return await tab.title();
        } finally {
          await tab.close();
        }
      };
      assert.equal(await titleOf(`http://evil.test:${port}`, `ws://evil.test:${port}/`), "refused");
      assert.equal(await titleOf(`http://evil.test:${port}`, `ws://127.0.0.1:${port}/`), "refused");
      assert.equal(await titleOf(`http://127.0.0.1:${port}`, `ws://127.0.0.1:${port}/`), "open");
      assert.equal(await titleOf(`http://localhost:${port}`, `ws://127.0.0.1:${port}/`), "open");
      // The browser client says what may be wrong (a page cannot see the 403 itself).
      assert.match(
        await titleOf(`http://evil.test:${port}`, `ws://evil.test:${port}/`, "client.html"),
        /^EZIPC_CONNECTION_REFUSED: .*does not admit pages of this origin.*--allow-origin/,
      );
      assert.equal(
        await titleOf(`http://127.0.0.1:${port}`, `ws://127.0.0.1:${port}/`, "client.html"),
        "open",
      );
    } finally {
      await browser.close();
      await hub.close();
    }
  });
});
