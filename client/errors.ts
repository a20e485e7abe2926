/**
 * The errors the client's callers act on: {@linkcode HelloError} (the server did not take us,
 * with the exit code to use), {@linkcode CommandError} (a command failed; the message is for the
 * user) and {@linkcode ServerError} (the server refused a command with an ERROR frame).
 *
 * @module
 */

/**
 * The handshake failed; `exitCode` is 1 for a refusal and 2 for a lost connection.
 *
 * @example
 * ```ts
 * import { HelloError } from "./errors.ts";
 * const e = new HelloError("NAME_IN_USE", "Already connected", 1, true);
 * console.assert(e.name === "HelloError" && e.fromServer);
 * ```
 */
export class HelloError extends Error {
  /** SOCP error code from the server, or a client code (SERVER_KEY_CHANGED, CONNECTION_CLOSED). */
  readonly code: string;
  /** Process exit code to use. */
  readonly exitCode: number;
  /** True when the server sent the code (an ERROR frame). */
  readonly fromServer: boolean;
  /** Creates the error. */
  constructor(code: string, message: string, exitCode = 1, fromServer = false) {
    super(message);
    this.name = "HelloError";
    this.code = code;
    this.exitCode = exitCode;
    this.fromServer = fromServer;
  }
}

/**
 * A command could not be carried out; the message is meant for the user.
 *
 * @example
 * ```ts
 * import { CommandError } from "./errors.ts";
 * console.assert(new CommandError("Nothing to send").name === "CommandError");
 * ```
 */
export class CommandError extends Error {
  /** Creates the error. */
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = "CommandError";
  }
}

/**
 * The server refused a command with an ERROR frame; `code` is its code.
 *
 * @example
 * ```ts
 * import { CommandError, ServerError } from "./errors.ts";
 * const e = new ServerError("BAD_PASSWORD", "Wrong username or password");
 * console.assert(e instanceof CommandError && e.code === "BAD_PASSWORD");
 * ```
 */
export class ServerError extends CommandError {
  /** The SOCP error code. */
  readonly code: string;
  /** Creates the error. */
  constructor(code: string, message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = "ServerError";
    this.code = code;
  }
}
