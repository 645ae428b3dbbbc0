// Every ```ts block of the README and docs/ compiles as a reader copies it: each block is its own module,
// importing "ezipc" or "ezipc/browser" (the package's own source) and declaring what it uses. Type-checked with the project's
// TypeScript and strict settings.
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { mkdirSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import path from "node:path";
import { describe, it } from "node:test";
import { fileURLToPath } from "node:url";
import { tempDir } from "./helpers.js";

const root = fileURLToPath(new URL("../../", import.meta.url));

/** The ```ts blocks of a Markdown file, with the line each starts on. */
function snippets(file: string): { line: number; code: string }[] {
  const out: { line: number; code: string }[] = [];
  const lines = readFileSync(path.join(root, file), "utf8").split("\n");
  for (let i = 0; i < lines.length; i++) {
    if (lines[i]!.trim() !== "```ts") continue;
    const start = i + 1;
    let end = start;
    while (end < lines.length && lines[end]!.trim() !== "```") end++;
    out.push({ line: start + 1, code: lines.slice(start, end).join("\n") });
    i = end;
  }
  return out;
}

describe("documentation snippets", () => {
  it("every ```ts block of README.md and docs/*.md type-checks on its own", () => {
    const files = ["README.md", ...readdirSync(path.join(root, "docs")).map((f) => `docs/${f}`)].filter((f) =>
      f.endsWith(".md"),
    );
    const tmp = tempDir();
    try {
      const names = new Map<string, string>();
      mkdirSync(path.join(tmp.dir, "snippets"));
      let n = 0;
      for (const file of files) {
        for (const s of snippets(file)) {
          const name = `s${++n}.ts`;
          names.set(name, `${file}:${s.line}`);
          // `export {}` makes each block a module (top-level await, no clashes between blocks).
          writeFileSync(path.join(tmp.dir, "snippets", name), `${s.code}\nexport {};\n`);
        }
      }
      assert.ok(n >= 30, `found ${n} snippets`);
      writeFileSync(
        path.join(tmp.dir, "tsconfig.json"),
        JSON.stringify({
          compilerOptions: {
            target: "ES2022",
            lib: ["ES2023", "ESNext.Disposable"],
            module: "NodeNext",
            moduleResolution: "NodeNext",
            types: ["node"],
            typeRoots: [path.join(root, "node_modules/@types")],
            strict: true,
            noEmit: true,
            skipLibCheck: true,
            baseUrl: ".",
            paths: {
              ezipc: [path.join(root, "src/index.ts")],
              "ezipc/browser": [path.join(root, "src/browser/index.ts")],
            },
          },
          include: ["snippets"],
        }),
      );
      writeFileSync(path.join(tmp.dir, "package.json"), '{ "type": "module" }');
      const tsc = spawnSync(
        process.execPath,
        [path.join(root, "node_modules/typescript/bin/tsc"), "-p", tmp.dir],
        { encoding: "utf8" },
      );
      const report = (tsc.stdout + tsc.stderr).replace(/snippets\/(s\d+\.ts)/g, (_m, f: string) =>
        names.get(f)!.concat(` (${f})`),
      );
      assert.equal(tsc.status, 0, report);
    } finally {
      tmp.cleanup();
    }
  });
});
