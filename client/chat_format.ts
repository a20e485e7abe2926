/**
 * The conversation lines of the terminal client: messages received (`dm`, `all`), the user's
 * own messages (`sent`) and received files, each with its time, e.g.
 *
 * ```text
 * 12:03 bob (1b2c3d4e) → me: hi
 * 12:04 me → bob: hello
 * 12:05 carol → all: lunch?
 * 12:05 * carol waves
 * ```
 *
 * The time is when the message was sent (the frame's original `ts`), so a message queued while
 * the user was offline shows when it was written, and when it arrived too. `/me <action>` is a
 * message whose text starts with `/me ` ({@linkcode splitAction}); it is shown as an action.
 *
 * @module
 */

import type { AllEvent, DmEvent, FileEvent, FormatOptions, SentEvent } from "./events.ts";
import { cleanText, shortId } from "./safe_text.ts";
import { clockTime, paint, SGR, userColor } from "./style.ts";

/** The prefix that marks a message as an action (`/me waves` is shown as `* alice waves`). */
export const ACTION_PREFIX = "/me ";

/** A message arriving this much later than it was sent also shows when it arrived. */
export const LATE_AFTER_MS = 5 * 60_000;

/**
 * Splits the action mark off a message text.
 *
 * @example
 * ```ts
 * import { splitAction } from "./chat_format.ts";
 * console.assert(splitAction("/me waves").action && splitAction("/me waves").text === "waves");
 * console.assert(!splitAction("hi").action);
 * ```
 */
export function splitAction(text: string): { text: string; action: boolean } {
  return text.startsWith(ACTION_PREFIX) && text.length > ACTION_PREFIX.length
    ? { text: text.slice(ACTION_PREFIX.length), action: true }
    : { text, action: false };
}

/**
 * The send time of a received frame: the first usable of `msg_ts`, `orig_ts` and the envelope
 * `ts` (in that order), or `fallback` (now) when none is usable or it lies in the future by more
 * than a day (a broken clock).
 *
 * @example
 * ```ts
 * import { sentTime } from "./chat_format.ts";
 * console.assert(sentTime([undefined, 1000, 2000], 5000) === 1000);
 * console.assert(sentTime([undefined], 5000) === 5000);
 * ```
 */
export function sentTime(candidates: readonly (number | undefined)[], fallback: number): number {
  for (const ts of candidates) {
    if (ts === undefined || !Number.isFinite(ts) || ts <= 0) continue;
    return ts > fallback + 86_400_000 ? fallback : ts;
  }
  return fallback;
}

interface Style {
  on: boolean;
  now: number;
}

function styleOf(options: FormatOptions): Style {
  return { on: options.color === true, now: options.now ?? Date.now() };
}

function name(text: string, id: string, s: Style): string {
  return paint(cleanText(text), userColor(id), s.on);
}

function stamp(ts: number | undefined, s: Style): string {
  return paint(clockTime(ts ?? s.now, s.now), SGR.dim, s.on) + " ";
}

/** ` (arrived 14:20)` for a message that reached us long after it was sent. */
function arrival(e: { ts?: number; history?: boolean }, s: Style, options: FormatOptions): string {
  const ts = e.ts;
  if (ts === undefined || options.history || e.history || s.now - ts < LATE_AFTER_MS) return "";
  return paint(` (arrived ${clockTime(s.now, s.now)})`, SGR.dim, s.on);
}

function marks(e: { verified: boolean; trusted: boolean; encrypted?: boolean }): string {
  return `${e.encrypted === false ? "[unencrypted] " : ""}${e.verified ? "" : "[unverified] "}${
    e.verified && !e.trusted ? "[UNTRUSTED KEY] " : ""
  }`;
}

/** A received direct message. */
export function formatDm(e: DmEvent, options: FormatOptions = {}): string {
  const shown = styleOf(options);
  const s = e.history ? { ...shown, on: false } : shown;
  const from = `${name(e.from_name, e.from, s)} ${paint(`(${shortId(e.from)})`, SGR.dim, s.on)}`;
  const body = e.action
    ? `* ${name(e.from_name, e.from, s)} ${cleanText(e.text)}`
    : cleanText(e.text);
  return replayed(
    e,
    `${stamp(e.ts, s)}${marks(e)}${from} → me: ${body}${arrival(e, s, options)}`,
    shown,
  );
}

/** A received public-channel message. */
export function formatAll(e: AllEvent, options: FormatOptions = {}): string {
  const shown = styleOf(options);
  const s = e.history ? { ...shown, on: false } : shown;
  const line = e.action
    ? `* ${name(e.from_name, e.from, s)} ${cleanText(e.text)}`
    : `${name(e.from_name, e.from, s)} → all: ${cleanText(e.text)}`;
  return replayed(e, `${stamp(e.ts, s)}${marks(e)}${line}${arrival(e, s, options)}`, shown);
}

/** A line shown again from the kept history is dimmed as a whole. */
function replayed(e: { history?: boolean }, line: string, s: Style): string {
  return e.history ? paint(line, SGR.dim, s.on) : line;
}

function plural(n: number, word: string): string {
  return `${n} ${word}${n === 1 ? "" : "s"}`;
}

/**
 * One of the user's own messages or files, dimmed: `12:04 me → bob: hello`. A file the server
 * did not confirm is one warning line instead.
 */
export function formatSent(e: SentEvent, options: FormatOptions = {}): string {
  const s = styleOf(options);
  const later = e.pending ? " (queued until the client reconnects)" : "";
  const to = e.to === "public" ? "all" : cleanText(e.to_name);
  if (e.kind === "file") {
    const what = `file "${cleanText(e.name ?? "")}" (${e.size ?? 0} bytes)`;
    const whom = e.to === "public" ? `${plural(e.recipients, "user")}` : cleanText(e.to_name);
    if (e.unconfirmed) {
      return paint(
        `[warn] ${what} went out to ${whom}, but the server has not confirmed that it took all ` +
          `of it; it may still arrive (or send it again)`,
        SGR.yellow,
        s.on,
      );
    }
    const count = e.to === "public" ? ` to ${plural(e.recipients, "user")}` : "";
    return stamp(e.ts, s) + paint(`me → ${to}: ${what}${count}${later}`, SGR.dim, s.on);
  }
  const text = cleanText(e.text ?? "");
  const me = cleanText(e.from_name ?? "me");
  const body = e.kind === "all"
    ? (e.action ? `* ${me} ${text}` : `me → all: ${text}`)
    : `me → ${to}: ${e.action ? `* ${me} ${text}` : text}`;
  return stamp(e.ts, s) + paint(`${body}${later}`, SGR.dim, s.on);
}

/** A received file (saved, or rejected). */
export function formatFile(e: FileEvent, options: FormatOptions = {}): string {
  const s = styleOf(options);
  const group = e.group === undefined ? undefined : `group ${cleanText(e.group)}`;
  if (!e.ok) {
    return paint(
      `[error] file "${cleanText(e.name)}" from ${cleanText(e.from_name)} (${shortId(e.from)})${
        group === undefined ? "" : ` in ${group}`
      } rejected: ${cleanText(e.reason ?? "unknown reason")}; not saved`,
      SGR.red,
      s.on,
    );
  }
  const check = e.unverified ? "NOT checked: the sender sent no sha256" : "sha256 ok";
  const to = group ?? (e.mode === "public" ? "all" : "me");
  return `${stamp(undefined, s)}${name(e.from_name, e.from, s)} → ${to}: file "${
    cleanText(e.name)
  }" (${e.size} bytes, ${check}), saved to ${cleanText(e.path ?? "")}`;
}

/**
 * The `text`, `action` and `from_name` fields of a `sent` event for a message the user typed.
 *
 * @example
 * ```ts
 * import { shownText } from "./chat_format.ts";
 * console.assert(shownText("/me waves", "alice").action === true);
 * ```
 */
export function shownText(
  typed: string,
  displayName: string,
): { text: string; action?: true; from_name: string } {
  const { text, action } = splitAction(typed);
  return { text, ...(action ? { action: true as const } : {}), from_name: displayName };
}
