import assert from "node:assert/strict";
import { escapeControls, jsonLogLine } from "./log.ts";

Deno.test("`escapeControls()` escapes C0, DEL, C1, U+2028/U+2029 and bidi overrides", () => {
  assert.equal(escapeControls("a\nb\rc\td"), "a\\nb\\rc\\td");
  assert.equal(escapeControls("\u0000\u001b[2J\u007f\u0085\u009b"), "\\x00\\x1b[2J\\x7f\\x85\\x9b");
  assert.equal(escapeControls("x\u2028y\u2029z"), "x\\u2028y\\u2029z");
  assert.equal(escapeControls("\u202egnp.exe\u2066\u2069"), "\\u202egnp.exe\\u2066\\u2069");
  for (let code = 0; code < 0x10000; code++) {
    const out = escapeControls(String.fromCharCode(code));
    assert.ok(!/[\n\r\u2028\u2029]/.test(out), `U+${code.toString(16)} stays escaped`);
  }
});

Deno.test("`escapeControls()` keeps printable text, quotes, backslashes and non-ASCII as is", () => {
  const text = `rejected "Zoë" from 127.0.0.1:5000 (\\ path) 日本 🙂`;
  assert.equal(escapeControls(text), text);
});

Deno.test("`jsonLogLine()` writes time, level, server_id, msg, then the fields", () => {
  const line = jsonLogLine({
    time: new Date(Date.UTC(2024, 0, 2, 3, 4, 5, 6)),
    level: "warn",
    serverId: "srv",
    message: "link to server abc closed",
    fields: { event: "link_down", peer_server_id: "abc", msg: "ignored", skipped: undefined },
  });
  assert.equal(
    line,
    '{"time":"2024-01-02T03:04:05.006Z","level":"warn","server_id":"srv",' +
      '"msg":"link to server abc closed","event":"link_down","peer_server_id":"abc"}',
  );
});

Deno.test("`jsonLogLine()` escapes what could split or disguise a line and parses back", () => {
  const message = 'a\nb\r"c"\u0000\u007f\u0085\u2028\u2029\u202e\u2066 é';
  const line = jsonLogLine({ time: new Date(0), level: "info", serverId: undefined, message });
  assert.ok(!/[\p{Cc}\u2028\u2029\u202a-\u202e\u2066-\u2069]/u.test(line), line);
  const value = JSON.parse(line);
  assert.equal(value.msg, message);
  assert.equal(value.server_id, null);
});
