/**
 * The lines typed at the prompt, kept across runs for the line editor's ↑ and ↓: one file per
 * config (`alice.input_history` next to `alice.json`), one line per entry, mode 0600, at most
 * {@linkcode HISTORY_LIMIT} lines. Only command lines are kept: answers to questions
 * (passwords) never reach it, and neither does a line typed with a leading space.
 *
 * @module
 */

import { writePrivateFile } from "./chat_history.ts";
import { HISTORY_LIMIT } from "./line_editor.ts";

/**
 * The file's lines (the last `limit`), or none when it does not exist or cannot be read.
 *
 * @example
 * ```ts
 * import { loadInputHistory } from "./input_history.ts";
 * console.assert((await loadInputHistory("/nonexistent/x.input_history")).length === 0);
 * ```
 */
export async function loadInputHistory(path: string, limit = HISTORY_LIMIT): Promise<string[]> {
  let text: string;
  try {
    text = await Deno.readTextFile(path);
  } catch {
    return [];
  }
  return text.split("\n").filter((line) => line.length > 0).slice(-limit);
}

/**
 * Saves input history lines, one write at a time (the latest wins).
 *
 * @example
 * ```ts ignore
 * const saver = new InputHistoryFile("alice.input_history");
 * saver.save(["/list", "/tell bob hi"]);
 * await saver.flush();
 * ```
 */
export class InputHistoryFile {
  #path: string;
  #saving: Promise<void> = Promise.resolve();
  #onError: (message: string) => void;
  #reported = false;

  /** Saves to `path`; `onError` hears about the first failed write. */
  constructor(path: string, onError: (message: string) => void = () => {}) {
    this.#path = path;
    this.#onError = onError;
  }

  /** Writes `lines` (after any write in progress). */
  save(lines: readonly string[]): void {
    const text = lines.map((l) => l.replaceAll("\n", " ")).join("\n") + "\n";
    this.#saving = this.#saving.then(() => writePrivateFile(this.#path, text)).catch((e) => {
      if (this.#reported) return;
      this.#reported = true;
      this.#onError(`Could not save the input history "${this.#path}": ${(e as Error).message}`);
    });
  }

  /** Resolves when every save so far is written. */
  flush(): Promise<void> {
    return this.#saving;
  }
}
