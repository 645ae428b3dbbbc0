/**
 * Where chat lines are kept. Every line is stored before it is acknowledged or broadcast: lines queued in
 * one tick are written in one transaction (SQLite: synced to disk; MySQL a transaction), and the
 * callers wait for it. The server calls `save` one batch at a time, so ids grow in the order lines were
 * accepted and `history` (ordered by id) comes out in that order on every engine.
 */
import { createRequire } from "node:module";
import type Database from "better-sqlite3";
import type mysql from "mysql2/promise";
import type { Infer } from "../../codec/schema.js";
import { EzipcError } from "../../errors.js";
import { WalSync } from "../../store/wal-sync.js";
import type { line } from "./protocol.js";

export type Line = Infer<typeof line>;

/** A stored line with the server-local day it belongs to (`YYYY-MM-DD`). */
export interface StoredLine extends Line {
  day: string;
}

/** The key a nickname is unique by: NFKC, lower case. */
export function nickKey(nick: string): string {
  return nick.normalize("NFKC").toLowerCase();
}

export interface ChatStore {
  /** Creates or upgrades the schema (versioned migrations). */
  migrate(): Promise<void>;
  /** Stores lines in one transaction; resolves once they are durable. */
  save(lines: readonly StoredLine[]): Promise<void>;
  /**
   * The lines of `room` on `day`, oldest first: all but whispers, and the whispers sent or received by the
   * nickname whose {@link nickKey} is `nick`.
   */
  history(room: string, day: string, nick: string): Promise<Line[]>;
  close(): Promise<void>;
}

/**
 * The schema, one entry per version, in each engine's dialect; a store runs the versions it has not run yet,
 * in order, and records each in `schema_version`.
 */
export const MIGRATIONS: readonly { sqlite: string; mysql: string }[] = [
  {
    sqlite: `CREATE TABLE chat_lines (
      id INTEGER PRIMARY KEY AUTOINCREMENT, day CHAR(10) NOT NULL, time DOUBLE NOT NULL,
      room VARCHAR(64) NOT NULL, kind SMALLINT NOT NULL, from_nick VARCHAR(64) NOT NULL,
      to_nick VARCHAR(64) NOT NULL, from_key VARCHAR(64) NOT NULL, to_key VARCHAR(64) NOT NULL,
      text TEXT NOT NULL)`,
    mysql: `CREATE TABLE chat_lines (
      id BIGINT PRIMARY KEY AUTO_INCREMENT, day CHAR(10) NOT NULL, time DOUBLE NOT NULL,
      room VARCHAR(64) NOT NULL, kind SMALLINT NOT NULL, from_nick VARCHAR(64) NOT NULL,
      to_nick VARCHAR(64) NOT NULL, from_key VARCHAR(64) NOT NULL, to_key VARCHAR(64) NOT NULL,
      text TEXT NOT NULL) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin`,
  },
  {
    sqlite: "CREATE INDEX lines_by_room_day ON chat_lines (room, day, id)",
    mysql: "CREATE INDEX lines_by_room_day ON chat_lines (room, day, id)",
  },
  {
    // Columns sized for the longest value the server's validation admits (server.ts): rooms and nicknames
    // up to 64 code points as given, their keys (NFKC, lower case) up to 256. VARCHAR counts characters,
    // each up to 4 bytes in utf8mb4. SQLite does not enforce VARCHAR lengths: nothing to change there.
    sqlite: "SELECT 1",
    mysql: `ALTER TABLE chat_lines MODIFY room VARCHAR(64) NOT NULL, MODIFY from_nick VARCHAR(64) NOT NULL,
      MODIFY to_nick VARCHAR(64) NOT NULL, MODIFY from_key VARCHAR(256) NOT NULL,
      MODIFY to_key VARCHAR(256) NOT NULL`,
  },
];

const INSERT =
  "INSERT INTO chat_lines (day, time, room, kind, from_nick, to_nick, from_key, to_key, text) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)";
const HISTORY = `SELECT kind, time, room, from_nick AS \`from\`, to_nick AS \`to\`, text FROM chat_lines
  WHERE room = ? AND day = ? AND (kind <> 1 OR from_key = ? OR to_key = ?) ORDER BY id`;

function row(l: StoredLine): unknown[] {
  return [l.day, l.time, l.room, l.kind, l.from, l.to, nickKey(l.from), nickKey(l.to), l.text];
}

/** Database drivers, loaded by the store that uses one (a SQLite chat never loads mysql2, nor the reverse). */
const load = createRequire(import.meta.url);

/**
 * SQLite (better-sqlite3), embedded: WAL, each batch synced before `save` resolves; on a slow disk the sync
 * runs on the thread pool, so it delays the lines waiting for it and nothing else of the server.
 */
export class SqliteChatStore implements ChatStore {
  private readonly db: Database.Database;

  constructor(readonly file: string) {
    try {
      const Sqlite = load("better-sqlite3") as typeof Database;
      this.db = new Sqlite(file);
    } catch (err) {
      throw new EzipcError("EZIPC_STORE", `cannot open ${file}: ${(err as Error).message}`, { cause: err });
    }
    this.wal = new WalSync(this.db, file);
  }

  /** Lines are on disk once synced (by SQLite on a fast disk, on the thread pool on a slow one: wal-sync.ts). */
  private readonly wal: WalSync;

  async migrate(): Promise<void> {
    this.db.exec("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)");
    const row = this.db.prepare("SELECT MAX(version) AS v FROM schema_version").get() as { v: number | null };
    const done = row.v ?? 0;
    this.db.transaction(() => {
      for (let v = done; v < MIGRATIONS.length; v++) {
        this.db.exec(MIGRATIONS[v]!.sqlite);
        this.db.prepare("INSERT INTO schema_version (version) VALUES (?)").run(v + 1);
      }
    })();
  }

  async save(lines: readonly StoredLine[]): Promise<void> {
    const insert = this.db.prepare(INSERT);
    this.wal.commit(() =>
      this.db.transaction(() => {
        for (const l of lines) insert.run(...row(l));
      })(),
    );
    await this.wal.durable();
  }

  async history(room: string, day: string, nick: string): Promise<Line[]> {
    return this.db.prepare(HISTORY).all(room, day, nick, nick) as Line[];
  }

  async close(): Promise<void> {
    this.wal.close();
    this.db.close();
  }
}

/** MySQL or MariaDB (mysql2), same schema: each batch in one transaction. */
export class MysqlChatStore implements ChatStore {
  private readonly pool: mysql.Pool;

  /** `url`: `mysql://user:password@host:port/database`. */
  constructor(readonly url: string) {
    const driver = load("mysql2/promise") as typeof mysql;
    this.pool = driver.createPool({ uri: url, connectionLimit: 4, supportBigNumbers: true });
  }

  async migrate(): Promise<void> {
    let c: mysql.PoolConnection;
    try {
      c = await this.pool.getConnection();
    } catch (err) {
      throw new EzipcError(
        "EZIPC_STORE",
        `cannot open ${this.url.replace(/:[^:@/]*@/, ":***@")}: ${(err as Error).message}`,
        { cause: err },
      );
    }
    try {
      await c.query("CREATE TABLE IF NOT EXISTS schema_version (version INT NOT NULL)");
      const [rows] = await c.query("SELECT MAX(version) AS v FROM schema_version");
      const done = Number((rows as { v: number | null }[])[0]?.v ?? 0);
      for (let v = done; v < MIGRATIONS.length; v++) {
        await c.query(MIGRATIONS[v]!.mysql); // MySQL DDL commits by itself: one version at a time
        await c.query("INSERT INTO schema_version (version) VALUES (?)", [v + 1]);
      }
    } finally {
      c.release();
    }
  }

  async save(lines: readonly StoredLine[]): Promise<void> {
    const c = await this.pool.getConnection();
    try {
      await c.beginTransaction();
      const values = lines.map(row);
      await c.query(
        `INSERT INTO chat_lines (day, time, room, kind, from_nick, to_nick, from_key, to_key, text) VALUES ?`,
        [values],
      );
      await c.commit();
    } catch (err) {
      await c.rollback().catch(() => {});
      throw err;
    } finally {
      c.release();
    }
  }

  async history(room: string, day: string, nick: string): Promise<Line[]> {
    const [rows] = await this.pool.execute(HISTORY, [room, day, nick, nick]);
    return (rows as Line[]).map((r) => ({ ...r, time: Number(r.time), kind: Number(r.kind) }));
  }

  async close(): Promise<void> {
    await this.pool.end();
  }
}

/** The store a `--db` URL names: `sqlite:PATH` (default) or `mysql://user:pass@host/db`. */
export function openChatStore(db: string): ChatStore {
  if (db.startsWith("mysql://")) return new MysqlChatStore(db);
  if (db.startsWith("sqlite:")) return new SqliteChatStore(db.slice("sqlite:".length));
  throw new EzipcError("EZIPC_INVALID_URL", `--db ${db}: expected sqlite:PATH or mysql://user:pass@host/db`);
}
