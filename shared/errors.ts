/**
 * Named errors that callers act on, and the SOCP error codes.
 *
 * @module
 */

/** The error codes every SOCP implementation must parse, plus the extras socp sends. */
export const ERROR_CODES = [
  "USER_NOT_FOUND",
  "INVALID_SIG",
  "BAD_KEY",
  "TIMEOUT",
  "UNKNOWN_TYPE",
  "NAME_IN_USE",
  "BAD_FRAME",
  "FRAME_TOO_LARGE",
  "RATE_LIMIT",
  "IDENTITY_MISMATCH",
  "FILE_TOO_LARGE",
  "QUEUE_LIMIT",
  "BAD_PASSWORD",
  "LOGIN_BLOCKED",
  "NOT_LOGGED_IN",
  "BAD_REQUEST",
  "FORBIDDEN",
  "BLOCKED",
  "INTERNAL_ERROR",
] as const;

/** One of {@linkcode ERROR_CODES}; other codes from peers are carried as plain strings. */
export type ErrorCode = typeof ERROR_CODES[number];

/** A frame broke the protocol; `code` is what the peer is told. */
export class ProtocolError extends Error {
  /** The SOCP error code for the peer. */
  readonly code: ErrorCode;
  /** Creates a protocol error with the code to send. */
  constructor(code: ErrorCode, message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = "ProtocolError";
    this.code = code;
  }
}

/** A signature did not verify. */
export class SignatureError extends Error {
  /** Creates a signature error. */
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = "SignatureError";
  }
}

/** A key is malformed, weak or of the wrong size. */
export class KeyError extends Error {
  /** Creates a key error. */
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = "KeyError";
  }
}
