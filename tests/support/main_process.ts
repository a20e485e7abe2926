/**
 * A long-running `main.ts` subcommand (e.g. `socp mesh`) as a disposable child process whose
 * stdout and stderr lines are kept, so a test can await a line instead of sleeping.
 *
 * @module
 */

import { drainLines, spawnMainTs, testDebug } from "./_process_io.ts";
import { TIMEOUTS, withTimeout } from "./timeout.ts";

/** Default wait for one output line. */
export const LINE_TIMEOUT_MS: number = TIMEOUTS.event;
/** How long the process may take to exit after a signal before it is killed. */
const STOP_TIMEOUT_MS = TIMEOUTS.stop;

/** A running `deno run --allow-all main.ts <args>`. */
export interface MainProcess extends AsyncDisposable {
  /** The child process. */
  readonly process: Deno.ChildProcess;
  /** Resolves with the exit status. */
  readonly status: Promise<Deno.CommandStatus>;
  /** Lines printed on stdout so far. */
  stdoutLines(): string[];
  /** Lines printed on stderr so far. */
  stderrLines(): string[];
  /**
   * Resolves once `condition` holds for the output so far, re-checked on every new line.
   * Rejects after `timeoutMs`, or when the process exited and its output ended first.
   */
  waitForOutput(
    condition: (out: { stdout: readonly string[]; stderr: readonly string[] }) => boolean,
    what: string,
    timeoutMs?: number,
  ): Promise<void>;
  /** Sends `signal` (default SIGTERM) and resolves with the exit status (bounded). */
  stop(signal?: Deno.Signal): Promise<Deno.CommandStatus>;
}

/**
 * Spawns `deno run --allow-all main.ts <args>` from the repository root with piped output.
 * Disposing it sends SIGTERM (then SIGKILL after 15 s) and waits for the exit.
 *
 * @example
 * ```ts ignore
 * await using mesh = spawnMain(["mesh", "--servers", "3", "--base-port", "0", "--dir", dir]);
 * await mesh.waitForOutput(({ stdout }) => stdout.length >= 3, "three server lines");
 * ```
 */
export function spawnMain(
  args: string[],
  options: { env?: Record<string, string> } = {},
): MainProcess {
  const debug = testDebug();
  const process = spawnMainTs(args, { env: options.env });
  const stdout: string[] = [];
  const stderr: string[] = [];
  const listeners = new Set<() => void>();
  let finished = false;
  const notify = () => {
    for (const listener of [...listeners]) listener();
  };
  const drained = Promise.all([
    drainLines(process.stdout, (line) => {
      stdout.push(line);
      notify();
    }),
    drainLines(process.stderr, (line) => {
      if (debug) console.error(line);
      stderr.push(line);
      notify();
    }),
  ]);
  let exited = false;
  const status = process.status.then((s) => {
    exited = true;
    return s;
  });
  const done = Promise.all([status, drained]).then(() => {
    finished = true;
    notify();
  });

  const stop = async (signal: Deno.Signal = "SIGTERM"): Promise<Deno.CommandStatus> => {
    if (!exited) {
      try {
        process.kill(signal);
      } catch {
        // Already gone.
      }
    }
    let result: Deno.CommandStatus;
    try {
      result = await withTimeout(status, STOP_TIMEOUT_MS, `main.ts ${args[0]} to exit`);
    } catch (error) {
      try {
        process.kill("SIGKILL");
      } catch {
        // Already gone.
      }
      await done;
      throw error;
    }
    await done;
    return result;
  };

  return {
    process,
    status,
    stdoutLines: () => [...stdout],
    stderrLines: () => [...stderr],
    async waitForOutput(condition, what, timeoutMs = LINE_TIMEOUT_MS): Promise<void> {
      const out = { stdout, stderr };
      if (condition(out)) return;
      if (finished) throw new Error(`main.ts ${args[0]} exited before ${what}`);
      const { promise, resolve, reject } = Promise.withResolvers<void>();
      const listener = () => {
        try {
          if (condition(out)) resolve();
          else if (finished) reject(new Error(`main.ts ${args[0]} exited before ${what}`));
        } catch (error) {
          reject(error as Error);
        }
      };
      listeners.add(listener);
      try {
        await withTimeout(
          promise,
          timeoutMs,
          () =>
            `${what}\n--- stdout ---\n${stdout.join("\n")}\n--- stderr (last lines) ---\n${
              stderr.slice(-30).join("\n")
            }`,
        );
      } finally {
        listeners.delete(listener);
      }
    },
    stop,
    async [Symbol.asyncDispose](): Promise<void> {
      await stop("SIGTERM").catch(() => {});
    },
  };
}
