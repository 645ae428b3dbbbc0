/**
 * `node:module` in the browser build: `createRequire` is how src/codec/msgpack.ts loads msgpackr on first
 * use; in a page that load fails with `EZIPC_NOT_SUPPORTED` (the browser client has no msgpack codec).
 */
import { EzipcError } from "../../errors.js";

export function createRequire(_url: string): (id: string) => never {
  return (id) => {
    throw new EzipcError("EZIPC_NOT_SUPPORTED", `${id} is not available in the browser client`);
  };
}
