/**
 * Who is online: the directory built from USER_ADVERTISE, USER_REMOVE, LIST_RESPONSE and
 * PUBKEY_RESPONSE, the names shown next to ids, and finding a user by id, name, id prefix or
 * account name.
 *
 * @module
 */

import { type AccountEntry, isUuid, usernameProblem } from "../shared/mod.ts";
import type { Connection, Identity } from "./connection.ts";
import { CommandError } from "./errors.ts";
import type { EventGate } from "./event_gate.ts";
import { type ClientEvent, type EventSink, type ListedUser, shortId } from "./events.ts";

/** What the directory knows about one online user. */
export interface PresenceEntry {
  /** Name shown to others. */
  display_name?: string;
  /** The advertised key (base64url SPKI or any accepted form). */
  pubkey?: string;
  /** The server the user is connected to. */
  server_id?: string;
  /** What the user's client can take, from `meta.caps` (socp servers only). */
  caps?: string[];
}

/** A USER_ADVERTISE payload. */
export interface Advert {
  user_id: string;
  server_id?: string;
  meta: { display_name?: string; pubkey?: string; caps?: string[] };
}

/** Options for {@linkcode Presence}. */
export interface PresenceOptions {
  /** The user. */
  identity: Identity;
  /** Sends LIST_REQUEST. */
  connection: Connection;
  /** Receives presence events and warnings. */
  onEvent: EventSink;
  /** Checks (and pins on first sight) an advertised key; called before the user is listed. */
  observeKey: (userId: string, pubkey: string) => Promise<unknown>;
  /** True when `pubkey` is not the user's own key (checked for adverts about us). */
  isForeignKey: (pubkey: string) => boolean;
  /** Looks an account name up (ACCOUNTS_REQUEST), for users who are not online. */
  findAccount: (name: string) => Promise<AccountEntry | undefined>;
  /** Keeps events in order while a message waits for its sender's name (else: no waiting). */
  gate?: EventGate;
}

const UUID_PREFIX = /^[0-9a-f-]{4,}$/i;

/** How long a message waits for its unknown sender's name (ms). */
const NAME_TIMEOUT_MS = 2000;

/**
 * The online-user directory.
 *
 * @example
 * ```ts ignore
 * const presence = new Presence({ identity, connection, onEvent, observeKey, isForeignKey,
 *   findAccount });
 * await presence.onAdvertise({ user_id: bobId, meta: { display_name: "bob" } });
 * console.assert(presence.resolveUser("bob") === bobId);
 * ```
 */
export class Presence {
  #me: Identity;
  #connection: Connection;
  #emit: EventSink;
  #observeKey: (userId: string, pubkey: string) => Promise<unknown>;
  #isForeignKey: (pubkey: string) => boolean;
  #findAccount: (name: string) => Promise<AccountEntry | undefined>;
  #online: Map<string, PresenceEntry> = new Map();
  #names: Map<string, string> = new Map();
  /** Ids whose name was asked for (once per session). */
  #asked: Set<string> = new Set();
  #gate: EventGate | undefined;

  /** Creates an empty directory. */
  constructor(options: PresenceOptions) {
    this.#me = options.identity;
    this.#connection = options.connection;
    this.#emit = options.onEvent;
    this.#observeKey = options.observeKey;
    this.#isForeignKey = options.isForeignKey;
    this.#findAccount = options.findAccount;
    this.#gate = options.gate;
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
        out.push({ user_id: id, display_name: this.nameOf(id), self: false });
      }
    }
    return out.sort((a, b) =>
      a.display_name.toLowerCase().localeCompare(b.display_name.toLowerCase()) ||
      (a.user_id < b.user_id ? -1 : a.user_id > b.user_id ? 1 : 0)
    );
  }

  /** The ids of the other online users, sorted. */
  others(): string[] {
    return [...this.#online.keys()].filter((id) => id !== this.#me.userId).sort();
  }

  /** True when the user is online (as far as the directory knows). */
  isOnline(userId: string): boolean {
    return this.#online.has(userId);
  }

  /** True when the user's server advertised `cap` for the user's client (e.g. `file-aes-gcm`). */
  hasCap(userId: string, cap: string): boolean {
    return this.#online.get(userId)?.caps?.includes(cap) ?? false;
  }

  /** The key the user's server advertised, if any. */
  advertisedKey(userId: string): string | undefined {
    return this.#online.get(userId)?.pubkey;
  }

  /** The name to show for an id (its first 8 characters when no name is known). */
  nameOf(id: string): string {
    if (id === this.#me.userId) return this.#me.displayName;
    return this.#names.get(id) ?? shortId(id);
  }

  /** `name (1b2c3d4e)`, or with the full id. */
  who(id: string, fullId = false): string {
    return `${this.nameOf(id)} (${fullId ? id : shortId(id)})`;
  }

  /** Sends LIST_REQUEST, merges the answer (if any comes) and returns {@linkcode users}. */
  async list(): Promise<ListedUser[]> {
    this.#connection.requireReady();
    await this.#connection.request("LIST_REQUEST", {}, (f) => f.type === "LIST_RESPONSE");
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
    if (UUID_PREFIX.test(wanted)) {
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
    const name = text.trim();
    // Account names hold no glob characters, so the name itself is an exact pattern.
    const hit = usernameProblem(name) === undefined ? await this.#findAccount(name) : undefined;
    if (hit) {
      if (!this.#names.has(hit.user_id)) this.#names.set(hit.user_id, hit.username);
      return hit.user_id;
    }
    throw new CommandError(
      `Unknown user "${text}"; /list shows who is online, /accounts <pattern> lists accounts`,
    );
  }

  /**
   * After a reconnect: asks the new server who is online (LIST_REQUEST) and takes users who are
   * no longer listed offline (their server may be the one that went away).
   */
  async resync(): Promise<void> {
    const reply = await this.#connection.request(
      "LIST_REQUEST",
      {},
      (f) => f.type === "LIST_RESPONSE",
    );
    if (reply?.type !== "LIST_RESPONSE") return;
    const listed = new Set(reply.p.users);
    for (const id of [...this.#online.keys()]) {
      if (!listed.has(id)) this.onRemove({ user_id: id });
    }
  }

  /** USER_ADVERTISE: adds or updates a user (pinning a first-seen key) and reports arrivals. */
  async onAdvertise(p: Advert): Promise<void> {
    const { user_id, server_id, meta } = p;
    if (user_id === this.#me.userId) {
      if (meta.pubkey && this.#isForeignKey(meta.pubkey)) {
        this.#emit({
          event: "warn",
          text: "The server advertises a different key for you than your own",
        });
      }
      return;
    }
    const was = this.#online.get(user_id);
    const entry: PresenceEntry = { ...was };
    if (server_id) entry.server_id = server_id;
    if (meta.display_name) {
      entry.display_name = meta.display_name;
      this.#names.set(user_id, meta.display_name);
    }
    if (meta.pubkey) {
      entry.pubkey = meta.pubkey;
      await this.#observeKey(user_id, meta.pubkey);
    }
    // Each advert says it all: a user back on a client without the capability loses it.
    if (meta.caps) entry.caps = meta.caps;
    else delete entry.caps;
    this.#online.set(user_id, entry);
    if (!was) {
      this.#emit({
        event: "presence",
        user_id,
        display_name: this.nameOf(user_id),
        online: true,
      });
    } else if (
      was.display_name !== undefined && entry.display_name !== undefined &&
      was.display_name !== entry.display_name
    ) {
      // The user changed the name while online (`/nick`, USER_UPDATE at its server).
      this.#emit({
        event: "presence",
        user_id,
        display_name: entry.display_name,
        online: true,
        previous_name: was.display_name,
      });
    }
  }

  /** True when a name is known for the id (else {@linkcode nameOf} shows the id's start). */
  knowsName(id: string): boolean {
    return id === this.#me.userId || this.#names.has(id);
  }

  /**
   * Reports a message from `id` (the event `make` returns) once the sender's name is known: for
   * a sender the directory has no name for (e.g. a message queued for this new config while it
   * was offline) it asks the server once (PUBKEY_REQUEST, whose answer carries `display_name`)
   * and reports the message when the answer or a timeout comes; later events wait behind it
   * (event_gate.ts). Never waits itself: the answer comes through the frame loop that calls it.
   */
  showNamed(id: string, make: () => ClientEvent): void {
    const gate = this.#gate;
    if (!gate || (!gate.busy && (this.knowsName(id) || this.#asked.has(id)))) {
      this.#emit(make());
      return;
    }
    const asking = this.knowsName(id) || this.#asked.has(id)
      ? Promise.resolve()
      : this.#askName(id);
    gate.after(asking, make);
  }

  async #askName(id: string): Promise<void> {
    this.#asked.add(id);
    if (!this.#connection.ready) return;
    await this.#connection.request(
      "PUBKEY_REQUEST",
      { user_id: id },
      (f) =>
        (f.type === "PUBKEY_RESPONSE" && f.p.user_id === id) ||
        (f.type === "ERROR" && f.p.code === "USER_NOT_FOUND" && (f.p.detail ?? "").includes(id)),
      { claim: true, timeoutMs: NAME_TIMEOUT_MS },
    ).catch(() => undefined);
  }

  /** USER_REMOVE: takes a user offline, unless the removal is about another server's session. */
  onRemove(p: { user_id: string; server_id?: string }): "removed" | "stale" | "unknown" {
    const { user_id, server_id } = p;
    const was = this.#online.get(user_id);
    if (!was) return "unknown";
    if (server_id && was.server_id && server_id !== was.server_id) return "stale";
    this.#online.delete(user_id);
    this.#emit({
      event: "presence",
      user_id,
      display_name: this.nameOf(user_id),
      online: false,
    });
    return "removed";
  }

  /** LIST_RESPONSE: learns names and adds listed users. */
  onList(p: { users: string[]; display_names: Record<string, string> }): void {
    for (const [id, name] of Object.entries(p.display_names)) {
      if (name) this.#names.set(id, name.slice(0, 64));
    }
    for (const id of p.users) {
      if (id !== this.#me.userId && !this.#online.has(id)) this.#online.set(id, {});
    }
  }

  /** PUBKEY_RESPONSE: learns the name and (pinning it on first sight) the key. */
  async onPubkey(p: { user_id: string; pubkey?: string; display_name?: string }): Promise<void> {
    const { user_id, pubkey, display_name } = p;
    if (display_name) this.#names.set(user_id, display_name.slice(0, 64));
    // No key (Group 17 answers `pubkey: null`): the server does not know the user.
    if (pubkey === undefined) return;
    await this.#observeKey(user_id, pubkey);
    const entry = this.#online.get(user_id);
    if (entry) entry.pubkey = pubkey;
  }
}
