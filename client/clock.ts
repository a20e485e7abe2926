/**
 * Time as the client sees it, injectable so tests control timeouts and timestamps.
 *
 * @module
 */

/** A source of wall-clock time and of cancellable sleeps. */
export interface Clock {
  /** Milliseconds since the Unix epoch. */
  now(): number;
  /**
   * Resolves after `ms` milliseconds, or as soon as `signal` aborts (it never rejects; callers
   * check `signal.aborted`). The timer is always cleared, so no timer outlives the promise.
   */
  sleep(ms: number, signal?: AbortSignal): Promise<void>;
}

/**
 * The real clock: `Date.now()` and `setTimeout`.
 *
 * @example
 * ```ts
 * import { systemClock } from "./clock.ts";
 * const ac = new AbortController();
 * const slept = systemClock.sleep(10_000, ac.signal);
 * ac.abort();
 * await slept; // resolves at once, and the timer is cleared
 * ```
 */
export const systemClock: Clock = {
  now(): number {
    return Date.now();
  },
  sleep(ms: number, signal?: AbortSignal): Promise<void> {
    return new Promise((resolve) => {
      if (signal?.aborted) return resolve();
      const done = (): void => {
        clearTimeout(id);
        signal?.removeEventListener("abort", done);
        resolve();
      };
      const id = setTimeout(done, Math.max(0, ms));
      signal?.addEventListener("abort", done, { once: true });
    });
  },
};
