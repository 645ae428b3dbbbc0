/**
 * How deeply a JSON text nests, read without parsing it. A config write's JSON is parsed, merged and
 * written out again by recursive functions (JSON.stringify, mergePatch): 10,000 levels of `[` overflowed
 * the hub's stack, and the hub closed the writer's connection without saying why. The hub refuses JSON
 * nested deeper than {@link MAX_JSON_DEPTH} with `EZIPC_BAD_REQUEST` before parsing it.
 */
import { EzipcError } from "../errors.js";

/** Deepest nesting of arrays and objects a config value may have. */
export const MAX_JSON_DEPTH = 256;

/**
 * The deepest nesting of `[` and `{` in `text` (outside strings), stopping once it passes `limit`. Linear in
 * the text; does not check that the text is JSON.
 */
export function jsonDepth(text: string, limit = MAX_JSON_DEPTH): number {
  let depth = 0;
  let deepest = 0;
  let inString = false;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (inString) {
      if (c === 0x5c /* \ */) i++;
      else if (c === 0x22 /* " */) inString = false;
    } else if (c === 0x22) inString = true;
    else if (c === 0x5b /* [ */ || c === 0x7b /* { */) {
      depth++;
      if (depth > deepest) {
        deepest = depth;
        if (deepest > limit) return deepest;
      }
    } else if (c === 0x5d /* ] */ || c === 0x7d /* } */) depth--;
  }
  return deepest;
}

/** Throws `EZIPC_BAD_REQUEST` if config JSON `text` for `key` nests deeper than {@link MAX_JSON_DEPTH}. */
export function checkConfigDepth(key: string, text: string): void {
  if (jsonDepth(text) <= MAX_JSON_DEPTH) return;
  throw new EzipcError(
    "EZIPC_BAD_REQUEST",
    `${key}: JSON nested deeper than ${MAX_JSON_DEPTH} levels (arrays and objects)`,
  );
}
