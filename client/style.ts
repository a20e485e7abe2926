/**
 * How the terminal client dresses its lines: ANSI colours (a stable colour per user, errors and
 * warnings distinct, the user's own lines dimmed) and message times (`HH:MM`, with the date when
 * not today). Colours are off when `NO_COLOR` is set (any value), for `TERM=dumb` and when the
 * output is not a terminal ({@linkcode colorWanted}).
 *
 * @module
 */

/** The SGR codes the client uses. */
export const SGR = {
  dim: "2",
  bold: "1",
  red: "31",
  yellow: "33",
} as const;

/**
 * Colours for user names: no red or yellow (errors and warnings), nothing too dark on black or
 * too light on white.
 */
export const USER_PALETTE: readonly string[] = ["32", "34", "35", "36", "92", "94", "95", "96"];

/**
 * `text` wrapped in the SGR `code` when `on`; unchanged otherwise (or for an empty text).
 *
 * @example
 * ```ts
 * import { paint } from "./style.ts";
 * console.assert(paint("x", "31", true) === "\x1b[31mx\x1b[0m");
 * console.assert(paint("x", "31", false) === "x");
 * ```
 */
export function paint(text: string, code: string | undefined, on: boolean | undefined): string {
  if (!on || code === undefined || text.length === 0) return text;
  return `\x1b[${code}m${text}\x1b[0m`;
}

/**
 * The palette colour of a user: FNV-1a of the user id, so a user keeps the same colour in every
 * run and on every screen.
 *
 * @example
 * ```ts
 * import { USER_PALETTE, userColor } from "./style.ts";
 * const id = "1b2c3d4e-aaaa-4bbb-8ccc-dddddddddddd";
 * console.assert(userColor(id) === userColor(id) && USER_PALETTE.includes(userColor(id)));
 * ```
 */
export function userColor(userId: string): string {
  let hash = 0x811c9dc5;
  for (let i = 0; i < userId.length; i++) {
    hash ^= userId.charCodeAt(i);
    hash = Math.imul(hash, 0x01000193) >>> 0;
  }
  return USER_PALETTE[hash % USER_PALETTE.length]!;
}

function two(n: number): string {
  return String(n).padStart(2, "0");
}

/**
 * A message time in local time: `HH:MM` when `ts` is on the same day as `now`, else
 * `YYYY-MM-DD HH:MM`.
 *
 * @example
 * ```ts
 * import { clockTime } from "./style.ts";
 * const noon = new Date(2026, 0, 15, 12, 3).getTime();
 * console.assert(clockTime(noon, noon + 60_000) === "12:03");
 * console.assert(clockTime(noon, noon + 2 * 86_400_000) === "2026-01-15 12:03");
 * ```
 */
export function clockTime(ts: number, now: number): string {
  const t = new Date(ts);
  const n = new Date(now);
  const hm = `${two(t.getHours())}:${two(t.getMinutes())}`;
  const sameDay = t.getFullYear() === n.getFullYear() && t.getMonth() === n.getMonth() &&
    t.getDate() === n.getDate();
  return sameDay ? hm : `${t.getFullYear()}-${two(t.getMonth() + 1)}-${two(t.getDate())} ${hm}`;
}

/**
 * Whether to print colours: only to a terminal, and never with `NO_COLOR` set (any value, see
 * no-color.org) or `TERM=dumb`.
 *
 * @example
 * ```ts
 * import { colorWanted } from "./style.ts";
 * console.assert(colorWanted(() => undefined, true) === true);
 * console.assert(colorWanted((n) => (n === "NO_COLOR" ? "" : undefined), true) === false);
 * console.assert(colorWanted(() => undefined, false) === false);
 * ```
 */
export function colorWanted(
  env: (name: string) => string | undefined,
  isTerminal: boolean,
): boolean {
  return isTerminal && env("NO_COLOR") === undefined && env("TERM") !== "dumb";
}
