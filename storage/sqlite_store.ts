/**
 * The embedded SQLite backend of {@linkcode Store}, on `node:sqlite`.
 *
 * @module
 */

import { DatabaseSync, type SQLInputValue, type StatementSync } from "node:sqlite";
import { dirname } from "node:path";
import { usernameKey } from "../shared/mod.ts";
import {
  type GroupMemberRecord,
  type GroupRecord,
  NameTakenError,
  type PeerRecord,
  type QueuedFrame,
  type Store,
  type UserRecord,
} from "./store.ts";

/** Milliseconds a statement waits for a lock held by another connection. */
const BUSY_TIMEOUT_MS = 5_000;

/**
 * Schema migrations; entry `i` moves `PRAGMA user_version` from `i` to `i + 1`.
 * Append new entries; never edit one that has shipped.
 *
 * `users.username_key` holds the Unicode lower case of the NFC form of the
 * username (computed in TypeScript, because SQLite's `lower()` and `NOCASE`
 * fold ASCII only); the partial unique index on it enforces one live account
 * per name.
 */
const MIGRATIONS: readonly string[] = [
  `
  CREATE TABLE IF NOT EXISTS settings (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL
  );
  CREATE TABLE IF NOT EXISTS users (
    user_id TEXT PRIMARY KEY,
    pubkey TEXT NOT NULL,
    privkey_store TEXT NOT NULL,
    pake_password TEXT NOT NULL,
    meta TEXT,
    version INT NOT NULL,
    username TEXT,
    username_key TEXT,
    home_server TEXT,
    updated_at INT NOT NULL,
    deleted INT NOT NULL DEFAULT 0
  );
  CREATE UNIQUE INDEX IF NOT EXISTS users_live_username
    ON users (username_key)
    WHERE username_key IS NOT NULL AND deleted = 0;
  CREATE TABLE IF NOT EXISTS groups (
    group_id TEXT PRIMARY KEY,
    creator_id TEXT NOT NULL,
    created_at INT,
    meta TEXT,
    version INT NOT NULL
  );
  CREATE TABLE IF NOT EXISTS group_members (
    group_id TEXT NOT NULL,
    member_id TEXT NOT NULL,
    role TEXT,
    wrapped_key TEXT NOT NULL,
    added_at INT,
    PRIMARY KEY (group_id, member_id)
  );
  CREATE TABLE IF NOT EXISTS peers (
    server_id TEXT PRIMARY KEY,
    host TEXT NOT NULL,
    port INT NOT NULL,
    pubkey TEXT NOT NULL,
    last_seen INT NOT NULL
  );
  CREATE TABLE IF NOT EXISTS offline_queue (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    recipient TEXT NOT NULL,
    sender TEXT NOT NULL,
    frame TEXT NOT NULL,
    queued_at INT NOT NULL
  );
  CREATE INDEX IF NOT EXISTS offline_queue_recipient ON offline_queue (recipient, seq);
  CREATE INDEX IF NOT EXISTS offline_queue_queued_at ON offline_queue (queued_at);
  `,
  // v2: when the account name was registered (deterministic conflict resolution).
  `ALTER TABLE users ADD COLUMN registered_at INT NOT NULL DEFAULT 0;`,
];

/** The schema version this code writes. */
const SCHEMA_VERSION = MIGRATIONS.length;

/** SQLite extended result code of a violated UNIQUE constraint. */
const SQLITE_CONSTRAINT_UNIQUE = 2067;

/** A row as `node:sqlite` returns it. */
type Row = Record<string, unknown>;

function text(row: Row, column: string): string {
  const value = row[column];
  if (typeof value !== "string") {
    throw new TypeError(`Column "${column}" is not text: ${String(value)}`);
  }
  return value;
}

function textOrNull(row: Row, column: string): string | null {
  const value = row[column];
  return value === null || value === undefined ? null : text(row, column);
}

function int(row: Row, column: string): number {
  const value = row[column];
  if (typeof value === "bigint") return Number(value);
  if (typeof value !== "number") {
    throw new TypeError(`Column "${column}" is not an integer: ${String(value)}`);
  }
  return value;
}

function intOrZero(row: Row, column: string): number {
  const value = row[column];
  return value === null || value === undefined ? 0 : int(row, column);
}

function toUser(row: Row): UserRecord {
  return {
    user_id: text(row, "user_id"),
    pubkey: text(row, "pubkey"),
    privkey_store: text(row, "privkey_store"),
    pake_password: text(row, "pake_password"),
    meta: textOrNull(row, "meta") ?? "",
    version: int(row, "version"),
    username: textOrNull(row, "username"),
    home_server: textOrNull(row, "home_server"),
    updated_at: int(row, "updated_at"),
    registered_at: intOrZero(row, "registered_at"),
    deleted: int(row, "deleted") !== 0,
  };
}

function toGroup(row: Row): GroupRecord {
  return {
    group_id: text(row, "group_id"),
    creator_id: text(row, "creator_id"),
    created_at: intOrZero(row, "created_at"),
    meta: textOrNull(row, "meta") ?? "",
    version: int(row, "version"),
  };
}

function toMember(row: Row): GroupMemberRecord {
  return {
    group_id: text(row, "group_id"),
    member_id: text(row, "member_id"),
    role: textOrNull(row, "role") ?? "",
    wrapped_key: text(row, "wrapped_key"),
    added_at: intOrZero(row, "added_at"),
  };
}

function toPeer(row: Row): PeerRecord {
  return {
    server_id: text(row, "server_id"),
    host: text(row, "host"),
    port: int(row, "port"),
    pubkey: text(row, "pubkey"),
    last_seen: int(row, "last_seen"),
  };
}

function toQueued(row: Row): QueuedFrame {
  return {
    seq: int(row, "seq"),
    recipient: text(row, "recipient"),
    sender: text(row, "sender"),
    frame: text(row, "frame"),
    queued_at: int(row, "queued_at"),
  };
}

function isUniqueViolation(error: unknown): boolean {
  return error instanceof Error && "errcode" in error &&
    error.errcode === SQLITE_CONSTRAINT_UNIQUE;
}

/** Brings the schema of `db` to {@linkcode SCHEMA_VERSION}. */
function migrate(db: DatabaseSync): void {
  db.exec("BEGIN IMMEDIATE");
  try {
    const row = db.prepare("PRAGMA user_version").get();
    const current = row === undefined ? 0 : int(row, "user_version");
    if (current > SCHEMA_VERSION) {
      throw new RangeError(
        `Database schema version "${current}" is newer than this socp supports ` +
          `("${SCHEMA_VERSION}"); upgrade socp`,
      );
    }
    for (let version = current; version < SCHEMA_VERSION; version++) {
      const sql = MIGRATIONS[version];
      if (sql !== undefined) db.exec(sql);
    }
    if (current !== SCHEMA_VERSION) db.exec(`PRAGMA user_version = ${SCHEMA_VERSION}`);
    db.exec("COMMIT");
  } catch (error) {
    db.exec("ROLLBACK");
    throw error;
  }
}

/** The prepared statements of one connection. */
interface Statements {
  getSetting: StatementSync;
  setSetting: StatementSync;
  getUser: StatementSync;
  getUserByKey: StatementSync;
  putUser: StatementSync;
  listUsers: StatementSync;
  getGroup: StatementSync;
  putGroup: StatementSync;
  listMembers: StatementSync;
  putMember: StatementSync;
  removeMember: StatementSync;
  clearMembers: StatementSync;
  listPeers: StatementSync;
  putPeer: StatementSync;
  enqueue: StatementSync;
  listQueue: StatementSync;
  queueLength: StatementSync;
  deleteQueued: StatementSync;
  clearQueue: StatementSync;
  pruneQueue: StatementSync;
}

function prepareAll(db: DatabaseSync): Statements {
  return {
    getSetting: db.prepare("SELECT value FROM settings WHERE key = ?"),
    setSetting: db.prepare(
      "INSERT INTO settings (key, value) VALUES (?, ?) " +
        "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
    ),
    getUser: db.prepare("SELECT * FROM users WHERE user_id = ?"),
    getUserByKey: db.prepare(
      "SELECT * FROM users WHERE username_key = ? AND username_key IS NOT NULL AND deleted = 0",
    ),
    // An upsert, not INSERT OR REPLACE: REPLACE would silently delete the
    // other account holding the name instead of failing.
    putUser: db.prepare(
      `INSERT INTO users (user_id, pubkey, privkey_store, pake_password, meta, version,
         username, username_key, home_server, updated_at, deleted, registered_at)
       VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
       ON CONFLICT (user_id) DO UPDATE SET
         pubkey = excluded.pubkey,
         privkey_store = excluded.privkey_store,
         pake_password = excluded.pake_password,
         meta = excluded.meta,
         version = excluded.version,
         username = excluded.username,
         username_key = excluded.username_key,
         home_server = excluded.home_server,
         updated_at = excluded.updated_at,
         deleted = excluded.deleted,
         registered_at = excluded.registered_at`,
    ),
    listUsers: db.prepare("SELECT * FROM users ORDER BY user_id"),
    getGroup: db.prepare("SELECT * FROM groups WHERE group_id = ?"),
    putGroup: db.prepare(
      `INSERT INTO groups (group_id, creator_id, created_at, meta, version)
       VALUES (?, ?, ?, ?, ?)
       ON CONFLICT (group_id) DO UPDATE SET
         creator_id = excluded.creator_id,
         created_at = excluded.created_at,
         meta = excluded.meta,
         version = excluded.version`,
    ),
    listMembers: db.prepare(
      "SELECT * FROM group_members WHERE group_id = ? ORDER BY added_at, member_id",
    ),
    putMember: db.prepare(
      `INSERT INTO group_members (group_id, member_id, role, wrapped_key, added_at)
       VALUES (?, ?, ?, ?, ?)
       ON CONFLICT (group_id, member_id) DO UPDATE SET
         role = excluded.role,
         wrapped_key = excluded.wrapped_key,
         added_at = excluded.added_at`,
    ),
    removeMember: db.prepare("DELETE FROM group_members WHERE group_id = ? AND member_id = ?"),
    clearMembers: db.prepare("DELETE FROM group_members WHERE group_id = ?"),
    listPeers: db.prepare("SELECT * FROM peers ORDER BY server_id"),
    putPeer: db.prepare(
      `INSERT INTO peers (server_id, host, port, pubkey, last_seen)
       VALUES (?, ?, ?, ?, ?)
       ON CONFLICT (server_id) DO UPDATE SET
         host = excluded.host,
         port = excluded.port,
         pubkey = excluded.pubkey,
         last_seen = excluded.last_seen`,
    ),
    enqueue: db.prepare(
      "INSERT INTO offline_queue (recipient, sender, frame, queued_at) VALUES (?, ?, ?, ?)",
    ),
    listQueue: db.prepare("SELECT * FROM offline_queue WHERE recipient = ? ORDER BY seq"),
    queueLength: db.prepare("SELECT count(*) AS n FROM offline_queue WHERE recipient = ?"),
    deleteQueued: db.prepare(
      "DELETE FROM offline_queue WHERE seq IN (SELECT value FROM json_each(?))",
    ),
    clearQueue: db.prepare("DELETE FROM offline_queue WHERE recipient = ?"),
    pruneQueue: db.prepare("DELETE FROM offline_queue WHERE queued_at < ?"),
  };
}

/** A {@linkcode Store} on one `node:sqlite` connection. */
class SqliteStore implements Store {
  #db: DatabaseSync;
  #statements: Statements | undefined;

  constructor(db: DatabaseSync) {
    this.#db = db;
    this.#statements = prepareAll(db);
  }

  /** The statements, or a thrown error once closed. */
  get #s(): Statements {
    if (this.#statements === undefined) throw new Error("Store is closed");
    return this.#statements;
  }

  getSetting(key: string): Promise<string | undefined> {
    return run(() => {
      const row = this.#s.getSetting.get(key);
      return row === undefined ? undefined : text(row, "value");
    });
  }

  setSetting(key: string, value: string): Promise<void> {
    return run(() => {
      this.#s.setSetting.run(key, value);
    });
  }

  getUser(userId: string): Promise<UserRecord | undefined> {
    return run(() => {
      const row = this.#s.getUser.get(userId);
      return row === undefined ? undefined : toUser(row);
    });
  }

  getUserByName(username: string): Promise<UserRecord | undefined> {
    return run(() => {
      const row = this.#s.getUserByKey.get(usernameKey(username));
      return row === undefined ? undefined : toUser(row);
    });
  }

  putUser(user: UserRecord): Promise<void> {
    return run(() => {
      const params: SQLInputValue[] = [
        user.user_id,
        user.pubkey,
        user.privkey_store,
        user.pake_password,
        user.meta,
        user.version,
        user.username,
        user.username === null ? null : usernameKey(user.username),
        user.home_server,
        user.updated_at,
        user.deleted ? 1 : 0,
        user.registered_at,
      ];
      try {
        this.#s.putUser.run(...params);
      } catch (error) {
        if (user.username !== null && isUniqueViolation(error)) {
          throw new NameTakenError(user.username, { cause: error });
        }
        throw error;
      }
    });
  }

  listUsers(): Promise<UserRecord[]> {
    return run(() => this.#s.listUsers.all().map(toUser));
  }

  getGroup(groupId: string): Promise<GroupRecord | undefined> {
    return run(() => {
      const row = this.#s.getGroup.get(groupId);
      return row === undefined ? undefined : toGroup(row);
    });
  }

  putGroup(group: GroupRecord): Promise<void> {
    return run(() => {
      this.#s.putGroup.run(...groupParams(group));
    });
  }

  listMembers(groupId: string): Promise<GroupMemberRecord[]> {
    return run(() => this.#s.listMembers.all(groupId).map(toMember));
  }

  putMember(member: GroupMemberRecord): Promise<void> {
    return run(() => {
      this.#s.putMember.run(...memberParams(member));
    });
  }

  replaceGroup(group: GroupRecord, members: readonly GroupMemberRecord[]): Promise<void> {
    return run(() => {
      const db = this.#db;
      db.exec("BEGIN IMMEDIATE");
      try {
        this.#s.putGroup.run(...groupParams(group));
        this.#s.clearMembers.run(group.group_id);
        for (const m of members) this.#s.putMember.run(...memberParams(m));
        db.exec("COMMIT");
      } catch (error) {
        db.exec("ROLLBACK");
        throw error;
      }
    });
  }

  removeMember(groupId: string, memberId: string): Promise<void> {
    return run(() => {
      this.#s.removeMember.run(groupId, memberId);
    });
  }

  listPeers(): Promise<PeerRecord[]> {
    return run(() => this.#s.listPeers.all().map(toPeer));
  }

  putPeer(peer: PeerRecord): Promise<void> {
    return run(() => {
      this.#s.putPeer.run(peer.server_id, peer.host, peer.port, peer.pubkey, peer.last_seen);
    });
  }

  enqueue(item: Omit<QueuedFrame, "seq">): Promise<number> {
    return run(() => {
      const result = this.#s.enqueue.run(item.recipient, item.sender, item.frame, item.queued_at);
      return Number(result.lastInsertRowid);
    });
  }

  listQueue(recipient: string): Promise<QueuedFrame[]> {
    return run(() => this.#s.listQueue.all(recipient).map(toQueued));
  }

  queueLength(recipient: string): Promise<number> {
    return run(() => {
      const row = this.#s.queueLength.get(recipient);
      return row === undefined ? 0 : int(row, "n");
    });
  }

  deleteQueued(seqs: readonly number[]): Promise<void> {
    return run(() => {
      if (seqs.length === 0) return;
      for (const seq of seqs) {
        if (!Number.isSafeInteger(seq)) throw new TypeError(`Queue seq is not an integer: ${seq}`);
      }
      this.#s.deleteQueued.run(JSON.stringify(seqs));
    });
  }

  clearQueue(recipient: string): Promise<void> {
    return run(() => {
      this.#s.clearQueue.run(recipient);
    });
  }

  pruneQueue(before: number): Promise<number> {
    return run(() => Number(this.#s.pruneQueue.run(before).changes));
  }

  close(): Promise<void> {
    if (this.#statements !== undefined) {
      this.#statements = undefined;
      this.#db.close();
    }
    return Promise.resolve();
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }
}

/** The parameters of the `putGroup` statement, in column order. */
function groupParams(group: GroupRecord): SQLInputValue[] {
  return [group.group_id, group.creator_id, group.created_at, group.meta, group.version];
}

/** The parameters of the `putMember` statement, in column order. */
function memberParams(member: GroupMemberRecord): SQLInputValue[] {
  return [member.group_id, member.member_id, member.role, member.wrapped_key, member.added_at];
}

/** Runs a synchronous database call, turning a throw into a rejection. */
function run<T>(fn: () => T): Promise<T> {
  try {
    return Promise.resolve(fn());
  } catch (error) {
    return Promise.reject(error);
  }
}

/**
 * Opens (creating if needed) the SQLite database at `path` as a
 * {@linkcode Store}; `":memory:"` opens a private in-memory database.
 *
 * The parent directory is created when missing. The connection runs in WAL
 * mode with `synchronous=FULL`, so every write is on disk when its promise
 * resolves. Usernames are unique among live accounts, compared by the Unicode
 * lower case of their NFC form.
 *
 * @example Open, write and read a setting
 * ```ts
 * import assert from "node:assert/strict";
 * import { openSqliteStore } from "./sqlite_store.ts";
 *
 * await using store = await openSqliteStore(":memory:");
 * await store.setSetting("server_id", "a3f6c2f0-1f0e-4a5b-9c1d-6e7f8a9b0c1d");
 * assert.equal(await store.getSetting("server_id"), "a3f6c2f0-1f0e-4a5b-9c1d-6e7f8a9b0c1d");
 * ```
 *
 * @param path A file path, or `":memory:"`.
 * @returns The open store; close it (or `await using` it) when done.
 */
export async function openSqliteStore(path: string): Promise<Store> {
  if (path !== ":memory:" && path !== "") {
    await Deno.mkdir(dirname(path), { recursive: true });
  }
  const db = new DatabaseSync(path);
  try {
    db.exec(`PRAGMA busy_timeout = ${BUSY_TIMEOUT_MS}`);
    db.exec("PRAGMA journal_mode = WAL");
    db.exec("PRAGMA synchronous = FULL");
    db.exec("PRAGMA foreign_keys = ON");
    migrate(db);
    return new SqliteStore(db);
  } catch (error) {
    db.close();
    throw error;
  }
}
