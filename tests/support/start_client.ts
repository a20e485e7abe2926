/**
 * Real `socp client` processes driven through stdin with `--json` output:
 * {@linkcode startClient} spawns one, {@linkcode ClientNode.line} types a command,
 * {@linkcode ClientNode.waitFor} awaits a JSON event; {@linkcode readyClient} spawns one and awaits
 * its `ready` event. {@linkcode writeClientConfig} writes a config that uses a fixture key, so no
 * test waits for RSA key generation.
 *
 * @module
 */

import { join } from "node:path";
import { type FixtureKeyName, fixturePem } from "../fixtures/keys.ts";
import { drainLines, drainText, spawnMainTs, TailBuffer, testDebug } from "./_process_io.ts";
import { TIMEOUTS, withTimeout } from "./timeout.ts";

/** Default wait for one client event. */
export const EVENT_TIMEOUT_MS: number = TIMEOUTS.event;

/** One `--json` event line of the client (`{event, ...}`). */
export type ClientEvent = { event: string; [key: string]: unknown };

/** A running `socp client` process. */
export interface ClientNode extends AsyncDisposable {
  /** The child process. */
  readonly process: Deno.ChildProcess;
  /** Writes one command line (a newline is added). */
  line(command: string): Promise<void>;
  /**
   * The first event (already printed or future) that matches, consumed so a later call finds
   * the next one. Rejects after `timeoutMs` or when the client exits first.
   */
  waitFor(
    match: string | ((event: ClientEvent) => boolean),
    timeoutMs?: number,
  ): Promise<ClientEvent>;
  /** Every event printed so far (consumed or not). */
  events(): ClientEvent[];
  /** Lines on stdout that were not JSON events. */
  otherLines(): string[];
  /** The last ~200 KB of stderr. */
  stderrText(): string;
  /** The exit status, once the process exited. */
  readonly status: Promise<Deno.CommandStatus>;
  /** Ends stdin (the client quits at end of input) and resolves with the exit status. */
  close(timeoutMs?: number): Promise<Deno.CommandStatus>;
}

interface Waiter {
  match: (event: ClientEvent) => boolean;
  resolve: (event: ClientEvent) => void;
  reject: (error: Error) => void;
}

/** Options for {@linkcode startClient}. */
export interface StartClientOptions {
  /** Extra environment variables. */
  env?: Record<string, string>;
}

/**
 * Spawns `deno run --allow-all main.ts client <configPath> --server <url> --json [...extra]`
 * with piped stdin, stdout and stderr.
 *
 * @example
 * ```ts ignore
 * await using alice = await startClient(server.url, aliceConfig);
 * await alice.waitFor("ready");
 * await alice.line("/list");
 * ```
 */
export function startClient(
  serverUrl: string,
  configPath: string,
  extraArgs: string[] = [],
  options: StartClientOptions = {},
): Promise<ClientNode> {
  const debug = testDebug();
  const process = spawnMainTs(
    ["client", configPath, "--server", serverUrl, "--json", ...extraArgs],
    { env: { ...(debug ? { SOCP_DEBUG: "1" } : {}), ...options.env }, stdin: "piped" },
  );
  const writer = process.stdin.getWriter();
  let stdinOpen = true;
  const all: ClientEvent[] = [];
  const buffer: ClientEvent[] = [];
  const other: string[] = [];
  const waiters: Waiter[] = [];
  const stderr = new TailBuffer();
  let exited: Deno.CommandStatus | undefined;

  const stdoutDone = drainLines(process.stdout, (line) => {
    let event: ClientEvent;
    try {
      const value: unknown = JSON.parse(line);
      if (typeof value !== "object" || value === null || !("event" in value)) throw new Error();
      event = value as ClientEvent;
    } catch {
      other.push(line);
      return;
    }
    if (debug) console.error(`[client ${configPath}] ${line}`);
    all.push(event);
    const index = waiters.findIndex((w) => w.match(event));
    if (index >= 0) waiters.splice(index, 1)[0]!.resolve(event);
    else buffer.push(event);
  });
  const stderrDone = drainText(process.stderr, (text) => stderr.push(text));
  const status = process.status.then(async (s) => {
    await stdoutDone;
    exited = s;
    for (const w of waiters.splice(0)) {
      w.reject(new Error(`Client exited with code ${s.code} ${state()}`));
    }
    return s;
  });
  const drained = Promise.all([stdoutDone, stderrDone, status]);

  const state = (): string =>
    `[unconsumed events: ${buffer.map((e) => e.event).join(", ") || "none"}]\n--- stderr ---\n${
      stderr.text().slice(-4000)
    }`;

  const closeStdin = async (): Promise<void> => {
    if (!stdinOpen) return;
    stdinOpen = false;
    await writer.close().catch(() => {});
  };

  const close = async (timeoutMs = TIMEOUTS.stop): Promise<Deno.CommandStatus> => {
    await closeStdin();
    let result: Deno.CommandStatus;
    try {
      result = await withTimeout(status, timeoutMs, "the client to exit after end of input");
    } catch (error) {
      try {
        process.kill("SIGKILL");
      } catch {
        // Already gone.
      }
      await drained;
      throw error;
    }
    await drained;
    return result;
  };

  const node: ClientNode = {
    process,
    async line(command: string): Promise<void> {
      if (!stdinOpen) throw new Error("The client's stdin is closed");
      await writer.write(new TextEncoder().encode(command + "\n"));
    },
    async waitFor(match, timeoutMs = EVENT_TIMEOUT_MS): Promise<ClientEvent> {
      const test = typeof match === "string" ? (e: ClientEvent) => e.event === match : match;
      const what = typeof match === "string" ? `a "${match}" event` : "a matching event";
      const index = buffer.findIndex(test);
      if (index >= 0) return buffer.splice(index, 1)[0]!;
      if (exited !== undefined) {
        throw new Error(`Client exited with code ${exited.code} before ${what} ${state()}`);
      }
      const { promise, resolve, reject } = Promise.withResolvers<ClientEvent>();
      const waiter: Waiter = { match: test, resolve, reject };
      waiters.push(waiter);
      try {
        return await withTimeout(promise, timeoutMs, () => `${what} ${state()}`);
      } finally {
        const at = waiters.indexOf(waiter);
        if (at >= 0) waiters.splice(at, 1);
      }
    },
    events: () => [...all],
    otherLines: () => [...other],
    stderrText: () => stderr.text(),
    status,
    close,
    async [Symbol.asyncDispose](): Promise<void> {
      if (exited === undefined) {
        await close().catch(async () => {
          // close() already killed it; only make sure everything is released.
          await drained;
        });
      } else {
        await closeStdin();
        await drained;
      }
    },
  };
  return Promise.resolve(node);
}

/** Options for {@linkcode readyClient}. */
export interface ReadyClientOptions {
  /** Extra `socp client` flags, e.g. `["--login", "alice"]`. */
  args?: string[];
  /** Lines typed before the `ready` event (the password prompts of `--login`). */
  passwords?: string[];
  /** Checks the `ready` event; when it throws, the client is closed and the error rethrown. */
  onReady?: (event: ClientEvent) => void;
}

/**
 * Starts a client with {@linkcode startClient}, types `passwords`, and resolves once it printed
 * its `ready` event; closes the client and rejects when that fails.
 *
 * @example
 * ```ts ignore
 * await using alice = await readyClient(server.url, aliceConfig.path);
 * ```
 */
export async function readyClient(
  serverUrl: string,
  configPath: string,
  options: ReadyClientOptions = {},
): Promise<ClientNode> {
  const client = await startClient(serverUrl, configPath, options.args);
  try {
    for (const p of options.passwords ?? []) await client.line(p);
    const event = await client.waitFor("ready");
    options.onReady?.(event);
  } catch (error) {
    await client.close().catch(() => {});
    throw error;
  }
  return client;
}

/** Matches a presence event saying `user` is online. */
export function onlineEvent(user: { userId: string }): (event: ClientEvent) => boolean {
  return (e) => e.event === "presence" && e.user_id === user.userId && e.online === true;
}

/** A client config written by {@linkcode writeClientConfig}. */
export interface ClientConfigFile {
  /** Absolute path of the config JSON. */
  path: string;
  /** The user id in it. */
  userId: string;
  /** The display name in it. */
  displayName: string;
  /** The fixture key it uses. */
  keyName: FixtureKeyName;
}

/**
 * Writes `<dir>/<name>.json` and `<dir>/<name>.key.pem` (mode 0600) in the client's config
 * format (see client/config.ts), with a fixture key and a fresh user id.
 */
export async function writeClientConfig(
  dir: string,
  name: string,
  keyName: FixtureKeyName,
  options: { displayName?: string; userId?: string } = {},
): Promise<ClientConfigFile> {
  const userId = options.userId ?? crypto.randomUUID();
  const displayName = options.displayName ?? name;
  const keyFile = `${name}.key.pem`;
  await Deno.mkdir(dir, { recursive: true });
  await Deno.writeTextFile(join(dir, keyFile), await fixturePem(keyName), { mode: 0o600 });
  const path = join(dir, `${name}.json`);
  const config = {
    user_id: userId,
    display_name: displayName,
    private_key_file: keyFile,
    known_keys: {},
    servers: {},
  };
  await Deno.writeTextFile(path, JSON.stringify(config, null, 2) + "\n", { mode: 0o600 });
  return { path, userId, displayName, keyName };
}
