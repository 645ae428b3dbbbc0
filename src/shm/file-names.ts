/**
 * Where ezipc's shared-memory files are, and the file name of each topic or key: `/dev/shm/ezipc.NAMESPACE/`,
 * topics by name with `%` and `/` escaped, internal files behind a dot-prefix (`.rpc.`, `.var.`, …).
 */
import { EzipcError } from "../errors.js";

/** The root of every namespace. */
export const SHM_ROOT = "/dev/shm";

/** A topic's file name: the topic with `%` and `/` escaped (topics never start with a dot). */
export function topicFileName(topic: string): string {
  return topic.replace(/%/g, "%25").replace(/\//g, "%2F");
}

/** The longest file name /dev/shm takes (tmpfs's NAME_MAX, in bytes). */
const NAME_MAX = 255;

/**
 * The file name of topic or key `name` behind `prefix` (`""` for a topic's ring, `.rpc.`, `.deadman.`,
 * `.var.`): {@link topicFileName} of it. A valid name can make one longer than a file name can be (each `/`
 * and `%` takes three bytes, and a prefix its own): that is refused with `code`, saying why.
 */
export function shmFileName(
  prefix: string,
  name: string,
  code: "EZIPC_INVALID_TOPIC" | "EZIPC_INVALID_KEY",
): string {
  const f = prefix + topicFileName(name);
  if (f.length <= NAME_MAX) return f; // (names are ASCII: characters are bytes)
  throw new EzipcError(
    code,
    `${JSON.stringify(name)}: too long for shm://, where its file name (${prefix === "" ? "" : `${prefix} + `}the name, each / and % written in 3 bytes) would take ${f.length} bytes, more than the ${NAME_MAX} a file name can have; a hub takes it`,
  );
}

/** The topic a file name stands for, or null for internal files (those start with a dot). */
export function topicOfFileName(name: string): string | null {
  if (name.startsWith(".")) return null;
  return name.replace(/%2F/g, "/").replace(/%25/g, "%");
}
