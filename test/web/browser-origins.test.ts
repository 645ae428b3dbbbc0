/**
 * A web site the user visits cannot reach a hub on the user's machine through the browser (headless
 * Chromium): a page of another site, here one whose name the browser resolves to 127.0.0.1 as a DNS
 * rebinding attack would, is refused its WebSocket; the same page served by the hub at its address, or by a
 * page of this machine on another port, gets in.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { Hub } from "../../src/index.js";
import { launchChromium } from "./chromium.js";

const page = `<!doctype html><title>loading</title><script>
const ws = new WebSocket(new URLSearchParams(location.search).get("hub"));
ws.onopen = () => { document.title = "open"; };
ws.onerror = () => { document.title = "refused"; };
</script>`;

describe("ws:// origins from a browser (Chromium)", () => {
  it("another site's page is refused, even under a name that leads to 127.0.0.1; the hub's own page and this machine's pages get in", async () => {
    const hub = await Hub.listen({ urls: ["ws://127.0.0.1:0"] });
    const port = new URL(hub.urls[0]!).port;
    hub.setHttpHandler((_req, res) => {
      res.writeHead(200, { "content-type": "text/html" });
      res.end(page);
    });
    const browser = await launchChromium([`--host-resolver-rules=MAP evil.test 127.0.0.1`]);
    try {
      const titleOf = async (pageUrl: string, hubUrl: string) => {
        const tab = await browser.newPage();
        try {
          await tab.goto(`${pageUrl}/page.html?hub=${encodeURIComponent(hubUrl)}`);
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
    } finally {
      await browser.close();
      await hub.close();
    }
  });
});
