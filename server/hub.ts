/**
 * The hub: who is online where (`local_users`, `user_locations`), routing (spec §10), presence
 * fan-out to local clients, and the public channel. User sessions and the server mesh both
 * call into it; it never decrypts user content.
 *
 * @module
 */

import {
  encodeBase64Url,
  encodePublicKey,
  type Envelope,
  importPublicKeyText,
  type JsonObject,
  keySharePreimage,
  plural,
  type PresenceEntry,
  rsa,
  serializeEnvelope,
  signedEnvelope,
} from "../shared/mod.ts";
import type { Store } from "../storage/mod.ts";
import type { ServerIdentity } from "./identity.ts";
import { type Logger, short } from "./log.ts";
import type { Mesh } from "./mesh.ts";
import { ServerMetrics } from "./metrics.ts";
import type { Clock } from "./rate_limit.ts";
import { SeenCache, seenKey, stripRelayKeys } from "./seen_cache.ts";
import { SignScheduler } from "./sign_scheduler.ts";

/** A connected local user, as the hub sees it. */
export interface UserLink {
  /** The user id the connection said hello as. */
  readonly userId: string;
  /** Sends one frame (JSON text) to the user. */
  sendText(text: string): void;
  /**
   * Sends one signed USER_ADVERTISE or USER_REMOVE; a link may collect these into batches
   * (server/presence_batch.ts). Without it, {@linkcode sendText} is used.
   */
  sendPresence?(text: string): void;
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
  /** What the user's client can take (socp: {@linkcode USER_CAPS}), advertised in `meta.caps`. */
  caps?: string[];
}

/**
 * Client capabilities a socp server passes on from USER_HELLO `caps` to USER_ADVERTISE
 * `meta.caps`: `file-aes-gcm`, the client takes AES-GCM file chunks (docs/protocol.md, "Files").
 */
export const USER_CAPS: readonly string[] = ["file-aes-gcm"];

/** Sends a presence frame on `link`, in a batch when the link collects them. */
function presenceTo(link: UserLink, text: string): void {
  if (link.sendPresence) link.sendPresence(text);
  else link.sendText(text);
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
  /**
   * Joins within this many ms are announced to the public channel together (default 0: each
   * at once). A server uses a short window so that a burst of joins costs one announcement.
   */
  channelBatchMs?: number;
  /** Metrics of this server (default: a fresh registry). */
  metrics?: ServerMetrics;
  /** Admission of this server's signatures (default: a scheduler sized to the cores). */
  signer?: SignScheduler;
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
  /** Metrics of this server. */
  readonly metrics: ServerMetrics;
  /** Every signature this server makes waits here for a slot, fairly across connections. */
  readonly signer: SignScheduler;
  /** Hooks for offline delivery. */
  hooks: HubHooks = {};
  #clock: Clock;
  #local = new Map<string, UserLink>();
  #online = new Map<string, OnlineUser>();
  /** When each user was last seen online (ms), for users who went offline. */
  #lastSeen = new Map<string, { at: number; displayName: string | undefined }>();
  /** Who blocked whom (set at start-up by the block-list service). */
  blockLists: { blocks(owner: string, other: string): boolean } | undefined;
  #mesh: Mesh | undefined;
  #publicVersion = 0;
  #rotation: Promise<void> = Promise.resolve();
  /** This run's public channel key (memory only; never stored or sent in the clear). */
  #channelKey: Uint8Array | undefined;
  /** Users who joined since the last channel announcement (announced in one batch). */
  #pendingJoins: string[] = [];
  #channelBatchMs: number;
  #announceTimer: ReturnType<typeof setTimeout> | undefined;
  /**
   * The signed USER_ADVERTISE text last sent to local clients for each online user, so a
   * joining user's catch-up costs no signature.
   */
  #advertTexts = new Map<string, string>();

  /** Creates a hub with no users. */
  constructor(options: HubOptions) {
    this.identity = options.identity;
    this.serverId = options.identity.serverId;
    this.store = options.store;
    this.log = options.log;
    this.#clock = options.clock ?? Date.now;
    this.seen = new SeenCache({ clock: this.#clock });
    this.metrics = options.metrics ?? new ServerMetrics();
    this.signer = options.signer ?? new SignScheduler();
    this.#channelBatchMs = options.channelBatchMs ?? 0;
  }

  /** Stops the channel announcement timer (pending joins are announced first). */
  async close(): Promise<void> {
    if (this.#announceTimer !== undefined) {
      clearTimeout(this.#announceTimer);
      this.#announceTimer = undefined;
      this.#rotation = this.#rotation.then(() => this.#announceJoins());
    }
    await this.#rotation.catch(() => {});
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
    const queuedAt = this.metrics.now();
    let started = queuedAt;
    const env = await this.signer.schedule(() => {
      started = this.metrics.now();
      return signedEnvelope(this.identity.privateKey, fields);
    });
    this.metrics.frameSigned(fields.type, fields.payload, {
      seconds: (this.metrics.now() - started) / 1000,
      waitSeconds: (started - queuedAt) / 1000,
    });
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
    fields: { from?: string; to?: string; ts?: number; groupOnly?: boolean } = {},
  ): Promise<string> {
    // Private state with no server of the group linked: nobody to tell, nothing to sign.
    if (
      fields.groupOnly && !this.#mesh?.linkedServers().some((id) => this.#mesh!.isGroupServer(id))
    ) {
      return "";
    }
    const { env, text } = await this.#sign({
      type,
      from: fields.from ?? this.serverId,
      to: fields.to ?? "*",
      ts: fields.ts ?? this.now(),
      payload,
    });
    this.seen.add(seenKey(env));
    if (fields.groupOnly) this.#mesh?.broadcastGroup(text);
    else this.sendToServers(text);
    return text;
  }

  // -------------------------------------------------------------------------------------------
  // Directory

  /** The key this server knows for a user: from presence, else from its live stored record. */
  async knownKey(userId: string): Promise<string | undefined> {
    const online = this.#online.get(userId)?.pubkey;
    if (online !== undefined) return online;
    const record = await this.store.getUser(userId);
    return record && !record.deleted && record.pubkey !== "" ? record.pubkey : undefined;
  }

  /** True when the user is online somewhere or has a live record here. */
  async isKnownUser(userId: string): Promise<boolean> {
    if (this.#online.has(userId)) return true;
    const record = await this.store.getUser(userId);
    return record !== undefined && !record.deleted;
  }

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

  /** True when `subject` has blocked `viewer`: the viewer does not see the subject. */
  hiddenFrom(viewer: string, subject: string): boolean {
    return this.blockLists?.blocks(subject, viewer) ?? false;
  }

  /**
   * Sends a presence frame about `subject` to every local user except `except` and those the
   * subject has blocked (a blocked user does not see the blocker's presence).
   */
  sendPresence(text: string, subject: string, except?: string): void {
    for (const [id, link] of this.#local) {
      if (id !== except && !this.hiddenFrom(id, subject)) presenceTo(link, text);
    }
  }

  /** Notes that a user went offline now (presence history). */
  #wentOffline(userId: string, displayName: string | undefined): void {
    if (this.#lastSeen.size >= 100_000) {
      const cutoff = this.now() - 86_400_000;
      for (const [id, seen] of this.#lastSeen) if (seen.at < cutoff) this.#lastSeen.delete(id);
      if (this.#lastSeen.size >= 100_000) {
        this.#lastSeen.delete(this.#lastSeen.keys().next().value!);
      }
    }
    this.#lastSeen.set(userId, { at: this.now(), displayName });
  }

  /**
   * Users online at any moment within the last `seconds`, as `viewer` may see them: everyone
   * online now and everyone who went offline since, without the viewer and without users who
   * blocked the viewer. Sorted by id.
   */
  presenceSince(viewer: string, seconds: number): PresenceEntry[] {
    const now = this.now();
    const since = now - seconds * 1000;
    const out = new Map<string, PresenceEntry>();
    for (const [id, seen] of this.#lastSeen) {
      if (seen.at < since) continue;
      const entry: PresenceEntry = { user_id: id, online: false, last_seen: seen.at };
      if (seen.displayName !== undefined) entry.display_name = seen.displayName;
      out.set(id, entry);
    }
    for (const u of this.#online.values()) {
      const entry: PresenceEntry = { user_id: u.userId, online: true, last_seen: now };
      if (u.displayName !== undefined) entry.display_name = u.displayName;
      out.set(u.userId, entry);
    }
    out.delete(viewer);
    return [...out.values()]
      .filter((e) => !this.hiddenFrom(viewer, e.user_id))
      .sort((a, b) => (a.user_id < b.user_id ? -1 : 1));
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
    if (user.caps !== undefined && user.caps.length > 0) meta.caps = [...user.caps];
    return { user_id: user.userId, server_id: user.serverId, meta };
  }

  /**
   * A local user changed the display name (USER_UPDATE): advertised again to the mesh and to
   * the local clients, as at hello.
   */
  async updateLocalUser(link: UserLink, displayName: string): Promise<void> {
    const entry = this.#online.get(link.userId);
    if (this.#local.get(link.userId) !== link || entry?.serverId !== this.serverId) return;
    if (entry.displayName === displayName) return;
    const updated: OnlineUser = { ...entry, displayName };
    this.#online.set(link.userId, updated);
    this.log.info(`user ${short(link.userId)} is now "${displayName}"`, {
      event: "user_renamed",
      user_id: link.userId,
    });
    const advert = await this.gossip("USER_ADVERTISE", this.advertPayload(updated));
    this.#advertTexts.set(link.userId, advert); // users who join later learn the new name
    this.sendPresence(advert, link.userId, link.userId);
  }

  /** Registers a local user who said hello; tells the mesh and the local clients. */
  async addLocalUser(link: UserLink, user: Omit<OnlineUser, "serverId">): Promise<void> {
    const entry: OnlineUser = { ...user, serverId: this.serverId };
    this.#local.set(link.userId, link);
    this.#online.set(link.userId, entry);
    this.log.info(
      `user ${short(link.userId)} "${user.displayName ?? ""}" online (${this.#local.size} local)`,
      { event: "user_online", user_id: link.userId },
    );
    // Catch-up: everyone already online, as the adverts already signed for local clients (no
    // new signature per user: a join costs O(1) signatures however many users are online).
    // A local user whose own advert is still being signed (joining at the same time) is left
    // out: that advert reaches this user too once signed, since this user is local now.
    // Signing one here instead would, in a burst of joins, sign every pending user again for
    // every joiner, and push those users' own adverts further back: O(N²) signatures.
    const others = this.onlineUsers().filter((u) =>
      u.userId !== link.userId && !this.hiddenFrom(link.userId, u.userId) &&
      (this.#advertTexts.has(u.userId) || !this.#local.has(u.userId))
    );
    const catchUp = await Promise.all(others.map((u) => this.#advertText(u)));
    for (const text of catchUp) presenceTo(link, text);
    const advert = await this.gossip("USER_ADVERTISE", this.advertPayload(entry));
    this.#advertTexts.set(link.userId, advert);
    this.sendPresence(advert, link.userId, link.userId);
    await this.joinPublicChannel([link.userId]);
    await this.#notifyOnline(link.userId);
  }

  /**
   * The signed USER_ADVERTISE for `user` that local clients get: the cached one, else (a user
   * known without an advert, e.g. from a server's welcome snapshot) signed now, once, and kept.
   */
  async #advertText(user: OnlineUser): Promise<string> {
    const cached = this.#advertTexts.get(user.userId);
    if (cached !== undefined) return cached;
    const text = await this.emit("USER_ADVERTISE", "*", this.advertPayload(user));
    // Kept only while it still describes the user (it may have changed while signing).
    if (this.#online.get(user.userId) === user && !this.#advertTexts.has(user.userId)) {
      this.#advertTexts.set(user.userId, text);
    }
    return text;
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
    if (entry?.serverId === this.serverId) {
      this.#online.delete(link.userId);
      this.#advertTexts.delete(link.userId);
    }
    this.#wentOffline(link.userId, entry?.displayName);
    this.log.info(`user ${short(link.userId)} offline (${this.#local.size} local)`, {
      event: "user_offline",
      user_id: link.userId,
    });
    const remove = await this.gossip("USER_REMOVE", {
      user_id: link.userId,
      server_id: this.serverId,
    });
    this.sendPresence(remove, link.userId);
  }

  /**
   * A remote server advertised a user (already verified and deduplicated). Returns false when
   * the advert is refused: the user is connected here (a live local session is never ended by
   * another server's claim), the advert carries a key other than the one this server knows
   * for the user (a linked server cannot take over someone else's identity), or this server
   * has no live link to the hosting server (routing needs one, spec §10: a user reachable only
   * through another server would be a ghost; the hosting server's catch-up advertises it again
   * when the link comes up).
   */
  async remoteAdvertise(user: OnlineUser): Promise<boolean> {
    if (!this.#linkedTo(user.serverId)) {
      this.log.debug(
        `advert of ${short(user.userId)} ignored: no link to its server ${short(user.serverId)}`,
      );
      return false;
    }
    const local = this.#local.get(user.userId);
    if (local) {
      if (!this.#mesh?.isGroupServer(user.serverId)) {
        this.log.warn(
          `server ${short(user.serverId)} advertised ${
            short(user.userId)
          }, who is connected here; ignored`,
        );
        return false;
      }
      // A server of the group accepted a proven hello of this user: the user moved there and
      // the session here is stale (e.g. the client lost its connection and failed over).
      this.#local.delete(user.userId);
      this.log.info(`user ${short(user.userId)} moved to server ${short(user.serverId)}`);
      this.emit("ERROR", user.userId, {
        code: "NAME_IN_USE",
        detail: `Signed in again on server ${user.serverId}; this session ends`,
      }).then((text) => local.sendText(text)).catch(() => {}).finally(() => {
        local.close(1000, "Signed in on another server");
      });
    }
    const known = this.#online.get(user.userId);
    const knownKey = await this.knownKey(user.userId);
    if (knownKey !== undefined && user.pubkey !== undefined && knownKey !== user.pubkey) {
      this.log.warn(
        `server ${short(user.serverId)} advertised ${
          short(user.userId)
        } with a different key; ignored`,
      );
      return false;
    }
    const entry: OnlineUser = { ...user, pubkey: user.pubkey ?? knownKey };
    // The link may have gone down while the store was read (its users are already withdrawn).
    if (!this.#linkedTo(user.serverId) || this.#local.has(user.userId)) return false;
    this.#online.set(user.userId, entry);
    if (
      known && known.serverId === entry.serverId && known.pubkey === entry.pubkey &&
      known.displayName === entry.displayName
    ) return true;
    const advert = await this.emit("USER_ADVERTISE", "*", this.advertPayload(entry));
    this.#advertTexts.set(entry.userId, advert);
    this.sendPresence(advert, entry.userId);
    if (known?.serverId !== entry.serverId) await this.#notifyOnline(entry.userId);
    return true;
  }

  /**
   * The key of a remote user whose server advertised none, asked of that server
   * (server-to-server PUBKEY_REQUEST) and cached on the user's presence entry. A key that is not
   * RSA-4096 / e = 65537, or that differs from one this server already knows for the user, is
   * refused (undefined).
   */
  async fetchRemoteKey(user: OnlineUser): Promise<string | undefined> {
    const text = await this.#mesh?.requestPubkey?.(user.serverId, user.userId);
    if (text === undefined) return undefined;
    let pubkey: string;
    try {
      pubkey = encodePublicKey(await importPublicKeyText(text));
    } catch (error) {
      this.log.warn(
        `server ${short(user.serverId)} sent an unacceptable key for ${short(user.userId)}: ${
          (error as Error).message
        }`,
      );
      return undefined;
    }
    const known = await this.knownKey(user.userId);
    if (known !== undefined && known !== pubkey) {
      this.log.warn(
        `server ${short(user.serverId)} sent a key for ${
          short(user.userId)
        } that is not the one known; refused`,
      );
      return undefined;
    }
    const entry = this.#online.get(user.userId);
    if (entry && entry.serverId === user.serverId) entry.pubkey = pubkey;
    return pubkey;
  }

  #linkedTo(serverId: string): boolean {
    return this.#mesh?.linkedServers().includes(serverId) ?? false;
  }

  /** A remote server removed a user; only the hosting server may do so (spec §7.6). */
  async remoteRemove(userId: string, serverId: string): Promise<boolean> {
    const known = this.#online.get(userId);
    if (!known || known.serverId !== serverId) return false;
    this.#online.delete(userId);
    this.#advertTexts.delete(userId);
    this.#wentOffline(userId, known.displayName);
    this.sendPresence(
      await this.emit("USER_REMOVE", "*", { user_id: userId, server_id: serverId }),
      userId,
    );
    return true;
  }

  /**
   * A server's link went down: its users disappear at once (USER_REMOVE to local clients), since
   * nothing can be routed to them without that link.
   */
  async serverLost(serverId: string): Promise<void> {
    const gone = [...this.#online.values()].filter((u) => u.serverId === serverId);
    for (const user of gone) await this.remoteRemove(user.userId, serverId);
    if (gone.length > 0) {
      this.log.info(`server ${short(serverId)} lost: ${plural(gone.length, "user")} removed`);
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
      // socp's group messages name their group (docs/protocol.md).
      const groupId = d.payload["group_id"];
      if (typeof groupId === "string") payload.group_id = groupId;
      return this.emit("USER_DELIVER", d.recipient, payload, d.ts);
    }
    const payload: JsonObject = { ...d.payload, sender: d.sender, orig_ts: d.ts, msg_ts: d.ts };
    if (senderPub !== undefined && d.type === "MSG_PUBLIC_CHANNEL") payload.sender_pub = senderPub;
    return this.reissue({ type: d.type, from: d.sender, to: d.recipient, ts: d.ts, payload });
  }

  /**
   * The frame that carries a delivery to the recipient's server: SERVER_DELIVER, or for public
   * messages and files the form that server relays them in itself (`raw`: the user frame, signed
   * here with `from` kept as the user; `wrapped`: SERVER_DELIVER around the user envelope).
   */
  serverDeliverFrame(d: Delivery, toServer: string): Promise<{ env: Envelope; text: string }> {
    const form = d.type === "MSG_DIRECT" ? "inner" : this.#mesh?.relayForm?.(toServer) ?? "inner";
    if (form === "raw") {
      return this.#sign({
        type: d.type,
        from: d.sender,
        to: d.recipient,
        ts: d.ts,
        payload: { ...stripRelayKeys(d.payload), sender: d.sender },
      });
    }
    if (form === "wrapped") {
      return this.#sign({
        type: "SERVER_DELIVER",
        from: this.serverId,
        to: toServer,
        ts: d.ts,
        payload: {
          user_id: d.recipient,
          type: d.type,
          from: d.sender,
          to: d.recipient,
          ts: d.ts,
          payload: stripRelayKeys(d.payload),
        },
      });
    }
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
        ...(typeof d.payload["group_id"] === "string" ? { group_id: d.payload["group_id"] } : {}),
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
   * the recipient's link went away in the meantime (nothing was sent). `arrivedAt` (on the
   * {@linkcode ServerMetrics.now} clock) is when the user frame arrived, for the DM delivery
   * histogram.
   */
  route(
    d: Delivery,
    options: { arrivedAt?: number } = {},
  ): { result: RouteResult; send: Promise<() => boolean> } {
    const link = this.#local.get(d.recipient);
    if (link) {
      const text = this.localFrame(d);
      return {
        result: "local",
        send: text.then((t) => () => {
          if (this.#local.get(d.recipient) !== link) return false;
          link.sendText(t);
          this.metrics.delivered(d.type, options.arrivedAt);
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
      // Not recorded as seen here: if the frame comes back because its recipient moved to this
      // server, it must still be delivered. A loop ends at the first server that sees it twice.
      const signed = this.serverDeliverFrame(d, remote.serverId);
      return {
        result: "remote",
        send: signed.then(({ text }) => () => {
          if (mesh.sendToServer(remote.serverId, text)) {
            this.metrics.delivered(d.type, options.arrivedAt);
            return true;
          }
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
      this.#sendUnblocked(text, sender);
      return;
    }
    this.#sendUnblocked(await this.reissue(fields), sender);
    if (original !== undefined) this.sendToServers(original, originServer);
  }

  /** Sends a user's channel-wide frame to every local user but the sender and its blockers. */
  #sendUnblocked(text: string, sender: string): void {
    for (const [id, link] of this.#local) {
      if (id !== sender && !(this.blockLists?.blocks(id, sender) ?? false)) link.sendText(text);
    }
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
   * Users joined the public channel. socp encrypts `/all` per recipient with RSA-OAEP
   * (docs/protocol.md), so the channel key only serves the spec's frames and peers that use
   * it: each server keeps one random 256-bit key per run (in memory; the clear key is never
   * stored or sent), wraps it once for each joining member, stores that member's row, and
   * announces joins in batches — one PUBLIC_CHANNEL_ADD, one PUBLIC_CHANNEL_UPDATED carrying
   * only the new members' wraps, one PUBLIC_CHANNEL_KEY_SHARE — so a join costs O(1) work and
   * bytes for everyone else, whatever the number of members. Joins that arrive while a batch
   * is being announced go in the next one.
   */
  joinPublicChannel(added: string[]): Promise<void> {
    this.#pendingJoins.push(...added);
    if (this.#channelBatchMs > 0) {
      // Announced when the window closes; the joining user does not wait for it.
      this.#announceTimer ??= setTimeout(() => {
        this.#announceTimer = undefined;
        this.#queueAnnouncement();
      }, this.#channelBatchMs);
      return Promise.resolve();
    }
    return this.#queueAnnouncement();
  }

  #queueAnnouncement(): Promise<void> {
    this.#rotation = this.#rotation.then(() => this.#announceJoins()).catch((error) => {
      this.log.error(`public channel announcement failed: ${(error as Error).message}`);
    });
    return this.#rotation;
  }

  async #announceJoins(): Promise<void> {
    const batch = [...new Set(this.#pendingJoins.splice(0))];
    if (batch.length === 0) return;
    const now = this.now();
    if (this.#channelKey === undefined) {
      // A new key for this run: the next version.
      this.#channelKey = crypto.getRandomValues(new Uint8Array(32));
      this.#publicVersion++;
      const group = await this.store.getGroup("public");
      await this.store.putGroup({
        group_id: "public",
        creator_id: "system",
        created_at: group?.created_at ?? now,
        meta: group?.meta ?? "",
        version: this.#publicVersion,
      });
    }
    const version = this.#publicVersion;
    const key = this.#channelKey;
    const wraps = (await Promise.all(batch.map(async (id) => {
      const pubkey = this.#online.get(id)?.pubkey;
      if (pubkey === undefined) return undefined;
      try {
        const pub = await importPublicKeyText(pubkey);
        return { member_id: id, wrapped_key: encodeBase64Url(await rsa().encrypt(pub, key)) };
      } catch {
        return undefined;
      }
    }))).filter((w): w is { member_id: string; wrapped_key: string } => w !== undefined);
    // One transaction (one disk sync) for the whole batch.
    await this.store.putMembers(wraps.map((w) => ({
      group_id: "public",
      member_id: w.member_id,
      role: "member",
      wrapped_key: w.wrapped_key,
      added_at: now,
    })));
    // Everyone learns who joined (ids only); the wraps go out in small chunks, each only to
    // the chunk's own members (and the mesh): no user gets a frame sized by the whole batch.
    this.sendToLocal(await this.gossip("PUBLIC_CHANNEL_ADD", { add: batch, if_version: version }));
    for (let i = 0; i < wraps.length; i += WRAPS_PER_FRAME) {
      await this.#shareKey(version, wraps.slice(i, i + WRAPS_PER_FRAME));
    }
  }

  /**
   * PUBLIC_CHANNEL_UPDATED with `wraps` to the mesh and to those of their members connected
   * here, then PUBLIC_CHANNEL_KEY_SHARE with their shares to the same members.
   */
  async #shareKey(version: number, wraps: { member_id: string; wrapped_key: string }[]) {
    const updated = await this.gossip("PUBLIC_CHANNEL_UPDATED", { version, wraps });
    const local = wraps.filter((w) => this.#local.has(w.member_id));
    for (const w of local) this.#local.get(w.member_id)?.sendText(updated);
    const shares = local.map((w) => ({
      member: w.member_id,
      wrapped_public_channel_key: w.wrapped_key,
    }));
    if (shares.length === 0) return;
    const creatorPub = this.identity.publicKeyText;
    const contentSig = encodeBase64Url(
      await this.signer.schedule(async () =>
        rsa().sign(this.identity.privateKey, await keySharePreimage(shares, creatorPub))
      ),
    );
    const text = await this.emit("PUBLIC_CHANNEL_KEY_SHARE", "*", {
      shares,
      creator_pub: creatorPub,
      content_sig: contentSig,
      version,
    });
    for (const share of shares) this.#local.get(share.member)?.sendText(text);
  }
}

/**
 * Wraps per PUBLIC_CHANNEL_UPDATED / KEY_SHARE frame: a burst of joins costs 2 signatures per 8
 * joiners, and a joiner gets a frame of a few KB, not one with every joiner's wrap (a Deno
 * WebSocket keeps a buffer as large as the largest message it ever sent).
 */
const WRAPS_PER_FRAME = 8;

/** Targets that mean "the whole public channel" rather than one member. */
export function isChannelTarget(to: string): boolean {
  return to === "public" || to === "*" || !/^[0-9a-f]{8}-[0-9a-f]{4}-/i.test(to);
}
