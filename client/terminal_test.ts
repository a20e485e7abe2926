import assert from "node:assert/strict";
import { LineEditor, readLines, TerminalUi } from "./terminal.ts";

Deno.test("LineEditor handles typing, backspace, enter, Ctrl-U, Ctrl-W and unknown escape sequences", () => {
  const e = new LineEditor();
  assert.deepEqual(e.feed("/tel"), []);
  assert.equal(e.text, "/tel");
  e.feed("x\x7f\bl");
  assert.equal(e.text, "/tel");
  // Keys the editor has no use for (F5, Insert, an up-arrow with no history) leave no trace.
  e.feed("l bob\x1b[15~hé\x1b[2~\x1bOA");
  assert.equal(e.text, "/tell bobhé");
  e.feed("\x17");
  assert.equal(e.text, "/tell ");
  assert.deepEqual(e.feed("x\r\ny\n"), [{ kind: "line", text: "/tell x" }, {
    kind: "line",
    text: "y",
  }]);
  e.feed("junk\x15");
  assert.equal(e.text, "");
});

Deno.test("LineEditor quits on Ctrl-C, and on Ctrl-D only with an empty line", () => {
  const e = new LineEditor();
  assert.deepEqual(e.feed("ab\x04"), []);
  assert.deepEqual(e.feed("\x03rest"), [{ kind: "quit" }]);
  const f = new LineEditor();
  assert.deepEqual(f.feed("\x04"), [{ kind: "quit" }]);
});

Deno.test("LineEditor.render() shows the end of a line too long for the terminal", () => {
  const e = new LineEditor();
  e.feed("0123456789abcdefghij");
  assert.equal(e.render("> ", 80), "> 0123456789abcdefghij");
  assert.equal(e.render("> ", 14), "> …abcdefghij");
});

Deno.test("TerminalUi prints above the prompt and redraws the partial input", () => {
  let out = "";
  const ui = new TerminalUi({ write: (t) => (out += t), writeErr: () => {}, columns: () => 80 });
  ui.activate();
  ui.editor.feed("/tell bo");
  out = "";
  ui.print("[dm] bob (22222222): hi");
  assert.equal(out, "\r\x1b[2K[dm] bob (22222222): hi\r\n> /tell bo");
  out = "";
  ui.setStatus("[file] a.bin 42%");
  assert.equal(out, "\r\x1b[2K[file] a.bin 42% > /tell bo");
  ui.deactivate();
});

Deno.test("TerminalUi.setPrompt() shows the connection state on the prompt line", () => {
  let out = "";
  const ui = new TerminalUi({ write: (t) => (out += t), writeErr: () => {}, columns: () => 80 });
  ui.activate();
  ui.editor.feed("/tell bo");
  out = "";
  ui.setPrompt("[reconnecting] > ");
  assert.equal(out, "\r\x1b[2K[reconnecting] > /tell bo");
  out = "";
  ui.setPrompt("> ");
  assert.equal(out, "\r\x1b[2K> /tell bo");
  ui.deactivate();
});

Deno.test("readLines() splits on LF and CRLF across chunks and keeps a last partial line", async () => {
  const enc = new TextEncoder();
  const stream = ReadableStream.from([
    enc.encode("/list\r\n/tell b"),
    enc.encode("ob hé\n"),
    enc.encode("last"),
  ]);
  const lines: string[] = [];
  for await (const line of readLines(stream.getReader())) lines.push(line);
  assert.deepEqual(lines, ["/list", "/tell bob hé", "last"]);
});

Deno.test("TerminalUi.ask() hides a secret answer, then restores the line being typed", async () => {
  let out = "";
  const ui = new TerminalUi({ write: (t) => (out += t), writeErr: () => {}, columns: () => 80 });
  ui.activate();
  ui.editor.feed("/tell bo");
  out = "";
  const answer = ui.ask("Password for alice: ", { secret: true });
  assert.equal(ui.asking, true);
  assert.equal(out, "\r\x1b[2KPassword for alice: ");
  const actions = ui.editor.feed("hunter2\r");
  out = "";
  ui.print("[dm] bob (22222222): hi");
  assert.ok(!out.includes("hunter2"), "nothing typed is shown");
  assert.deepEqual(actions, [{ kind: "line", text: "hunter2" }]);
  out = "";
  assert.equal(ui.answer("hunter2"), true);
  assert.equal(await answer, "hunter2");
  assert.ok(!out.includes("hunter2"), out);
  assert.ok(out.endsWith("> /tell bo"), out);
  assert.equal(ui.answer("/list"), false, "no question pending: a normal line");
  const cancelled = ui.ask("Password: ", { secret: true });
  assert.equal(ui.cancel(), true);
  assert.equal(await cancelled, undefined);
  ui.deactivate();
});
