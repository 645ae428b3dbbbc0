/**
 * One shared-memory namespace as a process sees it: `/dev/shm/ezipc.NAME/`, the topic files it opened
 * (each mapped once per process, however many publishers and subscriptions use it), and its wake-up pipe.
 */
import { readdirSync, statSync, unlinkSync } from "node:fs";
import path from "node:path";
import { EzipcError } from "../errors.js";
import { checkTopic } from "../protocol/names.js";
import { shmFileName, topicFileName, topicOfFileName } from "../shm/file-names.js";
import { setReaderCount, setReaderPosition, takeWaitingWriters } from "../shm/holds.js";
import {
  DEFAULT_RING_BYTES,
  KIND_DEADMAN,
  KIND_INBOX,
  KIND_RPC,
  KIND_TOPIC,
  MIN_RING_BYTES,
  RPC_CLAIMS,
} from "../shm/layout.js";
import { isAlive, processExists } from "../shm/processes.js";
import { TopicRing } from "../shm/ring.js";
import { namespaceDir, namespaceGone, openOrCreateShmFile, openShmFile } from "../shm/shm-file.js";
import { Waker } from "../shm/waker.js";
import type { RingFollower } from "./ring-follower.js";

/** Options of a shm:// client. */
export interface ShmOptions {
  /** File mode of the topic files this process creates. Default 0o600 (this user only). */
  mode?: number;
  /** Ring bytes of the topics this process creates. Default 16 MiB. */
  ringBytes?: number;
  /** Messages a topic this process creates keeps at most (0: bounded by bytes only). Default 0. */
  maxCount?: number;
  /**
   * How long a publisher waits for a reader that has not read what the ring would evict (`iter: next`
   * subscribers hold publishers, as on a hub) before it evicts anyway and the reader gets a gap. 0: never
   * wait (the oldest are overwritten at once). Default 5000.
   */
  holdPublishersMs?: number;
  /**
   * Readers poll instead of sleeping: the lowest latency (a few µs), at the cost of a busy core per
   * process while it waits. Default false (readers sleep and are woken).
   */
  spin?: boolean;
  /**
   * RPC without spinning, µs: after this process writes a call (or a stream's flow), the caller keeps looking
   * for the answer this long before it sleeps; after a server writes an answer, it looks for the next request
   * the same way (the first 20 µs in the process's spin loop, then once per turn of the event loop). An
   * answer or request that comes within the window costs no wake-up (two fewer system calls and context
   * switches per round trip). 0: sleep at once. Default 100. Ignored with `spin: true`. See docs/shm.md.
   */
  watchUs?: number;
}

/** A topic file opened by this process, with what this process does on it. */
export class LocalTopic {
  /** This process's reader slot in the file (-1: none held). */
  slot = -1;
  /** Readers (subscriptions, RPC followers) of this process on the file. */
  readonly readers = new Set<RingFollower>();
  /** Messages this process's publishers hold back until readers move on (shm-pubsub.ts). */
  held: unknown = null;

  constructor(
    readonly name: string,
    readonly ring: TopicRing,
  ) {}
}

/**
 * Removes the inboxes and wake-up pipes of processes that died without removing theirs (kill -9), and
 * temporary files of creations they did not finish. Topics stay: their history outlives their writers.
 */
export function removeStaleFiles(dir: string): number {
  let removed = 0;
  for (const name of readdirSync(dir)) {
    const m = /^\.(inbox|wake|tmp)\.(\d+)\.([a-z0-9]+)(\.\d+)?$/.exec(name);
    if (!m) continue;
    const pid = Number(m[2]);
    const gone = m[1] === "tmp" ? !processExists(pid) : !isAlive(pid, Number(m[3]));
    if (!gone) continue;
    try {
      unlinkSync(path.join(dir, name));
      removed++;
    } catch {}
  }
  return removed;
}

export class ShmNamespace {
  readonly dir: string;
  readonly waker: Waker;
  private readonly topics = new Map<string, LocalTopic>();
  /** File mode of the files this process creates. */
  readonly mode: number;
  private readonly ringBytes: number;
  private readonly maxCount: number;
  /** Readers poll instead of parking (ShmOptions.spin). */
  readonly spin: boolean;
  readonly holdPublishersMs: number;
  /** ShmOptions.watchUs, in ms. */
  readonly watchMs: number;

  constructor(
    readonly name: string,
    options: ShmOptions,
  ) {
    this.mode = options.mode ?? 0o600;
    this.ringBytes = options.ringBytes ?? DEFAULT_RING_BYTES;
    this.maxCount = options.maxCount ?? 0;
    this.spin = options.spin ?? false;
    this.holdPublishersMs = options.holdPublishersMs ?? 5_000;
    this.watchMs = (options.watchUs ?? 100) / 1000;
    this.dir = namespaceDir(name, this.mode);
    this.dirIno = statSync(this.dir).ino;
    this.waker = Waker.acquire(this.dir, this.onWake, this.mode);
    removeStaleFiles(this.dir);
  }

  /** The topic's file, opened (and created with this client's defaults, or `sizes`) if need be. */
  topic(name: string, sizes?: { ringBytes?: number; maxCount?: number }): LocalTopic {
    const known = this.byTopic.get(name);
    if (known) return known;
    const t = this.topics.get(topicFileName(name));
    if (t) {
      this.byTopic.set(name, t);
      return t;
    }
    checkTopic(name);
    return this.open(
      shmFileName("", name, "EZIPC_INVALID_TOPIC"),
      name,
      KIND_TOPIC,
      sizes?.ringBytes,
      sizes?.maxCount ?? this.maxCount,
    );
  }

  /** The topic's file if it exists (not created), or null. */
  existing(name: string): LocalTopic | null {
    const t = this.topics.get(topicFileName(name));
    if (t) return t;
    return this.openExisting(shmFileName("", name, "EZIPC_INVALID_TOPIC"), name, KIND_TOPIC);
  }

  /** The request file of RPC topic `name` (`.rpc.NAME`): created if `create` (a server), else null if none. */
  rpcRing(name: string, create: true): LocalTopic;
  rpcRing(name: string, create: boolean): LocalTopic | null;
  rpcRing(name: string, create: boolean): LocalTopic | null {
    const fileName = `.rpc.${topicFileName(name)}`;
    const t = this.topics.get(fileName);
    if (t) return t;
    checkTopic(name);
    shmFileName(".rpc.", name, "EZIPC_INVALID_TOPIC");
    if (create) return this.open(fileName, name, KIND_RPC, undefined, 0, RPC_CLAIMS);
    return this.openExisting(fileName, name, KIND_RPC);
  }

  /**
   * The inbox of client `n` of process (pid, start): where RPC replies to its calls go. Created only by its
   * owner.
   */
  inbox(pid: number, start: number, n: number, create: boolean): LocalTopic | null {
    const fileName = `.inbox.${pid}.${start}.${n}`;
    const t = this.topics.get(fileName);
    if (t) return t;
    if (create) return this.open(fileName, fileName, KIND_INBOX, undefined, 0);
    return this.openExisting(fileName, fileName, KIND_INBOX);
  }

  /** Opens `fileName` if it exists (null if not; other errors, e.g. EZIPC_SHM_BAD_FILE, thrown). */
  private openExisting(fileName: string, name: string, kind: number): LocalTopic | null {
    this.checkDir();
    try {
      const opened = new LocalTopic(
        name,
        new TopicRing(openShmFile(path.join(this.dir, fileName), kind, this.mode)),
      );
      this.topics.set(fileName, opened);
      return opened;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === "ENOENT") return null;
      throw err;
    }
  }

  private open(
    fileName: string,
    name: string,
    kind: number,
    ringBytes: number | undefined,
    maxCount: number,
    claims = 0,
  ): LocalTopic {
    this.checkDir();
    const file = openOrCreateShmFile(
      path.join(this.dir, fileName),
      kind,
      ringBytes ?? this.ringBytes,
      maxCount,
      this.mode,
      claims,
    );
    const t = new LocalTopic(name, new TopicRing(file));
    this.topics.set(fileName, t);
    return t;
  }

  /** The file of deadman token `name` (`.deadman.NAME`), created if need be. */
  deadmanFile(name: string): LocalTopic {
    const fileName = shmFileName(".deadman.", name, "EZIPC_INVALID_KEY");
    const t = this.topics.get(fileName);
    if (t) return t;
    return this.open(fileName, name, KIND_DEADMAN, MIN_RING_BYTES, 0);
  }

  /** Removes a file this process owns (its inbox, when it closes; never a topic, so byTopic keeps). */
  remove(t: LocalTopic): void {
    for (const [k, v] of this.topics) if (v === t) this.topics.delete(k);
    try {
      unlinkSync(t.ring.file.path);
    } catch {}
  }

  /** The names (after `prefix`, unescaped) of the namespace's files whose names start with `prefix`. */
  fileNames(prefix: string): string[] {
    return this.entries()
      .filter((n) => n.startsWith(prefix))
      .map((n) => topicOfFileName(n.slice(prefix.length)))
      .filter((n): n is string => n !== null);
  }

  /** Removes a file of the namespace (gone already: nothing to do). */
  removeFile(file: string): void {
    try {
      unlinkSync(file);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== "ENOENT") throw err;
    }
  }

  /** The names in the namespace's directory (`EZIPC_SHM_GONE` if it was removed). */
  private entries(): string[] {
    this.checkDir();
    return readdirSync(this.dir);
  }

  /** The inode of the namespace's directory when this client opened it. */
  private readonly dirIno: number;

  /**
   * Throws `EZIPC_SHM_GONE` if the namespace's directory was removed since this client opened it (even if
   * another process made it again: the files this client has open are not that directory's). Called
   * before a file is opened or created, and by listings; never per message.
   */
  checkDir(): void {
    let ino = -1;
    try {
      ino = statSync(this.dir).ino;
    } catch {}
    if (ino !== this.dirIno) throw namespaceGone(this.dir);
  }

  /** Names of every topic in the namespace. */
  topicNames(): string[] {
    return this.entries()
      .map(topicOfFileName)
      .filter((n): n is string => n !== null)
      .sort();
  }

  /** Starts reading `t` from this process (takes a reader slot once). */
  addReader(t: LocalTopic, reader: RingFollower): void {
    if (t.slot < 0) t.slot = this.waker.claimSlot(t.ring.file);
    if (t.readers.size === 0 && !this.anyReaders()) this.waker.hold();
    t.readers.add(reader);
    setReaderCount(t.ring.file, t.slot, t.readers.size);
  }

  private anyReaders(): boolean {
    for (const t of this.topics.values()) if (t.readers.size > 0) return true;
    return false;
  }

  removeReader(t: LocalTopic, reader: RingFollower): void {
    if (!t.readers.delete(reader)) return;
    if (t.slot >= 0) setReaderCount(t.ring.file, t.slot, t.readers.size);
    if (t.readers.size > 0) this.readerMoved(t);
    if (t.readers.size === 0 && t.slot >= 0 && t.held === null) {
      this.waker.releaseSlot(t.ring.file, t.slot);
      t.slot = -1;
    }
    if (!this.anyReaders()) this.waker.unhold();
  }

  /**
   * Publishes where this process's readers of `t` are: the lowest next seq of those that hold writers
   * (`iter: next`), else of all; then wakes writers that wait for readers to move on.
   */
  readerMoved(t: LocalTopic): void {
    if (t.slot < 0) return;
    let min = Number.POSITIVE_INFINITY;
    let holdMin = Number.POSITIVE_INFINITY;
    for (const r of t.readers) {
      const next = r.nextSeq;
      if (next < min) min = next;
      if (r.holds && next < holdMin) holdMin = next;
    }
    const holds = holdMin !== Number.POSITIVE_INFINITY;
    const position = holds ? holdMin : min === Number.POSITIVE_INFINITY ? 0 : min;
    setReaderPosition(t.ring.file, t.slot, position, holds);
    for (const w of takeWaitingWriters(t.ring.file, position)) {
      Waker.counts.writersWoken++;
      this.waker.wakeProcess(w.pid, w.start);
    }
  }

  /** Gives `t`'s slot back when this process neither reads it nor holds publishes for it. */
  releaseIfIdle(t: LocalTopic): void {
    if (t.readers.size === 0 && t.held === null && t.slot >= 0) {
      this.waker.releaseSlot(t.ring.file, t.slot);
      t.slot = -1;
    }
  }

  /** A slot for this process in `t` (readers and waiting writers alike hold one). */
  slotFor(t: LocalTopic): number {
    if (t.slot < 0) t.slot = this.waker.claimSlot(t.ring.file);
    return t.slot;
  }

  /** Topic files by topic name (the publish path looks here first). */
  private readonly byTopic = new Map<string, LocalTopic>();

  /** Called after every wake-up, besides the readers (deadman waiters). */
  readonly wakeListeners = new Set<() => void>();

  /** Another process woke us: every reader that wants messages looks at its ring. */
  private readonly onWake = (): void => {
    for (const l of [...this.wakeListeners]) l();
    for (const t of this.topics.values()) {
      if (t.readers.size === 0) continue;
      this.waker.unpark(t.ring.file, t.slot);
      for (const r of t.readers) if (r.wantsMore) r.pump();
    }
  };

  close(): void {
    if (this.anyReaders()) this.waker.unhold();
    for (const t of this.topics.values()) {
      if (t.slot >= 0) this.waker.releaseSlot(t.ring.file, t.slot);
      t.slot = -1;
      t.readers.clear();
    }
    this.topics.clear();
    this.byTopic.clear();
    this.waker.release(this.onWake);
  }

  /** Throws `EZIPC_CONNECTION_CLOSED` (used once the client is closed). */
  static closedError(): EzipcError {
    return new EzipcError("EZIPC_CONNECTION_CLOSED", "this shm:// client is closed");
  }
}
