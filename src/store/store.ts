import { mkdirSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import type Database from "better-sqlite3";
import { EzipcError } from "../errors.js";
import type { HistoryStore } from "../pubsub/pubsub-hub.js";
import type { BlockStore, StoredBlock } from "../vars/block-store.js";

export { type BlockStore, MemoryStore, type StoredBlock } from "../vars/block-store.js";

import type { StoredMessage, TopicLimits } from "../pubsub/topics.js";
import { blockFromRow, messageFromRow, topicFromRow } from "./rows.js";
import { WalSync } from "./wal-sync.js";

/**
 * better-sqlite3, loaded when a store opens (`require` keeps it once loaded): a process that never persists
 * (a client, a hub without a store) does not pay for the native module (about 5 MiB of resident memory).
 */
const load = createRequire(import.meta.url);

/** The history bound a topic row gets when its seq mark is written before its limits (16 MiB). */
const DEFAULT_TOPIC_MAX_BYTES = 16 * 1024 * 1024;

/**
 * Persistent keys and persisted topic history in SQLite (better-sqlite3): tables `blocks(key, kind,
 * version, data)`, `topics(name, max_bytes, max_count)` and `messages(topic, seq, time, publisher, headers,
 * payload)`; WAL journal. A saved batch is in the WAL when `save`/`saveMessages` return (it survives a kill of
 * the hub), and on disk once {@link afterDurable} calls back (it survives a crash of the machine): the hub
 * shows and acknowledges a write only then. On a slow disk the sync runs on the thread pool, so it delays
 * only what waits for it, never the hub's event loop (wal-sync.ts).
 */
export class SqliteStore implements BlockStore, HistoryStore {
  readonly name = "sqlite";
  private readonly db: Database.Database;
  private readonly upsert: Database.Statement;
  private readonly del: Database.Statement;
  private readonly saveMany: (blocks: readonly StoredBlock[]) => void;
  private readonly saveMessagesTx: (
    batch: readonly { topic: string; message: StoredMessage }[],
    evicted: readonly { topic: string; below: bigint }[],
    marks: readonly { topic: string; next: bigint }[],
  ) => void;

  /** Opens (creating if needed) `file`, or `DIR/hub.db` when given a directory via {@link SqliteStore.inDir}. */
  constructor(
    readonly file: string,
    /**
     * How long a commit waits for a lock held by another connection before it fails (and the hub retries it
     * later, without blocking its event loop meanwhile). Default 100 ms.
     */
    busyTimeoutMs = 100,
  ) {
    try {
      const Sqlite = load("better-sqlite3") as typeof Database;
      this.db = new Sqlite(file, { timeout: busyTimeoutMs });
    } catch (err) {
      throw new EzipcError("EZIPC_STORE", `cannot open ${file}: ${(err as Error).message}`, { cause: err });
    }
    // SQLite reads the file only now: a file that is not a database, or one whose tables are not ours
    // (another program's `blocks`), fails here, as a store that cannot be opened.
    try {
      [this.upsert, this.del, this.saveMany, this.saveMessagesTx] = this.prepare();
    } catch (err) {
      this.db.close();
      throw new EzipcError("EZIPC_STORE", `cannot use ${file}: ${(err as Error).message}`, { cause: err });
    }
  }

  private prepare(): [
    Database.Statement,
    Database.Statement,
    SqliteStore["saveMany"],
    SqliteStore["saveMessagesTx"],
  ] {
    this.wal = new WalSync(this.db, this.file);
    this.db.exec(
      "CREATE TABLE IF NOT EXISTS blocks (key TEXT PRIMARY KEY, kind INTEGER NOT NULL, version INTEGER NOT NULL, data BLOB NOT NULL) WITHOUT ROWID",
    );
    const upsert = this.db.prepare(
      "INSERT INTO blocks (key, kind, version, data) VALUES (?, ?, ?, ?) ON CONFLICT(key) DO UPDATE SET kind = excluded.kind, version = excluded.version, data = excluded.data",
    );
    const del = this.db.prepare("DELETE FROM blocks WHERE key = ?");
    this.db.exec(
      "CREATE TABLE IF NOT EXISTS topics (name TEXT PRIMARY KEY, max_bytes INTEGER NOT NULL, max_count INTEGER NOT NULL) WITHOUT ROWID;" +
        "CREATE TABLE IF NOT EXISTS messages (topic TEXT NOT NULL, seq INTEGER NOT NULL, time REAL NOT NULL, publisher TEXT NOT NULL, headers TEXT NOT NULL, payload BLOB NOT NULL, PRIMARY KEY (topic, seq)) WITHOUT ROWID",
    );
    const insertMessage = this.db.prepare(
      "INSERT OR REPLACE INTO messages (topic, seq, time, publisher, headers, payload) VALUES (?, ?, ?, ?, ?, ?)",
    );
    // Each topic's next seq (its high-water mark): kept even when every message is evicted, so a restart
    // never gives a seq out again. Added to stores made before it existed.
    const columns = this.db.prepare("PRAGMA table_info(topics)").all() as { name: string }[];
    if (!columns.some((c) => c.name === "next_seq")) {
      this.db.exec("ALTER TABLE topics ADD COLUMN next_seq INTEGER NOT NULL DEFAULT 0");
    }
    const mark = this.db.prepare(
      "INSERT INTO topics (name, max_bytes, max_count, next_seq) VALUES (?, ?, 0, ?) ON CONFLICT(name) DO UPDATE SET next_seq = max(next_seq, excluded.next_seq)",
    );
    const evict = this.db.prepare("DELETE FROM messages WHERE topic = ? AND seq < ?");
    const saveMessagesTx = this.db.transaction(
      (
        batch: readonly { topic: string; message: StoredMessage }[],
        evicted: readonly { topic: string; below: bigint }[],
        marks: readonly { topic: string; next: bigint }[],
      ) => {
        for (const { topic, message: m } of batch) {
          insertMessage.run(topic, m.seq, m.time, m.publisher, JSON.stringify(m.headers), m.payload);
        }
        for (const e of evicted) evict.run(e.topic, e.below);
        for (const m of marks) mark.run(m.topic, DEFAULT_TOPIC_MAX_BYTES, m.next);
      },
    );
    const saveMany = this.db.transaction((blocks: readonly StoredBlock[]) => {
      for (const b of blocks) upsert.run(b.key, b.kind, b.version, b.data);
    });
    // Read once, so that a table of the wrong shape fails at open rather than at the first load or commit.
    this.db.prepare("SELECT key, kind, version, data FROM blocks LIMIT 0").all();
    this.db.prepare("SELECT name, max_bytes, max_count, next_seq FROM topics LIMIT 0").all();
    this.db.prepare("SELECT topic, seq, time, publisher, headers, payload FROM messages LIMIT 0").all();
    // What this open wrote (tables, a column) is made durable now, before anything is built on it.
    this.wal.checkpoint();
    return [upsert, del, saveMany, saveMessagesTx];
  }

  /** Commits in the WAL when they return; durable once {@link afterDurable} calls back (wal-sync.ts). */
  private wal!: WalSync;

  /**
   * Calls `done` once everything committed before this call is on disk (an fdatasync on the thread pool: the
   * event loop never waits on the disk), or with the sync's error; in call order.
   */
  afterDurable(done: (err?: unknown) => void): void {
    this.wal.afterDurable(done);
  }

  /** A store in `dir/hub.db` (the directory is created if needed). */
  /** A store in `dir/hub.db` (the directory is created if needed); throws `EZIPC_STORE`. */
  static inDir(dir: string): SqliteStore {
    try {
      makeDir(dir, 64);
    } catch (err) {
      throw new EzipcError(
        "EZIPC_STORE",
        `cannot make the store's directory ${dir}: ${(err as Error).message}`,
        {
          cause: err,
        },
      );
    }
    return new SqliteStore(join(dir, "hub.db"));
  }

  /** Every row of `blocks`, checked (rows.ts): throws `EZIPC_STORE` for a row the hub cannot trust. */
  load(): StoredBlock[] {
    const rows = this.db
      .prepare("SELECT key, kind, version, data FROM blocks ORDER BY key")
      .safeIntegers(true)
      .all() as Record<string, unknown>[];
    return rows.map((r) => blockFromRow(this.file, r));
  }

  save(blocks: readonly StoredBlock[]): void {
    if (blocks.length > 0) this.wal.commit(() => this.saveMany(blocks));
  }

  remove(key: string): void {
    this.wal.commit(() => this.del.run(key));
  }

  /** Every persisted topic with its history, checked (rows.ts): throws `EZIPC_STORE` for a row the hub cannot trust. */
  loadTopics(): { name: string; limits: TopicLimits; messages: StoredMessage[]; nextSeq: bigint }[] {
    const topics = this.db
      .prepare("SELECT name, max_bytes, max_count, next_seq FROM topics ORDER BY name")
      .safeIntegers(true)
      .all() as Record<string, unknown>[];
    const select = this.db
      .prepare("SELECT seq, time, publisher, headers, payload FROM messages WHERE topic = ? ORDER BY seq")
      .safeIntegers(true);
    return topics.map((row) => {
      const t = topicFromRow(this.file, row);
      let expected: bigint | null = null;
      const messages = (select.all(t.name) as Record<string, unknown>[]).map((r) => {
        const m = messageFromRow(this.file, t.name, r, expected);
        expected = m.seq + 1n;
        return m;
      });
      return { ...t, messages };
    });
  }

  saveTopic(name: string, limits: TopicLimits): void {
    const save = this.db.prepare(
      "INSERT INTO topics (name, max_bytes, max_count) VALUES (?, ?, ?) ON CONFLICT(name) DO UPDATE SET max_bytes = excluded.max_bytes, max_count = excluded.max_count",
    );
    this.wal.commit(() => save.run(name, limits.maxBytes, limits.maxCount));
  }

  saveMessages(
    batch: readonly { topic: string; message: StoredMessage }[],
    evicted: readonly { topic: string; below: bigint }[],
    marks: readonly { topic: string; next: bigint }[],
  ): void {
    this.wal.commit(() => this.saveMessagesTx(batch, evicted, marks));
  }

  /** Closes the database: what was committed is synced first (callbacks still waiting are called). */
  close(): void {
    if (!this.db.open) return;
    this.wal.close();
    this.db.close();
  }
}

/**
 * `mkdir -p`, at most `depth` levels. (Node's own recursive mkdir loops for ever where mkdir keeps failing
 * with ENOENT under a directory that exists, as under /proc.)
 */
function makeDir(dir: string, depth: number): void {
  try {
    mkdirSync(dir);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === "EEXIST") return; // (a file there fails at open, naming it)
    const parent = dirname(dir);
    if (code !== "ENOENT" || depth === 0 || parent === dir) throw err;
    makeDir(parent, depth - 1);
    mkdirSync(dir); // once more: fails as it must if it still cannot be made
  }
}
