/**
 * Accounts (socp extension, reference §14 login model): register a name for the connected
 * identity, log in from anywhere with a password, change the password, delete the account,
 * list account names. Servers keep only `verifier = SHA-256(auth_key)` and the encrypted key
 * blob; records are gossiped mesh-wide as DIRECTORY_UPDATE with deterministic conflict rules.
 *
 * @module
 */

import {
  type AccountEntry,
  decodeBase64Url,
  encodeBase64Url,
  type JsonObject,
  ProtocolError,
  toPrivkeyStore,
  usernameKey,
  usernameProblem,
} from "../shared/mod.ts";
import type { UserRecord } from "../storage/mod.ts";
import type { ServerConfig } from "./config.ts";
import type { Hub } from "./hub.ts";
import { short } from "./log.ts";

/** The stored form of `users.pake_password`. */
interface Verifier {
  scheme: "scrypt-auth-sha256";
  verifier: string;
}

/** Failed-login bookkeeping per account name. */
interface Failures {
  count: number;
  blockedUntil: number;
}

/** Glob (`*`, `?`, `[...]`) or `/regex/` to a case-insensitive, anchored RegExp. */
export function accountPattern(pattern: string): RegExp {
  if (pattern.length > 1 && pattern.startsWith("/") && pattern.endsWith("/")) {
    try {
      return new RegExp(pattern.slice(1, -1), "iu");
    } catch (error) {
      throw new ProtocolError(
        "BAD_REQUEST",
        `Malformed regular expression "${pattern}": ${(error as Error).message}`,
      );
    }
  }
  let out = "";
  for (let i = 0; i < pattern.length; i++) {
    const c = pattern[i]!;
    if (c === "*") out += ".*";
    else if (c === "?") out += ".";
    else if (c === "[") {
      const end = pattern.indexOf("]", i + 2);
      if (end < 0) {
        throw new ProtocolError(
          "BAD_REQUEST",
          `Malformed pattern "${pattern}": "[" at ${i + 1} is never closed`,
        );
      }
      let body = pattern.slice(i + 1, end);
      if (body.startsWith("!")) body = "^" + body.slice(1);
      out += "[" + body.replace(/[\\\]]/g, "\\$&") + "]";
      i = end;
    } else if (c === "]") {
      throw new ProtocolError(
        "BAD_REQUEST",
        `Malformed pattern "${pattern}": "]" at ${i + 1} has no "["`,
      );
    } else out += c.replace(/[.+^${}()|\\/]/g, "\\$&");
  }
  try {
    return new RegExp(`^${out}$`, "iu");
  } catch (error) {
    throw new ProtocolError(
      "BAD_REQUEST",
      `Malformed pattern "${pattern}": ${(error as Error).message}`,
    );
  }
}

/** Rejects an encrypted key blob that is not a valid `privkey_store` (BAD_REQUEST). */
function checkPrivkeyStore(privkeyStore: JsonObject): void {
  try {
    toPrivkeyStore(privkeyStore);
  } catch (error) {
    throw new ProtocolError(
      "BAD_REQUEST",
      `Encrypted key blob rejected: ${(error as Error).message}`,
    );
  }
}

/** The stored forms of a key blob and its verifier (`users.privkey_store`, `pake_password`). */
function credentials(
  privkeyStore: JsonObject,
  verifier: string,
): Pick<UserRecord, "privkey_store" | "pake_password"> {
  return {
    privkey_store: JSON.stringify(privkeyStore),
    pake_password: JSON.stringify({ scheme: "scrypt-auth-sha256", verifier } satisfies Verifier),
  };
}

function equalStrings(a: string, b: string): boolean {
  if (a.length !== b.length) return false;
  let diff = 0;
  for (let i = 0; i < a.length; i++) diff |= a.charCodeAt(i) ^ b.charCodeAt(i);
  return diff === 0;
}

/** True when record `a` supersedes `b` (same user): version, then updated_at, then content. */
export function supersedes(a: UserRecord, b: UserRecord): boolean {
  if (a.version !== b.version) return a.version > b.version;
  if (a.updated_at !== b.updated_at) return a.updated_at > b.updated_at;
  return JSON.stringify(a) > JSON.stringify(b);
}

/** Of two accounts claiming one name, the one registered first (then lower id) keeps it. */
export function nameWinner(a: UserRecord, b: UserRecord): UserRecord {
  if (a.registered_at !== b.registered_at) return a.registered_at < b.registered_at ? a : b;
  return a.user_id < b.user_id ? a : b;
}

/** The wire form of a record (DIRECTORY_UPDATE.record). */
export function recordToJson(r: UserRecord): JsonObject {
  return { ...r };
}

/** Validates a DIRECTORY_UPDATE record. */
export function recordFromJson(value: JsonObject): UserRecord {
  const s = (k: string) => {
    const v = value[k];
    if (typeof v !== "string") {
      throw new ProtocolError("BAD_FRAME", `DIRECTORY_UPDATE record.${k} must be a string`);
    }
    return v;
  };
  const n = (k: string) => {
    const v = value[k] ?? 0;
    if (typeof v !== "number" || !Number.isSafeInteger(v)) {
      throw new ProtocolError("BAD_FRAME", `DIRECTORY_UPDATE record.${k} must be an integer`);
    }
    return v;
  };
  const username = value["username"];
  const home = value["home_server"];
  return {
    user_id: s("user_id"),
    pubkey: s("pubkey"),
    privkey_store: s("privkey_store"),
    pake_password: s("pake_password"),
    meta: typeof value["meta"] === "string" ? value["meta"] : "",
    version: n("version"),
    username: typeof username === "string" && usernameProblem(username) === undefined
      ? username
      : null,
    home_server: typeof home === "string" ? home : null,
    updated_at: n("updated_at"),
    registered_at: n("registered_at"),
    deleted: value["deleted"] === true,
  };
}

/** Account operations of one server. */
export class Accounts {
  #hub: Hub;
  #config: ServerConfig;
  #failures = new Map<string, Failures>();
  #secret: Uint8Array | undefined;
  #clock: () => number;
  /** Called when a local user's name was lost to a concurrent registration elsewhere. */
  onNameLost: (userId: string, username: string) => void = () => {};

  /** Creates the account service. */
  constructor(hub: Hub, config: ServerConfig, options: { clock?: () => number } = {}) {
    this.#hub = hub;
    this.#config = config;
    this.#clock = options.clock ?? Date.now;
  }

  #now(): number {
    return Math.floor(this.#clock());
  }

  async #fakeSalt(username: string): Promise<string> {
    if (!this.#secret) {
      let stored = await this.#hub.store.getSetting("login_secret");
      if (!stored) {
        stored = encodeBase64Url(crypto.getRandomValues(new Uint8Array(32)));
        await this.#hub.store.setSetting("login_secret", stored);
      }
      this.#secret = new TextEncoder().encode(stored);
    }
    const key = await crypto.subtle.importKey(
      "raw",
      new Uint8Array(this.#secret),
      { name: "HMAC", hash: "SHA-256" },
      false,
      [
        "sign",
      ],
    );
    const mac = new Uint8Array(
      await crypto.subtle.sign(
        "HMAC",
        key,
        new TextEncoder().encode(usernameKey(username)),
      ),
    );
    return encodeBase64Url(mac.subarray(0, 16));
  }

  /** LOGIN_START: the account's KDF parameters (stable fake ones for an unknown name). */
  async loginParams(username: string): Promise<JsonObject> {
    const user = await this.#hub.store.getUserByName(username);
    if (user && user.privkey_store) {
      const { kdf, N, r, p, salt } = JSON.parse(user.privkey_store) as JsonObject;
      return { kdf: kdf ?? "scrypt", N: N ?? 0, r: r ?? 0, p: p ?? 0, salt: salt ?? "" };
    }
    return { kdf: "scrypt", N: 1 << 15, r: 8, p: 1, salt: await this.#fakeSalt(username) };
  }

  /** Blocks are also stored, so a restart does not lift them. */
  async #checkBlocked(key: string): Promise<void> {
    let f = this.#failures.get(key);
    if (!f) {
      const saved = Number(await this.#hub.store.getSetting(`login_block:${key}`) ?? 0);
      if (saved <= this.#now()) return;
      f = { count: 0, blockedUntil: saved };
      this.#failures.set(key, f);
    }
    const left = f.blockedUntil - this.#now();
    if (left > 0) {
      throw new ProtocolError(
        "LOGIN_BLOCKED",
        `Too many failed attempts; this account is blocked for ${
          Math.ceil(left / 1000)
        } more seconds`,
      );
    }
    if (f.blockedUntil > 0) this.#failures.delete(key);
  }

  /**
   * Counts a failed login reported by another server (LOGIN_FAILURE), so that the block
   * applies across the mesh, not per server.
   */
  async noteFailure(username: string): Promise<void> {
    const key = usernameKey(username);
    const f = this.#failures.get(key);
    if (f && f.blockedUntil > this.#now()) return;
    const blocked = await this.#count(key);
    this.#hub.log.info(`failed login for "${key}" on another server${blocked ? "; blocked" : ""}`);
  }

  /** Counts one failure; true when it started a block. */
  async #count(key: string): Promise<boolean> {
    const f = this.#failures.get(key) ?? { count: 0, blockedUntil: 0 };
    if (f.blockedUntil > 0 && f.blockedUntil <= this.#now()) {
      f.blockedUntil = 0;
      f.count = 0;
    }
    f.count++;
    this.#failures.set(key, f);
    if (f.count < this.#config.loginAttempts) return false;
    f.blockedUntil = this.#now() + this.#config.loginBlockMs;
    f.count = 0;
    await this.#hub.store.setSetting(`login_block:${key}`, String(f.blockedUntil));
    return true;
  }

  async #fail(key: string): Promise<string> {
    const blocked = await this.#count(key);
    const f = this.#failures.get(key)!;
    // Other servers count it too, so the block holds mesh-wide.
    await this.#hub.gossip("LOGIN_FAILURE", { username: key, nonce: crypto.randomUUID() });
    let message = "Wrong username or password";
    const seconds = Math.ceil(this.#config.loginBlockMs / 1000);
    if (blocked) {
      message += `; too many failed attempts, blocked for ${seconds} seconds`;
    } else {
      const left = this.#config.loginAttempts - f.count;
      message += ` (${left} attempt${left === 1 ? "" : "s"} left before a ${seconds} s block)`;
    }
    return message;
  }

  async #checkPassword(
    user: UserRecord | undefined,
    key: string,
    authKey: string,
  ): Promise<UserRecord> {
    await this.#checkBlocked(key);
    let verifier: Verifier | undefined;
    try {
      verifier = user?.pake_password ? JSON.parse(user.pake_password) as Verifier : undefined;
    } catch {
      verifier = undefined;
    }
    let given = "";
    try {
      given = encodeBase64Url(
        new Uint8Array(
          await crypto.subtle.digest("SHA-256", new Uint8Array(decodeBase64Url(authKey))),
        ),
      );
    } catch {
      given = "";
    }
    if (!user || !verifier || !equalStrings(given, verifier.verifier)) {
      throw new ProtocolError("BAD_PASSWORD", await this.#fail(key));
    }
    this.#failures.delete(key);
    return user;
  }

  /** LOGIN_PROOF: checks the password proof; returns the account. */
  async login(username: string, authKey: string): Promise<UserRecord> {
    const key = usernameKey(username);
    const user = await this.#hub.store.getUserByName(username);
    const ok = await this.#checkPassword(user, key, authKey);
    this.#hub.log.info(`login of "${ok.username}" (${short(ok.user_id)})`);
    return ok;
  }

  /** REGISTER: gives the connected identity an account name. */
  async register(
    userId: string,
    username: string,
    privkeyStore: JsonObject,
    verifier: string,
  ): Promise<UserRecord> {
    const problem = usernameProblem(username);
    if (problem) throw new ProtocolError("BAD_REQUEST", problem);
    checkPrivkeyStore(privkeyStore);
    const store = this.#hub.store;
    const user = await store.getUser(userId);
    if (!user || user.deleted) {
      throw new ProtocolError("USER_NOT_FOUND", `User ${userId} is not known here`);
    }
    if (user.username) {
      throw new ProtocolError(
        "BAD_REQUEST",
        `This identity already has the account "${user.username}"`,
      );
    }
    const holder = await store.getUserByName(username);
    if (holder) throw new ProtocolError("NAME_IN_USE", `The name "${username}" is already taken`);
    const now = this.#now();
    const record: UserRecord = {
      ...user,
      username,
      ...credentials(privkeyStore, verifier),
      version: user.version + 1,
      updated_at: now,
      registered_at: now,
      home_server: this.#hub.serverId,
    };
    try {
      await store.putUser(record);
    } catch (error) {
      if ((error as Error).name === "NameTakenError") {
        throw new ProtocolError("NAME_IN_USE", `The name "${username}" is already taken`);
      }
      throw error;
    }
    this.#hub.log.info(`registered "${username}" for ${short(userId)}`);
    await this.publish(record);
    return record;
  }

  async #account(userId: string): Promise<UserRecord> {
    const user = await this.#hub.store.getUser(userId);
    if (!user || user.deleted || !user.username) {
      throw new ProtocolError("NOT_LOGGED_IN", "This identity has no account; use /register first");
    }
    return user;
  }

  /** PASSWD: replaces the key blob and verifier after checking the old password. */
  async passwd(
    userId: string,
    authKey: string,
    privkeyStore: JsonObject,
    verifier: string,
  ): Promise<void> {
    const user = await this.#account(userId);
    await this.#checkPassword(user, usernameKey(user.username!), authKey);
    checkPrivkeyStore(privkeyStore);
    const record: UserRecord = {
      ...user,
      ...credentials(privkeyStore, verifier),
      version: user.version + 1,
      updated_at: this.#now(),
    };
    await this.#hub.store.putUser(record);
    this.#hub.log.info(`password changed for "${user.username}"`);
    await this.publish(record);
  }

  /** DELETE_ACCOUNT: tombstones the record, drops queued messages, frees the name. */
  async deleteAccount(userId: string, authKey: string): Promise<string> {
    const user = await this.#account(userId);
    await this.#checkPassword(user, usernameKey(user.username!), authKey);
    const record: UserRecord = {
      ...user,
      privkey_store: "",
      pake_password: "",
      version: user.version + 1,
      updated_at: this.#now(),
      deleted: true,
    };
    await this.#hub.store.putUser(record);
    await this.#hub.store.clearQueue(userId);
    this.#hub.log.info(`account "${user.username}" deleted`);
    await this.publish(record);
    return user.username!;
  }

  /** ACCOUNTS_REQUEST: live account names matching a glob or /regex/. */
  async list(pattern: string): Promise<AccountEntry[]> {
    const re = accountPattern(pattern);
    const out: AccountEntry[] = [];
    for (const u of await this.#hub.store.listUsers()) {
      if (u.deleted || !u.username || !re.test(u.username)) continue;
      out.push({
        username: u.username,
        user_id: u.user_id,
        online: this.#hub.onlineUser(u.user_id) !== undefined,
      });
      if (out.length >= 500) break;
    }
    return out.sort((a, b) => a.username.localeCompare(b.username));
  }

  /** Gossips a record to every linked server. */
  async publish(record: UserRecord): Promise<void> {
    await this.#hub.gossip("DIRECTORY_UPDATE", { record: recordToJson(record) });
  }

  /** DIRECTORY_UPDATE payloads for every record, for a newly linked server. */
  async syncPayloads(): Promise<JsonObject[]> {
    return (await this.#hub.store.listUsers()).map((u) => ({ record: recordToJson(u) }));
  }

  /**
   * Applies a record from another server. Newer versions win; of two accounts claiming one
   * name, the earlier registration (then the lower id) keeps it, the other loses the name.
   * Returns true when the record changed anything here (and should be forwarded).
   */
  async applyRemote(value: JsonObject): Promise<boolean> {
    const incoming = recordFromJson(value);
    const store = this.#hub.store;
    const current = await store.getUser(incoming.user_id);
    if (current && !supersedes(incoming, current)) return false;
    if (incoming.pubkey === "" || incoming.user_id === "") return false;
    let record = incoming;
    // A local registration can take the name between the check and the write (NameTakenError):
    // then decide again against the new holder, so every server ends with the same holder.
    for (let attempt = 0;; attempt++) {
      record = incoming;
      if (record.username && !record.deleted) {
        const holder = await store.getUserByName(record.username);
        if (holder && holder.user_id !== record.user_id) {
          const winner = nameWinner(holder, record);
          if (winner === holder) {
            record = { ...record, username: null };
          } else {
            const name = holder.username!;
            await store.putUser({ ...holder, username: null });
            this.#hub.log.warn(
              `name "${name}" went to ${short(record.user_id)} (registered first)`,
            );
            if (this.#hub.localLink(holder.user_id)) this.onNameLost(holder.user_id, name);
          }
        }
      }
      try {
        await store.putUser(record);
        break;
      } catch (error) {
        if ((error as Error).name !== "NameTakenError" || attempt >= 3) throw error;
      }
    }
    if (record.deleted) {
      await store.clearQueue(record.user_id);
      const link = this.#hub.localLink(record.user_id);
      link?.close(1000, "Account deleted");
    }
    return true;
  }
}
