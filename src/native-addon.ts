/**
 * Finding and loading this package's native addons (binding.gyp, built by `npm ci` through node-gyp into
 * build/Release): `ezipc_shm` (shm://) and `ezipc_aead` (the secure channel's ciphers). Each is optional:
 * a caller that cannot load one says why, or falls back to a pure JavaScript path.
 */
import { existsSync } from "node:fs";
import { createRequire } from "node:module";
import path from "node:path";
import { fileURLToPath } from "node:url";

/** Where `build/Release/NAME.node` is: from src/ or dist/src/, or undefined. */
export function addonPath(name: string): string | undefined {
  const here = path.dirname(fileURLToPath(import.meta.url));
  for (const up of ["..", "../.."]) {
    const p = path.resolve(here, up, `build/Release/${name}.node`);
    if (existsSync(p)) return p;
  }
  return undefined;
}

/** Loads the addon at `file` (a path from {@link addonPath}); throws what `require` throws. */
export function loadAddon<T>(file: string): T {
  return createRequire(import.meta.url)(file) as T;
}
