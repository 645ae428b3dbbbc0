/** The cluster's failures as coded errors. */
import { EzipcError } from "../errors.js";

/** A failure to reach the cluster (NATS, JetStream) as `EZIPC_CLUSTER`, naming what was being done. */
export function clusterError(what: string, err: unknown): EzipcError {
  return new EzipcError("EZIPC_CLUSTER", `${what}: ${(err as Error).message ?? String(err)}`, { cause: err });
}
