/**
 * Typed SOCP messages. {@linkcode decodeFrame} turns an {@linkcode Envelope} into one member of
 * the {@linkcode Frame} union (or `undefined` for a type socp does not know), accepting the
 * variants real peers send (Appendix D of the reference).
 *
 * @module
 */

import {
  type Envelope,
  isObject,
  isUuid,
  type JsonObject,
  type JsonValue,
  optArray,
  optNumber,
  optObject,
  optString,
  reqId,
  reqInt,
  reqObject,
  reqString,
  toEnvelope,
} from "./envelope.ts";
import { ProtocolError } from "./errors.ts";

/** Common envelope fields of a decoded frame; `env` is the envelope exactly as received. */
interface FrameBase<T extends string, P> {
  readonly type: T;
  readonly env: Envelope;
  readonly p: P;
}

/** Display metadata carried in `meta` (decorative only; routing never depends on it). */
export interface UserMeta {
  display_name?: string;
  pubkey?: string;
  /** socp extension: what the user's client can take (e.g. `file-aes-gcm`, docs/protocol.md). */
  caps?: string[];
}

/** USER_HELLO: a user's identifying first frame. */
export type UserHello = FrameBase<"USER_HELLO", {
  pubkey: string;
  enc_pubkey?: string;
  client?: string;
  meta: UserMeta;
  /** socp extension: the client's capabilities, copied by a socp server into `meta.caps`. */
  caps?: string[];
}>;
/** MSG_DIRECT (alias MSG_PRIVATE): an end-to-end encrypted DM from a user. */
export type MsgDirect = FrameBase<"MSG_DIRECT", {
  ciphertext: string;
  sender_pub?: string;
  content_sig?: string;
}>;
/** MSG_PUBLIC_CHANNEL: a public-channel message (per recipient, or `to` = public/`*`/group). */
export type MsgPublicChannel = FrameBase<"MSG_PUBLIC_CHANNEL", {
  ciphertext: string;
  sender_pub?: string;
  content_sig?: string;
  sender?: string;
}>;
/** FILE_START manifest; Group 17 sends no `sha256` (the file cannot be checked then). */
export type FileStart = FrameBase<"FILE_START", {
  file_id: string;
  name: string;
  size: number;
  sha256?: string;
  mode: "dm" | "public";
  /** socp extension: `aes-256-gcm` when the chunks are AES-GCM under a per-file key. */
  enc?: string;
  /** With `enc`: the per-file key, RSA-OAEP wrapped for the recipient. */
  key?: string;
}>;
/** FILE_CHUNK: one RSA-OAEP encrypted chunk (or AES-GCM, see FILE_START `enc`). */
export type FileChunk = FrameBase<"FILE_CHUNK", {
  file_id: string;
  index: number;
  ciphertext: string;
}>;
/**
 * FILE_END; for an `aes-256-gcm` transfer also the file's `sha256`, `size` and `file_sig`, the
 * sender's signature over them (docs/protocol.md).
 */
export type FileEnd = FrameBase<"FILE_END", {
  file_id: string;
  sha256?: string;
  size?: number;
  file_sig?: string;
}>;
/** USER_DELIVER: a DM delivered by the recipient's server. */
export type UserDeliver = FrameBase<"USER_DELIVER", {
  ciphertext: string;
  sender: string;
  sender_pub?: string;
  content_sig?: string;
  msg_ts?: number;
  orig_ts?: number;
}>;
/** USER_ADVERTISE: presence gossip. */
export type UserAdvertise = FrameBase<"USER_ADVERTISE", {
  user_id: string;
  server_id?: string;
  meta: UserMeta;
}>;
/** USER_REMOVE: presence gossip. */
export type UserRemove = FrameBase<"USER_REMOVE", { user_id: string; server_id?: string }>;
/**
 * PRESENCE_BATCH (socp extension, server → a client that announced `presence-batch` in
 * USER_HELLO `caps`): USER_ADVERTISE and USER_REMOVE envelopes in the order they happened,
 * each signed by the server. The batch itself carries no signature; a client checks every
 * inner envelope's (docs/protocol.md).
 */
export type PresenceBatch = FrameBase<"PRESENCE_BATCH", { frames: Envelope[] }>;
/** Most envelopes one PRESENCE_BATCH may carry. */
export const PRESENCE_BATCH_MAX_FRAMES = 4096;
/** LIST_REQUEST. */
export type ListRequest = FrameBase<"LIST_REQUEST", Record<string, never>>;
/** LIST_RESPONSE (socp sends both `online_users` and `users`). */
export type ListResponse = FrameBase<"LIST_RESPONSE", {
  users: string[];
  display_names: Record<string, string>;
}>;
/** PUBKEY_REQUEST. */
export type PubkeyRequest = FrameBase<"PUBKEY_REQUEST", { user_id: string }>;
/** PUBKEY_RESPONSE; no `pubkey` (Group 17 sends `null`) means the user is not known. */
export type PubkeyResponse = FrameBase<"PUBKEY_RESPONSE", {
  user_id: string;
  pubkey?: string;
  display_name?: string;
}>;
/** PUBLIC_CHANNEL_ADD. */
export type PublicChannelAdd = FrameBase<"PUBLIC_CHANNEL_ADD", {
  add: string[];
  if_version?: number;
}>;
/** One wrap of the public channel key. */
export interface KeyWrap {
  member_id: string;
  wrapped_key: string;
}
/** PUBLIC_CHANNEL_UPDATED (malformed wraps are dropped, not fatal). */
export type PublicChannelUpdated = FrameBase<"PUBLIC_CHANNEL_UPDATED", {
  version: number;
  wraps: KeyWrap[];
}>;
/** PUBLIC_CHANNEL_KEY_SHARE (`wrapped_public_channel_key` or `wrapped`). */
export type PublicChannelKeyShare = FrameBase<"PUBLIC_CHANNEL_KEY_SHARE", {
  shares: KeyWrap[];
  creator_pub?: string;
  content_sig?: string;
}>;
/** Server handshake frames that carry an address and key. */
export type ServerHello = FrameBase<
  "SERVER_HELLO_JOIN" | "SERVER_HELLO_LINK" | "PEER_HELLO_LINK" | "SERVER_ANNOUNCE",
  { host?: string; port?: number; pubkey?: string; server_id?: string }
>;
/** One server entry of a SERVER_WELCOME list. */
export interface ServerEntry {
  server_id: string;
  host?: string;
  port?: number;
  pubkey?: string;
}
/** SERVER_WELCOME (`servers` or `clients`, keyed `server_id`, `user_id` or `id`). */
export type ServerWelcome = FrameBase<"SERVER_WELCOME", {
  assigned_id?: string;
  servers: ServerEntry[];
  server_pub?: string;
  server_id?: string;
}>;
/** SERVER_DELIVER: forwarded delivery (a DM, or a wrapped FILE_* / public frame). */
export type ServerDeliver = FrameBase<"SERVER_DELIVER", {
  user_id: string;
  sender?: string;
  ciphertext?: string;
  sender_pub?: string;
  content_sig?: string;
  orig_ts?: number;
  msg_ts?: number;
  inner_type?: string;
}>;
/** HEARTBEAT. */
export type Heartbeat = FrameBase<"HEARTBEAT", JsonObject>;
/** ACK. */
export type Ack = FrameBase<"ACK", { msg_ref?: string }>;
/** ERROR. */
export type ErrorFrame = FrameBase<"ERROR", { code: string; detail?: string }>;
/** CTRL_CLOSE. */
export type CtrlClose = FrameBase<"CTRL_CLOSE", JsonObject>;

// socp account extension (docs/protocol.md, "Accounts").

/** REGISTER (after USER_HELLO): makes the connected identity an account. */
export type Register = FrameBase<"REGISTER", {
  username: string;
  privkey_store: JsonObject;
  verifier: string;
  /** Order of the account's signed statements (shared/account_record.ts). */
  seq: number;
  /** The account key's signature over the new record's statement. */
  record_sig: string;
}>;
/** LOGIN_START (first frame): asks for the KDF parameters of an account. */
export type LoginStart = FrameBase<"LOGIN_START", { username: string }>;
/** LOGIN_PARAMS: the KDF parameters (fake but stable ones for an unknown name). */
export type LoginParams = FrameBase<"LOGIN_PARAMS", { username: string; kdf: JsonObject }>;
/** LOGIN_PROOF: the auth key derived from the password. */
export type LoginProof = FrameBase<"LOGIN_PROOF", { username: string; auth_key: string }>;
/** LOGIN_OK: the account's id, public key and encrypted private key. */
export type LoginOk = FrameBase<"LOGIN_OK", {
  username: string;
  user_id: string;
  pubkey: string;
  privkey_store: JsonObject;
  /** `seq` of the record's current signed statement (0 when unknown). */
  seq: number;
}>;
/** PASSWD (after USER_HELLO): old auth key, new blob and verifier, signed by the account. */
export type Passwd = FrameBase<"PASSWD", {
  auth_key: string;
  privkey_store: JsonObject;
  verifier: string;
  seq: number;
  record_sig: string;
}>;
/** DELETE_ACCOUNT (after USER_HELLO): the tombstone's statement signed by the account. */
export type DeleteAccount = FrameBase<"DELETE_ACCOUNT", {
  auth_key: string;
  seq: number;
  record_sig: string;
}>;
/** ACCOUNTS_REQUEST: list account names matching a glob or /regex/. */
export type AccountsRequest = FrameBase<"ACCOUNTS_REQUEST", { pattern: string }>;
/** One row of ACCOUNTS_RESPONSE. */
export interface AccountEntry {
  username: string;
  user_id: string;
  online: boolean;
}
/** ACCOUNTS_RESPONSE. */
export type AccountsResponse = FrameBase<"ACCOUNTS_RESPONSE", {
  pattern: string;
  accounts: AccountEntry[];
}>;
/** DIRECTORY_UPDATE (server to server): one user record, gossiped mesh-wide. */
export type DirectoryUpdate = FrameBase<"DIRECTORY_UPDATE", { record: JsonObject }>;
/** LOGIN_FAILURE (server to server): a failed login, so blocking counts mesh-wide. */
export type LoginFailure = FrameBase<"LOGIN_FAILURE", { username: string; address?: string }>;

/**
 * QUEUE_STORE (server to server, server group only): one offline-queued message, replicated to
 * every live member of the group; answered with `ACK {msg_ref:"QUEUE_STORED", entry_id}`.
 */
export type QueueStore = FrameBase<"QUEUE_STORE", {
  entry_id: string;
  recipient: string;
  sender: string;
  /** The queued delivery's JSON text (ciphertext only). */
  frame: string;
  queued_at: number;
}>;
/** QUEUE_DONE (server to server, server group only): entries delivered, to drop everywhere. */
export type QueueDone = FrameBase<"QUEUE_DONE", { entry_ids: string[] }>;

// socp social extension (docs/protocol.md, "Block lists, presence history and groups").

/** BLOCKS_SET (user → server): the user's whole new block list, signed (shared/block_list.ts). */
export type BlocksSet = FrameBase<"BLOCKS_SET", { blocked: string[]; seq: number; sig: string }>;
/** BLOCKS_REQUEST (user → server): asks for the user's block list. */
export type BlocksRequest = FrameBase<"BLOCKS_REQUEST", JsonObject>;
/** BLOCKS_RESPONSE: the user's block list and its seq (0 when it has none). */
export type BlocksResponse = FrameBase<"BLOCKS_RESPONSE", { blocked: string[]; seq: number }>;
/** BLOCKS_UPDATE (server to server, group only): a signed block list. */
export type BlocksUpdate = FrameBase<"BLOCKS_UPDATE", {
  user_id: string;
  blocked: string[];
  seq: number;
  sig: string;
}>;
/** PRESENCE_SINCE_REQUEST: users online at any moment within the last `seconds`. */
export type PresenceSinceRequest = FrameBase<"PRESENCE_SINCE_REQUEST", { seconds: number }>;
/** One row of PRESENCE_SINCE_RESPONSE. */
export interface PresenceEntry {
  user_id: string;
  display_name?: string;
  online: boolean;
  /** When the user was last seen online (ms); now for users online now. */
  last_seen: number;
}
/** PRESENCE_SINCE_RESPONSE. */
export type PresenceSinceResponse = FrameBase<"PRESENCE_SINCE_RESPONSE", {
  seconds: number;
  users: PresenceEntry[];
}>;
/** A named group chat as servers describe it to users and to each other. */
export interface ChatGroup {
  group_id: string;
  name: string;
  creator_id: string;
  created_at: number;
  version: number;
  members: string[];
}
/** GROUP_CREATE (user → server). */
export type GroupCreate = FrameBase<"GROUP_CREATE", { name: string; members: string[] }>;
/** GROUP_CHANGE (user → server): add or remove a member, or leave. */
export type GroupChange = FrameBase<"GROUP_CHANGE", {
  name: string;
  action: "add" | "remove" | "leave";
  user_id?: string;
}>;
/** GROUP_LIST_REQUEST (user → server): the groups the user is a member of. */
export type GroupListRequest = FrameBase<"GROUP_LIST_REQUEST", JsonObject>;
/** GROUP_LIST: the user's groups with their members. */
export type GroupList = FrameBase<"GROUP_LIST", { groups: ChatGroup[] }>;
/** GROUP_EVENT (server → user): a group the user is in changed. */
export type GroupEvent = FrameBase<"GROUP_EVENT", {
  group: ChatGroup;
  action: "created" | "added" | "removed" | "left";
  user_id: string;
  by: string;
}>;
/** GROUP_UPDATE (server to server, group only): a group's state; a higher version wins. */
export type GroupUpdate = FrameBase<"GROUP_UPDATE", { group: ChatGroup }>;
/**
 * USER_UPDATE (user → server, socp): a new display name; the server answers
 * `ACK USER_UPDATE_OK` and advertises the user again (USER_ADVERTISE).
 */
export type UserUpdate = FrameBase<"USER_UPDATE", { display_name: string }>;

/** Every message type socp decodes. */
export type Frame =
  | UserHello
  | MsgDirect
  | MsgPublicChannel
  | FileStart
  | FileChunk
  | FileEnd
  | UserDeliver
  | UserAdvertise
  | UserRemove
  | PresenceBatch
  | ListRequest
  | ListResponse
  | PubkeyRequest
  | PubkeyResponse
  | PublicChannelAdd
  | PublicChannelUpdated
  | PublicChannelKeyShare
  | ServerHello
  | ServerWelcome
  | ServerDeliver
  | Heartbeat
  | Ack
  | ErrorFrame
  | CtrlClose
  | Register
  | LoginStart
  | LoginParams
  | LoginProof
  | LoginOk
  | Passwd
  | DeleteAccount
  | AccountsRequest
  | AccountsResponse
  | DirectoryUpdate
  | LoginFailure
  | QueueStore
  | QueueDone
  | BlocksSet
  | BlocksRequest
  | BlocksResponse
  | BlocksUpdate
  | PresenceSinceRequest
  | PresenceSinceResponse
  | GroupCreate
  | GroupChange
  | GroupListRequest
  | GroupList
  | GroupEvent
  | GroupUpdate
  | UserUpdate;

/** Every type name in {@linkcode Frame}. */
export type FrameType = Frame["type"];

/** Type names accepted as aliases, mapped to socp's name. */
export const TYPE_ALIASES: Readonly<Record<string, FrameType>> = {
  MSG_PRIVATE: "MSG_DIRECT",
  SERVER_FILE_START: "FILE_START",
  SERVER_FILE_CHUNK: "FILE_CHUNK",
  SERVER_FILE_END: "FILE_END",
  PUB_KEY_REQUEST: "PUBKEY_REQUEST",
};

/** Cuts a display name to 64 UTF-16 units without splitting a surrogate pair. */
function clip(name: string, max = 64): string {
  if (name.length <= max) return name;
  const code = name.charCodeAt(max - 1);
  return name.slice(0, code >= 0xd800 && code <= 0xdbff ? max - 1 : max);
}

function meta(p: JsonObject, type: string): UserMeta {
  const m = optObject(p, type, "meta") ?? {};
  const out: UserMeta = {};
  const name = m["display_name"] ?? m["username"] ?? m["name"];
  if (typeof name === "string" && name.length > 0) out.display_name = clip(name);
  const pubkey = m["pubkey"];
  if (typeof pubkey === "string" && pubkey.length > 0) out.pubkey = pubkey;
  const caps = capList(m["caps"]);
  if (caps.length > 0) out.caps = caps;
  return out;
}

/** At most 16 capability names of at most 64 characters; anything else is dropped. */
function capList(value: JsonValue | undefined): string[] {
  if (!Array.isArray(value)) return [];
  return value.filter((v): v is string => typeof v === "string" && v.length <= 64).slice(0, 16);
}

function idList(p: JsonObject, type: string, field: string): string[] {
  const list = optArray(p, type, field) ?? [];
  return list.filter((v): v is string => typeof v === "string");
}

function wraps(list: JsonValue[] | undefined, idKeys: string[], keyKeys: string[]): KeyWrap[] {
  const out: KeyWrap[] = [];
  for (const item of list ?? []) {
    if (!isObject(item)) continue;
    const id = idKeys.map((k) => item[k]).find((v) => typeof v === "string");
    const key = keyKeys.map((k) => item[k]).find((v) => typeof v === "string");
    if (typeof id === "string" && typeof key === "string") {
      out.push({ member_id: id, wrapped_key: key });
    }
  }
  return out;
}

function serverEntries(p: JsonObject): ServerEntry[] {
  const out: ServerEntry[] = [];
  const seen = new Set<string>();
  for (const field of ["servers", "clients"]) {
    const list = p[field];
    if (!Array.isArray(list)) continue;
    for (const item of list) {
      if (!isObject(item)) continue;
      const id = [item["server_id"], item["user_id"], item["id"]].find((v) => isUuid(v));
      if (typeof id !== "string" || seen.has(id)) continue;
      seen.add(id);
      const entry: ServerEntry = { server_id: id };
      if (typeof item["host"] === "string") entry.host = item["host"];
      if (typeof item["port"] === "number") entry.port = item["port"];
      if (typeof item["pubkey"] === "string") entry.pubkey = item["pubkey"];
      out.push(entry);
    }
  }
  return out;
}

function tsField(p: JsonObject, type: string, field: string): number | undefined {
  return optNumber(p, type, field);
}

/** A non-negative safe integer `seq`, or undefined when absent. */
function seqField(p: JsonObject, type: string): number | undefined {
  const seq = optNumber(p, type, "seq");
  if (seq !== undefined && (!Number.isSafeInteger(seq) || seq < 0)) {
    throw new ProtocolError("BAD_FRAME", `${type} seq must be a non-negative integer`);
  }
  return seq;
}

/** A list of ids (strings), at most 1,000, each at most 256 characters. */
function boundedIds(p: JsonObject, type: string, field: string): string[] {
  const list = optArray(p, type, field) ?? [];
  if (list.length > 1000) {
    throw new ProtocolError("BAD_FRAME", `${type} ${field} has more than 1000 entries`);
  }
  return list.filter((v): v is string => typeof v === "string" && v.length <= 256);
}

/** A {@linkcode ChatGroup} from the wire, or undefined when malformed. */
function chatGroup(value: unknown): ChatGroup | undefined {
  if (!isObject(value)) return undefined;
  const { group_id, name, creator_id, created_at, version, members } = value;
  if (
    typeof group_id !== "string" || typeof name !== "string" || name.length > 64 ||
    typeof creator_id !== "string" || !Array.isArray(members) || members.length > 1000
  ) return undefined;
  return {
    group_id,
    name,
    creator_id,
    created_at: typeof created_at === "number" ? created_at : 0,
    version: typeof version === "number" && Number.isSafeInteger(version) ? version : 0,
    members: members.filter((m): m is string => typeof m === "string" && m.length <= 256),
  };
}

/** `seq` and `record_sig` of an account change (shared/account_record.ts). */
function recordSig(p: JsonObject, type: string): { seq: number; record_sig: string } {
  const seq = seqField(p, type);
  if (seq === undefined) throw new ProtocolError("BAD_FRAME", `${type} needs "seq"`);
  return { seq, record_sig: reqString(p, type, "record_sig", 1024) };
}

function assign<T extends object>(target: T, key: keyof T, value: T[keyof T] | undefined): void {
  if (value !== undefined) target[key] = value;
}

/**
 * Decodes the payload of a known type. Returns `undefined` for an unknown type (the caller
 * answers UNKNOWN_TYPE) and throws `ProtocolError("BAD_FRAME")` for a malformed payload.
 *
 * @example
 * ```ts
 * import { decodeFrame } from "./frames.ts";
 * const f = decodeFrame({ type: "ERROR", from: "s", to: "u", ts: 1, payload: { code: "TIMEOUT" } });
 * console.assert(f?.type === "ERROR" && f.p.code === "TIMEOUT");
 * ```
 */
export function decodeFrame(env: Envelope): Frame | undefined {
  const type: string = TYPE_ALIASES[env.type] ?? env.type;
  const p = env.payload;
  switch (type) {
    case "USER_HELLO": {
      const out: UserHello["p"] = { pubkey: reqString(p, type, "pubkey"), meta: meta(p, type) };
      assign(out, "enc_pubkey", optString(p, type, "enc_pubkey"));
      assign(out, "client", optString(p, type, "client"));
      const caps = capList(p["caps"]);
      if (caps.length > 0) out.caps = caps;
      const name = optString(p, type, "display_name");
      if (name && !out.meta.display_name) out.meta.display_name = clip(name);
      return { type, env, p: out };
    }
    case "MSG_DIRECT":
    case "MSG_PUBLIC_CHANNEL": {
      const out: MsgDirect["p"] & MsgPublicChannel["p"] = {
        ciphertext: reqString(p, type, "ciphertext"),
      };
      assign(out, "sender_pub", optString(p, type, "sender_pub"));
      assign(out, "content_sig", optString(p, type, "content_sig"));
      if (type === "MSG_PUBLIC_CHANNEL") assign(out, "sender", optString(p, type, "sender"));
      return type === "MSG_DIRECT" ? { type, env, p: out } : { type, env, p: out };
    }
    case "FILE_START": {
      const mode = optString(p, type, "mode") ?? "dm";
      if (mode !== "dm" && mode !== "public") {
        throw new ProtocolError("BAD_FRAME", `FILE_START mode "${mode}" is not dm or public`);
      }
      const out: FileStart["p"] = {
        file_id: reqString(p, type, "file_id", 128),
        name: reqString(p, type, "name", 1024),
        size: reqInt(p, type, "size"),
        mode,
      };
      const sha256 = optString(p, type, "sha256");
      if (sha256 !== undefined && sha256.length > 128) {
        throw new ProtocolError("BAD_FRAME", 'FILE_START payload field "sha256" is too long');
      }
      assign(out, "sha256", sha256);
      assign(out, "enc", optString(p, type, "enc"));
      assign(out, "key", optString(p, type, "key"));
      return { type, env, p: out };
    }
    case "FILE_CHUNK": {
      const ciphertext = optString(p, type, "ciphertext") ?? optString(p, type, "chunk");
      if (ciphertext === undefined) {
        throw new ProtocolError("BAD_FRAME", 'FILE_CHUNK payload field "ciphertext" is missing');
      }
      return {
        type,
        env,
        p: {
          file_id: reqString(p, type, "file_id", 128),
          index: reqInt(p, type, "index"),
          ciphertext,
        },
      };
    }
    case "FILE_END": {
      const out: FileEnd["p"] = { file_id: reqString(p, type, "file_id", 128) };
      assign(out, "sha256", optString(p, type, "sha256"));
      const size = p["size"];
      if (typeof size === "number" && Number.isSafeInteger(size)) out.size = size;
      assign(out, "file_sig", optString(p, type, "file_sig"));
      return { type, env, p: out };
    }
    case "USER_DELIVER": {
      const out: UserDeliver["p"] = {
        ciphertext: reqString(p, type, "ciphertext"),
        sender: reqString(p, type, "sender", 256),
      };
      assign(out, "sender_pub", optString(p, type, "sender_pub"));
      assign(out, "content_sig", optString(p, type, "content_sig"));
      assign(out, "msg_ts", tsField(p, type, "msg_ts"));
      assign(out, "orig_ts", tsField(p, type, "orig_ts"));
      return { type, env, p: out };
    }
    case "USER_ADVERTISE": {
      const out: UserAdvertise["p"] = {
        user_id: reqString(p, type, "user_id", 256),
        meta: meta(p, type),
      };
      assign(out, "server_id", optString(p, type, "server_id"));
      return { type, env, p: out };
    }
    case "USER_REMOVE": {
      const out: UserRemove["p"] = { user_id: reqString(p, type, "user_id", 256) };
      assign(out, "server_id", optString(p, type, "server_id"));
      return { type, env, p: out };
    }
    case "PRESENCE_BATCH": {
      const list = p["frames"];
      if (!Array.isArray(list) || list.length > PRESENCE_BATCH_MAX_FRAMES) {
        throw new ProtocolError(
          "BAD_FRAME",
          `PRESENCE_BATCH "frames" must be a list of at most ${PRESENCE_BATCH_MAX_FRAMES}`,
        );
      }
      const frames = list.map((item) => {
        const inner = toEnvelope(item);
        if (inner.type !== "USER_ADVERTISE" && inner.type !== "USER_REMOVE") {
          throw new ProtocolError(
            "BAD_FRAME",
            `PRESENCE_BATCH may carry only USER_ADVERTISE and USER_REMOVE, not "${
              inner.type.slice(0, 64)
            }"`,
          );
        }
        return inner;
      });
      return { type, env, p: { frames } };
    }
    case "LIST_REQUEST":
      return { type, env, p: {} };
    case "LIST_RESPONSE": {
      let users = idList(p, type, "online_users");
      if (users.length === 0) users = idList(p, type, "users");
      const names: Record<string, string> = {};
      const given = optObject(p, type, "display_names") ?? {};
      for (const [id, name] of Object.entries(given)) {
        if (typeof name === "string") names[id] = name;
      }
      return { type, env, p: { users, display_names: names } };
    }
    case "PUBKEY_REQUEST":
      return { type, env, p: { user_id: reqString(p, type, "user_id", 256) } };
    case "PUBKEY_RESPONSE": {
      const out: PubkeyResponse["p"] = { user_id: reqString(p, type, "user_id", 256) };
      assign(out, "pubkey", optString(p, type, "pubkey"));
      assign(out, "display_name", optString(p, type, "display_name"));
      return { type, env, p: out };
    }
    case "PUBLIC_CHANNEL_ADD": {
      const out: PublicChannelAdd["p"] = { add: idList(p, type, "add") };
      assign(out, "if_version", optNumber(p, type, "if_version"));
      return { type, env, p: out };
    }
    case "PUBLIC_CHANNEL_UPDATED":
      return {
        type,
        env,
        p: {
          version: optNumber(p, type, "version") ?? 0,
          wraps: wraps(optArray(p, type, "wraps"), ["member_id", "member"], ["wrapped_key"]),
        },
      };
    case "PUBLIC_CHANNEL_KEY_SHARE": {
      const out: PublicChannelKeyShare["p"] = {
        shares: wraps(
          optArray(p, type, "shares"),
          ["member", "member_id"],
          ["wrapped_public_channel_key", "wrapped", "wrapped_key"],
        ),
      };
      assign(out, "creator_pub", optString(p, type, "creator_pub"));
      assign(out, "content_sig", optString(p, type, "content_sig"));
      return { type, env, p: out };
    }
    case "SERVER_HELLO_JOIN":
    case "SERVER_HELLO_LINK":
    case "PEER_HELLO_LINK":
    case "SERVER_ANNOUNCE": {
      const out: ServerHello["p"] = {};
      assign(out, "host", optString(p, type, "host"));
      const port = optNumber(p, type, "port");
      if (port !== undefined && (!Number.isInteger(port) || port < 0 || port > 65535)) {
        throw new ProtocolError("BAD_FRAME", `${type} port ${port} is out of range`);
      }
      assign(out, "port", port);
      assign(out, "pubkey", optString(p, type, "pubkey") ?? optString(p, type, "server_pub"));
      assign(out, "server_id", optString(p, type, "server_id"));
      return { type, env, p: out };
    }
    case "SERVER_WELCOME": {
      const out: ServerWelcome["p"] = { servers: serverEntries(p) };
      assign(out, "assigned_id", optString(p, type, "assigned_id"));
      assign(out, "server_pub", optString(p, type, "server_pub") ?? optString(p, type, "pubkey"));
      assign(out, "server_id", optString(p, type, "server_id"));
      return { type, env, p: out };
    }
    case "SERVER_DELIVER": {
      const out: ServerDeliver["p"] = { user_id: reqId(p, type, "user_id") };
      assign(out, "sender", optString(p, type, "sender"));
      assign(out, "ciphertext", optString(p, type, "ciphertext"));
      assign(out, "sender_pub", optString(p, type, "sender_pub"));
      assign(out, "content_sig", optString(p, type, "content_sig"));
      assign(out, "orig_ts", tsField(p, type, "orig_ts"));
      assign(out, "msg_ts", tsField(p, type, "msg_ts"));
      assign(out, "inner_type", optString(p, type, "inner_type"));
      return { type, env, p: out };
    }
    case "HEARTBEAT":
      return { type, env, p };
    case "ACK": {
      const out: Ack["p"] = {};
      assign(out, "msg_ref", optString(p, type, "msg_ref"));
      return { type, env, p: out };
    }
    case "ERROR": {
      const out: ErrorFrame["p"] = { code: optString(p, type, "code") ?? "UNKNOWN" };
      assign(out, "detail", optString(p, type, "detail") ?? optString(p, type, "message"));
      return { type, env, p: out };
    }
    case "CTRL_CLOSE":
      return { type, env, p };
    case "REGISTER":
      return {
        type,
        env,
        p: {
          username: reqString(p, type, "username", 64),
          privkey_store: reqObject(p, type, "privkey_store"),
          verifier: reqString(p, type, "verifier", 128),
          ...recordSig(p, type),
        },
      };
    case "LOGIN_START":
      return { type, env, p: { username: reqString(p, type, "username", 64) } };
    case "LOGIN_PARAMS":
      return {
        type,
        env,
        p: { username: reqString(p, type, "username", 64), kdf: reqObject(p, type, "kdf") },
      };
    case "LOGIN_PROOF":
      return {
        type,
        env,
        p: {
          username: reqString(p, type, "username", 64),
          auth_key: reqString(p, type, "auth_key", 128),
        },
      };
    case "LOGIN_OK":
      return {
        type,
        env,
        p: {
          username: reqString(p, type, "username", 64),
          user_id: reqId(p, type, "user_id"),
          pubkey: reqString(p, type, "pubkey"),
          privkey_store: reqObject(p, type, "privkey_store"),
          seq: seqField(p, type) ?? 0,
        },
      };
    case "PASSWD":
      return {
        type,
        env,
        p: {
          auth_key: reqString(p, type, "auth_key", 128),
          privkey_store: reqObject(p, type, "privkey_store"),
          verifier: reqString(p, type, "verifier", 128),
          ...recordSig(p, type),
        },
      };
    case "DELETE_ACCOUNT":
      return {
        type,
        env,
        p: { auth_key: reqString(p, type, "auth_key", 128), ...recordSig(p, type) },
      };
    case "ACCOUNTS_REQUEST":
      return { type, env, p: { pattern: reqString(p, type, "pattern", 200) } };
    case "ACCOUNTS_RESPONSE": {
      const accounts: AccountEntry[] = [];
      for (const item of optArray(p, type, "accounts") ?? []) {
        if (!isObject(item)) continue;
        const { username, user_id, online } = item;
        if (typeof username === "string" && typeof user_id === "string") {
          accounts.push({ username, user_id, online: online === true });
        }
      }
      return { type, env, p: { pattern: optString(p, type, "pattern") ?? "", accounts } };
    }
    case "DIRECTORY_UPDATE":
      return { type, env, p: { record: reqObject(p, type, "record") } };
    case "QUEUE_STORE": {
      const queuedAt = optNumber(p, type, "queued_at") ?? 0;
      return {
        type,
        env,
        p: {
          entry_id: reqString(p, type, "entry_id", 128),
          recipient: reqString(p, type, "recipient", 256),
          sender: reqString(p, type, "sender", 256),
          frame: reqString(p, type, "frame"),
          queued_at: Number.isSafeInteger(queuedAt) ? queuedAt : 0,
        },
      };
    }
    case "BLOCKS_SET":
      return {
        type,
        env,
        p: {
          blocked: boundedIds(p, type, "blocked"),
          seq: seqField(p, type) ?? 0,
          sig: reqString(p, type, "sig", 1024),
        },
      };
    case "BLOCKS_REQUEST":
    case "GROUP_LIST_REQUEST":
      return { type, env, p };
    case "BLOCKS_RESPONSE":
      return {
        type,
        env,
        p: { blocked: boundedIds(p, type, "blocked"), seq: seqField(p, type) ?? 0 },
      };
    case "BLOCKS_UPDATE":
      return {
        type,
        env,
        p: {
          user_id: reqString(p, type, "user_id", 256),
          blocked: boundedIds(p, type, "blocked"),
          seq: seqField(p, type) ?? 0,
          sig: reqString(p, type, "sig", 1024),
        },
      };
    case "PRESENCE_SINCE_REQUEST": {
      const seconds = optNumber(p, type, "seconds");
      if (seconds === undefined || !Number.isFinite(seconds) || seconds < 0) {
        throw new ProtocolError("BAD_FRAME", `${type} seconds must be a number ≥ 0`);
      }
      return { type, env, p: { seconds } };
    }
    case "PRESENCE_SINCE_RESPONSE": {
      const users: PresenceEntry[] = [];
      for (const item of optArray(p, type, "users") ?? []) {
        if (!isObject(item) || typeof item["user_id"] !== "string") continue;
        const entry: PresenceEntry = {
          user_id: item["user_id"],
          online: item["online"] === true,
          last_seen: typeof item["last_seen"] === "number" ? item["last_seen"] : 0,
        };
        if (typeof item["display_name"] === "string") entry.display_name = item["display_name"];
        users.push(entry);
      }
      return { type, env, p: { seconds: optNumber(p, type, "seconds") ?? 0, users } };
    }
    case "GROUP_CREATE":
      return {
        type,
        env,
        p: { name: reqString(p, type, "name", 64), members: boundedIds(p, type, "members") },
      };
    case "GROUP_CHANGE": {
      const action = optString(p, type, "action");
      if (action !== "add" && action !== "remove" && action !== "leave") {
        throw new ProtocolError("BAD_FRAME", `${type} action must be add, remove or leave`);
      }
      const out: GroupChange["p"] = { name: reqString(p, type, "name", 64), action };
      assign(out, "user_id", optString(p, type, "user_id"));
      return { type, env, p: out };
    }
    case "GROUP_LIST": {
      const groups: ChatGroup[] = [];
      for (const item of optArray(p, type, "groups") ?? []) {
        const group = chatGroup(item);
        if (group) groups.push(group);
      }
      return { type, env, p: { groups } };
    }
    case "GROUP_EVENT": {
      const group = chatGroup(p["group"]);
      const action = optString(p, type, "action");
      if (
        !group ||
        (action !== "created" && action !== "added" && action !== "removed" && action !== "left")
      ) {
        throw new ProtocolError("BAD_FRAME", `${type} needs a group and a known action`);
      }
      return {
        type,
        env,
        p: {
          group,
          action,
          user_id: optString(p, type, "user_id") ?? "",
          by: optString(p, type, "by") ?? "",
        },
      };
    }
    case "USER_UPDATE":
      return { type, env, p: { display_name: reqString(p, type, "display_name", 256) } };
    case "GROUP_UPDATE": {
      const group = chatGroup(p["group"]);
      if (!group) throw new ProtocolError("BAD_FRAME", `${type} needs a well-formed group`);
      return { type, env, p: { group } };
    }
    case "QUEUE_DONE":
      return {
        type,
        env,
        p: { entry_ids: idList(p, type, "entry_ids").filter((id) => id.length <= 128) },
      };
    case "LOGIN_FAILURE": {
      const out: LoginFailure["p"] = { username: reqString(p, type, "username", 64) };
      assign(out, "address", optString(p, type, "address"));
      return { type, env, p: out };
    }
    default:
      return undefined;
  }
}
