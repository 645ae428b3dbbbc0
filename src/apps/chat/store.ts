/**
 * Where chat lines are kept. Every line is stored before it is acknowledged or broadcast: lines queued in
 * one tick are written in one transaction (SQLite `synchronous=FULL`; MySQL a transaction), and the
 * callers wait for it.
 */
import Database from "better-sqlite3";
import type { Infer } from "../../codec/schema.js";
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

/** The schema, one entry per version; a store runs those it has not run yet, in order. */
export const MIGRATIONS: readonly string[] = [
  `CREATE TABLE lines (
     id INTEGER PRIMARY KEY AUTOINCREMENT,
     day CHAR(10) NOT NULL,
     time DOUBLE NOT NULL,
     room VARCHAR(64) NOT NULL,
     kind SMALLINT NOT NULL,
     from_nick VARCHAR(64) NOT NULL,
     to_nick VARCHAR(64) NOT NULL,
     from_key VARCHAR(64) NOT NULL,
     to_key VARCHAR(64) NOT NULL,
     text TEXT NOT NULL
   )`,
  "CREATE INDEX lines_by_room_day ON lines (room, day, id)",
];

/** SQLite (better-sqlite3), embedded: WAL and `synchronous=FULL`. */
export class SqliteChatStore implements ChatStore {
  private readonly db: Database.Database;

  constructor(readonly file: string) {
    this.db = new Database(file);
    this.db.pragma("journal_mode = WAL");
    this.db.pragma("synchronous = FULL");
  }

  async migrate(): Promise<void> {
    this.db.exec("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)");
    const row = this.db.prepare("SELECT MAX(version) AS v FROM schema_version").get() as { v: number | null };
    const done = row.v ?? 0;
    this.db.transaction(() => {
      for (let v = done; v < MIGRATIONS.length; v++) {
        this.db.exec(MIGRATIONS[v]!);
        this.db.prepare("INSERT INTO schema_version (version) VALUES (?)").run(v + 1);
      }
    })();
  }

  async save(lines: readonly StoredLine[]): Promise<void> {
    const insert = this.db.prepare(
      "INSERT INTO lines (day, time, room, kind, from_nick, to_nick, from_key, to_key, text) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
    );
    this.db.transaction(() => {
      for (const l of lines) {
        insert.run(l.day, l.time, l.room, l.kind, l.from, l.to, nickKey(l.from), nickKey(l.to), l.text);
      }
    })();
  }

  async history(room: string, day: string, nick: string): Promise<Line[]> {
    const rows = this.db
      .prepare(
        `SELECT kind, time, room, from_nick AS "from", to_nick AS "to", text FROM lines
         WHERE room = ? AND day = ? AND (kind <> 1 OR from_key = ? OR to_key = ?)
         ORDER BY id`,
      )
      .all(room, day, nick, nick) as Line[];
    return rows;
  }

  async close(): Promise<void> {
    this.db.close();
  }
}
