/**
 * Self-certifying account records. Every change of an account (register, password change,
 * delete) is a statement signed by the account's own RSA key, made by the client that owns
 * the key; every server checks the signature against the key on record before it stores or
 * forwards the change. A server (even one of the operator's own group) can therefore deny
 * service, but it cannot forge a verifier, swap the key or delete an account.
 *
 * The statement is the canonical JSON of {@linkcode AccountStatement} plus
 * `kind: "socp-account-record-v1"`, signed with RSASSA-PSS-SHA256 (salt 478) like a transport
 * signature. `seq` orders the statements of one account: a server accepts only a higher `seq`
 * than the one it holds, so an old statement cannot be replayed over a newer one.
 *
 * @module
 */

import { canonicalJson } from "./canonical_json.ts";
import type { JsonObject } from "./envelope.ts";
import type { PrivateKey, PublicKey } from "./rsa.ts";
import { signStatement, verifyStatement } from "./transport_sig.ts";

/** What an account's key signs for one version of its record. */
export interface AccountStatement {
  /** The account's user id (UUIDv4). */
  user_id: string;
  /** The account's public key, base64url DER SPKI (never changes for a user id). */
  pubkey: string;
  /** The account name, or `null` for an identity without a name. */
  username: string | null;
  /** The encrypted private key blob, or `null` once deleted. */
  privkey_store: JsonObject | null;
  /** `SHA-256(auth_key)` in base64url, or `null` once deleted. */
  verifier: string | null;
  /** True for the tombstone that deletes the account. */
  deleted: boolean;
  /** Strictly increasing per account (the client uses milliseconds since the epoch). */
  seq: number;
}

/** The label inside every statement, so its signature means nothing anywhere else. */
export const ACCOUNT_STATEMENT_KIND = "socp-account-record-v1";

/**
 * The bytes an account key signs for a statement.
 *
 * @example
 * ```ts
 * import { accountStatementText } from "./account_record.ts";
 * const text = accountStatementText({
 *   user_id: "u", pubkey: "k", username: "alice", privkey_store: null, verifier: null,
 *   deleted: true, seq: 2,
 * });
 * console.assert(text.startsWith('{"deleted":true,"kind":"socp-account-record-v1"'));
 * ```
 */
export function accountStatementText(s: AccountStatement): string {
  return canonicalJson(statementObject(s));
}

function statementObject(s: AccountStatement): JsonObject {
  return {
    kind: ACCOUNT_STATEMENT_KIND,
    user_id: s.user_id,
    pubkey: s.pubkey,
    username: s.username,
    privkey_store: s.privkey_store,
    verifier: s.verifier,
    deleted: s.deleted,
    seq: s.seq,
  };
}

/** Signs a statement with the account's private key; returns base64url. */
export function signAccountStatement(
  key: PrivateKey,
  statement: AccountStatement,
): Promise<string> {
  return signStatement(key, statementObject(statement));
}

/** True when `sig` (base64url) is the account key's signature over `statement`. */
export function verifyAccountStatement(
  key: PublicKey,
  statement: AccountStatement,
  sig: string,
): Promise<boolean> {
  return verifyStatement(key, statementObject(statement), sig);
}

/**
 * The next `seq` for an account whose last statement had `last`: the current time in
 * milliseconds, or one more than `last` when the clock is behind.
 *
 * @example
 * ```ts
 * import { nextAccountSeq } from "./account_record.ts";
 * console.assert(nextAccountSeq(10, () => 5) === 11);
 * console.assert(nextAccountSeq(10, () => 50) === 50);
 * ```
 */
export function nextAccountSeq(last: number, now: () => number = Date.now): number {
  return Math.max(Math.floor(now()), last + 1);
}
