/**
 * The events of the social commands (`/whoelse`, `/whoelsesince`, `/block`, `/broadcast`,
 * `/random`, `/group`, `/startprivate`, ...) and their one-line text form. They are part of
 * {@linkcode ClientEvent} (events.ts), printed as text or, with `--json`, as the event itself.
 *
 * @module
 */

import type { FormatOptions } from "./events.ts";
import { cleanText, shortId } from "./safe_text.ts";

/** A user named in an event: id and the name shown for it. */
export interface NamedUser {
  user_id: string;
  display_name: string;
}

/** The answer to `/whoelse`: the other users online now. */
export interface WhoElseEvent {
  event: "whoelse";
  users: NamedUser[];
}

/** One user of a `/whoelsesince` answer. */
export interface SeenUser extends NamedUser {
  /** Online now. */
  online: boolean;
  /** When the user was last seen online (ms since the epoch; now for users online now). */
  last_seen: number;
  /** Seconds between `last_seen` and the answer (0 for users online now). */
  seconds_ago: number;
}

/** The answer to `/whoelsesince <seconds>`. */
export interface WhoElseSinceEvent {
  event: "whoelsesince";
  seconds: number;
  users: SeenUser[];
}

/** The block list changed (`/block`, `/unblock`) or was asked for (`/blocks`). */
export interface BlocksEvent {
  event: "blocks";
  action: "blocked" | "unblocked" | "list";
  /** The user blocked or unblocked. */
  user_id?: string;
  display_name?: string;
  /** The whole list now. */
  blocked: NamedUser[];
}

/** A server refused to deliver something because the recipient blocked the sender. */
export interface NotDeliveredEvent {
  event: "not_delivered";
  reason: "blocked";
  /** What was refused. */
  kind: "message" | "broadcast" | "random" | "group" | "private";
  /** The recipient, when known. */
  to?: string;
  to_name?: string;
  /** How many recipients refused it. */
  count: number;
  /** The group, for a group message. */
  group?: string;
}

/** `/random`: who got the message. */
export interface RandomEvent {
  event: "random";
  to: string;
  to_name: string;
}

/** A member of a group as listed. */
export interface GroupMember extends NamedUser {
  /** Online now, as far as the client knows. */
  online: boolean;
  /** Created the group (may remove members). */
  creator: boolean;
}

/** A group as listed. */
export interface ListedGroup {
  group_id: string;
  name: string;
  creator_id: string;
  members: GroupMember[];
}

/** The answer to `/group list`. */
export interface GroupsEvent {
  event: "groups";
  groups: ListedGroup[];
}

/** The answer to `/group members <name>`. */
export interface GroupMembersEvent {
  event: "group_members";
  group: ListedGroup;
}

/** A group the user is in changed (from the server's GROUP_EVENT). */
export interface GroupChangeEvent {
  event: "group_change";
  group_id: string;
  group: string;
  action: "created" | "added" | "removed" | "left";
  /** Who was added, removed or left (the creator for `created`). */
  user_id: string;
  user_name: string;
  /** Who did it. */
  by: string;
  by_name: string;
  /** `user_id` is this client's user. */
  self: boolean;
  /** `by` is this client's user. */
  by_self: boolean;
  /** The members after the change. */
  members: NamedUser[];
}

/** A group message was received (one per OAEP piece of a long message). */
export interface GroupMessageEvent {
  event: "group_message";
  group_id: string;
  group: string;
  from: string;
  from_name: string;
  text: string;
  verified: boolean;
  trusted: boolean;
}

/** A group message or file was handed to the server, one copy per member. */
export interface GroupSentEvent {
  event: "group_sent";
  group_id: string;
  group: string;
  /** Members it was encrypted for and sent to. */
  recipients: number;
  /** Frames per member (OAEP pieces; chunks for a file). */
  parts: number;
  /** Members who are offline: the server queued theirs. */
  queued: number;
  /** File name and size (files only). */
  file?: string;
  size?: number;
  /** True when the client is reconnecting: the frames wait in the client until it is back. */
  pending?: boolean;
}

/** Something happened to a peer-to-peer private chat. */
export interface PrivateEvent {
  event: "private";
  /**
   * `requested` (asked the peer), `invited` (the peer asks us), `opened` (the direct link is up
   * and authenticated), `closed`, `failed` (could not be made), `sent` (a message went over it).
   */
  action: "requested" | "invited" | "opened" | "closed" | "failed" | "sent";
  peer: string;
  peer_name: string;
  /** `host:port` of the requester's listener (requested, invited). */
  address?: string;
  /** Why it closed or failed. */
  reason?: string;
  /** The peer closed it (closed). */
  by_peer?: boolean;
  /** Pieces of a sent message (sent). */
  parts?: number;
}

/** A message arrived over a private chat's direct link. */
export interface PrivateMessageEvent {
  event: "private_message";
  from: string;
  from_name: string;
  text: string;
}

/** Every social event. */
export type SocialEvent =
  | WhoElseEvent
  | WhoElseSinceEvent
  | BlocksEvent
  | NotDeliveredEvent
  | RandomEvent
  | GroupsEvent
  | GroupMembersEvent
  | GroupChangeEvent
  | GroupMessageEvent
  | GroupSentEvent
  | PrivateEvent
  | PrivateMessageEvent;

function who(name: string, id: string): string {
  return `${cleanText(name)} (${shortId(id)})`;
}

function users(n: number): string {
  return `${n} user${n === 1 ? "" : "s"}`;
}

function listed(head: string, items: string[], options: FormatOptions): string {
  if (options.multiline) return [head, ...items.map((i) => `  ${i}`)].join("\n");
  return `${head} ${items.join(", ")}`;
}

function ago(seconds: number): string {
  if (seconds < 120) return `${seconds} s ago`;
  if (seconds < 7200) return `${Math.floor(seconds / 60)} min ago`;
  return `${Math.floor(seconds / 3600)} h ago`;
}

function memberText(m: GroupMember): string {
  const marks = [m.creator ? "creator" : "", m.online ? "online" : ""].filter((s) => s);
  return `${who(m.display_name, m.user_id)}${marks.length ? ` [${marks.join(", ")}]` : ""}`;
}

function groupChange(e: GroupChangeEvent): string {
  const group = cleanText(e.group);
  const user = e.self ? "you" : cleanText(e.user_name);
  const by = e.by_self ? "you" : cleanText(e.by_name);
  switch (e.action) {
    case "created": {
      const others = e.members.filter((m) => m.user_id !== e.by).map((m) =>
        cleanText(m.display_name)
      );
      return e.by_self
        ? `[group] you created ${group} with ${others.join(", ")}`
        : `[group] you were added to ${group} by ${by} (members: ${
          e.members.map((m) => cleanText(m.display_name)).join(", ")
        })`;
    }
    case "added":
      return e.self
        ? `[group] you were added to ${group} by ${by}`
        : `[group] ${by} added ${user} to ${group}`;
    case "removed":
      return e.self
        ? `[group] you were removed from ${group} by ${by}`
        : `[group] ${by} removed ${user} from ${group}`;
    case "left":
      return `[group] ${user} left ${group}`;
    default: {
      const never: never = e.action;
      return String(never);
    }
  }
}

function privateEvent(e: PrivateEvent): string {
  const peer = cleanText(e.peer_name);
  const reason = e.reason ? `: ${cleanText(e.reason)}` : "";
  switch (e.action) {
    case "requested":
      return `[private] asked ${peer} for a private chat (listening on ${
        cleanText(e.address ?? "")
      }); waiting for ${peer} to accept`;
    case "invited":
      return `[private] ${peer} asks for a private chat over a direct connection to ${
        cleanText(e.address ?? "")
      }; /accept ${peer} to connect (${peer} then sees your network address)`;
    case "opened":
      return `[private] private chat with ${peer} open: a direct connection, no server in between; /private ${peer} <text>`;
    case "closed":
      return `[private] private chat with ${peer} closed${reason}`;
    case "failed":
      return `[error] private chat with ${peer} failed${reason}`;
    case "sent":
      return `[sent] private to ${peer}${
        (e.parts ?? 1) > 1 ? ` in ${e.parts} parts` : ""
      } (direct)`;
    default: {
      const never: never = e.action;
      return String(never);
    }
  }
}

/**
 * The human-readable text of a social event (see `formatEvent` in events.ts).
 *
 * @example
 * ```ts
 * import { formatSocialEvent } from "./social_events.ts";
 * const line = formatSocialEvent({
 *   event: "not_delivered", reason: "blocked", kind: "message", count: 1,
 *   to: "1b2c3d4e-aaaa-4bbb-8ccc-dddddddddddd", to_name: "bob",
 * });
 * console.assert(line === "[error] not delivered: bob has blocked you");
 * ```
 */
export function formatSocialEvent(e: SocialEvent, options: FormatOptions = {}): string {
  switch (e.event) {
    case "whoelse":
      if (e.users.length === 0) return "[whoelse] nobody else is online";
      return listed(
        `[whoelse] ${e.users.length} other${e.users.length === 1 ? "" : "s"} online:`,
        e.users.map((u) => who(u.display_name, u.user_id)),
        options,
      );
    case "whoelsesince":
      if (e.users.length === 0) {
        return `[whoelsesince] nobody else was online in the last ${e.seconds} s`;
      }
      return listed(
        `[whoelsesince] ${users(e.users.length)} online in the last ${e.seconds} s:`,
        e.users.map((u) =>
          `${who(u.display_name, u.user_id)} ${
            u.online ? "online now" : `last seen ${ago(u.seconds_ago)}`
          }`
        ),
        options,
      );
    case "blocks": {
      if (e.action !== "list") {
        const name = who(e.display_name ?? "", e.user_id ?? "");
        return e.action === "blocked"
          ? `[blocks] blocked ${name}: they can no longer message you or see you online`
          : `[blocks] unblocked ${name}`;
      }
      if (e.blocked.length === 0) return "[blocks] you have blocked nobody";
      return listed(
        `[blocks] you have blocked ${users(e.blocked.length)}:`,
        e.blocked.map((u) => who(u.display_name, u.user_id)),
        options,
      );
    }
    case "not_delivered": {
      const group = e.group !== undefined ? ` (group ${cleanText(e.group)})` : "";
      if (e.to_name !== undefined) {
        return `[error] not delivered: ${cleanText(e.to_name)} has blocked you${group}`;
      }
      return `[warn] not delivered to ${users(e.count)}: they have blocked you${group}`;
    }
    case "random":
      return `[random] your message went to ${who(e.to_name, e.to)}`;
    case "groups": {
      if (e.groups.length === 0) return "[groups] you are in no group";
      return listed(
        `[groups] ${e.groups.length} group${e.groups.length === 1 ? "" : "s"}:`,
        e.groups.map((g) =>
          `${cleanText(g.name)}: ${g.members.map((m) => cleanText(m.display_name)).join(", ")}`
        ),
        options,
      );
    }
    case "group_members":
      return listed(
        `[group] ${cleanText(e.group.name)} has ${e.group.members.length} members:`,
        e.group.members.map(memberText),
        options,
      );
    case "group_change":
      return groupChange(e);
    case "group_message": {
      const marks = `${e.verified ? "" : "[unverified] "}${
        e.verified && !e.trusted ? "[UNTRUSTED KEY] " : ""
      }`;
      return `[${cleanText(e.group)}] ${marks}${cleanText(e.from_name)}: ${cleanText(e.text)}`;
    }
    case "group_sent": {
      const what = e.file !== undefined
        ? `file "${cleanText(e.file)}" (${e.size ?? 0} bytes)`
        : `message${e.parts > 1 ? ` in ${e.parts} parts` : ""}`;
      const queued = e.queued > 0 ? `; ${e.queued} offline, queued for them` : "";
      const later = e.pending ? " (queued until the client reconnects)" : "";
      return `[sent] ${what} to group ${cleanText(e.group)} (${
        users(e.recipients)
      })${queued}${later}`;
    }
    case "private":
      return privateEvent(e);
    case "private_message":
      return `[private] ${cleanText(e.from_name)}: ${cleanText(e.text)}`;
    default: {
      const never: never = e;
      return String(never);
    }
  }
}
