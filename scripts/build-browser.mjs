#!/usr/bin/env node
/**
 * Builds the browser bundles with esbuild (run by `npm run build`, after tsc):
 * - dist/browser/ezipc.js — `ezipc/browser` (src/browser/index.ts), ESM, minified;
 * - dist/browser/dashboard.js — the hub's dashboard page (src/monitor/dashboard/page.ts), with uPlot
 *   (and uPlot's stylesheet copied beside it as uplot.css).
 *
 * The browser client is the Node client's code with the Node-only modules swapped (SWAPS below) and the
 * Node built-ins it still names replaced by small shims (BUILTINS); any other `node:` import fails the
 * build, so nothing Node-only slips into a page. Prints each bundle's size, raw and gzipped.
 */
import { copyFileSync, mkdirSync, readFileSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { gzipSync } from "node:zlib";
import { build } from "esbuild";

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
const src = (p) => path.join(root, "src", p);

/** Node-only modules of the client → their browser versions (same exports). */
const SWAPS = new Map([
  [src("transport/registry.ts"), src("browser/registry.ts")],
  [src("rpc/direct.ts"), src("browser/no-direct.ts")],
  [src("client/options.ts"), src("browser/options.ts")],
  [src("security/suite.ts"), src("browser/suite.ts")],
]);

/** Node built-ins the client code imports → browser shims or packages. */
const BUILTINS = {
  "node:events": "events",
  "node:buffer": "buffer",
  "node:diagnostics_channel": src("browser/shims/diagnostics-channel.ts"),
  "node:util": src("browser/shims/util.ts"),
  "node:os": src("browser/shims/os.ts"),
  "node:module": src("browser/shims/module.ts"),
};

const browserPlugin = {
  name: "ezipc-browser",
  setup(b) {
    b.onResolve({ filter: /^node:/ }, async (args) => {
      const to = BUILTINS[args.path];
      if (!to) {
        return {
          errors: [
            {
              text: `${args.path} (imported by ${path.relative(root, args.importer)}) has no browser version`,
            },
          ],
        };
      }
      if (to.startsWith("/")) return { path: to };
      return b.resolve(to, { kind: args.kind, resolveDir: root });
    });
    // The sources import each other as `./x.js`: resolve to the .ts file, then swap the Node-only ones.
    b.onResolve({ filter: /^\.\.?\/.*\.js$/ }, (args) => {
      if (!args.importer.startsWith(src(""))) return undefined; // packages resolve as they are
      const ts = path.resolve(args.resolveDir, args.path.replace(/\.js$/, ".ts"));
      return { path: SWAPS.get(ts) ?? ts };
    });
  },
};

const common = {
  bundle: true,
  format: "esm",
  platform: "browser",
  target: ["es2022"],
  minify: true,
  sourcemap: true,
  legalComments: "none",
  inject: [src("browser/shims/globals.ts")],
  plugins: [browserPlugin],
  logLevel: "warning",
};

const outdir = path.join(root, "dist", "browser");
mkdirSync(outdir, { recursive: true });
const bundles = [
  { entry: src("browser/index.ts"), out: "ezipc.js" },
  { entry: src("monitor/dashboard/page.ts"), out: "dashboard.js" },
];
copyFileSync(path.join(root, "node_modules/uplot/dist/uPlot.min.css"), path.join(outdir, "uplot.css"));
for (const { entry, out } of bundles) {
  const result = await build({
    ...common,
    metafile: true,
    entryPoints: [entry],
    outfile: path.join(outdir, out),
  });
  if (process.env.EZIPC_BUNDLE_REPORT) {
    const inputs = Object.entries(result.metafile.outputs[`dist/browser/${out}`].inputs);
    const byPackage = new Map();
    for (const [file, { bytesInOutput }] of inputs) {
      const key = file.includes("node_modules/")
        ? file
            .split("node_modules/")[1]
            .split("/")
            .slice(0, file.includes("@") ? 2 : 1)
            .join("/")
        : file.split("/").slice(0, 2).join("/");
      byPackage.set(key, (byPackage.get(key) ?? 0) + bytesInOutput);
    }
    for (const [k, v] of [...byPackage].sort((a, b) => b[1] - a[1])) process.stdout.write(`  ${k}: ${v}\n`);
  }
  const bytes = readFileSync(path.join(outdir, out));
  const kib = (n) => `${(n / 1024).toFixed(1)} KiB`;
  process.stdout.write(
    `dist/browser/${out}: ${kib(bytes.length)} (${kib(gzipSync(bytes, { level: 9 }).length)} gzipped)\n`,
  );
}
