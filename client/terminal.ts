/**
 * Terminal input and output. On a terminal the client runs a small raw-mode line editor
 * ({@linkcode LineEditor}) so incoming messages never garble the line being typed: the prompt
 * line is cleared, the message printed, and the prompt with the partial input redrawn. Without a
 * terminal, input is read line by line ({@linkcode readLines}) and every event is one line.
 *
 * @module
 */

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

/** What the editor asks for after some input. */
export type EditorAction = { kind: "line"; text: string } | { kind: "quit" };

const CLEAR_LINE = "\r\x1b[2K";
const MAX_INPUT = 16 * 1024;

/**
 * A minimal line editor: printable characters, Backspace, Enter, Ctrl-U (clear), Ctrl-W (delete
 * word), Ctrl-C (quit) and Ctrl-D (quit on an empty line). Escape sequences (arrows...) are
 * ignored. It only keeps state; {@linkcode TerminalUi} does the drawing.
 *
 * @example
 * ```ts
 * import { LineEditor } from "./terminal.ts";
 * const editor = new LineEditor();
 * const actions = editor.feed("/lisx\x7ft\r");
 * console.assert(actions[0]?.kind === "line" && actions[0].text === "/list");
 * ```
 */
export class LineEditor {
  #chars: string[] = [];
  #escape: "" | "esc" | "csi" | "ss3" = "";
  #lastCr = false;

  /** The text typed so far. */
  get text(): string {
    return this.#chars.join("");
  }

  /** Replaces the typed text (to set a line aside while a question is asked). */
  set text(value: string) {
    this.#chars = [...value].slice(0, MAX_INPUT);
  }

  /** Processes typed input and returns the completed lines and quit requests, in order. */
  feed(input: string): EditorAction[] {
    const actions: EditorAction[] = [];
    for (const ch of input) {
      const wasCr = this.#lastCr;
      this.#lastCr = ch === "\r";
      if (this.#escape === "esc") {
        this.#escape = ch === "[" ? "csi" : ch === "O" ? "ss3" : "";
        continue;
      }
      if (this.#escape === "csi") {
        const c = ch.charCodeAt(0);
        if (c >= 0x40 && c <= 0x7e) this.#escape = "";
        continue;
      }
      if (this.#escape === "ss3") {
        this.#escape = "";
        continue;
      }
      switch (ch) {
        case "\x1b":
          this.#escape = "esc";
          break;
        case "\r":
        case "\n":
          if (ch === "\n" && wasCr) break; // \r\n is one Enter
          actions.push({ kind: "line", text: this.text });
          this.#chars = [];
          break;
        case "\x7f":
        case "\b":
          this.#chars.pop();
          break;
        case "\x03":
          actions.push({ kind: "quit" });
          return actions;
        case "\x04":
          if (this.#chars.length === 0) {
            actions.push({ kind: "quit" });
            return actions;
          }
          break;
        case "\x15":
          this.#chars = [];
          break;
        case "\x17": {
          while (this.#chars.length > 0 && this.#chars.at(-1) === " ") this.#chars.pop();
          while (this.#chars.length > 0 && this.#chars.at(-1) !== " ") this.#chars.pop();
          break;
        }
        case "\t":
          if (this.#chars.length < MAX_INPUT) this.#chars.push(" ");
          break;
        default: {
          const c = ch.codePointAt(0)!;
          if (c < 0x20 || (c >= 0x7f && c < 0xa0)) break;
          if (this.#chars.length < MAX_INPUT) this.#chars.push(ch);
        }
      }
    }
    return actions;
  }

  /**
   * The prompt line as it should look in `columns` columns: the prompt (and status) followed by
   * the end of the input when it is too long to fit.
   */
  render(prompt: string, columns: number, options: { hidden?: boolean } = {}): string {
    if (options.hidden) return prompt;
    const room = Math.max(8, columns - [...prompt].length - 1);
    const chars = this.#chars;
    const visible = chars.length <= room ? chars.join("") : "…" + chars.slice(-(room - 1)).join("");
    return prompt + visible;
  }
}

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
  #editor: LineEditor = new LineEditor();
  #status: string | undefined;
  #active = false;
  #questions: Question[] = [];
  #setAside: string | undefined;

  /** Creates the UI (nothing is drawn until {@linkcode TerminalUi.activate}). */
  constructor(options: TerminalUiOptions) {
    this.#o = options;
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
    if (this.#questions.length === 0 && this.#setAside !== undefined) {
      this.#editor.text = this.#setAside;
      this.#setAside = undefined;
    }
    this.redraw();
  }

  #line(): string {
    const q = this.#questions[0];
    const prompt = (this.#status ? `${this.#status} ` : "") + (q?.prompt ?? this.#o.prompt ?? "> ");
    return this.#editor.render(prompt, this.#o.columns(), { hidden: q?.secret === true });
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
