/**
 * Shared-memory benchmark roles (run as their own processes by shm-bench.ts).
 *   lock-holder FILE    takes the topic file's writers' lock, prints "ready", and holds it until killed
 */
import { H_MUTEX, KIND_TOPIC } from "../src/shm/layout.js";
import { shmNative } from "../src/shm/native.js";
import { openShmFile } from "../src/shm/shm-file.js";

const [role, file] = process.argv.slice(2) as [string, string];
if (role === "lock-holder") {
  const f = openShmFile(file, KIND_TOPIC);
  const r = shmNative().mutexLock(f.ab, H_MUTEX, 5_000);
  if (r !== 0 && r !== shmNative().EOWNERDEAD) throw new Error(`lock: ${r}`);
  console.log("ready");
  setInterval(() => {}, 1_000); // hold it, alive, until killed
} else {
  console.error(`unknown role ${role}`);
  process.exit(2);
}
