/** `node:os` in the browser build: the host name the RPC client reports for direct calls (none). */
export default { hostname: (): string => "" };
