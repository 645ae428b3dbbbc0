/** `node:util` in the browser build: the `debuglog` check src/log.ts makes, always off. */
export function debuglog(_section: string): { enabled: boolean } {
  return { enabled: false };
}
