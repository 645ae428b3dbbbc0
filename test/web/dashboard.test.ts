/**
 * The hub's dashboard in real Chromium (served by `serveMonitoring`, a page that is an `ezipc/browser`
 * client of the hub): a key a Node writer changes shows its new version within a second; a client that
 * connects is listed and dropped when it leaves; a selected key is followed live; topics show their
 * sequence numbers; RPC topics and deadman tokens are listed. A screenshot is kept in test-artifacts/.
 */
import assert from "node:assert/strict";
import { mkdirSync } from "node:fs";
import path from "node:path";
import { describe, it } from "node:test";
import { fileURLToPath } from "node:url";
import { connect, dh25519, Hub, serveMonitoring } from "../../src/index.js";
import { launchChromium } from "./chromium.js";

const root = fileURLToPath(new URL("../../..", import.meta.url));
const artifacts = path.join(root, "test-artifacts");

describe("the hub dashboard (Chromium)", () => {
  it("shows keys, clients, topics, RPC and deadman live", async () => {
    const hub = await Hub.listen({ urls: ["tcp://127.0.0.1:0", "ws://127.0.0.1:0"] });
    serveMonitoring(hub);
    const [tcpUrl, wsUrl] = hub.urls as [string, string];
    const writer = await connect(tcpUrl, { name: "writer" });
    const browser = await launchChromium();
    try {
      const counter = await writer.allocate("dash.counter", 8, "request");
      const settings = await writer.config("dash.settings");
      await settings.write({ mode: "auto", level: 3 });
      await writer.serve("dash.rpc", () => "ok");
      await writer.deadman("dash.token").take();
      for (let i = 0; i < 5; i++) await writer.publish("dash.news", `item ${i}`);

      const tab = await browser.newPage({ viewport: { width: 1280, height: 1100 } });
      const errors: string[] = [];
      tab.on("pageerror", (e) => errors.push(e.message));
      await tab.goto(`${wsUrl.replace(/^ws:/, "http:")}/`);
      await tab.waitForSelector('tr[data-key="dash.counter"]', { timeout: 10_000 });
      await tab.waitForSelector('tr[data-client^="writer#"]');
      await tab.waitForSelector('tr[data-client^="dashboard#"]');
      await tab.waitForSelector('article[data-topic="dash.news"][data-last-seq="5"]');
      await tab.waitForSelector('tr[data-rpc="dash.rpc"]');
      assert.match((await tab.locator('tr[data-deadman="dash.token"]').textContent()) ?? "", /writer#/);
      assert.match((await tab.locator('tr[data-key="dash.settings"]').textContent()) ?? "", /"mode":"auto"/);

      // A write shows its version within a second (the page asks every 500 ms).
      for (let i = 1; i <= 3; i++) {
        const buf = Buffer.alloc(8);
        buf.writeBigUInt64LE(BigInt(i));
        const version = await counter.write(buf);
        const t0 = performance.now();
        await tab.waitForSelector(`tr[data-key="dash.counter"][data-version="${version}"]`, {
          timeout: 1_000,
        });
        assert.ok(performance.now() - t0 < 1_000);
      }
      assert.match(
        (await tab.locator('tr[data-key="dash.counter"]').textContent()) ?? "",
        /0300000000000000/,
      );

      // A client that connects is listed, and dropped when it leaves.
      const visitor = await connect(tcpUrl, { name: "visitor" });
      await tab.waitForSelector('tr[data-client^="visitor#"]', { timeout: 5_000 });
      await visitor.close();
      await tab.waitForSelector('tr[data-client^="visitor#"]', { state: "detached", timeout: 5_000 });

      // Selecting a key follows it live, through a poll pointer of the page.
      await tab.click('button[data-watch="dash.counter"]');
      await tab.waitForSelector("#watch:not([hidden])");
      const buf = Buffer.alloc(8);
      buf.writeBigUInt64LE(77n);
      const version = await counter.write(buf);
      await tab.waitForSelector(`#watch[data-version="${version}"]`, { timeout: 2_000 });
      assert.match((await tab.locator("#watch-hex").textContent()) ?? "", /^4d 00 00 00/);
      await tab.waitForSelector('tr[data-key="dash.counter"] >> text=/poll|\\(0\\/0\\/1\\)/');

      assert.deepEqual(errors, []);
      mkdirSync(artifacts, { recursive: true });
      await tab.screenshot({ path: path.join(artifacts, "dashboard.png"), fullPage: true });
    } finally {
      await browser.close();
      await writer.close();
      await hub.close();
    }
  });

  it("on a secure hub, the page asks for a token and connects through Noise with a read-only monitor", async () => {
    const hubKey = dh25519.generateKeyPair();
    const hub = await Hub.listen({
      urls: ["tcp://127.0.0.1:0", "ws://127.0.0.1:0"],
      security: {
        staticKey: hubKey,
        clients: [
          { name: "dash", token: "watch-only", allow: { monitor: [">"], watch: [">"] } },
          { name: "app", token: "app-token" },
        ],
      },
    });
    serveMonitoring(hub);
    const [tcpUrl, wsUrl] = hub.urls as [string, string];
    const app = await connect(tcpUrl, {
      name: "app",
      secure: { hubKey: hubKey.publicKey, token: "app-token" },
    });
    const browser = await launchChromium();
    try {
      const k = await app.allocate("secure.k", 4, "request");
      const tab = await browser.newPage();
      const errors: string[] = [];
      tab.on("pageerror", (e) => errors.push(e.message));
      await tab.goto(`${wsUrl.replace(/^ws:/, "http:")}/`);
      // A wrong token is refused with the hub's reason, and the form comes back.
      await tab.waitForSelector("#login:not([hidden])", { timeout: 10_000 });
      await tab.fill("#token", "guess");
      await tab.click('#login button[type="submit"]');
      await tab.waitForSelector("#status.bad >> text=/EZIPC_AUTH/", { timeout: 10_000 });
      await tab.waitForSelector("#login:not([hidden])");
      await tab.fill("#token", "watch-only");
      await tab.click('#login button[type="submit"]');
      await tab.waitForSelector('tr[data-key="secure.k"]', { timeout: 10_000 });
      // The page is the client named by its token (its identity), seen by the hub's own view.
      assert.ok(hub.view().clients.some((c) => c.name.startsWith("dashboard") && c.identity === "dash"));
      const version = await k.write(Uint8Array.of(1, 2, 3, 4));
      await tab.waitForSelector(`tr[data-key="secure.k"][data-version="${version}"]`, { timeout: 2_000 });
      // Following a key needs watch, which the token has.
      await tab.click('button[data-watch="secure.k"]');
      await tab.waitForSelector(`#watch[data-version="${version}"]`, { timeout: 5_000 });
      assert.deepEqual(errors, []);
      mkdirSync(artifacts, { recursive: true });
      await tab.screenshot({ path: path.join(artifacts, "dashboard-secure.png"), fullPage: true });
    } finally {
      await browser.close();
      await app.close();
      await hub.close();
    }
  });

  it("serves /metrics beside it, and nothing but GET", async () => {
    const hub = await Hub.listen({ urls: ["ws://127.0.0.1:0"] });
    serveMonitoring(hub, { dashboard: false });
    const http = hub.urls[0]!.replace(/^ws:/, "http:");
    try {
      assert.equal((await fetch(`${http}/`)).status, 404);
      assert.equal((await fetch(`${http}/metrics`)).status, 200);
      assert.equal((await fetch(`${http}/metrics`, { method: "POST" })).status, 405);
    } finally {
      await hub.close();
    }
    const withPage = await Hub.listen({ urls: ["ws://127.0.0.1:0"] });
    serveMonitoring(withPage, { metrics: false });
    const url = withPage.urls[0]!.replace(/^ws:/, "http:");
    try {
      const page = await fetch(`${url}/`);
      assert.equal(page.status, 200);
      assert.match(page.headers.get("content-security-policy") ?? "", /default-src 'self'/);
      assert.match(await page.text(), /<title>ezipc hub<\/title>/);
      assert.equal((await fetch(`${url}/dashboard/dashboard.js`)).status, 200);
      assert.equal((await fetch(`${url}/metrics`)).status, 404);
    } finally {
      await withPage.close();
    }
  });
});
