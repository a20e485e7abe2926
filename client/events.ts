/**
 * What the client reports: one typed {@linkcode ClientEvent} per thing that happened, printed
 * either as one human-readable line (see {@linkcode formatEvent}) or, with `--json`, as one JSON
 * object per line (the event itself).
 *
 * @module
 */

import { formatAll, formatDm, formatFile, formatSent } from "./chat_format.ts";
import { formatSocialEvent, type SocialEvent } from "./social_events.ts";
import { paint, SGR, userColor } from "./style.ts";
import { cleanText, shortId } from "./safe_text.ts";

export type * from "./social_events.ts";

/** Connected and accepted by the server. */
export interface ReadyEvent {
  event: "ready";
  user_id: string;
  display_name: string;
  server: string;
  /** True when the server's key is pinned and every frame is signature-checked. */
  pinned: boolean;
  /** The account logged in to, when the identity came from an account login. */
  account?: string;
}

/** A direct message was received (one per OAEP piece of a long message). */
export interface DmEvent {
  event: "dm";
  from: string;
  from_name: string;
  text: string;
  /** The content signature verified. */
  verified: boolean;
  /** It verified with the key pinned for the sender (false for a changed key). */
  trusted: boolean;
  /** When it was sent (ms; the frame's original ts, so a queued message shows its send time). */
  ts?: number;
  /** Sent with `/me`: `text` is the action (shown as `* alice waves`). */
  action?: boolean;
  /** Shown again from the messages kept on this device (`/history`, or after a restart). */
  history?: boolean;
}

/** A public-channel message was received. */
export interface AllEvent {
  event: "all";
  from: string;
  from_name: string;
  text: string;
  verified: boolean;
  trusted: boolean;
  /** False when the sender sent base64url plaintext (interop with other clients). */
  encrypted: boolean;
  /** When it was sent (ms; the frame's original ts). */
  ts?: number;
  /** Sent with `/me`: `text` is the action (shown as `* alice waves`). */
  action?: boolean;
  /** Shown again from the messages kept on this device (`/history`, or after a restart). */
  history?: boolean;
}

/** A file transfer to us finished, either saved (`ok`) or rejected. */
export interface FileEvent {
  event: "file";
  from: string;
  from_name: string;
  name: string;
  size: number;
  mode: "dm" | "public";
  ok: boolean;
  /** Absolute path of the saved file (when `ok`). */
  path?: string;
  /** Why the file was rejected (when not `ok`). */
  reason?: string;
  /** The sender's manifest had no SHA-256 (Group 17's form): the content was not checked. */
  unverified?: boolean;
  /** Sent in this group (its id and name), of which the sender is a member. */
  group_id?: string;
  group?: string;
}

/** One entry of a `/list` answer. */
export interface ListedUser {
  user_id: string;
  display_name: string;
  self: boolean;
}

/** The answer to `/list`. */
export interface ListEvent {
  event: "list";
  users: ListedUser[];
}

/**
 * Something failed. `source` is `"server"` for an ERROR frame (with the server's code) and
 * `"client"` for a local failure (usage errors, unknown users, files, the connection).
 */
export interface ErrorEvent {
  event: "error";
  code: string;
  detail: string;
  source: "server" | "client";
}

/** Informational text. */
export interface InfoEvent {
  event: "info";
  text: string;
}

/** A warning (dropped frames, key changes, undecryptable messages). */
export interface WarnEvent {
  event: "warn";
  text: string;
}

/** A user came online or went offline. */
export interface PresenceEvent {
  event: "presence";
  user_id: string;
  display_name: string;
  online: boolean;
  /** The name the user had before: the user changed it (`/nick`) while online. */
  previous_name?: string;
}

/** A `/tell`, `/all` or `/file` was handed to the server. */
export interface SentEvent {
  event: "sent";
  kind: "dm" | "all" | "file";
  /** Recipient user id, or `"public"`. */
  to: string;
  to_name: string;
  /** Number of recipients (1 for a DM). */
  recipients: number;
  /** Frames per recipient for text (the OAEP pieces); chunks for files. */
  parts: number;
  /** File name (files only). */
  name?: string;
  /** File size in bytes (files only). */
  size?: number;
  /** True when the client is reconnecting: the frames wait in the client until it is back. */
  pending?: boolean;
  /** When it was sent (ms). */
  ts?: number;
  /** The text sent (`dm` and `all`; the action for `/me`). */
  text?: string;
  /** Sent with `/me`. */
  action?: boolean;
  /** The sender's display name (shown in actions). */
  from_name?: string;
  /** A file the server did not confirm it took (it may still arrive). */
  unconfirmed?: boolean;
  /** Shown again from the messages kept on this device. */
  history?: boolean;
}

/** Progress of a file transfer (only shown on a terminal). */
export interface FileProgressEvent {
  event: "file_progress";
  direction: "send" | "receive";
  name: string;
  /** Peer user id, or `"public"`. */
  peer: string;
  percent: number;
}

/** Something happened to an account. */
export interface AccountEvent {
  event: "account";
  action: "registered" | "logged_in" | "logged_out" | "password_changed" | "deleted";
  /** The account name (absent for a logout of a session without an account). */
  username?: string;
  /** The account's user id, when known. */
  user_id?: string;
}

/** One account of an `/accounts` answer. */
export interface ListedAccount {
  username: string;
  user_id: string;
  online: boolean;
}

/** The answer to `/accounts <pattern>`. */
export interface AccountsEvent {
  event: "accounts";
  pattern: string;
  accounts: ListedAccount[];
}

/** The server stored a message or file for an offline user (`ACK QUEUED`). */
export interface QueuedEvent {
  event: "queued";
  kind: "dm" | "file" | "message";
  /** Recipient user id. */
  to: string;
  to_name: string;
  /** File name (files only). */
  name?: string;
}

/** The connection to the server dropped; the client reconnects and queues what is sent. */
export interface DisconnectedEvent {
  event: "disconnected";
  /** The server URL that was lost. */
  server: string;
  /** WebSocket close code (1006: the connection broke). */
  code: number;
  reason: string;
}

/** The client is back, through this server (the same or another of the group). */
export interface ReconnectedEvent {
  event: "reconnected";
  /** The server URL now connected to. */
  server: string;
}

/** Every event the client reports. */
export type ClientEvent =
  | ReadyEvent
  | DmEvent
  | AllEvent
  | FileEvent
  | ListEvent
  | ErrorEvent
  | InfoEvent
  | WarnEvent
  | PresenceEvent
  | SentEvent
  | FileProgressEvent
  | AccountEvent
  | AccountsEvent
  | QueuedEvent
  | DisconnectedEvent
  | ReconnectedEvent
  // `/whoelse`, `/block`, `/group`, `/startprivate`... (social_events.ts)
  | SocialEvent;

/** Receives events. */
export type EventSink = (event: ClientEvent) => void;

export { cleanText, shortId };

/** Options for {@linkcode formatEvent}. */
export interface FormatOptions {
  /** Allow an event to take several lines (a terminal); otherwise exactly one line. */
  multiline?: boolean;
  /** ANSI colours (a terminal without `NO_COLOR`; see style.ts). */
  color?: boolean;
  /** Now (ms), for message times (`HH:MM`, with the date when not today); default the clock. */
  now?: number;
  /** The line is replayed from the local history (no "arrived" note). */
  history?: boolean;
}

function listLine(u: ListedUser): string {
  return `${cleanText(u.display_name)} (${u.user_id})${u.self ? " [you]" : ""}`;
}

function formatAccount(e: AccountEvent): string {
  const name = `"${cleanText(e.username ?? "")}"`;
  switch (e.action) {
    case "registered":
      return `[info] registered account ${name}`;
    case "logged_in":
      return `[info] logged in to account ${name}`;
    case "logged_out":
      return "[info] logged out; /login <username> or /quit";
    case "password_changed":
      return `[info] password of account ${name} changed`;
    case "deleted":
      return `[info] account ${name} deleted`;
    default: {
      const never: never = e.action;
      return String(never);
    }
  }
}

/**
 * The human-readable text of an event. Without `multiline` the result is exactly one line (no
 * `\n`), which is what scripts reading stdout rely on.
 *
 * @example
 * ```ts
 * import { formatEvent } from "./events.ts";
 * const noon = new Date(2026, 0, 15, 12, 3).getTime();
 * const line = formatEvent({
 *   event: "dm", from: "1b2c3d4e-aaaa-4bbb-8ccc-dddddddddddd", from_name: "bob",
 *   text: "hi", verified: true, trusted: true, ts: noon,
 * }, { now: noon + 1000 });
 * console.assert(line === "12:03 bob (1b2c3d4e) → me: hi");
 * ```
 */
export function formatEvent(e: ClientEvent, options: FormatOptions = {}): string {
  switch (e.event) {
    case "ready":
      return `[ready] connected as ${cleanText(e.display_name)} (${e.user_id}) to ${e.server}${
        e.account === undefined ? "" : ` (account "${cleanText(e.account)}")`
      }`;
    case "dm":
      return formatDm(e, options);
    case "all":
      return formatAll(e, options);
    case "file":
      return formatFile(e, options);
    case "list": {
      if (e.users.length === 0) return "[list] nobody is online";
      const head = `[list] ${e.users.length} online:`;
      if (options.multiline) return [head, ...e.users.map((u) => `  ${listLine(u)}`)].join("\n");
      return `${head} ${e.users.map(listLine).join(", ")}`;
    }
    case "error":
      return paint(
        e.source === "server"
          ? `[error] ${cleanText(e.code)}: ${cleanText(e.detail)}`
          : `[error] ${cleanText(e.detail)}`,
        SGR.red,
        options.color,
      );
    case "info":
      return `[info] ${cleanText(e.text)}`;
    case "warn":
      return paint(`[warn] ${cleanText(e.text)}`, SGR.yellow, options.color);
    case "presence": {
      const name = paint(cleanText(e.display_name), userColor(e.user_id), options.color);
      const user = `${name} (${shortId(e.user_id)})`;
      if (e.previous_name !== undefined && e.online) {
        return `[presence] ${cleanText(e.previous_name)} (${shortId(e.user_id)}) is now ${name}`;
      }
      return `[presence] ${user} is ${e.online ? "online" : "offline"}`;
    }
    case "sent":
      return formatSent(e, options);
    case "file_progress":
      return `[file] ${cleanText(e.name)} ${e.percent}%`;
    case "account":
      return formatAccount(e);
    case "accounts": {
      const quoted = `"${cleanText(e.pattern)}"`;
      if (e.accounts.length === 0) return `[accounts] no account matches ${quoted}`;
      const item = (a: ListedAccount): string =>
        `${cleanText(a.username)}${a.online ? " (online)" : ""}`;
      const head = `[accounts] ${e.accounts.length} matching ${quoted}:`;
      if (options.multiline) return [head, ...e.accounts.map((a) => `  ${item(a)}`)].join("\n");
      return `${head} ${e.accounts.map(item).join(", ")}`;
    }
    case "queued": {
      const what = e.kind === "file"
        ? `the file "${cleanText(e.name ?? "")}" is`
        : "the message is";
      return `[info] ${cleanText(e.to_name)} is offline; ${what} queued for delivery`;
    }
    case "disconnected":
      return paint(
        `[warn] lost the connection to ${cleanText(e.server)} (${e.code}${
          e.reason ? `: ${cleanText(e.reason)}` : ""
        }); reconnecting, and what you send is queued until then`,
        SGR.yellow,
        options.color,
      );
    case "reconnected":
      return `[info] reconnected via ${cleanText(e.server)}`;
    case "whoelse":
    case "whoelsesince":
    case "blocks":
    case "not_delivered":
    case "random":
    case "groups":
    case "group_members":
    case "group_change":
    case "group_message":
    case "group_sent":
    case "private":
    case "private_message":
      return formatSocialEvent(e, options);
    default: {
      const never: never = e;
      return String(never);
    }
  }
}
