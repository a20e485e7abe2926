/**
 * Account helpers for integration tests (docs/protocol.md, "Accounts"): register a
 * {@linkcode RawUser} with a password, log a raw connection in (`LOGIN_START` / `LOGIN_PROOF`,
 * then USER_HELLO), ask a server for its account list, and drive the password prompts of a real
 * client process. Raw registrations use cheap scrypt parameters ({@linkcode FAST_KDF}), so
 * a test that logs in many times does not spend seconds in the KDF; the real client uses the
 * default cost.
 *
 * @module
 */

import {
  authKeyFor,
  type Envelope,
  type JsonObject,
  openPrivateKey,
  sealPrivateKey,
  serializeEnvelope,
  signAccountStatement,
  toKdfParams,
  toPrivkeyStore,
} from "../../shared/mod.ts";
import { type FixtureKeyName, fixtureKeyPair } from "../fixtures/keys.ts";
import { openTransport, openUser, RawConnection, RawUser } from "./raw_user.ts";
import type { ClientEvent, ClientNode } from "./start_client.ts";
import { eventually, TIMEOUTS } from "./timeout.ts";

/** Cheap scrypt parameters (N = 2^10) for accounts registered by tests over raw frames. */
export const FAST_KDF = { kdf: "scrypt", N: 1 << 10, r: 8, p: 1 } as const;

/** True for the ACK of an account request (`REGISTER_OK`, `PASSWD_OK`, `DELETE_OK`...). */
export function isAck(ref: string): (frame: Envelope) => boolean {
  return (frame) => frame.type === "ACK" && frame.payload["msg_ref"] === ref;
}

/** An unsigned frame sent before USER_HELLO (there is no user key yet). */
export function preHelloFrame(type: string, payload: JsonObject): JsonObject {
  return { type, from: "", to: "server", ts: Date.now(), payload };
}

/**
 * The signed REGISTER frame of a user that said hello, with its key sealed under `password`
 * (cheap KDF); send it with `user.send(serializeEnvelope(frame))`.
 */
export async function registerEnvelope(
  user: RawUser,
  username: string,
  password: string,
): Promise<Envelope> {
  const { store, verifier } = await sealPrivateKey(user.keys.privateKey, password, {
    kdf: FAST_KDF,
  });
  const seq = Date.now();
  const record_sig = await signAccountStatement(user.keys.privateKey, {
    user_id: user.userId,
    pubkey: user.pubkey,
    username,
    privkey_store: { ...store },
    verifier,
    deleted: false,
    seq,
  });
  return await user.envelope("REGISTER", user.serverId, {
    username,
    privkey_store: { ...store },
    verifier,
    seq,
    record_sig,
  });
}

/** True for the answer to REGISTER: `ACK REGISTER_OK` or an `ERROR`. */
export function isRegisterAnswer(frame: Envelope): boolean {
  return isAck("REGISTER_OK")(frame) || frame.type === "ERROR";
}

/**
 * Sends REGISTER for a user that said hello (see {@linkcode registerEnvelope}) and resolves
 * with the answer: `ACK REGISTER_OK` or an `ERROR`.
 */
export async function registerUser(
  user: RawUser,
  username: string,
  password: string,
): Promise<Envelope> {
  user.send(serializeEnvelope(await registerEnvelope(user, username, password)));
  return await user.next(isRegisterAnswer);
}

/** A login was refused; `frame` is the server's ERROR. */
export class LoginRefusedError extends Error {
  /** The ERROR code (BAD_PASSWORD, LOGIN_BLOCKED...). */
  readonly code: string;
  /** The ERROR frame. */
  readonly frame: Envelope;
  /** Creates the error from the server's ERROR frame. */
  constructor(frame: Envelope) {
    const code = String(frame.payload["code"]);
    super(`Login refused with ${code}: ${String(frame.payload["detail"] ?? "")}`);
    this.name = "LoginRefusedError";
    this.code = code;
    this.frame = frame;
  }
}

/** Options for {@linkcode loginUser}. */
export interface LoginUserOptions {
  /** The server's key (base64url SPKI): every answer must be signed with it. */
  serverPub: string;
  /** The fixture key the account was registered with (checked against the decrypted blob). */
  key: FixtureKeyName;
  /** The account's user id (the LOGIN_OK must name it). */
  userId: string;
  /** Display name for USER_HELLO (default the user name). */
  displayName?: string;
}

/**
 * Logs in to an account over raw frames on a fresh connection: LOGIN_START → LOGIN_PARAMS,
 * LOGIN_PROOF → LOGIN_OK (whose blob must decrypt, with `password`, to the fixture key), then
 * USER_HELLO. Rejects with {@linkcode LoginRefusedError} when the server answers with an ERROR.
 */
export async function loginUser(
  url: string,
  username: string,
  password: string,
  options: LoginUserOptions,
): Promise<RawUser> {
  const keys = await fixtureKeyPair(options.key);
  const transport = await openTransport(url);
  const user = new RawUser(
    transport,
    { userId: options.userId, displayName: options.displayName ?? username, keys },
    { serverPub: options.serverPub },
  );
  try {
    user.send(preHelloFrame("LOGIN_START", { username }));
    const params = await user.next("LOGIN_PARAMS");
    const authKey = await authKeyFor(password, toKdfParams(params.payload["kdf"]));
    user.send(preHelloFrame("LOGIN_PROOF", { username, auth_key: authKey }));
    const reply = await user.next((f) => f.type === "LOGIN_OK" || f.type === "ERROR");
    if (reply.type === "ERROR") throw new LoginRefusedError(reply);
    if (reply.payload["user_id"] !== options.userId) {
      throw new Error(`LOGIN_OK names user ${String(reply.payload["user_id"])}`);
    }
    const key = await openPrivateKey(toPrivkeyStore(reply.payload["privkey_store"]), password);
    if (key.pkcs8.join() !== keys.privateKey.pkcs8.join()) {
      throw new Error("The key blob of LOGIN_OK does not hold the account's key");
    }
    await user.hello();
  } catch (error) {
    await user.close();
    throw error;
  }
  return user;
}

/** One row of ACCOUNTS_RESPONSE. */
export interface AccountRow {
  username: string;
  user_id: string;
  online: boolean;
}

/** Fixture key of the throwaway users that list accounts ({@linkcode accountsRequest}). */
export const LISTER_KEY: FixtureKeyName = "user7";

/**
 * Lists accounts as an identified user, since servers refuse ACCOUNTS_REQUEST before USER_HELLO
 * (`ERROR NOT_LOGGED_IN`): connects a throwaway user (a fresh id with the fixture key
 * {@linkcode LISTER_KEY}), sends a signed ACCOUNTS_REQUEST and resolves with the answer
 * (ACCOUNTS_RESPONSE or ERROR); the connection is closed afterwards.
 */
export async function accountsRequest(
  url: string,
  pattern: string,
  serverPub: string,
): Promise<Envelope> {
  const lister = await openUser(url, LISTER_KEY, { serverPub, displayName: "lister" });
  try {
    await lister.hello();
    await lister.sendFrame("ACCOUNTS_REQUEST", lister.serverId, { pattern });
    return await lister.next((f) => f.type === "ACCOUNTS_RESPONSE" || f.type === "ERROR");
  } finally {
    await lister.close();
  }
}

/**
 * Sends ACCOUNTS_REQUEST as the first frame of a fresh, anonymous connection and resolves with
 * the answer (servers refuse it with `ERROR NOT_LOGGED_IN`); the connection is closed afterwards.
 */
export async function anonymousAccountsRequest(
  url: string,
  pattern: string,
  serverPub: string,
): Promise<Envelope> {
  const conn = await RawConnection.open(url, { serverPub });
  try {
    conn.send(preHelloFrame("ACCOUNTS_REQUEST", { pattern }));
    return await conn.next((f) => f.type === "ACCOUNTS_RESPONSE" || f.type === "ERROR");
  } finally {
    await conn.close();
  }
}

/** The accounts a server lists for `pattern` (throws on an ERROR answer). */
export async function listAccounts(
  url: string,
  pattern: string,
  serverPub: string,
): Promise<AccountRow[]> {
  const reply = await accountsRequest(url, pattern, serverPub);
  if (reply.type === "ERROR") {
    throw new Error(`ACCOUNTS_REQUEST refused: ${JSON.stringify(reply.payload)}`);
  }
  return reply.payload["accounts"] as unknown as AccountRow[];
}

/**
 * Resolves with a server's account list for `pattern` once `condition` holds for it (directory
 * records travel between servers asynchronously).
 */
export async function waitForAccounts(
  server: { url: string; pubkey: string },
  pattern: string,
  condition: (rows: AccountRow[]) => boolean,
  what: string,
  timeoutMs: number = TIMEOUTS.eventually,
): Promise<AccountRow[]> {
  return await eventually(async () => {
    const rows = await listAccounts(server.url, pattern, server.pubkey);
    return condition(rows) ? rows : undefined;
  }, { what, timeoutMs, intervalMs: 100 });
}

/** Matches a client `account` event with `action` (and `username`, when given). */
export function accountEvent(
  action: string,
  username?: string,
): (event: ClientEvent) => boolean {
  return (e) =>
    e.event === "account" && e.action === action &&
    (username === undefined || e.username === username);
}

/** Matches a client `error` event with `code`. */
export function errorEvent(code: string): (event: ClientEvent) => boolean {
  return (e) => e.event === "error" && e.code === code;
}

/**
 * Types `/register <username>` and the password twice into a client process, and resolves
 * with the `account registered` event or the `error` event that answered it.
 */
export async function clientRegister(
  client: ClientNode,
  username: string,
  password: string,
): Promise<ClientEvent> {
  await client.line(`/register ${username}`);
  await client.line(password);
  await client.line(password);
  return await client.waitFor((e) => accountEvent("registered")(e) || e.event === "error");
}
