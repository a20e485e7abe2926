/**
 * The line editor of the terminal client: what the keys do to the line being typed. It keeps
 * state only; `TerminalUi` (terminal.ts) draws it.
 *
 * | keys                                   | action                                   |
 * | -------------------------------------- | ---------------------------------------- |
 * | ← →, Ctrl-B Ctrl-F                     | move one character                       |
 * | Ctrl-← Ctrl-→, Alt-B Alt-F             | move one word                            |
 * | Home End, Ctrl-A Ctrl-E                | start, end of the line                   |
 * | Backspace, Delete                      | delete before, at the cursor             |
 * | Ctrl-W, Alt-Backspace                  | delete the word before the cursor        |
 * | Ctrl-U, Ctrl-K                         | delete to the start, to the end          |
 * | ↑ ↓, Ctrl-P Ctrl-N                     | earlier, later lines of the history      |
 * | Tab                                    | complete (see completion.ts)             |
 * | Enter                                  | submit the line                          |
 * | Ctrl-C; Ctrl-D on an empty line        | quit (Ctrl-D elsewhere deletes)          |
 *
 * While a secret is asked ({@linkcode LineEditor.plain}) neither the history nor completion is
 * used, so a password never comes from, or goes into, the history.
 *
 * @module
 */

/** What the editor asks for after some input. */
export type EditorAction =
  | { kind: "line"; text: string }
  | { kind: "quit" }
  /** Tab found several completions and could not extend the word: show them. */
  | { kind: "candidates"; items: string[] };

/** Completions for the word that ends at the cursor. */
export interface Completion {
  /** Where the word being completed starts (an index into the line's characters). */
  start: number;
  /** Texts that may replace the word, in the order to show them. */
  candidates: string[];
}

/**
 * Finds completions for a line (as characters before the cursor); `undefined` or no candidates
 * when there is nothing to complete.
 */
export type Completer = (before: string) => Completion | undefined;

/** Options for {@linkcode LineEditor}. */
export interface LineEditorOptions {
  /** Earlier lines, oldest first (e.g. loaded from the history file). */
  history?: readonly string[];
  /** Most lines kept in the history (default 500). */
  historyLimit?: number;
  /** Tab completion. */
  complete?: Completer;
}

/** The visible part of the prompt line and where the cursor goes. */
export interface EditorView {
  /** The prompt and the visible part of the input. */
  line: string;
  /** The cursor's column (0-based, counted in characters of `line`). */
  cursor: number;
}

/** Longest input kept (characters). */
export const MAX_INPUT = 16 * 1024;

/** Default number of history lines. */
export const HISTORY_LIMIT = 500;

const isSpace = (ch: string | undefined): boolean => ch === " ";

/**
 * The editable line, its cursor and the history.
 *
 * @example
 * ```ts
 * import { LineEditor } from "./line_editor.ts";
 * const editor = new LineEditor();
 * const actions = editor.feed("/lisx\x7ft\r");
 * console.assert(actions[0]?.kind === "line" && actions[0].text === "/list");
 * editor.feed("/tel bob\x01\x1b[C\x1b[C\x1b[C\x1b[Cl"); // Home, → → → →, then insert "l"
 * console.assert(editor.text === "/tell bob");
 * ```
 */
export class LineEditor {
  #chars: string[] = [];
  #cursor = 0;
  #escape: "" | "esc" | "csi" | "ss3" = "";
  #csi = "";
  #lastCr = false;
  #history: string[];
  #historyLimit: number;
  /** Position in the history while browsing (`#history.length`: the line being typed). */
  #browse: number;
  #draft: string[] = [];
  #complete: Completer | undefined;
  #plain = false;

  /** Creates an empty editor. */
  constructor(options: LineEditorOptions = {}) {
    this.#historyLimit = options.historyLimit ?? HISTORY_LIMIT;
    this.#history = [...(options.history ?? [])].slice(-this.#historyLimit);
    this.#browse = this.#history.length;
    this.#complete = options.complete;
  }

  /** The text typed so far. */
  get text(): string {
    return this.#chars.join("");
  }

  /** Replaces the typed text (to set a line aside while a question is asked); cursor at the end. */
  set text(value: string) {
    this.#chars = [...value].slice(0, MAX_INPUT);
    this.#cursor = this.#chars.length;
    this.#browse = this.#history.length;
  }

  /** The cursor position (characters from the start). */
  get cursor(): number {
    return this.#cursor;
  }

  /** History lines, oldest first. */
  get history(): readonly string[] {
    return this.#history;
  }

  /** True while a secret is typed: no history, no completion. */
  get plain(): boolean {
    return this.#plain;
  }

  set plain(value: boolean) {
    this.#plain = value;
  }

  /** Sets (or with `undefined` removes) Tab completion. */
  set completer(complete: Completer | undefined) {
    this.#complete = complete;
  }

  /**
   * Adds a submitted line to the history, unless it is empty, starts with a space (as in
   * shells: a line to keep out of the history) or repeats the last one. True when added.
   */
  addHistory(line: string): boolean {
    this.#browse = this.#history.length;
    if (line.trim().length === 0 || line.startsWith(" ") || this.#history.at(-1) === line) {
      return false;
    }
    this.#history.push(line);
    if (this.#history.length > this.#historyLimit) {
      this.#history.splice(0, this.#history.length - this.#historyLimit);
    }
    this.#browse = this.#history.length;
    return true;
  }

  /** Processes typed input and returns the completed lines, quit requests and candidates. */
  feed(input: string): EditorAction[] {
    const actions: EditorAction[] = [];
    for (const ch of input) {
      const wasCr = this.#lastCr;
      this.#lastCr = ch === "\r";
      if (this.#escape === "esc") {
        this.#escape = "";
        if (ch === "[") {
          this.#escape = "csi";
          this.#csi = "";
        } else if (ch === "O") this.#escape = "ss3";
        else if (ch === "b") this.#wordLeft();
        else if (ch === "f") this.#wordRight();
        else if (ch === "\x7f" || ch === "\b") this.#deleteWordBack();
        continue;
      }
      if (this.#escape === "csi") {
        const c = ch.charCodeAt(0);
        if (c >= 0x40 && c <= 0x7e) {
          this.#escape = "";
          this.#onCsi(this.#csi, ch);
        } else if (this.#csi.length < 16) this.#csi += ch;
        continue;
      }
      if (this.#escape === "ss3") {
        this.#escape = "";
        this.#onCsi("", ch);
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
          this.#cursor = 0;
          this.#browse = this.#history.length;
          break;
        case "\x7f":
        case "\b":
          if (this.#cursor > 0) this.#chars.splice(--this.#cursor, 1);
          break;
        case "\x03":
          actions.push({ kind: "quit" });
          return actions;
        case "\x04":
          if (this.#chars.length === 0) {
            actions.push({ kind: "quit" });
            return actions;
          }
          this.#chars.splice(this.#cursor, 1);
          break;
        case "\x01":
          this.#cursor = 0;
          break;
        case "\x05":
          this.#cursor = this.#chars.length;
          break;
        case "\x02":
          this.#cursor = Math.max(0, this.#cursor - 1);
          break;
        case "\x06":
          this.#cursor = Math.min(this.#chars.length, this.#cursor + 1);
          break;
        case "\x0b":
          this.#chars.splice(this.#cursor);
          break;
        case "\x15":
          this.#chars.splice(0, this.#cursor);
          this.#cursor = 0;
          break;
        case "\x17":
          this.#deleteWordBack();
          break;
        case "\x10":
          this.#historyUp();
          break;
        case "\x0e":
          this.#historyDown();
          break;
        case "\t":
          this.#tab(actions);
          break;
        default: {
          const c = ch.codePointAt(0)!;
          if (c < 0x20 || (c >= 0x7f && c < 0xa0)) break;
          this.#insert(ch);
        }
      }
    }
    return actions;
  }

  /**
   * The prompt line as it should look in `columns` columns: the prompt (and status) followed by
   * the part of the input around the cursor when it is too long to fit.
   */
  render(prompt: string, columns: number, options: { hidden?: boolean } = {}): string {
    return this.view(prompt, columns, options).line;
  }

  /** Like {@linkcode render}, with the cursor's column. */
  view(prompt: string, columns: number, options: { hidden?: boolean } = {}): EditorView {
    const promptWidth = [...prompt].length;
    if (options.hidden) return { line: prompt, cursor: promptWidth };
    const room = Math.max(8, columns - promptWidth - 1);
    const chars = this.#chars;
    const at = this.#cursor;
    if (chars.length <= room) return { line: prompt + chars.join(""), cursor: promptWidth + at };
    const tail = chars.length - (room - 1);
    if (at >= tail) {
      return {
        line: prompt + "…" + chars.slice(tail).join(""),
        cursor: promptWidth + 1 + at - tail,
      };
    }
    if (at < room - 1) {
      return { line: prompt + chars.slice(0, room - 1).join("") + "…", cursor: promptWidth + at };
    }
    const start = at - Math.floor((room - 2) / 2);
    return {
      line: prompt + "…" + chars.slice(start, start + room - 2).join("") + "…",
      cursor: promptWidth + 1 + at - start,
    };
  }

  #insert(text: string): void {
    const add = [...text].slice(0, MAX_INPUT - this.#chars.length);
    this.#chars.splice(this.#cursor, 0, ...add);
    this.#cursor += add.length;
  }

  #onCsi(params: string, final: string): void {
    const [first = "", modifier = ""] = params.split(";");
    const word = modifier === "5" || modifier === "3" || first === "5";
    switch (final) {
      case "A":
        return this.#historyUp();
      case "B":
        return this.#historyDown();
      case "C":
        if (word) return this.#wordRight();
        this.#cursor = Math.min(this.#chars.length, this.#cursor + 1);
        return;
      case "D":
        if (word) return this.#wordLeft();
        this.#cursor = Math.max(0, this.#cursor - 1);
        return;
      case "H":
        this.#cursor = 0;
        return;
      case "F":
        this.#cursor = this.#chars.length;
        return;
      case "~":
        if (first === "1" || first === "7") this.#cursor = 0;
        else if (first === "4" || first === "8") this.#cursor = this.#chars.length;
        else if (first === "3") this.#chars.splice(this.#cursor, 1);
        return;
    }
  }

  #wordLeft(): void {
    let i = this.#cursor;
    while (i > 0 && isSpace(this.#chars[i - 1])) i--;
    while (i > 0 && !isSpace(this.#chars[i - 1])) i--;
    this.#cursor = i;
  }

  #wordRight(): void {
    let i = this.#cursor;
    const n = this.#chars.length;
    while (i < n && isSpace(this.#chars[i])) i++;
    while (i < n && !isSpace(this.#chars[i])) i++;
    this.#cursor = i;
  }

  #deleteWordBack(): void {
    const end = this.#cursor;
    this.#wordLeft();
    this.#chars.splice(this.#cursor, end - this.#cursor);
  }

  #historyUp(): void {
    if (this.#plain || this.#browse === 0) return;
    if (this.#browse === this.#history.length) this.#draft = [...this.#chars];
    this.#browse--;
    this.#show([...this.#history[this.#browse]!]);
  }

  #historyDown(): void {
    if (this.#plain || this.#browse >= this.#history.length) return;
    this.#browse++;
    this.#show(
      this.#browse === this.#history.length ? this.#draft : [...this.#history[this.#browse]!],
    );
  }

  #show(chars: string[]): void {
    this.#chars = chars.slice(0, MAX_INPUT);
    this.#cursor = this.#chars.length;
  }

  #tab(actions: EditorAction[]): void {
    if (this.#plain || !this.#complete) return;
    const before = this.#chars.slice(0, this.#cursor).join("");
    const found = this.#complete(before);
    if (!found || found.candidates.length === 0) return;
    const start = Math.max(0, Math.min(found.start, this.#cursor));
    const word = this.#chars.slice(start, this.#cursor).join("");
    const unique = [...new Set(found.candidates)];
    const replace = (text: string): void => {
      this.#chars.splice(start, this.#cursor - start);
      this.#cursor = start;
      this.#insert(text);
    };
    if (unique.length === 1) {
      const only = unique[0]!;
      const next = this.#chars[this.#cursor];
      replace(only);
      if (next === undefined && !only.endsWith(" ")) this.#insert(" ");
      return;
    }
    const common = commonPrefix(unique);
    if ([...common].length > [...word].length) {
      replace(common);
      return;
    }
    actions.push({ kind: "candidates", items: unique });
  }
}

/**
 * The longest prefix all texts share, ignoring letter case (spelt as the first text spells it).
 *
 * @example
 * ```ts
 * import { commonPrefix } from "./line_editor.ts";
 * console.assert(commonPrefix(["Bobby", "bob"]) === "Bob");
 * ```
 */
export function commonPrefix(texts: readonly string[]): string {
  const first = [...(texts[0] ?? "")];
  let n = first.length;
  for (const text of texts.slice(1)) {
    const chars = [...text];
    let i = 0;
    while (i < n && i < chars.length && chars[i]!.toLowerCase() === first[i]!.toLowerCase()) i++;
    n = i;
  }
  return first.slice(0, n).join("");
}
