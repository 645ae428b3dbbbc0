/**
 * Direct RPC in the browser build: there is none (it needs Unix sockets), so every call goes through the
 * hub. The same exports as src/rpc/direct.ts that the RPC client uses; scripts/build-browser.mjs puts this
 * file in its place.
 */
import { EzipcError } from "../errors.js";

/** Routes that never name a direct link: calls go through the hub. */
export class DirectRoutes {
  pick(_topic: string): undefined {
    return undefined;
  }
  update(_topic: string, _routes: readonly { host: string; url: string }[]): void {}
  reset(): void {}
  close(): void {}
}

/** A browser cannot listen: opening a direct server rejects, and the client serves through the hub. */
export const DirectServer = {
  open(_handlers: unknown): Promise<never> {
    return Promise.reject(new EzipcError("EZIPC_NOT_SUPPORTED", "direct RPC is not available in a browser"));
  },
};
