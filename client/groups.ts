/**
 * Named group chats: `/group create|send|list|members|add|leave|remove`, `/g <name> <text>` and
 * `/file <group> <path>`. The servers keep who is in which group (GROUP_CREATE, GROUP_CHANGE,
 * GROUP_LIST, and GROUP_EVENT notifications); the content is end-to-end encrypted by this
 * client for each *current* member, as the server lists them just before sending, and sent as
 * one MSG_DIRECT per member (RSA-OAEP) or one file copy per member (FILE_*, sent exactly as
 * `/file <user>` sends it: file_transfer.ts), every frame carrying `payload.group_id`. Servers
 * only deliver such frames between members, and queue them for members who are offline.
 *
 * The group id is also inside the encryption, as a short prefix of every piece of plaintext
 * ({@linkcode tagGroupText}); a receiver shows a message as a group message only when that
 * prefix names the frame's `group_id` and the sender is a member, so no server can move a
 * message from one conversation into another.
 *
 * Incoming group frames are handled in order on this module's own queue: checking membership
 * may need a GROUP_LIST answer, which the connection's frame queue must stay free to deliver.
 *
 * @module
 */

import {
  type ChatGroup,
  decryptText,
  isObject,
  OAEP_MAX_PLAINTEXT,
  type PublicKey,
  splitForOaep,
} from "../shared/mod.ts";
import { sendContent } from "./_content.ts";
import { errorMessage, ReplayCache } from "./_util.ts";
import type { BlockedAnswers } from "./blocked_answers.ts";
import type { Connection, Identity, SigVariantChoice } from "./connection.ts";
import { CommandError, ServerError } from "./errors.ts";
import type { EventSink, FileEvent } from "./events.ts";
import {
  type GroupFileReports,
  type OutgoingFile,
  readFileForCommand,
  type SendCopyOptions,
  sendProgress,
  type SentCopy,
} from "./file_transfer.ts";
import { type Logger, silentLogger } from "./logger.ts";
import type { Presence } from "./presence.ts";
import type { QueuedAcks, QueueWatch } from "./queued_acks.ts";
import type { ListedGroup, NamedUser } from "./social_events.ts";
import type { UserKeys } from "./user_keys.ts";

/**
 * The prefix that binds a piece of group plaintext to its group.
 *
 * @example
 * ```ts
 * import { tagGroupText, untagGroupText } from "./groups.ts";
 * const tagged = tagGroupText("g1", "hello");
 * console.assert(untagGroupText("g1", tagged) === "hello");
 * console.assert(untagGroupText("g2", tagged) === undefined);
 * ```
 */
export function tagGroupText(groupId: string, text: string): string {
  return `[group:${groupId}] ${text}`;
}

/** The text of a tagged piece when its prefix names `groupId`, else undefined. */
export function untagGroupText(groupId: string, plaintext: string): string | undefined {
  const prefix = tagGroupText(groupId, "");
  return plaintext.startsWith(prefix) ? plaintext.slice(prefix.length) : undefined;
}

/** A parsed `/group` command line. */
export type GroupCommand =
  | { action: "create"; name: string; users: string[]; first?: string }
  | { action: "send"; name: string; text: string }
  | { action: "list" }
  | { action: "members"; name: string }
  | { action: "add"; name: string; user: string }
  | { action: "remove"; name: string; user: string }
  | { action: "leave"; name: string }
  | { action: "help" };

/** The usage of each `/group` subcommand. */
export const GROUP_USAGE: Readonly<Record<Exclude<GroupCommand["action"], "help">, string>> = {
  create: "/group create <name> <user> [<user>…] [-- <first message>]",
  send: "/group send <name> <text>   (or /g <name> <text>)",
  list: "/group list",
  members: "/group members <name>",
  add: "/group add <name> <user>",
  leave: "/group leave <name>",
  remove: "/group remove <name> <user>   (the creator only)",
};

const WORD = /^"([^"]*)"\s*|^'([^']*)'\s*|^(\S+)\s*/;

/** Splits off the next word (quotes allowed); undefined at the end. */
function nextWord(text: string): [string, string] | undefined {
  const m = WORD.exec(text);
  if (!m) return undefined;
  return [m[1] ?? m[2] ?? m[3] ?? "", text.slice(m[0].length)];
}

/**
 * Parses the words after `/group`. Throws {@linkcode CommandError} with the usage.
 *
 * @example
 * ```ts
 * import { parseGroupCommand } from "./groups.ts";
 * const c = parseGroupCommand("create team bob carol -- hello all");
 * console.assert(c.action === "create" && c.users.length === 2 && c.first === "hello all");
 * ```
 */
export function parseGroupCommand(text: string): GroupCommand {
  const first = nextWord(text.trimStart());
  if (!first) return { action: "help" };
  const [sub, rest] = first;
  const action = sub.toLowerCase();
  const words = (from: string, max: number): string[] => {
    const out: string[] = [];
    let left = from;
    while (out.length < max) {
      const w = nextWord(left);
      if (!w) break;
      out.push(w[0]);
      left = w[1];
    }
    if (left.trim().length > 0) out.push("\u0000"); // too many
    return out;
  };
  const usage = (a: keyof typeof GROUP_USAGE, problem: string): CommandError =>
    new CommandError(`${problem}. Usage: ${GROUP_USAGE[a]}`);
  switch (action) {
    case "help":
      return { action: "help" };
    case "create": {
      const cut = /(^|\s)--(\s|$)/.exec(rest);
      const head = cut ? rest.slice(0, cut.index) : rest;
      const message = cut ? rest.slice(cut.index + cut[0].length).trim() : undefined;
      const names = words(head, 300).filter((w) => w !== "\u0000");
      if (names.length === 0) throw usage("create", "Missing <name>");
      if (names.length === 1) throw usage("create", "Name at least one <user>");
      if (message !== undefined && message.length === 0) {
        throw usage("create", "Nothing after --");
      }
      return {
        action: "create",
        name: names[0]!,
        users: names.slice(1),
        ...(message !== undefined ? { first: message } : {}),
      };
    }
    case "send": {
      const w = nextWord(rest);
      if (!w) throw usage("send", "Missing <name>");
      if (w[1].trim().length === 0) throw usage("send", "Missing <text>");
      return { action: "send", name: w[0], text: w[1] };
    }
    case "list": {
      if (rest.trim().length > 0) throw usage("list", "Too many arguments");
      return { action: "list" };
    }
    case "members":
    case "leave": {
      const w = words(rest, 1);
      if (w.length === 0) throw usage(action, "Missing <name>");
      if (w.length > 1) throw usage(action, "Too many arguments");
      return { action, name: w[0]! };
    }
    case "add":
    case "remove": {
      const w = words(rest, 2);
      if (w.length === 0) throw usage(action, "Missing <name>");
      if (w.length === 1) throw usage(action, "Missing <user>");
      if (w.length > 2) throw usage(action, "Too many arguments");
      return { action, name: w[0]!, user: w[1]! };
    }
    default:
      throw new CommandError(
        `Unknown /group subcommand "${sub}"; use one of ${
          Object.keys(GROUP_USAGE).join(", ")
        } (/group alone shows their usage)`,
      );
  }
}

/** A group chat from the wire (an ACK or GROUP_EVENT payload), or undefined when malformed. */
export function asChatGroup(value: unknown): ChatGroup | undefined {
  if (!isObject(value)) return undefined;
  const { group_id, name, creator_id, created_at, version, members } = value;
  if (
    typeof group_id !== "string" || typeof name !== "string" || typeof creator_id !== "string" ||
    !Array.isArray(members)
  ) return undefined;
  return {
    group_id,
    name,
    creator_id,
    created_at: typeof created_at === "number" ? created_at : 0,
    version: typeof version === "number" ? version : 0,
    members: members.filter((m): m is string => typeof m === "string"),
  };
}

/** An incoming frame that carries a `group_id` (USER_DELIVER or a relayed MSG_DIRECT). */
export interface IncomingGroupMessage {
  /** The frame's `payload.group_id`. */
  groupId: string;
  /** The original sender. */
  sender: string;
  /** base64url RSA-OAEP ciphertext for us. */
  ciphertext: string;
  /** The key the sender signed with, if the frame says. */
  senderPub?: string | undefined;
  /** The content signature. */
  contentSig?: string | undefined;
  /** Candidate timestamps of the signature, in order of preference. */
  tsList: (number | undefined)[];
}

/** A GROUP_EVENT payload. */
export interface GroupEventPayload {
  group: ChatGroup;
  action: "created" | "added" | "removed" | "left";
  user_id: string;
  by: string;
}

/** How {@linkcode Groups} sends each member's copy of a file (FileTransfers in file_transfer.ts). */
export interface GroupFileSender {
  /** Sends one member's copy, every frame carrying `options.groupId`. */
  sendCopy(to: string, file: OutgoingFile, options: SendCopyOptions): Promise<SentCopy>;
}

/** Options for {@linkcode Groups}. */
export interface GroupsOptions {
  /** The user. */
  identity: Identity;
  /** Where frames go. */
  connection: Connection;
  /** Finds users and names them. */
  presence: Presence;
  /** Member keys and signature checks. */
  keys: UserKeys;
  /** ACK QUEUED for offline members. */
  queued: QueuedAcks;
  /** ERROR BLOCKED for members who blocked us. */
  blocked: BlockedAnswers;
  /** Receives the group events, warnings and infos. */
  onEvent: EventSink;
  /** content_sig variant to sign with (`auto`: chosen per server). */
  sigVariant: SigVariantChoice;
  /** Sends files: the same path as `/file <user>`. */
  files: GroupFileSender;
  /** Debug logger. */
  log?: Logger;
}

const GROUP_ERRORS: ReadonlySet<string> = new Set([
  "NAME_IN_USE",
  "BAD_REQUEST",
  "USER_NOT_FOUND",
  "FORBIDDEN",
  "UNKNOWN_TYPE",
  "BAD_FRAME",
]);

const utf8 = new TextEncoder();

/**
 * Group chats for one session.
 *
 * @example
 * ```ts ignore
 * const groups = new Groups({ identity, connection, presence, keys, queued, blocked, onEvent,
 *   sigVariant: "A" });
 * await groups.create("team", ["bob", "carol"], "hello team");
 * await groups.send("team", "lunch?");
 * ```
 */
export class Groups implements GroupFileReports {
  #o: GroupsOptions;
  #log: Logger;
  /** The groups we are in, by id, as the server last said. */
  #groups: Map<string, ChatGroup> = new Map();
  #loaded = false;
  #seen: ReplayCache = new ReplayCache();
  #seenEvents: ReplayCache = new ReplayCache(1024);
  #queue: Promise<void> = Promise.resolve();

  /** Creates the feature. */
  constructor(options: GroupsOptions) {
    this.#o = options;
    this.#log = options.log ?? silentLogger;
  }

  /** The names of the groups we are known to be in (for Tab completion). */
  names(): string[] {
    return [...this.#groups.values()].map((g) => g.name);
  }

  /** Resolves once every incoming group frame received so far was handled. */
  idle(): Promise<void> {
    return this.#queue;
  }

  /** Runs a parsed `/group` command. */
  async run(command: GroupCommand): Promise<void> {
    switch (command.action) {
      case "create":
        return await this.create(command.name, command.users, command.first);
      case "send":
        return await this.send(command.name, command.text);
      case "list":
        this.#o.onEvent({ event: "groups", groups: await this.list() });
        return;
      case "members":
        this.#o.onEvent({ event: "group_members", group: await this.members(command.name) });
        return;
      case "add":
        return await this.add(command.name, command.user);
      case "remove":
        return await this.remove(command.name, command.user);
      case "leave":
        return await this.leave(command.name);
      case "help":
        for (const usage of Object.values(GROUP_USAGE)) {
          this.#o.onEvent({ event: "info", text: usage });
        }
        return;
      default: {
        const never: never = command;
        throw new CommandError(`Unknown /group command ${String(never)}`);
      }
    }
  }

  /** `/group list`: the groups we are in, fresh from the server. */
  async list(): Promise<ListedGroup[]> {
    const groups = await this.#fetch();
    await this.#learnNames(groups.flatMap((g) => g.members));
    return groups.map((g) => this.#listed(g));
  }

  /** `/group members <name>`. */
  async members(name: string): Promise<ListedGroup> {
    const group = await this.#require(name);
    await this.#learnNames(group.members);
    return this.#listed(group);
  }

  /**
   * The group named `name` (case-insensitive) we are in, from the cache or, when not there, a
   * fresh GROUP_LIST; undefined when there is none.
   */
  async find(name: string): Promise<ChatGroup | undefined> {
    const cached = this.#byName(name);
    if (cached || !this.#o.connection.ready) return cached;
    await this.#fetch();
    return this.#byName(name);
  }

  /** `/group create <name> <user>… [-- <first message>]`. */
  async create(name: string, users: readonly string[], first?: string): Promise<void> {
    const { connection, presence, identity } = this.#o;
    connection.requireReady();
    const members: string[] = [];
    for (const user of users) {
      const id = await presence.findUser(user);
      if (id !== identity.userId && !members.includes(id)) members.push(id);
    }
    if (members.length === 0) throw new CommandError("A group needs at least one other member");
    const group = await this.#ask("GROUP_CREATE", { name, members }, name);
    if (first !== undefined) await this.#sendText(group, first);
  }

  /** `/g <name> <text>`, `/group send <name> <text>`. */
  async send(name: string, text: string): Promise<void> {
    if (text.length === 0) throw new CommandError("Nothing to send");
    // Always the member list as the server holds it now: who left gets nothing more.
    this.#o.connection.requireReady();
    await this.#fetch();
    await this.#sendText(this.#requireCached(name), text);
  }

  /** `/group add <name> <user>`. */
  async add(name: string, user: string): Promise<void> {
    this.#o.connection.requireReady();
    const id = await this.#o.presence.findUser(user);
    await this.#ask("GROUP_CHANGE", { name, action: "add", user_id: id }, name);
  }

  /** `/group remove <name> <user>` (the creator only). */
  async remove(name: string, user: string): Promise<void> {
    const { presence, identity } = this.#o;
    const group = await this.#require(name);
    if (group.creator_id !== identity.userId) {
      throw new CommandError(
        `Only the creator of ${group.name} (${
          presence.who(group.creator_id)
        }) can remove members; /group leave ${group.name} to leave it`,
      );
    }
    const id = this.#member(group, user) ?? await presence.findUser(user);
    if (id === identity.userId) {
      throw new CommandError(`To leave ${group.name}, use /group leave ${group.name}`);
    }
    if (!group.members.includes(id)) {
      throw new CommandError(`${presence.who(id)} is not in ${group.name}`);
    }
    await this.#ask("GROUP_CHANGE", { name: group.name, action: "remove", user_id: id }, name);
  }

  /** `/group leave <name>`. */
  async leave(name: string): Promise<void> {
    const group = await this.#require(name);
    await this.#ask("GROUP_CHANGE", { name: group.name, action: "leave" }, name);
    this.#groups.delete(group.group_id);
  }

  /**
   * `/file <group> <path>`: the file to every other current member, encrypted for each and
   * sent as `/file <user>` sends it (file_transfer.ts), with the `group_id` on every frame.
   */
  async sendFile(group: ChatGroup, path: string, signal?: AbortSignal): Promise<void> {
    const { connection, identity } = this.#o;
    const emit = this.#o.onEvent;
    connection.requireOpen();
    const file = await readFileForCommand(path);
    if (connection.ready) {
      await this.#fetch();
      group = this.#groups.get(group.group_id) ?? group;
    }
    const members = group.members.filter((id) => id !== identity.userId);
    if (members.length === 0) {
      emit({ event: "info", text: `You are the only member of ${group.name}; nothing was sent` });
      return;
    }
    const total = Math.max(1, file.data.length * members.length);
    const progress = sendProgress(emit, file, { peer: group.name, recipients: members.length });
    await this.#fanOut(
      group,
      members,
      "file",
      (to, key, index) =>
        this.#o.files.sendCopy(to, file, {
          key,
          mode: "dm",
          groupId: group.group_id,
          ...(signal ? { signal } : {}),
          onProgress: (bytes) => progress(index * file.data.length + bytes),
        }),
      { file: file.name, size: file.data.length },
    );
    progress(total);
  }

  /**
   * A received file that came with a `group_id` (from file_transfer.ts): reported in the group
   * once the sender is checked as a member, in order with the group's messages; otherwise
   * reported as a file from the sender alone, with a warning.
   */
  reportFile(groupId: string, event: FileEvent): void {
    this.#enqueue(async () => {
      const group = await this.#groupOf(groupId, event.from);
      if (!group || !group.members.includes(event.from)) {
        this.#warn(
          `The file "${event.name}" from ${this.#o.presence.who(event.from)} was marked for ${
            group ? `${group.name}, which the sender is not a member of` : "a group not yours"
          } as far as the server says; it is shown as sent to you alone`,
        );
        this.#o.onEvent(event);
        return;
      }
      this.#o.onEvent({ ...event, group_id: group.group_id, group: group.name });
    });
  }

  /** GROUP_EVENT: updates the cache and tells the user (in order with group messages). */
  onGroupEvent(p: GroupEventPayload): void {
    this.#enqueue(async () => {
      const { identity, presence } = this.#o;
      const me = identity.userId;
      const key = `${p.group.group_id}\n${p.group.version}\n${p.action}\n${p.user_id}`;
      if (this.#seenEvents.isReplay(key)) return;
      const gone = (p.action === "left" || p.action === "removed") && p.user_id === me;
      if (gone) this.#groups.delete(p.group.group_id);
      else this.#remember(p.group);
      await this.#learnNames([...p.group.members, p.user_id, p.by]);
      this.#o.onEvent({
        event: "group_change",
        group_id: p.group.group_id,
        group: p.group.name,
        action: p.action,
        user_id: p.user_id,
        user_name: presence.nameOf(p.user_id),
        by: p.by,
        by_name: presence.nameOf(p.by),
        self: p.user_id === me,
        by_self: p.by === me,
        members: this.#named(p.group.members),
      });
    });
  }

  /** An incoming frame with a `group_id`: shown as a group message once checked. */
  receive(m: IncomingGroupMessage): void {
    this.#enqueue(() => this.#receive(m));
  }

  async #receive(m: IncomingGroupMessage): Promise<void> {
    const { identity: me, presence, keys } = this.#o;
    if (this.#seen.isReplay(m.contentSig ?? m.ciphertext)) {
      return this.#log.debug("replayed group message dropped");
    }
    let plain: string;
    try {
      plain = await decryptText(me.keys.privateKey, m.ciphertext);
    } catch {
      this.#warn(`could not decrypt a group message from ${presence.who(m.sender)}`);
      return;
    }
    const text = untagGroupText(m.groupId, plain);
    if (text === undefined) {
      this.#warn(
        `Dropped a message from ${
          presence.who(m.sender)
        } marked for a group whose id is not inside its encryption`,
      );
      return;
    }
    const check = await keys.verifyContent(m.sender, m.senderPub, m.contentSig, {
      ciphertext: m.ciphertext,
      from: m.sender,
      to: me.userId,
    }, m.tsList);
    const group = await this.#groupOf(m.groupId, m.sender);
    if (!group || !group.members.includes(m.sender)) {
      this.#warn(
        `Dropped a group message from ${presence.who(m.sender)}: ${
          group ? `not a member of ${group.name}` : "not in a group of yours"
        } as far as the server says`,
      );
      return;
    }
    await this.#learnNames([m.sender]);
    this.#o.onEvent({
      event: "group_message",
      group_id: group.group_id,
      group: group.name,
      from: m.sender,
      from_name: presence.nameOf(m.sender),
      text,
      ...check,
    });
  }

  /**
   * The group `groupId`, asking the server (GROUP_LIST) when it is not known here or does not
   * list `sender`; undefined when we are not in it. Runs on this module's queue only.
   */
  async #groupOf(groupId: string, sender: string): Promise<ChatGroup | undefined> {
    const group = this.#groups.get(groupId);
    if (group && group.members.includes(sender)) return group;
    await this.#fetch().catch((e) => this.#log.debug(`GROUP_LIST failed: ${errorMessage(e)}`));
    return this.#groups.get(groupId);
  }

  #enqueue(task: () => Promise<void>): void {
    this.#queue = this.#queue.then(task).catch((e) => {
      this.#log.debug(`group frame failed: ${e instanceof Error ? e.stack : String(e)}`);
      this.#warn(`Internal error while handling a group frame: ${errorMessage(e)}`);
    });
  }

  /** Encrypts `text` for every other member and sends it; reports refusals and queued copies. */
  async #sendText(group: ChatGroup, text: string): Promise<void> {
    const { connection, identity } = this.#o;
    connection.requireOpen();
    const members = group.members.filter((id) => id !== identity.userId);
    if (members.length === 0) {
      this.#o.onEvent({
        event: "info",
        text: `You are the only member of ${group.name}; the message was not sent`,
      });
      return;
    }
    const room = OAEP_MAX_PLAINTEXT - utf8.encode(tagGroupText(group.group_id, "")).length;
    const pieces = splitForOaep(text, room);
    await this.#fanOut(group, members, "message", async (to, key) => {
      let pending = false;
      for (const piece of pieces) {
        const how = await sendContent(this.#o, {
          type: "MSG_DIRECT",
          to,
          key,
          text: tagGroupText(group.group_id, piece),
          extra: { group_id: group.group_id },
        });
        if (how === "queued") pending = true;
      }
      return { parts: pieces.length, pending };
    });
  }

  /**
   * Sends to each member in turn (`sendTo`), then waits until the server has answered every
   * frame, and reports: `not_delivered` for members who blocked us, `group_sent` with how many
   * got it and how many of them were queued.
   */
  async #fanOut(
    group: ChatGroup,
    members: readonly string[],
    what: "message" | "file",
    sendTo: (
      to: string,
      key: PublicKey,
      index: number,
    ) => Promise<{ parts: number; pending: boolean }>,
    file: { file: string; size: number } | Record<never, never> = {},
  ): Promise<void> {
    const { connection, keys, presence, queued, blocked } = this.#o;
    const refusals = blocked.watch(members);
    const watches = members.map((id) => queued.watch(id)).filter((w): w is QueueWatch =>
      w !== undefined
    );
    try {
      let sent = 0;
      let parts = 0;
      let pending = false;
      for (const [index, to] of members.entries()) {
        let key: PublicKey;
        try {
          key = await keys.keyFor(to);
        } catch (e) {
          this.#warn(`Not sent to ${presence.who(to)} in ${group.name}: ${errorMessage(e)}`);
          continue;
        }
        const result = await sendTo(to, key, index);
        parts = result.parts;
        if (result.pending) pending = true;
        sent++;
      }
      if (sent === 0) throw new CommandError(`The ${what} reached nobody in ${group.name}`);
      if (!(await connection.barrier())) {
        this.#warn(`The server did not confirm that it took the ${what} for ${group.name}`);
      }
      const refused = blocked.report(refusals, "group", { group: group.name });
      this.#o.onEvent({
        event: "group_sent",
        group_id: group.group_id,
        group: group.name,
        recipients: Math.max(0, sent - refused),
        parts,
        queued: watches.filter((w) => w.acks > 0).length,
        ...file,
        ...(pending ? { pending: true } : {}),
      });
    } finally {
      blocked.unwatch(refusals);
      for (const w of watches) queued.unwatch(w);
    }
  }

  /** Sends a GROUP_CREATE / GROUP_CHANGE and returns the group from `ACK GROUP_OK`. */
  async #ask(
    type: string,
    payload: Record<string, string | string[]>,
    name: string,
  ): Promise<ChatGroup> {
    const { connection } = this.#o;
    connection.requireReady();
    const reply = await connection.request(
      type,
      payload,
      (f) =>
        (f.type === "ACK" && f.p.msg_ref === "GROUP_OK") ||
        (f.type === "ERROR" && GROUP_ERRORS.has(f.p.code)),
      { claim: true },
    );
    if (reply?.type === "ERROR") {
      const hint = reply.p.code === "NAME_IN_USE" ? "; choose another name" : "";
      throw new ServerError(reply.p.code, `${reply.p.detail ?? reply.p.code}${hint}`);
    }
    const group = reply?.type === "ACK" ? asChatGroup(reply.env.payload["group"]) : undefined;
    if (!group) {
      throw new CommandError(`The server did not confirm the change of group "${name}"; try again`);
    }
    if (group.members.includes(this.#o.identity.userId)) this.#remember(group);
    return group;
  }

  /** GROUP_LIST_REQUEST → the groups we are in (the cache is replaced). */
  async #fetch(): Promise<ChatGroup[]> {
    const { connection } = this.#o;
    const reply = await connection.request(
      "GROUP_LIST_REQUEST",
      {},
      (f) => f.type === "GROUP_LIST" || (f.type === "ERROR" && f.p.code === "UNKNOWN_TYPE"),
      { claim: true },
    );
    if (reply?.type === "ERROR") {
      throw new ServerError(reply.p.code, "This server has no group chats");
    }
    if (reply?.type !== "GROUP_LIST") {
      throw new CommandError("The server did not send the list of groups; try again");
    }
    this.#groups.clear();
    for (const g of reply.p.groups) this.#remember(g);
    this.#loaded = true;
    return [...this.#groups.values()].sort((a, b) => a.name.localeCompare(b.name));
  }

  async #require(name: string): Promise<ChatGroup> {
    this.#o.connection.requireReady();
    await this.#fetch();
    return this.#requireCached(name);
  }

  #requireCached(name: string): ChatGroup {
    const group = this.#byName(name);
    if (group) return group;
    throw new CommandError(
      `You are not in a group named "${name}"${
        this.#loaded ? "" : " (the list of groups could not be fetched)"
      }; /group list shows your groups`,
    );
  }

  #byName(name: string): ChatGroup | undefined {
    const lower = name.trim().toLowerCase();
    for (const g of this.#groups.values()) if (g.name.toLowerCase() === lower) return g;
    return undefined;
  }

  #remember(group: ChatGroup): void {
    const held = this.#groups.get(group.group_id);
    if (held && held.version > group.version) return;
    this.#groups.set(group.group_id, group);
  }

  /** A member by id, id prefix or name. */
  #member(group: ChatGroup, text: string): string | undefined {
    const wanted = text.trim().toLowerCase();
    const hits = group.members.filter((id) =>
      id === wanted || this.#o.presence.nameOf(id).toLowerCase() === wanted
    );
    if (hits.length === 1) return hits[0];
    const prefix = wanted.length >= 4 ? group.members.filter((id) => id.startsWith(wanted)) : [];
    return prefix.length === 1 ? prefix[0] : undefined;
  }

  /** Asks the server for the names of users we have no name for (PUBKEY_REQUEST). */
  async #learnNames(ids: readonly string[]): Promise<void> {
    const { connection, presence, identity } = this.#o;
    if (!connection.ready) return;
    const unknown = [...new Set(ids)].filter((id) =>
      id && id !== identity.userId && !presence.knowsName(id)
    ).slice(0, 32);
    await Promise.all(
      unknown.map((id) =>
        connection.request(
          "PUBKEY_REQUEST",
          { user_id: id },
          (f) =>
            (f.type === "PUBKEY_RESPONSE" && f.p.user_id === id) ||
            (f.type === "ERROR" && f.p.code === "USER_NOT_FOUND" &&
              (f.p.detail ?? "").includes(id)),
          { claim: true },
        ).catch(() => undefined)
      ),
    );
  }

  #named(ids: readonly string[]): NamedUser[] {
    return ids.map((id) => ({ user_id: id, display_name: this.#o.presence.nameOf(id) }));
  }

  #listed(group: ChatGroup): ListedGroup {
    const { presence, identity } = this.#o;
    return {
      group_id: group.group_id,
      name: group.name,
      creator_id: group.creator_id,
      members: group.members.map((id) => ({
        user_id: id,
        display_name: presence.nameOf(id),
        online: id === identity.userId || presence.isOnline(id),
        creator: id === group.creator_id,
      })),
    };
  }

  #warn(text: string): void {
    this.#o.onEvent({ event: "warn", text });
  }
}
