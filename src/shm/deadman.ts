/**
 * A deadman token in shared memory: a lock word whose holder is named by pid and start time, so that a
 * holder that died — however it died — holds nothing: whoever looks next sees a dead process and may take
 * the token over. (A pthread robust mutex would need the kernel to see the holder's mapping at its death,
 * which a process that exits normally may already have unmapped.) The record sits where a topic's ring
 * would start:
 *
 *   4096 i32 holder pid (0: free; negative: being taken by that pid)   4100 u32 holder's client number
 *   4104 f64 holder start time   4112 u32×2 takes so far (epoch)   4120 u8 label length, 4121 label (UTF-8)
 */
import { HEADER_BYTES } from "./layout.js";
import { isAlive, processExists, SELF_START } from "./processes.js";
import type { MappedFile } from "./shm-file.js";

const PID = HEADER_BYTES;
const CLIENT = HEADER_BYTES + 4;
const START = HEADER_BYTES + 8;
const EPOCH = HEADER_BYTES + 16;
const LABEL = HEADER_BYTES + 24;
const TWO32 = 2 ** 32;

export interface TokenState {
  taken: boolean;
  holder: string;
  epoch: bigint;
}

/** Takes the token if it is free or its holder died; returns whether client `client` of this process now holds it. */
export function tryLockToken(file: MappedFile, label: string, client: number): boolean {
  const { i32, u32, f64, bytes } = file;
  for (let tries = 0; tries < 100; tries++) {
    const pid = Atomics.load(i32, PID / 4);
    if (pid > 0 && isAlive(pid, f64[START / 8]!)) return false;
    if (pid < 0 && processExists(-pid)) return false; // being taken right now
    if (Atomics.compareExchange(i32, PID / 4, pid, -process.pid) !== pid) continue;
    const epoch = u32[EPOCH / 4]! + u32[EPOCH / 4 + 1]! * TWO32 + 1;
    u32[EPOCH / 4] = epoch % TWO32;
    u32[EPOCH / 4 + 1] = Math.floor(epoch / TWO32);
    const l = Buffer.from(label, "utf8").subarray(0, 255);
    bytes[LABEL] = l.length;
    l.copy(bytes, LABEL + 1);
    f64[START / 8] = SELF_START;
    u32[CLIENT / 4] = client;
    Atomics.store(i32, PID / 4, process.pid); // taken
    return true;
  }
  return false;
}

/** Frees a token that client `client` of this process holds. */
export function unlockToken(file: MappedFile, client: number): void {
  const { i32, u32 } = file;
  if (Atomics.load(i32, PID / 4) === process.pid && u32[CLIENT / 4] === client) {
    Atomics.compareExchange(i32, PID / 4, process.pid, 0);
  }
}

/** Who holds the token (a dead holder counts as nobody). */
export function tokenState(file: MappedFile): TokenState {
  const { i32, u32, f64, bytes } = file;
  const pid = Atomics.load(i32, PID / 4);
  const epoch = BigInt(u32[EPOCH / 4]!) + (BigInt(u32[EPOCH / 4 + 1]!) << 32n);
  if (pid <= 0 || !isAlive(pid, f64[START / 8]!)) return { taken: false, holder: "", epoch };
  const holder = bytes.toString("utf8", LABEL + 1, LABEL + 1 + bytes[LABEL]!);
  return { taken: true, holder, epoch };
}
