/**
 * Static key files and known hosts.
 *
 * - A key file is JSON `{ "publicKey": base64, "privateKey": base64 }` (Curve25519), written with mode 0600;
 *   one readable by others is refused.
 * - A known-hosts file has one line per hub: `<hub address> <base64 public key>`. A client checks the key
 *   a hub presents against it; with trust on first use, an unknown hub's key is added.
 */
import { appendFileSync, chmodSync, existsSync, readFileSync, statSync, writeFileSync } from "node:fs";
import { EzipcError } from "../errors.js";
import { dh25519, type KeyPair, keyPairFromPrivate } from "./x25519.js";

/** Parses a base64 Curve25519 public key; throws `EZIPC_AUTH` if it is not 32 bytes. */
export function parsePublicKey(text: string): Buffer {
  const key = Buffer.from(text.trim(), "base64");
  if (key.length !== 32 || key.toString("base64") !== text.trim()) {
    throw new EzipcError("EZIPC_AUTH", `not a base64 Curve25519 public key: ${JSON.stringify(text)}`);
  }
  return key;
}

/** Writes a new key pair to `file` (mode 0600) and returns it. Refuses to overwrite an existing file. */
export function generateKeyFile(file: string): KeyPair {
  if (existsSync(file)) throw new EzipcError("EZIPC_AUTH", `${file} exists: not overwriting a key`);
  const pair = dh25519.generateKeyPair();
  const json = JSON.stringify(
    { publicKey: pair.publicKey.toString("base64"), privateKey: pair.privateKey.toString("base64") },
    null,
    2,
  );
  try {
    writeFileSync(file, `${json}\n`, { mode: 0o600, flag: "wx" });
    chmodSync(file, 0o600);
  } catch (err) {
    throw new EzipcError("EZIPC_AUTH", `cannot write the key file ${file}: ${(err as Error).message}`, {
      cause: err,
    });
  }
  return pair;
}

/** Reads a key file; throws `EZIPC_AUTH` if it is malformed, inconsistent or readable by others. */
export function readKeyFile(file: string): KeyPair {
  let mode: number;
  try {
    mode = statSync(file).mode;
  } catch (err) {
    throw new EzipcError("EZIPC_AUTH", `cannot read the key file ${file}: ${(err as Error).message}`, {
      cause: err,
    });
  }
  if (process.platform !== "win32" && (mode & 0o077) !== 0) {
    throw new EzipcError("EZIPC_AUTH", `${file} is readable by others: chmod 600 it`);
  }
  let parsed: { publicKey?: unknown; privateKey?: unknown };
  try {
    parsed = JSON.parse(readFileSync(file, "utf8")) as typeof parsed;
  } catch (err) {
    throw new EzipcError("EZIPC_AUTH", `${file} is not a key file`, { cause: err });
  }
  const priv = Buffer.from(String(parsed.privateKey ?? ""), "base64");
  if (priv.length !== 32) throw new EzipcError("EZIPC_AUTH", `${file}: privateKey is not 32 bytes of base64`);
  const pair = keyPairFromPrivate(priv);
  if (parsed.publicKey !== undefined && !parsePublicKey(String(parsed.publicKey)).equals(pair.publicKey)) {
    throw new EzipcError("EZIPC_AUTH", `${file}: publicKey does not belong to privateKey`);
  }
  return pair;
}

/** The key pair in `file`, generated there first if the file does not exist. */
export function loadOrCreateKeyFile(file: string): KeyPair {
  return existsSync(file) ? readKeyFile(file) : generateKeyFile(file);
}

/**
 * A hub key check for `secureDial`'s `verifyHubKey`: the key must be the one `file` lists for `hub`; an
 * unknown hub is refused, or added when `trustOnFirstUse`.
 */
export function knownHosts(
  file: string,
  hub: string,
  options: { trustOnFirstUse?: boolean } = {},
): (key: Buffer) => true | string {
  return (key) => {
    let lines: string[];
    try {
      lines = existsSync(file) ? readFileSync(file, "utf8").split("\n") : [];
    } catch (err) {
      throw new EzipcError(
        "EZIPC_AUTH",
        `cannot read the known hosts file ${file}: ${(err as Error).message}`,
        {
          cause: err,
        },
      );
    }
    for (const [i, line] of lines.entries()) {
      const [address, known] = line.trim().split(/\s+/);
      if (address !== hub || !known) continue;
      let listed: Buffer;
      try {
        listed = parsePublicKey(known);
      } catch (err) {
        throw new EzipcError("EZIPC_AUTH", `${file}, line ${i + 1}: ${(err as Error).message}`, {
          cause: err,
        });
      }
      return listed.equals(key)
        ? true
        : `${hub} presented ${key.toString("base64")}, but ${file} lists ${known} (a different hub, or an attack)`;
    }
    if (!options.trustOnFirstUse) {
      return `${hub} is not in ${file} (its key is ${key.toString("base64")}; pin it or trust on first use)`;
    }
    appendFileSync(file, `${hub} ${key.toString("base64")}\n`, { mode: 0o600 });
    return true;
  };
}
