/**
 * ws:// from a real browser: headless Chromium (Debian's, driven by playwright-core) loads a page that
 * speaks the hub protocol with nothing but the browser's WebSocket (test/web/ws-page.html): a PING answered
 * by PONG, hello/welcome, an acknowledged publish that a Node subscriber receives. A screenshot of the page
 * is kept in test-artifacts/.
 */
import assert from "node:assert/strict";
import { mkdirSync, readFileSync } from "node:fs";
import path from "node:path";
import { describe, it } from "node:test";
import { fileURLToPath } from "node:url";
import { connect, Hub } from "../../src/index.js";
import { within } from "../helpers.js";
import { launchChromium } from "./chromium.js";

const root = fileURLToPath(new URL("../../..", import.meta.url));
const page = readFileSync(path.join(root, "test/web/ws-page.html"));
const artifacts = path.join(root, "test-artifacts");

describe("ws:// from a browser (Chromium)", () => {
  it("a page with only WebSocket pings, says hello and publishes; a Node subscriber gets it", async () => {
    const hub = await Hub.listen({ urls: ["tcp://127.0.0.1:0", "ws://127.0.0.1:0"] });
    const [tcpUrl, wsUrl] = hub.urls as [string, string];
    hub.setHttpHandler((req, res) => {
      res.writeHead(req.url?.startsWith("/ws-page.html") ? 200 : 404, { "content-type": "text/html" });
      res.end(req.url?.startsWith("/ws-page.html") ? page : "");
    });
    const sub = await connect(tcpUrl, { name: "node-sub" });
    const browser = await launchChromium();
    try {
      const messages = (await sub.subscribe("browser.news"))[Symbol.asyncIterator]();
      const tab = await browser.newPage();
      const httpUrl = wsUrl.replace(/^ws:/, "http:");
      await tab.goto(`${httpUrl}/ws-page.html?hub=${encodeURIComponent(wsUrl)}`);
      await tab.waitForFunction('document.title.startsWith("done") || document.title === "error"', null, {
        timeout: 10_000,
      });
      // PONG is control type 2; welcome is message 1; published is message 24.
      assert.equal(await tab.title(), "done 2 1 24");
      const m = await within(messages.next(), 5_000, "the Node subscriber gets the browser's message");
      assert.equal(m.value!.text(), "hello from chromium");
      assert.match(m.value!.publisher, /^chromium#/);
      mkdirSync(artifacts, { recursive: true });
      await tab.screenshot({ path: path.join(artifacts, "browser-ws.png") });
    } finally {
      await browser.close();
      await sub.close();
      await hub.close();
    }
  });
});
