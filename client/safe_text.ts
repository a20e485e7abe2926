/**
 * Text from the network made safe to print on a terminal: short ids next to names, and text
 * kept on one line with control characters and bidirectional overrides shown escaped.
 *
 * @module
 */

/**
 * The first 8 characters of an id, as printed next to names.
 *
 * @example
 * ```ts
 * import { shortId } from "./safe_text.ts";
 * console.assert(shortId("1b2c3d4e-aaaa-4bbb-8ccc-dddddddddddd") === "1b2c3d4e");
 * ```
 */
export function shortId(id: string): string {
  return id.slice(0, 8);
}

// C0 and C1 controls (but not tab), DEL, and the bidirectional overrides that can disguise text.
// deno-lint-ignore no-control-regex
const UNSAFE = /[\x00-\x08\x0a-\x1f\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]/g;

/**
 * Makes text from the network safe to print on a terminal and keeps it on one line: newlines
 * become `\n`, other control characters (escape sequences!) become `\u{..}`.
 *
 * @example
 * ```ts
 * import { cleanText } from "./safe_text.ts";
 * console.assert(cleanText("a\nb\x1b[2J") === "a\\nb\\u{1b}[2J");
 * ```
 */
export function cleanText(text: string): string {
  return text.replace(UNSAFE, (ch) => {
    if (ch === "\n") return "\\n";
    if (ch === "\r") return "\\r";
    return `\\u{${ch.codePointAt(0)!.toString(16)}}`;
  });
}
