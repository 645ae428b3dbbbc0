/** `node:diagnostics_channel` in the browser build: channels nobody can subscribe to. */
const silent = { hasSubscribers: false, publish(_message: unknown): void {} };
export default { channel: (_name: string) => silent };
