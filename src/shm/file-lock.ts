/**
 * The writers' lock of a shared-memory file: the robust process-shared mutex in its header. A process that
 * dies holding it leaves it to the next taker with EOWNERDEAD, which {@link lockFile} reports as `true`: the
 * file's committed state is whole by construction (writers only ever publish with one atomic store), so
 * there is nothing to repair but the mutex itself.
 */
import { EzipcError } from "../errors.js";
import { H_MUTEX } from "./layout.js";
import { shmNative } from "./native.js";
import type { MappedFile } from "./shm-file.js";

/** How long a writer waits for the lock held by a live process before it gives up (`EZIPC_TIMEOUT`). */
export const LOCK_TIMEOUT_MS = 5_000;

/** Takes the file's lock; returns true if its last holder had died holding it. */
export function lockFile(file: MappedFile): boolean {
  const native = shmNative();
  const r = native.mutexLock(file.ab, H_MUTEX, LOCK_TIMEOUT_MS);
  if (r === 0) return false;
  if (r === native.EOWNERDEAD) {
    native.mutexConsistent(file.ab, H_MUTEX);
    return true;
  }
  if (r === native.ETIMEDOUT) {
    throw new EzipcError(
      "EZIPC_TIMEOUT",
      `${file.path}: the writers' lock was held for over ${LOCK_TIMEOUT_MS} ms by a live process`,
    );
  }
  throw new EzipcError("EZIPC_SHM_BAD_FILE", `${file.path}: the writers' lock is unusable (${r})`);
}

export function unlockFile(file: MappedFile): void {
  shmNative().mutexUnlock(file.ab, H_MUTEX);
}
