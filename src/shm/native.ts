/**
 * The native part of shm:// (native/shm.c, built by `npm ci` through node-gyp): mmap of a /dev/shm file,
 * populating its pages ahead of writes, a robust process-shared mutex, mkfifo. Loaded on first use; where it cannot load (not Linux, addon not
 * built) every shm:// entry point fails with `EZIPC_SHM_UNAVAILABLE` and the rest of ezipc is unaffected.
 */
import { existsSync } from "node:fs";
import { EzipcError } from "../errors.js";
import { addonPath, loadAddon } from "../native-addon.js";

/** A native watcher of a file descriptor (opaque). */
export type Poller = { readonly __poller: unique symbol };

export interface ShmNative {
  /** mmap(MAP_SHARED) of `length` bytes of the open file `fd`; unmapped when the buffer is collected. */
  map(fd: number, length: number): ArrayBuffer;
  mutexInit(ab: ArrayBuffer, offset: number): number;
  /** 0, EOWNERDEAD (the holder died: repair, then mutexConsistent), ETIMEDOUT or ENOTRECOVERABLE. */
  mutexLock(ab: ArrayBuffer, offset: number, timeoutMs: number): number;
  mutexTryLock(ab: ArrayBuffer, offset: number): number;
  mutexConsistent(ab: ArrayBuffer, offset: number): number;
  mutexUnlock(ab: ArrayBuffer, offset: number): number;
  /**
   * Gives bytes `offset..offset+length` of a mapping their memory now (whole pages): 0, ENOSPC if /dev/shm
   * has no room for them (a write would have died of SIGBUS), EINVAL if the kernel cannot (before 5.14).
   */
  populate(ab: ArrayBuffer, offset: number, length: number): number;
  mkfifo(path: string, mode: number): number;
  /** Calls `fn` on the event loop whenever `fd` is readable, after reading it empty (a uv_poll). */
  watchFd(fd: number, fn: () => void): Poller;
  pollerRef(p: Poller): void;
  pollerUnref(p: Poller): void;
  /** Stops watching (the caller closes the fd). */
  pollerClose(p: Poller): void;
  readonly MUTEX_BYTES: number;
  readonly EOWNERDEAD: number;
  readonly EBUSY: number;
  readonly ENOSPC: number;
  readonly EINVAL: number;
  readonly ETIMEDOUT: number;
  readonly ENOTRECOVERABLE: number;
}

let loaded: ShmNative | EzipcError | undefined;

/** The addon, or throws `EZIPC_SHM_UNAVAILABLE` saying why it cannot be used. */
export function shmNative(): ShmNative {
  if (loaded === undefined) loaded = load();
  if (loaded instanceof EzipcError) throw loaded;
  return loaded;
}

function load(): ShmNative | EzipcError {
  if (process.platform !== "linux") {
    return new EzipcError("EZIPC_SHM_UNAVAILABLE", `shm:// needs Linux (this is ${process.platform})`);
  }
  if (!existsSync("/dev/shm")) {
    return new EzipcError("EZIPC_SHM_UNAVAILABLE", "shm:// needs /dev/shm, which this system does not have");
  }
  const p = addonPath("ezipc_shm");
  if (!p) {
    return new EzipcError(
      "EZIPC_SHM_UNAVAILABLE",
      "shm://: the native addon build/Release/ezipc_shm.node is missing (npm ci builds it with node-gyp; run `npm run install` to build it again)",
    );
  }
  try {
    return loadAddon<ShmNative>(p);
  } catch (err) {
    return new EzipcError("EZIPC_SHM_UNAVAILABLE", `shm://: the native addon did not load: ${String(err)}`, {
      cause: err,
    });
  }
}
