/**
 * Debug output of the client (enabled with `SOCP_DEBUG=1`), behind a one-method interface so
 * tests and library users can drop or capture it.
 *
 * @module
 */

/** Debug output (enabled with `SOCP_DEBUG=1`). */
export interface Logger {
  /** Writes one debug line. */
  debug(message: string): void;
}

/**
 * A logger that drops everything.
 *
 * @example
 * ```ts
 * import { silentLogger } from "./logger.ts";
 * silentLogger.debug("nobody hears this");
 * ```
 */
export const silentLogger: Logger = { debug(): void {} };
