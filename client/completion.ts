/**
 * Tab completion for the line editor: command names (and aliases) after `/`, then each
 * parameter from a source of candidates chosen by the parameter: `user` from the presence
 * directory (display names and id prefixes), `public` as a word, `group` from the groups the
 * user is in, `command` from the command table; words of a message text complete to user names.
 * Sources are a map of functions, so a feature adds its own (e.g. `group`) without touching
 * this file; a parameter names its source with `complete`, or by its name
 * ({@linkcode completionKinds}).
 *
 * @module
 */

import type { CommandParam, CommandTable } from "./commands.ts";
import type { Completer, Completion } from "./line_editor.ts";

/** Candidates by kind (`user`, `group`, ...): each call returns the current ones. */
export type CompletionSources = Readonly<Record<string, () => readonly string[]>>;

/** A user as the `user` source needs it. */
export interface CompletableUser {
  user_id: string;
  display_name: string;
  self?: boolean;
}

/**
 * The sources a parameter completes from: its `complete` field, else the parts of its name
 * (`user|public` → `user` and `public`; `group`, `command`, `user`), and user names for a
 * message text.
 *
 * @example
 * ```ts
 * import { completionKinds } from "./completion.ts";
 * console.assert(completionKinds({ name: "user|public" }).join() === "user,public");
 * ```
 */
export function completionKinds(param: CommandParam): string[] {
  if (param.complete !== undefined) return [...param.complete];
  if (param.rest && param.name === "text") return ["name"];
  return param.name.split("|").filter((part) =>
    ["user", "public", "group", "command"].includes(part)
  );
}

/** Candidates of the `user` source: other users' display names and the first 8 id digits. */
export function userCandidates(users: readonly CompletableUser[]): string[] {
  const others = users.filter((u) => !u.self);
  return [
    ...others.map((u) => u.display_name),
    ...others.map((u) => u.user_id.slice(0, 8)),
  ];
}

const HEX = /^[0-9a-f-]+$/i;

function quoteIfNeeded(text: string): string {
  return /\s/.test(text) ? `"${text.replaceAll('"', "")}"` : text;
}

/** Splits the text after the command name into words, minding quotes; notes a trailing gap. */
function words(text: string): { words: { start: number; text: string }[]; gap: boolean } {
  const chars = [...text];
  const out: { start: number; text: string }[] = [];
  let i = 0;
  while (i < chars.length) {
    while (i < chars.length && /\s/.test(chars[i]!)) i++;
    if (i >= chars.length) break;
    const start = i;
    const quote = chars[i] === '"' || chars[i] === "'" ? chars[i] : undefined;
    i++;
    while (i < chars.length && (quote ? chars[i] !== quote : !/\s/.test(chars[i]!))) i++;
    if (quote && i < chars.length) i++;
    out.push({ start, text: chars.slice(start, i).join("") });
  }
  const last = out.at(-1);
  const gap = last === undefined || last.start + [...last.text].length < chars.length;
  return { words: out, gap };
}

function matching(candidates: readonly string[], word: string): string[] {
  const typed = word.replace(/^["']/, "").toLowerCase();
  const hits = candidates.filter((c) => c.toLowerCase().startsWith(typed));
  return [...new Set(hits)].map(quoteIfNeeded);
}

/**
 * A {@linkcode Completer} over a command table and candidate sources.
 *
 * @example
 * ```ts
 * import { defaultCommands } from "./commands.ts";
 * import { commandCompleter } from "./completion.ts";
 * const complete = commandCompleter(defaultCommands(), { user: () => ["bob", "Bobby"] });
 * console.assert(complete("/te")?.candidates.join() === "/tell");
 * console.assert(complete("/tell bo")?.candidates.join() === "bob,Bobby");
 * ```
 */
export function commandCompleter(commands: CommandTable, sources: CompletionSources): Completer {
  return (before: string): Completion | undefined => {
    if (!before.startsWith("/")) return undefined;
    const space = before.search(/\s/);
    if (space < 0) {
      const typed = before.slice(1).toLowerCase();
      const names = commands.list().flatMap((spec) => [spec.name, ...(spec.aliases ?? [])]);
      const hits = names.filter((n) => n.toLowerCase().startsWith(typed) && n !== "?");
      return { start: 0, candidates: [...new Set(hits)].map((n) => `/${n}`) };
    }
    const spec = commands.get(before.slice(1, space));
    if (!spec) return undefined;
    const argOffset = [...before.slice(0, space)].length;
    const { words: typed, gap } = words(before.slice(space));
    const index = gap ? typed.length : typed.length - 1;
    const word = gap ? "" : typed.at(-1)!.text;
    const start = argOffset + (gap ? [...before.slice(space)].length : typed.at(-1)!.start);
    let param: CommandParam | undefined = spec.params[index];
    const last = spec.params.at(-1);
    if (param === undefined && last?.rest) param = last;
    if (param === undefined) return undefined;
    const candidates: string[] = [];
    for (const kind of completionKinds(param)) {
      if (kind === "public") candidates.push("public");
      else if (kind === "command") {
        candidates.push(...commands.list().map((s) => s.name));
      } else if (kind === "name") {
        // A word of a message: user names only, as typed in text (no ids, no quotes).
        if (word.length === 0) continue;
        const names = (sources["user"]?.() ?? []).filter((n) => !isIdPart(n) && !/\s/.test(n));
        candidates.push(...names);
      } else {
        const all = sources[kind]?.() ?? [];
        // Id prefixes only once a hex digit is typed, so a bare Tab lists names.
        candidates.push(
          ...(kind === "user" && !HEX.test(word) ? all.filter((c) => !isIdPart(c)) : all),
        );
      }
    }
    return { start, candidates: matching(candidates, word) };
  };
}

function isIdPart(text: string): boolean {
  return text.length === 8 && /^[0-9a-f]{8}$/.test(text);
}
