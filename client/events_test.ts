import assert from "node:assert/strict";
import { cleanText, type ClientEvent, formatEvent } from "./events.ts";
import { clockTime, userColor } from "./style.ts";

const BOB = "22222222-2222-4222-8222-222222222222";
const ME = "11111111-1111-4111-8111-111111111111";
/** 12:03 local time on some day, and "now" a minute later. */
const T = new Date(2026, 0, 15, 12, 3).getTime();
const NOW = T + 60_000;

Deno.test("formatEvent() gives the documented one-line formats", () => {
  const cases: [ClientEvent, string][] = [
    [
      { event: "ready", user_id: ME, display_name: "alice", server: "ws://h:1", pinned: true },
      `[ready] connected as alice (${ME}) to ws://h:1`,
    ],
    [
      { event: "reconnected", server: "ws://127.0.0.1:8766" },
      "[info] reconnected via ws://127.0.0.1:8766",
    ],
    [
      { event: "disconnected", server: "ws://h:1", code: 1006, reason: "" },
      "[warn] lost the connection to ws://h:1 (1006); reconnecting, and what you send is queued until then",
    ],
    [
      {
        event: "sent",
        kind: "dm",
        to: BOB,
        to_name: "bob",
        recipients: 1,
        parts: 1,
        pending: true,
        ts: T,
        text: "hello",
      },
      "12:03 me → bob: hello (queued until the client reconnects)",
    ],
    [
      {
        event: "dm",
        from: BOB,
        from_name: "bob",
        text: "hi",
        verified: true,
        trusted: true,
        ts: T,
      },
      "12:03 bob (22222222) → me: hi",
    ],
    [
      {
        event: "dm",
        from: BOB,
        from_name: "bob",
        text: "hi",
        verified: false,
        trusted: false,
        ts: T,
      },
      "12:03 [unverified] bob (22222222) → me: hi",
    ],
    [
      {
        event: "dm",
        from: BOB,
        from_name: "bob",
        text: "hi",
        verified: true,
        trusted: false,
        ts: T,
      },
      "12:03 [UNTRUSTED KEY] bob (22222222) → me: hi",
    ],
    [
      {
        event: "dm",
        from: BOB,
        from_name: "bob",
        text: "waves",
        verified: true,
        trusted: true,
        ts: T,
        action: true,
      },
      "12:03 bob (22222222) → me: * bob waves",
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
        ts: T,
      },
      "12:03 bob → all: yo",
    ],
    [
      {
        event: "all",
        from: BOB,
        from_name: "bob",
        text: "waves",
        verified: true,
        trusted: true,
        encrypted: true,
        ts: T,
        action: true,
      },
      "12:03 * bob waves",
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
        ts: T,
      },
      "12:03 [unencrypted] bob → all: yo",
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
      '12:04 bob → me: file "r.pdf" (12 bytes, sha256 ok), saved to /d/r.pdf',
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
      {
        event: "sent",
        kind: "dm",
        to: BOB,
        to_name: "bob",
        recipients: 1,
        parts: 2,
        ts: T,
        text: "long",
      },
      "12:03 me → bob: long",
    ],
    [
      {
        event: "sent",
        kind: "all",
        to: "public",
        to_name: "public",
        recipients: 3,
        parts: 1,
        ts: T,
        text: "hi all",
      },
      "12:03 me → all: hi all",
    ],
    [
      {
        event: "sent",
        kind: "all",
        to: "public",
        to_name: "public",
        recipients: 3,
        parts: 1,
        ts: T,
        text: "waves",
        action: true,
        from_name: "alice",
      },
      "12:03 * alice waves",
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
        ts: T,
      },
      '12:03 me → bob: file "a" (5 bytes)',
    ],
    [
      { event: "file_progress", direction: "send", name: "report.pdf", peer: BOB, percent: 42 },
      "[file] report.pdf 42%",
    ],
  ];
  for (const [event, line] of cases) assert.equal(formatEvent(event, { now: NOW }), line);
});

Deno.test("formatEvent() shows when a message was sent: the date when not today, and a late arrival", () => {
  const dm: ClientEvent = {
    event: "dm",
    from: BOB,
    from_name: "bob",
    text: "sent while you were away",
    verified: true,
    trusted: true,
    ts: T,
  };
  const later = T + 2 * 86_400_000;
  assert.equal(
    formatEvent(dm, { now: later }),
    `2026-01-15 12:03 bob (22222222) → me: sent while you were away (arrived ${
      clockTime(later, later)
    })`,
  );
  assert.equal(clockTime(T, NOW), "12:03");
  // Replayed from the kept history: no "arrived" note.
  assert.equal(
    formatEvent({ ...dm, history: true }, { now: later }),
    "2026-01-15 12:03 bob (22222222) → me: sent while you were away",
  );
});

Deno.test("formatEvent() colours: a stable colour per user, red errors, yellow warnings, dim own lines", () => {
  const color = { now: NOW, color: true };
  const dm: ClientEvent = {
    event: "dm",
    from: BOB,
    from_name: "bob",
    text: "hi",
    verified: true,
    trusted: true,
    ts: T,
  };
  const bob = `\x1b[${userColor(BOB)}mbob\x1b[0m`;
  assert.equal(
    formatEvent(dm, color),
    `\x1b[2m12:03\x1b[0m ${bob} \x1b[2m(22222222)\x1b[0m → me: hi`,
  );
  assert.equal(userColor(BOB), userColor(BOB), "the same colour every time");
  assert.equal(
    formatEvent({ event: "error", code: "X", detail: "boom", source: "server" }, color),
    "\x1b[31m[error] X: boom\x1b[0m",
  );
  assert.equal(
    formatEvent({ event: "warn", text: "careful" }, color),
    "\x1b[33m[warn] careful\x1b[0m",
  );
  const sent: ClientEvent = {
    event: "sent",
    kind: "dm",
    to: BOB,
    to_name: "bob",
    recipients: 1,
    parts: 1,
    ts: T,
    text: "yo",
  };
  assert.equal(formatEvent(sent, color), "\x1b[2m12:03\x1b[0m \x1b[2mme → bob: yo\x1b[0m");
  // Without colour (NO_COLOR, not a terminal): no escape sequence at all.
  // deno-lint-ignore no-control-regex
  assert.ok(!/\x1b/.test(formatEvent(dm, { now: NOW }) + formatEvent(sent, { now: NOW })));
});

Deno.test("formatEvent() says when a user changed the display name", () => {
  assert.equal(
    formatEvent({
      event: "presence",
      user_id: BOB,
      display_name: "Robert",
      online: true,
      previous_name: "bob",
    }),
    "[presence] bob (22222222) is now Robert",
  );
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
    ts: T,
  }, { now: NOW });
  // deno-lint-ignore no-control-regex
  assert.ok(!/[\x00-\x1f\x7f]/.test(line), line);
  assert.equal(
    line,
    "12:03 bo\\u{1b}[31mb (22222222) → me: line1\\nline2\\r\\u{7}\\u{202e}",
  );
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
