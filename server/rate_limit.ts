/**
 * A token bucket: `rate` tokens per second, holding at most `burst`.
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

  /** Takes `n` tokens if available; false (and takes none) otherwise. */
  take(n = 1): boolean {
    const now = this.#clock();
    this.#tokens = Math.min(this.#burst, this.#tokens + ((now - this.#last) / 1000) * this.#rate);
    this.#last = now;
    if (this.#tokens < n) return false;
    this.#tokens -= n;
    return true;
  }
}
