/**
 * A token bucket: `rate` tokens per second, holding at most `burst`; and one bucket per key
 * (e.g. per client address), with a bounded number of keys.
 *
 * @module
 */

/** A source of milliseconds; injected so tests control time. */
export type Clock = () => number;

/**
 * A token bucket rate limiter.
 *
 * @example
 * ```ts
 * import { TokenBucket } from "./rate_limit.ts";
 * let now = 0;
 * const bucket = new TokenBucket({ rate: 1, burst: 2, clock: () => now });
 * console.assert(bucket.take() && bucket.take() && !bucket.take());
 * now += 1000;
 * console.assert(bucket.take());
 * ```
 */
export class TokenBucket {
  #rate: number;
  #burst: number;
  #tokens: number;
  #last: number;
  #clock: Clock;

  /** Creates a full bucket. */
  constructor(options: { rate: number; burst: number; clock?: Clock }) {
    this.#rate = options.rate;
    this.#burst = options.burst;
    this.#tokens = options.burst;
    this.#clock = options.clock ?? Date.now;
    this.#last = this.#clock();
  }

  #refill(): void {
    const now = this.#clock();
    this.#tokens = Math.min(this.#burst, this.#tokens + ((now - this.#last) / 1000) * this.#rate);
    this.#last = now;
  }

  /** Takes `n` tokens if available; false (and takes none) otherwise. */
  take(n = 1): boolean {
    this.#refill();
    if (this.#tokens < n) return false;
    this.#tokens -= n;
    return true;
  }

  /** Milliseconds until `n` tokens are available (0 when they are now). */
  waitMs(n = 1): number {
    this.#refill();
    return this.#tokens >= n ? 0 : Math.ceil(((n - this.#tokens) / this.#rate) * 1000);
  }

  /** True when the bucket is full again (nothing would be lost by forgetting it). */
  get full(): boolean {
    this.#refill();
    return this.#tokens >= this.#burst;
  }
}

/**
 * One {@linkcode TokenBucket} per key, e.g. per client address across its connections. At most
 * `maxKeys` buckets are kept: full buckets are forgotten first (a fresh one is the same), then
 * the least recently created.
 *
 * @example
 * ```ts
 * import { KeyedTokenBuckets } from "./rate_limit.ts";
 * let now = 0;
 * const limits = new KeyedTokenBuckets({ rate: 1, burst: 1, clock: () => now });
 * console.assert(limits.take("10.0.0.1") && !limits.take("10.0.0.1") && limits.take("10.0.0.2"));
 * console.assert(limits.waitMs("10.0.0.1") === 1000);
 * ```
 */
export class KeyedTokenBuckets {
  #options: { rate: number; burst: number; clock?: Clock };
  #maxKeys: number;
  #buckets = new Map<string, TokenBucket>();

  /** Creates an empty set of buckets; each new key starts with a full bucket. */
  constructor(options: { rate: number; burst: number; clock?: Clock; maxKeys?: number }) {
    const { maxKeys, ...bucket } = options;
    this.#options = bucket;
    this.#maxKeys = maxKeys ?? 10_000;
  }

  #bucket(key: string): TokenBucket {
    let bucket = this.#buckets.get(key);
    if (!bucket) {
      if (this.#buckets.size >= this.#maxKeys) this.#prune();
      bucket = new TokenBucket(this.#options);
      this.#buckets.set(key, bucket);
    }
    return bucket;
  }

  #prune(): void {
    for (const [key, bucket] of this.#buckets) if (bucket.full) this.#buckets.delete(key);
    for (const key of this.#buckets.keys()) {
      if (this.#buckets.size < this.#maxKeys) break;
      this.#buckets.delete(key);
    }
  }

  /** Takes `n` tokens from `key`'s bucket if available; false (and takes none) otherwise. */
  take(key: string, n = 1): boolean {
    return this.#bucket(key).take(n);
  }

  /** Milliseconds until `key` has `n` tokens again (0 when it has them now). */
  waitMs(key: string, n = 1): number {
    return this.#buckets.get(key)?.waitMs(n) ?? 0;
  }

  /** Number of keys tracked. */
  get size(): number {
    return this.#buckets.size;
  }
}
