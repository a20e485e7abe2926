/**
 * Readable, one-line logs to stderr. Never log private keys or plaintext. Messages carry
 * strings from the network (frame types, names, error details), so every line is passed
 * through {@linkcode escapeControls}: no frame can split a log line or forge another.
 *
 * Two formats (`--log-format`): `text`, `<time> <LEVEL> [<name>] <message>`, and `json`, one
 * object per line `{"time","level","server_id","msg"}` plus `event` (and a few fields) where the
 * call site names one, e.g. `listening`, `link_up`, `link_down`, `user_online`, `user_offline`,
 * `login_failure`.
 *
 * @module
 */

/** Log levels, least severe first. */
export type LogLevel = "debug" | "info" | "warn" | "error";

const ORDER: Record<LogLevel, number> = { debug: 0, info: 1, warn: 2, error: 3 };

/** Log formats: readable text, or one JSON object per line. */
export type LogFormat = "text" | "json";

/**
 * Structured fields of one log line, written by the `json` format only (text lines show the
 * message alone). Keys `time`, `level`, `server_id` and `msg` are reserved and ignored here.
 */
export interface LogFields {
  /** A stable event name for machines, e.g. `link_up`. */
  event?: string;
  /** Further fields, e.g. `peer_server_id`. */
  [key: string]: string | number | boolean | undefined;
}

/** A sink for log lines. */
export interface Logger {
  /** Logs at debug level. */
  debug(message: string, fields?: LogFields): void;
  /** Logs at info level. */
  info(message: string, fields?: LogFields): void;
  /** Logs at warn level. */
  warn(message: string, fields?: LogFields): void;
  /** Logs at error level. */
  error(message: string, fields?: LogFields): void;
}

/** C0 and C1 controls and DEL (`\p{Cc}`), line and paragraph separators, bidi overrides. */
const CONTROLS = /[\p{Cc}\u2028\u2029\u202a-\u202e\u2066-\u2069]/gu;

const NAMED: Record<string, string> = { "\n": "\\n", "\r": "\\r", "\t": "\\t" };

/**
 * Escapes control characters so that `text` stays on one line and cannot fake terminal output:
 * `\n`, `\r`, `\t` become those two-character escapes, other C0/C1 controls and DEL `\xNN`,
 * U+2028/U+2029 and the bidi overrides `\uNNNN`. Everything else is kept.
 *
 * @example
 * ```ts
 * import { escapeControls } from "./log.ts";
 * console.assert(escapeControls("a\nb\u0000c") === "a\\nb\\x00c");
 * ```
 */
export function escapeControls(text: string): string {
  return text.replace(CONTROLS, (c) => {
    const named = NAMED[c];
    if (named !== undefined) return named;
    const code = c.charCodeAt(0);
    return code < 0x100
      ? `\\x${code.toString(16).padStart(2, "0")}`
      : `\\u${code.toString(16).padStart(4, "0")}`;
  });
}

/** Characters `JSON.stringify` leaves as they are but a log line must not carry raw. */
const JSON_UNSAFE = /[\u007f-\u009f\u2028\u2029\u202a-\u202e\u2066-\u2069]/gu;

const RESERVED = new Set(["time", "level", "server_id", "msg"]);

/**
 * One JSON log line (without the line feed): `time`, `level`, `server_id`, `msg`, then the
 * fields. Control, line-separator and bidi characters are `\uXXXX` escapes, so the line parses
 * back to the same strings and cannot be split or disguised.
 *
 * @example
 * ```ts
 * import { jsonLogLine } from "./log.ts";
 * const line = jsonLogLine({
 *   time: new Date(0),
 *   level: "info",
 *   serverId: "s1",
 *   message: "a\nb",
 *   fields: { event: "x" },
 * });
 * console.assert(
 *   line === '{"time":"1970-01-01T00:00:00.000Z","level":"info","server_id":"s1","msg":"a\\nb","event":"x"}',
 * );
 * ```
 */
export function jsonLogLine(entry: {
  time: Date;
  level: LogLevel;
  serverId: string | undefined;
  message: string;
  fields?: LogFields | undefined;
}): string {
  const record: Record<string, string | number | boolean | null> = {
    time: entry.time.toISOString(),
    level: entry.level,
    server_id: entry.serverId ?? null,
    msg: entry.message,
  };
  for (const [key, value] of Object.entries(entry.fields ?? {})) {
    if (value !== undefined && !RESERVED.has(key)) record[key] = value;
  }
  return JSON.stringify(record).replace(
    JSON_UNSAFE,
    (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, "0")}`,
  );
}

/** Options for {@linkcode consoleLogger}. */
export interface ConsoleLoggerOptions {
  /** `text` (default) or `json`. */
  format?: LogFormat;
  /** The server id written in every JSON line. */
  serverId?: string;
}

/**
 * A logger writing to stderr: `<time> <LEVEL> [<name>] <message>` lines, control characters
 * escaped ({@linkcode escapeControls}), or with `format: "json"` one {@linkcode jsonLogLine} per
 * line.
 *
 * @example
 * ```ts
 * import { consoleLogger } from "./log.ts";
 * consoleLogger("test", "error").debug("not shown");
 * consoleLogger("test", "error", { format: "json", serverId: "s1" }).info("not shown either");
 * ```
 */
export function consoleLogger(
  name: string,
  level: LogLevel = "info",
  options: ConsoleLoggerOptions = {},
): Logger {
  const min = ORDER[level];
  const json = options.format === "json";
  const write = (lvl: LogLevel, message: string, fields: LogFields | undefined) => {
    if (ORDER[lvl] < min) return;
    const time = new Date();
    const line = json
      ? jsonLogLine({ time, level: lvl, serverId: options.serverId, message, fields })
      : escapeControls(`${time.toISOString()} ${lvl.toUpperCase().padEnd(5)} [${name}] ${message}`);
    try {
      Deno.stderr.writeSync(new TextEncoder().encode(line + "\n"));
    } catch {
      // stderr closed: nothing sensible to do.
    }
  };
  return {
    debug: (m, f) => write("debug", m, f),
    info: (m, f) => write("info", m, f),
    warn: (m, f) => write("warn", m, f),
    error: (m, f) => write("error", m, f),
  };
}

/** A logger that drops everything (tests). */
export const silentLogger: Logger = {
  debug() {},
  info() {},
  warn() {},
  error() {},
};

/** Shortens an id for logs: first 8 characters. */
export function short(id: string): string {
  return id.length > 8 ? id.slice(0, 8) : id;
}
