/**
 * Waiting with deadlines: every wait in the integration suite is bounded, and no timer outlives
 * the wait it guards (the op sanitizer checks).
 *
 * @module
 */

/** Thrown when a bounded wait runs out; the message says what was awaited. */
export class TimeoutError extends Error {
  /** Creates a timeout error. */
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = "TimeoutError";
  }
}

/**
 * Resolves like `promise`, or rejects with {@linkcode TimeoutError} after `ms`. `what` names the
 * awaited thing (a function is called only on timeout, so it can describe the state then).
 *
 * @example
 * ```ts
 * import { withTimeout } from "./timeout.ts";
 * console.assert((await withTimeout(Promise.resolve(1), 100, "one")) === 1);
 * ```
 */
export async function withTimeout<T>(
  promise: Promise<T>,
  ms: number,
  what: string | (() => string),
): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => {
      const text = typeof what === "string" ? what : what();
      reject(new TimeoutError(`Timed out after ${ms} ms waiting for ${text}`));
    }, ms);
  });
  try {
    return await Promise.race([promise, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

/** Resolves after `ms` (for the few waits that are about time itself, not an event). */
export function delay(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/**
 * Retries `attempt` until it returns something other than `undefined`, pausing `intervalMs`
 * between tries, for at most `timeoutMs`. For conditions that become true with time (a refilled
 * rate-limit bucket), not for events that can be awaited directly.
 */
export async function eventually<T>(
  attempt: () => Promise<T | undefined>,
  options: { timeoutMs?: number; intervalMs?: number; what: string },
): Promise<T> {
  const timeoutMs = options.timeoutMs ?? 10_000;
  const intervalMs = options.intervalMs ?? 100;
  const end = Date.now() + timeoutMs;
  let lastError: unknown;
  while (Date.now() < end) {
    try {
      const value = await attempt();
      if (value !== undefined) return value;
    } catch (error) {
      lastError = error;
    }
    await delay(intervalMs);
  }
  throw new TimeoutError(`Timed out after ${timeoutMs} ms waiting for ${options.what}`, {
    cause: lastError,
  });
}
