/**
 * Waiting with deadlines: every wait in the integration suite is bounded, and no timer outlives
 * the wait it guards (the op sanitizer checks).
 *
 * @module
 */

/**
 * Every deadline of the integration suite, in one place. They are generous on purpose: CI runs
 * on 2 shared cores next to other work, where an RSA-4096 signature can take ten times as long as
 * on an idle machine, and a generous deadline only lengthens a run that fails anyway.
 * `SOCP_TEST_TIMEOUT_SCALE` multiplies them all (e.g. 3 on a very slow machine).
 */
export const TIMEOUTS: {
  /** One frame from a server, after what should cause it. */
  readonly frame: number;
  /** One event printed by a client process. */
  readonly event: number;
  /** One log line of a server process. */
  readonly log: number;
  /** A server process until it listens. */
  readonly serverStart: number;
  /** A process until it exits after being asked to. */
  readonly stop: number;
  /** A mesh until every server is linked to every other. */
  readonly meshLinked: number;
  /** A condition polled with {@linkcode eventually}. */
  readonly eventually: number;
  /** A whole `main.ts` run that is expected to end by itself. */
  readonly mainRun: number;
} = (() => {
  let scale = 1;
  try {
    scale = Number(Deno.env.get("SOCP_TEST_TIMEOUT_SCALE") ?? "1") || 1;
  } catch {
    scale = 1;
  }
  const s = (ms: number) => Math.round(ms * Math.max(scale, 0.1));
  return {
    frame: s(30_000),
    event: s(30_000),
    log: s(30_000),
    serverStart: s(40_000),
    stop: s(20_000),
    meshLinked: s(45_000),
    eventually: s(30_000),
    mainRun: s(60_000),
  };
})();

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
  const timeoutMs = options.timeoutMs ?? TIMEOUTS.eventually;
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
