/**
 * Account name patterns of `ACCOUNTS_REQUEST`: a glob (`*`, `?`, `[...]`, `[!...]`) or a
 * `/regex/`, compiled for RE2 (the `re2js` port), whose matching time is linear in the name,
 * whatever the pattern. A pattern comes from any logged-in user, so a backtracking `RegExp` here
 * would let one request stall the server (ReDoS). Patterns are also capped at
 * {@linkcode MAX_PATTERN_LENGTH} characters, which bounds compile time and program size.
 *
 * @module
 */

import { RE2JS, RE2JSException, RE2JSSyntaxException } from "re2js";
import { ProtocolError } from "../shared/mod.ts";

/** Longest accepted pattern, in UTF-16 code units. */
export const MAX_PATTERN_LENGTH = 64;

/** A compiled account name pattern. */
export interface AccountPattern {
  /** The pattern as given. */
  readonly source: string;
  /** True when `name` matches: a whole-name match for a glob, a search for a `/regex/`. */
  test(name: string): boolean;
}

/** Characters with a meaning in RE2 syntax outside a character class. */
const RE2_SPECIAL = /[\\.+*?()|[\]{}^$]/g;
/** Characters escaped inside a character class (`[` would open a POSIX class like `[:alpha:]`). */
const RE2_CLASS_SPECIAL = /[\\[\]]/g;

/** The parser's reason, without its "error parsing regexp" prefix and the flags it added. */
function reason(error: RE2JSException): string {
  if (!(error instanceof RE2JSSyntaxException) || !error.error) return error.message;
  const at = error.input;
  return at && !at.startsWith("(?i)") ? `${error.error} \`${at}\`` : error.error;
}

function compile(expression: string, onError: (why: string) => string): RE2JS {
  try {
    return RE2JS.compile(expression, RE2JS.CASE_INSENSITIVE);
  } catch (error) {
    if (!(error instanceof RE2JSException)) throw error;
    throw new ProtocolError("BAD_REQUEST", onError(reason(error)), { cause: error });
  }
}

/** The RE2 expression of a glob; throws BAD_REQUEST for an unbalanced `[` or `]`. */
function globToRe2(pattern: string): string {
  let out = "";
  for (let i = 0; i < pattern.length; i++) {
    const c = pattern[i]!;
    if (c === "*") out += ".*";
    else if (c === "?") out += ".";
    else if (c === "[") {
      let start = i + 1;
      const negated = pattern[start] === "!" || pattern[start] === "^";
      if (negated) start++;
      // A "]" right after "[" or "[!" is a member, as in shell globs.
      const end = pattern.indexOf("]", start + 1);
      if (end < 0) {
        throw new ProtocolError(
          "BAD_REQUEST",
          `Malformed pattern "${pattern}": "[" at ${i + 1} is never closed`,
        );
      }
      const body = pattern.slice(start, end).replace(RE2_CLASS_SPECIAL, "\\$&");
      out += `[${negated ? "^" : ""}${body}]`;
      i = end;
    } else if (c === "]") {
      throw new ProtocolError(
        "BAD_REQUEST",
        `Malformed pattern "${pattern}": "]" at ${i + 1} has no "["`,
      );
    } else out += c.replace(RE2_SPECIAL, "\\$&");
  }
  return out;
}

/**
 * Compiles an account name pattern: a glob (`*` any run, `?` one character, `[a-c]` and
 * `[!a-c]` classes) matched against the whole name, or `/regex/` (RE2 syntax: no
 * backreferences or lookaround) searched in it; both case-insensitive. Throws
 * {@linkcode ProtocolError} `BAD_REQUEST` for a malformed pattern or one longer than
 * {@linkcode MAX_PATTERN_LENGTH}, quoting it.
 *
 * @example
 * ```ts
 * import { accountPattern } from "./account_pattern.ts";
 * console.assert(accountPattern("al*").test("Alice"));
 * console.assert(!accountPattern("al*").test("Malice"));
 * console.assert(accountPattern("/^(a+)+$/").test("aaa"));
 * ```
 */
export function accountPattern(pattern: string): AccountPattern {
  if (pattern.length > MAX_PATTERN_LENGTH) {
    throw new ProtocolError(
      "BAD_REQUEST",
      `Pattern "${
        pattern.slice(0, MAX_PATTERN_LENGTH)
      }…" is ${pattern.length} characters long; at most ${MAX_PATTERN_LENGTH} are allowed`,
    );
  }
  if (pattern.length > 1 && pattern.startsWith("/") && pattern.endsWith("/")) {
    const re = compile(
      pattern.slice(1, -1),
      (why) => `Malformed regular expression "${pattern}": ${why}`,
    );
    return { source: pattern, test: (name) => re.test(name) };
  }
  const re = compile(globToRe2(pattern), (why) => `Malformed pattern "${pattern}": ${why}`);
  return { source: pattern, test: (name) => re.testExact(name) };
}
