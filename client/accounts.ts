/**
 * Account requests on a session (after USER_HELLO): `/register` (REGISTER), `/passwd`
 * (PASSWD), `/delete-account` (DELETE_ACCOUNT) and `/accounts` (ACCOUNTS_REQUEST), each
 * answered by an ACK or an ERROR the request claims. The password login before USER_HELLO is
 * in login.ts; asking for passwords and sealing keys is in client_app.ts.
 *
 * @module
 */

import {
  type AccountEntry,
  type AccountStatement,
  encodePublicKey,
  type Frame,
  type JsonObject,
  nextAccountSeq,
  signAccountStatement,
} from "../shared/mod.ts";
import { errorMessage } from "./_util.ts";
import type { Connection, Identity } from "./connection.ts";
import { CommandError, ServerError } from "./errors.ts";
import { type Logger, silentLogger } from "./logger.ts";

/** ERROR codes that answer an account request (REGISTER, PASSWD, DELETE_ACCOUNT). */
const ACCOUNT_ERRORS: ReadonlySet<string> = new Set([
  "NAME_IN_USE",
  "BAD_REQUEST",
  "BAD_PASSWORD",
  "LOGIN_BLOCKED",
  "NOT_LOGGED_IN",
  "INVALID_SIG",
  "RATE_LIMIT",
  "USER_NOT_FOUND",
  "UNKNOWN_TYPE",
  "BAD_FRAME",
  "INTERNAL_ERROR",
]);

/** How long an account request may wait for its answer. */
const ACCOUNT_TIMEOUT_MS = 10_000;

/** Options for {@linkcode Accounts}. */
export interface AccountsOptions {
  /** The user; `account` is set by a registration and cleared by a deletion. */
  identity: Identity;
  /** Where requests go. */
  connection: Connection;
  /** Debug logger. */
  log?: Logger;
}

/**
 * The account requests of a connected user.
 *
 * @example
 * ```ts ignore
 * const accounts = new Accounts({ identity, connection });
 * const found = await accounts.list("al*");
 * ```
 */
export class Accounts {
  #me: Identity;
  #connection: Connection;
  #log: Logger;

  /** Creates the feature. */
  constructor(options: AccountsOptions) {
    this.#me = options.identity;
    this.#connection = options.connection;
    this.#log = options.log ?? silentLogger;
  }

  /**
   * `/accounts`: account names matching a glob (`*`, `?`, `[...]`) or `/regex/`. Throws
   * {@linkcode ServerError} (BAD_REQUEST) for a malformed pattern.
   */
  async list(pattern: string): Promise<AccountEntry[]> {
    this.#connection.requireReady();
    const reply = await this.#connection.request(
      "ACCOUNTS_REQUEST",
      { pattern },
      (f) =>
        (f.type === "ACCOUNTS_RESPONSE" && f.p.pattern === pattern) ||
        (f.type === "ERROR" && (f.p.code === "BAD_REQUEST" || f.p.code === "UNKNOWN_TYPE")),
      { claim: true },
    );
    return accountsAnswer(reply);
  }

  /** The account with exactly this name (case-insensitive), or undefined (also on failure). */
  async find(name: string): Promise<AccountEntry | undefined> {
    let accounts: AccountEntry[];
    try {
      accounts = await this.list(name);
    } catch (e) {
      this.#log.debug(`account lookup of "${name}" failed: ${errorMessage(e)}`);
      return undefined;
    }
    const lower = name.toLowerCase();
    return accounts.find((a) => a.username.toLowerCase() === lower);
  }

  /**
   * `seq` and the account key's signature over the record this change makes
   * (shared/account_record.ts): every server checks it, so no server can forge a change.
   */
  async #signed(
    change: Omit<AccountStatement, "user_id" | "pubkey" | "seq">,
  ): Promise<{ seq: number; record_sig: string }> {
    const seq = nextAccountSeq(this.#me.accountSeq ?? 0);
    const record_sig = await signAccountStatement(this.#me.keys.privateKey, {
      ...change,
      user_id: this.#me.userId,
      pubkey: encodePublicKey(this.#me.keys.publicKey),
      seq,
    });
    return { seq, record_sig };
  }

  #noteSeq(ack: Frame): void {
    const seq = ack.env.payload["seq"];
    if (typeof seq === "number" && Number.isSafeInteger(seq)) this.#me.accountSeq = seq;
  }

  /** REGISTER: makes this identity an account; resolves on `ACK REGISTER_OK`. */
  async register(username: string, privkeyStore: JsonObject, verifier: string): Promise<void> {
    const signed = await this.#signed({
      username,
      privkey_store: privkeyStore,
      verifier,
      deleted: false,
    });
    const ack = await this.#request("REGISTER", {
      username,
      privkey_store: privkeyStore,
      verifier,
      ...signed,
    }, "REGISTER_OK");
    this.#noteSeq(ack);
    this.#me.account = username;
  }

  /** PASSWD: replaces the stored key blob and verifier; resolves on `ACK PASSWD_OK`. */
  async passwd(authKey: string, privkeyStore: JsonObject, verifier: string): Promise<void> {
    const signed = await this.#signed({
      username: this.#me.account ?? null,
      privkey_store: privkeyStore,
      verifier,
      deleted: false,
    });
    const ack = await this.#request("PASSWD", {
      auth_key: authKey,
      privkey_store: privkeyStore,
      verifier,
      ...signed,
    }, "PASSWD_OK");
    this.#noteSeq(ack);
  }

  /**
   * DELETE_ACCOUNT: resolves on `ACK DELETE_OK` (with the deleted name); the server then
   * closes the connection, which counts as closed by us.
   */
  async delete(authKey: string): Promise<string | undefined> {
    this.#connection.expectClose(true);
    try {
      const signed = await this.#signed({
        username: this.#me.account ?? null,
        privkey_store: null,
        verifier: null,
        deleted: true,
      });
      const ack = await this.#request(
        "DELETE_ACCOUNT",
        { auth_key: authKey, ...signed },
        "DELETE_OK",
      );
      const name = ack.env.payload["username"];
      delete this.#me.account;
      return typeof name === "string" ? name : undefined;
    } catch (e) {
      this.#connection.expectClose(false);
      throw e;
    }
  }

  async #request(type: string, payload: JsonObject, okRef: string): Promise<Frame> {
    const connection = this.#connection;
    connection.requireReady();
    const reply = await connection.request(
      type,
      payload,
      (f) =>
        (f.type === "ACK" && f.p.msg_ref === okRef) ||
        (f.type === "ERROR" && ACCOUNT_ERRORS.has(f.p.code)),
      { claim: true, timeoutMs: ACCOUNT_TIMEOUT_MS },
    );
    if (reply === undefined) {
      throw new CommandError(
        connection.ready
          ? `The server did not answer the ${type} request`
          : `No answer to ${type}: the connection closed`,
      );
    }
    if (reply.type === "ERROR") {
      throw new ServerError(reply.p.code, reply.p.detail || `${type} refused`);
    }
    return reply;
  }
}

/**
 * The accounts of an ACCOUNTS_REQUEST answer (from a session or a connection before
 * USER_HELLO); throws {@linkcode ServerError} for an ERROR answer, CommandError for none.
 *
 * @example
 * ```ts
 * import { accountsAnswer } from "./accounts.ts";
 * try {
 *   accountsAnswer(undefined);
 * } catch (e) {
 *   console.assert((e as Error).name === "CommandError");
 * }
 * ```
 */
export function accountsAnswer(reply: Frame | undefined): AccountEntry[] {
  if (reply === undefined) throw new CommandError("The server did not answer the account query");
  if (reply.type === "ERROR") {
    if (reply.p.code === "UNKNOWN_TYPE") {
      throw new ServerError(reply.p.code, "This server does not support accounts");
    }
    throw new ServerError(reply.p.code, reply.p.detail || "Account query refused");
  }
  if (reply.type !== "ACCOUNTS_RESPONSE") {
    throw new CommandError(`Unexpected ${reply.type} in answer to the account query`);
  }
  return reply.p.accounts;
}
