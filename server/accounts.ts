/**
 * Accounts (socp extension, reference §14 login model): register a name for the connected
 * identity, log in from anywhere with a password, change the password, delete the account,
 * list account names. Servers keep only `verifier = SHA-256(auth_key)` and the encrypted key
 * blob. Every change of a record is signed by the account's own key (shared/account_record.ts)
 * and checked by every server, and records travel only inside the operator's server group
 * (DIRECTORY_UPDATE), so no server can log in as a user or replace a user's key.
 *
 * Failed logins are counted per account *and* client address (3 → that address is blocked for
 * the block time), and per account across all addresses (a budget per 10 minutes, after which
 * only addresses that logged in to the account before may still try): an attacker can slow
 * down neither the owner at a known address nor guess faster than the budget. docs/security.md
 * gives the numbers.
 *
 * @module
 */

import {
  type AccountEntry,
  type AccountStatement,
  decodeBase64Url,
  encodeBase64Url,
  importPublicKeyText,
  type JsonObject,
  KeyError,
  plural,
  ProtocolError,
  type PublicKey,
  samePublicKey,
  toPrivkeyStore,
  usernameKey,
  usernameProblem,
  verifyAccountStatement,
} from "../shared/mod.ts";
import type { UserRecord } from "../storage/mod.ts";
import type { ServerConfig } from "./config.ts";
import type { Hub } from "./hub.ts";
import { short } from "./log.ts";
import { accountPattern } from "./account_pattern.ts";

/** The stored form of `users.pake_password`. */
interface Verifier {
  scheme: "scrypt-auth-sha256";
  verifier: string;
}

/** The stored form of `users.proof`: the account key's signature over the record. */
export interface RecordProof {
  /** The statement's `seq` (equal to the record's `version`). */
  seq: number;
  /** base64url signature. */
  sig: string;
  /**
   * The name the account signed; the row's `username` is `null` when another account won
   * that name, while the signature still covers it.
   */
  username: string | null;
}

/** Failed-login bookkeeping per (account, address). */
interface Failures {
  count: number;
  blockedUntil: number;
}

/** The window of the per-account failure budget. */
const ACCOUNT_WINDOW_MS = 10 * 60_000;
/** How long an address that logged in stays trusted for its account. */
const TRUSTED_ADDRESS_MS = 30 * 86_400_000;
/** Most trusted addresses kept per account (the oldest is forgotten). */
const TRUSTED_ADDRESSES_MAX = 16;
/** Most failure records kept in memory before the oldest are dropped. */
const FAILURE_KEYS_MAX = 100_000;

/** The client address of a `host:port` remote (the port is dropped). */
export function addressOf(remote: string): string {
  const at = remote.lastIndexOf(":");
  const host = at > 0 ? remote.slice(0, at) : remote;
  return host.replace(/^\[|\]$/g, "");
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

function verifierOf(record: UserRecord): string | undefined {
  if (!record.pake_password) return undefined;
  try {
    const v = JSON.parse(record.pake_password) as Partial<Verifier>;
    return typeof v.verifier === "string" ? v.verifier : undefined;
  } catch {
    return undefined;
  }
}

function equalStrings(a: string, b: string): boolean {
  if (a.length !== b.length) return false;
  let diff = 0;
  for (let i = 0; i < a.length; i++) diff |= a.charCodeAt(i) ^ b.charCodeAt(i);
  return diff === 0;
}

/** Parses `users.proof`; `undefined` for an identity without an account (or garbage). */
export function parseProof(text: string): RecordProof | undefined {
  if (!text) return undefined;
  try {
    const v = JSON.parse(text) as Record<string, unknown>;
    if (typeof v.seq !== "number" || !Number.isSafeInteger(v.seq) || typeof v.sig !== "string") {
      return undefined;
    }
    const username = typeof v.username === "string" ? v.username : null;
    return { seq: v.seq, sig: v.sig, username };
  } catch {
    return undefined;
  }
}

/** The `seq` of a record's signed statement (0 for an identity without an account). */
export function recordSeq(record: UserRecord): number {
  return parseProof(record.proof)?.seq ?? 0;
}

/**
 * The statement a record's proof must sign: its id, key, signed name, key blob, verifier,
 * deletion flag and seq.
 */
export function recordStatement(record: UserRecord, proof: RecordProof): AccountStatement {
  let privkeyStore: JsonObject | null = null;
  if (record.privkey_store) {
    try {
      privkeyStore = JSON.parse(record.privkey_store) as JsonObject;
    } catch {
      privkeyStore = null;
    }
  }
  return {
    user_id: record.user_id,
    pubkey: record.pubkey,
    username: proof.username,
    privkey_store: privkeyStore,
    verifier: verifierOf(record) ?? null,
    deleted: record.deleted,
    seq: proof.seq,
  };
}

/**
 * Of two accounts claiming one name, the one whose registration a group server stamped first
 * (then the lower user id) keeps it. `registered_at` is set by the server that took the
 * REGISTER, never by the client, and is kept unchanged by every later version of the record.
 */
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
    proof: typeof value["proof"] === "string" ? value["proof"] : "",
  };
}

/** A signed account change as a client sends it (REGISTER, PASSWD, DELETE_ACCOUNT). */
export interface SignedChange {
  /** The statement's seq. */
  seq: number;
  /** The account key's signature over the statement. */
  recordSig: string;
}

/** Account operations of one server. */
export class Accounts {
  #hub: Hub;
  #config: ServerConfig;
  /** Per `name|address`. */
  #failures = new Map<string, Failures>();
  /** Per name: times of recent failures from any address (the account budget). */
  #accountFailures = new Map<string, number[]>();
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
      ["sign"],
    );
    const mac = new Uint8Array(
      await crypto.subtle.sign("HMAC", key, new TextEncoder().encode(usernameKey(username))),
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

  // -------------------------------------------------------------------------------------------
  // Lockout

  /** The per-address block; blocks are also stored, so a restart does not lift them. */
  async #checkBlocked(name: string, address: string): Promise<void> {
    const key = `${name}|${address}`;
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
        `Too many failed attempts from ${address}; this account is blocked there for ${
          plural(Math.ceil(left / 1000), "more second")
        }`,
      );
    }
    if (f.blockedUntil > 0) this.#failures.delete(key);
  }

  /** Recent failures for `name` from all addresses (pruned to the window). */
  #recentFailures(name: string): number[] {
    const since = this.#now() - ACCOUNT_WINDOW_MS;
    const list = (this.#accountFailures.get(name) ?? []).filter((t) => t > since);
    if (list.length > 0) this.#accountFailures.set(name, list);
    else this.#accountFailures.delete(name);
    return list;
  }

  async #trustedAddresses(name: string): Promise<Record<string, number>> {
    const text = await this.#hub.store.getSetting(`login_ok:${name}`);
    if (!text) return {};
    try {
      const value = JSON.parse(text) as Record<string, number>;
      const since = this.#now() - TRUSTED_ADDRESS_MS;
      return Object.fromEntries(Object.entries(value).filter(([, t]) => t > since));
    } catch {
      return {};
    }
  }

  /**
   * The account budget: after `accountFailureLimit` failures from all addresses within 10
   * minutes, only addresses that logged in to this account within 30 days may still try.
   */
  async #checkAccountBudget(name: string, address: string): Promise<void> {
    const recent = this.#recentFailures(name);
    if (recent.length < this.#config.accountFailureLimit) return;
    if ((await this.#trustedAddresses(name))[address] !== undefined) return;
    const oldest = recent[recent.length - this.#config.accountFailureLimit]!;
    const left = Math.max(1, Math.ceil((oldest + ACCOUNT_WINDOW_MS - this.#now()) / 1000));
    throw new ProtocolError(
      "LOGIN_BLOCKED",
      `Too many failed logins for this account from several addresses; try again in ${
        plural(left, "second")
      }, or from an address that logged in to it before`,
    );
  }

  async #rememberSuccess(name: string, address: string): Promise<void> {
    const trusted = await this.#trustedAddresses(name);
    trusted[address] = this.#now();
    const kept = Object.entries(trusted).sort((a, b) => b[1] - a[1]).slice(
      0,
      TRUSTED_ADDRESSES_MAX,
    );
    await this.#hub.store.setSetting(`login_ok:${name}`, JSON.stringify(Object.fromEntries(kept)));
  }

  /**
   * Counts a failed login reported by another server of the group (LOGIN_FAILURE), so that
   * the per-address block and the account budget hold group-wide, not per server.
   */
  async noteFailure(username: string, address = "?"): Promise<void> {
    const name = usernameKey(username);
    const blocked = await this.#count(name, address.slice(0, 64));
    this.#hub.log.info(
      `failed login for "${name}" from ${address} on another server${blocked ? "; blocked" : ""}`,
    );
  }

  /** Counts one failure; true when it started a block of that address. */
  async #count(name: string, address: string): Promise<boolean> {
    const recent = this.#recentFailures(name);
    recent.push(this.#now());
    this.#accountFailures.set(name, recent.slice(-4 * this.#config.accountFailureLimit));
    const key = `${name}|${address}`;
    const f = this.#failures.get(key) ?? { count: 0, blockedUntil: 0 };
    if (f.blockedUntil > 0 && f.blockedUntil <= this.#now()) {
      f.blockedUntil = 0;
      f.count = 0;
    }
    if (f.blockedUntil > this.#now()) return false;
    f.count++;
    if (this.#failures.size >= FAILURE_KEYS_MAX) {
      this.#failures.delete(this.#failures.keys().next().value!);
    }
    this.#failures.set(key, f);
    if (f.count < this.#config.loginAttempts) return false;
    f.blockedUntil = this.#now() + this.#config.loginBlockMs;
    f.count = 0;
    await this.#hub.store.setSetting(`login_block:${key}`, String(f.blockedUntil));
    return true;
  }

  async #fail(name: string, address: string): Promise<string> {
    const blocked = await this.#count(name, address);
    this.#hub.metrics.loginFailed(blocked);
    this.#hub.log.info(`failed login for "${name}" from ${address}${blocked ? "; blocked" : ""}`, {
      event: "login_failure",
      blocked,
    });
    const f = this.#failures.get(`${name}|${address}`)!;
    // The other servers of the group count it too, so the limits hold group-wide.
    await this.#hub.gossip(
      "LOGIN_FAILURE",
      { username: name, address, nonce: crypto.randomUUID() },
      { groupOnly: true },
    );
    let message = "Wrong username or password";
    const seconds = Math.ceil(this.#config.loginBlockMs / 1000);
    if (blocked) {
      message += `; too many failed attempts, blocked for ${plural(seconds, "second")}`;
    } else {
      const left = this.#config.loginAttempts - f.count;
      message += ` (${plural(left, "attempt")} left before a ${seconds} s block)`;
    }
    return message;
  }

  async #checkPassword(
    user: UserRecord | undefined,
    name: string,
    authKey: string,
    address: string,
  ): Promise<UserRecord> {
    await this.#checkBlocked(name, address);
    await this.#checkAccountBudget(name, address);
    const verifier = user ? verifierOf(user) : undefined;
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
    if (!user || !verifier || !equalStrings(given, verifier)) {
      throw new ProtocolError("BAD_PASSWORD", await this.#fail(name, address));
    }
    this.#failures.delete(`${name}|${address}`);
    await this.#rememberSuccess(name, address);
    return user;
  }

  /** LOGIN_PROOF from client address `address`: checks the password proof; returns the account. */
  async login(username: string, authKey: string, address = "?"): Promise<UserRecord> {
    const name = usernameKey(username);
    const user = await this.#hub.store.getUserByName(username);
    const ok = await this.#checkPassword(user, name, authKey, address);
    this.#hub.log.info(`login of "${ok.username}" (${short(ok.user_id)}) from ${address}`);
    return ok;
  }

  // -------------------------------------------------------------------------------------------
  // Signed changes

  async #key(record: UserRecord): Promise<PublicKey> {
    try {
      return await importPublicKeyText(record.pubkey);
    } catch (error) {
      const reason = error instanceof KeyError ? error.message : "malformed key";
      throw new ProtocolError("BAD_KEY", `Key of user ${record.user_id} rejected: ${reason}`);
    }
  }

  /** Checks the account key's signature over `record` (with `proof`); throws INVALID_SIG. */
  async #checkProof(record: UserRecord, proof: RecordProof, key?: PublicKey): Promise<void> {
    const ok = await verifyAccountStatement(
      key ?? await this.#key(record),
      recordStatement(record, proof),
      proof.sig,
    );
    if (!ok) {
      throw new ProtocolError(
        "INVALID_SIG",
        `The account record of ${record.user_id} is not signed by the account's key`,
      );
    }
  }

  /** A client's signed change to `current`, as the record it makes (checked, not stored). */
  async #signedRecord(
    current: UserRecord,
    next: Omit<UserRecord, "proof" | "version">,
    change: SignedChange,
    signedName: string | null,
  ): Promise<UserRecord> {
    if (change.seq <= recordSeq(current)) {
      throw new ProtocolError(
        "BAD_REQUEST",
        `Account change ${change.seq} is not newer than ${recordSeq(current)}; sign it again`,
      );
    }
    const proof: RecordProof = { seq: change.seq, sig: change.recordSig, username: signedName };
    const record: UserRecord = { ...next, version: change.seq, proof: JSON.stringify(proof) };
    await this.#checkProof(record, proof);
    return record;
  }

  /** REGISTER: gives the connected identity an account name (signed by its key). */
  async register(
    userId: string,
    username: string,
    privkeyStore: JsonObject,
    verifier: string,
    change: SignedChange,
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
    const record = await this.#signedRecord(
      user,
      {
        ...user,
        username,
        ...credentials(privkeyStore, verifier),
        updated_at: now,
        registered_at: now,
        home_server: this.#hub.serverId,
      },
      change,
      username,
    );
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
    change: SignedChange & { address?: string },
  ): Promise<UserRecord> {
    const user = await this.#account(userId);
    await this.#checkPassword(user, usernameKey(user.username!), authKey, change.address ?? "?");
    checkPrivkeyStore(privkeyStore);
    const record = await this.#signedRecord(
      user,
      {
        ...user,
        ...credentials(privkeyStore, verifier),
        updated_at: this.#now(),
      },
      change,
      user.username,
    );
    await this.#hub.store.putUser(record);
    this.#hub.log.info(`password changed for "${user.username}"`);
    await this.publish(record);
    return record;
  }

  /** DELETE_ACCOUNT: tombstones the record, drops queued messages, frees the name. */
  async deleteAccount(
    userId: string,
    authKey: string,
    change: SignedChange & { address?: string },
  ): Promise<string> {
    const user = await this.#account(userId);
    await this.#checkPassword(user, usernameKey(user.username!), authKey, change.address ?? "?");
    const record = await this.#signedRecord(
      user,
      {
        ...user,
        privkey_store: "",
        pake_password: "",
        updated_at: this.#now(),
        deleted: true,
      },
      change,
      user.username,
    );
    await this.#hub.store.putUser(record);
    await this.#hub.store.clearQueue(userId);
    this.#hub.log.info(`account "${user.username}" deleted`);
    await this.publish(record);
    return user.username!;
  }

  /**
   * ACCOUNTS_REQUEST: live account names matching a glob or /regex/ (linear-time matching, see
   * {@linkcode accountPattern}); throws BAD_REQUEST for a malformed or over-long pattern.
   */
  async list(pattern: string): Promise<AccountEntry[]> {
    const matcher = accountPattern(pattern);
    const out: AccountEntry[] = [];
    for (const u of await this.#hub.store.listUsers()) {
      if (u.deleted || !u.username || !matcher.test(u.username)) continue;
      out.push({
        username: u.username,
        user_id: u.user_id,
        online: this.#hub.onlineUser(u.user_id) !== undefined,
      });
      if (out.length >= 500) break;
    }
    return out.sort((a, b) => a.username.localeCompare(b.username));
  }

  /** Gossips a record to the linked servers of the group (records are private to it). */
  async publish(record: UserRecord): Promise<void> {
    await this.#hub.gossip("DIRECTORY_UPDATE", { record: recordToJson(record) }, {
      groupOnly: true,
    });
  }

  /** DIRECTORY_UPDATE payloads for every record, for a newly linked group server. */
  async syncPayloads(): Promise<JsonObject[]> {
    return (await this.#hub.store.listUsers()).map((u) => ({ record: recordToJson(u) }));
  }

  /**
   * Applies a record from a server of the group. The record must carry the account key's
   * signature (an identity without an account may only be announced once, unsigned), its key
   * must be the one already on record for the user id, and its `seq` must be newer than the
   * one held. Of two accounts claiming one name, the earlier registration (then the lower id)
   * keeps it, the other loses the name. Returns true when the record changed anything here
   * (and should be forwarded). Throws ProtocolError for a record that must not be applied.
   */
  async applyRemote(value: JsonObject): Promise<boolean> {
    const incoming = recordFromJson(value);
    if (incoming.pubkey === "" || incoming.user_id === "") return false;
    const store = this.#hub.store;
    const key = await this.#key(incoming);
    const current = await store.getUser(incoming.user_id);
    if (current && !samePublicKey(current.pubkey, incoming.pubkey)) {
      throw new ProtocolError(
        "BAD_KEY",
        `The record of user ${incoming.user_id} carries a key other than the one on record`,
      );
    }
    const proof = parseProof(incoming.proof);
    if (proof === undefined) {
      if (
        incoming.username !== null || incoming.privkey_store !== "" ||
        incoming.pake_password !== "" || incoming.deleted
      ) {
        throw new ProtocolError(
          "INVALID_SIG",
          `The account record of ${incoming.user_id} carries no signature of the account's key`,
        );
      }
      if (current) return false;
      await store.putUser({ ...incoming, version: 1, registered_at: 0, proof: "" });
      return true;
    }
    await this.#checkProof(incoming, proof, key);
    if (current && proof.seq <= recordSeq(current)) return false;
    const signedName = proof.username;
    if (incoming.username !== null && incoming.username !== signedName) {
      throw new ProtocolError(
        "INVALID_SIG",
        `The account record of ${incoming.user_id} names an account it did not sign`,
      );
    }
    const keepStamp = current && current.registered_at > 0 &&
      parseProof(current.proof)?.username === signedName;
    const stamp = keepStamp ? current.registered_at : incoming.registered_at;
    if (signedName !== null && !incoming.deleted && (stamp <= 0 || stamp > this.#now() + 300_000)) {
      throw new ProtocolError(
        "BAD_FRAME",
        `The account record of ${incoming.user_id} has no credible registration time`,
      );
    }
    const base: UserRecord = {
      ...incoming,
      username: signedName,
      version: proof.seq,
      registered_at: stamp,
      meta: current?.meta ?? "",
    };
    let record = base;
    // A local registration can take the name between the check and the write (NameTakenError):
    // then decide again against the new holder, so every server ends with the same holder.
    for (let attempt = 0;; attempt++) {
      record = base;
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
