/**
 * The socp terminal client: `socp client <config.json> [options]`.
 *
 * It loads (or creates) a per-user config with a UUID and an RSA-4096 key pair, or logs in to
 * a password account (`--login <username>`, `/login`), connects to a SOCP v1.3 server, pins
 * the server's key, and then runs `/list`, `/tell`, `/all`, `/file`, the account commands
 * (`/register`, `/login`, `/logout`, `/passwd`, `/delete-account`, `/accounts`) and `/quit`
 * typed on a terminal or piped in by a script. Every event is printed as one line of text, or
 * with `--json` as one JSON object per line. Passwords are asked without echo on a terminal;
 * in a script they are the next lines of input.
 *
 * On a terminal it is a chat screen (chat_format.ts, style.ts): messages with their times, your
 * own included, names in colour (not with `NO_COLOR`), a bell for a direct message, and a line
 * editor with history and Tab completion (line_editor.ts, completion.ts). The last messages of
 * each conversation and the typed lines are kept beside the config (chat_history.ts,
 * input_history.ts) unless `--no-history`.
 *
 * Exit codes: 0 after `/quit` or end of input, 1 for bad usage, a bad config or a refusal by
 * the server (NAME_IN_USE, BAD_KEY, LOGIN_BLOCKED, a changed server key, no password), 2 when
 * the connection fails or the server closes it (also after an idle-timeout logout).
 *
 * @example
 * ```ts ignore
 * import { runClient } from "./client/mod.ts";
 * Deno.exit(await runClient(["alice.json", "--server", "ws://127.0.0.1:8765"]));
 * ```
 *
 * @module
 */

import { parseArgs } from "node:util";
import { basename, dirname, extname, join, resolve } from "node:path";
import {
  argsErrorText,
  CONTENT_SIG_VARIANTS,
  type ContentSigVariant,
  type KeyEncoding,
  type KeyPair,
  type Transport,
  usernameProblem,
  webSocketTransport,
} from "../shared/mod.ts";
import { ChatHistory } from "./chat_history.ts";
import { ClientApp } from "./client_app.ts";
import { type Clock, systemClock } from "./clock.ts";
import {
  type CommandContext,
  type CommandTable,
  defaultCommands,
  parseCommandLine,
  runCommandLine,
} from "./commands.ts";
import { commandCompleter, userCandidates } from "./completion.ts";
import { ConfigError, ConfigTrustStore, loadOrCreateConfig } from "./config.ts";
import type { Backoff } from "./connection.ts";
import { type ClientEvent, formatEvent, shortId } from "./events.ts";
import { HelloError } from "./errors.ts";
import { InputHistoryFile, loadInputHistory } from "./input_history.ts";
import type { Logger } from "./logger.ts";
import { fingerprintOf } from "./server_pins.ts";
import { colorWanted } from "./style.ts";
import { type Ask, readLines, syncWriter, TerminalUi, type Write } from "./terminal.ts";

export type { ClientEvent } from "./events.ts";
export { formatEvent } from "./events.ts";
export { ClientSession, type ClientSessionOptions } from "./session.ts";
export { CommandError, HelloError, ServerError } from "./errors.ts";
export {
  type Backoff,
  Connection,
  type ConnectionState,
  type ConnectionStatus,
  defaultBackoff,
} from "./connection.ts";
export { ClientApp, type ClientAppOptions } from "./client_app.ts";
export { type CommandSpec, CommandTable, defaultCommands } from "./commands.ts";
export { ConfigError, loadOrCreateConfig } from "./config.ts";
export { MemoryTrustStore, type ServerPin, type TrustStore } from "./trust_store.ts";

/** The `--help` text. */
export const CLIENT_USAGE: string = `Usage: socp client <config.json> [options]

Connects to a SOCP v1.3 server as the user in <config.json> (created with a new identity
and RSA-4096 key on first use), or as a password account with --login.

Options:
  --server <url>         ws:// or wss:// server URL (default: config "server", $SOCP_SERVER,
                         or ws://$SOCP_HOST:$SOCP_PORT, i.e. ws://127.0.0.1:8765); give it
                         several times for the servers of one group: the next is tried
                         when one cannot be reached or the connection drops
  --login <username>     log in to an account (asks for the password; in a script it is
                         the first line of input); a new config then gets no local key
  --name <name>          set your display name (saved in the config)
  --downloads <dir>      where received files go (default: $SOCP_DOWNLOADS or
                         <config dir>/downloads/<user id>/)
  --sig-variant <A-D>    content_sig layout to sign with (default: config "sig_variant", or
                         chosen per server: B for one that greets with CLIENT_WELCOME, else A)
  --key-encoding <der|pem>  how to write your public key (default: as the server writes
                         keys; pem = base64url of the PEM text, for servers that need it)
  --p2p-host <host>      where to listen for private chats (/startprivate), and the
                         address the peer is told to connect to (default 127.0.0.1)
  --p2p-port <port>      port for private chats (default: one the system picks)
  --no-history           keep nothing on this device: by default the last messages of each
                         conversation (<config>.history.json, plaintext, mode 0600) and the
                         lines typed (<config>.input_history) are kept for the next run
  --forget-server-key <url>  forget the key pinned for a server that changed its key (after
                         its operator confirmed the new one): the key it presents now is
                         pinned, and both fingerprints are shown
  --json                 print every event as one JSON object per line
  --help                 show this help

Commands: /list, /tell <user> <text>, /all <text>, /me <action>, /file <user|public> <path>,
  /nick <name>, /history [user|public],
  /register <username>, /login <username>, /logout, /passwd, /delete-account,
  /accounts <pattern>, /whoelse, /whoelsesince <seconds>, /block <user>, /unblock <user>,
  /blocks, /broadcast <text>, /random <text>, /group ..., /g <group> <text>,
  /startprivate <user>, /accept <user>, /private <user> <text>, /stopprivate <user>,
  /help, /quit
On a terminal: ← → Home End, ↑ ↓ for earlier lines, Tab completes commands and names.
Colours are off with NO_COLOR set. Set SOCP_DEBUG=1 for debug output on stderr.`;

/** Commands whose result line shows what was typed (`12:04 me → bob: hi`). */
const SHOWS_ITSELF: ReadonlySet<string> = new Set(["tell", "all", "me"]);

function showsItself(commands: CommandTable, line: string): boolean {
  const parsed = parseCommandLine(line);
  const spec = parsed ? commands.get(parsed.name) : undefined;
  return spec !== undefined && SHOWS_ITSELF.has(spec.name);
}

/** Seams for tests; a real run needs none of them. */
export interface RunClientOptions {
  /** Environment lookup (default `Deno.env.get`, tolerant of missing permission). */
  env?: (name: string) => string | undefined;
  /** Command input (default stdin). */
  stdin?: ReadableStream<Uint8Array>;
  /** Standard output. */
  write?: Write;
  /** Standard error. */
  writeErr?: Write;
  /** Run the interactive line editor (default: stdin and stdout are terminals). */
  interactive?: boolean;
  /** ANSI colours (default: stdout is a terminal, `write` is not given, no `NO_COLOR`). */
  color?: boolean;
  /** Opens a connection (default a WebSocket). */
  connect?: (url: string, signal?: AbortSignal) => Promise<Transport>;
  /** Wait before each round of reconnect attempts after the first (default exponential). */
  backoff?: Backoff;
  /** Rounds of reconnect attempts before giving up (default ∞; 0: never reconnect). */
  reconnectRounds?: number;
  /** Key generator for a new config. */
  generateKey?: () => Promise<KeyPair>;
  /** Time source. */
  clock?: Clock;
  /** USER_HELLO_OK wait (ms). */
  helloTimeoutMs?: number;
  /** Wait for each answer during a login (ms, default 10 s). */
  loginTimeoutMs?: number;
}

class UsageError extends Error {
  override name = "UsageError";
}

function defaultEnv(name: string): string | undefined {
  try {
    return Deno.env.get(name);
  } catch {
    return undefined;
  }
}

/** Normalises a server URL (the key its pin is stored under). */
export function normalizeServerUrl(text: string): string {
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    throw new UsageError(`Server URL "${text}" is not a URL; use e.g. ws://127.0.0.1:8765`);
  }
  if (url.protocol !== "ws:" && url.protocol !== "wss:") {
    throw new UsageError(`Server URL "${text}" must start with ws:// or wss://`);
  }
  return url.pathname === "/" && url.search === "" ? `${url.protocol}//${url.host}` : url.href;
}

async function connectWebSocket(url: string, signal?: AbortSignal): Promise<Transport> {
  const ws = new WebSocket(url);
  const transport = webSocketTransport(ws);
  let timer: ReturnType<typeof setTimeout> | undefined;
  let onAbort: (() => void) | undefined;
  const opened = await new Promise<boolean>((done) => {
    ws.addEventListener("open", () => done(true), { once: true });
    ws.addEventListener("close", () => done(false), { once: true });
    timer = setTimeout(() => done(false), 10_000);
    onAbort = () => done(false);
    if (signal?.aborted) done(false);
    signal?.addEventListener("abort", onAbort, { once: true });
  });
  clearTimeout(timer);
  if (onAbort) signal?.removeEventListener("abort", onAbort);
  if (!opened) {
    transport.close();
    throw new Error(`Could not connect to ${url}; is the server running?`);
  }
  return transport;
}

interface Parsed {
  configPath: string;
  servers: string[];
  name?: string;
  login?: string;
  downloads?: string;
  sigVariant?: ContentSigVariant;
  keyEncoding?: KeyEncoding;
  p2pHost?: string;
  p2pPort?: number;
  noHistory: boolean;
  forgetServerKeys: string[];
  json: boolean;
  help: boolean;
}

function parse(args: string[]): Parsed {
  let values;
  let positionals: string[];
  try {
    ({ values, positionals } = parseArgs({
      args,
      allowPositionals: true,
      strict: true,
      options: {
        server: { type: "string", multiple: true },
        name: { type: "string" },
        login: { type: "string" },
        downloads: { type: "string" },
        "sig-variant": { type: "string" },
        "key-encoding": { type: "string" },
        "p2p-host": { type: "string" },
        "p2p-port": { type: "string" },
        "no-history": { type: "boolean", default: false },
        "forget-server-key": { type: "string", multiple: true },
        json: { type: "boolean", default: false },
        help: { type: "boolean", short: "h", default: false },
      },
    }));
  } catch (e) {
    // parseArgs' own texts advise on positional arguments; say what was typed wrong instead.
    const options = [
      "server",
      "name",
      "login",
      "downloads",
      "sig-variant",
      "key-encoding",
      "p2p-host",
      "p2p-port",
      "no-history",
      "forget-server-key",
      "json",
      "help",
    ];
    throw new UsageError(argsErrorText(e, options));
  }
  if (values.help) {
    return {
      configPath: "",
      servers: [],
      noHistory: false,
      forgetServerKeys: [],
      json: false,
      help: true,
    };
  }
  if (positionals.length !== 1) {
    throw new UsageError(
      positionals.length === 0
        ? "Missing <config.json>"
        : `Expected one config file, got ${positionals.length}: ${positionals.join(" ")}`,
    );
  }
  const out: Parsed = {
    configPath: positionals[0]!,
    servers: values.server ?? [],
    noHistory: values["no-history"],
    forgetServerKeys: values["forget-server-key"] ?? [],
    json: values.json,
    help: false,
  };
  if (values.name !== undefined) out.name = values.name;
  if (values.login !== undefined) {
    const problem = usernameProblem(values.login);
    if (problem) throw new UsageError(`--login: ${problem}`);
    out.login = values.login;
  }
  if (values.downloads !== undefined) out.downloads = values.downloads;
  const variant = values["sig-variant"];
  if (variant !== undefined) {
    const upper = variant.toUpperCase();
    if (!(CONTENT_SIG_VARIANTS as readonly string[]).includes(upper)) {
      throw new UsageError(`--sig-variant must be one of A, B, C, D, not "${variant}"`);
    }
    out.sigVariant = upper as ContentSigVariant;
  }
  const encoding = values["key-encoding"];
  if (encoding !== undefined) {
    if (encoding !== "der" && encoding !== "pem") {
      throw new UsageError(`--key-encoding must be der or pem, not "${encoding}"`);
    }
    out.keyEncoding = encoding;
  }
  const p2pHost = values["p2p-host"];
  if (p2pHost !== undefined) {
    if (!/^[A-Za-z0-9.:_-]{1,253}$/.test(p2pHost)) {
      throw new UsageError(`--p2p-host must be a host name or IP address, not "${p2pHost}"`);
    }
    out.p2pHost = p2pHost;
  }
  const p2pPort = values["p2p-port"];
  if (p2pPort !== undefined) {
    const port = Number(p2pPort);
    if (!/^\d+$/.test(p2pPort) || !Number.isInteger(port) || port > 65535) {
      throw new UsageError(`--p2p-port must be a port number from 0 to 65535, not "${p2pPort}"`);
    }
    out.p2pPort = port;
  }
  return out;
}

/**
 * Runs the client with command-line arguments (after `client`) and returns the exit code. Call
 * it as `Deno.exit(await runClient(args))` so a pending read of stdin cannot keep the process.
 *
 * @example
 * ```ts
 * import { runClient } from "./mod.ts";
 * const out: string[] = [];
 * const code = await runClient(["--help"], { write: (t) => out.push(t) });
 * console.assert(code === 0 && out.join("").includes("Usage: socp client"));
 * ```
 */
export async function runClient(args: string[], options: RunClientOptions = {}): Promise<number> {
  const write = options.write ?? syncWriter(Deno.stdout);
  const writeErr = options.writeErr ?? syncWriter(Deno.stderr);
  const env = options.env ?? defaultEnv;
  const clock = options.clock ?? systemClock;

  let parsed: Parsed;
  let serverUrls: string[];
  let forgetUrls: string[];
  try {
    parsed = parse(args);
    if (parsed.help) {
      write(CLIENT_USAGE + "\n");
      return 0;
    }
  } catch (e) {
    writeErr(`socp client: ${(e as Error).message} (socp client --help for more)\n`);
    return 1;
  }

  let loaded;
  try {
    loaded = await loadOrCreateConfig(parsed.configPath, {
      ...(parsed.name !== undefined ? { displayName: parsed.name } : {}),
      ...(options.generateKey ? { generate: options.generateKey } : {}),
      ...(parsed.login !== undefined ? { noKey: true, account: parsed.login } : {}),
    });
    const fallback = `ws://${env("SOCP_HOST") || "127.0.0.1"}:${env("SOCP_PORT") || "8765"}`;
    const given = parsed.servers.length > 0
      ? parsed.servers
      : [loaded.config.server ?? (env("SOCP_SERVER") || fallback)];
    serverUrls = given.map(normalizeServerUrl).filter((url, i, all) => all.indexOf(url) === i);
    forgetUrls = parsed.forgetServerKeys.map(normalizeServerUrl);
  } catch (e) {
    if (e instanceof ConfigError || e instanceof UsageError) {
      writeErr(`socp client: ${e.message}\n`);
      return 1;
    }
    writeErr(`socp client: unexpected error: ${(e as Error).message}\n`);
    return 1;
  }
  const { config } = loaded;
  const downloadsFor = (userId: string): string =>
    resolve(
      parsed.downloads ?? (env("SOCP_DOWNLOADS") ||
        join(dirname(loaded.path), "downloads", userId)),
    );

  // What is kept on this device: the last messages, and the lines typed (--no-history: none).
  const keptAs = (suffix: string): string =>
    join(dirname(loaded.path), basename(loaded.path, extname(loaded.path)) + suffix);
  // Problems with these files are warnings; the first ones wait until events can be printed.
  const keepWarnings: string[] = [];
  let warnKept = (message: string): void => void keepWarnings.push(message);
  const history = parsed.noHistory ? undefined : await ChatHistory.open(keptAs(".history.json"), {
    onError: (message) => warnKept(message),
  });

  // Output
  const interactive = options.interactive ??
    (Deno.stdin.isTerminal() && Deno.stdout.isTerminal());
  const color = options.color ??
    (options.write === undefined && !parsed.json && colorWanted(env, Deno.stdout.isTerminal()));
  const commands = defaultCommands();
  const inputFile = interactive && !parsed.noHistory
    ? new InputHistoryFile(keptAs(".input_history"), (message) => warnKept(message))
    : undefined;
  const ui = interactive
    ? new TerminalUi({
      write,
      writeErr,
      columns: () => {
        try {
          return Deno.consoleSize().columns;
        } catch {
          return 80;
        }
      },
      history: inputFile ? await loadInputHistory(keptAs(".input_history")) : [],
      complete: commandCompleter(commands, {
        user: () => userCandidates(app.session?.users() ?? []),
        group: () => app.session?.groupNames() ?? [],
      }),
    })
    : undefined;
  const print = (text: string): void => ui ? ui.print(text) : write(text + "\n");
  const emit = (event: ClientEvent): void => {
    // The prompt shows when the connection is down (commands are queued meanwhile).
    if (event.event === "disconnected") ui?.setPrompt("[reconnecting] > ");
    if (event.event === "reconnected") ui?.setPrompt("> ");
    if (event.event === "file_progress") {
      if (ui && !parsed.json) {
        ui.setStatus(event.percent >= 100 ? undefined : formatEvent(event));
      }
      return;
    }
    if (ui && (event.event === "file" || (event.event === "sent" && event.kind === "file"))) {
      ui.setStatus(undefined);
    }
    print(
      parsed.json
        ? JSON.stringify(event)
        : formatEvent(event, { multiline: interactive, color, now: clock.now() }),
    );
    // A direct message rings the terminal's bell (on a terminal only).
    if (ui && event.event === "dm" && !event.history) ui.bell();
  };
  const debugOn = env("SOCP_DEBUG") === "1";
  const log: Logger = {
    debug(message: string): void {
      if (!debugOn) return;
      const line = `[debug] ${message}`;
      if (ui) ui.print(line, true);
      else writeErr(line + "\n");
    },
  };

  for (const w of loaded.warnings) emit({ event: "warn", text: w });
  if (loaded.created) {
    emit({
      event: "info",
      text: loaded.keys
        ? `Created a new identity ${config.user_id} in ${loaded.path}`
        : `Created ${loaded.path} for the account "${config.account}" (no local key)`,
    });
  }

  // Input: in script mode commands and answers (passwords) are the lines of stdin, in order;
  // on a terminal the line editor hands a line to a question being asked, else runs it.
  const reader = (options.stdin ?? Deno.stdin.readable).getReader();
  const lines = readLines(reader);
  const stop = new AbortController();
  let quitting = false;
  const ask: Ask = ui ? (prompt, askOptions) => ui.ask(prompt, askOptions) : async () => {
    if (quitting) return undefined;
    const next = await lines.next();
    return next.done ? undefined : next.value;
  };

  const trust = new ConfigTrustStore(
    loaded,
    (e) => emit({ event: "warn", text: `Could not save pinned keys: ${e.message}` }),
  );
  warnKept = (text) => emit({ event: "warn", text });
  for (const w of keepWarnings.splice(0)) warnKept(w);
  for (const url of forgetUrls) {
    const pin = trust.forgetServer(url);
    if (pin === undefined) {
      const pinned = Object.keys(config.servers);
      emit({
        event: "error",
        code: "CONFIG",
        detail: `No server key is pinned for ${url} in ${loaded.path}${
          pinned.length > 0 ? `; pinned are: ${pinned.join(", ")}` : ""
        }`,
        source: "client",
      });
      await reader.cancel().catch(() => {});
      return 1;
    }
    emit({
      event: "info",
      text: `Forgot the key pinned for ${url} (server ${
        shortId(pin.server_id)
      }, fp ${await fingerprintOf(
        pin.pubkey,
      )}); the key the server presents now will be pinned, and shown next to this one`,
    });
  }
  const app = new ClientApp({
    loaded,
    trust,
    serverUrl: serverUrls[0]!,
    servers: serverUrls.slice(1),
    connect: options.connect ?? connectWebSocket,
    ...(options.backoff !== undefined ? { backoff: options.backoff } : {}),
    ...(options.reconnectRounds !== undefined ? { reconnectRounds: options.reconnectRounds } : {}),
    emit,
    ask,
    log,
    clock,
    sigVariant: parsed.sigVariant ?? config.sig_variant ?? "auto",
    ...(parsed.keyEncoding !== undefined ? { keyEncoding: parsed.keyEncoding } : {}),
    downloadsDir: downloadsFor,
    displayNameGiven: parsed.name !== undefined,
    ...(history ? { history } : {}),
    // Scripts reading JSON get only what happens now; people see the conversation so far.
    replay: parsed.json ? 0 : 20,
    ...((env("HOME") || env("USERPROFILE")) ? { home: (env("HOME") || env("USERPROFILE"))! } : {}),
    ...(options.generateKey ? { generateKey: options.generateKey } : {}),
    ...(options.helloTimeoutMs !== undefined ? { helloTimeoutMs: options.helloTimeoutMs } : {}),
    ...(options.loginTimeoutMs !== undefined ? { loginTimeoutMs: options.loginTimeoutMs } : {}),
    ...(parsed.p2pHost !== undefined || parsed.p2pPort !== undefined
      ? {
        p2p: {
          ...(parsed.p2pHost !== undefined ? { host: parsed.p2pHost } : {}),
          ...(parsed.p2pPort !== undefined ? { port: parsed.p2pPort } : {}),
        },
      }
      : {}),
  });
  const ctx: CommandContext = {
    session: app,
    emit,
    commands,
    signal: stop.signal,
    quit(): void {
      quitting = true;
      stop.abort();
      ui?.cancelAll();
      // Wake the terminal loop, which is waiting for the next key press.
      if (ui) reader.cancel().catch(() => {});
    },
  };

  const started = Promise.withResolvers<boolean>();
  const inflight = new Set<Promise<void>>();
  const terminalInput = async (): Promise<void> => {
    if (!ui) return;
    const decoder = new TextDecoder();
    const raw = options.stdin === undefined;
    if (raw) Deno.stdin.setRaw(true);
    ui.activate();
    try {
      while (!quitting) {
        const { value, done } = await reader.read();
        if (done) break;
        for (const action of ui.editor.feed(decoder.decode(value, { stream: true }))) {
          if (action.kind === "candidates") {
            ui.showCandidates(action.items);
            continue;
          }
          if (action.kind === "quit") {
            if (ui.cancel()) continue; // Ctrl-C at a password prompt cancels the question
            ctx.quit();
            break;
          }
          if (ui.answer(action.text)) continue; // an answer (password) is never kept
          if (ui.editor.addHistory(action.text)) inputFile?.save(ui.editor.history);
          // A message shows as its own line (`12:04 me → bob: hi`): no echo of the command.
          if (!showsItself(commands, action.text)) ui.echo(action.text);
          const running: Promise<void> = started.promise
            .then((ok) => (ok ? runCommandLine(ctx, action.text) : undefined))
            .finally(() => inflight.delete(running));
          inflight.add(running);
          if (quitting) break;
        }
        ui.redraw();
      }
    } finally {
      ui.cancelAll();
      ui.deactivate();
      if (raw) Deno.stdin.setRaw(false);
    }
  };
  const terminal = terminalInput();

  const cleanUp = async (): Promise<void> => {
    quitting = true;
    stop.abort();
    ui?.cancelAll();
    await reader.cancel().catch(() => {});
    await terminal.catch(() => {});
    await Promise.allSettled(inflight);
    ui?.deactivate();
    await app.quit();
    await history?.flush();
    await inputFile?.flush();
  };

  // Connect: as an account (--login, or a config that only remembers an account), else as
  // the local identity.
  const loginName = parsed.login ?? (loaded.keys ? undefined : config.account);
  try {
    if (loginName !== undefined) await app.startLogin(loginName);
    else await app.startLocal();
  } catch (e) {
    started.resolve(false);
    if (e instanceof HelloError) {
      emit({
        event: "error",
        code: e.code,
        detail: e.message,
        source: e.fromServer ? "server" : "client",
      });
    } else if (e instanceof ConfigError) {
      emit({ event: "error", code: "CONFIG", detail: e.message, source: "client" });
    } else {
      emit({ event: "error", code: "HELLO", detail: (e as Error).message, source: "client" });
    }
    await cleanUp();
    return e instanceof HelloError ? e.exitCode : e instanceof ConfigError ? 1 : 2;
  }
  started.resolve(true);

  // Commands
  const input = ui ? terminal : (async (): Promise<void> => {
    // Script mode: one command at a time, in order; end of input means quit.
    for (;;) {
      const next = await lines.next();
      if (next.done) break;
      await runCommandLine(ctx, next.value);
      if (quitting) break;
    }
  })();

  const first = await Promise.race([
    input.then(() => "input" as const, () => "input" as const),
    app.ended,
  ]);
  if (first !== "input") {
    emit({
      event: "error",
      code: "CONNECTION_CLOSED",
      detail: `connection closed (${first.code})${first.reason ? `: ${first.reason}` : ""}`,
      source: "client",
    });
    await cleanUp();
    await input.catch(() => {});
    return 2;
  }
  stop.abort();
  await Promise.allSettled(inflight);
  await cleanUp();
  return 0;
}
