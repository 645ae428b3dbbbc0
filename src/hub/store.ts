import { mkdirSync } from "node:fs";
import { join } from "node:path";
import Database from "better-sqlite3";
import { EzipcError } from "../errors.js";

/** A persistent block as a store keeps it. */
export interface StoredBlock {
  key: string;
  kind: number;
  version: number;
  data: Buffer;
}

/**
 * Where the hub keeps persistent keys (the seed's pluggable "allocator"). The hub calls {@link load} once
 * at start, then {@link save} with batches of changed blocks and {@link remove} for deleted ones. `save`
 * and `remove` are durable when they return: the hub acknowledges a write to a persistent key only after.
 */
export interface BlockStore {
  readonly name: string;
  load(): StoredBlock[];
  save(blocks: readonly StoredBlock[]): void;
  remove(key: string): void;
  close(): void;
}

/** Keeps nothing: persistent keys live as long as the hub process (the default without `--data`). */
export class MemoryStore implements BlockStore {
  readonly name = "memory";
  load(): StoredBlock[] {
    return [];
  }
  save(): void {}
  remove(): void {}
  close(): void {}
}

/**
 * Persistent keys in SQLite (better-sqlite3): one table `blocks(key, kind, version, data)`, WAL journal and
 * `synchronous=FULL`, so a saved batch survives a crash of the hub or of the machine.
 */
export class SqliteStore implements BlockStore {
  readonly name = "sqlite";
  private readonly db: Database.Database;
  private readonly upsert: Database.Statement;
  private readonly del: Database.Statement;
  private readonly saveMany: (blocks: readonly StoredBlock[]) => void;

  /** Opens (creating if needed) `file`, or `DIR/hub.db` when given a directory via {@link SqliteStore.inDir}. */
  constructor(readonly file: string) {
    try {
      this.db = new Database(file);
    } catch (err) {
      throw new EzipcError("EZIPC_STORE", `cannot open ${file}: ${(err as Error).message}`, { cause: err });
    }
    this.db.pragma("journal_mode = WAL");
    this.db.pragma("synchronous = FULL");
    this.db.exec(
      "CREATE TABLE IF NOT EXISTS blocks (key TEXT PRIMARY KEY, kind INTEGER NOT NULL, version INTEGER NOT NULL, data BLOB NOT NULL) WITHOUT ROWID",
    );
    this.upsert = this.db.prepare(
      "INSERT INTO blocks (key, kind, version, data) VALUES (?, ?, ?, ?) ON CONFLICT(key) DO UPDATE SET kind = excluded.kind, version = excluded.version, data = excluded.data",
    );
    this.del = this.db.prepare("DELETE FROM blocks WHERE key = ?");
    this.saveMany = this.db.transaction((blocks: readonly StoredBlock[]) => {
      for (const b of blocks) this.upsert.run(b.key, b.kind, b.version, b.data);
    });
  }

  /** A store in `dir/hub.db` (the directory is created if needed). */
  static inDir(dir: string): SqliteStore {
    mkdirSync(dir, { recursive: true });
    return new SqliteStore(join(dir, "hub.db"));
  }

  load(): StoredBlock[] {
    const rows = this.db.prepare("SELECT key, kind, version, data FROM blocks ORDER BY key").all() as {
      key: string;
      kind: number;
      version: number;
      data: Buffer;
    }[];
    return rows.map((r) => ({ key: r.key, kind: r.kind, version: Number(r.version), data: r.data }));
  }

  save(blocks: readonly StoredBlock[]): void {
    if (blocks.length > 0) this.saveMany(blocks);
  }

  remove(key: string): void {
    this.del.run(key);
  }

  close(): void {
    if (this.db.open) this.db.close();
  }
}
