/**
 * Named group chats: the server keeps who is in which group (the spec's `groups` and
 * `group_members` tables), answers membership questions, tells members about changes
 * (GROUP_EVENT), and replicates every group within the operator's server group
 * (GROUP_UPDATE, a higher version wins), so groups survive a server's loss.
 *
 * Content is end-to-end encrypted by the clients for the *current* members only, one RSA-OAEP
 * ciphertext per member (docs/protocol.md): group messages travel as MSG_DIRECT frames with a
 * `group_id`, and servers deliver them only between members of that group. So a member who
 * left receives, and can decrypt, nothing sent after.
 *
 * @module
 */

import {
  type ChatGroup,
  isUuid,
  type JsonObject,
  plural,
  ProtocolError,
  usernameKey,
} from "../shared/mod.ts";
import type { GroupRecord } from "../storage/mod.ts";
import type { Hub } from "./hub.ts";
import { short } from "./log.ts";

/** Group names: 1–32 letters, digits, `_`, `.` or `-`, starting with a letter or digit. */
const GROUP_NAME = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,31}$/;

/** Most members of one group. */
export const MAX_GROUP_MEMBERS = 256;

/** A problem with a group name, or undefined when it is fine. */
export function groupNameProblem(name: string): string | undefined {
  if (!GROUP_NAME.test(name)) {
    return `Group name "${
      name.slice(0, 40)
    }" must be 1-32 letters, digits, "_", "." or "-", starting with a letter or digit`;
  }
  if (name.toLowerCase() === "public") return 'The name "public" is the public channel';
  return undefined;
}

function nameOf(record: GroupRecord): string {
  try {
    const meta = JSON.parse(record.meta) as { name?: unknown };
    return typeof meta.name === "string" ? meta.name : record.group_id;
  } catch {
    return record.group_id;
  }
}

/** The group chats known to one server. */
export class ChatGroups {
  #hub: Hub;
  #groups = new Map<string, ChatGroup>();

  /** Creates the service; {@linkcode load} reads the stored groups. */
  constructor(hub: Hub) {
    this.#hub = hub;
  }

  /** Loads every stored group except the public channel. */
  async load(): Promise<void> {
    for (const g of await this.#hub.store.listGroups()) {
      if (g.group_id === "public") continue;
      const members = (await this.#hub.store.listMembers(g.group_id)).map((m) => m.member_id);
      this.#groups.set(g.group_id, {
        group_id: g.group_id,
        name: nameOf(g),
        creator_id: g.creator_id,
        created_at: g.created_at,
        version: g.version,
        members: members.sort(),
      });
    }
  }

  /** A group by name (case-insensitive). */
  byName(name: string): ChatGroup | undefined {
    const key = usernameKey(name);
    for (const g of this.#groups.values()) if (usernameKey(g.name) === key) return g;
    return undefined;
  }

  /** True when `userId` is a current member of `groupId`. */
  isMember(groupId: string, userId: string): boolean {
    return this.#groups.get(groupId)?.members.includes(userId) ?? false;
  }

  /** The groups `userId` is a member of, by name. */
  groupsOf(userId: string): ChatGroup[] {
    return [...this.#groups.values()]
      .filter((g) => g.members.includes(userId))
      .sort((a, b) => a.name.localeCompare(b.name));
  }

  async #save(group: ChatGroup): Promise<void> {
    const now = this.#hub.now();
    await this.#hub.store.replaceGroup(
      {
        group_id: group.group_id,
        creator_id: group.creator_id,
        created_at: group.created_at,
        meta: JSON.stringify({ name: group.name }),
        version: group.version,
      },
      group.members.map((member_id) => ({
        group_id: group.group_id,
        member_id,
        role: member_id === group.creator_id ? "owner" : "member",
        // Messages are encrypted per member with RSA-OAEP: there is no group key to wrap.
        wrapped_key: "",
        added_at: now,
      })),
    );
    this.#groups.set(group.group_id, group);
  }

  /** Tells the local members (and a local user who just left or was removed) about a change. */
  async #notify(
    group: ChatGroup,
    action: "created" | "added" | "removed" | "left",
    userId: string,
    by: string,
    also: readonly string[] = [],
  ): Promise<void> {
    const payload: JsonObject = { group: { ...group, members: [...group.members] }, action };
    payload.user_id = userId;
    payload.by = by;
    for (const id of new Set([...group.members, ...also])) {
      const link = this.#hub.localLink(id);
      if (link) link.sendText(await this.#hub.emit("GROUP_EVENT", id, payload));
    }
  }

  async #publish(group: ChatGroup, action: string, userId: string, by: string): Promise<void> {
    await this.#hub.gossip("GROUP_UPDATE", {
      group: { ...group, members: [...group.members] },
      action,
      user_id: userId,
      by,
    }, { groupOnly: true });
  }

  /** GROUP_CREATE: a new group of `creator` and `members`; the name must be free. */
  async create(creator: string, name: string, members: readonly string[]): Promise<ChatGroup> {
    const problem = groupNameProblem(name);
    if (problem) throw new ProtocolError("BAD_REQUEST", problem);
    if (this.byName(name)) {
      throw new ProtocolError("NAME_IN_USE", `A group named "${name}" exists already`);
    }
    const all = [...new Set([creator, ...members])].sort();
    if (all.length < 2) {
      throw new ProtocolError("BAD_REQUEST", "A group needs at least one other member");
    }
    if (all.length > MAX_GROUP_MEMBERS) {
      throw new ProtocolError("BAD_REQUEST", `A group has at most ${MAX_GROUP_MEMBERS} members`);
    }
    for (const id of all) {
      if (!isUuid(id) || !(await this.#hub.isKnownUser(id))) {
        throw new ProtocolError("USER_NOT_FOUND", `Unknown user "${id.slice(0, 64)}"`);
      }
    }
    const group: ChatGroup = {
      group_id: crypto.randomUUID(),
      name,
      creator_id: creator,
      created_at: this.#hub.now(),
      version: 1,
      members: all,
    };
    await this.#save(group);
    this.#hub.log.info(
      `group "${name}" created by ${short(creator)} with ${plural(all.length, "member")}`,
    );
    await this.#notify(group, "created", creator, creator);
    await this.#publish(group, "created", creator, creator);
    return group;
  }

  /** GROUP_CHANGE: `actor` adds a member, removes one (creator only), or leaves. */
  async change(
    actor: string,
    name: string,
    action: "add" | "remove" | "leave",
    userId: string | undefined,
  ): Promise<ChatGroup> {
    const group = this.byName(name);
    if (!group || !group.members.includes(actor)) {
      throw new ProtocolError("FORBIDDEN", `You are not a member of a group named "${name}"`);
    }
    let members = group.members;
    let subject = actor;
    let event: "added" | "removed" | "left";
    if (action === "leave") {
      members = members.filter((m) => m !== actor);
      event = "left";
    } else {
      if (userId === undefined || !isUuid(userId)) {
        throw new ProtocolError("BAD_REQUEST", `Name the user to ${action}`);
      }
      subject = userId;
      if (action === "add") {
        if (members.includes(userId)) {
          throw new ProtocolError("BAD_REQUEST", `That user is in "${group.name}" already`);
        }
        if (!(await this.#hub.isKnownUser(userId))) {
          throw new ProtocolError("USER_NOT_FOUND", `Unknown user "${userId}"`);
        }
        if (members.length >= MAX_GROUP_MEMBERS) {
          throw new ProtocolError(
            "BAD_REQUEST",
            `A group has at most ${MAX_GROUP_MEMBERS} members`,
          );
        }
        members = [...members, userId].sort();
        event = "added";
      } else {
        if (actor !== group.creator_id) {
          throw new ProtocolError(
            "FORBIDDEN",
            `Only the creator of "${group.name}" can remove members`,
          );
        }
        if (!members.includes(userId)) {
          throw new ProtocolError("BAD_REQUEST", `That user is not in "${group.name}"`);
        }
        members = members.filter((m) => m !== userId);
        event = "removed";
      }
    }
    const next: ChatGroup = { ...group, members, version: group.version + 1 };
    await this.#save(next);
    this.#hub.log.info(`group "${group.name}": ${short(subject)} ${event} by ${short(actor)}`);
    await this.#notify(next, event, subject, actor, event === "added" ? [] : [subject]);
    await this.#publish(next, event, subject, actor);
    return next;
  }

  /**
   * GROUP_UPDATE from a server of the group: a newer version replaces the group here, and the
   * local members hear about it. True when it changed anything.
   */
  async applyRemote(p: JsonObject, group: ChatGroup): Promise<boolean> {
    const current = this.#groups.get(group.group_id);
    if (current && current.version >= group.version) return false;
    const clash = this.byName(group.name);
    if (clash && clash.group_id !== group.group_id) {
      // Two groups created with one name at once on two servers: the earlier (then the lower
      // id) keeps the name on every server; the other is renamed by its id.
      const keep = clash.created_at < group.created_at ||
        (clash.created_at === group.created_at && clash.group_id < group.group_id);
      if (keep) group = { ...group, name: `${group.name}-${group.group_id.slice(0, 4)}` };
      else {
        await this.#save({ ...clash, name: `${clash.name}-${clash.group_id.slice(0, 4)}` });
      }
    }
    await this.#save({ ...group, members: [...group.members].sort() });
    const action = p["action"];
    const event = action === "created" || action === "added" || action === "removed" ||
        action === "left"
      ? action
      : "added";
    const userId = typeof p["user_id"] === "string" ? p["user_id"] : "";
    const by = typeof p["by"] === "string" ? p["by"] : "";
    const gone = current?.members.filter((m) => !group.members.includes(m)) ?? [];
    await this.#notify(this.#groups.get(group.group_id)!, event, userId, by, gone);
    return true;
  }

  /** GROUP_UPDATE payloads of every group, for a server of the group that linked. */
  syncPayloads(): JsonObject[] {
    return [...this.#groups.values()].map((g) => ({ group: { ...g, members: [...g.members] } }));
  }
}
