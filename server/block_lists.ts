/**
 * Block lists, enforced by servers: a user's list says who may not send them DMs, files, group
 * messages or private-chat requests, and who does not see their presence. Each list is signed
 * by its owner (shared/block_list.ts), stored, and replicated within the operator's server group
 * (BLOCKS_UPDATE), so it follows the account to any server of the group and survives restarts.
 *
 * @module
 */

import {
  type BlockList,
  importPublicKeyText,
  isUuid,
  type JsonObject,
  MAX_BLOCKED,
  normalizeBlocked,
  ProtocolError,
  verifyBlockList,
} from "../shared/mod.ts";
import type { Hub } from "./hub.ts";
import { short } from "./log.ts";

/** One owner's list as held in memory. */
interface Held {
  blocked: Set<string>;
  seq: number;
  sig: string;
}

/** The block lists known to one server. */
export class BlockLists {
  #hub: Hub;
  #lists = new Map<string, Held>();

  /** Creates the service; {@linkcode load} reads the stored lists. */
  constructor(hub: Hub) {
    this.#hub = hub;
  }

  /** Loads every stored list into memory. */
  async load(): Promise<void> {
    for (const r of await this.#hub.store.listBlocks()) {
      this.#lists.set(r.user_id, { blocked: new Set(r.blocked), seq: r.seq, sig: r.sig });
    }
  }

  /** True when `owner` has blocked `other`. */
  blocks(owner: string, other: string): boolean {
    return this.#lists.get(owner)?.blocked.has(other) ?? false;
  }

  /** Either of the two blocked the other. */
  eitherBlocks(a: string, b: string): boolean {
    return this.blocks(a, b) || this.blocks(b, a);
  }

  /** `owner`'s list and its seq (0 and empty when there is none). */
  listOf(owner: string): { blocked: string[]; seq: number } {
    const held = this.#lists.get(owner);
    return { blocked: held ? normalizeBlocked([...held.blocked]) : [], seq: held?.seq ?? 0 };
  }

  async #ownerKey(owner: string) {
    const text = await this.#hub.knownKey(owner);
    if (text === undefined) {
      throw new ProtocolError("USER_NOT_FOUND", `No key is known for user ${owner}`);
    }
    return await importPublicKeyText(text);
  }

  /** Checks and stores a signed list; throws ProtocolError when it must not be applied. */
  async #apply(list: BlockList, sig: string): Promise<boolean> {
    if (list.blocked.length > MAX_BLOCKED) {
      throw new ProtocolError("BAD_REQUEST", `A block list holds at most ${MAX_BLOCKED} users`);
    }
    const blocked = normalizeBlocked(list.blocked);
    const signed: BlockList = { user_id: list.user_id, blocked, seq: list.seq };
    if (!(await verifyBlockList(await this.#ownerKey(list.user_id), signed, sig))) {
      throw new ProtocolError(
        "INVALID_SIG",
        `The block list of ${list.user_id} is not signed by that user's key`,
      );
    }
    const held = this.#lists.get(list.user_id);
    if (held && list.seq <= held.seq) return false;
    const before = held?.blocked ?? new Set<string>();
    await this.#hub.store.putBlocks({ user_id: list.user_id, blocked, seq: list.seq, sig });
    this.#lists.set(list.user_id, { blocked: new Set(blocked), seq: list.seq, sig });
    await this.#presenceChanged(list.user_id, before, new Set(blocked));
    return true;
  }

  /**
   * A newly blocked local user stops seeing the owner (USER_REMOVE); an unblocked one sees the
   * owner again when online (USER_ADVERTISE).
   */
  async #presenceChanged(owner: string, before: Set<string>, after: Set<string>): Promise<void> {
    const hub = this.#hub;
    const where = hub.onlineUser(owner);
    if (!where) return;
    for (const id of new Set([...before, ...after])) {
      if (before.has(id) === after.has(id)) continue;
      const link = hub.localLink(id);
      if (!link) continue;
      link.sendText(
        after.has(id)
          ? await hub.emit("USER_REMOVE", id, { user_id: owner, server_id: where.serverId })
          : await hub.emit("USER_ADVERTISE", id, hub.advertPayload(where)),
      );
    }
  }

  /**
   * BLOCKS_SET from a connected user: the whole new list, signed by the user. Blocking oneself
   * or an unknown user is refused with a clear message.
   */
  async set(owner: string, blocked: readonly string[], seq: number, sig: string): Promise<number> {
    for (const id of blocked) {
      if (id === owner) throw new ProtocolError("BAD_REQUEST", "You cannot block yourself");
      if (!isUuid(id) || !(await this.#hub.isKnownUser(id))) {
        throw new ProtocolError("USER_NOT_FOUND", `Unknown user "${id.slice(0, 64)}"`);
      }
    }
    const held = this.#lists.get(owner);
    if (held && seq <= held.seq) {
      throw new ProtocolError(
        "BAD_REQUEST",
        `Block list version ${seq} is not newer than ${held.seq}; sign it again`,
      );
    }
    await this.#apply({ user_id: owner, blocked: [...blocked], seq }, sig);
    this.#hub.log.info(`block list of ${short(owner)}: ${blocked.length} blocked`);
    await this.#hub.gossip("BLOCKS_UPDATE", this.#payload(owner), { groupOnly: true });
    return seq;
  }

  #payload(owner: string): JsonObject {
    const held = this.#lists.get(owner)!;
    return {
      user_id: owner,
      blocked: normalizeBlocked([...held.blocked]),
      seq: held.seq,
      sig: held.sig,
    };
  }

  /** BLOCKS_UPDATE from a server of the group; true when it changed anything here. */
  async applyRemote(p: { user_id: string; blocked: string[]; seq: number; sig: string }) {
    return await this.#apply({ user_id: p.user_id, blocked: p.blocked, seq: p.seq }, p.sig);
  }

  /** BLOCKS_UPDATE payloads of every list, for a group server that linked. */
  syncPayloads(): JsonObject[] {
    return [...this.#lists.keys()].map((owner) => this.#payload(owner));
  }
}
