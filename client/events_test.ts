import assert from "node:assert/strict";
import { cleanText, type ClientEvent, formatEvent } from "./events.ts";

const BOB = "22222222-2222-4222-8222-222222222222";
const ME = "11111111-1111-4111-8111-111111111111";

Deno.test("formatEvent() gives the documented one-line formats", () => {
  const cases: [ClientEvent, string][] = [
    [
      { event: "ready", user_id: ME, display_name: "alice", server: "ws://h:1", pinned: true },
      `[ready] connected as alice (${ME}) to ws://h:1`,
    ],
    [
      { event: "dm", from: BOB, from_name: "bob", text: "hi", verified: true, trusted: true },
      "[dm] bob (22222222): hi",
    ],
    [
      { event: "dm", from: BOB, from_name: "bob", text: "hi", verified: false, trusted: false },
      "[dm] [unverified] bob (22222222): hi",
    ],
    [
      { event: "dm", from: BOB, from_name: "bob", text: "hi", verified: true, trusted: false },
      "[dm] [UNTRUSTED KEY] bob (22222222): hi",
    ],
    [
      {
        event: "all",
        from: BOB,
        from_name: "bob",
        text: "yo",
        verified: true,
        trusted: true,
        encrypted: true,
      },
      "[all] bob: yo",
    ],
    [
      {
        event: "all",
        from: BOB,
        from_name: "bob",
        text: "yo",
        verified: true,
        trusted: true,
        encrypted: false,
      },
      "[all] [unencrypted] bob: yo",
    ],
    [
      {
        event: "file",
        from: BOB,
        from_name: "bob",
        name: "r.pdf",
        size: 12,
        mode: "dm",
        ok: true,
        path: "/d/r.pdf",
      },
      '[file] received "r.pdf" (12 bytes, sha256 ok) from bob: saved to /d/r.pdf',
    ],
    [
      {
        event: "file",
        from: BOB,
        from_name: "bob",
        name: "r.pdf",
        size: 12,
        mode: "dm",
        ok: false,
        reason: "sha256 mismatch",
      },
      '[error] file "r.pdf" from bob (22222222) rejected: sha256 mismatch; not saved',
    ],
    [
      { event: "error", code: "USER_NOT_FOUND", detail: "no such user", source: "server" },
      "[error] USER_NOT_FOUND: no such user",
    ],
    [{
      event: "error",
      code: "CONNECTION_CLOSED",
      detail: "connection closed (1006)",
      source: "client",
    }, "[error] connection closed (1006)"],
    [
      { event: "presence", user_id: BOB, display_name: "bob", online: false },
      "[presence] bob (22222222) is offline",
    ],
    [
      { event: "sent", kind: "dm", to: BOB, to_name: "bob", recipients: 1, parts: 2 },
      "[sent] dm to bob (22222222) in 2 parts",
    ],
    [
      { event: "sent", kind: "all", to: "public", to_name: "public", recipients: 3, parts: 1 },
      "[sent] all to 3 users",
    ],
    [
      {
        event: "sent",
        kind: "file",
        to: BOB,
        to_name: "bob",
        recipients: 1,
        parts: 1,
        name: "a",
        size: 5,
      },
      '[sent] file "a" (5 bytes) to bob (22222222)',
    ],
    [
      { event: "file_progress", direction: "send", name: "report.pdf", peer: BOB, percent: 42 },
      "[file] report.pdf 42%",
    ],
  ];
  for (const [event, line] of cases) assert.equal(formatEvent(event), line);
});

Deno.test("formatEvent() prints /list on one line, or several on a terminal", () => {
  const e: ClientEvent = {
    event: "list",
    users: [
      { user_id: ME, display_name: "alice", self: true },
      { user_id: BOB, display_name: "bob", self: false },
    ],
  };
  assert.equal(formatEvent(e), `[list] 2 online: alice (${ME}) [you], bob (${BOB})`);
  assert.equal(
    formatEvent(e, { multiline: true }),
    `[list] 2 online:\n  alice (${ME}) [you]\n  bob (${BOB})`,
  );
});

Deno.test("formatEvent() keeps hostile text on one line without escape sequences", () => {
  const line = formatEvent({
    event: "dm",
    from: BOB,
    from_name: "bo\x1b[31mb",
    text: "line1\nline2\r\x07\u202e",
    verified: true,
    trusted: true,
  });
  // deno-lint-ignore no-control-regex
  assert.ok(!/[\x00-\x1f\x7f]/.test(line), line);
  assert.equal(line, "[dm] bo\\u{1b}[31mb (22222222): line1\\nline2\\r\\u{7}\\u{202e}");
  assert.equal(cleanText("tab\tok é"), "tab\tok é");
});

Deno.test("formatEvent() renders account, accounts and queued events on one line", () => {
  assert.equal(
    formatEvent({ event: "account", action: "registered", username: "alice" }),
    '[info] registered account "alice"',
  );
  assert.equal(
    formatEvent({ event: "account", action: "logged_out" }),
    "[info] logged out; /login <username> or /quit",
  );
  assert.equal(
    formatEvent({ event: "account", action: "deleted", username: "bob" }),
    '[info] account "bob" deleted',
  );
  const accounts = [
    { username: "alice", user_id: "u1", online: true },
    { username: "bob", user_id: "u2", online: false },
  ];
  assert.equal(
    formatEvent({ event: "accounts", pattern: "*", accounts }),
    '[accounts] 2 matching "*": alice (online), bob',
  );
  assert.equal(
    formatEvent({ event: "accounts", pattern: "z*", accounts: [] }),
    '[accounts] no account matches "z*"',
  );
  assert.equal(
    formatEvent({ event: "accounts", pattern: "*", accounts }, { multiline: true }),
    '[accounts] 2 matching "*":\n  alice (online)\n  bob',
  );
  assert.equal(
    formatEvent({ event: "queued", kind: "dm", to: "u2", to_name: "bob" }),
    "[info] bob is offline; the message is queued for delivery",
  );
  assert.equal(
    formatEvent({ event: "queued", kind: "file", to: "u2", to_name: "bob", name: "a.txt" }),
    '[info] bob is offline; the file "a.txt" is queued for delivery',
  );
});
