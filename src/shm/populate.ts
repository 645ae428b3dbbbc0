/**
 * Giving pages of a mapped file their memory before anything writes them. A page of a tmpfs file gets its
 * memory when it is first touched; if /dev/shm is full then, the touching process dies of SIGBUS, which Node
 * cannot catch. Populated ahead (MADV_POPULATE_WRITE), a full /dev/shm is `EZIPC_SHM_FULL` instead.
 */
import { statfsSync } from "node:fs";
import path from "node:path";
import { EzipcError } from "../errors.js";
import { SHM_ROOT } from "./file-names.js";
import { shmNative } from "./native.js";
import type { MappedFile } from "./shm-file.js";

/** /dev/shm cannot give `size` more bytes of `file` their memory. */
function noRoom(file: string, size: number): EzipcError {
  let free = "";
  try {
    const fs = statfsSync(path.dirname(file));
    free = ` (${Math.floor((fs.bavail * fs.bsize) / 1024)} KiB free of ${Math.floor((fs.blocks * fs.bsize) / 1024)} KiB)`;
  } catch {
    // (the size is only a hint)
  }
  return new EzipcError(
    "EZIPC_SHM_FULL",
    `${file}: ${SHM_ROOT} has no room for ${size} more bytes of it${free}; remove the namespaces no longer used (rm -r ${SHM_ROOT}/ezipc.NAME), give topics smaller rings (ringBytes on connect, maxBytes in configureTopic), or make ${SHM_ROOT} larger (docker: --shm-size)`,
  );
}

/** Whether the kernel can populate pages ahead of writes (MADV_POPULATE_WRITE, Linux 5.14). */
let canPopulate = true;

/**
 * Gives bytes `offset..offset+length` of `m` their memory now, so that writing them later cannot kill the
 * process with SIGBUS when /dev/shm is full (a page of a tmpfs file gets its memory when first touched).
 * Throws `EZIPC_SHM_FULL` if there is no room. Where the kernel cannot, it does nothing (the SIGBUS risk
 * stays, as with any mapped tmpfs file).
 */
export function populate(m: MappedFile, offset: number, length: number): void {
  if (!canPopulate || length <= 0) return;
  const native = shmNative();
  const r = native.populate(m.ab, offset, length);
  if (r === 0) return;
  if (r === native.ENOSPC) throw noRoom(m.path, length);
  if (r === native.EINVAL) canPopulate = false;
}
