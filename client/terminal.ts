/**
 * Terminal input and output. On a terminal the client runs a raw-mode line editor
 * ({@linkcode LineEditor}, line_editor.ts: cursor keys, history, Tab completion) so incoming
 * messages never garble the line being typed: the prompt line is cleared, the message printed,
 * and the prompt with the partial input redrawn, the cursor where it was. Without a terminal,
 * input is read line by line ({@linkcode readLines}) and every event is one line.
 *
 * @module
 */

import { type Completer, LineEditor } from "./line_editor.ts";

/** Writes text somewhere (stdout, stderr, a test buffer). */
export type Write = (text: string) => void;

/** Options of one question. */
export interface AskOptions {
  /** Do not show what is typed (passwords). */
  secret?: boolean;
}

/**
 * Asks the user something (a password); resolves `undefined` when no answer can come (end of
 * input, or Ctrl-C on a terminal).
 */
export type Ask = (prompt: string, options?: AskOptions) => Promise<string | undefined>;

const encoder = new TextEncoder();

/**
 * A synchronous writer for a Deno stream such as `Deno.stdout` (handles partial writes, so
 * lines from different sources never interleave).
 */
export function syncWriter(target: { writeSync(p: Uint8Array): number }): Write {
  return (text: string): void => {
    let bytes = encoder.encode(text);
    while (bytes.length > 0) {
      const n = target.writeSync(bytes);
      bytes = bytes.subarray(n);
    }
  };
}

export { type EditorAction, LineEditor } from "./line_editor.ts";

const CLEAR_LINE = "\r\x1b[2K";

/** Options for {@linkcode TerminalUi}. */
export interface TerminalUiOptions {
  /** Writes to the terminal (stdout). */
  write: Write;
  /** Writes to stderr (debug output). */
  writeErr: Write;
  /** Current terminal width. */
  columns: () => number;
  /** Prompt text (default `"> "`). */
  prompt?: string;
  /** Lines typed in earlier runs, oldest first (for ↑). */
  history?: readonly string[];
  /** Tab completion. */
  complete?: Completer;
}

interface Question {
  prompt: string;
  secret: boolean;
  resolve(answer: string | undefined): void;
}

/**
 * Draws the prompt line and prints messages above it. {@linkcode TerminalUi.ask} turns the
 * prompt line into a question (a password prompt shows nothing of what is typed) until the
 * input loop hands it the next line ({@linkcode TerminalUi.answer}).
 */
export class TerminalUi {
  #o: TerminalUiOptions;
  #editor: LineEditor;
  #status: string | undefined;
  #active = false;
  #questions: Question[] = [];
  #setAside: string | undefined;

  /** Creates the UI (nothing is drawn until {@linkcode TerminalUi.activate}). */
  constructor(options: TerminalUiOptions) {
    this.#o = options;
    this.#editor = new LineEditor({
      ...(options.history ? { history: options.history } : {}),
      ...(options.complete ? { complete: options.complete } : {}),
    });
  }

  /** The editor holding the typed input. */
  get editor(): LineEditor {
    return this.#editor;
  }

  /** Starts drawing the prompt. */
  activate(): void {
    this.#active = true;
    this.redraw();
  }

  /** Stops drawing the prompt and leaves the cursor on a clean line. */
  deactivate(): void {
    if (!this.#active) return;
    this.#active = false;
    this.#o.write(CLEAR_LINE);
  }

  /** Prints text (possibly several lines) above the prompt line. */
  print(text: string, toStderr = false): void {
    const body = text.split("\n").join("\r\n") + "\r\n";
    if (!this.#active) {
      (toStderr ? this.#o.writeErr : this.#o.write)(body);
      return;
    }
    if (toStderr) {
      this.#o.write(CLEAR_LINE);
      this.#o.writeErr(body);
      this.redraw();
    } else {
      this.#o.write(CLEAR_LINE + body + this.#line());
    }
  }

  /** Rings the terminal bell (BEL), e.g. for a direct message; only while drawing the prompt. */
  bell(): void {
    if (this.#active) this.#o.write("\x07");
  }

  /** Shows Tab completion candidates above the prompt, in columns. */
  showCandidates(items: readonly string[]): void {
    const width = Math.max(...items.map((i) => [...i].length)) + 2;
    const perRow = Math.max(1, Math.floor(this.#o.columns() / width));
    const rows: string[] = [];
    for (let i = 0; i < items.length; i += perRow) {
      rows.push(items.slice(i, i + perRow).map((item) => item.padEnd(width)).join("").trimEnd());
    }
    this.print(rows.join("\n"));
  }

  /** Changes the prompt (e.g. `[reconnecting] > ` while the connection is down). */
  setPrompt(prompt: string): void {
    if (prompt === (this.#o.prompt ?? "> ")) return;
    this.#o = { ...this.#o, prompt };
    if (this.#active) this.redraw();
  }

  /** Shows (or with `undefined` removes) a status such as a progress indicator in the prompt. */
  setStatus(status: string | undefined): void {
    if (status === this.#status) return;
    this.#status = status;
    if (this.#active) this.redraw();
  }

  /** Echoes a submitted line so it stays visible above the new prompt. */
  echo(line: string): void {
    if (this.#active) this.#o.write(CLEAR_LINE + (this.#o.prompt ?? "> ") + line + "\r\n");
  }

  /** Redraws the prompt line. */
  redraw(): void {
    if (this.#active) this.#o.write(CLEAR_LINE + this.#line());
  }

  /**
   * Asks a question on the prompt line; the next line typed is the answer. With `secret`
   * nothing typed is shown. Questions asked at once are asked one after the other.
   */
  ask(prompt: string, options: AskOptions = {}): Promise<string | undefined> {
    return new Promise((resolve) => {
      this.#questions.push({ prompt, secret: options.secret === true, resolve });
      if (this.#questions.length === 1) {
        this.#setAside = this.#editor.text;
        this.#editor.text = "";
        // An answer (a password) never comes from the history, nor goes into it.
        this.#editor.plain = true;
      }
      this.redraw();
    });
  }

  /** True while a question waits for its answer. */
  get asking(): boolean {
    return this.#questions.length > 0;
  }

  /** Hands a typed line to the question being asked; false when none is. */
  answer(text: string): boolean {
    const q = this.#questions.shift();
    if (!q) return false;
    if (this.#active) this.#o.write(CLEAR_LINE + q.prompt + (q.secret ? "" : text) + "\r\n");
    this.#afterQuestion();
    q.resolve(text);
    return true;
  }

  /** Cancels the question being asked (Ctrl-C); false when none is. */
  cancel(): boolean {
    const q = this.#questions.shift();
    if (!q) return false;
    if (this.#active) this.#o.write(CLEAR_LINE + q.prompt + "^C\r\n");
    this.#afterQuestion();
    q.resolve(undefined);
    return true;
  }

  /** Cancels every question (when input ends). */
  cancelAll(): void {
    while (this.cancel()) { /* next */ }
  }

  #afterQuestion(): void {
    if (this.#questions.length === 0) {
      this.#editor.plain = false;
      if (this.#setAside !== undefined) {
        this.#editor.text = this.#setAside;
        this.#setAside = undefined;
      }
    }
    this.redraw();
  }

  /** The prompt line, then the cursor moved back to its column when it is not at the end. */
  #line(): string {
    const q = this.#questions[0];
    const prompt = (this.#status ? `${this.#status} ` : "") + (q?.prompt ?? this.#o.prompt ?? "> ");
    const view = this.#editor.view(prompt, this.#o.columns(), { hidden: q?.secret === true });
    const back = [...view.line].length - view.cursor;
    return back > 0 ? `${view.line}\x1b[${back}D` : view.line;
  }
}

/**
 * Splits a byte stream into lines (`\n` or `\r\n`), yielding a last unterminated line too.
 *
 * @example
 * ```ts
 * import { readLines } from "./terminal.ts";
 * const stream = ReadableStream.from([new TextEncoder().encode("a\r\nb")]);
 * const lines: string[] = [];
 * for await (const line of readLines(stream.getReader())) lines.push(line);
 * console.assert(lines.join("|") === "a|b");
 * ```
 */
export async function* readLines(
  reader: ReadableStreamDefaultReader<Uint8Array>,
): AsyncGenerator<string> {
  const decoder = new TextDecoder();
  let pending = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    pending += decoder.decode(value, { stream: true });
    let nl: number;
    while ((nl = pending.indexOf("\n")) >= 0) {
      const line = pending.slice(0, nl);
      pending = pending.slice(nl + 1);
      yield line.endsWith("\r") ? line.slice(0, -1) : line;
    }
  }
  pending += decoder.decode();
  if (pending.length > 0) yield pending.endsWith("\r") ? pending.slice(0, -1) : pending;
}
