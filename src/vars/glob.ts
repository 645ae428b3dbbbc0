/**
 * Key globs: `*` matches any run of characters (including none), `?` exactly one; everything else matches
 * itself. An empty pattern matches every key.
 *
 * Matched without regular expressions: a glob compiled to a backtracking RegExp (`^.*a.*a.*a.*a!$`) took
 * 0.9 s on one 200-character key and did not end at six stars, so one `list` could hold the hub forever.
 * Here a star that fails is retried only from the last star (the classic greedy walk): at most key length ×
 * pattern length steps per key, and about key length for the patterns people write. {@link GlobMatcher}
 * counts its steps, so the hub refuses a pattern that costs many times what the keys it walked would
 * (key-listings.ts).
 */

export class GlobMatcher {
  /** Steps taken so far over every key matched (what matching cost). */
  steps = 0;
  /** Characters of the keys matched so far. */
  chars = 0;
  private readonly all: boolean;

  constructor(readonly pattern: string) {
    this.all = pattern === "" || pattern === "*";
  }

  /** Whether `key` matches the glob. */
  matches(key: string): boolean {
    if (this.all) return true;
    const p = this.pattern;
    const pl = p.length;
    const kl = key.length;
    this.chars += kl;
    let pi = 0;
    let ki = 0;
    let star = -1;
    let mark = 0;
    let steps = 0;
    while (ki < kl) {
      steps++;
      const c = pi < pl ? p.charCodeAt(pi) : -1;
      if (c === 0x2a /* * */) {
        star = pi++;
        mark = ki;
      } else if (c === 0x3f /* ? */ || (c !== -1 && c === key.charCodeAt(ki))) {
        pi++;
        ki++;
      } else if (star >= 0) {
        pi = star + 1;
        ki = ++mark;
      } else {
        this.steps += steps;
        return false;
      }
    }
    while (pi < pl && p.charCodeAt(pi) === 0x2a) pi++;
    this.steps += steps;
    return pi === pl;
  }
}

/** Compiles a key glob (see {@link GlobMatcher}). */
export function globMatcher(pattern: string): (key: string) => boolean {
  const g = new GlobMatcher(pattern);
  return (key) => g.matches(key);
}
