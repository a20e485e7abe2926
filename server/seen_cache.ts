/**
 * The `seen_ids` cache for loop and replay suppression (spec §10): keys are
 * `type|ts|from|to|sha256(canonical(payload))`, kept for a TTL (≥ 120 s) with a size bound.
 *
 * @module
 */

import { canonicalJson, type Envelope, sha256Hex } from "../shared/mod.ts";
import type { Clock } from "./rate_limit.ts";

/** Default time a key is remembered: 10 minutes. */
export const DEFAULT_SEEN_TTL_MS = 600_000;
/** Default bound on remembered keys. */
export const DEFAULT_SEEN_MAX = 100_000;

/** The dedup key of a frame: the spec key plus `type`. */
export async function seenKey(env: Envelope): Promise<string> {
  const digest = await sha256Hex(new TextEncoder().encode(canonicalJson(env.payload)));
  return `${env.type}|${env.ts}|${env.from}|${env.to}|${digest}`;
}

/**
 * Remembers keys for a while. Insertion order is expiry order, so pruning is cheap.
 *
 * @example
 * ```ts
 * import { SeenCache } from "./seen_cache.ts";
 * const seen = new SeenCache({ ttlMs: 1000 });
 * console.assert(seen.add("k") === true && seen.add("k") === false);
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
