/**
 * The client between sessions: which identity is connected (the local one from the config, or
 * an account logged in to with a password), and the account life cycle: `/register`, `/login`,
 * `/logout`, `/passwd`, `/delete-account` and `/accounts`. Each login is a fresh connection and
 * a fresh {@linkcode ClientSession}; while logged out only `/login`, `/accounts`, `/help` and
 * `/quit` work.
 *
 * Secrets: passwords are asked through an {@linkcode Ask} (no echo on a terminal) and used only
 * to derive keys; an account's private key is decrypted in memory and never written to disk.
 *
 * @module
 */

import {
  type AccountEntry,
  authKeyFor,
  type ContentSigVariant,
  type JsonObject,
  type KdfParams,
  kdfParamsOf,
  type KeyPair,
  type PrivkeyStore,
  sealPrivateKey,
  type Transport,
  usernameProblem,
} from "../shared/mod.ts";
import type { Clock } from "./clock.ts";
import type { CommandSession } from "./commands.ts";
import { addLocalIdentity, type LoadedConfig } from "./config.ts";
import type { EventSink, ListedUser } from "./events.ts";
import { fetchKdfParams, login, PreHelloChannel, queryAccounts } from "./login.ts";
import {
  ClientSession,
  CommandError,
  HelloError,
  type Identity,
  type Logger,
  ServerError,
  type SessionEnd,
} from "./session.ts";
import type { Ask } from "./terminal.ts";
import type { TrustStore } from "./trust_store.ts";

/** A trust store that can also save the rest of the config (see `ConfigTrustStore`). */
export interface ConfigStore extends TrustStore {
  /** Writes the config (after changing e.g. `account`). */
  save(): Promise<void>;
}

/** Options for {@linkcode ClientApp}. */
export interface ClientAppOptions {
  /** The loaded config (possibly without a local key). */
  loaded: LoadedConfig;
  /** Pins, backed by the config. */
  trust: ConfigStore;
  /** Server URL. */
  serverUrl: string;
  /** Opens a connection to the server. */
  connect: (url: string) => Promise<Transport>;
  /** Receives every event. */
  emit: EventSink;
  /** Asks for passwords. */
  ask: Ask;
  /** Debug output. */
  log: Logger;
  /** Time source. */
  clock: Clock;
  /** content_sig variant. */
  sigVariant: ContentSigVariant;
  /** Where received files go, per user id. */
  downloadsDir: (userId: string) => string;
  /** True when `--name` set the display name (it then applies to account logins too). */
  displayNameGiven?: boolean;
  /** Key generator for a config that needs a local key. */
  generateKey?: () => Promise<KeyPair>;
  /** USER_HELLO_OK wait (ms). */
  helloTimeoutMs?: number;
  /** Wait for each answer before USER_HELLO (ms, default 10 s). */
  loginTimeoutMs?: number;
}

/** The account of the current session. */
interface Account {
  username: string;
  /** The key blob with its KDF parameters, when known (after a login or `/register`). */
  store?: PrivkeyStore;
}

function storeJson(store: PrivkeyStore): JsonObject {
  return { ...store };
}

function sameName(a: string | undefined, b: string | undefined): boolean {
  return a !== undefined && b !== undefined && a.toLowerCase() === b.toLowerCase();
}

/** Turns a login failure into an error for a command (the client keeps running). */
function asCommandError(e: unknown): unknown {
  if (e instanceof HelloError) {
    return e.fromServer ? new ServerError(e.code, e.message, { cause: e }) : new CommandError(
      e.message,
      { cause: e },
    );
  }
  return e;
}

/**
 * The client's state across sessions; implements the commands' {@linkcode CommandSession}.
 *
 * @example
 * ```ts ignore
 * const app = new ClientApp({ loaded, trust, serverUrl, connect, emit, ask, log, clock,
 *   sigVariant: "A", downloadsDir: (id) => `downloads/${id}` });
 * await app.startLogin("alice");     // asks for the password, logs in, says USER_HELLO
 * await app.sendDirect("bob", "hi");
 * await app.quit();
 * ```
 */
export class ClientApp implements CommandSession {
  #o: ClientAppOptions;
  #session: ClientSession | undefined;
  #keys: KeyPair | undefined;
  #account: Account | undefined;
  #ended = Promise.withResolvers<SessionEnd>();

  /** Resolves when the current session is closed by the server or the network (not by us). */
  readonly ended: Promise<SessionEnd> = this.#ended.promise;

  /** Creates the client; nothing connects until a start method is called. */
  constructor(options: ClientAppOptions) {
    this.#o = options;
  }

  /** The current session, if logged in. */
  get session(): ClientSession | undefined {
    return this.#session;
  }

  /** The current account name, if any. */
  get account(): string | undefined {
    return this.#account?.username;
  }

  /**
   * Connects as the config's local identity (creating it when the config has none yet).
   * Throws {@linkcode HelloError} when refused or disconnected.
   */
  async startLocal(): Promise<void> {
    const { loaded } = this.#o;
    let keys = loaded.keys;
    if (!keys) {
      keys = await addLocalIdentity(loaded, this.#o.generateKey);
      this.#o.emit({
        event: "info",
        text: `Created a new identity ${loaded.config.user_id} in ${loaded.path}`,
      });
    }
    const transport = await this.#connect();
    const account = loaded.config.account;
    await this.#startSession(
      transport,
      { userId: loaded.config.user_id!, displayName: loaded.config.display_name, keys },
      account === undefined ? undefined : { username: account },
    );
  }

  /**
   * Logs in to an account on a fresh connection (asking for the password, again after a
   * wrong one) and says USER_HELLO as the account. Throws {@linkcode HelloError} when blocked,
   * refused, without a password, or disconnected.
   */
  async startLogin(username: string): Promise<void> {
    const problem = usernameProblem(username);
    if (problem) throw new HelloError("BAD_REQUEST", problem);
    const transport = await this.#connect();
    let channel: PreHelloChannel | undefined;
    let result;
    try {
      channel = await PreHelloChannel.open(this.#channelOptions(transport));
      result = await login(channel, username, {
        askPassword: (prompt) => this.#o.ask(prompt, { secret: true }),
        onEvent: this.#o.emit,
      });
    } catch (e) {
      if (channel) await channel.close();
      else transport.close(1000, "bye");
      throw e;
    }
    // The config's display name belongs to its own identity or remembered account; another
    // account shows its name (unless --name said otherwise).
    const { config } = this.#o.loaded;
    const sameAccount = sameName(config.account, result.username);
    const given = this.#o.displayNameGiven === true;
    const displayName = given || sameAccount ? config.display_name : result.username;
    await this.#startSession(
      transport,
      { userId: result.userId, displayName, keys: result.keys, account: result.username },
      { username: result.username, store: result.store },
    );
    this.#o.emit({
      event: "account",
      action: "logged_in",
      username: result.username,
      user_id: result.userId,
    });
    // A config without a local key remembers the account last logged in to.
    if (!this.#o.loaded.keys && config.account !== result.username) {
      config.account = result.username;
      if (!sameAccount && !given) config.display_name = result.username;
      await this.#o.trust.save();
    }
  }

  async #connect(): Promise<Transport> {
    try {
      return await this.#o.connect(this.#o.serverUrl);
    } catch (e) {
      throw new HelloError("CONNECT", (e as Error).message, 2);
    }
  }

  #channelOptions(transport: Transport) {
    return {
      transport,
      serverUrl: this.#o.serverUrl,
      trust: this.#o.trust,
      clock: this.#o.clock,
      log: this.#o.log,
      ...(this.#o.loginTimeoutMs !== undefined ? { timeoutMs: this.#o.loginTimeoutMs } : {}),
    };
  }

  async #startSession(
    transport: Transport,
    identity: Identity,
    account: Account | undefined,
  ): Promise<void> {
    const o = this.#o;
    const session = new ClientSession({
      transport,
      identity,
      serverUrl: o.serverUrl,
      trust: o.trust,
      downloadsDir: o.downloadsDir(identity.userId),
      onEvent: (event) => {
        if (
          event.event === "error" && event.code === "NAME_IN_USE" && event.source === "server" &&
          this.#session === session
        ) {
          this.#nameLost();
        }
        o.emit(event);
      },
      sigVariant: o.sigVariant,
      clock: o.clock,
      log: o.log,
      configPath: o.loaded.path,
      ...(o.helloTimeoutMs !== undefined ? { helloTimeoutMs: o.helloTimeoutMs } : {}),
    });
    try {
      await session.start();
    } catch (e) {
      await session.quit();
      throw e;
    }
    this.#session = session;
    this.#keys = identity.keys;
    this.#account = account;
    session.closed.then((end) => {
      if (this.#session !== session || end.byUs) return;
      this.#forget();
      this.#ended.resolve(end);
    });
  }

  /** The server says the account name went to a concurrent registration elsewhere. */
  #nameLost(): void {
    const lost = this.#account?.username;
    this.#account = undefined;
    const { config } = this.#o.loaded;
    if (sameName(config.account, lost)) {
      delete config.account;
      this.#o.trust.save().catch(() => {});
    }
  }

  /** Drops the session and the in-memory key. */
  #forget(): void {
    this.#session = undefined;
    this.#keys = undefined;
    this.#account = undefined;
  }

  #require(): ClientSession {
    const session = this.#session;
    if (!session || !session.ready) {
      throw new CommandError("Not logged in; /login <username> or /quit");
    }
    return session;
  }

  // ------------------------------------------------------------------------------------------
  // Messaging (delegated to the session)

  /** `/list`. */
  list(): Promise<ListedUser[]> {
    return this.#require().list();
  }

  /** `/tell`. */
  sendDirect(target: string, text: string): Promise<void> {
    return this.#require().sendDirect(target, text);
  }

  /** `/all`. */
  sendPublic(text: string): Promise<void> {
    return this.#require().sendPublic(text);
  }

  /** `/file`. */
  sendFile(target: string, path: string, signal?: AbortSignal): Promise<void> {
    return this.#require().sendFile(target, path, signal);
  }

  // ------------------------------------------------------------------------------------------
  // Accounts

  async #askSecret(prompt: string): Promise<string> {
    const answer = await this.#o.ask(prompt, { secret: true });
    if (answer === undefined) throw new CommandError("No password given; nothing changed");
    return answer;
  }

  async #newPassword(prompt: string): Promise<string> {
    const first = await this.#askSecret(prompt);
    if (first.length === 0) throw new CommandError("The password must not be empty");
    const again = await this.#askSecret("Repeat the password: ");
    if (again !== first) throw new CommandError("The passwords do not match; nothing changed");
    return first;
  }

  /** `/register <username>`: makes the connected identity an account with a password. */
  async register(username: string): Promise<void> {
    const session = this.#require();
    const problem = usernameProblem(username);
    if (problem) throw new CommandError(problem);
    if (this.#account?.store) {
      throw new CommandError(
        `You are logged in to the account "${this.#account.username}" already`,
      );
    }
    const password = await this.#newPassword(`Password for the new account ${username}: `);
    const { store, verifier } = await sealPrivateKey(this.#keys!.privateKey, password);
    await session.register(username, storeJson(store), verifier);
    this.#account = { username, store };
    const { loaded } = this.#o;
    if (loaded.config.user_id === session.userId && loaded.config.account !== username) {
      loaded.config.account = username;
      await this.#o.trust.save();
    }
    this.#o.emit({
      event: "account",
      action: "registered",
      username,
      user_id: session.userId,
    });
  }

  /**
   * `/login [username]`: ends the current session (if any) and logs in to the account on a
   * new connection to the same server. On failure the client stays logged out.
   */
  async login(username?: string): Promise<void> {
    const name = username ?? this.#o.loaded.config.account;
    if (name === undefined) throw new CommandError("Missing <username>. Usage: /login <username>");
    const problem = usernameProblem(name);
    if (problem) throw new CommandError(problem);
    if (this.#session) {
      const session = this.#session;
      this.#forget();
      await session.quit();
    }
    try {
      await this.startLogin(name);
    } catch (e) {
      throw asCommandError(e);
    }
  }

  /** `/logout`: ends the session and forgets the key; the program keeps running. */
  async logout(): Promise<void> {
    const session = this.#session;
    if (!session) throw new CommandError("Not logged in");
    const username = this.#account?.username;
    this.#forget();
    await session.quit();
    this.#o.emit({
      event: "account",
      action: "logged_out",
      ...(username !== undefined ? { username } : {}),
    });
  }

  async #kdfParams(account: Account): Promise<KdfParams> {
    if (account.store) return kdfParamsOf(account.store);
    // A local identity registered in an earlier run: ask the server for the parameters.
    const transport = await this.#connect();
    const channel = await PreHelloChannel.open(this.#channelOptions(transport));
    try {
      return await fetchKdfParams(channel, account.username);
    } finally {
      await channel.close();
    }
  }

  #requireAccount(): Account {
    const account = this.#account;
    if (!account) {
      throw new CommandError("This identity has no account; /register <username> first");
    }
    return account;
  }

  /** `/passwd`: asks for the current and a new password, re-encrypts the key, sends PASSWD. */
  async passwd(): Promise<void> {
    const session = this.#require();
    const account = this.#requireAccount();
    const old = await this.#askSecret(`Current password for ${account.username}: `);
    const next = await this.#newPassword(`New password for ${account.username}: `);
    let authKey: string;
    try {
      authKey = await authKeyFor(old, await this.#kdfParams(account));
    } catch (e) {
      throw asCommandError(e);
    }
    const { store, verifier } = await sealPrivateKey(this.#keys!.privateKey, next);
    await session.passwd(authKey, storeJson(store), verifier);
    account.store = store;
    this.#o.emit({
      event: "account",
      action: "password_changed",
      username: account.username,
      user_id: session.userId,
    });
  }

  /**
   * `/delete-account`: asks for the password, deletes the account everywhere in the mesh (the
   * name becomes free, queued messages are dropped) and logs out.
   */
  async deleteAccount(): Promise<void> {
    const session = this.#require();
    const account = this.#requireAccount();
    const password = await this.#askSecret(
      `Password to delete the account ${account.username} for good: `,
    );
    let authKey: string;
    try {
      authKey = await authKeyFor(password, await this.#kdfParams(account));
    } catch (e) {
      throw asCommandError(e);
    }
    const deleted = (await session.deleteAccount(authKey)) ?? account.username;
    this.#forget();
    await session.quit();
    const { config } = this.#o.loaded;
    if (sameName(config.account, deleted)) {
      delete config.account;
      await this.#o.trust.save();
    }
    this.#o.emit({
      event: "account",
      action: "deleted",
      username: deleted,
      user_id: session.userId,
    });
    this.#o.emit({ event: "account", action: "logged_out" });
  }

  /** `/accounts <pattern>`: through the session, or on a fresh connection when logged out. */
  async accounts(pattern: string): Promise<AccountEntry[]> {
    if (this.#session?.ready) return await this.#session.accounts(pattern);
    try {
      const transport = await this.#connect();
      const channel = await PreHelloChannel.open(this.#channelOptions(transport));
      try {
        return await queryAccounts(channel, pattern);
      } finally {
        await channel.close();
      }
    } catch (e) {
      throw asCommandError(e);
    }
  }

  /** Ends the session, if any (CTRL_CLOSE, close 1000), and waits for pins to be saved. */
  async quit(): Promise<void> {
    const session = this.#session;
    this.#forget();
    await session?.quit();
    await this.#o.trust.flush();
  }

  /** Same as {@linkcode quit}. */
  async [Symbol.asyncDispose](): Promise<void> {
    await this.quit();
  }
}
