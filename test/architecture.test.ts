/**
 * The layering of docs/architecture.md, checked on every import of src/: a file imports only from its own
 * folder or from a lower layer; a capability never imports another capability; the hub and the client never
 * import each other. Barrels (index.ts) re-export across layers and are exempt.
 */
import assert from "node:assert/strict";
import { readdirSync, readFileSync } from "node:fs";
import path from "node:path";
import { describe, it } from "node:test";
import { fileURLToPath } from "node:url";

const SRC = fileURLToPath(new URL("../../src", import.meta.url));

/** Layer of each top-level folder (or top-level file, without .ts): lower numbers sit lower. */
const LAYER: Record<string, number> = {
  errors: 0,
  thenable: 0,
  views: 0,
  log: 1,
  deadline: 1,
  ranges: 1,
  histogram: 1,
  "id-map": 1,
  "native-addon": 1,
  "commit-retry": 2,
  "call-deadlines": 2,
  "listing-budget": 2,
  "listing-pages": 2,
  transport: 3,
  shm: 3,
  codec: 4,
  security: 5,
  service: 6,
  protocol: 7,
  vars: 8,
  pubsub: 8,
  rpc: 8,
  deadman: 8,
  store: 9,
  wire: 9,
  cluster: 9,
  hub: 10,
  client: 10,
  "shm-client": 10,
  connect: 11,
  browser: 11,
  apps: 12,
  bridge: 12,
  monitor: 12,
  cli: 13,
  index: 14,
};

function sourceFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    const p = path.join(dir, e.name);
    if (e.isDirectory()) return sourceFiles(p);
    return e.name.endsWith(".ts") ? [p] : [];
  });
}

/** The top-level unit of a path under src/ (its folder, or the file's name for a top-level file). */
function unitOf(file: string): string {
  const rel = path.relative(SRC, file).split(path.sep);
  return rel.length === 1 ? rel[0]!.replace(/\.ts$/, "") : rel[0]!;
}

/** Every relative import of `file`, resolved to the .ts file it names. */
function importsOf(file: string): string[] {
  const text = readFileSync(file, "utf8");
  const out: string[] = [];
  for (const m of text.matchAll(/^(?:import|export)[^;]*?from\s+"(\.[^"]+)"/gms)) {
    out.push(path.resolve(path.dirname(file), m[1]!.replace(/\.js$/, ".ts")));
  }
  return out;
}

/** The layering violations in `files` (empty when the tree follows the rules). */
function violationsOf(files: string[], imports: (file: string) => string[] = importsOf): string[] {
  const found: string[] = [];
  for (const file of files) {
    if (path.basename(file) === "index.ts") continue;
    const from = unitOf(file);
    const fromLayer = LAYER[from];
    if (fromLayer === undefined) {
      found.push(`${from}: a folder with no layer in docs/architecture.md`);
      continue;
    }
    for (const target of imports(file)) {
      const to = unitOf(target);
      if (to === from) continue;
      const toLayer = LAYER[to];
      const where = `${path.relative(SRC, file)} imports ${path.relative(SRC, target)}`;
      if (toLayer === undefined) found.push(`${where}: no layer`);
      else if (toLayer >= fromLayer) found.push(`${where}: not a lower layer`);
    }
  }
  return found;
}

describe("architecture", () => {
  it("every import in src/ runs downward (docs/architecture.md)", () => {
    assert.deepEqual(violationsOf(sourceFiles(SRC)), []);
  });

  it("catches an upward import, and an import between two capabilities", () => {
    // A file of src/vars that imports pub/sub, the client, a lower layer and its own folder.
    const probe = path.join(SRC, "vars", "probe.ts");
    const found = violationsOf([probe], () => [
      path.join(SRC, "pubsub", "topics.ts"),
      path.join(SRC, "client", "client.ts"),
      path.join(SRC, "protocol", "names.ts"),
      path.join(SRC, "vars", "pointer.ts"),
    ]);
    assert.deepEqual(found, [
      "vars/probe.ts imports pubsub/topics.ts: not a lower layer",
      "vars/probe.ts imports client/client.ts: not a lower layer",
    ]);
  });
});
