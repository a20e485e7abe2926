/**
 * One user's session with a server: wires a {@linkcode Connection} to the feature modules and
 * routes each incoming frame to the one that handles it. The work is done elsewhere, one file
 * per capability:
 *
 * - connection.ts: dial, USER_HELLO, read loop, requests, sending, reconnecting after a drop
 *   (with outbox.ts: frames kept until the server confirms them; server_pins.ts: server keys);
 * - presence.ts: who is online, finding users; user_keys.ts: other users' keys (TOFU);
 * - direct_messages.ts, public_channel.ts, file_transfer.ts: `/tell`, `/all`, `/file`;
 * - accounts.ts: `/register`, `/passwd`, `/delete-account`, `/accounts`;
 * - queued_acks.ts: ACK QUEUED for offline recipients;
 * - presence_history.ts: `/whoelse`, `/whoelsesince`; blocks.ts: `/block`, `/unblock`,
 *   `/blocks` (with blocked_answers.ts: ERROR BLOCKED); broadcast.ts: `/broadcast`;
 *   random_message.ts: `/random`; groups.ts: `/group`, `/g`, `/file <group>`;
 *   private_chat.ts: `/startprivate`, `/accept`, `/private`, `/stopprivate` (direct links).
 *
 * @module
 */

import type { AccountEntry, Frame, JsonObject, KeyEncoding, Transport } from "../shared/mod.ts";
import { numberField } from "./_util.ts";
import { Accounts } from "./accounts.ts";
import { BlockedAnswers } from "./blocked_answers.ts";
import { Blocks } from "./blocks.ts";
import { Broadcast } from "./broadcast.ts";
import { type Clock, systemClock } from "./clock.ts";
import {
  Connection,
  type ConnectionStatus,
  type Identity,
  type ReconnectOptions,
  type ServerGroupMember,
  type SessionEnd,
  type SigVariantChoice,
} from "./connection.ts";
import { DirectMessages } from "./direct_messages.ts";
import type { EventSink, ListedUser } from "./events.ts";
import { FileTransfers, type OutgoingFile, type SaveFile } from "./file_transfer.ts";
import { type GroupCommand, Groups } from "./groups.ts";
import { EventGate } from "./event_gate.ts";
import { type Logger, silentLogger } from "./logger.ts";
import { type NickOutcome, updateDisplayName } from "./nick.ts";
import type { PacerOptions } from "./pacer.ts";
import { Presence } from "./presence.ts";
import { PresenceHistory } from "./presence_history.ts";
import { type CloseReason, type P2pListenOptions, PrivateChats } from "./private_chat.ts";
import { PublicChannel } from "./public_channel.ts";
import { QueuedAcks } from "./queued_acks.ts";
import { RandomMessages } from "./random_message.ts";
import type { NamedUser, SeenUser } from "./social_events.ts";
import type { TrustStore } from "./trust_store.ts";
import { UserKeys } from "./user_keys.ts";

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
  /** Keeps received files instead of saving them into `downloadsDir` (the browser client). */
  saveFile?: SaveFile;
  /** Receives every event. */
  onEvent: EventSink;
  /**
   * content_sig variant to sign with (default `auto`: B for a server that greets with
   * CLIENT_WELCOME, A otherwise; see connection.ts).
   */
  sigVariant?: SigVariantChoice;
  /** How to write this user's key (default `auto`: learned from the server; see connection.ts). */
  keyEncoding?: KeyEncoding | "auto";
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
  /** Reconnect after a drop (see {@linkcode Connection}); without it a drop ends the session. */
  reconnect?: ReconnectOptions;
  /** Hears about the connection's state changes. */
  onStatus?: (status: ConnectionStatus) => void;
  /** Hears about the other servers of the server group (from the USER_HELLO_OK ACK). */
  onServerGroup?: (members: ServerGroupMember[]) => void;
  /** Frames kept for resending and queued while disconnected (default 1000). */
  outboxLimit?: number;
  /** Where to listen for private chats (`--p2p-host`, `--p2p-port`). */
  p2p?: P2pListenOptions;
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
  #me: Identity;
  #log: Logger;
  #emit: EventSink;
  #connection: Connection;
  #presence: Presence;
  #accounts: Accounts;
  #queued: QueuedAcks;
  #dms: DirectMessages;
  #channel: PublicChannel;
  #files: FileTransfers;
  #refusals: BlockedAnswers;
  #history: PresenceHistory;
  #blocks: Blocks;
  #broadcast: Broadcast;
  #random: RandomMessages;
  #groups: Groups;
  #private: PrivateChats;

  /** Resolves when the connection has closed and every frame received before was handled. */
  readonly closed: Promise<SessionEnd>;

  /** Creates a session; nothing is sent until {@linkcode ClientSession.start}. */
  constructor(options: ClientSessionOptions) {
    const identity: Identity = { ...options.identity };
    const log = options.log ?? silentLogger;
    // Events stay in order when a message waits for its sender's name (event_gate.ts).
    const gate = new EventGate(options.onEvent);
    const onEvent = gate.emit;
    const sigVariant = options.sigVariant ?? "auto";
    const configPath = options.configPath !== undefined ? { configPath: options.configPath } : {};
    this.#me = identity;
    this.#log = log;
    this.#emit = onEvent;
    const connection = new Connection({
      transport: options.transport,
      identity,
      serverUrl: options.serverUrl,
      trust: options.trust,
      onEvent,
      onFrame: (frame) => this.#dispatch(frame),
      onStatus: (status) => {
        // Back after a drop: users of a server that went away are no longer online.
        if (status.status === "ready" && status.reconnected) void presence.resync().catch(() => {}); // closed meanwhile: nothing to resync
        options.onStatus?.(status);
      },
      clock: options.clock ?? systemClock,
      log,
      ...configPath,
      ...(options.helloTimeoutMs !== undefined ? { helloTimeoutMs: options.helloTimeoutMs } : {}),
      ...(options.requestTimeoutMs !== undefined
        ? { requestTimeoutMs: options.requestTimeoutMs }
        : {}),
      ...(options.pacing !== undefined ? { pacing: options.pacing } : {}),
      ...(options.reconnect !== undefined ? { reconnect: options.reconnect } : {}),
      ...(options.onServerGroup !== undefined ? { onServerGroup: options.onServerGroup } : {}),
      ...(options.outboxLimit !== undefined ? { outboxLimit: options.outboxLimit } : {}),
      ...(options.keyEncoding !== undefined ? { keyEncoding: options.keyEncoding } : {}),
    });
    const accounts = new Accounts({ identity, connection, log });
    const keys: UserKeys = new UserKeys({
      identity,
      connection,
      trust: options.trust,
      onEvent,
      advertisedKey: (id) => presence.advertisedKey(id),
      who: (id, full) => presence.who(id, full),
      log,
      ...configPath,
    });
    const presence: Presence = new Presence({
      identity,
      connection,
      onEvent,
      observeKey: (id, key) => keys.observeKey(id, key),
      isForeignKey: (key) => keys.isForeignKey(key),
      findAccount: (name) => accounts.find(name),
      gate,
    });
    const queued = new QueuedAcks({
      onEvent,
      isOnline: (id) => presence.isOnline(id),
      nameOf: (id) => presence.nameOf(id),
      selfId: identity.userId,
    });
    const common = { identity, connection, presence, keys, onEvent, log };
    this.#connection = connection;
    this.#presence = presence;
    this.#accounts = accounts;
    this.#queued = queued;
    this.#dms = new DirectMessages({
      ...common,
      queued,
      sigVariant,
      divert: (sender, text, check) => privateChats.divert(sender, text, check),
    });
    this.#channel = new PublicChannel({ ...common, sigVariant });
    this.#files = new FileTransfers({
      ...common,
      queued,
      downloadsDir: options.downloadsDir,
      ...(options.saveFile ? { saveFile: options.saveFile } : {}),
      clock: options.clock ?? systemClock,
      sigVariant,
      // Files sent in a group are reported in it (groups.ts checks the sender is a member).
      groupFiles: { reportFile: (groupId, event) => this.#groups.reportFile(groupId, event) },
    });
    // The social features (/whoelse, /block, /broadcast, /random, /group, private chats).
    const clock = options.clock ?? systemClock;
    const refusals = new BlockedAnswers({ onEvent, nameOf: (id) => presence.nameOf(id) });
    const blocks = new Blocks({
      identity,
      connection,
      presence,
      clock,
      onEvent,
      onBlocked: (id) => privateChats.onBlocked(id),
    });
    const privateChats: PrivateChats = new PrivateChats({
      ...common,
      blocks,
      blocked: refusals,
      sigVariant,
      clock,
      ...(options.p2p !== undefined ? { listen: options.p2p } : {}),
    });
    this.#refusals = refusals;
    this.#blocks = blocks;
    this.#private = privateChats;
    this.#history = new PresenceHistory({ identity, connection, presence, clock });
    this.#broadcast = new Broadcast({
      connection,
      presence,
      blocked: refusals,
      onEvent,
      sendPublic: (text) => this.#channel.send(text),
    });
    this.#random = new RandomMessages({
      identity,
      connection,
      presence,
      blocks,
      blocked: refusals,
      onEvent,
      sendDirect: (id, text) => this.#dms.send(id, text),
    });
    this.#groups = new Groups({
      ...common,
      queued,
      blocked: refusals,
      sigVariant,
      files: this.#files,
    });
    this.closed = connection.closed.then(async (end) => {
      await gate.idle();
      return end;
    });
    // The server connection is gone for good: private chats end too, and the peers are told.
    void connection.closed.then((end) =>
      this.#private.closeAll(end.byUs ? "quit" : "disconnected")
    );
  }

  /** The user's id. */
  get userId(): string {
    return this.#me.userId;
  }

  /** The display name this session says hello with (and advertises). */
  get displayName(): string {
    return this.#me.displayName;
  }

  /** `/nick`: USER_UPDATE; `everywhere` when the server advertised the new name (nick.ts). */
  setDisplayName(name: string): Promise<NickOutcome> {
    return updateDisplayName(this.#connection, this.#me, name);
  }

  /** The names of the groups this user is known to be in (for Tab completion). */
  groupNames(): string[] {
    return this.#groups.names();
  }

  /** The server's id (from its ACK or the pin), if known. */
  get serverId(): string | undefined {
    return this.#connection.serverId;
  }

  /** True when the server key is pinned and every frame's signature is checked. */
  get pinned(): boolean {
    return this.#connection.pinned;
  }

  /** The account name this session was logged in with, if any. */
  get account(): string | undefined {
    return this.#me.account;
  }

  /** True once the server accepted the hello and until the connection drops or closes. */
  get ready(): boolean {
    return this.#connection.ready;
  }

  /** True from the accepted hello until closed for good (also while reconnecting). */
  get open(): boolean {
    return this.#connection.open;
  }

  /** The public-channel key version last unwrapped, if any. */
  get publicChannelVersion(): number | undefined {
    return this.#channel.version;
  }

  /** The connection (state, requests), for callers that need more than the commands. */
  get connection(): Connection {
    return this.#connection;
  }

  /**
   * Sends USER_HELLO and waits for the server's verdict. Resolves once ready (after the
   * `ready` event); throws `HelloError` when refused or disconnected.
   */
  start(): Promise<void> {
    return this.#connection.start();
  }

  /** Online users (from presence and LIST_RESPONSE) including yourself, sorted by name. */
  users(): ListedUser[] {
    return this.#presence.users();
  }

  /** Sends LIST_REQUEST, merges the answer (if any comes) and returns {@linkcode users}. */
  list(): Promise<ListedUser[]> {
    return this.#presence.list();
  }

  /** A user id by id, display name or id prefix among online users (see presence.ts). */
  resolveUser(text: string): string | undefined {
    return this.#presence.resolveUser(text);
  }

  /** Like {@linkcode resolveUser}, also asking the server and looking up account names. */
  findUser(text: string): Promise<string> {
    return this.#presence.findUser(text);
  }

  /** `/accounts`: account names matching a glob or `/regex/`. */
  accounts(pattern: string): Promise<AccountEntry[]> {
    return this.#accounts.list(pattern);
  }

  /** REGISTER: makes this identity an account; resolves on `ACK REGISTER_OK`. */
  register(username: string, privkeyStore: JsonObject, verifier: string): Promise<void> {
    return this.#accounts.register(username, privkeyStore, verifier);
  }

  /** PASSWD: replaces the stored key blob and verifier; resolves on `ACK PASSWD_OK`. */
  passwd(authKey: string, privkeyStore: JsonObject, verifier: string): Promise<void> {
    return this.#accounts.passwd(authKey, privkeyStore, verifier);
  }

  /** DELETE_ACCOUNT: resolves with the deleted name; the server then closes the connection. */
  deleteAccount(authKey: string): Promise<string | undefined> {
    return this.#accounts.delete(authKey);
  }

  /** `/tell`: sends `text` as one or more MSG_DIRECT frames. */
  sendDirect(target: string, text: string): Promise<void> {
    return this.#dms.send(target, text);
  }

  /** `/all`: sends `text` to every other online user, encrypted for each. */
  sendPublic(text: string): Promise<void> {
    return this.#channel.send(text);
  }

  /**
   * `/file`: sends a file to a user, to every member of a group of ours (when no online user has
   * that name), or to every other online user when `target` is `public`.
   */
  async sendFile(target: string, path: string, signal?: AbortSignal): Promise<void> {
    if (target !== "public" && target !== "*" && !this.#presence.resolveUser(target)) {
      const group = await this.#groups.find(target).catch(() => undefined);
      if (group) return await this.#groups.sendFile(group, path, signal);
    }
    return await this.#files.send(target, path, signal);
  }

  /** Like {@linkcode sendFile} for a file already in memory (the browser client). */
  sendFileData(target: string, file: OutgoingFile, signal?: AbortSignal): Promise<void> {
    return this.#files.sendData(target, file, signal);
  }

  /** `/whoelse`: the other users online now. */
  whoElse(): Promise<NamedUser[]> {
    return this.#history.whoElse();
  }

  /** `/whoelsesince <seconds>`: everyone online at any moment of the last `seconds`. */
  whoElseSince(seconds: number): Promise<SeenUser[]> {
    return this.#history.since(seconds);
  }

  /** `/blocks`: the users this user blocked. */
  blockList(): Promise<NamedUser[]> {
    return this.#blocks.list();
  }

  /** `/block <user>`. */
  block(target: string): Promise<void> {
    return this.#blocks.block(target);
  }

  /** `/unblock <user>`. */
  unblock(target: string): Promise<void> {
    return this.#blocks.unblock(target);
  }

  /** `/broadcast <text>`: `/all`, then how many refused it. */
  broadcast(text: string): Promise<void> {
    return this.#broadcast.send(text);
  }

  /** `/random <text>`: a DM to one random other online user. */
  sendRandom(text: string): Promise<void> {
    return this.#random.send(text);
  }

  /** `/group ...` and `/g <name> <text>`. */
  group(command: GroupCommand): Promise<void> {
    return this.#groups.run(command);
  }

  /** `/startprivate <user>`. */
  startPrivate(target: string): Promise<void> {
    return this.#private.start(target);
  }

  /** `/accept <user>`. */
  acceptPrivate(target: string): Promise<void> {
    return this.#private.accept(target);
  }

  /** `/private <user> <text>`: over the direct link only. */
  sendPrivate(target: string, text: string): Promise<void> {
    return this.#private.send(target, text);
  }

  /** `/stopprivate <user>`. */
  stopPrivate(target: string): Promise<void> {
    return this.#private.stop(target);
  }

  /**
   * Ends the session: private chats first (their peers are told why: `quit`, or `logout` for
   * `/logout`), then CTRL_CLOSE, a WebSocket close with code 1000, and waits (briefly) for the
   * close to complete and the pins to be saved.
   */
  async quit(reason: Extract<CloseReason, "quit" | "logout"> = "quit"): Promise<void> {
    await this.#private.closeAll(reason);
    await this.#connection.quit({ beforeClose: () => this.#files.warnIncomplete() });
  }

  /** Same as {@linkcode quit}. */
  async [Symbol.asyncDispose](): Promise<void> {
    await this.quit();
  }

  /** Hands each frame to the module that handles it. */
  async #dispatch(frame: Frame): Promise<void> {
    const env = frame.env;
    switch (frame.type) {
      case "USER_DELIVER": {
        const p = frame.p;
        const groupId = groupIdOf(env.payload);
        if (groupId !== undefined) {
          return this.#groups.receive({
            groupId,
            sender: p.sender,
            ciphertext: p.ciphertext,
            senderPub: p.sender_pub,
            contentSig: p.content_sig,
            tsList: [p.msg_ts, p.orig_ts, env.ts],
          });
        }
        return await this.#dms.receive({
          sender: p.sender,
          ciphertext: p.ciphertext,
          senderPub: p.sender_pub,
          contentSig: p.content_sig,
          tsList: [p.msg_ts, p.orig_ts, env.ts],
        });
      }
      case "MSG_DIRECT": {
        // Some servers hand the original frame to the recipient.
        if (env.to !== this.#me.userId) return this.#log.debug("MSG_DIRECT not for us ignored");
        const p = frame.p;
        const groupId = groupIdOf(env.payload);
        if (groupId !== undefined) {
          return this.#groups.receive({
            groupId,
            sender: env.from,
            ciphertext: p.ciphertext,
            senderPub: p.sender_pub,
            contentSig: p.content_sig,
            tsList: [
              numberField(env.payload, "msg_ts"),
              numberField(env.payload, "orig_ts"),
              env.ts,
            ],
          });
        }
        return await this.#dms.receive({
          sender: env.from,
          ciphertext: p.ciphertext,
          senderPub: p.sender_pub,
          contentSig: p.content_sig,
          tsList: [numberField(env.payload, "msg_ts"), numberField(env.payload, "orig_ts"), env.ts],
        });
      }
      case "MSG_PUBLIC_CHANNEL":
        return await this.#channel.receive(frame.p, env);
      case "FILE_START":
        return this.#files.onStart(env, frame.p);
      case "FILE_CHUNK":
        return await this.#files.onChunk(env, frame.p);
      case "FILE_END":
        return await this.#files.onEnd(env, frame.p.file_id, frame.p);
      case "USER_ADVERTISE":
        return await this.#presence.onAdvertise(frame.p);
      case "USER_REMOVE":
        if (this.#presence.onRemove(frame.p) === "stale") {
          this.#log.debug(`stale USER_REMOVE for ${frame.p.user_id} ignored`);
        }
        return;
      case "LIST_RESPONSE":
        return this.#presence.onList(frame.p);
      case "PUBKEY_RESPONSE":
        return await this.#presence.onPubkey(frame.p);
      case "PUBLIC_CHANNEL_ADD":
        return this.#log.debug(`public channel: added ${frame.p.add.join(", ")}`);
      case "PUBLIC_CHANNEL_UPDATED":
        return await this.#channel.onKeyWraps(frame.p.wraps, frame.p.version);
      case "PUBLIC_CHANNEL_KEY_SHARE":
        return await this.#channel.onKeyWraps(frame.p.shares, numberField(env.payload, "version"));
      case "ERROR":
        // Not delivered because the recipient blocked us: said once, as who refused it.
        if (frame.p.code === "BLOCKED") return this.#refusals.onBlocked(frame.p.detail ?? "");
        this.#emit({
          event: "error",
          code: frame.p.code,
          detail: frame.p.detail ?? "",
          source: "server",
        });
        return;
      case "ACK":
        if (frame.p.msg_ref === "QUEUED") return this.#queued.onQueued(env.payload);
        return this.#log.debug(`ACK ${frame.p.msg_ref ?? ""}`);
      case "GROUP_EVENT":
        return this.#groups.onGroupEvent(frame.p);
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
      // Account frames: answers are taken by the waiting request (Connection.request); the
      // login frames only come before USER_HELLO (login.ts).
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
      case "QUEUE_STORE":
      case "QUEUE_DONE":
      case "BLOCKS_SET":
      case "BLOCKS_REQUEST":
      case "BLOCKS_RESPONSE":
      case "BLOCKS_UPDATE":
      case "PRESENCE_SINCE_REQUEST":
      case "PRESENCE_SINCE_RESPONSE":
      case "GROUP_CREATE":
      case "GROUP_CHANGE":
      case "GROUP_LIST_REQUEST":
      case "GROUP_LIST":
      case "GROUP_UPDATE":
      case "USER_UPDATE":
      // Unpacked by the connection, which hands on each inner frame.
      case "PRESENCE_BATCH":
        return this.#log.debug(`ignoring ${frame.type}`);
      default: {
        const never: never = frame;
        this.#log.debug(`unhandled frame ${(never as Frame).type}`);
      }
    }
  }
}

/** The `group_id` of a group message (not the public channel's), if the frame has one. */
function groupIdOf(payload: JsonObject): string | undefined {
  const id = payload["group_id"];
  return typeof id === "string" && id.length > 0 && id !== "public" ? id : undefined;
}
