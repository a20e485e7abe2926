import assert from "node:assert/strict";
import { defaultCommands } from "./commands.ts";
import { commandCompleter, userCandidates } from "./completion.ts";
import { commonPrefix, LineEditor } from "./line_editor.ts";
import { TerminalUi } from "./terminal.ts";

const LEFT = "\x1b[D";
const RIGHT = "\x1b[C";
const UP = "\x1b[A";
const DOWN = "\x1b[B";
const HOME = "\x1b[H";
const END = "\x1b[F";
const DELETE = "\x1b[3~";

const BOB = "22222222-2222-4222-8222-222222222222";
const ANN = "a1a1a1a1-2222-4222-8222-222222222222";

function completer(groups: string[] = []) {
  return commandCompleter(defaultCommands(), {
    user: () =>
      userCandidates([
        { user_id: "11111111-1111-4111-8111-111111111111", display_name: "me", self: true },
        { user_id: BOB, display_name: "bob" },
        { user_id: "33333333-3333-4333-8333-333333333333", display_name: "Bobby" },
        { user_id: ANN, display_name: "Ann Lee" },
      ]),
    group: () => groups,
  });
}

Deno.test("LineEditor moves the cursor with ← → Home End and edits where it is", () => {
  const e = new LineEditor();
  e.feed("/tel bob");
  e.feed(LEFT.repeat(4) + "l");
  assert.equal(e.text, "/tell bob");
  assert.equal(e.cursor, 5);
  e.feed(HOME + "x" + END + "!");
  assert.equal(e.text, "x/tell bob!");
  e.feed("\x01" + DELETE + "\x05\x7f"); // Ctrl-A, Delete, Ctrl-E, Backspace
  assert.equal(e.text, "/tell bob");
  e.feed("\x1bOH" + RIGHT + RIGHT + "\x1b[1~" + "\x1b[4~" + "\x02\x02\x06"); // more spellings
  assert.equal(e.cursor, 8);
  e.feed(LEFT.repeat(20) + RIGHT.repeat(20));
  assert.equal(e.cursor, 9, "the cursor stays within the line");
});

Deno.test("LineEditor deletes words and to either end of the line at the cursor", () => {
  const e = new LineEditor();
  e.feed("/tell bob hello there" + LEFT.repeat(5));
  e.feed("\x17"); // Ctrl-W: the word before the cursor
  assert.equal(e.text, "/tell bob there");
  e.feed("\x0b"); // Ctrl-K: to the end
  assert.equal(e.text, "/tell bob ");
  e.feed(LEFT.repeat(4) + "\x15"); // Ctrl-U: to the start
  assert.equal(e.text, "bob ");
  assert.equal(e.cursor, 0);
  e.feed("\x04"); // Ctrl-D on a non-empty line deletes at the cursor
  assert.equal(e.text, "ob ");
  e.feed(END + "\x1b\x7f"); // Alt-Backspace
  assert.equal(e.text, "");
  e.feed("one two three\x1b[1;5D\x1b[1;5D\x1bb"); // Ctrl-← twice, Alt-B
  assert.equal(e.cursor, 0);
  e.feed("\x1bf\x1b[1;5C"); // Alt-F, Ctrl-→
  assert.equal(e.cursor, 7);
});

Deno.test("LineEditor ↑ ↓ walk the history and give back the line being typed", () => {
  const e = new LineEditor({ history: ["/list", "/tell bob hi"] });
  e.feed("/al");
  e.feed(UP);
  assert.equal(e.text, "/tell bob hi");
  e.feed(UP + UP);
  assert.equal(e.text, "/list", "stops at the oldest line");
  e.feed(DOWN);
  assert.equal(e.text, "/tell bob hi");
  e.feed(DOWN);
  assert.equal(e.text, "/al", "the line being typed comes back");
  e.feed("l x\r");
  assert.equal(e.addHistory("/all x"), true);
  assert.equal(e.addHistory("/all x"), false, "no repeat of the last line");
  assert.equal(e.addHistory(" /tell bob secret"), false, "a leading space keeps a line out");
  assert.equal(e.addHistory("   "), false);
  e.feed("\x10"); // Ctrl-P
  assert.equal(e.text, "/all x");
  assert.deepEqual(e.history, ["/list", "/tell bob hi", "/all x"]);
});

Deno.test("LineEditor keeps the history bounded", () => {
  const e = new LineEditor({ historyLimit: 3, history: ["a", "b", "c", "d"] });
  assert.deepEqual(e.history, ["b", "c", "d"]);
  e.addHistory("e");
  assert.deepEqual(e.history, ["c", "d", "e"]);
});

Deno.test("LineEditor in plain mode (a password) neither recalls nor completes", () => {
  const e = new LineEditor({ history: ["/tell bob my-old-secret"], complete: completer() });
  e.plain = true;
  e.feed(UP + "/te\t");
  assert.equal(e.text, "/te");
  e.plain = false;
  e.feed("\t");
  assert.equal(e.text, "/tell ");
});

Deno.test("Tab completes commands, user names, id prefixes and quoted names", () => {
  const e = new LineEditor({ complete: completer() });
  e.feed("/wh\t");
  assert.equal(e.text, "/whoelse", "the longest common prefix of /whoelse and /whoelsesince");
  e.text = "/tell b";
  assert.deepEqual(e.feed("\t"), []);
  assert.equal(e.text, "/tell bob", "bob and Bobby share bob");
  assert.deepEqual(e.feed("\t"), [{ kind: "candidates", items: ["bob", "Bobby"] }]);
  e.text = "/msg bobb";
  e.feed("\t");
  assert.equal(e.text, "/msg Bobby ");
  e.text = "/tell 2222";
  e.feed("\t");
  assert.equal(e.text, "/tell 22222222 ", "an id prefix");
  e.text = "/tell ann";
  e.feed("\t");
  assert.equal(e.text, '/tell "Ann Lee" ', "a name with a space is quoted");
  e.text = "/file p";
  e.feed("\t");
  assert.equal(e.text, "/file public ");
  e.text = "/help ac";
  e.feed("\t");
  assert.deepEqual(e.feed("\t"), [{ kind: "candidates", items: ["accounts", "accept"] }]);
  e.text = "/me waves at bobb";
  e.feed("\t");
  assert.equal(e.text, "/me waves at Bobby ", "names in a message text too");
  e.text = "just text";
  e.feed("\t");
  assert.equal(e.text, "just text", "no completion outside commands");
  e.text = "/nosuchcommand b";
  e.feed("\t");
  assert.equal(e.text, "/nosuchcommand b");
});

Deno.test("Tab completes group names from the groups source", () => {
  const e = new LineEditor({ complete: completer(["team", "teachers"]) });
  e.feed("/g t\t");
  assert.equal(e.text, "/g tea");
  assert.deepEqual(e.feed("\t"), [{ kind: "candidates", items: ["team", "teachers"] }]);
  e.feed("m\t");
  assert.equal(e.text, "/g team ");
});

Deno.test("Tab completes in the middle of a line without eating what follows", () => {
  const e = new LineEditor({ complete: completer() });
  e.feed("/tell bo hi" + LEFT.repeat(3) + "\t");
  assert.equal(e.text, "/tell bob hi");
  assert.equal(e.cursor, 9);
});

Deno.test("commonPrefix() ignores letter case", () => {
  assert.equal(commonPrefix(["bob", "Bobby"]), "bob");
  assert.equal(commonPrefix(["x"]), "x");
  assert.equal(commonPrefix([]), "");
});

Deno.test("LineEditor.view() keeps the cursor in sight on a long line", () => {
  const e = new LineEditor();
  e.feed("0123456789abcdefghij");
  assert.deepEqual(e.view("> ", 14), { line: "> …abcdefghij", cursor: 13 });
  e.feed(HOME);
  assert.deepEqual(e.view("> ", 14), { line: "> 0123456789…", cursor: 2 });
  e.feed(RIGHT.repeat(12));
  const mid = e.view("> ", 14);
  assert.equal([...mid.line].length, 13);
  assert.equal([...mid.line][mid.cursor], "c", "the cursor sits on the character after it");
  assert.deepEqual(e.view("Password: ", 80, { hidden: true }), {
    line: "Password: ",
    cursor: 10,
  });
});

Deno.test("TerminalUi redraws the typed line with the cursor where it was when a message arrives", () => {
  let out = "";
  const ui = new TerminalUi({ write: (t) => (out += t), writeErr: () => {}, columns: () => 80 });
  ui.activate();
  ui.editor.feed("/tell bo hi" + LEFT.repeat(3));
  out = "";
  ui.print("12:03 carol → all: lunch?");
  assert.equal(out, "\r\x1b[2K12:03 carol → all: lunch?\r\n> /tell bo hi\x1b[3D");
  out = "";
  ui.bell();
  assert.equal(out, "\x07");
  out = "";
  ui.showCandidates(["bob", "Bobby"]);
  assert.equal(out, "\r\x1b[2Kbob    Bobby\r\n> /tell bo hi\x1b[3D");
  ui.deactivate();
  out = "";
  ui.bell();
  assert.equal(out, "", "no bell without the prompt on a terminal");
});

Deno.test("TerminalUi never puts an answer to a question into the history", async () => {
  const ui = new TerminalUi({
    write: () => {},
    writeErr: () => {},
    columns: () => 80,
    history: ["/list"],
  });
  ui.activate();
  const asked = ui.ask("Password: ", { secret: true });
  const [line] = ui.editor.feed(UP + "hunter22\r");
  assert.deepEqual(line, { kind: "line", text: "hunter22" }, "↑ recalls nothing at a prompt");
  assert.equal(ui.answer("hunter22"), true);
  assert.equal(await asked, "hunter22");
  assert.deepEqual(ui.editor.history, ["/list"]);
  ui.editor.feed(UP);
  assert.equal(ui.editor.text, "/list", "the history works again after the question");
  ui.deactivate();
});
