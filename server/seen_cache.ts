/**
 * The `seen_ids` cache for loop and replay suppression (spec §10), kept for a TTL (≥ 120 s) with
 * a size bound. Frames that carry user content (SERVER_DELIVER, MSG_DIRECT, MSG_PUBLIC_CHANNEL,
 * FILE_*) are keyed on what a relay cannot change without breaking the content: the content type
 * (aliases and the SERVER_DELIVER wrapping undone), the recipient, and the `content_sig` (or,
 * without one, a hash of the user payload). Envelope `ts`, `from`, `orig_ts` and `msg_ts` are not
 * part of it, so a relay that changes them cannot have one message delivered twice. Every other
 * frame is keyed on `type|ts|from|to|sha256(canonical(payload))`.
 *
 * @module
 */

import {
  canonicalJson,
  type Envelope,
  isObject,
  type JsonObject,
  sha256HexSync,
  TYPE_ALIASES,
} from "../shared/mod.ts";
import type { Clock } from "./rate_limit.ts";

/** Default time a key is remembered: 10 minutes. */
export const DEFAULT_SEEN_TTL_MS = 600_000;
/** Default bound on remembered keys. */
export const DEFAULT_SEEN_MAX = 100_000;

/** Payload keys a relay adds around a user payload (and may change). */
const RELAY_KEYS: ReadonlySet<string> = new Set([
  "user_id",
  "sender",
  "inner_type",
  "orig_ts",
  "msg_ts",
]);

/** The user frame types servers route; SERVER_DELIVER carries one of them. */
const CONTENT_TYPES: ReadonlySet<string> = new Set([
  "MSG_DIRECT",
  "MSG_PUBLIC_CHANNEL",
  "FILE_START",
  "FILE_CHUNK",
  "FILE_END",
]);

/** The user content a frame carries, as a server routes it. */
export interface RelayedContent {
  /** The user frame type, aliases resolved (it may still be one no server routes). */
  type: string;
  /** The sending user. */
  sender: string;
  /** The recipient: a user id, or `public` / `*` / a group id for channel-wide frames. */
  recipient: string;
  /** The original ts of the user frame. */
  ts: number;
  /** The user's payload, without the keys a relay adds. */
  payload: JsonObject;
}

/**
 * The payload without the keys a relay adds.
 *
 * @example
 * ```ts
 * import { stripRelayKeys } from "./seen_cache.ts";
 * console.assert(JSON.stringify(stripRelayKeys({ ciphertext: "x", orig_ts: 1 })) === '{"ciphertext":"x"}');
 * ```
 */
export function stripRelayKeys(payload: JsonObject): JsonObject {
  const out: JsonObject = {};
  for (const [k, v] of Object.entries(payload)) if (!RELAY_KEYS.has(k)) out[k] = v;
  return out;
}

/**
 * The user content of a SERVER_DELIVER (socp's and G17's flat payload with `inner_type`, or
 * G56's whole user envelope `{user_id, type, from, to, ts, payload}`) or of a user frame relayed
 * as-is; `undefined` for any other frame.
 *
 * @example
 * ```ts
 * import { relayedContent } from "./seen_cache.ts";
 * const c = relayedContent({
 *   type: "SERVER_DELIVER", from: "s1", to: "s2", ts: 9,
 *   payload: { user_id: "bob", sender: "alice", ciphertext: "x", orig_ts: 5 },
 * });
 * console.assert(c?.type === "MSG_DIRECT" && c.recipient === "bob" && c.ts === 5);
 * ```
 */
export function relayedContent(env: Envelope): RelayedContent | undefined {
  const p = env.payload;
  const direct = TYPE_ALIASES[env.type] ?? env.type;
  if (CONTENT_TYPES.has(direct)) {
    return {
      type: direct,
      sender: typeof p["sender"] === "string" ? p["sender"] : env.from,
      recipient: env.to,
      ts: env.ts,
      payload: stripRelayKeys(p),
    };
  }
  if (env.type !== "SERVER_DELIVER") return undefined;
  const wrapped = p["payload"];
  const inner = isObject(wrapped) && typeof p["type"] === "string" ? wrapped : undefined;
  const rawType = inner
    ? String(p["type"])
    : typeof p["inner_type"] === "string"
    ? p["inner_type"]
    : "MSG_DIRECT";
  const sender = inner && typeof p["from"] === "string"
    ? p["from"]
    : typeof p["sender"] === "string"
    ? p["sender"]
    : "";
  const ts = [p["orig_ts"], p["msg_ts"], inner ? p["ts"] : undefined].find((v) =>
    typeof v === "number"
  );
  return {
    type: TYPE_ALIASES[rawType] ?? rawType,
    sender,
    recipient: String(p["user_id"]),
    ts: typeof ts === "number" ? ts : env.ts,
    payload: inner ?? stripRelayKeys(p),
  };
}

const encoder = new TextEncoder();

/**
 * The dedup key of user content: type, recipient (`public` and `*` are one) and `content_sig`,
 * or without one, a hash of the payload less `sender_pub` (which relays fill in).
 */
export function contentKey(content: RelayedContent): string {
  const sig = content.payload["content_sig"];
  let id: string;
  if (typeof sig === "string" && sig !== "") id = `sig:${sig}`;
  else {
    const { sender_pub: _, ...rest } = content.payload;
    id = `payload:${canonicalJson(rest)}`;
  }
  const to = content.recipient === "public" ? "*" : content.recipient;
  return `content|${sha256HexSync(encoder.encode(`${content.type}|${to}|${id}`))}`;
}

/**
 * The dedup key of a frame: {@linkcode contentKey} for user content, else the spec key plus
 * `type`.
 *
 * @example
 * ```ts
 * import { seenKey } from "./seen_cache.ts";
 * const frame = {
 *   type: "SERVER_DELIVER", from: "s1", to: "s2", ts: 5,
 *   payload: { user_id: "bob", sender: "alice", ciphertext: "x", content_sig: "c", orig_ts: 5 },
 * };
 * console.assert((seenKey(frame)) === (seenKey({ ...frame, ts: 6 })));
 * ```
 */
export function seenKey(env: Envelope): string {
  const content = relayedContent(env);
  if (content !== undefined) return contentKey(content);
  const digest = sha256HexSync(encoder.encode(canonicalJson(env.payload)));
  return `${env.type}|${env.ts}|${env.from}|${env.to}|${digest}`;
}

/**
 * Remembers keys for a while. Insertion order is expiry order, so pruning is cheap.
 *
 * @example
 * ```ts
 * import { SeenCache } from "./seen_cache.ts";
 * const seen = new SeenCache({ ttlMs: 1000 });
 * console.assert(seen.add("k") === true && seen.add("k") === false && seen.has("k"));
 * ```
 */
export class SeenCache {
  #entries = new Map<string, number>();
  #ttl: number;
  #max: number;
  #clock: Clock;

  /** Creates an empty cache. */
  constructor(options: { ttlMs?: number; max?: number; clock?: Clock } = {}) {
    this.#ttl = options.ttlMs ?? DEFAULT_SEEN_TTL_MS;
    this.#max = options.max ?? DEFAULT_SEEN_MAX;
    this.#clock = options.clock ?? Date.now;
  }

  /** Records `key`; returns false when it was already present (a duplicate). */
  add(key: string): boolean {
    const now = this.#clock();
    this.#prune(now);
    if (this.#entries.has(key)) return false;
    this.#entries.set(key, now + this.#ttl);
    while (this.#entries.size > this.#max) {
      const oldest = this.#entries.keys().next().value;
      if (oldest === undefined) break;
      this.#entries.delete(oldest);
    }
    return true;
  }

  /** Forgets `key`, so that the next copy of its frame is handled (one that was not acted on). */
  delete(key: string): void {
    this.#entries.delete(key);
  }

  /** True when `key` is remembered (without recording it). */
  has(key: string): boolean {
    this.#prune(this.#clock());
    return this.#entries.has(key);
  }

  /** Number of remembered keys. */
  get size(): number {
    return this.#entries.size;
  }

  #prune(now: number): void {
    for (const [key, expiry] of this.#entries) {
      if (expiry > now) break;
      this.#entries.delete(key);
    }
  }
}
