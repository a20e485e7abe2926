/**
 * Child processes of `main.ts` ({@linkcode spawnMainTs}), and reading their output without ever
 * blocking them: stderr is drained into a bounded tail buffer, stdout is split into lines handed
 * to a callback.
 *
 * @module
 */

import { fileURLToPath } from "node:url";

/** The repository root (where `main.ts` lives). */
export const REPO_ROOT: string = fileURLToPath(new URL("../../", import.meta.url));

/** How much of a child's stderr is kept for diagnostics. */
export const STDERR_TAIL_BYTES = 200 * 1024;

/** Keeps the last `limit` characters of a stream of text. */
export class TailBuffer {
  #chunks: string[] = [];
  #size = 0;
  #limit: number;
  #dropped = false;

  /** Creates a buffer keeping about `limit` characters. */
  constructor(limit: number = STDERR_TAIL_BYTES) {
    this.#limit = limit;
  }

  /** Appends text, dropping the oldest beyond the limit. */
  push(text: string): void {
    this.#chunks.push(text);
    this.#size += text.length;
    while (this.#size > this.#limit && this.#chunks.length > 1) {
      this.#size -= this.#chunks.shift()!.length;
      this.#dropped = true;
    }
    if (this.#size > this.#limit) {
      const only = this.#chunks[0]!;
      this.#chunks[0] = only.slice(only.length - this.#limit);
      this.#size = this.#chunks[0].length;
      this.#dropped = true;
    }
  }

  /** The kept text (marked when older text was dropped). */
  text(): string {
    return (this.#dropped ? "[…earlier output dropped…]\n" : "") + this.#chunks.join("");
  }
}

/**
 * Reads `stream` to its end, passing each decoded chunk to `onText`. Resolves when the stream
 * ends (the child closed it); never rejects.
 */
export async function drainText(
  stream: ReadableStream<Uint8Array>,
  onText: (text: string) => void,
): Promise<void> {
  const decoder = new TextDecoder();
  try {
    for await (const chunk of stream) onText(decoder.decode(chunk, { stream: true }));
    const rest = decoder.decode();
    if (rest) onText(rest);
  } catch {
    // The child went away mid-read; what was read is kept.
  }
}

/**
 * Reads `stream` to its end, calling `onLine` for every complete line (without the newline)
 * and for a last unterminated line.
 */
export function drainLines(
  stream: ReadableStream<Uint8Array>,
  onLine: (line: string) => void,
): Promise<void> {
  let partial = "";
  return drainText(stream, (text) => {
    partial += text;
    let newline: number;
    while ((newline = partial.indexOf("\n")) >= 0) {
      onLine(partial.slice(0, newline).replace(/\r$/, ""));
      partial = partial.slice(newline + 1);
    }
  }).then(() => {
    if (partial.length > 0) onLine(partial);
  });
}

/**
 * Spawns `deno run --allow-all main.ts <args>` from the repository root with `NO_COLOR=1` (then
 * `env`), stdin closed unless `stdin` is `"piped"`, and stdout and stderr piped.
 */
export function spawnMainTs(
  args: string[],
  options: { env?: Record<string, string> | undefined; stdin?: "null" | "piped" } = {},
): Deno.ChildProcess {
  return new Deno.Command(Deno.execPath(), {
    args: ["run", "--allow-all", "main.ts", ...args],
    cwd: REPO_ROOT,
    env: { NO_COLOR: "1", ...options.env },
    stdin: options.stdin ?? "null",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
}

/** True when the SOCP_TEST_DEBUG environment variable is set (children log at debug level). */
export function testDebug(): boolean {
  try {
    return (Deno.env.get("SOCP_TEST_DEBUG") ?? "") !== "";
  } catch {
    return false;
  }
}
