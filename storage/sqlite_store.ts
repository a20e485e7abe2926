/**
 * The embedded SQLite backend of {@linkcode Store}, on `node:sqlite`.
 *
 * @module
 */

import { DatabaseSync, type SQLInputValue, type StatementSync } from "node:sqlite";
import { dirname } from "node:path";
import { usernameKey } from "../shared/mod.ts";
import {
  ensurePrivateFile,
  PRIVATE_DIR_MODE,
  PRIVATE_FILE_MODE,
  restrictMode,
} from "./file_mode.ts";
import {
  type BlockRecord,
  type GroupMemberRecord,
  type GroupRecord,
  NameTakenError,
  type NewQueuedFrame,
  type PeerRecord,
  type QueuedFrame,
  type Store,
  type UserRecord,
} from "./store.ts";

/** Files SQLite keeps beside the database; they hold the same data, so they get mode 0600. */
const SIDE_FILES = ["-wal", "-shm", "-journal"] as const;

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
  // v3: the account key's signature over the record (self-certifying records), and a lookup
  // of users by key (one key, one user id).
  `ALTER TABLE users ADD COLUMN proof TEXT NOT NULL DEFAULT '';
   CREATE INDEX IF NOT EXISTS users_pubkey ON users (pubkey);`,
  // v4: replicated offline queues: one id per queued message (the same on every server of the
  // group), and the ids already delivered, so a server that was down never delivers them again.
  `ALTER TABLE offline_queue ADD COLUMN entry_id TEXT;
   CREATE UNIQUE INDEX IF NOT EXISTS offline_queue_entry ON offline_queue (entry_id)
     WHERE entry_id IS NOT NULL;
   CREATE TABLE IF NOT EXISTS queue_done (
     entry_id TEXT PRIMARY KEY,
     done_at INT NOT NULL
   );
   CREATE INDEX IF NOT EXISTS queue_done_at ON queue_done (done_at);`,
  // v5: block lists, each signed by its owner (shared/block_list.ts).
  `CREATE TABLE IF NOT EXISTS blocks (
     user_id TEXT PRIMARY KEY,
     blocked TEXT NOT NULL,
     seq INT NOT NULL,
     sig TEXT NOT NULL
   );`,
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
    proof: textOrNull(row, "proof") ?? "",
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
    entry_id: textOrNull(row, "entry_id"),
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
  getUserByPubkey: StatementSync;
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
  listAllQueue: StatementSync;
  putBlocks: StatementSync;
  listBlocks: StatementSync;
  listGroups: StatementSync;
  markDone: StatementSync;
  deleteDone: StatementSync;
  isDone: StatementSync;
  listDone: StatementSync;
  pruneDone: StatementSync;
  listQueue: StatementSync;
  queueLength: StatementSync;
  queueSize: StatementSync;
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
    getUserByPubkey: db.prepare(
      "SELECT * FROM users WHERE pubkey = ? AND deleted = 0 ORDER BY user_id LIMIT 1",
    ),
    getUserByKey: db.prepare(
      "SELECT * FROM users WHERE username_key = ? AND username_key IS NOT NULL AND deleted = 0",
    ),
    // An upsert, not INSERT OR REPLACE: REPLACE would silently delete the
    // other account holding the name instead of failing.
    putUser: db.prepare(
      `INSERT INTO users (user_id, pubkey, privkey_store, pake_password, meta, version,
         username, username_key, home_server, updated_at, deleted, registered_at, proof)
       VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
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
         registered_at = excluded.registered_at,
         proof = excluded.proof`,
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
      "INSERT OR IGNORE INTO offline_queue (recipient, sender, frame, queued_at, entry_id) " +
        "VALUES (?, ?, ?, ?, ?)",
    ),
    listAllQueue: db.prepare("SELECT * FROM offline_queue ORDER BY seq"),
    putBlocks: db.prepare(
      `INSERT INTO blocks (user_id, blocked, seq, sig) VALUES (?, ?, ?, ?)
       ON CONFLICT (user_id) DO UPDATE SET
         blocked = excluded.blocked, seq = excluded.seq, sig = excluded.sig`,
    ),
    listBlocks: db.prepare("SELECT * FROM blocks ORDER BY user_id"),
    listGroups: db.prepare("SELECT * FROM groups ORDER BY group_id"),
    markDone: db.prepare(
      "INSERT OR IGNORE INTO queue_done (entry_id, done_at) SELECT value, ? FROM json_each(?)",
    ),
    deleteDone: db.prepare(
      "DELETE FROM offline_queue WHERE entry_id IN (SELECT value FROM json_each(?))",
    ),
    isDone: db.prepare("SELECT 1 AS d FROM queue_done WHERE entry_id = ?"),
    listDone: db.prepare("SELECT entry_id FROM queue_done ORDER BY done_at"),
    pruneDone: db.prepare("DELETE FROM queue_done WHERE done_at < ?"),
    listQueue: db.prepare("SELECT * FROM offline_queue WHERE recipient = ? ORDER BY seq"),
    queueLength: db.prepare("SELECT count(*) AS n FROM offline_queue WHERE recipient = ?"),
    queueSize: db.prepare("SELECT count(*) AS n FROM offline_queue"),
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

  getUserByPubkey(pubkey: string): Promise<UserRecord | undefined> {
    return run(() => {
      const row = this.#s.getUserByPubkey.get(pubkey);
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
    return run(() => this.#putUser(user));
  }

  putUsers(users: readonly UserRecord[]): Promise<void> {
    return run(() => {
      this.#db.exec("BEGIN IMMEDIATE");
      try {
        for (const user of users) this.#putUser(user);
        this.#db.exec("COMMIT");
      } catch (error) {
        this.#db.exec("ROLLBACK");
        throw error;
      }
    });
  }

  #putUser(user: UserRecord): void {
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
      user.proof,
    ];
    try {
      this.#s.putUser.run(...params);
    } catch (error) {
      if (user.username !== null && isUniqueViolation(error)) {
        throw new NameTakenError(user.username, { cause: error });
      }
      throw error;
    }
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

  putMembers(members: readonly GroupMemberRecord[]): Promise<void> {
    return run(() => {
      if (members.length === 0) return;
      const db = this.#db;
      db.exec("BEGIN IMMEDIATE");
      try {
        for (const m of members) this.#s.putMember.run(...memberParams(m));
        db.exec("COMMIT");
      } catch (error) {
        db.exec("ROLLBACK");
        throw error;
      }
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

  enqueue(item: NewQueuedFrame): Promise<number> {
    return run(() => {
      const result = this.#s.enqueue.run(
        item.recipient,
        item.sender,
        item.frame,
        item.queued_at,
        item.entry_id ?? null,
      );
      return Number(result.changes) > 0 ? Number(result.lastInsertRowid) : 0;
    });
  }

  putBlocks(record: BlockRecord): Promise<void> {
    return run(() => {
      this.#s.putBlocks.run(record.user_id, JSON.stringify(record.blocked), record.seq, record.sig);
    });
  }

  listBlocks(): Promise<BlockRecord[]> {
    return run(() =>
      this.#s.listBlocks.all().map((row) => ({
        user_id: text(row, "user_id"),
        blocked: (JSON.parse(text(row, "blocked")) as unknown[]).filter((v): v is string =>
          typeof v === "string"
        ),
        seq: int(row, "seq"),
        sig: text(row, "sig"),
      }))
    );
  }

  listGroups(): Promise<GroupRecord[]> {
    return run(() => this.#s.listGroups.all().map(toGroup));
  }

  listAllQueue(): Promise<QueuedFrame[]> {
    return run(() => this.#s.listAllQueue.all().map(toQueued));
  }

  markQueueDone(entryIds: readonly string[], doneAt: number): Promise<number> {
    return run(() => {
      if (entryIds.length === 0) return 0;
      const ids = JSON.stringify(entryIds);
      this.#db.exec("BEGIN IMMEDIATE");
      try {
        this.#s.markDone.run(doneAt, ids);
        const dropped = Number(this.#s.deleteDone.run(ids).changes);
        this.#db.exec("COMMIT");
        return dropped;
      } catch (error) {
        this.#db.exec("ROLLBACK");
        throw error;
      }
    });
  }

  isQueueDone(entryId: string): Promise<boolean> {
    return run(() => this.#s.isDone.get(entryId) !== undefined);
  }

  listQueueDone(): Promise<string[]> {
    return run(() => this.#s.listDone.all().map((row) => text(row, "entry_id")));
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

  queueSize(): Promise<number> {
    return run(() => {
      const row = this.#s.queueSize.get();
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
    return run(() => {
      this.#s.pruneDone.run(before);
      return Number(this.#s.pruneQueue.run(before).changes);
    });
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
 * The parent directory is created (mode 0700) when missing; the database and its
 * `-wal`/`-shm` files get mode 0600, also when they exist with wider modes. The connection runs in WAL
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
  const onDisk = path !== ":memory:" && path !== "";
  if (onDisk) {
    await Deno.mkdir(dirname(path), { recursive: true, mode: PRIVATE_DIR_MODE });
    // SQLite gives its -wal and -shm files the database file's mode.
    await ensurePrivateFile(path);
    for (const suffix of SIDE_FILES) await restrictMode(path + suffix, PRIVATE_FILE_MODE);
  }
  const db = new DatabaseSync(path);
  try {
    db.exec(`PRAGMA busy_timeout = ${BUSY_TIMEOUT_MS}`);
    db.exec("PRAGMA journal_mode = WAL");
    db.exec("PRAGMA synchronous = FULL");
    db.exec("PRAGMA foreign_keys = ON");
    migrate(db);
    if (onDisk) {
      for (const suffix of SIDE_FILES) await restrictMode(path + suffix, PRIVATE_FILE_MODE);
    }
    return new SqliteStore(db);
  } catch (error) {
    db.close();
    throw error;
  }
}
