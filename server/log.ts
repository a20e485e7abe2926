/**
 * Readable, one-line logs to stderr. Never log private keys or plaintext.
 *
 * @module
 */

/** Log levels, least severe first. */
export type LogLevel = "debug" | "info" | "warn" | "error";

const ORDER: Record<LogLevel, number> = { debug: 0, info: 1, warn: 2, error: 3 };

/** A sink for log lines. */
export interface Logger {
  /** Logs at debug level. */
  debug(message: string): void;
  /** Logs at info level. */
  info(message: string): void;
  /** Logs at warn level. */
  warn(message: string): void;
  /** Logs at error level. */
  error(message: string): void;
}

/**
 * A logger writing `<time> <LEVEL> [<name>] <message>` lines to stderr.
 *
 * @example
 * ```ts
 * import { consoleLogger } from "./log.ts";
 * consoleLogger("test", "error").debug("not shown");
 * ```
 */
export function consoleLogger(name: string, level: LogLevel = "info"): Logger {
  const min = ORDER[level];
  const write = (lvl: LogLevel, message: string) => {
    if (ORDER[lvl] < min) return;
    const line = `${new Date().toISOString()} ${
      lvl.toUpperCase().padEnd(5)
    } [${name}] ${message}\n`;
    try {
      Deno.stderr.writeSync(new TextEncoder().encode(line));
    } catch {
      // stderr closed: nothing sensible to do.
    }
  };
  return {
    debug: (m) => write("debug", m),
    info: (m) => write("info", m),
    warn: (m) => write("warn", m),
    error: (m) => write("error", m),
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
