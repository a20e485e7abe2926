/**
 * One-line messages for command-line mistakes. `parseArgs` from `node:util` throws errors whose
 * texts talk about positional arguments and `--`; {@linkcode argsErrorText} says what is wrong
 * in the terms of the command line that was typed, with a suggestion for a mistyped option.
 *
 * @module
 */

/** The longest edit distance at which a known option is suggested for an unknown one. */
const SUGGEST_DISTANCE = 2;

/** Levenshtein distance between `a` and `b` (small strings only). */
function editDistance(a: string, b: string): number {
  let previous = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const current = [i];
    for (let j = 1; j <= b.length; j++) {
      const substitution = previous[j - 1]! + (a[i - 1] === b[j - 1] ? 0 : 1);
      current.push(Math.min(previous[j]! + 1, current[j - 1]! + 1, substitution));
    }
    previous = current;
  }
  return previous[b.length]!;
}

/**
 * The known option closest to `typed` (`--serverr` → `--server`), or `undefined` when none is
 * close. `options` are long option names without dashes.
 */
function closestOption(typed: string, options: readonly string[]): string | undefined {
  if (!typed.startsWith("--")) return undefined;
  const name = typed.slice(2).split("=")[0]!;
  let best: { option: string; distance: number } | undefined;
  for (const option of options) {
    const prefix = name.length >= 3 && (option.startsWith(name) || name.startsWith(option));
    const distance = prefix ? 1 : editDistance(name, option);
    if (distance <= SUGGEST_DISTANCE && (best === undefined || distance < best.distance)) {
      best = { option, distance };
    }
  }
  return best && `--${best.option}`;
}

/** The first `'…'`-quoted word of `message` (an option or argument named by `parseArgs`). */
function quoted(message: string): string {
  return /'([^' ]*)/.exec(message)?.[1] ?? "";
}

/**
 * One line saying what is wrong with a command line, for an error thrown by `parseArgs` of
 * `node:util`; `options` are the command's long option names (without `--`), used to suggest
 * the one meant. Other errors give the first line of their message.
 *
 * @example
 * ```ts
 * import { parseArgs } from "node:util";
 * import { argsErrorText } from "./args_error.ts";
 * const options = { server: { type: "string" }, json: { type: "boolean" } } as const;
 * try {
 *   parseArgs({ args: ["me.json", "--serverr", "ws://h"], options, allowPositionals: true });
 * } catch (error) {
 *   const text = argsErrorText(error, Object.keys(options));
 *   console.assert(text === 'Unknown option "--serverr"; did you mean "--server"?');
 * }
 * ```
 */
export function argsErrorText(error: unknown, options: readonly string[] = []): string {
  const message = error instanceof Error ? error.message : String(error);
  const code = (error as { code?: unknown } | null)?.code;
  const name = quoted(message);
  switch (code) {
    case "ERR_PARSE_ARGS_UNKNOWN_OPTION": {
      const suggestion = closestOption(name, options);
      return `Unknown option "${name}"${suggestion ? `; did you mean "${suggestion}"?` : ""}`;
    }
    case "ERR_PARSE_ARGS_INVALID_OPTION_VALUE":
      if (/does not take an argument/.test(message)) return `Option ${name} takes no value`;
      if (/ambiguous/.test(message)) {
        return `Option ${name} needs a value; write ${name}=<value> for one starting with "-"`;
      }
      return `Option ${name} needs a value`;
    case "ERR_PARSE_ARGS_UNEXPECTED_POSITIONAL":
      return `Unexpected argument "${name}"`;
    default:
      return message.split("\n")[0]!;
  }
}
