/**
 * The client between sessions: which identity is connected (the local one from the config, or
 * an account logged in to with a password), and the account life cycle: `/register`, `/login`,
 * `/logout`, `/passwd`, `/delete-account` and `/accounts`. Each login is a fresh connection and
 * a fresh {@linkcode ClientSession}; while logged out only `/login`, `/help` and `/quit` work.
 *
 * Secrets: passwords are asked through an {@linkcode Ask} (no echo on a terminal) and used only
 * to derive keys; an account's private key is decrypted in memory and never written to disk.
 *
 * @module
 */

import {
  type AccountEntry,
  authKeyFor,
  encodePublicKey,
  type JsonObject,
  type KdfParams,
  kdfParamsOf,
  type KeyEncoding,
  type KeyPair,
  type PrivkeyStore,
  sealPrivateKey,
  type Transport,
  usernameProblem,
} from "../shared/mod.ts";
import type { Clock } from "./clock.ts";
import type { CommandSession, SocialSession } from "./commands.ts";
import { type ChatHistory, PUBLIC_CONVERSATION } from "./chat_history.ts";
import { addLocalIdentity, checkDisplayName, type LoadedConfig } from "./config.ts";
import type { EventSink, ListedUser } from "./events.ts";
import { fetchKdfParams, login, PreHelloChannel, resumeLogin } from "./login.ts";
import type {
  Backoff,
  Identity,
  ServerGroupMember,
  SessionEnd,
  SigVariantChoice,
} from "./connection.ts";
import { CommandError, HelloError, ServerError } from "./errors.ts";
import type { Logger } from "./logger.ts";
import type { P2pListenOptions } from "./private_chat.ts";
import { ClientSession } from "./session.ts";
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
  /**
   * More servers (of the same server group), tried in order when the first cannot be reached
   * and after a drop; the config's `failover_servers` are added to them.
   */
  servers?: readonly string[];
  /** Opens a connection to a server. */
  connect: (url: string, signal?: AbortSignal) => Promise<Transport>;
  /** Wait before each round of reconnect attempts after the first (default exponential). */
  backoff?: Backoff;
  /** Rounds of reconnect attempts before giving up (default ∞; 0: a drop ends the session). */
  reconnectRounds?: number;
  /** Receives every event. */
  emit: EventSink;
  /** Asks for passwords. */
  ask: Ask;
  /** Debug output. */
  log: Logger;
  /** Time source. */
  clock: Clock;
  /** content_sig variant (`auto`: chosen per server). */
  sigVariant: SigVariantChoice;
  /** How to write the user's key (`auto`, the default: learned from the server). */
  keyEncoding?: KeyEncoding | "auto";
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
  /** Where to listen for private chats (`--p2p-host`, `--p2p-port`). */
  p2p?: P2pListenOptions;
  /** The messages kept on this device (absent with `--no-history`). */
  history?: ChatHistory;
  /** Kept messages shown again when a session starts (default 0: none). */
  replay?: number;
  /** The user's home folder, for `~` in `/file` paths. */
  home?: string;
}

/** The account of the current session. */
interface Account {
  username: string;
  /** The key blob with its KDF parameters, when known (after a login or `/register`). */
  store?: PrivkeyStore;
  /** The password's `auth_key` of a password login (memory only): logs in again after a drop. */
  authKey?: string;
}

function storeJson(store: PrivkeyStore): JsonObject {
  return { ...store };
}

/** The shortest password `/register` and `/passwd` accept (older, shorter ones still log in). */
export const MIN_PASSWORD_LENGTH = 8;

/** How many kept messages `/history` shows without a conversation. */
const HISTORY_SHOWN = 50;

/**
 * A path with a leading `~` or `~/` taken as the home folder (as a shell would).
 *
 * @example
 * ```ts
 * import { expandHome } from "./client_app.ts";
 * console.assert(expandHome("~/x.bin", "/home/ann") === "/home/ann/x.bin");
 * console.assert(expandHome("a~/x", "/home/ann") === "a~/x");
 * ```
 */
export function expandHome(path: string, home: string | undefined): string {
  if (home === undefined || home.length === 0) return path;
  if (path === "~") return home;
  if (path.startsWith("~/") || path.startsWith("~\\")) {
    return home.replace(/[\\/]+$/, "") + path.slice(1);
  }
  return path;
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
  /** The server the current (or next) session is connected to. */
  #url: string;

  /** Resolves when the current session is closed by the server or the network (not by us). */
  readonly ended: Promise<SessionEnd> = this.#ended.promise;

  /** Creates the client; nothing connects until a start method is called. */
  constructor(options: ClientAppOptions) {
    this.#o = options;
    this.#url = options.serverUrl;
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
      {
        userId: result.userId,
        displayName,
        keys: result.keys,
        account: result.username,
        accountSeq: result.seq,
      },
      { username: result.username, store: result.store, authKey: result.authKey },
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

  /** Every server to try: the given ones in order, then those the server group named. */
  #urls(): string[] {
    const all = [
      this.#o.serverUrl,
      ...(this.#o.servers ?? []),
      ...(this.#o.loaded.config.failover_servers ?? []),
    ];
    return all.filter((url, i) => all.indexOf(url) === i);
  }

  /** Connects to the first server that can be reached (it becomes the session's server). */
  async #connect(): Promise<Transport> {
    let failure: unknown;
    for (const url of this.#urls()) {
      try {
        const transport = await this.#o.connect(url);
        this.#url = url;
        return transport;
      } catch (e) {
        failure = e;
        this.#o.log.debug(`could not connect to ${url}: ${(e as Error).message}`);
      }
    }
    throw new HelloError("CONNECT", (failure as Error).message, 2);
  }

  /**
   * Before USER_HELLO on a connection after a drop: an account logged in to with a password
   * logs in again with the kept `auth_key` (no question asked); a key-file identity (also one
   * registered as an account) only says hello.
   */
  async #relogin(transport: Transport, url: string): Promise<void> {
    const account = this.#account;
    const session = this.#session;
    if (account?.authKey === undefined || !session || !this.#keys) return;
    const channel = await PreHelloChannel.open({
      ...this.#channelOptions(transport),
      serverUrl: url,
    });
    await resumeLogin(channel, {
      username: account.username,
      authKey: account.authKey,
      userId: session.userId,
      pubkey: encodePublicKey(this.#keys.publicKey),
    });
  }

  /**
   * The server group named in the ACK of the server at `url` (its other members): the whole
   * group is remembered in the config for the next run.
   */
  #rememberGroup(url: string, members: ServerGroupMember[]): void {
    const { config } = this.#o.loaded;
    const urls = [url, ...members.map((m) => m.url)].filter((u, i, all) => all.indexOf(u) === i);
    const known = config.failover_servers ?? [];
    if (urls.length === known.length && urls.every((u, i) => u === known[i])) return;
    config.failover_servers = urls;
    this.#o.trust.save().catch(() => {});
  }

  #channelOptions(transport: Transport) {
    return {
      transport,
      serverUrl: this.#url,
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
    const session: ClientSession = new ClientSession({
      transport,
      identity,
      serverUrl: this.#url,
      trust: o.trust,
      downloadsDir: o.downloadsDir(identity.userId),
      onEvent: (event) => {
        if (
          event.event === "error" && event.code === "NAME_IN_USE" && event.source === "server" &&
          this.#session === session
        ) {
          this.#nameLost();
        }
        o.history?.record(identity.userId, event);
        o.emit(event);
      },
      sigVariant: o.sigVariant,
      ...(o.keyEncoding !== undefined ? { keyEncoding: o.keyEncoding } : {}),
      clock: o.clock,
      log: o.log,
      configPath: o.loaded.path,
      ...(o.helloTimeoutMs !== undefined ? { helloTimeoutMs: o.helloTimeoutMs } : {}),
      ...(o.reconnectRounds === 0 ? {} : {
        reconnect: {
          dial: (url: string, signal: AbortSignal) => o.connect(url, signal),
          servers: this.#urls().filter((url) => url !== this.#url),
          beforeHello: (t: Transport, url: string) => this.#relogin(t, url),
          ...(o.backoff !== undefined ? { backoff: o.backoff } : {}),
          ...(o.reconnectRounds !== undefined ? { maxRounds: o.reconnectRounds } : {}),
        },
      }),
      onServerGroup: (members) => this.#rememberGroup(session.connection.serverUrl, members),
      ...(o.p2p !== undefined ? { p2p: o.p2p } : {}),
    });
    // What was said before (kept on this device) comes first, then the new session.
    this.#replay(identity.userId);
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
    if (!session || !session.open) {
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
    return this.#require().sendFile(target, expandHome(path, this.#o.home), signal);
  }

  /**
   * `/nick <name>`: the new display name is advertised to everyone online at once (USER_UPDATE,
   * see nick.ts) and saved in the config when the config is this identity's or account's.
   */
  async nick(name: string): Promise<void> {
    const session = this.#require();
    let clean: string;
    try {
      clean = checkDisplayName(name);
    } catch (e) {
      throw new CommandError((e as Error).message);
    }
    const outcome = await session.setDisplayName(clean);
    const { config } = this.#o.loaded;
    const own = config.user_id === session.userId ||
      (config.user_id === undefined && sameName(config.account, this.#account?.username));
    if (own && config.display_name !== clean) {
      config.display_name = clean;
      await this.#o.trust.save();
    }
    this.#o.emit({
      event: "info",
      text: outcome === "everywhere"
        ? `You are now known as ${clean}`
        : `You will be known as ${clean} from the next connection (this server cannot change names while connected)`,
    });
  }

  /**
   * `/history [user|public]`: the messages kept on this device, of one conversation (a user by
   * name or id, also one who is offline; `public` for the channel) or the latest of all.
   */
  history(target?: string): Promise<void> {
    const history = this.#o.history;
    if (!history) {
      throw new CommandError(
        "No messages are kept on this device (the client runs with --no-history)",
      );
    }
    const owner = this.#session?.userId ?? this.#o.loaded.config.user_id;
    if (owner === undefined) throw new CommandError("Not logged in; /login <username> first");
    let entries;
    let what = "";
    if (target === undefined) entries = history.recent(owner, HISTORY_SHOWN);
    else if (target.toLowerCase() === PUBLIC_CONVERSATION) {
      entries = history.conversation(owner, PUBLIC_CONVERSATION);
      what = " on the public channel";
    } else {
      const peer = this.#historyPeer(owner, target);
      entries = history.conversation(owner, peer.id);
      what = ` with ${peer.name}`;
    }
    if (entries.length === 0) {
      this.#o.emit({ event: "info", text: `No messages${what} are kept on this device` });
      return Promise.resolve();
    }
    for (const entry of entries) this.#o.emit({ ...entry, history: true });
    return Promise.resolve();
  }

  /** A conversation partner by name or id prefix: kept conversations first, then who is online. */
  #historyPeer(owner: string, text: string): { id: string; name: string } {
    const lower = text.toLowerCase();
    const peers = this.#o.history?.peers(owner) ?? [];
    const hits = peers.filter((p) => p.name.toLowerCase() === lower || p.id.startsWith(lower));
    if (hits.length === 1) return hits[0]!;
    const online = this.#session?.resolveUser(text);
    if (online) return { id: online, name: text };
    if (hits.length > 1) {
      throw new CommandError(
        `"${text}" is ambiguous: ${hits.map((p) => `${p.name} (${p.id})`).join(", ")}; use the id`,
      );
    }
    throw new CommandError(`No conversation with "${text}" is kept on this device`);
  }

  /** Shows the latest kept messages of `owner` when a session starts. */
  #replay(owner: string): void {
    const count = this.#o.replay ?? 0;
    const entries = count > 0 ? this.#o.history?.recent(owner, count) ?? [] : [];
    if (entries.length === 0) return;
    this.#o.emit({
      event: "info",
      text: `The last ${entries.length} messages, kept on this device (/history for more):`,
    });
    for (const entry of entries) this.#o.emit({ ...entry, history: true });
  }

  /** `/whoelse`, `/block`, `/broadcast`, `/random`, `/group`, private chats... */
  social(): SocialSession {
    return this.#require();
  }

  // ------------------------------------------------------------------------------------------
  // Accounts

  async #askSecret(prompt: string): Promise<string> {
    const answer = await this.#o.ask(prompt, { secret: true });
    if (answer === undefined) throw new CommandError("No password given; nothing changed");
    return answer;
  }

  /**
   * Asks for a new password twice (both answers are read, so a script's lines stay in step),
   * then checks it: at least {@linkcode MIN_PASSWORD_LENGTH} characters, typed the same twice.
   */
  async #newPassword(prompt: string): Promise<string> {
    const first = await this.#askSecret(prompt);
    const again = await this.#askSecret("Repeat the password: ");
    if ([...first].length < MIN_PASSWORD_LENGTH) {
      throw new CommandError(
        `The password is too short: use at least ${MIN_PASSWORD_LENGTH} characters; nothing changed`,
      );
    }
    if (again !== first) throw new CommandError("The passwords do not match; nothing changed");
    return first;
  }

  /** The session, connected now (not reconnecting): before asking for a password. */
  #requireConnected(): ClientSession {
    const session = this.#require();
    if (!session.ready) {
      throw new CommandError(
        "Not connected right now (reconnecting); try again once the client says it reconnected",
      );
    }
    return session;
  }

  /**
   * `/register <username>`: makes the connected identity an account with a password. Everything
   * that can be checked first is (the name, that it is free, the connection) before the
   * password is asked.
   */
  async register(username: string): Promise<void> {
    const session = this.#requireConnected();
    const problem = usernameProblem(username);
    if (problem) throw new CommandError(problem);
    if (this.#account) {
      throw new CommandError(
        `This identity is the account "${this.#account.username}" already; /passwd changes its password`,
      );
    }
    const taken = (await session.accounts(username)).find((a) => sameName(a.username, username));
    if (taken) {
      throw new ServerError(
        "NAME_IN_USE",
        `The name "${taken.username}" is already taken; choose another (/accounts lists names)`,
      );
    }
    const password = await this.#newPassword(
      `Password for the new account ${username} (at least ${MIN_PASSWORD_LENGTH} characters): `,
    );
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
    if (this.#session?.open && sameName(this.#account?.username, name)) {
      // Refused before a password is asked (in a script the next lines are commands).
      throw new CommandError(
        `You are logged in to "${this.#account!.username}" already; /logout first to log in again`,
      );
    }
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
    await session.quit("logout");
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
    const session = this.#requireConnected();
    const account = this.#requireAccount();
    const old = await this.#askSecret(`Current password for ${account.username}: `);
    const next = await this.#newPassword(
      `New password for ${account.username} (at least ${MIN_PASSWORD_LENGTH} characters): `,
    );
    let authKey: string;
    try {
      authKey = await authKeyFor(old, await this.#kdfParams(account));
    } catch (e) {
      throw asCommandError(e);
    }
    const { store, verifier } = await sealPrivateKey(this.#keys!.privateKey, next);
    await session.passwd(authKey, storeJson(store), verifier);
    account.store = store;
    // A reconnect logs in with the new password's auth_key from now on.
    if (account.authKey !== undefined) account.authKey = await authKeyFor(next, kdfParamsOf(store));
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
    const session = this.#requireConnected();
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

  /**
   * `/accounts <pattern>`: through the session. Servers list account names only to identified
   * connections, so logged out this is an error saying to log in first.
   */
  async accounts(pattern: string): Promise<AccountEntry[]> {
    const session = this.#session;
    if (!session?.open) {
      throw new CommandError("Not logged in; log in first (/login <username>) to list accounts");
    }
    return await session.accounts(pattern);
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
