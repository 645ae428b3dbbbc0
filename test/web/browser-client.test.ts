/**
 * The browser entry (`ezipc/browser`, dist/browser/ezipc.js) in real Chromium: a page
 * (test/web/client-page.html) connects to a hub over ws:// and uses every capability against Node clients
 * of the same hub — pub/sub both ways, a poll pointer a Node writer changes, allocate and write, RPC both
 * ways, a deadman token, a 1 MiB message — and a non-ws:// URL fails with EZIPC_INVALID_URL.
 */
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import path from "node:path";
import { describe, it } from "node:test";
import { fileURLToPath } from "node:url";
import type { Page } from "playwright-core";
import { connect, Hub } from "../../src/index.js";
import { within } from "../helpers.js";
import { launchChromium } from "./chromium.js";

const root = fileURLToPath(new URL("../../..", import.meta.url));
const page = readFileSync(path.join(root, "test/web/client-page.html"));
const bundle = readFileSync(path.join(root, "dist/browser/ezipc.js"));

/** The page's results (window.results). */
type PageGlobals = { results?: Record<string, unknown>; pageReady?: boolean };

/** Step `name`'s result, once the page has it. */
async function result(tab: Page, name: string): Promise<unknown> {
  await tab
    .waitForFunction((n) => (globalThis as unknown as PageGlobals).results?.[n] !== undefined, name, {
      timeout: 10_000,
    })
    .catch(async (err) => {
      const log = await tab.locator("#log").textContent();
      throw new Error(`${(err as Error).message}; waiting for ${name}; the page's log:\n${log}`);
    });
  return tab.evaluate((n) => (globalThis as unknown as PageGlobals).results![n], name);
}

describe("ezipc/browser in Chromium", () => {
  it("a page uses every capability against Node clients of the same hub", async () => {
    const hub = await Hub.listen({ urls: ["tcp://127.0.0.1:0", "ws://127.0.0.1:0"] });
    const [tcpUrl, wsUrl] = hub.urls as [string, string];
    hub.setHttpHandler((req, res) => {
      const p = req.url?.split("?")[0];
      const body = p === "/client-page.html" ? page : p === "/ezipc.js" ? bundle : null;
      res.writeHead(body ? 200 : 404, {
        "content-type": p === "/ezipc.js" ? "text/javascript" : "text/html",
      });
      res.end(body ?? "");
    });
    const node = await connect(tcpUrl, { name: "node" });
    const browser = await launchChromium();
    try {
      const out = (await node.subscribe("page.out"))[Symbol.asyncIterator]();
      await node.serve("node.echo", (req) => `echo ${req.text()}`);
      const token = node.deadman("page.token");
      const v = await node.allocate("page.var", 1, "request");
      const tab = await browser.newPage();
      const errors: string[] = [];
      tab.on("pageerror", (e) => errors.push(e.message));
      await tab.goto(`${wsUrl.replace(/^ws:/, "http:")}/client-page.html?hub=${encodeURIComponent(wsUrl)}`);

      assert.deepEqual(await result(tab, "badScheme"), { error: "EZIPC_INVALID_URL" });
      assert.match(String(await result(tab, "label")), /^chromium#/);
      const m = await within(out.next(), 10_000, "the page's publish at the Node subscriber");
      assert.equal(m.value!.text(), "hello from the page");
      assert.match(m.value!.publisher, /^chromium#/);
      await tab.waitForFunction(() => (globalThis as unknown as PageGlobals).pageReady === true);
      await node.publish("page.in", "hello from node");
      assert.equal(await result(tab, "received"), "hello from node");
      const version = await v.write(Uint8Array.of(42));
      assert.deepEqual(await result(tab, "var"), { value: [42], version });
      assert.equal(await result(tab, "allocate"), 2); // (its own write: version 2, known without a read)
      assert.deepEqual([...(await node.peek("page.mine"))!.data], [9, 8, 7, 6]);
      assert.equal(await result(tab, "request"), "echo ping");
      assert.equal(await result(tab, "served"), true);
      assert.equal((await node.request("page.upper", "shout")).text(), "SHOUT");
      assert.equal(await result(tab, "deadman"), true);
      const state = await token.state();
      assert.equal(state.taken, true);
      assert.match(state.holder, /^chromium#/);
      assert.equal(await result(tab, "bigFrame"), true);
      assert.deepEqual(errors, []);
      await tab.close();
      // The page is gone: its token is released and its server is no more.
      await within(token.waitReleased(), 10_000, "the page's token released when the page closes");
    } finally {
      await browser.close();
      await node.close();
      await hub.close();
    }
  });
});
