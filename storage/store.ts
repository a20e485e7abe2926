/**
 * The persistence interface of a socp server. The embedded default is SQLite
 * ({@linkcode openSqliteStore}); other backends implement the same interface.
 *
 * Every write is durable when its promise resolves.
 *
 * @module
 */

/** A row of `users` (spec §14), plus socp's account fields. */
export interface UserRecord {
  /** UUIDv4. */
  user_id: string;
  /** base64url DER SPKI. */
  pubkey: string;
  /** Encrypted private-key blob (JSON text); `""` for key-file users without an account. */
  privkey_store: string;
  /** Password verifier (JSON text); `""` for key-file users without an account. */
  pake_password: string;
  /** JSON text, decorative (`display_name`, ...). */
  meta: string;
  /** Bumped on every change. */
  version: number;
  /** Account name (unique case-insensitively), or `null` for key-file users. */
  username: string | null;
  /** Server id that owns (last wrote) the record. */
  home_server: string | null;
  /** Milliseconds; last change. */
  updated_at: number;
  /** Milliseconds; when `username` was registered (0 for key-file users). */
  registered_at: number;
  /** True when the account was deleted (a tombstone kept for directory sync). */
  deleted: boolean;
  /**
   * JSON text `{"seq": n, "sig": "…"}`: the account key's signature over the record's
   * statement (shared/account_record.ts); `""` for an identity without an account.
   */
  proof: string;
}

/** A row of `groups`. */
export interface GroupRecord {
  group_id: string;
  creator_id: string;
  created_at: number;
  meta: string;
  version: number;
}

/** A row of `group_members`. */
export interface GroupMemberRecord {
  group_id: string;
  member_id: string;
  role: string;
  wrapped_key: string;
  added_at: number;
}

/** A user's block list and its owner's signature (shared/block_list.ts). */
export interface BlockRecord {
  user_id: string;
  blocked: string[];
  seq: number;
  sig: string;
}

/** A known peer server. */
export interface PeerRecord {
  server_id: string;
  host: string;
  port: number;
  pubkey: string;
  last_seen: number;
}

/** A frame queued for an offline user (stored exactly as received: ciphertext only). */
export interface QueuedFrame {
  /** Monotonic id; delivery order. */
  seq: number;
  recipient: string;
  sender: string;
  /** The frame's JSON text. */
  frame: string;
  queued_at: number;
  /**
   * The message's id on every server of the group (`null` for frames queued before
   * replication, which only this server holds).
   */
  entry_id: string | null;
}

/** A frame to queue: `entry_id` (optional) makes a second enqueue of the same id a no-op. */
export type NewQueuedFrame = Omit<QueuedFrame, "seq" | "entry_id"> & { entry_id?: string };

/** Persistent state of one server. */
export interface Store extends AsyncDisposable {
  /** A value from the settings table (server id, keys, ...). */
  getSetting(key: string): Promise<string | undefined>;
  /** Sets a settings value. */
  setSetting(key: string, value: string): Promise<void>;

  /** A user by id (tombstones included). */
  getUser(userId: string): Promise<UserRecord | undefined>;
  /** A live (not deleted) user holding this public key (base64url DER SPKI). */
  getUserByPubkey(pubkey: string): Promise<UserRecord | undefined>;
  /** A live (not deleted) user by case-insensitive username. */
  getUserByName(username: string): Promise<UserRecord | undefined>;
  /** Inserts or replaces a user row. Throws `NameTakenError` when the username is taken by another live user. */
  putUser(user: UserRecord): Promise<void>;
  /** Inserts or replaces several user rows in one transaction: all or none. */
  putUsers(users: readonly UserRecord[]): Promise<void>;
  /** Every user row (tombstones included), e.g. for directory sync. */
  listUsers(): Promise<UserRecord[]>;

  /** A group by id. */
  getGroup(groupId: string): Promise<GroupRecord | undefined>;
  /** Inserts or replaces a group. */
  putGroup(group: GroupRecord): Promise<void>;
  /** Every group (the public channel included). */
  listGroups(): Promise<GroupRecord[]>;
  /** Members of a group. */
  listMembers(groupId: string): Promise<GroupMemberRecord[]>;
  /** Inserts or replaces a membership. */
  putMember(member: GroupMemberRecord): Promise<void>;
  /** Inserts or replaces several memberships in one transaction (one disk sync). */
  putMembers(members: readonly GroupMemberRecord[]): Promise<void>;
  /** Removes a membership. */
  removeMember(groupId: string, memberId: string): Promise<void>;
  /**
   * Writes a group row and the full new member list in one transaction (a key rotation):
   * members not in `members` are removed.
   */
  replaceGroup(group: GroupRecord, members: readonly GroupMemberRecord[]): Promise<void>;

  /** Inserts or replaces a user's block list. */
  putBlocks(record: BlockRecord): Promise<void>;
  /** Every stored block list. */
  listBlocks(): Promise<BlockRecord[]>;

  /** Known peers. */
  listPeers(): Promise<PeerRecord[]>;
  /** Inserts or replaces a peer. */
  putPeer(peer: PeerRecord): Promise<void>;

  /**
   * Appends a frame to a user's offline queue and returns its seq (0 when a frame with the same
   * `entry_id` is queued already).
   */
  enqueue(item: NewQueuedFrame): Promise<number>;
  /** Every queued frame, oldest first (for a group member catching up). */
  listAllQueue(): Promise<QueuedFrame[]>;
  /**
   * Records entries as delivered (kept until pruned) and deletes them from the queue; returns
   * how many queued frames were deleted.
   */
  markQueueDone(entryIds: readonly string[], doneAt: number): Promise<number>;
  /** True when the entry was delivered already. */
  isQueueDone(entryId: string): Promise<boolean>;
  /** Ids of delivered entries not yet pruned, oldest first. */
  listQueueDone(): Promise<string[]>;
  /** The queue of one user, oldest first. */
  listQueue(recipient: string): Promise<QueuedFrame[]>;
  /** Number of queued frames for one user. */
  queueLength(recipient: string): Promise<number>;
  /** Number of queued frames for all users (cheap: for metrics at scrape time). */
  queueSize(): Promise<number>;
  /** Deletes queued frames by seq. */
  deleteQueued(seqs: readonly number[]): Promise<void>;
  /** Deletes every queued frame of a user. */
  clearQueue(recipient: string): Promise<void>;
  /** Deletes frames queued (and delivery records made) before `before` (ms); returns how many frames. */
  pruneQueue(before: number): Promise<number>;

  /** Closes the store. */
  close(): Promise<void>;
}

/** A username is already held by another live account. */
export class NameTakenError extends Error {
  /** The name that was taken. */
  readonly username: string;
  /** Creates the error. */
  constructor(username: string, options?: ErrorOptions) {
    super(`Username "${username}" is already taken`, options);
    this.name = "NameTakenError";
    this.username = username;
  }
}
