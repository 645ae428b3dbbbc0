/**
 * Compiles a key glob: `*` matches any run of characters (including none), `?` exactly one; everything
 * else matches itself. An empty pattern matches every key.
 */
export function globMatcher(pattern: string): (key: string) => boolean {
  if (pattern === "" || pattern === "*") return () => true;
  const src = pattern
    .split("")
    .map((c) => (c === "*" ? ".*" : c === "?" ? "." : c.replace(/[\\^$.|+()[\]{}]/g, "\\$&")))
    .join("");
  const re = new RegExp(`^${src}$`, "s");
  return (key) => re.test(key);
}
