import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import path from "node:path";
import { describe, it } from "node:test";
import { fileURLToPath } from "node:url";
import { HandshakeState, parseProtocolName } from "../../src/security/noise.js";
import { keyPairFromPrivate } from "../../src/security/suite.js";

interface Vector {
  protocol_name: string;
  init_prologue: string;
  init_static?: string;
  init_ephemeral: string;
  init_remote_static?: string;
  init_psks?: string[];
  resp_prologue: string;
  resp_static?: string;
  resp_ephemeral?: string;
  resp_remote_static?: string;
  resp_psks?: string[];
  handshake_hash: string;
  messages: { payload: string; ciphertext: string }[];
}

/** The cacophony vectors: in the shared test data next to the workplace, or named by NOISE_VECTORS. */
function vectorsFile(): string {
  if (process.env.NOISE_VECTORS) return process.env.NOISE_VECTORS;
  const here = path.dirname(fileURLToPath(import.meta.url));
  return path.resolve(here, "../../../test/fixtures/noise/cacophony.txt");
}

const hex = (s: string | undefined) => (s === undefined ? undefined : Buffer.from(s, "hex"));

describe("Noise: the cacophony test vectors, byte for byte", () => {
  const all = (JSON.parse(readFileSync(vectorsFile(), "utf8")) as { vectors: Vector[] }).vectors;
  const ours = all.filter((v) => parseProtocolName(v.protocol_name) && !v.init_psks && !v.resp_psks);

  it("covers every fundamental pattern with every cipher and hash (XX and IK included)", () => {
    const names = new Set(ours.map((v) => v.protocol_name));
    assert.ok(names.has("Noise_XX_25519_ChaChaPoly_SHA256"));
    assert.ok(names.has("Noise_IK_25519_ChaChaPoly_SHA256"));
    assert.ok(names.has("Noise_XX_25519_AESGCM_BLAKE2b"));
    assert.equal(names.size, 12 * 2 * 4, [...names].join(" "));
  });

  it("produces every ciphertext and the handshake hash of each vector", () => {
    let checked = 0;
    for (const v of ours) {
      const init = new HandshakeState({
        protocolName: v.protocol_name,
        initiator: true,
        prologue: hex(v.init_prologue),
        s: v.init_static ? keyPairFromPrivate(hex(v.init_static)!) : undefined,
        e: keyPairFromPrivate(hex(v.init_ephemeral)!),
        rs: hex(v.init_remote_static),
      });
      const resp = new HandshakeState({
        protocolName: v.protocol_name,
        initiator: false,
        prologue: hex(v.resp_prologue),
        s: v.resp_static ? keyPairFromPrivate(hex(v.resp_static)!) : undefined,
        e: v.resp_ephemeral ? keyPairFromPrivate(hex(v.resp_ephemeral)!) : undefined,
        rs: hex(v.resp_remote_static),
      });
      let i = 0;
      for (; i < v.messages.length && !init.done; i++) {
        const m = v.messages[i]!;
        const [writer, reader] = i % 2 === 0 ? [init, resp] : [resp, init];
        const c = writer.writeMessage(hex(m.payload));
        assert.equal(c.toString("hex"), m.ciphertext, `${v.protocol_name} message ${i}`);
        assert.equal(reader.readMessage(c).toString("hex"), m.payload, `${v.protocol_name} payload ${i}`);
      }
      assert.ok(init.done && resp.done, `${v.protocol_name}: handshake finished`);
      assert.equal(init.handshakeHash.toString("hex"), v.handshake_hash, `${v.protocol_name} hash`);
      assert.equal(resp.handshakeHash.toString("hex"), v.handshake_hash);
      const a = init.ciphers;
      const b = resp.ciphers;
      for (; i < v.messages.length; i++) {
        const m = v.messages[i]!;
        const [send, receive] = i % 2 === 0 ? [a.send, b.receive] : [b.send, a.receive];
        const c = send.encrypt(new Uint8Array(0), hex(m.payload)!);
        assert.equal(c.toString("hex"), m.ciphertext, `${v.protocol_name} transport message ${i}`);
        assert.equal(receive.decrypt(new Uint8Array(0), c)?.toString("hex"), m.payload);
      }
      checked++;
    }
    assert.equal(checked, ours.length);
  });
});
