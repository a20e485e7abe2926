/**
 * Real `socp server` processes for integration tests: {@linkcode startServer} spawns one on
 * 127.0.0.1 with an OS-chosen port and a temporary data directory, waits for its `listening`
 * line, and returns a disposable {@linkcode ServerNode}. The node keeps the server's log lines,
 * so a test can await one ({@linkcode ServerNode.waitForLog}) instead of sleeping.
 *
 * @module
 */

import { join } from "node:path";
import { type FixtureKeyName, fixturePem } from "../fixtures/keys.ts";
import { drainLines, drainText, spawnMainTs, TailBuffer, testDebug } from "./_process_io.ts";
import { TIMEOUTS, withTimeout } from "./timeout.ts";

/** How long a server may take to print its `listening` line. */
export const SERVER_START_TIMEOUT_MS: number = TIMEOUTS.serverStart;
/** How long a server may take to exit after SIGTERM before it is killed. */
const SERVER_STOP_TIMEOUT_MS = TIMEOUTS.stop;

/** Options for {@linkcode startServer}. */
export interface StartServerOptions {
  /** Data directory to use (kept afterwards); default a fresh temporary one (removed). */
  dataDir?: string;
  /** Extra `socp server` flags, e.g. `["--max-file-bytes", "1000"]`. */
  args?: string[];
  /** Extra environment variables for the process. */
  env?: Record<string, string>;
  /**
   * Fixture key written as `server_key.pem` when the data dir has none yet, so the server does
   * not spend seconds generating an RSA-4096 key (default `"server0"`); `null` lets the server
   * create its own.
   */
  serverKey?: FixtureKeyName | null;
  /** Port to listen on (default 0: chosen by the OS). */
  port?: number;
}

/** Options for {@linkcode ServerNode.restart}. */
export interface RestartOptions {
  /**
   * Listen on the port of the previous run again (so bootstrap files and stored peer addresses
   * that name it stay valid); default false (a fresh OS-chosen port, or the `port` option).
   */
  samePort?: boolean;
}

/** Options for {@linkcode ServerNode.waitForLog}. */
export interface WaitForLogOptions {
  /** Only lines from this index of the current run on (see `logLines().length`); default 0. */
  from?: number;
  /** How long to wait (default 15 s). */
  timeoutMs?: number;
}

/** Default wait for a log line. */
export const LOG_TIMEOUT_MS: number = TIMEOUTS.log;

/** The `listening` line `socp server` prints on stdout. */
export interface ListeningInfo {
  event: "listening";
  url: string;
  host: string;
  port: number;
  server_id: string;
  pubkey: string;
  data_dir: string;
}

/** A running `socp server` process. Disposing it stops the process and removes its temp dir. */
export interface ServerNode extends AsyncDisposable {
  /** ws:// URL of the server. */
  readonly url: string;
  /** Listening host. */
  readonly host: string;
  /** Listening port (chosen by the OS). */
  readonly port: number;
  /** Server UUID. */
  readonly serverId: string;
  /** base64url DER SPKI of the server key. */
  readonly pubkey: string;
  /** Data directory. */
  readonly dataDir: string;
  /** The child process (of the current run, after a restart the new one). */
  readonly process: Deno.ChildProcess;
  /** Everything the server printed on stdout (lines). */
  stdoutLines(): string[];
  /** The last ~200 KB the server wrote to stderr (logs), for diagnostics. */
  stderrText(): string;
  /** Sends `signal` (default SIGTERM) and resolves with the exit status once it exited. */
  kill(signal?: Deno.Signal): Promise<Deno.CommandStatus>;
  /**
   * Sends `signal` without waiting for an exit (e.g. SIGSTOP / SIGCONT to hang and resume the
   * server). A node left stopped is continued before it is stopped on dispose.
   */
  signal(signal: Deno.Signal): void;
  /**
   * Stops the server (when still running) and starts it again with the same data dir and flags;
   * on a new port unless `samePort` is set.
   */
  restart(options?: RestartOptions): Promise<void>;
  /** The log lines (stderr) of the current run so far, oldest first. */
  logLines(): string[];
  /**
   * The first log line of the current run (from index `from` on) that matches `pattern`,
   * already printed or future. Rejects after the timeout or when the server exits first.
   */
  waitForLog(pattern: RegExp, options?: WaitForLogOptions): Promise<string>;
  /**
   * Resolves once `condition` holds for the log lines of the current run, re-checked on every
   * new line; `what` names the condition in the timeout error.
   */
  waitForLogs(
    condition: (lines: readonly string[]) => boolean,
    what: string,
    timeoutMs?: number,
  ): Promise<void>;
}

interface Run {
  process: Deno.ChildProcess;
  info: ListeningInfo;
  stdout: string[];
  stderr: TailBuffer;
  /** Log lines (stderr). */
  lines: string[];
  /** Called after every new log line and once when the process exited and its output ended. */
  listeners: Set<() => void>;
  drained: Promise<void>;
  status: Promise<Deno.CommandStatus>;
  exited: boolean;
  /** Exited, and all its output was read. */
  finished: boolean;
  /** SIGSTOP was sent and no SIGCONT since. */
  paused: boolean;
}

function isListening(value: unknown): value is ListeningInfo {
  if (typeof value !== "object" || value === null) return false;
  const v = value as Record<string, unknown>;
  return v.event === "listening" && typeof v.url === "string" && typeof v.port === "number" &&
    typeof v.server_id === "string" && typeof v.pubkey === "string";
}

async function spawn(
  dataDir: string,
  port: number,
  args: string[],
  env: Record<string, string>,
): Promise<Run> {
  const debug = testDebug();
  const process = spawnMainTs([
    "server",
    "--port",
    String(port),
    "--data-dir",
    dataDir,
    ...(debug ? ["--log-level", "debug"] : []),
    ...args,
  ], { env });
  const stderr = new TailBuffer();
  const stdout: string[] = [];
  const lines: string[] = [];
  const listeners = new Set<() => void>();
  const listening = Promise.withResolvers<ListeningInfo>();
  const stdoutDone = drainLines(process.stdout, (line) => {
    stdout.push(line);
    try {
      const value: unknown = JSON.parse(line);
      if (isListening(value)) listening.resolve(value);
    } catch {
      // Not the listening line.
    }
  });
  let partial = "";
  const addLine = (line: string) => {
    lines.push(line);
    for (const listener of [...listeners]) listener();
  };
  const stderrDone = drainText(process.stderr, (text) => {
    stderr.push(text);
    if (debug) Deno.stderr.writeSync(new TextEncoder().encode(text));
    partial += text;
    let newline: number;
    while ((newline = partial.indexOf("\n")) >= 0) {
      addLine(partial.slice(0, newline).replace(/\r$/, ""));
      partial = partial.slice(newline + 1);
    }
  }).then(() => {
    if (partial.length > 0) addLine(partial);
  });
  const run: Run = {
    process,
    info: undefined as unknown as ListeningInfo,
    stdout,
    stderr,
    lines,
    listeners,
    drained: Promise.all([stdoutDone, stderrDone]).then(() => {}),
    status: process.status.then((status) => {
      run.exited = true;
      return status;
    }),
    exited: false,
    finished: false,
    paused: false,
  };
  Promise.all([run.status, run.drained]).then(() => {
    run.finished = true;
    for (const listener of [...listeners]) listener();
  });
  const exitedEarly = run.status.then((status) => {
    throw new Error(`exited with code ${status.code} before listening`);
  });
  try {
    run.info = await withTimeout(
      Promise.race([listening.promise, exitedEarly]),
      SERVER_START_TIMEOUT_MS,
      "the server's listening line",
    );
  } catch (error) {
    await stop(run, "SIGKILL");
    throw new Error(
      `socp server did not start (${(error as Error).message}); args: ${
        args.join(" ")
      }\n--- stderr ---\n${stderr.text()}`,
      { cause: error },
    );
  } finally {
    exitedEarly.catch(() => {});
  }
  return run;
}

function send(run: Run, signal: Deno.Signal): void {
  if (run.exited) return;
  try {
    run.process.kill(signal);
  } catch {
    // Already gone.
  }
  if (signal === "SIGSTOP") run.paused = true;
  if (signal === "SIGCONT") run.paused = false;
}

async function stop(run: Run, signal: Deno.Signal): Promise<Deno.CommandStatus> {
  // A stopped process would hold a SIGTERM until continued.
  if (run.paused && signal !== "SIGKILL") send(run, "SIGCONT");
  send(run, signal);
  let status: Deno.CommandStatus;
  try {
    status = await withTimeout(run.status, SERVER_STOP_TIMEOUT_MS, "the server to exit");
  } catch {
    try {
      run.process.kill("SIGKILL");
    } catch {
      // Already gone.
    }
    status = await run.status;
  }
  await run.drained;
  return status;
}

/**
 * Spawns `deno run --allow-all main.ts server --port 0 --data-dir <dir> [...args]` from the
 * repository root and resolves once it prints its `listening` line (20 s at most; the error
 * includes the server's stderr). Pass `--log-level debug` by setting `SOCP_TEST_DEBUG`.
 *
 * @example
 * ```ts ignore
 * await using server = await startServer({ args: ["--max-file-bytes", "1000"] });
 * const ws = new WebSocket(server.url);
 * ```
 */
export async function startServer(options: StartServerOptions = {}): Promise<ServerNode> {
  const owned = options.dataDir === undefined;
  const dataDir = options.dataDir ?? await Deno.makeTempDir({ prefix: "socp_test_server_" });
  const args = options.args ?? [];
  const env = options.env ?? {};
  try {
    const keyName = options.serverKey === undefined ? "server0" : options.serverKey;
    if (keyName !== null) await seedKey(dataDir, keyName);
  } catch (error) {
    if (owned) await Deno.remove(dataDir, { recursive: true }).catch(() => {});
    throw error;
  }
  let run: Run;
  try {
    run = await spawn(dataDir, options.port ?? 0, args, env);
  } catch (error) {
    if (owned) await Deno.remove(dataDir, { recursive: true }).catch(() => {});
    throw error;
  }
  let disposed = false;
  const node: ServerNode = {
    get url() {
      return run.info.url;
    },
    get host() {
      return run.info.host;
    },
    get port() {
      return run.info.port;
    },
    get serverId() {
      return run.info.server_id;
    },
    get pubkey() {
      return run.info.pubkey;
    },
    dataDir,
    get process() {
      return run.process;
    },
    stdoutLines: () => [...run.stdout],
    stderrText: () => run.stderr.text(),
    kill: (signal: Deno.Signal = "SIGTERM") => stop(run, signal),
    signal: (signal: Deno.Signal) => send(run, signal),
    async restart(restart: RestartOptions = {}): Promise<void> {
      const port = restart.samePort ? run.info.port : options.port ?? 0;
      await stop(run, "SIGTERM");
      run = await spawn(dataDir, port, args, env);
    },
    logLines: () => [...run.lines],
    waitForLog(pattern: RegExp, wait: WaitForLogOptions = {}): Promise<string> {
      let found: string | undefined;
      return this.waitForLogs(
        (lines) => {
          found = lines.slice(wait.from ?? 0).find((line) => pattern.test(line));
          return found !== undefined;
        },
        `a log line matching ${pattern}`,
        wait.timeoutMs,
      ).then(() => found!);
    },
    async waitForLogs(
      condition: (lines: readonly string[]) => boolean,
      what: string,
      timeoutMs: number = LOG_TIMEOUT_MS,
    ): Promise<void> {
      const current = run;
      if (condition(current.lines)) return;
      if (current.finished) throw new Error(`Server exited before ${what}`);
      const { promise, resolve, reject } = Promise.withResolvers<void>();
      const listener = () => {
        try {
          if (condition(current.lines)) resolve();
          else if (current.finished) reject(new Error(`Server exited before ${what}`));
        } catch (error) {
          reject(error as Error);
        }
      };
      current.listeners.add(listener);
      try {
        await withTimeout(
          promise,
          timeoutMs,
          () => `${what}\n--- server log (last lines) ---\n${current.lines.slice(-30).join("\n")}`,
        );
      } finally {
        current.listeners.delete(listener);
      }
    },
    async [Symbol.asyncDispose](): Promise<void> {
      if (disposed) return;
      disposed = true;
      await stop(run, "SIGTERM");
      if (owned) await Deno.remove(dataDir, { recursive: true }).catch(() => {});
    },
  };
  return node;
}

async function seedKey(dataDir: string, keyName: FixtureKeyName): Promise<void> {
  await Deno.mkdir(dataDir, { recursive: true });
  const path = join(dataDir, "server_key.pem");
  try {
    await Deno.writeTextFile(path, await fixturePem(keyName), { mode: 0o600, createNew: true });
  } catch (error) {
    if (!(error instanceof Deno.errors.AlreadyExists)) throw error;
  }
}

/** Output of a finished `main.ts` run. */
export interface MainOutput {
  /** Exit code. */
  code: number;
  /** Standard output text. */
  stdout: string;
  /** Standard error text. */
  stderr: string;
}

/**
 * Runs `deno run --allow-all main.ts <args>` to completion (30 s at most) and returns its exit
 * code and output; for one-shot commands such as `server --print-identity`.
 */
export async function runMain(
  args: string[],
  options: { env?: Record<string, string>; timeoutMs?: number } = {},
): Promise<MainOutput> {
  const process = spawnMainTs(args, { env: options.env });
  const output = process.output();
  try {
    const out = await withTimeout(
      output,
      options.timeoutMs ?? TIMEOUTS.mainRun,
      `main.ts ${args.join(" ")}`,
    );
    const dec = new TextDecoder();
    return { code: out.code, stdout: dec.decode(out.stdout), stderr: dec.decode(out.stderr) };
  } catch (error) {
    try {
      process.kill("SIGKILL");
    } catch {
      // Already gone.
    }
    await output.catch(() => {});
    throw error;
  }
}
