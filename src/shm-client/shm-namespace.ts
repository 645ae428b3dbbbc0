/**
 * One shared-memory namespace as a process sees it: `/dev/shm/ezipc.NAME/`, the topic files it opened
 * (each mapped once per process, however many publishers and subscriptions use it), and its wake-up pipe.
 */
import { readdirSync } from "node:fs";
import path from "node:path";
import { EzipcError } from "../errors.js";
import { checkTopic } from "../protocol/names.js";
import { DEFAULT_RING_BYTES, KIND_TOPIC } from "../shm/layout.js";
import { TopicRing } from "../shm/ring.js";
import {
  namespaceDir,
  openOrCreateShmFile,
  openShmFile,
  topicFileName,
  topicOfFileName,
} from "../shm/shm-file.js";
import { Waker } from "../shm/waker.js";

/** Options of a shm:// client. */
export interface ShmOptions {
  /** File mode of the topic files this process creates. Default 0o600 (this user only). */
  mode?: number;
  /** Ring bytes of the topics this process creates. Default 16 MiB. */
  ringBytes?: number;
  /** Messages a topic this process creates keeps at most (0: bounded by bytes only). Default 0. */
  maxCount?: number;
}

/** A topic file opened by this process, with what this process does on it. */
export class LocalTopic {
  /** This process's reader slot in the file (-1: none held). */
  slot = -1;
  /** Readers (subscriptions) of this process on the topic. */
  readonly readers = new Set<{ pump(): void; readonly wantsMore: boolean }>();

  constructor(
    readonly name: string,
    readonly ring: TopicRing,
  ) {}
}

export class ShmNamespace {
  readonly dir: string;
  readonly waker: Waker;
  private readonly topics = new Map<string, LocalTopic>();
  private readonly mode: number;
  private readonly ringBytes: number;
  private readonly maxCount: number;

  constructor(
    readonly name: string,
    options: ShmOptions,
  ) {
    this.mode = options.mode ?? 0o600;
    this.ringBytes = options.ringBytes ?? DEFAULT_RING_BYTES;
    this.maxCount = options.maxCount ?? 0;
    this.dir = namespaceDir(name, this.mode);
    this.waker = Waker.acquire(this.dir, this.onWake);
  }

  /** The topic's file, opened (and created with this client's defaults, or `sizes`) if need be. */
  topic(name: string, sizes?: { ringBytes?: number; maxCount?: number }): LocalTopic {
    let t = this.topics.get(name);
    if (t) return t;
    checkTopic(name);
    const file = openOrCreateShmFile(
      path.join(this.dir, topicFileName(name)),
      KIND_TOPIC,
      sizes?.ringBytes ?? this.ringBytes,
      sizes?.maxCount ?? this.maxCount,
      this.mode,
    );
    t = new LocalTopic(name, new TopicRing(file));
    this.topics.set(name, t);
    return t;
  }

  /** The topic's file if it exists (not created), or null. */
  existing(name: string): LocalTopic | null {
    const t = this.topics.get(name);
    if (t) return t;
    try {
      const file = openShmFile(path.join(this.dir, topicFileName(name)), KIND_TOPIC);
      const opened = new LocalTopic(name, new TopicRing(file));
      this.topics.set(name, opened);
      return opened;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === "ENOENT") return null;
      throw err;
    }
  }

  /** Names of every topic in the namespace. */
  topicNames(): string[] {
    return readdirSync(this.dir)
      .map(topicOfFileName)
      .filter((n): n is string => n !== null)
      .sort();
  }

  /** Starts reading `t` from this process (takes a reader slot once). */
  addReader(t: LocalTopic, reader: { pump(): void; readonly wantsMore: boolean }): void {
    if (t.slot < 0) t.slot = this.waker.claimSlot(t.ring.file);
    if (t.readers.size === 0 && !this.anyReaders()) this.waker.hold();
    t.readers.add(reader);
  }

  private anyReaders(): boolean {
    for (const t of this.topics.values()) if (t.readers.size > 0) return true;
    return false;
  }

  removeReader(t: LocalTopic, reader: { pump(): void; readonly wantsMore: boolean }): void {
    if (!t.readers.delete(reader)) return;
    if (t.readers.size === 0 && t.slot >= 0) {
      this.waker.releaseSlot(t.ring.file, t.slot);
      t.slot = -1;
    }
    if (!this.anyReaders()) this.waker.unhold();
  }

  /** Another process woke us: every reader that wants messages looks at its ring. */
  private readonly onWake = (): void => {
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
    this.waker.release(this.onWake);
  }

  /** Throws `EZIPC_CONNECTION_CLOSED` (used once the client is closed). */
  static closedError(): EzipcError {
    return new EzipcError("EZIPC_CONNECTION_CLOSED", "this shm:// client is closed");
  }
}
