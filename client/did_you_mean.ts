/**
 * "Did you mean /tell?": the closest known word to a mistyped one, by edit distance.
 *
 * @module
 */

/**
 * The Levenshtein distance between two texts (insertions, deletions and substitutions of one
 * character each cost 1), compared without letter case.
 *
 * @example
 * ```ts
 * import { editDistance } from "./did_you_mean.ts";
 * console.assert(editDistance("tel", "tell") === 1 && editDistance("lsit", "list") === 2);
 * ```
 */
export function editDistance(a: string, b: string): number {
  const x = [...a.toLowerCase()];
  const y = [...b.toLowerCase()];
  let row = Array.from({ length: y.length + 1 }, (_, i) => i);
  for (let i = 1; i <= x.length; i++) {
    const next = [i];
    for (let j = 1; j <= y.length; j++) {
      next[j] = Math.min(
        row[j]! + 1,
        next[j - 1]! + 1,
        row[j - 1]! + (x[i - 1] === y[j - 1] ? 0 : 1),
      );
    }
    row = next;
  }
  return row[y.length]!;
}

/**
 * The known word closest to `word`: a unique one that `word` begins (`acc` → `accounts`), else
 * the nearest within 2 edits (1 for words of up to 3 characters); `undefined` when none is near.
 *
 * @example
 * ```ts
 * import { didYouMean } from "./did_you_mean.ts";
 * const names = ["tell", "list", "all", "accounts", "quit"];
 * console.assert(didYouMean("tel", names) === "tell");
 * console.assert(didYouMean("acc", names) === "accounts");
 * console.assert(didYouMean("zzzz", names) === undefined);
 * ```
 */
export function didYouMean(word: string, known: readonly string[]): string | undefined {
  const lower = word.toLowerCase();
  if (lower.length === 0) return undefined;
  const prefixed = [...new Set(known.filter((k) => k.toLowerCase().startsWith(lower)))];
  if (prefixed.length === 1 && lower.length >= 2) return prefixed[0];
  const limit = [...lower].length <= 3 ? 1 : 2;
  let best: string | undefined;
  let bestDistance = Infinity;
  for (const candidate of known) {
    const d = editDistance(lower, candidate);
    if (d < bestDistance) {
      best = candidate;
      bestDistance = d;
    }
  }
  return bestDistance <= limit ? best : undefined;
}
