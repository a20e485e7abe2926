/**
 * One connection of a user to a server: the USER_HELLO handshake with server-key pinning,
 * signature checks on every frame, presence, end-to-end encrypted DMs, public messages and
 * files, and sender-key pinning. It sees only a {@linkcode Transport}, so tests drive it through
 * an in-memory pair with a scripted server.
 *
 * @module
 */

import {
  type AccountEntry,
  type ContentFields,
  type ContentSigVariant,
  decodeBase64Url,
  decodeFrame,
  decryptBlock,
  decryptText,
  encodePublicKey,
  encryptText,
  type Envelope,
  fingerprint,
  type Frame,
  importPublicKeyText,
  isUuid,
  type JsonObject,
  type KeyPair,
  type KeyWrap,
  parseEnvelope,
  type PublicKey,
  samePublicKey,
  serializeEnvelope,
  signContent,
  signedEnvelope,
  splitForOaep,
  type Transport,
  usernameProblem,
  verifyContent,
  verifyEnvelope,
} from "../shared/mod.ts";
import { type Clock, systemClock } from "./clock.ts";
import {
  type ClientEvent,
  type EventSink,
  type FileEvent,
  type ListedUser,
  shortId,
} from "./events.ts";
import {
  FileReceiver,
  FileTransferError,
  type OutgoingFile,
  readFileForSending,
  sendFileFrames,
} from "./file_transfer.ts";
import { ConnectionClosedError, FramePacer, type PacerOptions } from "./pacer.ts";
import type { TrustStore } from "./trust_store.ts";

/** The `client` string sent in USER_HELLO. */
export const CLIENT_NAME = "socp/0.1";

/** Who the user is. */
export interface Identity {
  /** The user's UUID. */
  userId: string;
  /** Name shown to others. */
  displayName: string;
  /** The user's RSA-4096 key pair. */
  keys: KeyPair;
  /** The account name, when the identity came from an account login. */
  account?: string;
}

/** Debug output (enabled with `SOCP_DEBUG=1`). */
export interface Logger {
  /** Writes one debug line. */
  debug(message: string): void;
}

/** A logger that drops everything. */
export const silentLogger: Logger = { debug(): void {} };

/** The handshake failed; `exitCode` is 1 for a refusal and 2 for a lost connection. */
export class HelloError extends Error {
  /** SOCP error code from the server, or a client code (SERVER_KEY_CHANGED, CONNECTION_CLOSED). */
  readonly code: string;
  /** Process exit code to use. */
  readonly exitCode: number;
  /** True when the server sent the code (an ERROR frame). */
  readonly fromServer: boolean;
  /** Creates the error. */
  constructor(code: string, message: string, exitCode = 1, fromServer = false) {
    super(message);
    this.name = "HelloError";
    this.code = code;
    this.exitCode = exitCode;
    this.fromServer = fromServer;
  }
}

/** A command could not be carried out; the message is meant for the user. */
export class CommandError extends Error {
  /** Creates the error. */
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = "CommandError";
  }
}

/** The server refused a command with an ERROR frame; `code` is its code. */
export class ServerError extends CommandError {
  /** The SOCP error code. */
  readonly code: string;
  /** Creates the error. */
  constructor(code: string, message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = "ServerError";
    this.code = code;
  }
}

/** How a session ended. */
export interface SessionEnd {
  /** WebSocket close code. */
  code: number;
  /** Close reason. */
  reason: string;
  /** True when this client closed it (`/quit`). */
  byUs: boolean;
}

/** Options for {@linkcode ClientSession}. */
export interface ClientSessionOptions {
  /** The connection (e.g. `webSocketTransport(new WebSocket(url))`). */
  transport: Transport;
  /** The user. */
  identity: Identity;
  /** Server URL, the key under which the server key is pinned. */
  serverUrl: string;
  /** Pinned keys. */
  trust: TrustStore;
  /** Folder for received files. */
  downloadsDir: string;
  /** Receives every event. */
  onEvent: EventSink;
  /** content_sig variant to sign with (default A). */
  sigVariant?: ContentSigVariant;
  /** Time source (default the system clock). */
  clock?: Clock;
  /** Debug logger. */
  log?: Logger;
  /** Wait this long for the USER_HELLO_OK ACK before going on unpinned (default 2000 ms). */
  helloTimeoutMs?: number;
  /** Wait this long for LIST_RESPONSE / PUBKEY_RESPONSE (default 3000 ms). */
  requestTimeoutMs?: number;
  /** Outgoing rate limits. */
  pacing?: PacerOptions;
  /** Config file path, named in messages that tell the user how to fix a pin. */
  configPath?: string;
}

interface Presence {
  display_name?: string;
  pubkey?: string;
  server_id?: string;
}

interface Waiter {
  match(frame: Frame): boolean;
  resolve(frame: Frame | undefined): void;
  /** A matching ERROR is the answer to this request: it is not reported as an event too. */
  claim?: boolean;
}

/** Watches for ACK QUEUED frames about one recipient while a send is in progress. */
interface QueueWatch {
  userId: string;
  acks: number;
}

/** ERROR codes that answer an account request (REGISTER, PASSWD, DELETE_ACCOUNT). */
const ACCOUNT_ERRORS: ReadonlySet<string> = new Set([
  "NAME_IN_USE",
  "BAD_REQUEST",
  "BAD_PASSWORD",
  "LOGIN_BLOCKED",
  "NOT_LOGGED_IN",
  "USER_NOT_FOUND",
  "UNKNOWN_TYPE",
  "BAD_FRAME",
  "INTERNAL_ERROR",
]);

/** How long an account request may wait for its answer. */
const ACCOUNT_TIMEOUT_MS = 10_000;

type State = "new" | "hello" | "ready" | "failed" | "closing" | "closed";

const REPLAY_CACHE = 4096;
const UUID_IN_TEXT = /[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}/i;

function message(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}

function numberField(p: JsonObject, field: string): number | undefined {
  const v = p[field];
  return typeof v === "number" && Number.isFinite(v) ? v : undefined;
}

function senderOf(env: Envelope): string {
  const s = env.payload["sender"];
  return typeof s === "string" && s.length > 0 ? s : env.from;
}

/**
 * A client's session with its server.
 *
 * @example
 * ```ts ignore
 * await using session = new ClientSession({
 *   transport: webSocketTransport(new WebSocket(url)),
 *   identity, serverUrl: url, trust, downloadsDir, onEvent: console.log,
 * });
 * await session.start();              // USER_HELLO, waits for the ACK and pins the server key
 * await session.sendDirect("bob", "hi");
 * await session.quit();
 * ```
 */
export class ClientSession implements AsyncDisposable {
  #t: Transport;
  #me: Identity;
  #myPub: string;
  #url: string;
  #trust: TrustStore;
  #emit: EventSink;
  #clock: Clock;
  #log: Logger;
  #variant: ContentSigVariant;
  #helloTimeoutMs: number;
  #requestTimeoutMs: number;
  #configHint: string;
  #pacer: FramePacer;
  #receiver: FileReceiver;

  #state: State = "new";
  #serverKey: PublicKey | undefined;
  #serverId: string | undefined;
  #helloBuffer: Envelope[] = [];
  #helloTimedOut = false;
  #hello: { resolve(): void; reject(e: Error): void } | undefined;
  #online: Map<string, Presence> = new Map();
  #names: Map<string, string> = new Map();
  #waiters: Set<Waiter> = new Set();
  #keyRequests: Set<string> = new Set();
  #lastTs = 0;
  #seen: Set<string> = new Set();
  #warnedKeys: Set<string> = new Set();
  #groupVersion: number | undefined;
  #chain: Promise<void> = Promise.resolve();
  #loop: Promise<void> | undefined;
  #byUs = false;
  #queueWatches: Set<QueueWatch> = new Set();
  #unflushed = 0;
  #ops: AbortController = new AbortController();

  /** Resolves when the connection has closed and every frame received before was handled. */
  readonly closed: Promise<SessionEnd>;

  /** Creates a session; nothing is sent until {@linkcode ClientSession.start}. */
  constructor(options: ClientSessionOptions) {
    this.#t = options.transport;
    this.#me = { ...options.identity };
    this.#myPub = encodePublicKey(options.identity.keys.publicKey);
    this.#url = options.serverUrl;
    this.#trust = options.trust;
    this.#emit = options.onEvent;
    this.#clock = options.clock ?? systemClock;
    this.#log = options.log ?? silentLogger;
    this.#variant = options.sigVariant ?? "A";
    this.#helloTimeoutMs = options.helloTimeoutMs ?? 2000;
    this.#requestTimeoutMs = options.requestTimeoutMs ?? 3000;
    this.#configHint = options.configPath ? ` in "${options.configPath}"` : " in the config file";
    this.#pacer = new FramePacer(this.#t, this.#clock, options.pacing);
    this.#receiver = new FileReceiver({
      privateKey: options.identity.keys.privateKey,
      downloadsDir: options.downloadsDir,
      now: () => this.#clock.now(),
      onProgress: (sender, manifest, percent) =>
        this.#emit({
          event: "file_progress",
          direction: "receive",
          name: manifest.name,
          peer: sender,
          percent,
        }),
    });
    // Resolved once every frame that arrived before the close was handled (an ERROR that
    // explains the close is reported before the close itself).
    this.closed = this.#t.closed.then(async (info) => {
      await this.#loop;
      return { ...info, byUs: this.#byUs };
    });
  }

  /** The user's id. */
  get userId(): string {
    return this.#me.userId;
  }

  /** The server's id (from its ACK or the pin), if known. */
  get serverId(): string | undefined {
    return this.#serverId;
  }

  /** True when the server key is pinned and every frame's signature is checked. */
  get pinned(): boolean {
    return this.#serverKey !== undefined;
  }

  /** The account name this session was logged in with, if any. */
  get account(): string | undefined {
    return this.#me.account;
  }

  /** True once the server accepted the hello and until the connection closes. */
  get ready(): boolean {
    return this.#state === "ready";
  }

  /** The public-channel key version last unwrapped, if any. */
  get publicChannelVersion(): number | undefined {
    return this.#groupVersion;
  }

  /**
   * Sends USER_HELLO and waits for the server's verdict. Resolves once ready (after the
   * `ready` event); throws {@linkcode HelloError} when refused or disconnected.
   */
  async start(): Promise<void> {
    if (this.#state !== "new") throw new Error("ClientSession.start() was already called");
    this.#state = "hello";
    const pin = this.#trust.serverPin(this.#url);
    if (pin) {
      try {
        this.#serverKey = await importPublicKeyText(pin.pubkey);
        this.#serverId = pin.server_id;
      } catch (e) {
        this.#state = "failed";
        throw new HelloError(
          "CONFIG",
          `The server key pinned for ${this.#url}${this.#configHint} is invalid (${
            message(e)
          }); remove "${this.#url}" from "servers" there`,
        );
      }
    }
    const done = new Promise<void>((resolve, reject) => (this.#hello = { resolve, reject }));
    const hello = await signedEnvelope(this.#me.keys.privateKey, {
      type: "USER_HELLO",
      from: this.#me.userId,
      to: this.#serverId ?? "server",
      ts: this.#nextTs(),
      payload: {
        client: CLIENT_NAME,
        pubkey: this.#myPub,
        enc_pubkey: this.#myPub,
        meta: { display_name: this.#me.displayName },
      },
    });
    this.#t.send(serializeEnvelope(hello));
    this.#loop = this.#readLoop();
    const stop = new AbortController();
    const timer = this.#helloTimer(stop.signal);
    try {
      await done;
    } finally {
      stop.abort();
      await timer;
    }
  }

  /** Online users (from presence and LIST_RESPONSE) including yourself, sorted by name. */
  users(): ListedUser[] {
    const out: ListedUser[] = [{
      user_id: this.#me.userId,
      display_name: this.#me.displayName,
      self: true,
    }];
    for (const id of this.#online.keys()) {
      if (id !== this.#me.userId) {
        out.push({ user_id: id, display_name: this.#nameOf(id), self: false });
      }
    }
    return out.sort((a, b) =>
      a.display_name.toLowerCase().localeCompare(b.display_name.toLowerCase()) ||
      (a.user_id < b.user_id ? -1 : a.user_id > b.user_id ? 1 : 0)
    );
  }

  /** Sends LIST_REQUEST, merges the answer (if any comes) and returns {@linkcode users}. */
  async list(): Promise<ListedUser[]> {
    this.#requireReady();
    await this.#request("LIST_REQUEST", {}, (f) => f.type === "LIST_RESPONSE");
    return this.users();
  }

  /**
   * Finds a user id by id, display name (case-insensitive) or id prefix among online users.
   * Returns undefined when nobody matches; throws {@linkcode CommandError} when ambiguous.
   */
  resolveUser(text: string): string | undefined {
    const wanted = text.trim();
    if (isUuid(wanted)) return wanted;
    const lower = wanted.toLowerCase();
    const all = this.users();
    const pick = (list: ListedUser[]): string | undefined => {
      if (list.length === 1) return list[0]!.user_id;
      if (list.length > 1) {
        throw new CommandError(
          `"${wanted}" is ambiguous: ${
            list.map((u) => `${u.display_name} (${u.user_id})`).join(", ")
          }; use the id`,
        );
      }
      return undefined;
    };
    const byName = pick(all.filter((u) => u.display_name.toLowerCase() === lower));
    if (byName) return byName;
    if (/^[0-9a-f-]{4,}$/i.test(wanted)) {
      return pick(all.filter((u) => u.user_id.toLowerCase().startsWith(lower)));
    }
    return undefined;
  }

  /**
   * Like {@linkcode resolveUser}, refreshing the list once when nobody matches; then, for a
   * user who is not online, looks the text up as an account name (ACCOUNTS_REQUEST), so DMs
   * and files can go to offline account holders (the server queues them).
   */
  async findUser(text: string): Promise<string> {
    const found = this.resolveUser(text);
    if (found) return found;
    await this.list();
    const again = this.resolveUser(text);
    if (again) return again;
    const byAccount = await this.#findAccount(text.trim());
    if (byAccount) return byAccount;
    throw new CommandError(
      `Unknown user "${text}"; /list shows who is online, /accounts <pattern> lists accounts`,
    );
  }

  async #findAccount(name: string): Promise<string | undefined> {
    // Account names hold no glob characters, so the name itself is an exact pattern.
    if (usernameProblem(name) !== undefined) return undefined;
    let accounts: AccountEntry[];
    try {
      accounts = await this.accounts(name);
    } catch (e) {
      this.#log.debug(`account lookup of "${name}" failed: ${message(e)}`);
      return undefined;
    }
    const lower = name.toLowerCase();
    const hit = accounts.find((a) => a.username.toLowerCase() === lower);
    if (!hit) return undefined;
    if (!this.#names.has(hit.user_id)) this.#names.set(hit.user_id, hit.username);
    return hit.user_id;
  }

  /**
   * `/accounts`: account names matching a glob (`*`, `?`, `[...]`) or `/regex/`. Throws
   * {@linkcode ServerError} (BAD_REQUEST) for a malformed pattern.
   */
  async accounts(pattern: string): Promise<AccountEntry[]> {
    this.#requireReady();
    const reply = await this.#request(
      "ACCOUNTS_REQUEST",
      { pattern },
      (f) =>
        (f.type === "ACCOUNTS_RESPONSE" && f.p.pattern === pattern) ||
        (f.type === "ERROR" && (f.p.code === "BAD_REQUEST" || f.p.code === "UNKNOWN_TYPE")),
      { claim: true },
    );
    return accountsAnswer(reply);
  }

  /** REGISTER: makes this identity an account; resolves on `ACK REGISTER_OK`. */
  async register(username: string, privkeyStore: JsonObject, verifier: string): Promise<void> {
    await this.#accountRequest("REGISTER", {
      username,
      privkey_store: privkeyStore,
      verifier,
    }, "REGISTER_OK");
    this.#me.account = username;
  }

  /** PASSWD: replaces the stored key blob and verifier; resolves on `ACK PASSWD_OK`. */
  async passwd(authKey: string, privkeyStore: JsonObject, verifier: string): Promise<void> {
    await this.#accountRequest("PASSWD", {
      auth_key: authKey,
      privkey_store: privkeyStore,
      verifier,
    }, "PASSWD_OK");
  }

  /**
   * DELETE_ACCOUNT: resolves on `ACK DELETE_OK` (with the deleted name); the server then
   * closes the connection, which counts as closed by us.
   */
  async deleteAccount(authKey: string): Promise<string | undefined> {
    this.#byUs = true;
    try {
      const ack = await this.#accountRequest("DELETE_ACCOUNT", { auth_key: authKey }, "DELETE_OK");
      const name = ack.env.payload["username"];
      delete this.#me.account;
      return typeof name === "string" ? name : undefined;
    } catch (e) {
      this.#byUs = false;
      throw e;
    }
  }

  async #accountRequest(type: string, payload: JsonObject, okRef: string): Promise<Frame> {
    this.#requireReady();
    const reply = await this.#request(
      type,
      payload,
      (f) =>
        (f.type === "ACK" && f.p.msg_ref === okRef) ||
        (f.type === "ERROR" && ACCOUNT_ERRORS.has(f.p.code)),
      { claim: true, timeoutMs: ACCOUNT_TIMEOUT_MS },
    );
    if (reply === undefined) {
      throw new CommandError(
        this.#state === "ready"
          ? `The server did not answer the ${type} request`
          : `No answer to ${type}: the connection closed`,
      );
    }
    if (reply.type === "ERROR") {
      throw new ServerError(reply.p.code, reply.p.detail || `${type} refused`);
    }
    return reply;
  }

  /** `/tell`: sends `text` as one or more MSG_DIRECT frames. */
  async sendDirect(target: string, text: string): Promise<void> {
    this.#requireReady();
    if (text.length === 0) throw new CommandError("Nothing to send");
    const to = await this.findUser(target);
    const key = await this.#keyFor(to);
    const pieces = splitForOaep(text);
    const watch = this.#watchQueue(to);
    try {
      for (const piece of pieces) {
        await this.#sendContent("MSG_DIRECT", to, key, piece, {});
      }
      // For a user who is not online, wait for the server's verdict (ACK QUEUED or an error),
      // so the user hears once per message that it was queued.
      if (watch) await this.#barrier();
      this.#emit({
        event: "sent",
        kind: "dm",
        to,
        to_name: this.#nameOf(to),
        recipients: 1,
        parts: pieces.length,
      });
      if (watch && watch.acks > 0) {
        this.#emit({ event: "queued", kind: "dm", to, to_name: this.#nameOf(to) });
      }
    } finally {
      if (watch) this.#queueWatches.delete(watch);
    }
  }

  /** Starts counting ACK QUEUED for a recipient who is not online (undefined if online). */
  #watchQueue(userId: string): QueueWatch | undefined {
    if (userId === this.#me.userId || this.#online.has(userId)) return undefined;
    const watch = { userId, acks: 0 };
    this.#queueWatches.add(watch);
    return watch;
  }

  #onQueued(payload: JsonObject): void {
    const userId = typeof payload["user_id"] === "string" ? payload["user_id"] : "";
    let watched = false;
    for (const w of this.#queueWatches) {
      if (w.userId === userId) {
        w.acks++;
        watched = true;
      }
    }
    if (watched) return;
    this.#emit({ event: "queued", kind: "message", to: userId, to_name: this.#nameOf(userId) });
  }

  /** `/all`: sends `text` to every other online user, encrypted for each. */
  async sendPublic(text: string): Promise<void> {
    this.#requireReady();
    if (text.length === 0) throw new CommandError("Nothing to send");
    const members = this.#others();
    if (members.length === 0) {
      this.#emit({ event: "info", text: "No one else is online; the message was not sent" });
      return;
    }
    const pieces = splitForOaep(text);
    let sent = 0;
    for (const to of members) {
      let key: PublicKey;
      try {
        key = await this.#keyFor(to);
      } catch (e) {
        this.#warn(`Public message not sent to ${this.#who(to)}: ${message(e)}`);
        continue;
      }
      for (const piece of pieces) {
        await this.#sendContent("MSG_PUBLIC_CHANNEL", to, key, piece, { group_id: "public" });
      }
      sent++;
    }
    if (sent === 0) throw new CommandError("The public message reached nobody");
    this.#emit({
      event: "sent",
      kind: "all",
      to: "public",
      to_name: "public",
      recipients: sent,
      parts: pieces.length,
    });
  }

  /**
   * `/file`: sends a file to a user, or to every other online user when `target` is `public`.
   * Aborts between chunks when `signal` aborts or the session closes.
   */
  async sendFile(target: string, path: string, signal?: AbortSignal): Promise<void> {
    this.#requireReady();
    const isPublic = target === "public" || target === "*";
    let file: OutgoingFile;
    try {
      file = await readFileForSending(path);
    } catch (e) {
      if (e instanceof FileTransferError) throw new CommandError(e.message, { cause: e });
      throw e;
    }
    const recipients = isPublic ? this.#others() : [await this.findUser(target)];
    if (recipients.length === 0) {
      this.#emit({ event: "info", text: "No one else is online; the file was not sent" });
      return;
    }
    const abort = signal ? AbortSignal.any([signal, this.#ops.signal]) : this.#ops.signal;
    const total = Math.max(1, file.data.length * recipients.length);
    let lastPercent = -1;
    const progress = (done: number): void => {
      const percent = Math.floor((done * 100) / total);
      if (percent === lastPercent) return;
      lastPercent = percent;
      this.#emit({
        event: "file_progress",
        direction: "send",
        name: file.name,
        peer: isPublic ? "public" : recipients[0]!,
        percent,
      });
    };
    let chunks = 0;
    let sent = 0;
    const watch = isPublic ? undefined : this.#watchQueue(recipients[0]!);
    try {
      for (const [i, to] of recipients.entries()) {
        let key: PublicKey;
        try {
          key = await this.#keyFor(to);
        } catch (e) {
          if (!isPublic) throw e;
          this.#warn(`File not sent to ${this.#who(to)}: ${message(e)}`);
          continue;
        }
        chunks = await sendFileFrames({
          file,
          key,
          mode: isPublic ? "public" : "dm",
          signal: abort,
          send: (type, payload) => this.#sendFrame(type, to, payload, abort),
          onProgress: (bytes) => progress(i * file.data.length + bytes),
        });
        sent++;
      }
      if (sent === 0) throw new CommandError("The file reached nobody");
      // Report it sent once the server has taken every chunk (and said so by answering).
      if (!(await this.#barrier())) {
        this.#warn(`The server did not confirm that it took all of "${file.name}"`);
      }
      progress(total);
      const to = isPublic ? "public" : recipients[0]!;
      this.#emit({
        event: "sent",
        kind: "file",
        to,
        to_name: isPublic ? "public" : this.#nameOf(to),
        recipients: sent,
        parts: chunks,
        name: file.name,
        size: file.data.length,
      });
      if (watch && watch.acks > 0) {
        this.#emit({
          event: "queued",
          kind: "file",
          to,
          to_name: this.#nameOf(to),
          name: file.name,
        });
      }
    } finally {
      if (watch) this.#queueWatches.delete(watch);
    }
  }

  /**
   * Ends the session: CTRL_CLOSE, then a WebSocket close with code 1000, and waits (briefly)
   * for the close to complete and the pins to be saved.
   */
  async quit(): Promise<void> {
    if (this.#state === "new") this.#state = "closed";
    if (this.#state === "ready" && this.#unflushed > 0) {
      // Make sure the server has taken everything we sent before we hang up.
      if (this.#unflushed > 200) {
        this.#emit({
          event: "info",
          text: `Waiting for the server to take the last ${this.#unflushed} frames`,
        });
      }
      await this.#barrier().catch(() => false);
    }
    if (this.#state !== "closing" && this.#state !== "closed") {
      for (const { sender, manifest } of this.#receiver.active()) {
        this.#warn(
          `Incoming file "${manifest.name}" from ${this.#who(sender)} was not complete; discarded`,
        );
      }
      this.#state = "closing";
      this.#byUs = true;
      this.#ops.abort(new ConnectionClosedError("The session is closing"));
      if (this.#t.open) {
        this.#t.send(serializeEnvelope({
          type: "CTRL_CLOSE",
          from: this.#me.userId,
          to: this.#serverId ?? "server",
          ts: this.#nextTs(),
          payload: {},
        }));
        await this.#drain();
        this.#t.close(1000, "bye");
      }
    }
    const stop = new AbortController();
    const finished = await Promise.race([
      this.#t.closed.then(() => true),
      this.#clock.sleep(3000, stop.signal).then(() => false),
    ]);
    stop.abort();
    if (finished) await this.#loop;
    await this.#trust.flush();
  }

  /** Same as {@linkcode quit}. */
  async [Symbol.asyncDispose](): Promise<void> {
    await this.quit();
  }

  // ------------------------------------------------------------------------------------------
  // Receiving

  async #readLoop(): Promise<void> {
    try {
      for await (const text of this.#t) {
        await this.#serial(() => this.#onText(text));
      }
    } catch (e) {
      this.#log.debug(`read loop ended: ${message(e)}`);
    } finally {
      await this.#chain;
      const previous = this.#state;
      this.#state = "closed";
      this.#ops.abort(new ConnectionClosedError());
      for (const w of this.#waiters) w.resolve(undefined);
      this.#waiters.clear();
      if (previous === "hello") {
        const info = await this.#t.closed;
        this.#hello?.reject(
          new HelloError(
            "CONNECTION_CLOSED",
            `Connection closed (${info.code}) before the server accepted us`,
            2,
          ),
        );
      }
    }
  }

  #serial(fn: () => Promise<void> | void): Promise<void> {
    this.#chain = this.#chain.then(fn).catch((e) => {
      this.#log.debug(`handler failed: ${e instanceof Error ? e.stack : String(e)}`);
      this.#warn(`Internal error while handling a frame: ${message(e)}`);
    });
    return this.#chain;
  }

  async #helloTimer(signal: AbortSignal): Promise<void> {
    await this.#clock.sleep(this.#helloTimeoutMs, signal);
    if (signal.aborted) return;
    this.#helloTimedOut = true;
    if (this.#helloBuffer.length === 0) {
      // Nothing at all yet: give the server a while longer to say anything.
      await this.#clock.sleep(this.#helloTimeoutMs * 4, signal);
      if (signal.aborted) return;
    }
    await this.#serial(() => this.#finishHello());
  }

  async #onText(text: string): Promise<void> {
    let env: Envelope;
    try {
      env = parseEnvelope(text);
    } catch (e) {
      this.#warn(`Dropped a malformed frame: ${message(e)}`);
      return;
    }
    // After a refusal, or once we are closing, nothing more is processed.
    if (this.#state === "failed" || this.#state === "closing") return;
    if (this.#state === "hello") return await this.#onHelloFrame(env);
    await this.#accept(env);
  }

  async #onHelloFrame(env: Envelope): Promise<void> {
    if (env.type === "ACK" && env.payload["msg_ref"] === "USER_HELLO_OK") {
      return await this.#onHelloAck(env);
    }
    if (env.type === "ERROR") {
      const code = typeof env.payload["code"] === "string" ? env.payload["code"] : "ERROR";
      const detail = typeof env.payload["detail"] === "string" && env.payload["detail"]
        ? env.payload["detail"]
        : "The server refused the connection";
      const hint = code === "NAME_IN_USE"
        ? "; close the other session, or use another config file for another identity"
        : "";
      this.#failHello(new HelloError(code, detail + hint, 1, true));
      return;
    }
    if (this.#helloBuffer.length < 10_000) this.#helloBuffer.push(env);
    if (this.#helloTimedOut) await this.#finishHello();
  }

  async #onHelloAck(env: Envelope): Promise<void> {
    const p = env.payload;
    const serverPub = typeof p["server_pub"] === "string" && p["server_pub"]
      ? p["server_pub"]
      : undefined;
    const serverId = typeof p["server_id"] === "string" && p["server_id"]
      ? p["server_id"]
      : env.from;
    const pin = this.#trust.serverPin(this.#url);
    if (serverPub === undefined) {
      if (this.#serverKey && !(await verifyEnvelope(this.#serverKey, env))) {
        this.#warn("Dropped the server's ACK: it is not signed by the pinned server key");
        return;
      }
      return await this.#finishHello();
    }
    if (pin && !samePublicKey(pin.pubkey, serverPub)) {
      const old = await this.#fp(pin.pubkey);
      const now = await this.#fp(serverPub);
      this.#failHello(
        new HelloError(
          "SERVER_KEY_CHANGED",
          `SERVER KEY CHANGED for ${this.#url}! Pinned key fp ${old}, the server now presents fp ${now}. ` +
            `This may be an attack (or the server got a new key); refusing to continue. If the change ` +
            `is expected, remove "${this.#url}" from "servers"${this.#configHint}`,
        ),
      );
      return;
    }
    let key: PublicKey;
    try {
      key = await importPublicKeyText(serverPub);
    } catch (e) {
      this.#warn(`The server's ACK carries an unusable key (${message(e)}); ignoring it`);
      return await this.#finishHello();
    }
    if (!(await verifyEnvelope(key, env))) {
      this.#warn("Dropped the server's ACK: it is not signed by the key it carries");
      return;
    }
    if (!pin) {
      this.#trust.pinServer(this.#url, { server_id: serverId, pubkey: encodePublicKey(key) });
      this.#emit({
        event: "info",
        text: `Pinned the key of server ${shortId(serverId)} (fp ${await fingerprint(
          key,
        )}) for ${this.#url}`,
      });
    } else if (pin.server_id !== serverId) {
      this.#log.debug(`server id for ${this.#url} is now ${serverId} (same key)`);
      this.#trust.pinServer(this.#url, { server_id: serverId, pubkey: pin.pubkey });
    }
    this.#serverKey = key;
    this.#serverId = serverId;
    await this.#finishHello();
  }

  #failHello(error: HelloError): void {
    this.#state = "failed";
    this.#hello?.reject(error);
  }

  async #finishHello(): Promise<void> {
    if (this.#state !== "hello") return;
    this.#state = "ready";
    this.#emit({
      event: "ready",
      user_id: this.#me.userId,
      display_name: this.#me.displayName,
      server: this.#url,
      pinned: this.#serverKey !== undefined,
      ...(this.#me.account !== undefined ? { account: this.#me.account } : {}),
    });
    if (!this.#serverKey) {
      this.#warn(
        `The server at ${this.#url} did not send its key (no USER_HELLO_OK ACK); its frames cannot be authenticated`,
      );
    }
    this.#hello?.resolve();
    for (const env of this.#helloBuffer.splice(0)) await this.#accept(env);
  }

  async #accept(env: Envelope): Promise<void> {
    if (this.#serverKey) {
      if (!env.sig) {
        this.#warn(`Dropped a ${env.type} frame: it has no transport signature`);
        return;
      }
      if (!(await verifyEnvelope(this.#serverKey, env))) {
        this.#warn(`Dropped a ${env.type} frame: its transport signature is not the server's`);
        return;
      }
    }
    let frame: Frame | undefined;
    try {
      frame = decodeFrame(env);
    } catch (e) {
      this.#warn(`Dropped a malformed ${env.type} frame: ${message(e)}`);
      return;
    }
    if (!frame) {
      this.#log.debug(`ignoring frame of unknown type ${env.type}`);
      return;
    }
    this.#log.debug(`<- ${env.type} from ${env.from}`);
    const answered = [...this.#waiters].filter((w) => w.match(frame));
    const claimed = frame.type === "ERROR" && answered.some((w) => w.claim === true);
    if (!claimed) await this.#dispatch(frame);
    for (const w of answered) {
      this.#waiters.delete(w);
      w.resolve(frame);
    }
  }

  async #dispatch(frame: Frame): Promise<void> {
    const env = frame.env;
    switch (frame.type) {
      case "USER_DELIVER": {
        const p = frame.p;
        await this.#onDirect(p.sender, p.ciphertext, p.sender_pub, p.content_sig, [
          p.msg_ts,
          p.orig_ts,
          env.ts,
        ]);
        return;
      }
      case "MSG_DIRECT": {
        // Some servers hand the original frame to the recipient.
        if (env.to !== this.#me.userId) return this.#log.debug("MSG_DIRECT not for us ignored");
        const p = frame.p;
        await this.#onDirect(env.from, p.ciphertext, p.sender_pub, p.content_sig, [
          numberField(env.payload, "msg_ts"),
          numberField(env.payload, "orig_ts"),
          env.ts,
        ]);
        return;
      }
      case "MSG_PUBLIC_CHANNEL":
        return await this.#onPublic(frame.p, env);
      case "FILE_START": {
        const sender = senderOf(env);
        const refused = this.#receiver.start(sender, frame.p);
        if (refused) {
          this.#emitFile(sender, frame.p.name, frame.p.size, frame.p.mode, {
            reason: refused,
          });
        } else {
          this.#log.debug(`receiving ${frame.p.name} (${frame.p.size} bytes) from ${sender}`);
        }
        return;
      }
      case "FILE_CHUNK": {
        const p = frame.p;
        if (!(await this.#receiver.chunk(senderOf(env), p.file_id, p.index, p.ciphertext))) {
          this.#log.debug(`FILE_CHUNK for unknown file ${p.file_id} ignored`);
        }
        return;
      }
      case "FILE_END": {
        const result = await this.#receiver.end(senderOf(env), frame.p.file_id);
        if (!result) return this.#log.debug(`FILE_END for unknown file ${frame.p.file_id}`);
        this.#log.debug(`FILE_END ${frame.p.file_id}: ${result.ok ? "ok" : result.reason}`);
        const m = result.manifest;
        this.#emitFile(
          result.sender,
          m.name,
          m.size,
          m.mode,
          result.ok ? { path: result.path } : { reason: result.reason },
        );
        return;
      }
      case "USER_ADVERTISE":
        return await this.#onAdvertise(frame.p);
      case "USER_REMOVE": {
        const { user_id, server_id } = frame.p;
        const was = this.#online.get(user_id);
        if (!was) return;
        if (server_id && was.server_id && server_id !== was.server_id) {
          return this.#log.debug(`stale USER_REMOVE for ${user_id} ignored`);
        }
        this.#online.delete(user_id);
        this.#emit({
          event: "presence",
          user_id,
          display_name: this.#nameOf(user_id),
          online: false,
        });
        return;
      }
      case "LIST_RESPONSE": {
        for (const [id, name] of Object.entries(frame.p.display_names)) {
          if (name) this.#names.set(id, name.slice(0, 64));
        }
        for (const id of frame.p.users) {
          if (id !== this.#me.userId && !this.#online.has(id)) this.#online.set(id, {});
        }
        return;
      }
      case "PUBKEY_RESPONSE": {
        const { user_id, pubkey, display_name } = frame.p;
        if (display_name) this.#names.set(user_id, display_name.slice(0, 64));
        await this.#observeKey(user_id, pubkey);
        const entry = this.#online.get(user_id);
        if (entry) entry.pubkey = pubkey;
        return;
      }
      case "PUBLIC_CHANNEL_ADD":
        return this.#log.debug(`public channel: added ${frame.p.add.join(", ")}`);
      case "PUBLIC_CHANNEL_UPDATED":
        return await this.#unwrapGroupKey(frame.p.wraps, frame.p.version);
      case "PUBLIC_CHANNEL_KEY_SHARE":
        return await this.#unwrapGroupKey(frame.p.shares, numberField(env.payload, "version"));
      case "ERROR":
        this.#emit({
          event: "error",
          code: frame.p.code,
          detail: frame.p.detail ?? "",
          source: "server",
        });
        return;
      case "ACK":
        if (frame.p.msg_ref === "QUEUED") return this.#onQueued(env.payload);
        return this.#log.debug(`ACK ${frame.p.msg_ref ?? ""}`);
      case "HEARTBEAT":
      case "CTRL_CLOSE":
      case "USER_HELLO":
      case "LIST_REQUEST":
      case "PUBKEY_REQUEST":
      case "SERVER_HELLO_JOIN":
      case "SERVER_HELLO_LINK":
      case "PEER_HELLO_LINK":
      case "SERVER_ANNOUNCE":
      case "SERVER_WELCOME":
      case "SERVER_DELIVER":
        return this.#log.debug(`ignoring ${frame.type}`);
      // Account frames: answers are taken by the waiting request (see #request); the login
      // frames only come before USER_HELLO (client/login.ts).
      case "REGISTER":
      case "LOGIN_START":
      case "LOGIN_PARAMS":
      case "LOGIN_PROOF":
      case "LOGIN_OK":
      case "PASSWD":
      case "DELETE_ACCOUNT":
      case "ACCOUNTS_REQUEST":
      case "ACCOUNTS_RESPONSE":
      case "DIRECTORY_UPDATE":
      case "LOGIN_FAILURE":
        return this.#log.debug(`ignoring ${frame.type}`);
      default: {
        const never: never = frame;
        this.#log.debug(`unhandled frame ${(never as Frame).type}`);
      }
    }
  }

  async #onDirect(
    sender: string,
    ciphertext: string,
    senderPub: string | undefined,
    sig: string | undefined,
    tsList: (number | undefined)[],
  ): Promise<void> {
    if (this.#isReplay(sig ?? ciphertext)) return this.#log.debug("replayed DM dropped");
    let text: string;
    try {
      text = await decryptText(this.#me.keys.privateKey, ciphertext);
    } catch {
      this.#warn(`could not decrypt a message from ${this.#who(sender)}`);
      return;
    }
    const check = await this.#verifyContent(sender, senderPub, sig, {
      ciphertext,
      from: sender,
      to: this.#me.userId,
    }, tsList);
    this.#emit({ event: "dm", from: sender, from_name: this.#nameOf(sender), text, ...check });
  }

  async #onPublic(
    p: { ciphertext: string; sender_pub?: string; content_sig?: string; sender?: string },
    env: Envelope,
  ): Promise<void> {
    const sender = p.sender ?? env.from;
    if (sender === this.#me.userId) return this.#log.debug("own public message ignored");
    if (this.#isReplay(p.content_sig ?? p.ciphertext)) {
      return this.#log.debug("replayed public message dropped");
    }
    let text: string;
    let encrypted = true;
    try {
      text = await decryptText(this.#me.keys.privateKey, p.ciphertext);
    } catch {
      try {
        text = new TextDecoder("utf-8", { fatal: true }).decode(decodeBase64Url(p.ciphertext));
        encrypted = false;
      } catch {
        this.#warn(`could not decrypt a public message from ${this.#who(sender)}`);
        return;
      }
    }
    const check = await this.#verifyContent(
      sender,
      p.sender_pub,
      p.content_sig,
      { ciphertext: p.ciphertext, from: sender },
      [numberField(env.payload, "msg_ts"), numberField(env.payload, "orig_ts"), env.ts],
    );
    this.#emit({
      event: "all",
      from: sender,
      from_name: this.#nameOf(sender),
      text,
      encrypted,
      ...check,
    });
  }

  async #onAdvertise(
    p: { user_id: string; server_id?: string; meta: { display_name?: string; pubkey?: string } },
  ): Promise<void> {
    const { user_id, server_id, meta } = p;
    if (user_id === this.#me.userId) {
      if (meta.pubkey && !samePublicKey(meta.pubkey, this.#myPub)) {
        this.#warn("The server advertises a different key for you than your own");
      }
      return;
    }
    const was = this.#online.get(user_id);
    const entry: Presence = { ...was };
    if (server_id) entry.server_id = server_id;
    if (meta.display_name) {
      entry.display_name = meta.display_name;
      this.#names.set(user_id, meta.display_name);
    }
    if (meta.pubkey) {
      entry.pubkey = meta.pubkey;
      await this.#observeKey(user_id, meta.pubkey);
    }
    this.#online.set(user_id, entry);
    if (!was) {
      this.#emit({
        event: "presence",
        user_id,
        display_name: this.#nameOf(user_id),
        online: true,
      });
    }
  }

  async #unwrapGroupKey(wraps: KeyWrap[], version: number | undefined): Promise<void> {
    const mine = wraps.find((w) => w.member_id === this.#me.userId);
    if (!mine) return;
    try {
      const key = await decryptBlock(this.#me.keys.privateKey, mine.wrapped_key);
      if (key.length !== 32) {
        return this.#log.debug(`public channel key has ${key.length} bytes, not 32; ignored`);
      }
      if (version !== undefined) this.#groupVersion = version;
      this.#log.debug(`public channel key version ${version ?? "?"} unwrapped`);
    } catch {
      this.#log.debug("public channel key wrap could not be decrypted; ignored");
    }
  }

  // ------------------------------------------------------------------------------------------
  // Keys

  /**
   * Checks a content signature. `trusted` means it verified with the key pinned for the sender
   * (or a first-seen key, which is then pinned).
   */
  async #verifyContent(
    sender: string,
    senderPub: string | undefined,
    sig: string | undefined,
    fields: Omit<ContentFields, "ts">,
    tsList: (number | undefined)[],
  ): Promise<{ verified: boolean; trusted: boolean }> {
    const no = { verified: false, trusted: false };
    if (!sig) return no;
    const ts = tsList.filter((t): t is number => t !== undefined && Number.isFinite(t));
    const pinned = sender === this.#me.userId ? this.#myPub : this.#trust.userKey(sender);
    if (pinned) {
      const key = await importPublicKeyText(pinned).catch(() => undefined);
      if (key && (await verifyContent(key, sig, fields, ts))) {
        return { verified: true, trusted: true };
      }
      if (senderPub && !samePublicKey(senderPub, pinned)) {
        await this.#keyChanged(sender, pinned, senderPub);
        const other = await importPublicKeyText(senderPub).catch(() => undefined);
        if (other && (await verifyContent(other, sig, fields, ts))) {
          return { verified: true, trusted: false };
        }
      }
      return no;
    }
    const candidate = senderPub ?? this.#online.get(sender)?.pubkey;
    if (!candidate) {
      this.#fetchKeyLater(sender);
      return no;
    }
    const key = await importPublicKeyText(candidate).catch(() => undefined);
    if (!key || !(await verifyContent(key, sig, fields, ts))) return no;
    await this.#observeKey(sender, candidate);
    return { verified: true, trusted: true };
  }

  /** Pins a first-seen key; warns loudly when a different key shows up for a pinned user. */
  async #observeKey(userId: string, text: string): Promise<"pinned" | "same" | "changed" | "bad"> {
    let normalized: string;
    try {
      normalized = encodePublicKey(await importPublicKeyText(text));
    } catch (e) {
      this.#log.debug(`unusable key for ${userId} ignored: ${message(e)}`);
      return "bad";
    }
    if (userId === this.#me.userId) return samePublicKey(normalized, this.#myPub) ? "same" : "bad";
    const pinned = this.#trust.userKey(userId);
    if (!pinned) {
      this.#trust.pinUserKey(userId, normalized);
      this.#log.debug(`pinned key of ${userId}`);
      return "pinned";
    }
    if (samePublicKey(pinned, normalized)) return "same";
    await this.#keyChanged(userId, pinned, normalized);
    return "changed";
  }

  async #keyChanged(userId: string, oldText: string, newText: string): Promise<void> {
    const id = `${userId}\n${newText}`;
    if (this.#warnedKeys.has(id)) return;
    this.#warnedKeys.add(id);
    this.#warn(
      `KEY CHANGED for ${this.#who(userId, true)}! old fp ${await this.#fp(
        oldText,
      )}, new fp ${await this.#fp(newText)}; messages from this key are NOT trusted, ` +
        `and messages to this user still use the old key. If the change is expected, remove ` +
        `"${userId}" from "known_keys"${this.#configHint}`,
    );
  }

  async #fp(text: string): Promise<string> {
    try {
      return await fingerprint(await importPublicKeyText(text));
    } catch {
      return "(invalid key)";
    }
  }

  /** The key to encrypt for a user: pinned, else advertised (then pinned), else requested. */
  async #keyFor(userId: string): Promise<PublicKey> {
    if (userId === this.#me.userId) return this.#me.keys.publicKey;
    let pinned = this.#trust.userKey(userId);
    if (!pinned) {
      const advertised = this.#online.get(userId)?.pubkey;
      if (advertised) await this.#observeKey(userId, advertised);
      pinned = this.#trust.userKey(userId);
    }
    if (!pinned) {
      const reply = await this.#requestKey(userId);
      pinned = this.#trust.userKey(userId);
      if (!pinned) {
        throw new CommandError(
          reply?.type === "ERROR"
            ? `${this.#who(userId)} is not known to the server`
            : `No public key for ${this.#who(userId)}; is the user online?`,
        );
      }
    }
    try {
      return await importPublicKeyText(pinned);
    } catch (e) {
      throw new CommandError(
        `The key pinned for ${this.#who(userId)} is unusable (${
          message(e)
        }); remove "${userId}" from "known_keys"${this.#configHint}`,
      );
    }
  }

  #requestKey(userId: string): Promise<Frame | undefined> {
    return this.#request("PUBKEY_REQUEST", { user_id: userId }, (f) => {
      if (f.type === "PUBKEY_RESPONSE") return f.p.user_id === userId;
      if (f.type !== "ERROR" || f.p.code !== "USER_NOT_FOUND") return false;
      const detail = f.p.detail ?? "";
      return detail.includes(userId) || !UUID_IN_TEXT.test(detail);
    });
  }

  #fetchKeyLater(userId: string): void {
    if (this.#keyRequests.has(userId) || this.#state !== "ready") return;
    this.#keyRequests.add(userId);
    this.#requestKey(userId).catch(() => {}).finally(() => this.#keyRequests.delete(userId));
  }

  // ------------------------------------------------------------------------------------------
  // Sending

  #requireReady(): void {
    if (this.#state !== "ready") throw new CommandError("Not connected");
  }

  #nextTs(): number {
    this.#lastTs = Math.max(Math.floor(this.#clock.now()), this.#lastTs + 1);
    return this.#lastTs;
  }

  async #sendContent(
    type: "MSG_DIRECT" | "MSG_PUBLIC_CHANNEL",
    to: string,
    key: PublicKey,
    text: string,
    extra: JsonObject,
  ): Promise<void> {
    const ciphertext = await encryptText(key, text);
    const ts = this.#nextTs();
    const fields: ContentFields = type === "MSG_DIRECT"
      ? { ciphertext, from: this.#me.userId, to, ts }
      : { ciphertext, from: this.#me.userId, ts };
    const content_sig = await signContent(this.#me.keys.privateKey, fields, this.#variant);
    await this.#sendEnvelope({
      type,
      from: this.#me.userId,
      to,
      ts,
      payload: { ciphertext, sender_pub: this.#myPub, content_sig, ...extra },
    });
  }

  #sendFrame(type: string, to: string, payload: JsonObject, signal?: AbortSignal): Promise<void> {
    return this.#sendEnvelope(
      { type, from: this.#me.userId, to, ts: this.#nextTs(), payload },
      signal,
    );
  }

  async #sendEnvelope(env: Envelope, signal: AbortSignal = this.#ops.signal): Promise<void> {
    try {
      await this.#pacer.send(serializeEnvelope(env), signal);
      this.#unflushed++;
    } catch (e) {
      if (e instanceof ConnectionClosedError || signal.aborted) {
        throw new CommandError("Not sent: the connection is closed", { cause: e });
      }
      throw e;
    }
  }

  /**
   * Waits until the server has processed every frame sent so far: a server handles a
   * connection's frames in order, so the answer to a PUBKEY_REQUEST for ourselves comes after
   * all of them. Returns false when no answer came in time.
   */
  async #barrier(): Promise<boolean> {
    const pending = this.#unflushed;
    if (pending === 0 || this.#state !== "ready") return true;
    this.#unflushed = 0;
    const me = this.#me.userId;
    const reply = await this.#request(
      "PUBKEY_REQUEST",
      { user_id: me },
      (f) =>
        (f.type === "PUBKEY_RESPONSE" && f.p.user_id === me) ||
        (f.type === "ERROR" && (f.p.code === "UNKNOWN_TYPE" || f.p.code === "USER_NOT_FOUND")),
      { timeoutMs: Math.min(600_000, this.#requestTimeoutMs + 20 * pending) },
    );
    return reply !== undefined;
  }

  /** Waits while the socket still holds unsent data, giving up after 5 s without progress. */
  async #drain(): Promise<void> {
    let last = this.#t.bufferedAmount;
    let stalled = 0;
    while (this.#t.bufferedAmount > 0 && stalled < 5000) {
      await this.#clock.sleep(20);
      const now = this.#t.bufferedAmount;
      stalled = now < last ? 0 : stalled + 20;
      last = now;
    }
  }

  async #request(
    type: string,
    payload: JsonObject,
    match: (frame: Frame) => boolean,
    options: { timeoutMs?: number; claim?: boolean } = {},
  ): Promise<Frame | undefined> {
    if (this.#state !== "ready") return undefined;
    const timeoutMs = options.timeoutMs ?? this.#requestTimeoutMs;
    let waiter!: Waiter;
    const reply = new Promise<Frame | undefined>((resolve) => {
      waiter = { match, resolve };
      if (options.claim) waiter.claim = true;
    });
    this.#waiters.add(waiter);
    const stop = new AbortController();
    const timer = this.#clock.sleep(timeoutMs, stop.signal).then(() => {
      if (this.#waiters.delete(waiter)) waiter.resolve(undefined);
    });
    try {
      await this.#sendFrame(type, this.#serverId ?? "server", payload);
      return await reply;
    } finally {
      stop.abort();
      await timer;
      this.#waiters.delete(waiter);
    }
  }

  // ------------------------------------------------------------------------------------------
  // Helpers

  #others(): string[] {
    return [...this.#online.keys()].filter((id) => id !== this.#me.userId).sort();
  }

  #nameOf(id: string): string {
    if (id === this.#me.userId) return this.#me.displayName;
    return this.#names.get(id) ?? shortId(id);
  }

  #who(id: string, fullId = false): string {
    return `${this.#nameOf(id)} (${fullId ? id : shortId(id)})`;
  }

  #warn(text: string): void {
    this.#emit({ event: "warn", text });
  }

  #emitFile(
    from: string,
    name: string,
    size: number,
    mode: "dm" | "public",
    outcome: { path: string } | { reason: string },
  ): void {
    const event: FileEvent = {
      event: "file",
      from,
      from_name: this.#nameOf(from),
      name,
      size,
      mode,
      ok: "path" in outcome,
      ...outcome,
    };
    this.#emit(event satisfies ClientEvent);
  }

  #isReplay(key: string): boolean {
    if (this.#seen.has(key)) return true;
    this.#seen.add(key);
    if (this.#seen.size > REPLAY_CACHE) {
      const oldest = this.#seen.values().next().value;
      if (oldest !== undefined) this.#seen.delete(oldest);
    }
    return false;
  }
}

/**
 * The accounts of an ACCOUNTS_REQUEST answer (from a session or a connection before
 * USER_HELLO); throws {@linkcode ServerError} for an ERROR answer, CommandError for none.
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
