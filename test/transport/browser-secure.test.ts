/**
 * Secure connections from the browser client (src/browser/secure.ts over src/transport/browser-ws.ts),
 * run in Node with the `ws` package's client against a secure hub: the token admits the page with its
 * permissions (a read-only monitor), a wrong token or a wrong pinned key is refused, frames larger than a
 * record cross intact, a tampered record closes with EZIPC_DECRYPT. And the browser's @noble suite gives
 * the Node suite's results. The same code runs in Chromium in test/web/dashboard.test.ts.
 */
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { after, before, describe, it } from "node:test";
import WebSocket from "ws";
import { browserSecureUpgrade } from "../../src/browser/secure.js";
import * as browserSuite from "../../src/browser/suite.js";
import { connect } from "../../src/client/client.js";
import { isEzipcError } from "../../src/errors.js";
import { Hub } from "../../src/hub/hub.js";
import * as nodeSuite from "../../src/security/suite.js";
import { browserWebSocketTransport, type WebSocketClass } from "../../src/transport/browser-ws.js";
import { registerTransport, transportFor } from "../../src/transport/registry.js";

const browser = browserWebSocketTransport("ws", WebSocket as unknown as WebSocketClass);

describe("the browser's Noise suite (@noble) matches the Node one", () => {
  it("X25519, ChaCha20-Poly1305 and SHA-256 (hash, HMAC, HKDF) give the same bytes", () => {
    for (let i = 0; i < 20; i++) {
      const a = nodeSuite.dh25519.generateKeyPair();
      const b = browserSuite.dh25519.generateKeyPair();
      assert.deepEqual(browserSuite.keyPairFromPrivate(a.privateKey).publicKey, a.publicKey);
      assert.deepEqual(nodeSuite.keyPairFromPrivate(b.privateKey).publicKey, b.publicKey);
      assert.deepEqual(
        browserSuite.dh25519.dh(b.privateKey, a.publicKey),
        nodeSuite.dh25519.dh(a.privateKey, b.publicKey),
      );
      const k = randomBytes(32);
      const ad = randomBytes(i);
      const plain = randomBytes(i * 100);
      const sealed = nodeSuite.chaChaPoly.encrypt(k, i * 7919, ad, plain);
      assert.deepEqual(browserSuite.chaChaPoly.encrypt(k, i * 7919, ad, plain), sealed);
      assert.deepEqual(
        Buffer.concat(
          browserSuite.chaChaPoly.encryptParts(
            k,
            i,
            ad,
            [plain.subarray(0, 5), plain.subarray(5)],
            plain.length,
          ),
        ),
        nodeSuite.chaChaPoly.encrypt(k, i, ad, plain),
      );
      assert.deepEqual(browserSuite.chaChaPoly.decrypt(k, i * 7919, ad, sealed), plain);
      const tampered = Buffer.from(sealed);
      tampered[0] = tampered[0]! ^ 1;
      assert.equal(browserSuite.chaChaPoly.decrypt(k, i * 7919, ad, tampered), null);
      assert.equal(browserSuite.chaChaPoly.decrypt(k, i * 7919 + 1, ad, sealed), null);
      assert.deepEqual(browserSuite.sha256.hash(plain, ad), nodeSuite.sha256.hash(plain, ad));
      assert.deepEqual(browserSuite.sha256.hmac(k, plain), nodeSuite.sha256.hmac(k, plain));
      assert.deepEqual(browserSuite.sha256.hkdf(k, plain, 3), nodeSuite.sha256.hkdf(k, plain, 3));
    }
    assert.throws(
      () => browserSuite.dh25519.dh(randomBytes(32), new Uint8Array(32)),
      (e) => isEzipcError(e, "EZIPC_HANDSHAKE"),
    );
  });
});

describe("a page's secure connection to a hub (browser transport, Node's ws client)", () => {
  const hubKey = nodeSuite.dh25519.generateKeyPair();
  const node = transportFor("ws://x").transport;
  let hub: Hub;
  let url: string;

  before(async () => {
    hub = await Hub.listen({
      urls: ["ws://127.0.0.1:0"],
      security: {
        staticKey: hubKey,
        clients: [
          { name: "dashboard", token: "page-token", allow: { monitor: [">"], watch: [">"] } },
          { name: "writer", token: "writer-token" },
        ],
      },
    });
    url = hub.urls[0]!;
  });
  after(async () => {
    registerTransport(node);
    await hub.close();
  });

  /** Connects a hub client through the browser transport with the browser's secure upgrade. */
  async function page(secure: Parameters<typeof browserSecureUpgrade>[0], name = "page") {
    registerTransport({
      scheme: "ws",
      listen: node.listen,
      dial: (u, o) => browser.dial(u, { ...o, upgrade: browserSecureUpgrade(secure) }),
    });
    try {
      return await connect(url, { name, directRpc: false, reconnect: false });
    } finally {
      registerTransport(node);
    }
  }

  it("a token admits the page with its permissions: monitor and watch, nothing else", async () => {
    const writer = await page({ hubKey: hubKey.publicKey.toString("base64"), token: "writer-token" }, "w");
    const ptr = await writer.allocate("sec.k", 4, "request");
    const dash = await page({ hubKey: hubKey.publicKey, token: "page-token" }, "dashboard");
    const view = await dash.monitor("");
    assert.ok(view.keys.some((k) => k.key === "sec.k"));
    assert.ok(view.clients.some((c) => c.identity === "dashboard"));
    const seen = (await dash.watch("sec.k", "poll"))!;
    const changed = new Promise((r) => seen.once("change", r));
    await ptr.write(Buffer.from([1, 2, 3, 4]));
    await changed;
    assert.deepEqual([...seen.read()], [1, 2, 3, 4]);
    await assert.rejects(dash.publish("sec.t", "x"), (e) => isEzipcError(e, "EZIPC_PERMISSION_DENIED"));
    await assert.rejects(dash.allocate("sec.other", 4, "request"), (e) =>
      isEzipcError(e, "EZIPC_PERMISSION_DENIED"),
    );
    // Frames larger than one record (64 KiB) cross intact, both ways.
    const big = randomBytes(300_000);
    const sub = await writer.subscribe("sec.big");
    const it = sub[Symbol.asyncIterator]();
    await writer.publish("sec.big", big);
    assert.deepEqual((await it.next()).value!.payload, big);
    await dash.close();
    await writer.close();
  });

  it("a wrong token, no token or a wrong pinned key is refused with EZIPC_AUTH", async () => {
    await assert.rejects(page({ hubKey: hubKey.publicKey, token: "nope" }), (e) =>
      isEzipcError(e, "EZIPC_AUTH"),
    );
    await assert.rejects(page({ hubKey: hubKey.publicKey }), (e) => isEzipcError(e, "EZIPC_AUTH"));
    const other = nodeSuite.dh25519.generateKeyPair();
    await assert.rejects(
      page({ hubKey: other.publicKey, token: "page-token" }),
      (e) => isEzipcError(e, "EZIPC_AUTH") || isEzipcError(e, "EZIPC_HANDSHAKE"),
    );
    assert.throws(
      () => browserSecureUpgrade({ hubKey: "c2hvcnQ=" }),
      (e) => isEzipcError(e, "EZIPC_AUTH"),
    );
    // The hub is unharmed: a good page still gets in.
    const ok = await page({ hubKey: hubKey.publicKey, token: "page-token" });
    await ok.close();
  });

  it("a plain page (no upgrade) is refused by the secure hub with a coded error", async () => {
    registerTransport({ scheme: "ws", listen: node.listen, dial: (u, o) => browser.dial(u, o) });
    try {
      await assert.rejects(connect(url, { directRpc: false, reconnect: false }), (e) => isEzipcError(e));
    } finally {
      registerTransport(node);
    }
  });
});
