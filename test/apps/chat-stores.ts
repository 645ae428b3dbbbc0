// The chat stores the chat tests run against: SQLite (embedded) and MariaDB (a real server).
import { randomBytes } from "node:crypto";
import path from "node:path";
import mysql from "mysql2/promise";
import { type ChatStore, MysqlChatStore, SqliteChatStore } from "../../src/apps/chat/store.js";

/**
 * MariaDB for the MySQL store: scripts/setup-services.sh (run by .ci/run) installs and starts it with a
 * user that may create ezipc_* databases. EZIPC_TEST_MYSQL overrides the server URL.
 */
const MYSQL = process.env.EZIPC_TEST_MYSQL ?? "mysql://ezipc:ezipc@127.0.0.1:3306";

/** A fresh, empty MySQL database for one test; its URL. */
export async function freshMysqlDatabase(): Promise<string> {
  const name = `ezipc_chat_${randomBytes(4).toString("hex")}`;
  let admin: mysql.Connection;
  try {
    admin = await mysql.createConnection(MYSQL);
  } catch (err) {
    throw new Error(
      `MariaDB is not reachable at ${MYSQL}: run scripts/setup-services.sh (${(err as Error).message})`,
    );
  }
  await admin.query(`CREATE DATABASE ${name}`);
  await admin.end();
  return `${MYSQL}/${name}`;
}

/** Where a test keeps its lines: the same store (file or database) across server restarts. */
export const engines: { name: string; stores: (dir: string) => Promise<() => ChatStore> }[] = [
  { name: "SQLite", stores: async (dir) => () => new SqliteChatStore(path.join(dir, "chat.db")) },
  {
    name: "MariaDB",
    stores: async () => {
      const url = await freshMysqlDatabase();
      return () => new MysqlChatStore(url);
    },
  },
];
