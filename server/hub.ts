/**
 * The hub: who is online where (`local_users`, `user_locations`), routing (spec §10), presence
 * fan-out to local clients, and the public channel. User sessions and the server mesh both
 * call into it; it never decrypts user content.
 *
 * @module
 */

import {
  encodeBase64Url,
  type Envelope,
  importPublicKeyText,
  type JsonObject,
  keySharePreimage,
  rsa,
  serializeEnvelope,
  signedEnvelope,
} from "../shared/mod.ts";
import type { Store } from "../storage/mod.ts";
import type { ServerIdentity } from "./identity.ts";
import { type Logger, short } from "./log.ts";
import type { Mesh } from "./mesh.ts";
import type { Clock } from "./rate_limit.ts";
import { SeenCache, seenKey } from "./seen_cache.ts";

/** A connected local user, as the hub sees it. */
export interface UserLink {
  /** The user id the connection said hello as. */
  readonly userId: string;
  /** Sends one frame (JSON text) to the user. */
  sendText(text: string): void;
  /** Closes the connection. */
  close(code: number, reason: string): void;
}

/** A user online somewhere in the mesh. */
export interface OnlineUser {
  /** User id. */
  userId: string;
  /** Hosting server id (this server's id for local users). */
  serverId: string;
  /** base64url public key, as advertised. */
  pubkey: string | undefined;
  /** Display name from `meta`, decorative only. */
  displayName: string | undefined;
}

/** The user frame types the hub routes to one recipient. */
export type DeliveryType =
  | "MSG_DIRECT"
  | "MSG_PUBLIC_CHANNEL"
  | "FILE_START"
  | "FILE_CHUNK"
  | "FILE_END";

/** One user frame on its way to one recipient. */
export interface Delivery {
  /** The user frame type. */
  type: DeliveryType;
  /** Sending user id. */
  sender: string;
  /** Receiving user id. */
  recipient: string;
  /** Original ts of the user frame (content signatures cover it). */
  ts: number;
  /** The user's payload, unchanged. */
  payload: JsonObject;
}

/** What happened to a delivery. */
export type RouteResult = "local" | "remote" | "queued" | "not_found";

/** Payload keys the hub adds around a user payload when relaying it. */
const RELAY_KEYS = new Set(["user_id", "sender", "inner_type", "orig_ts", "msg_ts"]);

/** Hooks that later layers (accounts, offline delivery) plug into routing. */
export interface HubHooks {
  /** Called for a recipient who is not online anywhere; may queue it. */
  offline?(delivery: Delivery): Promise<"queued" | "not_found">;
  /** Called when a user comes online anywhere in the mesh. */
  online?(userId: string): Promise<void>;
  /** Called when a local user says hello for the first time (a new directory record). */
  newUser?(userId: string): Promise<void>;
}

/** Options for {@linkcode Hub}. */
export interface HubOptions {
  /** This server's identity. */
  identity: ServerIdentity;
  /** Persistent storage. */
  store: Store;
  /** Logger. */
  log: Logger;
  /** Clock (ms). */
  clock?: Clock;
}

/** The routing core of one server. */
export class Hub {
  /** This server's id. */
  readonly serverId: string;
  /** This server's identity. */
  readonly identity: ServerIdentity;
  /** Persistent storage. */
  readonly store: Store;
  /** Logger. */
  readonly log: Logger;
  /** Loop and replay suppression for server-relayed frames. */
  readonly seen: SeenCache;
  /** Hooks for offline delivery. */
  hooks: HubHooks = {};
  #clock: Clock;
  #local = new Map<string, UserLink>();
  #online = new Map<string, OnlineUser>();
  #mesh: Mesh | undefined;
  #publicVersion = 0;
  #rotation: Promise<void> = Promise.resolve();

  /** Creates a hub with no users. */
  constructor(options: HubOptions) {
    this.identity = options.identity;
    this.serverId = options.identity.serverId;
    this.store = options.store;
    this.log = options.log;
    this.#clock = options.clock ?? Date.now;
    this.seen = new SeenCache({ clock: this.#clock });
  }

  /** Connects the mesh (set once at start-up). */
  attachMesh(mesh: Mesh): void {
    this.#mesh = mesh;
  }

  /** Loads persisted state (public channel version). */
  async init(): Promise<void> {
    const group = await this.store.getGroup("public");
    if (group) this.#publicVersion = group.version;
    else {
      await this.store.putGroup({
        group_id: "public",
        creator_id: "system",
        created_at: this.now(),
        meta: JSON.stringify({ title: "Public channel" }),
        version: 0,
      });
    }
  }

  /** Milliseconds now. */
  now(): number {
    return Math.floor(this.#clock());
  }

  /** Signs and serialises a frame born at this server. */
  async emit(type: string, to: string, payload: JsonObject, ts = this.now()): Promise<string> {
    return (await this.#sign({ type, from: this.serverId, to, ts, payload })).text;
  }

  /** Signs a frame with explicit envelope fields (e.g. `from` kept as the user). */
  async reissue(fields: Omit<Envelope, "sig">): Promise<string> {
    return (await this.#sign(fields)).text;
  }

  async #sign(fields: Omit<Envelope, "sig">): Promise<{ env: Envelope; text: string }> {
    const env = await signedEnvelope(this.identity.privateKey, fields);
    return { env, text: serializeEnvelope(env) };
  }

  /**
   * Signs a frame for the mesh, remembers it as seen (so its echo is dropped) and sends it to
   * every linked server. `from` defaults to this server, `to` to `*`. Returns the text, e.g.
   * for local clients too.
   */
  async gossip(
    type: string,
    payload: JsonObject,
    fields: { from?: string; to?: string; ts?: number } = {},
  ): Promise<string> {
    const { env, text } = await this.#sign({
      type,
      from: fields.from ?? this.serverId,
      to: fields.to ?? "*",
      ts: fields.ts ?? this.now(),
      payload,
    });
    this.seen.add(await seenKey(env));
    this.sendToServers(text);
    return text;
  }

  // -------------------------------------------------------------------------------------------
  // Directory

  /** A user online anywhere, by id. */
  onlineUser(userId: string): OnlineUser | undefined {
    return this.#online.get(userId);
  }

  /** Every online user, sorted by id. */
  onlineUsers(): OnlineUser[] {
    return [...this.#online.values()].sort((a, b) => (a.userId < b.userId ? -1 : 1));
  }

  /** The local link of a user. */
  localLink(userId: string): UserLink | undefined {
    return this.#local.get(userId);
  }

  /** Local user ids. */
  localUserIds(): string[] {
    return [...this.#local.keys()];
  }

  /** Sends a text to every local user except `except`. */
  sendToLocal(text: string, except?: string): void {
    for (const [id, link] of this.#local) if (id !== except) link.sendText(text);
  }

  /** Sends a text to every linked server except `except`. */
  sendToServers(text: string, except?: string): void {
    this.#mesh?.broadcast(text, except);
  }

  /** The mesh, when attached. */
  get mesh(): Mesh | undefined {
    return this.#mesh;
  }

  /** The USER_ADVERTISE payload for a user. */
  advertPayload(user: OnlineUser): JsonObject {
    const meta: JsonObject = {};
    if (user.displayName !== undefined) meta.display_name = user.displayName;
    if (user.pubkey !== undefined) meta.pubkey = user.pubkey;
    return { user_id: user.userId, server_id: user.serverId, meta };
  }

  /** Registers a local user who said hello; tells the mesh and the local clients. */
  async addLocalUser(link: UserLink, user: Omit<OnlineUser, "serverId">): Promise<void> {
    const entry: OnlineUser = { ...user, serverId: this.serverId };
    this.#local.set(link.userId, link);
    this.#online.set(link.userId, entry);
    this.log.info(
      `user ${short(link.userId)} "${user.displayName ?? ""}" online (${this.#local.size} local)`,
    );
    // Catch-up: everyone already online, as adverts addressed to the new user.
    const others = this.onlineUsers().filter((u) => u.userId !== link.userId);
    const catchUp = await Promise.all(
      others.map((u) => this.emit("USER_ADVERTISE", link.userId, this.advertPayload(u))),
    );
    for (const text of catchUp) link.sendText(text);
    const advert = await this.gossip("USER_ADVERTISE", this.advertPayload(entry));
    this.sendToLocal(advert, link.userId);
    await this.rotatePublicKey([link.userId]);
    await this.#notifyOnline(link.userId);
  }

  async #notifyOnline(userId: string): Promise<void> {
    try {
      await this.hooks.online?.(userId);
    } catch (error) {
      this.log.error(
        `delivering queued frames to ${short(userId)} failed: ${(error as Error).message}`,
      );
    }
  }

  /** Removes a local user whose connection closed. */
  async removeLocalUser(link: UserLink): Promise<void> {
    if (this.#local.get(link.userId) !== link) return;
    this.#local.delete(link.userId);
    const entry = this.#online.get(link.userId);
    if (entry?.serverId === this.serverId) this.#online.delete(link.userId);
    this.log.info(`user ${short(link.userId)} offline (${this.#local.size} local)`);
    const remove = await this.gossip("USER_REMOVE", {
      user_id: link.userId,
      server_id: this.serverId,
    });
    this.sendToLocal(remove);
  }

  /**
   * A remote server advertised a user (already verified and deduplicated). Returns false when
   * the advert is refused: the user is connected here (a live local session is never ended by
   * another server's claim), or the advert carries a key other than the one this server knows
   * for the user (a linked server cannot take over someone else's identity).
   */
  async remoteAdvertise(user: OnlineUser): Promise<boolean> {
    if (this.#local.has(user.userId)) {
      this.log.warn(
        `server ${short(user.serverId)} advertised ${
          short(user.userId)
        }, who is connected here; ignored`,
      );
      return false;
    }
    const known = this.#online.get(user.userId);
    const record = known?.pubkey ? undefined : await this.store.getUser(user.userId);
    const knownKey = known?.pubkey ?? (record && !record.deleted ? record.pubkey : undefined);
    if (knownKey !== undefined && user.pubkey !== undefined && knownKey !== user.pubkey) {
      this.log.warn(
        `server ${short(user.serverId)} advertised ${
          short(user.userId)
        } with a different key; ignored`,
      );
      return false;
    }
    const entry: OnlineUser = { ...user, pubkey: user.pubkey ?? knownKey };
    this.#online.set(user.userId, entry);
    if (
      known && known.serverId === entry.serverId && known.pubkey === entry.pubkey &&
      known.displayName === entry.displayName
    ) return true;
    this.sendToLocal(await this.emit("USER_ADVERTISE", "*", this.advertPayload(entry)));
    if (known?.serverId !== entry.serverId) await this.#notifyOnline(entry.userId);
    return true;
  }

  /** A remote server removed a user; only the hosting server may do so (spec §7.6). */
  async remoteRemove(userId: string, serverId: string): Promise<boolean> {
    const known = this.#online.get(userId);
    if (!known || known.serverId !== serverId) return false;
    this.#online.delete(userId);
    this.sendToLocal(await this.emit("USER_REMOVE", "*", { user_id: userId, server_id: serverId }));
    return true;
  }

  /** A server went away: its users disappear. */
  async serverLost(serverId: string): Promise<void> {
    const gone = [...this.#online.values()].filter((u) => u.serverId === serverId);
    for (const user of gone) await this.remoteRemove(user.userId, serverId);
    if (gone.length > 0) {
      this.log.info(`server ${short(serverId)} lost: ${gone.length} users removed`);
    }
  }

  /** USER_ADVERTISE payloads for every local user, e.g. for a newly linked server. */
  localAdvertPayloads(): JsonObject[] {
    return [...this.#local.keys()].map((id) => this.advertPayload(this.#online.get(id)!));
  }

  // -------------------------------------------------------------------------------------------
  // Routing

  /** The frame a local recipient gets for a delivery, signed by this server. */
  localFrame(d: Delivery): Promise<string> {
    const senderPub = d.payload["sender_pub"] ?? this.#online.get(d.sender)?.pubkey;
    if (d.type === "MSG_DIRECT") {
      const payload: JsonObject = {
        ciphertext: d.payload["ciphertext"] ?? "",
        sender: d.sender,
        sender_pub: senderPub ?? "",
        content_sig: d.payload["content_sig"] ?? "",
        orig_ts: d.ts,
        msg_ts: d.ts,
      };
      return this.emit("USER_DELIVER", d.recipient, payload, d.ts);
    }
    const payload: JsonObject = { ...d.payload, sender: d.sender, orig_ts: d.ts, msg_ts: d.ts };
    if (senderPub !== undefined && d.type === "MSG_PUBLIC_CHANNEL") payload.sender_pub = senderPub;
    return this.reissue({ type: d.type, from: d.sender, to: d.recipient, ts: d.ts, payload });
  }

  /** The SERVER_DELIVER that carries a delivery to the recipient's server. */
  serverDeliverFrame(d: Delivery, toServer: string): Promise<{ env: Envelope; text: string }> {
    const base: JsonObject = {
      user_id: d.recipient,
      sender: d.sender,
      orig_ts: d.ts,
      msg_ts: d.ts,
    };
    const payload: JsonObject = d.type === "MSG_DIRECT"
      ? {
        ...base,
        ciphertext: d.payload["ciphertext"] ?? "",
        sender_pub: d.payload["sender_pub"] ?? this.#online.get(d.sender)?.pubkey ?? "",
        content_sig: d.payload["content_sig"] ?? "",
      }
      : { ...stripRelayKeys(d.payload), ...base, inner_type: d.type };
    return this.#sign({
      type: "SERVER_DELIVER",
      from: this.serverId,
      to: toServer,
      ts: d.ts,
      payload,
    });
  }

  /**
   * Routes one delivery (spec §10): local → the user's link; remote → SERVER_DELIVER to the
   * hosting server; otherwise the offline hook, else not found. Returns a promise of the send
   * step, so callers can sign concurrently and still send in order; the step returns false when
   * the recipient's link went away in the meantime (nothing was sent).
   */
  route(d: Delivery): { result: RouteResult; send: Promise<() => boolean> } {
    const link = this.#local.get(d.recipient);
    if (link) {
      const text = this.localFrame(d);
      return {
        result: "local",
        send: text.then((t) => () => {
          if (this.#local.get(d.recipient) !== link) return false;
          link.sendText(t);
          return true;
        }),
      };
    }
    const remote = this.#online.get(d.recipient);
    // With no live link to the user's server (it died and presence is not yet corrected), the
    // delivery goes to the offline queue instead of being dropped.
    if (
      remote && remote.serverId !== this.serverId && this.#mesh &&
      this.#mesh.linkedServers().includes(remote.serverId)
    ) {
      const mesh = this.#mesh;
      const signed = this.serverDeliverFrame(d, remote.serverId);
      const seen = signed.then(async ({ env }) => this.seen.add(await seenKey(env)));
      return {
        result: "remote",
        send: Promise.all([signed, seen]).then(([{ text }]) => () => {
          if (mesh.sendToServer(remote.serverId, text)) return true;
          this.log.warn(`no link to server ${short(remote.serverId)}; delivery dropped`);
          return false;
        }),
      };
    }
    return { result: "not_found", send: Promise.resolve(() => false) };
  }

  /**
   * Fans a channel-wide frame (MSG_PUBLIC_CHANNEL or FILE_* with `to` public, `*` or a group)
   * out to every local user except the sender and to the mesh. A frame from a local user is
   * signed here once for the mesh; a frame from a server is forwarded unchanged.
   */
  async fanOut(env: Envelope, original: string | undefined, originServer?: string): Promise<void> {
    const sender = typeof env.payload["sender"] === "string" ? env.payload["sender"] : env.from;
    const payload: JsonObject = { ...env.payload, sender };
    const fields = { type: env.type, from: env.from, to: env.to, ts: env.ts, payload };
    if (originServer === undefined) {
      // From a local user: signed once, for the mesh and the local users alike.
      const text = await this.gossip(env.type, payload, { from: env.from, to: env.to, ts: env.ts });
      this.sendToLocal(text, sender);
      return;
    }
    this.sendToLocal(await this.reissue(fields), sender);
    if (original !== undefined) this.sendToServers(original, originServer);
  }

  // -------------------------------------------------------------------------------------------
  // Public channel

  /** The current public channel version. */
  get publicVersion(): number {
    return this.#publicVersion;
  }

  /** Raises the known public channel version (from a peer's UPDATED). */
  notePublicVersion(version: number): void {
    if (Number.isSafeInteger(version) && version > this.#publicVersion) {
      this.#publicVersion = version;
    }
  }

  /**
   * A membership change: a fresh 256-bit key for the next version, wrapped with RSA-OAEP under
   * every online member's key, stored as `group_members` rows, and announced with
   * PUBLIC_CHANNEL_ADD, PUBLIC_CHANNEL_UPDATED (mesh and local clients) and
   * PUBLIC_CHANNEL_KEY_SHARE (local clients). The clear key is never stored or sent.
   */
  rotatePublicKey(added: string[]): Promise<void> {
    this.#rotation = this.#rotation.then(() => this.#rotate(added)).catch((error) => {
      this.log.error(`public channel key rotation failed: ${(error as Error).message}`);
    });
    return this.#rotation;
  }

  async #rotate(added: string[]): Promise<void> {
    const previous = this.#publicVersion;
    const version = previous + 1;
    this.#publicVersion = version;
    const key = crypto.getRandomValues(new Uint8Array(32));
    const members = this.onlineUsers().filter((u) => u.pubkey !== undefined);
    const wraps = (await Promise.all(members.map(async (m) => {
      try {
        const pub = await importPublicKeyText(m.pubkey!);
        return { member_id: m.userId, wrapped_key: encodeBase64Url(await rsa().encrypt(pub, key)) };
      } catch {
        return undefined;
      }
    }))).filter((w): w is { member_id: string; wrapped_key: string } => w !== undefined);
    key.fill(0);
    const now = this.now();
    const group = await this.store.getGroup("public");
    await this.store.replaceGroup(
      {
        group_id: "public",
        creator_id: "system",
        created_at: group?.created_at ?? now,
        meta: group?.meta ?? "",
        version,
      },
      wraps.map((w) => ({
        group_id: "public",
        member_id: w.member_id,
        role: "member",
        wrapped_key: w.wrapped_key,
        added_at: now,
      })),
    );
    this.sendToLocal(await this.gossip("PUBLIC_CHANNEL_ADD", { add: added, if_version: previous }));
    this.sendToLocal(await this.gossip("PUBLIC_CHANNEL_UPDATED", { version, wraps }));
    const shares = wraps
      .filter((w) => this.#local.has(w.member_id))
      .map((w) => ({ member: w.member_id, wrapped_public_channel_key: w.wrapped_key }));
    if (shares.length > 0) {
      const creatorPub = this.identity.publicKeyText;
      const contentSig = encodeBase64Url(
        await rsa().sign(this.identity.privateKey, await keySharePreimage(shares, creatorPub)),
      );
      this.sendToLocal(
        await this.emit("PUBLIC_CHANNEL_KEY_SHARE", "*", {
          shares,
          creator_pub: creatorPub,
          content_sig: contentSig,
          version,
        }),
      );
    }
  }
}

/** The payload without the keys a relay adds. */
export function stripRelayKeys(payload: JsonObject): JsonObject {
  const out: JsonObject = {};
  for (const [k, v] of Object.entries(payload)) if (!RELAY_KEYS.has(k)) out[k] = v;
  return out;
}

/** Targets that mean "the whole public channel" rather than one member. */
export function isChannelTarget(to: string): boolean {
  return to === "public" || to === "*" || !/^[0-9a-f]{8}-[0-9a-f]{4}-/i.test(to);
}
