/**
 * Opening and creating ezipc shared-memory files: `/dev/shm/ezipc.NAMESPACE/NAME`.
 *
 * A file is created complete or not at all: it is written under a temporary name (header, state, mutex)
 * and then hard-linked to its name, which fails if another process created it first; the loser opens the
 * winner's file. Opening validates everything a later read relies on (magic, version, kind, sizes), so a
 * truncated, corrupted or foreign file is refused with `EZIPC_SHM_BAD_FILE` and never mapped past its end.
 * Pages get their memory before anything writes them (`populate`), so a full /dev/shm is `EZIPC_SHM_FULL`
 * when a file is created or opened, or when a writer reaches a part of a ring not yet used, never a SIGBUS.
 */
import {
  chmodSync,
  closeSync,
  constants,
  existsSync,
  fchmodSync,
  fstatSync,
  ftruncateSync,
  linkSync,
  lstatSync,
  mkdirSync,
  openSync,
  readSync,
  renameSync,
  unlinkSync,
} from "node:fs";
import path from "node:path";
import { EzipcError, isEzipcError } from "../errors.js";
import { SHM_ROOT } from "./file-names.js";
import {
  CLAIM_BYTES,
  H_CLAIMS,
  H_CREATED,
  H_HEADER_BYTES,
  H_KIND,
  H_MAGIC,
  H_MAX_COUNT,
  H_MUTEX,
  H_RING_BYTES,
  H_STATE,
  H_VERSION,
  HEADER_BYTES,
  KIND_VAR,
  MAGIC,
  MAX_RING_BYTES,
  MIN_RING_BYTES,
  S_NEXT_LO,
  S_TAIL_SEQ_LO,
  STATE_BYTES,
  VERSION,
} from "./layout.js";
import { shmNative } from "./native.js";
import { populate } from "./populate.js";

/** The root of every namespace. */
const NAMESPACE_RE = /^[A-Za-z0-9_-][A-Za-z0-9._-]{0,63}$/;

/** A mapped file: the buffer and typed views over all of it. */
export interface MappedFile {
  readonly path: string;
  /** Which file this is (device and inode): a file removed and created again under its name is another. */
  readonly identity: string;
  readonly ab: ArrayBuffer;
  readonly bytes: Buffer;
  readonly i32: Int32Array;
  readonly u32: Uint32Array;
  readonly f64: Float64Array;
  readonly ringBytes: number;
  readonly maxCount: number;
  /** Claim entries after the ring (RPC request files), and where they start. */
  readonly claims: number;
  readonly claimsAt: number;
}

/** The directory of a namespace (created with `mode` plus search bits where it grants reading). */
export function namespaceDir(namespace: string, mode = 0o600): string {
  if (!NAMESPACE_RE.test(namespace)) {
    throw new EzipcError(
      "EZIPC_INVALID_URL",
      `shm namespace ${JSON.stringify(namespace)}: 1-64 of A-Z a-z 0-9 . _ -, not starting with a dot`,
    );
  }
  const dir = path.join(SHM_ROOT, `ezipc.${namespace}`);
  const dirMode = mode | ((mode & 0o444) >> 2) | 0o700;
  mkdirSync(dir, { recursive: true, mode: dirMode });
  // /dev/shm is writable by every user: the namespace may have been made by someone else, or be a link.
  const st = lstatSync(dir);
  if (!st.isDirectory())
    throw bad(dir, "not a directory (a symbolic link or a file is not used as a namespace)");
  checkOwner(dir, st.uid, mode);
  // The process's umask takes bits off what mkdir is asked for: a shared namespace is made as asked, with
  // the sticky bit where others may create files (so that nobody removes or replaces another's files).
  if (typeof process.getuid === "function" && st.uid === process.getuid()) {
    const want = dirMode | ((dirMode & 0o022) !== 0 ? 0o1000 : 0);
    if ((st.mode & want) !== want) chmodSync(dir, (st.mode & 0o7777) | want);
  }
  return dir;
}

/**
 * A private namespace (`mode` grants nothing to group or others) uses only what this user owns: a
 * directory or file another user placed there could feed it forged messages. Shared modes take files of
 * the users they share with.
 */
function checkOwner(file: string, uid: number, mode: number): void {
  if ((mode & 0o077) !== 0 || typeof process.getuid !== "function") return;
  const me = process.getuid();
  if (uid !== me) {
    throw bad(
      file,
      `owned by uid ${uid}, not by this user (uid ${me}), in a namespace of mode 0${mode.toString(8)}`,
    );
  }
}

/**
 * Whether `err` says a namespace's file cannot be used (not ours, corrupted, not readable, no room for its
 * pages): a listing of the namespace leaves that file out and goes on with the others.
 */
export function isUnusableFile(err: unknown): boolean {
  return (
    isEzipcError(err, "EZIPC_SHM_BAD_FILE") ||
    isEzipcError(err, "EZIPC_PERMISSION_DENIED") ||
    isEzipcError(err, "EZIPC_SHM_FULL")
  );
}

/**
 * `err` as `EZIPC_SHM_GONE` if it is ENOENT because the namespace directory `dir` is gone (removed while this
 * process used it); otherwise `err` itself.
 */
function goneOr(dir: string, err: unknown): unknown {
  if ((err as NodeJS.ErrnoException).code !== "ENOENT" || existsSync(dir)) return err;
  return namespaceGone(dir, err);
}

/** `EZIPC_SHM_GONE`: the namespace directory `dir` was removed while this process used it. */
export function namespaceGone(dir: string, cause?: unknown): EzipcError {
  return new EzipcError(
    "EZIPC_SHM_GONE",
    `${dir} was removed while this process used it: the files it has open are no longer the namespace's; close this client and connect again`,
    cause === undefined ? undefined : { cause },
  );
}

function bad(file: string, why: string): EzipcError {
  return new EzipcError("EZIPC_SHM_BAD_FILE", `${file}: ${why}`);
}

/**
 * Rings at most this large are given all their memory when mapped (deadman tokens, small test rings);
 * larger rings as their writers reach them (TopicRing), so that a topic costs the memory it has used.
 */
const POPULATE_WHOLE_RING = 64 * 1024;

function mapFd(
  fd: number,
  file: string,
  size: number,
  ringBytes: number,
  maxCount: number,
  claims: number,
  kind: number,
): MappedFile {
  const ab = shmNative().map(fd, size);
  const st = fstatSync(fd);
  const m = mappedFile(file, `${st.dev}:${st.ino}`, ab, ringBytes, maxCount, claims);
  // What every process that maps the file writes: the header (state, reader slots, the mutex), RPC claims,
  // and all of a variable's file (its blocks); a topic's ring, as its writers reach it.
  if (kind === KIND_VAR || ringBytes <= POPULATE_WHOLE_RING) populate(m, 0, size);
  else {
    populate(m, 0, HEADER_BYTES);
    populate(m, m.claimsAt, size - m.claimsAt);
  }
  return m;
}

function mappedFile(
  file: string,
  identity: string,
  ab: ArrayBuffer,
  ringBytes: number,
  maxCount: number,
  claims: number,
): MappedFile {
  return {
    path: file,
    identity,
    ab,
    bytes: Buffer.from(ab),
    i32: new Int32Array(ab),
    u32: new Uint32Array(ab),
    f64: new Float64Array(ab),
    ringBytes,
    maxCount,
    claims,
    claimsAt: HEADER_BYTES + ringBytes,
  };
}

/** open(2) flags of an existing file: never through a symbolic link, and never blocking (a FIFO put there). */
const OPEN_EXISTING = constants.O_RDWR | constants.O_NOFOLLOW | constants.O_NONBLOCK;

/** Opens `file` read-write as one of ours: `EZIPC_SHM_BAD_FILE` for what cannot be one; ENOENT as it is. */
function openExistingFd(file: string): number {
  try {
    return openSync(file, OPEN_EXISTING);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === "ELOOP") throw bad(file, "a symbolic link (not followed)");
    if (code === "EISDIR") throw bad(file, "a directory");
    if (code === "EACCES" || code === "EPERM") {
      throw new EzipcError(
        "EZIPC_PERMISSION_DENIED",
        `${file}: this user may not read and write it (made by another user with a mode that does not share it)`,
        { cause: err },
      );
    }
    throw err;
  }
}

/**
 * Opens and validates an existing file of a namespace of `mode` (see {@link namespaceDir}); throws
 * `EZIPC_SHM_BAD_FILE`, `EZIPC_PERMISSION_DENIED`, `EZIPC_SHM_FULL`, or the fs error (ENOENT…).
 */
export function openShmFile(file: string, kind: number, mode: number): MappedFile {
  const fd = openExistingFd(file);
  try {
    const st = fstatSync(fd);
    if (!st.isFile()) throw bad(file, "not a regular file");
    checkOwner(file, st.uid, mode);
    const size = st.size;
    if (size < HEADER_BYTES) throw bad(file, `${size} bytes, shorter than its ${HEADER_BYTES}-byte header`);
    const head = Buffer.alloc(64);
    readSync(fd, head, 0, 64, 0);
    if (head.readUInt32LE(H_MAGIC) !== MAGIC) throw bad(file, "not an ezipc shared-memory file (bad magic)");
    const version = head.readUInt32LE(H_VERSION);
    if (version !== VERSION)
      throw bad(file, `layout version ${version}; this ezipc reads version ${VERSION}`);
    const k = head.readUInt32LE(H_KIND);
    if (k !== kind) throw bad(file, `kind ${k}, expected ${kind}`);
    if (head.readUInt32LE(H_HEADER_BYTES) !== HEADER_BYTES) throw bad(file, "unexpected header size");
    const ringBytes = head.readUInt32LE(H_RING_BYTES);
    if (ringBytes < MIN_RING_BYTES || ringBytes > MAX_RING_BYTES || ringBytes % 8 !== 0) {
      throw bad(file, `ring of ${ringBytes} bytes`);
    }
    const claims = head.readUInt32LE(H_CLAIMS);
    if (claims > 1 << 20) throw bad(file, `${claims} claim entries`);
    const expected = HEADER_BYTES + ringBytes + claims * CLAIM_BYTES;
    if (size !== expected) throw bad(file, `${size} bytes, but its header says ${expected} (truncated?)`);
    return mapFd(fd, file, size, ringBytes, head.readUInt32LE(H_MAX_COUNT), claims, k);
  } finally {
    closeSync(fd);
  }
}

/** What a new file is made of. `init` writes its kind-specific header before anybody can open it. */
export interface NewShmFile {
  kind: number;
  ringBytes: number;
  maxCount: number;
  mode: number;
  claims?: number;
  init?: (m: MappedFile) => void;
}

/**
 * Creates `file` complete: written under a temporary name, then hard-linked to its name (`replace`: renamed
 * over it, atomically replacing what was there). Returns null if the file exists (never with `replace`).
 */
export function createShmFile(file: string, spec: NewShmFile, replace = false): MappedFile | null {
  const claims = spec.claims ?? 0;
  let ringBytes = spec.ringBytes;
  if (!Number.isInteger(ringBytes) || ringBytes < MIN_RING_BYTES || ringBytes > MAX_RING_BYTES) {
    throw new RangeError(`ringBytes must be an integer in ${MIN_RING_BYTES}..${MAX_RING_BYTES}`);
  }
  ringBytes = (ringBytes + 7) & ~7;
  const native = shmNative();
  const tmp = path.join(path.dirname(file), `.tmp.${process.pid}.${Math.random().toString(36).slice(2)}`);
  let fd: number;
  try {
    fd = openSync(tmp, "wx+", spec.mode);
  } catch (err) {
    throw goneOr(path.dirname(file), err);
  }
  let linked = false;
  try {
    fchmodSync(fd, spec.mode); // exactly the mode asked for, whatever the umask
    const size = HEADER_BYTES + ringBytes + claims * CLAIM_BYTES;
    ftruncateSync(fd, size);
    const m = mapFd(fd, file, size, ringBytes, spec.maxCount, claims, spec.kind);
    m.u32[H_CLAIMS / 4] = claims;
    m.u32[H_MAGIC / 4] = MAGIC;
    m.u32[H_VERSION / 4] = VERSION;
    m.u32[H_KIND / 4] = spec.kind;
    m.u32[H_HEADER_BYTES / 4] = HEADER_BYTES;
    m.u32[H_RING_BYTES / 4] = ringBytes;
    m.u32[H_MAX_COUNT / 4] = spec.maxCount;
    m.f64[H_CREATED / 8] = Date.now();
    native.mutexInit(m.ab, H_MUTEX);
    for (const block of [0, 1]) {
      const b = (H_STATE + block * STATE_BYTES) / 4;
      m.u32[b + S_NEXT_LO / 4] = 1; // the first message is seq 1; an empty ring has tail seq = next seq
      m.u32[b + S_TAIL_SEQ_LO / 4] = 1;
    }
    spec.init?.(m);
    if (replace) {
      renameSync(tmp, file);
      linked = true;
      return m;
    }
    try {
      linkSync(tmp, file);
      return m;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== "EEXIST") throw err;
      return null;
    }
  } finally {
    closeSync(fd);
    if (!linked) unlinkSync(tmp);
  }
}

/**
 * Opens `file`, creating it first (with `ringBytes` of ring, `maxCount`, `mode`) if it does not exist.
 * Of processes racing to create one file, exactly one creates it; the others open that one.
 */
export function openOrCreateShmFile(
  file: string,
  kind: number,
  ringBytes: number,
  maxCount: number,
  mode: number,
  claims = 0,
): MappedFile {
  try {
    return openShmFile(file, kind, mode);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== "ENOENT") throw err;
  }
  return (
    createShmFile(file, { kind, ringBytes, maxCount, mode, claims }) ?? openShmFile(file, kind, mode) // another process created it first
  );
}
