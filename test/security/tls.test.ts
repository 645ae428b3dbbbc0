import assert from "node:assert/strict";
import { writeFileSync } from "node:fs";
import path from "node:path";
import { describe, it } from "node:test";
import { connect, dial, Hub, isEzipcError, listen } from "../../src/index.js";
import { nextEvent, tempDir, testCertificates, within } from "../helpers.js";

describe("tls:// transport", () => {
  it("takes certificates from options or the URL; an untrusted certificate fails the dial with EZIPC_AUTH", async () => {
    const tmp = tempDir();
    const certs = testCertificates(tmp.dir);
    const l = await listen(`tls://127.0.0.1:0?cert=${certs.certFile}&key=${certs.keyFile}`);
    l.on("connection", (c) => c.on("message", (m) => c.send(m)));
    try {
      await assert.rejects(
        dial(l.url),
        (e) => isEzipcError(e, "EZIPC_AUTH") && /not trusted/.test(e.message),
      );
      for (const c of [
        await dial(`${l.url}?ca=${certs.caFile}`),
        await dial(l.url, { tls: { ca: certs.ca } }),
      ]) {
        const echoed = nextEvent<[Buffer]>(c, "message");
        c.send(Buffer.from("over tls"));
        assert.deepEqual(Buffer.from((await within(echoed, 5_000, "the echo"))[0]), Buffer.from("over tls"));
        await c.close();
      }
      await assert.rejects(dial(`${l.url}?pem=x`), (e) => isEzipcError(e, "EZIPC_INVALID_URL"));
    } finally {
      await l.close();
      tmp.cleanup();
    }
  });

  it("a hub listens on tls:// and clients connect with the CA in the URL", async () => {
    const tmp = tempDir();
    const certs = testCertificates(tmp.dir);
    const hub = await Hub.listen({ urls: [`tls://127.0.0.1:0?cert=${certs.certFile}&key=${certs.keyFile}`] });
    try {
      const c = await connect(`${hub.urls[0]}?ca=${certs.caFile}`, { name: "tls-client" });
      await c.serve("tls.echo", (req) => req.text());
      assert.equal((await c.request("tls.echo", "secure enough")).text(), "secure enough");
      await c.close();
    } finally {
      await hub.close();
      tmp.cleanup();
    }
  });

  it("a tls:// or wss:// listener without a usable certificate and key is refused with EZIPC_INVALID_URL, before it listens", async () => {
    const tmp = tempDir();
    const certs = testCertificates(tmp.dir);
    const junk = path.join(tmp.dir, "junk.pem");
    writeFileSync(junk, "not a certificate\n");
    try {
      for (const scheme of ["tls", "wss"]) {
        const cases: [string, RegExp][] = [
          [`${scheme}://127.0.0.1:0`, /needs a certificate and its key/],
          [`${scheme}://127.0.0.1:0?cert=${certs.certFile}`, /needs a certificate and its key/],
          [
            `${scheme}://127.0.0.1:0?cert=${junk}&key=${junk}`,
            /certificate, its key or the CA is not usable/,
          ],
          [`${scheme}://127.0.0.1:0?cert=${certs.certFile}&key=${junk}`, /not usable/],
        ];
        for (const [url, says] of cases) {
          await assert.rejects(
            listen(url),
            (e) => isEzipcError(e, "EZIPC_INVALID_URL") && says.test(e.message),
            url,
          );
          // A hub says the same (it was EZIPC_STORE with OpenSSL's words, or a hub failing every handshake).
          await assert.rejects(
            Hub.listen({ urls: [url] }),
            (e) => isEzipcError(e, "EZIPC_INVALID_URL") && says.test(e.message),
            url,
          );
        }
      }
    } finally {
      tmp.cleanup();
    }
  });
});
