/**
 * The account frames a client sends on a fresh connection, before USER_HELLO
 * (docs/protocol.md, "Accounts"): the password login (`LOGIN_START` → `LOGIN_PARAMS`,
 * `LOGIN_PROOF` → `LOGIN_OK`), an anonymous `ACCOUNTS_REQUEST`, and fetching an account's KDF
 * parameters. The password never leaves this process: only the scrypt-derived `auth_key` is
 * sent, and the private key from `LOGIN_OK` is decrypted here and kept in memory only.
 *
 * @module
 */

import {
  type AccountEntry,
  authKeyFor,
  BadPasswordError,
  decodeFrame,
  encodePublicKey,
  type Envelope,
  type Frame,
  importPublicKeyText,
  type JsonObject,
  type KdfParams,
  type KeyPair,
  keyPairOf,
  openPrivateKey,
  parseEnvelope,
  type PrivkeyStore,
  type PublicKey,
  samePublicKey,
  serializeEnvelope,
  toKdfParams,
  toPrivkeyStore,
  type Transport,
  verifyEnvelope,
} from "../shared/mod.ts";
import { type Clock, systemClock } from "./clock.ts";
import type { EventSink } from "./events.ts";
import { accountsAnswer } from "./accounts.ts";
import { HelloError } from "./errors.ts";
import { type Logger, silentLogger } from "./logger.ts";
import { forgetHint } from "./server_pins.ts";
import type { TrustStore } from "./trust_store.ts";

/** What a successful login yields. */
export interface LoginResult {
  /** The account name as the server spells it. */
  username: string;
  /** The account's user id. */
  userId: string;
  /** The decrypted key pair (memory only; never written to disk). */
  keys: KeyPair;
  /** The encrypted key blob with its KDF parameters (for `/passwd` and `/delete-account`). */
  store: PrivkeyStore;
  /** `seq` of the account record's signed statement (0 when the server did not say). */
  seq: number;
  /**
   * The `auth_key` the password derived (memory only): it logs in again after a reconnect
   * without asking for the password (see {@linkcode resumeLogin}).
   */
  authKey: string;
}

/** Asks for a password; resolves `undefined` when none can be had (end of input, cancelled). */
export type AskPassword = (prompt: string) => Promise<string | undefined>;

/** Options for {@linkcode PreHelloChannel}. */
export interface PreHelloOptions {
  /** The fresh connection. */
  transport: Transport;
  /** Server URL, the key of its pin. */
  serverUrl: string;
  /** Pinned server keys: when the URL is pinned, every answer must be signed with that key. */
  trust: TrustStore;
  /** Time source. */
  clock?: Clock;
  /** How long to wait for each answer (default 10 s). */
  timeoutMs?: number;
  /** Debug output. */
  log?: Logger;
}

/**
 * A connection before USER_HELLO: sends unsigned account frames and reads the server's answers,
 * checking their signatures when the server's key is pinned.
 */
export class PreHelloChannel {
  #t: Transport;
  #frames: AsyncIterator<string>;
  #pending: Promise<IteratorResult<string>> | undefined;
  #url: string;
  #clock: Clock;
  #timeoutMs: number;
  #log: Logger;
  #serverKey: PublicKey | undefined;
  #serverId: string | undefined;
  #lastTs = 0;

  private constructor(options: PreHelloOptions) {
    this.#t = options.transport;
    this.#frames = options.transport[Symbol.asyncIterator]();
    this.#url = options.serverUrl;
    this.#clock = options.clock ?? systemClock;
    this.#timeoutMs = options.timeoutMs ?? 10_000;
    this.#log = options.log ?? silentLogger;
  }

  /** Wraps a fresh connection; loads the server pin for the URL, if any. */
  static async open(options: PreHelloOptions): Promise<PreHelloChannel> {
    const channel = new PreHelloChannel(options);
    const pin = options.trust.serverPin(options.serverUrl);
    if (pin) {
      try {
        channel.#serverKey = await importPublicKeyText(pin.pubkey);
        channel.#serverId = pin.server_id;
      } catch (e) {
        throw new HelloError(
          "CONFIG",
          `The server key pinned for ${options.serverUrl} is invalid (${
            (e as Error).message
          }); remove "${options.serverUrl}" from "servers" in the config file`,
        );
      }
    }
    return channel;
  }

  /** The connection. */
  get transport(): Transport {
    return this.#t;
  }

  /** Sends an unsigned frame (there is no user key yet). */
  send(type: string, from: string, payload: JsonObject): void {
    this.#lastTs = Math.max(Math.floor(this.#clock.now()), this.#lastTs + 1);
    this.#t.send(serializeEnvelope({
      type,
      from,
      to: this.#serverId ?? "server",
      ts: this.#lastTs,
      payload,
    }));
  }

  /**
   * The next decodable frame matching `match` (others are logged and skipped). Throws
   * {@linkcode HelloError} when the connection closes or nothing comes in time.
   */
  async expect(match: (frame: Frame) => boolean, what: string): Promise<Frame> {
    const stop = new AbortController();
    const deadline = this.#clock.sleep(this.#timeoutMs, stop.signal).then(() => "timeout" as const);
    try {
      for (;;) {
        this.#pending ??= this.#frames.next();
        const next = await Promise.race([this.#pending, deadline]);
        if (next === "timeout") {
          throw new HelloError("TIMEOUT", `The server did not send ${what} in time`, 2);
        }
        this.#pending = undefined;
        if (next.done) {
          const info = await this.#t.closed;
          throw new HelloError(
            "CONNECTION_CLOSED",
            `Connection closed (${info.code}${
              info.reason ? `: ${info.reason}` : ""
            }) while waiting for ${what}`,
            2,
          );
        }
        const frame = await this.#decode(next.value);
        if (frame && match(frame)) return frame;
        if (frame) this.#log.debug(`ignoring ${frame.type} before USER_HELLO`);
      }
    } finally {
      stop.abort();
      await deadline;
    }
  }

  async #decode(text: string): Promise<Frame | undefined> {
    let env: Envelope;
    try {
      env = parseEnvelope(text);
    } catch (e) {
      this.#log.debug(`malformed frame dropped: ${(e as Error).message}`);
      return undefined;
    }
    if (this.#serverKey) {
      if (!env.sig || !(await verifyEnvelope(this.#serverKey, env))) {
        throw new HelloError(
          "SERVER_KEY_CHANGED",
          `The server at ${this.#url} answered ${env.type} without a valid signature of its ` +
            `pinned key; this may be an attack (or the server got a new key). If the operator ` +
            `confirms a new key, forget the old one: ${forgetHint(undefined, this.#url)}`,
        );
      }
    }
    try {
      return decodeFrame(env);
    } catch (e) {
      this.#log.debug(`malformed ${env.type} dropped: ${(e as Error).message}`);
      return undefined;
    }
  }

  /** Sends CTRL_CLOSE and closes the connection (code 1000). */
  async close(): Promise<void> {
    if (this.#t.open) {
      this.send("CTRL_CLOSE", "", {});
      this.#t.close(1000, "bye");
    }
    const stop = new AbortController();
    await Promise.race([this.#t.closed, this.#clock.sleep(3000, stop.signal)]);
    stop.abort();
  }
}

function isError(frame: Frame): frame is Extract<Frame, { type: "ERROR" }> {
  return frame.type === "ERROR";
}

/** `LOGIN_START` → `LOGIN_PARAMS`: the account's KDF parameters (made-up ones for an unknown name). */
export async function fetchKdfParams(
  channel: PreHelloChannel,
  username: string,
): Promise<KdfParams> {
  channel.send("LOGIN_START", username, { username });
  const reply = await channel.expect(
    (f) => f.type === "LOGIN_PARAMS" || f.type === "ERROR",
    "the login parameters",
  );
  if (isError(reply)) {
    throw new HelloError(reply.p.code, reply.p.detail || "Login refused", 1, true);
  }
  if (reply.type !== "LOGIN_PARAMS") throw new Error("unreachable");
  try {
    return toKdfParams(reply.p.kdf);
  } catch (e) {
    throw new HelloError(
      "BAD_KDF",
      `The server sent unusable login parameters: ${(e as Error).message}`,
    );
  }
}

/** `ACCOUNTS_REQUEST` on a connection without a session (logged out). */
export async function queryAccounts(
  channel: PreHelloChannel,
  pattern: string,
): Promise<AccountEntry[]> {
  channel.send("ACCOUNTS_REQUEST", "", { pattern });
  const reply = await channel.expect(
    (f) => f.type === "ACCOUNTS_RESPONSE" || f.type === "ERROR",
    "the account list",
  );
  return accountsAnswer(reply);
}

/** Options for {@linkcode login}. */
export interface LoginOptions {
  /** Asks for the password (again after a wrong one). */
  askPassword: AskPassword;
  /** Reports a wrong password (the server's message) before asking again. */
  onEvent: EventSink;
}

/**
 * Logs in to an account on a fresh connection: fetches the KDF parameters, asks for the
 * password, proves it with the derived `auth_key`, decrypts the private key from `LOGIN_OK`
 * and checks that it belongs to the account's public key. Asks again after `BAD_PASSWORD`;
 * throws {@linkcode HelloError} when blocked (`LOGIN_BLOCKED`, the message says for how long),
 * refused, out of passwords, or disconnected. The connection is then ready for USER_HELLO.
 */
export async function login(
  channel: PreHelloChannel,
  username: string,
  options: LoginOptions,
): Promise<LoginResult> {
  const kdf = await fetchKdfParams(channel, username);
  for (;;) {
    const password = await options.askPassword(`Password for ${username}: `);
    if (password === undefined) {
      throw new HelloError("NO_PASSWORD", `No password given for "${username}"; not logged in`);
    }
    const authKey = await authKeyFor(password, kdf);
    channel.send("LOGIN_PROOF", username, { username, auth_key: authKey });
    const reply = await channel.expect(
      (f) => f.type === "LOGIN_OK" || f.type === "ERROR",
      "the login answer",
    );
    if (isError(reply)) {
      const detail = reply.p.detail || "Login refused";
      // The attempt that triggers the block is still answered BAD_PASSWORD ("...blocked for").
      if (reply.p.code === "BAD_PASSWORD" && !/\bblocked\b/i.test(detail)) {
        options.onEvent({ event: "error", code: reply.p.code, detail, source: "server" });
        continue;
      }
      const code = reply.p.code === "BAD_PASSWORD" ? "LOGIN_BLOCKED" : reply.p.code;
      throw new HelloError(code, detail, 1, true);
    }
    if (reply.type !== "LOGIN_OK") throw new Error("unreachable");
    let store: PrivkeyStore;
    try {
      store = toPrivkeyStore(reply.p.privkey_store);
    } catch (e) {
      throw new HelloError(
        "BAD_KEY",
        `The server sent an unusable key blob for "${username}": ${(e as Error).message}`,
      );
    }
    let keys: KeyPair;
    try {
      keys = await keyPairOf(await openPrivateKey(store, password));
    } catch (e) {
      throw new HelloError(
        e instanceof BadPasswordError ? "BAD_PASSWORD" : "BAD_KEY",
        e instanceof BadPasswordError
          ? `The server accepted the password, but the stored key of "${username}" does not decrypt with it`
          : `The stored key of "${username}" is unusable: ${(e as Error).message}`,
      );
    }
    if (!samePublicKey(encodePublicKey(keys.publicKey), reply.p.pubkey)) {
      throw new HelloError(
        "BAD_KEY",
        `The decrypted key of "${username}" does not match the account's public key; not logged in`,
      );
    }
    return {
      username: reply.p.username,
      userId: reply.p.user_id,
      keys,
      store,
      seq: reply.p.seq,
      authKey,
    };
  }
}

/** The account a session logged in to, as {@linkcode resumeLogin} needs it. */
export interface ResumeAccount {
  /** The account name. */
  username: string;
  /** The `auth_key` of the first login (or of the last `/passwd`). */
  authKey: string;
  /** The account's user id. */
  userId: string;
  /** The account's public key (base64url SPKI): the key in memory. */
  pubkey: string;
}

/**
 * Logs in again on a new connection after a reconnect, without asking for the password:
 * `LOGIN_START` → `LOGIN_PARAMS`, `LOGIN_PROOF` with the kept `auth_key` → `LOGIN_OK`, which
 * must name the same user id and key. Throws {@linkcode HelloError}: from the server (e.g.
 * `BAD_PASSWORD` after a password change elsewhere) or for a mismatch. The connection is then
 * ready for USER_HELLO.
 *
 * @example
 * ```ts ignore
 * const channel = await PreHelloChannel.open({ transport, serverUrl, trust });
 * await resumeLogin(channel, { username, authKey, userId, pubkey });
 * ```
 */
export async function resumeLogin(
  channel: PreHelloChannel,
  account: ResumeAccount,
): Promise<void> {
  const { username, authKey } = account;
  await fetchKdfParams(channel, username);
  channel.send("LOGIN_PROOF", username, { username, auth_key: authKey });
  const reply = await channel.expect(
    (f) => f.type === "LOGIN_OK" || f.type === "ERROR",
    "the login answer",
  );
  if (isError(reply)) {
    throw new HelloError(reply.p.code, reply.p.detail || "Login refused", 1, true);
  }
  if (reply.type !== "LOGIN_OK") throw new Error("unreachable");
  if (reply.p.user_id !== account.userId || !samePublicKey(reply.p.pubkey, account.pubkey)) {
    throw new HelloError(
      "BAD_KEY",
      `The server answered the login of "${username}" with another user id or key; not logged in`,
    );
  }
}
