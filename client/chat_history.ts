/**
 * Recent messages of each conversation, kept on the user's own device so a conversation does
 * not vanish when the program restarts: the last {@linkcode ChatHistoryOptions.perConversation}
 * messages per conversation (a direct conversation per user, and the public channel), for each
 * identity a config is used with, in one JSON file next to the config (mode 0600, written
 * atomically).
 *
 * The file holds **plaintext**: messages are decrypted on this device and stored as they were
 * shown. It never leaves the device; `--no-history` turns keeping it off (then nothing is read
 * or written).
 *
 * @module
 */

import type { AllEvent, ClientEvent, DmEvent, SentEvent } from "./events.ts";

/** A kept message: the event as it was reported. */
export type HistoryEntry = DmEvent | AllEvent | SentEvent;

/** Options for {@linkcode ChatHistory.open}. */
export interface ChatHistoryOptions {
  /** Messages kept per conversation (default 100). */
  perConversation?: number;
  /** Conversations kept per identity; the least recently active go first (default 50). */
  conversations?: number;
  /** Hears about a history file that cannot be read or written. */
  onError?: (message: string) => void;
}

/** The public channel's conversation key. */
export const PUBLIC_CONVERSATION = "public";

/** Longest text kept per message (characters). */
const MAX_TEXT = 4096;

type Conversations = Record<string, HistoryEntry[]>;

interface FileShape {
  version: 1;
  /** By owner user id, then by conversation (peer user id, or `public`). */
  users: Record<string, Conversations>;
}

/**
 * The conversation a message event belongs to (the peer's id, or `public`), or undefined for an
 * event that is not a text message.
 *
 * @example
 * ```ts
 * import { conversationOf } from "./chat_history.ts";
 * console.assert(conversationOf({ event: "info", text: "x" }) === undefined);
 * ```
 */
export function conversationOf(e: ClientEvent): string | undefined {
  if (e.event === "dm") return e.from;
  if (e.event === "all") return PUBLIC_CONVERSATION;
  if (e.event === "sent" && e.kind !== "file" && e.text !== undefined) {
    return e.kind === "all" ? PUBLIC_CONVERSATION : e.to;
  }
  return undefined;
}

function keep(e: HistoryEntry): HistoryEntry {
  // Not kept: that it is a replay, or was waiting for a reconnect at the time.
  const { history: _history, ...rest } = e;
  if (rest.event === "sent") delete rest.pending;
  const text = rest.text ?? "";
  return text.length > MAX_TEXT ? { ...rest, text: text.slice(0, MAX_TEXT) + "…" } : rest;
}

function entryTs(e: HistoryEntry): number {
  return e.ts ?? 0;
}

function isEntry(value: unknown): value is HistoryEntry {
  if (typeof value !== "object" || value === null) return false;
  const e = value as Record<string, unknown>;
  return (e.event === "dm" || e.event === "all" || e.event === "sent") &&
    typeof e.text === "string";
}

/**
 * The kept messages, backed by a file.
 *
 * @example
 * ```ts ignore
 * const history = await ChatHistory.open("alice.history.json");
 * history.record(myId, { event: "dm", from: bobId, from_name: "bob", text: "hi",
 *   verified: true, trusted: true, ts: Date.now() });
 * console.log(history.recent(myId, 20));
 * await history.flush();
 * ```
 */
export class ChatHistory {
  #path: string | undefined;
  #data: FileShape;
  #per: number;
  #conversations: number;
  #onError: (message: string) => void;
  #saving: Promise<void> = Promise.resolve();
  #dirty = false;

  private constructor(path: string | undefined, data: FileShape, options: ChatHistoryOptions) {
    this.#path = path;
    this.#data = data;
    this.#per = options.perConversation ?? 100;
    this.#conversations = options.conversations ?? 50;
    this.#onError = options.onError ?? (() => {});
  }

  /** A history kept in memory only (tests). */
  static memory(options: ChatHistoryOptions = {}): ChatHistory {
    return new ChatHistory(undefined, { version: 1, users: {} }, options);
  }

  /**
   * Loads the history file at `path` (a missing file is an empty history; an unreadable or
   * malformed one is reported through `onError` and started afresh).
   */
  static async open(path: string, options: ChatHistoryOptions = {}): Promise<ChatHistory> {
    let data: FileShape = { version: 1, users: {} };
    try {
      const raw: unknown = JSON.parse(await Deno.readTextFile(path));
      data = ChatHistory.#validate(raw);
    } catch (e) {
      if (!(e instanceof Deno.errors.NotFound)) {
        options.onError?.(
          `The message history "${path}" could not be read (${
            (e as Error).message
          }); starting a new one`,
        );
      }
    }
    return new ChatHistory(path, data, options);
  }

  static #validate(raw: unknown): FileShape {
    const out: FileShape = { version: 1, users: {} };
    if (typeof raw !== "object" || raw === null) throw new SyntaxError("not a JSON object");
    const users = (raw as Record<string, unknown>).users;
    if (typeof users !== "object" || users === null) return out;
    for (const [owner, conversations] of Object.entries(users)) {
      if (typeof conversations !== "object" || conversations === null) continue;
      const kept: Conversations = {};
      for (const [peer, list] of Object.entries(conversations)) {
        if (Array.isArray(list)) kept[peer] = list.filter(isEntry);
      }
      out.users[owner] = kept;
    }
    return out;
  }

  /** Keeps a message event of the identity `owner` (other events are ignored). */
  record(owner: string, event: ClientEvent): void {
    const peer = conversationOf(event);
    if (peer === undefined || (event as HistoryEntry).history) return;
    const conversations = this.#data.users[owner] ??= {};
    const list = conversations[peer] ?? [];
    // Most recently active conversation last, so the oldest are dropped first.
    delete conversations[peer];
    list.push(keep(event as HistoryEntry));
    if (list.length > this.#per) list.splice(0, list.length - this.#per);
    conversations[peer] = list;
    const peers = Object.keys(conversations);
    for (const old of peers.slice(0, Math.max(0, peers.length - this.#conversations))) {
      delete conversations[old];
    }
    this.#save();
  }

  /** The kept messages of one conversation (peer user id, or `public`), oldest first. */
  conversation(owner: string, peer: string, limit = Infinity): HistoryEntry[] {
    const list = this.#data.users[owner]?.[peer] ?? [];
    return list.slice(Math.max(0, list.length - limit));
  }

  /** The latest `limit` messages of every conversation of `owner`, oldest first. */
  recent(owner: string, limit: number): HistoryEntry[] {
    const all = Object.values(this.#data.users[owner] ?? {}).flat();
    all.sort((a, b) => entryTs(a) - entryTs(b));
    return all.slice(Math.max(0, all.length - limit));
  }

  /** The peers of `owner`'s direct conversations, with the name last seen for each. */
  peers(owner: string): { id: string; name: string }[] {
    const out: { id: string; name: string }[] = [];
    for (const [peer, list] of Object.entries(this.#data.users[owner] ?? {})) {
      if (peer === PUBLIC_CONVERSATION) continue;
      const last = list.at(-1);
      const name = last?.event === "sent" ? last.to_name : last?.from_name;
      out.push({ id: peer, name: name ?? peer });
    }
    return out;
  }

  /** Resolves once everything recorded so far is written. */
  async flush(): Promise<void> {
    while (this.#dirty) await this.#saving;
    await this.#saving;
  }

  #save(): void {
    if (this.#path === undefined || this.#dirty) return;
    this.#dirty = true;
    const path = this.#path;
    this.#saving = this.#saving.then(async () => {
      // Records that come while this write waits are written with it.
      await Promise.resolve();
      this.#dirty = false;
      await writePrivateFile(path, JSON.stringify(this.#data) + "\n");
    }).catch((e) => {
      this.#onError(`The message history "${path}" could not be written: ${(e as Error).message}`);
    });
  }
}

/**
 * Writes a file only its owner may read (mode 0600): a temp file next to it, then a rename.
 *
 * @example
 * ```ts ignore
 * await writePrivateFile("alice.history.json", "{}");
 * ```
 */
export async function writePrivateFile(path: string, text: string): Promise<void> {
  const tmp = `${path}.${crypto.randomUUID().slice(0, 8)}.tmp`;
  try {
    await Deno.writeTextFile(tmp, text, { mode: 0o600, createNew: true });
    if (Deno.build.os !== "windows") await Deno.chmod(tmp, 0o600);
    await Deno.rename(tmp, path);
  } catch (e) {
    await Deno.remove(tmp).catch(() => {});
    throw e;
  }
}
