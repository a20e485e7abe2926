/**
 * Small helpers shared by the client's feature modules (private to client/).
 *
 * @module
 */

import type { Envelope, JsonObject } from "../shared/mod.ts";

/** The message of an error, or the value as text. */
export function errorMessage(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}

/** A finite number field of a payload, if present. */
export function numberField(p: JsonObject, field: string): number | undefined {
  const v = p[field];
  return typeof v === "number" && Number.isFinite(v) ? v : undefined;
}

/** The original sender of a relayed frame (`payload.sender`), else the envelope's `from`. */
export function senderOf(env: Envelope): string {
  const s = env.payload["sender"];
  return typeof s === "string" && s.length > 0 ? s : env.from;
}

/** Remembers the last `limit` keys seen, to drop replays and resent duplicates. */
export class ReplayCache {
  #seen: Set<string> = new Set();
  #limit: number;

  /** Creates a cache of at most `limit` keys (default 4096). */
  constructor(limit = 4096) {
    this.#limit = limit;
  }

  /** True when `key` was seen (without remembering it). */
  has(key: string): boolean {
    return this.#seen.has(key);
  }

  /** True when `key` was seen before; otherwise remembers it (forgetting the oldest). */
  isReplay(key: string): boolean {
    if (this.#seen.has(key)) return true;
    this.#seen.add(key);
    if (this.#seen.size > this.#limit) {
      const oldest = this.#seen.values().next().value;
      if (oldest !== undefined) this.#seen.delete(oldest);
    }
    return false;
  }
}
