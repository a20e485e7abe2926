/**
 * Counted nouns for messages: `1 second`, `2 seconds`, never `1 seconds`.
 *
 * @module
 */

/**
 * `n` followed by `noun`, in the plural unless `n` is 1. The plural is `noun` + "s" unless
 * `pluralNoun` is given.
 *
 * @example
 * ```ts
 * import { plural } from "./plural.ts";
 * console.assert(plural(1, "second") === "1 second");
 * console.assert(plural(3, "more second") === "3 more seconds");
 * console.assert(plural(2, "entry", "entries") === "2 entries");
 * ```
 */
export function plural(n: number, noun: string, pluralNoun: string = `${noun}s`): string {
  return `${n} ${n === 1 ? noun : pluralNoun}`;
}
