/**
 * The browser client's state, kept apart from the DOM: one {@linkcode WebState} value and a
 * pure {@linkcode reduce} function over {@linkcode WebAction}s, most of them the terminal
 * client's own {@linkcode ClientEvent}s. The page (app.ts) only renders a state and turns
 * clicks and key presses into calls; {@linkcode Store} holds the current state and tells
 * subscribers when it changes. Nothing here touches the DOM, the network or storage, so it is
 * unit-tested without a browser (state_test.ts).
 *
 * @module
 */

import type { ClientEvent, ListedUser } from "../events.ts";
import { formatSocialEvent } from "../social_events.ts";

/** The conversation id of the public channel. */
export const PUBLIC = "public";

/** Messages kept per conversation (older ones are dropped). */
export const MAX_MESSAGES = 500;

/** Notices kept (the oldest go first). */
export const MAX_NOTICES = 4;

/** Where the page is. */
export type Phase =
  /** Asking for a login (or a new account). */
  | "login"
  /** Logging in, creating a key, or saying hello. */
  | "connecting"
  /** Connected and accepted. */
  | "ready"
  /** The connection dropped; reconnecting (what is sent waits). */
  | "reconnecting"
  /** Lost for good (or refused); log in again. */
  | "closed";

/** A received file, checked (size and SHA-256) or refused. */
export interface FileNote {
  /** The sender's file name. */
  name: string;
  /** Its size in bytes. */
  size: number;
  /** True when the size and SHA-256 matched the manifest. */
  ok: boolean;
  /** Where the checked file can be downloaded (a `blob:` URL). */
  url?: string;
  /** Why it was refused. */
  reason?: string;
}

/** Delivery state of a message this user sent. */
export type SendStatus = "sending" | "sent" | "pending" | "queued" | "failed";

/** One line of a conversation. */
export interface ChatMessage {
  /** Local id (unique in a state). */
  id: number;
  /** `in` from someone, `out` from this user, `system` from the page. */
  direction: "in" | "out" | "system";
  /** Sender user id (this user for `out`; empty for `system`). */
  from: string;
  /** Sender name as shown. */
  fromName: string;
  /** The text, safe to show with `textContent`. */
  text: string;
  /** When it was added (ms). */
  at: number;
  /** Incoming: the content signature verified. */
  verified?: boolean;
  /** Incoming: it verified with the sender's pinned key. */
  trusted?: boolean;
  /** Incoming public message: false when the sender sent plaintext. */
  encrypted?: boolean;
  /** Outgoing: how far it got. */
  status?: SendStatus;
  /** Outgoing: why it failed. */
  error?: string;
  /** A received file. */
  file?: FileNote;
}

/** A conversation: the public channel or the direct messages with one user. */
export interface Conversation {
  /** {@linkcode PUBLIC} or the other user's id. */
  id: string;
  /** Lines, oldest first. */
  messages: ChatMessage[];
  /** Lines received while another conversation was shown. */
  unread: number;
}

/** A notice shown above the chat (info, warning, error). */
export interface Notice {
  /** Local id (for dismissing). */
  id: number;
  /** How loud. */
  level: "info" | "warn" | "error";
  /** What happened. */
  text: string;
}

/** A key change: the loud kind of warning, shown until dismissed. */
export interface Alarm {
  /** Local id (for dismissing). */
  id: number;
  /** `server` for the server's key (refused), `user` for another user's key. */
  kind: "server" | "user";
  /** The warning as the client worded it. */
  text: string;
  /** The server URL or user id it is about, when known. */
  subject?: string;
}

/** Who this page is logged in as. */
export interface Me {
  /** User id. */
  userId: string;
  /** Name shown to others. */
  displayName: string;
  /** Account name, when logged in to one. */
  account?: string;
  /** The server URL connected to. */
  server: string;
  /** True when the server's key is pinned (every frame is signature-checked). */
  pinned: boolean;
}

/** A file transfer in progress. */
export interface Transfer {
  /** `send` or `receive`. */
  direction: "send" | "receive";
  /** The file's name. */
  name: string;
  /** Peer user id or `public`. */
  peer: string;
  /** 0–100. */
  percent: number;
}

/** A group chat this user is a member of. */
export interface GroupInfo {
  /** The group's name (unique, case-insensitively). */
  name: string;
  /** Member user ids. */
  members: string[];
}

/** The conversation id of a group. */
export function groupConversation(groupId: string): string {
  return `group:${groupId}`;
}

/** The group id of a group conversation id, or undefined for other conversations. */
export function groupIdOf(conversation: string): string | undefined {
  return conversation.startsWith("group:") ? conversation.slice(6) : undefined;
}

/** Everything the page shows. */
export interface WebState {
  /** Where the page is. */
  phase: Phase;
  /**
   * What a login or account creation is doing, until it is complete (the chat shows only then,
   * also when the session is already connected and the account is being registered).
   */
  busy?: string;
  /** Why the last login or account creation failed. */
  loginError?: string;
  /** The logged-in user. */
  me?: Me;
  /** Online users, this user included, sorted by name. */
  online: ListedUser[];
  /** The last name seen for every user id. */
  names: Record<string, string>;
  /** Users this user blocked (their messages are refused by the servers). */
  blocked: string[];
  /** Groups this user is a member of, by group id. */
  groups: Record<string, GroupInfo>;
  /** Conversations by id; the public channel always exists. */
  conversations: Record<string, Conversation>;
  /** The conversation shown. */
  active: string;
  /** Recent notices, oldest first. */
  notices: Notice[];
  /** Key-change warnings not dismissed yet. */
  alarms: Alarm[];
  /** File transfers in progress, by `direction:peer:name`. */
  transfers: Record<string, Transfer>;
  /** The server URL the page talks to now (the page's own, or a failover server). */
  server: string;
  /** Next local id. */
  nextId: number;
}

/** Everything that changes the state. */
export type WebAction =
  /** Something the client reported. */
  | { type: "event"; event: ClientEvent; at: number }
  /** A login or account creation started (`busy` says what it is doing). */
  | { type: "busy"; text: string }
  /** A login or account creation failed; `code` is the error's code. */
  | { type: "login_failed"; code: string; text: string; server?: string }
  /** This user sent a message (shown at once, `sending`). */
  | { type: "outgoing"; id: number; to: string; text: string; at: number }
  /** The message `id` was handed to the server, queued for a reconnect, or failed. */
  | { type: "outgoing_done"; id: number; status: SendStatus; error?: string }
  /** Show a conversation (its unread count is cleared). */
  | { type: "select"; conversation: string }
  /** A page-level notice (a failed command, a hint). */
  | { type: "notice"; level: Notice["level"]; text: string }
  /** Dismiss a notice or an alarm. */
  | { type: "dismiss"; id: number }
  /** The session ended for good (`byUs`: logged out). */
  | { type: "closed"; byUs: boolean; reason?: string }
  /** The connection now goes to this server. */
  | { type: "server"; url: string };

/**
 * The state of a page that has not logged in yet.
 *
 * @example
 * ```ts
 * import { initialState } from "./state.ts";
 * const state = initialState("ws://127.0.0.1:8765");
 * console.assert(state.phase === "login" && state.active === "public");
 * ```
 */
export function initialState(server: string): WebState {
  return {
    phase: "login",
    online: [],
    names: {},
    blocked: [],
    groups: {},
    conversations: { [PUBLIC]: { id: PUBLIC, messages: [], unread: 0 } },
    active: PUBLIC,
    notices: [],
    alarms: [],
    transfers: {},
    server,
    nextId: 1,
  };
}

// C0/C1 controls except tab and newline, DEL, and the bidirectional overrides that can
// disguise text (the browser counterpart of events.ts cleanText, which keeps one line).
// deno-lint-ignore no-control-regex
const UNSAFE = /[\x00-\x08\x0b-\x1f\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]/g;

/**
 * Text from the network made safe to show: controls and bidi overrides become `\u{..}`;
 * newlines and tabs stay.
 *
 * @example
 * ```ts
 * import { displayText } from "./state.ts";
 * console.assert(displayText("a\nb\u202e") === "a\nb\\u{202e}");
 * ```
 */
export function displayText(text: string): string {
  return text.replace(UNSAFE, (ch) => `\\u{${ch.codePointAt(0)!.toString(16)}}`);
}

/** The name to show for a user id (its first 8 characters when no name is known). */
export function nameOf(state: WebState, id: string): string {
  if (id === PUBLIC) return "Public channel";
  const group = groupIdOf(id);
  if (group !== undefined) return `# ${state.groups[group]?.name ?? group.slice(0, 8)}`;
  if (state.me && id === state.me.userId) return state.me.displayName;
  return state.names[id] ?? id.slice(0, 8);
}

/** True when the user is online (as far as the page knows). */
export function isOnline(state: WebState, id: string): boolean {
  return state.online.some((u) => u.user_id === id);
}

/** True when this user blocked `id`. */
export function isBlocked(state: WebState, id: string): boolean {
  return state.blocked.includes(id);
}

/**
 * The conversations to list: the public channel first, then the groups by name, then every
 * other user who is online or has messages, online ones first, each by name.
 */
export function conversationList(state: WebState): string[] {
  const ids = new Set<string>();
  for (const u of state.online) if (!u.self) ids.add(u.user_id);
  for (const id of Object.keys(state.conversations)) if (id !== PUBLIC) ids.add(id);
  for (const id of Object.keys(state.groups)) ids.add(groupConversation(id));
  if (state.me) ids.delete(state.me.userId);
  const byName = (a: string, b: string): number =>
    nameOf(state, a).toLowerCase().localeCompare(nameOf(state, b).toLowerCase()) ||
    (a < b ? -1 : a > b ? 1 : 0);
  const groups = [...ids].filter((id) => groupIdOf(id) !== undefined).sort(byName);
  const others = [...ids].filter((id) => groupIdOf(id) === undefined).sort((a, b) => {
    const online = Number(isOnline(state, b)) - Number(isOnline(state, a));
    if (online !== 0) return online;
    return byName(a, b);
  });
  return [PUBLIC, ...groups, ...others];
}

function withConversation(
  state: WebState,
  id: string,
  change: (c: Conversation) => Conversation,
): WebState {
  const was = state.conversations[id] ?? { id, messages: [], unread: 0 };
  return { ...state, conversations: { ...state.conversations, [id]: change(was) } };
}

/** Adds a line to a conversation (counting it unread when another one is shown). */
function addMessage(
  state: WebState,
  conversation: string,
  message: Omit<ChatMessage, "id">,
): WebState {
  const id = state.nextId;
  const next = withConversation(state, conversation, (c) => ({
    ...c,
    messages: [...c.messages, { ...message, id }].slice(-MAX_MESSAGES),
    unread: c.unread +
      (message.direction === "in" && state.active !== conversation ? 1 : 0),
  }));
  return { ...next, nextId: id + 1 };
}

function addNotice(state: WebState, level: Notice["level"], text: string): WebState {
  const notice = { id: state.nextId, level, text: displayText(text) };
  return {
    ...state,
    notices: [...state.notices, notice].slice(-MAX_NOTICES),
    nextId: state.nextId + 1,
  };
}

/** The terminal's advice ("remove ... in the config file") as it applies in the page. */
const CONFIG_ADVICE = /remove "[^"]*" from "(servers|known_keys)"( there| in [^.;]*)?/g;

/**
 * A warning worded for the terminal client, reworded for the page: pins live in the
 * browser's storage, and the alarm offers to forget one.
 *
 * @example
 * ```ts
 * import { pageAdvice } from "./state.ts";
 * const text = 'If the change is expected, remove "ws://x" from "servers" in the config file';
 * console.assert(pageAdvice(text) === "If the change is expected, forget the pinned key below");
 * ```
 */
export function pageAdvice(text: string): string {
  return text.replace(CONFIG_ADVICE, "forget the pinned key below");
}

function addAlarm(state: WebState, alarm: Omit<Alarm, "id">): WebState {
  const text = displayText(pageAdvice(alarm.text));
  if (state.alarms.some((a) => a.text === text)) return state;
  return {
    ...state,
    alarms: [...state.alarms, { ...alarm, text, id: state.nextId }],
    nextId: state.nextId + 1,
  };
}

function remember(state: WebState, id: string, name: string): WebState {
  if (!name || state.names[id] === name) return state;
  return { ...state, names: { ...state.names, [id]: name } };
}

const KEY_CHANGED = /^KEY CHANGED for .*?\(([0-9a-f-]{36})\)/i;

function setOutgoing(
  state: WebState,
  id: number,
  change: Partial<ChatMessage>,
): WebState {
  for (const c of Object.values(state.conversations)) {
    const i = c.messages.findIndex((m) => m.id === id);
    if (i < 0) continue;
    const messages = [...c.messages];
    messages[i] = { ...messages[i]!, ...change };
    return { ...state, conversations: { ...state.conversations, [c.id]: { ...c, messages } } };
  }
  return state;
}

/** The last outgoing message to `to` still waiting for the server's verdict on an offline user. */
function lastSent(state: WebState, to: string): number | undefined {
  const messages = state.conversations[to]?.messages ?? [];
  for (let i = messages.length - 1; i >= 0; i--) {
    const m = messages[i]!;
    if (m.direction === "out") return m.id;
  }
  return undefined;
}

function onEvent(state: WebState, e: ClientEvent, at: number): WebState {
  switch (e.event) {
    case "ready": {
      const me: Me = {
        userId: e.user_id,
        displayName: e.display_name,
        server: e.server,
        pinned: e.pinned,
        ...(e.account !== undefined ? { account: e.account } : {}),
      };
      // Still busy until the login or registration completes (the account event).
      const { loginError: _error, ...rest } = state;
      return {
        ...rest,
        phase: "ready",
        me,
        server: e.server,
        online: [{ user_id: e.user_id, display_name: e.display_name, self: true }],
      };
    }
    case "dm": {
      const next = remember(state, e.from, e.from_name);
      return addMessage(next, e.from, {
        direction: "in",
        from: e.from,
        fromName: displayText(e.from_name),
        text: displayText(e.text),
        at,
        verified: e.verified,
        trusted: e.trusted,
      });
    }
    case "all": {
      const next = remember(state, e.from, e.from_name);
      return addMessage(next, PUBLIC, {
        direction: "in",
        from: e.from,
        fromName: displayText(e.from_name),
        text: displayText(e.text),
        at,
        verified: e.verified,
        trusted: e.trusted,
        encrypted: e.encrypted,
      });
    }
    case "file": {
      const next = remember(state, e.from, e.from_name);
      const conversation = e.group_id !== undefined
        ? groupConversation(e.group_id)
        : e.mode === "public"
        ? PUBLIC
        : e.from;
      const file: FileNote = {
        name: displayText(e.name),
        size: e.size,
        ok: e.ok,
        ...(e.ok && e.path !== undefined ? { url: e.path } : {}),
        ...(e.reason !== undefined ? { reason: displayText(e.reason) } : {}),
      };
      const transfers = { ...next.transfers };
      delete transfers[`receive:${e.from}:${e.name}`];
      return addMessage({ ...next, transfers }, conversation, {
        direction: "in",
        from: e.from,
        fromName: displayText(e.from_name),
        text: e.ok
          ? `sent the file "${file.name}" (${e.size} bytes, SHA-256 checked)`
          : `tried to send the file "${file.name}"; refused: ${file.reason ?? "unknown reason"}`,
        at,
        file,
      });
    }
    case "list": {
      let next: WebState = { ...state, online: e.users };
      for (const u of e.users) next = remember(next, u.user_id, u.display_name);
      return next;
    }
    case "presence": {
      const next = remember(state, e.user_id, e.display_name);
      const others = next.online.filter((u) => u.user_id !== e.user_id);
      const online = e.online
        ? [...others, { user_id: e.user_id, display_name: e.display_name, self: false }]
        : others;
      online.sort((a, b) =>
        a.display_name.toLowerCase().localeCompare(b.display_name.toLowerCase()) ||
        (a.user_id < b.user_id ? -1 : a.user_id > b.user_id ? 1 : 0)
      );
      return { ...next, online };
    }
    case "error": {
      if (e.code === "SERVER_KEY_CHANGED") {
        return addAlarm(state, { kind: "server", text: e.detail });
      }
      return addNotice(state, "error", e.source === "server" ? `${e.code}: ${e.detail}` : e.detail);
    }
    case "warn": {
      const changed = KEY_CHANGED.exec(e.text);
      if (changed) return addAlarm(state, { kind: "user", text: e.text, subject: changed[1]! });
      return addNotice(state, "warn", e.text);
    }
    case "info":
      return addNotice(state, "info", e.text);
    case "sent":
      return state;
    case "queued": {
      const id = lastSent(state, e.to);
      const next = id === undefined ? state : setOutgoing(state, id, { status: "queued" });
      const what = e.kind === "file" ? `The file "${e.name ?? ""}"` : "The message";
      return addMessage(next, e.to, {
        direction: "system",
        from: "",
        fromName: "",
        text: `${displayText(e.to_name)} is offline. ${what} is queued for delivery.`,
        at,
      });
    }
    case "file_progress": {
      const key = `${e.direction}:${e.peer}:${e.name}`;
      const transfers = { ...state.transfers };
      if (e.percent >= 100) delete transfers[key];
      else {
        transfers[key] = {
          direction: e.direction,
          name: displayText(e.name),
          peer: e.peer,
          percent: e.percent,
        };
      }
      return { ...state, transfers };
    }
    case "account": {
      // A registration or login is complete: what was busy is done.
      const { busy: _busy, ...rest } = state;
      if (e.action === "registered" && rest.me) {
        const next = {
          ...rest,
          me: { ...rest.me, ...(e.username !== undefined ? { account: e.username } : {}) },
        };
        return addNotice(next, "info", `Registered the account "${e.username ?? ""}"`);
      }
      if (e.action === "logged_in" && rest.me && e.username !== undefined) {
        return { ...rest, me: { ...rest.me, account: e.username } };
      }
      return rest;
    }
    case "accounts":
      return state;
    case "disconnected":
      return addNotice(
        { ...state, phase: "reconnecting" },
        "warn",
        `Lost the connection to ${e.server}; reconnecting. Messages you send wait until then.`,
      );
    case "reconnected": {
      const me = state.me ? { ...state.me, server: e.server } : undefined;
      return addNotice(
        { ...state, phase: "ready", server: e.server, ...(me ? { me } : {}) },
        "info",
        `Reconnected via ${e.server}`,
      );
    }
    case "group_message": {
      const conversation = groupConversation(e.group_id);
      let next = remember(state, e.from, e.from_name);
      if (!next.groups[e.group_id]) {
        next = {
          ...next,
          groups: { ...next.groups, [e.group_id]: { name: e.group, members: [] } },
        };
      }
      return addMessage(next, conversation, {
        direction: "in",
        from: e.from,
        fromName: displayText(e.from_name),
        text: displayText(e.text),
        at,
        verified: e.verified,
        trusted: e.trusted,
      });
    }
    case "blocks": {
      let next: WebState = { ...state, blocked: e.blocked.map((u) => u.user_id) };
      for (const u of e.blocked) next = remember(next, u.user_id, u.display_name);
      if (e.action === "list") return next;
      return addNotice(next, "info", formatSocialEvent(e).replace(/^\[[a-z_]+\] /, ""));
    }
    case "groups": {
      const groups: Record<string, GroupInfo> = {};
      let next = state;
      for (const g of e.groups) {
        groups[g.group_id] = { name: g.name, members: g.members.map((m) => m.user_id) };
        for (const m of g.members) next = remember(next, m.user_id, m.display_name);
      }
      return { ...next, groups };
    }
    case "group_change": {
      const groups = { ...state.groups };
      const gone = e.self && (e.action === "removed" || e.action === "left");
      if (gone) delete groups[e.group_id];
      else groups[e.group_id] = { name: e.group, members: e.members.map((m) => m.user_id) };
      let next: WebState = { ...state, groups };
      for (const m of e.members) next = remember(next, m.user_id, m.display_name);
      return addMessage(next, groupConversation(e.group_id), {
        direction: "system",
        from: "",
        fromName: "",
        text: formatSocialEvent(e).replace(/^\[[a-z_]+\] /, ""),
        at,
      });
    }
    case "group_sent":
      return state;
    case "whoelse":
    case "whoelsesince":
    case "not_delivered":
    case "random":
    case "group_members":
    case "private":
    case "private_message":
      // The terminal's wording, without its "[tag] " prefix.
      return addNotice(state, "info", formatSocialEvent(e).replace(/^\[[a-z_]+\] /, ""));
    default: {
      const never: never = e;
      return never;
    }
  }
}

/**
 * The state after an action. Pure: the same state and action always give the same result.
 *
 * @example
 * ```ts
 * import { initialState, reduce } from "./state.ts";
 * let state = initialState("ws://127.0.0.1:8765");
 * state = reduce(state, { type: "busy", text: "Logging in…" });
 * console.assert(state.phase === "connecting" && state.busy === "Logging in…");
 * ```
 */
export function reduce(state: WebState, action: WebAction): WebState {
  switch (action.type) {
    case "event":
      return onEvent(state, action.event, action.at);
    case "busy": {
      const { loginError: _error, ...rest } = state;
      return { ...rest, phase: state.me ? state.phase : "connecting", busy: action.text };
    }
    case "login_failed": {
      const { busy: _busy, ...rest } = state;
      if (action.code === "SERVER_KEY_CHANGED") {
        return addAlarm({
          ...rest,
          phase: "login",
          loginError: "Not logged in: the server's key changed (see the warning above)",
        }, {
          kind: "server",
          text: action.text,
          ...(action.server !== undefined ? { subject: action.server } : {}),
        });
      }
      return { ...rest, phase: "login", loginError: displayText(action.text) };
    }
    case "outgoing": {
      const me = state.me;
      const next = { ...state, nextId: Math.max(state.nextId, action.id + 1) };
      const conversation = action.to;
      const was = next.conversations[conversation] ?? { id: conversation, messages: [], unread: 0 };
      const message: ChatMessage = {
        id: action.id,
        direction: "out",
        from: me?.userId ?? "",
        fromName: me?.displayName ?? "you",
        text: displayText(action.text),
        at: action.at,
        status: "sending",
      };
      return {
        ...next,
        conversations: {
          ...next.conversations,
          [conversation]: { ...was, messages: [...was.messages, message].slice(-MAX_MESSAGES) },
        },
      };
    }
    case "outgoing_done": {
      // A message the server already said it queued stays "queued".
      const current = Object.values(state.conversations)
        .flatMap((c) => c.messages).find((m) => m.id === action.id);
      if (current?.status === "queued" && action.status === "sent") return state;
      return setOutgoing(state, action.id, {
        status: action.status,
        ...(action.error !== undefined ? { error: displayText(action.error) } : {}),
      });
    }
    case "select": {
      const next = withConversation(state, action.conversation, (c) => ({ ...c, unread: 0 }));
      return { ...next, active: action.conversation };
    }
    case "notice":
      return addNotice(state, action.level, action.text);
    case "dismiss":
      return {
        ...state,
        notices: state.notices.filter((n) => n.id !== action.id),
        alarms: state.alarms.filter((a) => a.id !== action.id),
      };
    case "closed": {
      // Alarms (key changes) outlive the session; everything else of it goes.
      const fresh = initialState(state.server);
      const next: WebState = { ...fresh, alarms: state.alarms, nextId: state.nextId };
      if (action.byUs) return next;
      return addNotice(
        { ...next, phase: state.me ? "closed" : "login" },
        "error",
        action.reason ?? "The connection closed; log in again",
      );
    }
    case "server":
      return { ...state, server: action.url };
    default: {
      const never: never = action;
      return never;
    }
  }
}

/** Holds the current state and tells subscribers about every change. */
export class Store {
  #state: WebState;
  #listeners: Set<(state: WebState) => void> = new Set();

  /**
   * Creates a store.
   *
   * @example
   * ```ts
   * import { initialState, Store } from "./state.ts";
   * const store = new Store(initialState("ws://127.0.0.1:8765"));
   * let seen = 0;
   * store.subscribe(() => seen++);
   * store.dispatch({ type: "select", conversation: "public" });
   * console.assert(seen === 1);
   * ```
   */
  constructor(state: WebState) {
    this.#state = state;
  }

  /** The current state. */
  get state(): WebState {
    return this.#state;
  }

  /** Applies an action; subscribers hear about it when the state changed. */
  dispatch(action: WebAction): void {
    const next = reduce(this.#state, action);
    if (next === this.#state) return;
    this.#state = next;
    for (const listener of this.#listeners) listener(next);
  }

  /** Calls `listener` after every change; returns the function that stops it. */
  subscribe(listener: (state: WebState) => void): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  /** A local id for an outgoing message (never used by the state itself). */
  takeId(): number {
    const id = this.#state.nextId;
    this.#state = { ...this.#state, nextId: id + 1 };
    return id;
  }
}
