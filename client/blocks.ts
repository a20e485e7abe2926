/**
 * The block list: `/block <user>`, `/unblock <user>` and `/blocks`. The list lives on the
 * servers, which enforce it (a blocked user's DMs, files, group messages and private-chat
 * requests are refused with `ERROR BLOCKED`, and the blocker's presence is hidden from them);
 * the client only ever sends the whole new list, signed with the user's own key
 * (shared/block_list.ts), so no server can change it. Before each change it asks for the list
 * and its `seq` (`BLOCKS_REQUEST`), so a change made from another device is not undone, and
 * signs the next version with `seq = max(now, seq + 1)`.
 *
 * @module
 */

import { MAX_BLOCKED, normalizeBlocked, signBlockList } from "../shared/mod.ts";
import type { Clock } from "./clock.ts";
import type { Connection, Identity } from "./connection.ts";
import { CommandError, ServerError } from "./errors.ts";
import type { EventSink } from "./events.ts";
import type { Presence } from "./presence.ts";
import type { NamedUser } from "./social_events.ts";

/** Options for {@linkcode Blocks}. */
export interface BlocksOptions {
  /** The user (signs the list). */
  identity: Identity;
  /** Requests go here. */
  connection: Connection;
  /** Finds users and names them. */
  presence: Presence;
  /** Time source (the next `seq`). */
  clock: Clock;
  /** Receives `blocks` events. */
  onEvent: EventSink;
  /** Hears about a user who was just blocked (e.g. to close a private chat with them). */
  onBlocked?: (userId: string) => void;
}

/**
 * The user's block list.
 *
 * @example
 * ```ts ignore
 * const blocks = new Blocks({ identity, connection, presence, clock: systemClock, onEvent });
 * await blocks.block("mallory");   // BLOCKS_REQUEST, then a signed BLOCKS_SET
 * ```
 */
export class Blocks {
  #o: BlocksOptions;
  #blocked: Set<string> | undefined;

  /** Creates the feature; the list is fetched when first needed. */
  constructor(options: BlocksOptions) {
    this.#o = options;
  }

  /** True when `userId` is on the list as last fetched (false before the first fetch). */
  isBlocked(userId: string): boolean {
    return this.#blocked?.has(userId) ?? false;
  }

  /** The blocked ids, fetching the list once if it was never fetched. */
  async current(): Promise<ReadonlySet<string>> {
    if (!this.#blocked) await this.#fetch();
    return this.#blocked ?? new Set();
  }

  /** `/blocks`: the list as the server holds it. */
  async list(): Promise<NamedUser[]> {
    const { blocked } = await this.#fetch();
    return this.#named(blocked);
  }

  /** `/block <user>`: adds a user to the list. */
  async block(target: string): Promise<void> {
    const { connection, presence, identity } = this.#o;
    connection.requireReady();
    const id = await presence.findUser(target);
    if (id === identity.userId) throw new CommandError("You cannot block yourself");
    const { blocked, seq } = await this.#fetch();
    if (blocked.includes(id)) {
      throw new CommandError(`${presence.who(id)} is blocked already; /blocks lists them`);
    }
    if (blocked.length >= MAX_BLOCKED) {
      throw new CommandError(`A block list holds at most ${MAX_BLOCKED} users`);
    }
    const now = await this.#set([...blocked, id], seq);
    this.#o.onBlocked?.(id);
    this.#o.onEvent({
      event: "blocks",
      action: "blocked",
      user_id: id,
      display_name: presence.nameOf(id),
      blocked: this.#named(now),
    });
  }

  /** `/unblock <user>`: takes a user off the list. */
  async unblock(target: string): Promise<void> {
    const { connection, presence } = this.#o;
    connection.requireReady();
    const { blocked, seq } = await this.#fetch();
    const id = this.#findBlocked(target, blocked) ?? await presence.findUser(target);
    if (!blocked.includes(id)) {
      throw new CommandError(`${presence.who(id)} is not blocked; /blocks lists who is`);
    }
    const now = await this.#set(blocked.filter((b) => b !== id), seq);
    this.#o.onEvent({
      event: "blocks",
      action: "unblocked",
      user_id: id,
      display_name: presence.nameOf(id),
      blocked: this.#named(now),
    });
  }

  /** A blocked user by id, id prefix or name (users on the list may be offline). */
  #findBlocked(target: string, blocked: readonly string[]): string | undefined {
    const wanted = target.trim().toLowerCase();
    const exact = blocked.filter((id) =>
      id === wanted || this.#o.presence.nameOf(id).toLowerCase() === wanted
    );
    if (exact.length === 1) return exact[0];
    const prefix = wanted.length >= 4 ? blocked.filter((id) => id.startsWith(wanted)) : [];
    return prefix.length === 1 ? prefix[0] : undefined;
  }

  #named(ids: readonly string[]): NamedUser[] {
    return ids.map((id) => ({ user_id: id, display_name: this.#o.presence.nameOf(id) }));
  }

  /** BLOCKS_REQUEST → the list and its seq (remembered). */
  async #fetch(): Promise<{ blocked: string[]; seq: number }> {
    const { connection } = this.#o;
    connection.requireReady();
    const reply = await connection.request(
      "BLOCKS_REQUEST",
      {},
      (f) => f.type === "BLOCKS_RESPONSE" || (f.type === "ERROR" && f.p.code === "UNKNOWN_TYPE"),
      { claim: true },
    );
    if (reply?.type === "ERROR") {
      throw new ServerError(
        reply.p.code,
        `This server has no block lists (${reply.p.detail ?? "UNKNOWN_TYPE"})`,
      );
    }
    if (reply?.type !== "BLOCKS_RESPONSE") {
      throw new CommandError("The server did not send the block list; try again");
    }
    const blocked = normalizeBlocked(reply.p.blocked);
    this.#blocked = new Set(blocked);
    return { blocked, seq: reply.p.seq };
  }

  /** Signs and sends the whole new list; resolves with it once the server took it. */
  async #set(ids: readonly string[], seq: number): Promise<string[]> {
    const { connection, identity, clock } = this.#o;
    const blocked = normalizeBlocked(ids);
    const next = Math.max(Math.floor(clock.now()), seq + 1);
    const sig = await signBlockList(identity.keys.privateKey, {
      user_id: identity.userId,
      blocked,
      seq: next,
    });
    const reply = await connection.request(
      "BLOCKS_SET",
      { blocked, seq: next, sig },
      (f) =>
        (f.type === "ACK" && f.p.msg_ref === "BLOCKS_OK") ||
        (f.type === "ERROR" &&
          ["BAD_REQUEST", "USER_NOT_FOUND", "INVALID_SIG", "UNKNOWN_TYPE", "BAD_FRAME"].includes(
            f.p.code,
          )),
      { claim: true },
    );
    if (reply?.type === "ERROR") throw new ServerError(reply.p.code, reply.p.detail ?? "");
    if (reply?.type !== "ACK") {
      throw new CommandError("The server did not confirm the new block list; /blocks shows it");
    }
    this.#blocked = new Set(blocked);
    return blocked;
  }
}
