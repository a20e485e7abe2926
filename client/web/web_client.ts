/**
 * The browser client between the page and the protocol: the browser counterpart of
 * client_app.ts. It logs in to an account (`LOGIN_START` → `LOGIN_PARAMS`, `LOGIN_PROOF` →
 * `LOGIN_OK`, the key unsealed in the page, then a signed USER_HELLO: login.ts and
 * connection.ts), or creates an identity (RSA-4096 generated in the page) and registers it
 * (REGISTER with `seq` and `record_sig`: accounts.ts), and runs one {@linkcode ClientSession}:
 * the terminal client's own session code, so presence, DMs, the public channel, files, key
 * pinning and reconnecting are the same code in both clients. What it reports goes to a
 * {@linkcode Store} as actions; the page renders the store.
 *
 * The password and the private key never leave the page: only the scrypt-derived `auth_key`
 * and the sealed key blob are sent, and the key is kept in memory only (never in storage).
 *
 * @module
 */

import {
  encodePublicKey,
  type KeyPair,
  rsa,
  sealPrivateKey,
  sha256Hex,
  type Transport,
  usernameProblem,
  webSocketTransport,
} from "../../shared/mod.ts";
import type { Identity } from "../connection.ts";
import type { ClientEvent } from "../events.ts";
import { CommandError, HelloError } from "../errors.ts";
import type { SaveFile } from "../file_transfer.ts";
import { login, PreHelloChannel, resumeLogin } from "../login.ts";
import { ClientSession } from "../session.ts";
import type { TrustStore } from "../trust_store.ts";
import { groupIdOf, PUBLIC, type Store } from "./state.ts";

/** Opens a connection to a server URL; rejects when it cannot. */
export type WebDialer = (url: string, signal?: AbortSignal) => Promise<Transport>;

/** How long a WebSocket may take to open. */
const OPEN_TIMEOUT_MS = 10_000;

/**
 * Opens a WebSocket and waits until it is open (or fails, or `signal` aborts).
 *
 * @example
 * ```ts ignore
 * const transport = await dialWebSocket("ws://127.0.0.1:8765");
 * ```
 */
export async function dialWebSocket(url: string, signal?: AbortSignal): Promise<Transport> {
  const ws = new WebSocket(url);
  const transport = webSocketTransport(ws);
  let timer: ReturnType<typeof setTimeout> | undefined;
  let onAbort: (() => void) | undefined;
  const opened = await new Promise<boolean>((done) => {
    ws.addEventListener("open", () => done(true), { once: true });
    ws.addEventListener("close", () => done(false), { once: true });
    timer = setTimeout(() => done(false), OPEN_TIMEOUT_MS);
    onAbort = () => done(false);
    if (signal?.aborted) done(false);
    signal?.addEventListener("abort", onAbort, { once: true });
  });
  clearTimeout(timer);
  if (onAbort) signal?.removeEventListener("abort", onAbort);
  if (!opened) {
    transport.close();
    throw new Error(`Could not connect to ${url}; is the server running?`);
  }
  return transport;
}

/**
 * The WebSocket URL of the server that served a page: `ws://host:port` (or `wss://` for an
 * https page), in the form pins are stored under.
 *
 * @example
 * ```ts
 * import { serverUrlOf } from "./web_client.ts";
 * console.assert(serverUrlOf({ protocol: "http:", host: "127.0.0.1:8765" }) === "ws://127.0.0.1:8765");
 * ```
 */
export function serverUrlOf(location: { protocol: string; host: string }): string {
  return `${location.protocol === "https:" ? "wss:" : "ws:"}//${location.host}`;
}

/** Options for {@linkcode WebClient}. */
export interface WebClientOptions {
  /** The server's WebSocket URL (see {@linkcode serverUrlOf}). */
  serverUrl: string;
  /** Pinned server and user keys (localStorage in the page). */
  trust: TrustStore;
  /** Receives what happens. */
  store: Store;
  /** Keeps a received, checked file and returns a URL to download it from. */
  keepFile: SaveFile;
  /** Opens connections (default {@linkcode dialWebSocket}). */
  dial?: WebDialer;
  /** Makes the key of a new identity (default RSA-4096 with WebCrypto). */
  generateKey?: () => Promise<KeyPair>;
}

/** The account the current session logged in to. */
interface Account {
  username: string;
  /** The password's `auth_key` of a password login (memory only): logs in again after a drop. */
  authKey?: string;
}

function explain(e: unknown): { code: string; text: string } {
  if (e instanceof HelloError) {
    // The terminal's advice about config files does not apply in a browser.
    return { code: e.code, text: e.message.replace(/, or use another config file[^;]*$/, "") };
  }
  if (e instanceof CommandError) return { code: "COMMAND", text: e.message };
  return { code: "ERROR", text: e instanceof Error ? e.message : String(e) };
}

/**
 * One browser tab's client.
 *
 * @example
 * ```ts ignore
 * const client = new WebClient({ serverUrl, trust, store, keepFile });
 * if (await client.login("alice", password)) await client.sendText("public", "hello");
 * ```
 */
export class WebClient {
  #o: WebClientOptions;
  #dial: WebDialer;
  #session: ClientSession | undefined;
  #account: Account | undefined;
  #keys: KeyPair | undefined;
  /** A key made for an account whose registration failed: tried again with the next name. */
  #spareKey: Promise<KeyPair> | undefined;

  /** Creates the client; nothing connects until {@linkcode login} or {@linkcode create}. */
  constructor(options: WebClientOptions) {
    this.#o = options;
    this.#dial = options.dial ?? dialWebSocket;
  }

  /** The current session, if logged in. */
  get session(): ClientSession | undefined {
    return this.#session;
  }

  /**
   * Logs in to an account: the password proves itself with its scrypt `auth_key`, the key blob
   * from `LOGIN_OK` is unsealed here, and a signed USER_HELLO follows. Resolves true once
   * connected; false (after reporting why) when refused.
   */
  async login(username: string, password: string): Promise<boolean> {
    const { store } = this.#o;
    const problem = usernameProblem(username);
    if (problem) return this.#failed({ code: "BAD_REQUEST", text: problem });
    if (password.length === 0) {
      return this.#failed({ code: "BAD_REQUEST", text: "Enter the password" });
    }
    await this.#endSession();
    store.dispatch({ type: "busy", text: `Logging in as ${username}…` });
    const url = this.#o.serverUrl;
    let transport: Transport;
    try {
      transport = await this.#dial(url);
    } catch (e) {
      return this.#failed(explain(e));
    }
    let channel: PreHelloChannel | undefined;
    let wrong: string | undefined;
    let asked = 0;
    try {
      channel = await PreHelloChannel.open({ transport, serverUrl: url, trust: this.#o.trust });
      store.dispatch({ type: "busy", text: "Checking the password…" });
      const result = await login(channel, username, {
        // One password per attempt: after a wrong one the page asks the person again.
        askPassword: () => Promise.resolve(asked++ === 0 ? password : undefined),
        onEvent: (event) => {
          if (event.event === "error") wrong = event.detail;
        },
      });
      store.dispatch({ type: "busy", text: "Connecting…" });
      await this.#start(transport, {
        userId: result.userId,
        displayName: result.username,
        keys: result.keys,
        account: result.username,
        accountSeq: result.seq,
      }, { username: result.username, authKey: result.authKey });
      store.dispatch({
        type: "event",
        event: {
          event: "account",
          action: "logged_in",
          username: result.username,
          user_id: result.userId,
        },
        at: Date.now(),
      });
      return true;
    } catch (e) {
      if (channel) await channel.close();
      else transport.close(1000, "bye");
      if (e instanceof HelloError && e.code === "NO_PASSWORD") {
        return this.#failed({
          code: "BAD_PASSWORD",
          text: wrong ?? "Wrong username or password",
        });
      }
      return this.#failed(explain(e), url);
    }
  }

  /**
   * Creates a new identity (an RSA-4096 key made in this page), connects with it and registers
   * it as the account `username` with `password`. Resolves true once registered; false (after
   * reporting why) otherwise.
   */
  async create(username: string, password: string, displayName?: string): Promise<boolean> {
    const { store } = this.#o;
    const problem = usernameProblem(username);
    if (problem) return this.#failed({ code: "BAD_REQUEST", text: problem });
    if (password.length < 8) {
      return this.#failed({
        code: "BAD_REQUEST",
        text: "Choose a password of at least 8 characters",
      });
    }
    await this.#endSession();
    store.dispatch({ type: "busy", text: "Making your RSA-4096 key (this takes a moment)…" });
    let keys: KeyPair;
    try {
      keys = await (this.#spareKey ??= (this.#o.generateKey ?? (() => rsa().generate()))());
    } catch (e) {
      this.#spareKey = undefined;
      return this.#failed(explain(e));
    }
    let transport: Transport;
    try {
      transport = await this.#dial(this.#o.serverUrl);
    } catch (e) {
      return this.#failed(explain(e));
    }
    const name = displayName?.trim() || username;
    try {
      store.dispatch({ type: "busy", text: "Connecting…" });
      await this.#start(transport, { userId: crypto.randomUUID(), displayName: name, keys }, {
        username,
      });
    } catch (e) {
      return this.#failed(explain(e), this.#o.serverUrl);
    }
    const session = this.#session!;
    try {
      store.dispatch({ type: "busy", text: "Sealing your key with the password…" });
      const { store: sealed, verifier } = await sealPrivateKey(keys.privateKey, password);
      store.dispatch({ type: "busy", text: "Registering the account…" });
      await session.register(username, { ...sealed }, verifier);
    } catch (e) {
      // The identity stays unregistered: leave, and keep the key for the next name tried.
      this.#forget();
      await session.quit();
      store.dispatch({ type: "closed", byUs: true });
      return this.#failed(explain(e));
    }
    this.#spareKey = undefined;
    store.dispatch({
      type: "event",
      event: { event: "account", action: "registered", username, user_id: session.userId },
      at: Date.now(),
    });
    return true;
  }

  /** Sends a text to `to` (a user id, or {@linkcode PUBLIC}); shown at once, then marked. */
  async sendText(to: string, text: string): Promise<void> {
    const { store } = this.#o;
    const session = this.#session;
    if (text.trim().length === 0) return;
    const id = store.takeId();
    store.dispatch({ type: "outgoing", id, to, text, at: Date.now() });
    if (!session?.open) {
      store.dispatch({ type: "outgoing_done", id, status: "failed", error: "Not connected" });
      return;
    }
    if (to === PUBLIC && session.users().every((u) => u.self)) {
      store.dispatch({
        type: "outgoing_done",
        id,
        status: "failed",
        error: "nobody else is online",
      });
      return;
    }
    const group = groupIdOf(to);
    const groupName = group === undefined ? undefined : store.state.groups[group]?.name;
    if (group !== undefined && groupName === undefined) {
      store.dispatch({ type: "outgoing_done", id, status: "failed", error: "unknown group" });
      return;
    }
    const waiting = !session.ready;
    try {
      if (to === PUBLIC) await session.sendPublic(text);
      else if (groupName !== undefined) {
        await session.group({ action: "send", name: groupName, text });
      } else await session.sendDirect(to, text);
      store.dispatch({ type: "outgoing_done", id, status: waiting ? "pending" : "sent" });
    } catch (e) {
      store.dispatch({ type: "outgoing_done", id, status: "failed", error: explain(e).text });
    }
  }

  /** Sends a file to `to` (a user id, or {@linkcode PUBLIC} for every online user). */
  async sendFile(to: string, name: string, data: Uint8Array): Promise<void> {
    const { store } = this.#o;
    const session = this.#session;
    const id = store.takeId();
    store.dispatch({
      type: "outgoing",
      id,
      to,
      text: `File "${name}" (${data.length} bytes)`,
      at: Date.now(),
    });
    if (!session?.open) {
      store.dispatch({ type: "outgoing_done", id, status: "failed", error: "Not connected" });
      return;
    }
    const waiting = !session.ready;
    try {
      const sha256 = await sha256Hex(data);
      await session.sendFileData(to === PUBLIC ? "public" : to, { name, data, sha256 });
      store.dispatch({ type: "outgoing_done", id, status: waiting ? "pending" : "sent" });
    } catch (e) {
      store.dispatch({ type: "outgoing_done", id, status: "failed", error: explain(e).text });
    }
  }

  /**
   * Finds a user by name, id prefix or account name (asking the server) for a new
   * conversation; resolves the user id, or undefined after reporting why not.
   */
  async findUser(text: string): Promise<string | undefined> {
    const session = this.#session;
    if (!session?.ready) {
      this.#o.store.dispatch({ type: "notice", level: "error", text: "Not connected" });
      return undefined;
    }
    try {
      return await session.findUser(text);
    } catch (e) {
      this.#o.store.dispatch({ type: "notice", level: "error", text: explain(e).text });
      return undefined;
    }
  }

  /** Blocks a user (a signed BLOCKS_SET: the servers refuse the user's messages). */
  block(userId: string): Promise<void> {
    return this.#command((session) => session.block(userId));
  }

  /** Lifts a block. */
  unblock(userId: string): Promise<void> {
    return this.#command((session) => session.unblock(userId));
  }

  /** Creates a group with the given members (names, ids or account names). */
  createGroup(name: string, members: string[]): Promise<void> {
    return this.#command((session) => session.group({ action: "create", name, users: members }));
  }

  /** Leaves a group. */
  leaveGroup(name: string): Promise<void> {
    return this.#command((session) => session.group({ action: "leave", name }));
  }

  /** Everyone online at any moment of the last `seconds` (reported as a notice). */
  whoElseSince(seconds: number): Promise<void> {
    return this.#command(async (session) => {
      const users = await session.whoElseSince(seconds);
      this.#report({ event: "whoelsesince", seconds, users });
    });
  }

  #report(event: ClientEvent): void {
    this.#o.store.dispatch({ type: "event", event, at: Date.now() });
  }

  async #command(run: (session: ClientSession) => Promise<void>): Promise<void> {
    const session = this.#session;
    if (!session?.ready) {
      this.#o.store.dispatch({ type: "notice", level: "error", text: "Not connected" });
      return;
    }
    try {
      await run(session);
    } catch (e) {
      this.#o.store.dispatch({ type: "notice", level: "error", text: explain(e).text });
    }
  }

  /** Ends the session (CTRL_CLOSE, close 1000) and forgets the key. */
  async logout(): Promise<void> {
    await this.#endSession();
    this.#o.store.dispatch({ type: "closed", byUs: true });
  }

  async #endSession(): Promise<void> {
    const session = this.#session;
    this.#forget();
    await session?.quit("logout");
  }

  #forget(): void {
    this.#session = undefined;
    this.#keys = undefined;
    this.#account = undefined;
  }

  #failed(why: { code: string; text: string }, server?: string): false {
    this.#o.store.dispatch({
      type: "login_failed",
      code: why.code,
      text: why.text,
      ...(server !== undefined ? { server } : {}),
    });
    return false;
  }

  /** Says USER_HELLO on `transport` as `identity` and keeps the session. */
  async #start(transport: Transport, identity: Identity, account: Account): Promise<void> {
    const o = this.#o;
    const session: ClientSession = new ClientSession({
      transport,
      identity,
      serverUrl: o.serverUrl,
      trust: o.trust,
      downloadsDir: "",
      saveFile: o.keepFile,
      onEvent: (event) => o.store.dispatch({ type: "event", event, at: Date.now() }),
      onStatus: (status) => {
        if (status.status === "ready") o.store.dispatch({ type: "server", url: status.server });
      },
      reconnect: {
        dial: (url, signal) => this.#dial(url, signal),
        beforeHello: (t, url) => this.#relogin(session, t, url),
      },
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
    // The groups and the block list live on the servers: ask for them once.
    void session.group({ action: "list" }).catch(() => {});
    void session.blockList().then(
      (blocked) => this.#report({ event: "blocks", action: "list", blocked }),
      () => {},
    );
    void session.closed.then((end) => {
      if (this.#session !== session || end.byUs) return;
      this.#forget();
      o.store.dispatch({
        type: "closed",
        byUs: false,
        reason: `The connection closed (${end.code}${
          end.reason ? `: ${end.reason}` : ""
        }); log in again`,
      });
    });
  }

  /**
   * Before USER_HELLO on a connection after a drop: a password login logs in again with the
   * kept `auth_key` (as the terminal client does); an identity created here only says hello.
   */
  async #relogin(session: ClientSession, transport: Transport, url: string): Promise<void> {
    const account = this.#account;
    if (account?.authKey === undefined || this.#session !== session || !this.#keys) return;
    const channel = await PreHelloChannel.open({ transport, serverUrl: url, trust: this.#o.trust });
    await resumeLogin(channel, {
      username: account.username,
      authKey: account.authKey,
      userId: session.userId,
      pubkey: encodePublicKey(this.#keys.publicKey),
    });
  }
}
