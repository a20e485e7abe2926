import assert from "node:assert/strict";
import type { ClientEvent } from "../events.ts";
import { BrowserTrustStore, type KeyValueStorage, STORAGE_KEYS } from "./browser_trust_store.ts";
import {
  conversationList,
  displayText,
  groupConversation,
  groupIdOf,
  initialState,
  isBlocked,
  MAX_MESSAGES,
  nameOf,
  PUBLIC,
  reduce,
  Store,
  type WebAction,
  type WebState,
} from "./state.ts";
import { serverUrlOf } from "./web_client.ts";

const SERVER = "ws://127.0.0.1:8765";
const ME = "11111111-1111-4111-8111-111111111111";
const BOB = "22222222-2222-4222-8222-222222222222";
const CAROL = "33333333-3333-4333-8333-333333333333";

function event(e: ClientEvent, at = 1000): WebAction {
  return { type: "event", event: e, at };
}

function run(...actions: WebAction[]): WebState {
  return actions.reduce(reduce, initialState(SERVER));
}

const READY = event({
  event: "ready",
  user_id: ME,
  display_name: "alice",
  server: SERVER,
  pinned: true,
  account: "alice",
});

Deno.test("`reduce()` goes from login through busy to ready with the user online", () => {
  let state = initialState(SERVER);
  assert.equal(state.phase, "login");
  state = reduce(state, { type: "busy", text: "Logging in as alice…" });
  assert.equal(state.phase, "connecting");
  assert.equal(state.busy, "Logging in as alice…");
  state = reduce(state, READY);
  assert.equal(state.phase, "ready");
  assert.equal(state.busy, "Logging in as alice…", "busy until the login completes");
  state = reduce(
    state,
    event({ event: "account", action: "logged_in", username: "alice", user_id: ME }),
  );
  assert.equal(state.busy, undefined);
  assert.deepEqual(state.me, {
    userId: ME,
    displayName: "alice",
    server: SERVER,
    pinned: true,
    account: "alice",
  });
  assert.deepEqual(state.online, [{ user_id: ME, display_name: "alice", self: true }]);
});

Deno.test("`reduce()` keeps a failed login's reason and returns to the login form", () => {
  const state = run(
    { type: "busy", text: "Logging in…" },
    { type: "login_failed", code: "BAD_PASSWORD", text: "Wrong username or password" },
  );
  assert.equal(state.phase, "login");
  assert.equal(state.loginError, "Wrong username or password");
  assert.equal(state.busy, undefined);
  assert.deepEqual(state.alarms, []);
  const again = reduce(state, { type: "busy", text: "Logging in…" });
  assert.equal(again.loginError, undefined);
});

Deno.test("`reduce()` turns a changed server key at login into a loud alarm that outlives the session", () => {
  let state = run({
    type: "login_failed",
    code: "SERVER_KEY_CHANGED",
    text: "The server at ws://x answered LOGIN_PARAMS without a valid signature of its pinned key",
    server: "ws://x",
  });
  assert.equal(state.alarms.length, 1);
  assert.equal(state.alarms[0]!.kind, "server");
  assert.equal(state.alarms[0]!.subject, "ws://x");
  assert.match(state.loginError!, /server's key changed/);
  state = reduce(state, { type: "closed", byUs: true });
  assert.equal(state.alarms.length, 1, "a key change stays until dismissed");
  state = reduce(state, { type: "dismiss", id: state.alarms[0]!.id });
  assert.deepEqual(state.alarms, []);
});

Deno.test("`reduce()` raises an alarm for SERVER_KEY_CHANGED while reconnecting and for a user's KEY CHANGED", () => {
  const state = run(
    READY,
    event({
      event: "error",
      code: "SERVER_KEY_CHANGED",
      detail: "SERVER KEY CHANGED for ws://x! Pinned key fp a, the server now presents fp b.",
      source: "client",
    }),
    event({
      event: "warn",
      text:
        `KEY CHANGED for bob (${BOB})! old fp 1, new fp 2; messages from this key are NOT trusted`,
    }),
  );
  assert.deepEqual(state.alarms.map((a) => [a.kind, a.subject]), [["server", undefined], [
    "user",
    BOB,
  ]]);
  assert.deepEqual(state.notices, [], "alarms are not also notices");
});

Deno.test("`reduce()` tracks presence: USER_ADVERTISE adds, USER_REMOVE removes, sorted by name", () => {
  let state = run(
    READY,
    event({ event: "presence", user_id: CAROL, display_name: "carol", online: true }),
    event({ event: "presence", user_id: BOB, display_name: "bob", online: true }),
  );
  assert.deepEqual(state.online.map((u) => u.display_name), ["alice", "bob", "carol"]);
  assert.deepEqual(conversationList(state), [PUBLIC, BOB, CAROL]);
  state = reduce(
    state,
    event({ event: "presence", user_id: BOB, display_name: "bob", online: false }),
  );
  assert.deepEqual(state.online.map((u) => u.display_name), ["alice", "carol"]);
  assert.deepEqual(conversationList(state), [PUBLIC, CAROL], "bob had no messages");
  assert.equal(state.names[BOB], "bob", "the name is remembered");
});

Deno.test("`reduce()` files a DM under its sender with the verification marks, counting it unread", () => {
  let state = run(
    READY,
    event({
      event: "dm",
      from: BOB,
      from_name: "bob",
      text: "hi alice",
      verified: true,
      trusted: true,
    }),
  );
  const conversation = state.conversations[BOB]!;
  assert.equal(conversation.unread, 1);
  assert.deepEqual(
    conversation.messages.map((m) => [m.direction, m.fromName, m.text, m.verified, m.trusted]),
    [["in", "bob", "hi alice", true, true]],
  );
  state = reduce(state, { type: "select", conversation: BOB });
  assert.equal(state.active, BOB);
  assert.equal(state.conversations[BOB]!.unread, 0);
  state = reduce(
    state,
    event({ event: "dm", from: BOB, from_name: "bob", text: "2", verified: false, trusted: false }),
  );
  assert.equal(state.conversations[BOB]!.unread, 0, "the conversation shown counts nothing");
  assert.equal(state.conversations[BOB]!.messages[1]!.verified, false);
  assert.deepEqual(conversationList(state), [PUBLIC, BOB], "offline users with messages stay");
});

Deno.test("`reduce()` puts public messages, unencrypted ones marked, in the public channel", () => {
  const state = run(
    READY,
    event({
      event: "all",
      from: BOB,
      from_name: "bob",
      text: "hello all",
      verified: true,
      trusted: true,
      encrypted: false,
    }),
  );
  const [m] = state.conversations[PUBLIC]!.messages;
  assert.equal(m!.text, "hello all");
  assert.equal(m!.encrypted, false);
});

Deno.test("`reduce()` shows an outgoing message at once and marks it sent, queued or failed", () => {
  let state = run(READY, { type: "select", conversation: BOB });
  state = reduce(state, { type: "outgoing", id: 100, to: BOB, text: "hi bob", at: 5 });
  assert.equal(state.conversations[BOB]!.messages[0]!.status, "sending");
  assert.ok(state.nextId > 100);
  state = reduce(state, event({ event: "queued", kind: "dm", to: BOB, to_name: "bob" }));
  state = reduce(state, { type: "outgoing_done", id: 100, status: "sent" });
  const messages = state.conversations[BOB]!.messages;
  assert.equal(messages[0]!.status, "queued", "ACK QUEUED wins over the later 'sent'");
  assert.match(messages[1]!.text, /bob is offline/);
  state = reduce(state, { type: "outgoing", id: 200, to: BOB, text: "again", at: 6 });
  state = reduce(state, {
    type: "outgoing_done",
    id: 200,
    status: "failed",
    error: "Not connected",
  });
  const failed = state.conversations[BOB]!.messages.find((m) => m.id === 200)!;
  assert.deepEqual([failed.status, failed.error], ["failed", "Not connected"]);
});

Deno.test("`reduce()` files a received group file under its group, not the sender's DMs", () => {
  const state = run(
    READY,
    event({
      event: "file",
      from: BOB,
      from_name: "bob",
      name: "notes.txt",
      size: 5,
      mode: "dm",
      ok: true,
      group_id: "g-1",
      group: "team",
    }),
  );
  assert.equal(state.conversations[BOB], undefined);
  const [note] = state.conversations[groupConversation("g-1")]!.messages;
  assert.equal(note!.file?.name, "notes.txt");
});

Deno.test("`reduce()` shows a received file with its download URL, or why it was refused", () => {
  const state = run(
    READY,
    event({
      event: "file",
      from: BOB,
      from_name: "bob",
      name: "report.pdf",
      size: 1234,
      mode: "dm",
      ok: true,
      path: "blob:http://127.0.0.1:8765/abc",
    }),
    event({
      event: "file",
      from: BOB,
      from_name: "bob",
      name: "evil.bin",
      size: 9,
      mode: "dm",
      ok: false,
      reason: "sha256 mismatch",
    }),
  );
  const [good, bad] = state.conversations[BOB]!.messages;
  assert.deepEqual(good!.file, {
    name: "report.pdf",
    size: 1234,
    ok: true,
    url: "blob:http://127.0.0.1:8765/abc",
  });
  assert.match(good!.text, /SHA-256 checked/);
  assert.deepEqual(bad!.file, { name: "evil.bin", size: 9, ok: false, reason: "sha256 mismatch" });
  assert.match(bad!.text, /refused: sha256 mismatch/);
});

Deno.test("`reduce()` tracks file progress until the transfer ends", () => {
  let state = run(
    READY,
    event({ event: "file_progress", direction: "receive", name: "a.bin", peer: BOB, percent: 40 }),
  );
  assert.deepEqual(Object.values(state.transfers).map((t) => t.percent), [40]);
  state = reduce(
    state,
    event({
      event: "file",
      from: BOB,
      from_name: "bob",
      name: "a.bin",
      size: 1,
      mode: "dm",
      ok: true,
      path: "blob:x",
    }),
  );
  assert.deepEqual(state.transfers, {});
});

Deno.test("`reduce()` follows a drop and a reconnect to another server", () => {
  let state = run(
    READY,
    event({ event: "disconnected", server: SERVER, code: 1006, reason: "" }),
  );
  assert.equal(state.phase, "reconnecting");
  state = reduce(state, event({ event: "reconnected", server: "ws://127.0.0.1:9999" }));
  assert.equal(state.phase, "ready");
  assert.equal(state.server, "ws://127.0.0.1:9999");
  assert.equal(state.me!.server, "ws://127.0.0.1:9999");
});

Deno.test("`reduce()` forgets the session on close but tells why when it was not a logout", () => {
  const chatting = run(
    READY,
    event({ event: "dm", from: BOB, from_name: "bob", text: "x", verified: true, trusted: true }),
  );
  const loggedOut = reduce(chatting, { type: "closed", byUs: true });
  assert.equal(loggedOut.phase, "login");
  assert.equal(loggedOut.me, undefined);
  assert.deepEqual(Object.keys(loggedOut.conversations), [PUBLIC]);
  assert.deepEqual(loggedOut.notices, []);
  const lost = reduce(chatting, { type: "closed", byUs: false, reason: "Gone; log in again" });
  assert.equal(lost.phase, "closed");
  assert.deepEqual(lost.notices.map((n) => n.text), ["Gone; log in again"]);
});

Deno.test("`reduce()` keeps at most MAX_MESSAGES lines per conversation", () => {
  let state = run(READY);
  for (let i = 0; i < MAX_MESSAGES + 5; i++) {
    state = reduce(
      state,
      event({
        event: "all",
        from: BOB,
        from_name: "bob",
        text: `${i}`,
        verified: true,
        trusted: true,
        encrypted: true,
      }),
    );
  }
  const messages = state.conversations[PUBLIC]!.messages;
  assert.equal(messages.length, MAX_MESSAGES);
  assert.equal(messages[0]!.text, "5");
});

Deno.test("`displayText()` defuses controls and bidi overrides but keeps newlines", () => {
  assert.equal(displayText("a\nb\tc"), "a\nb\tc");
  assert.equal(displayText("x\u202ey\x1b[2J"), "x\\u{202e}y\\u{1b}[2J");
  const state = run(
    READY,
    event({
      event: "dm",
      from: BOB,
      from_name: "b\u202eob",
      text: "\x07",
      verified: true,
      trusted: true,
    }),
  );
  const [m] = state.conversations[BOB]!.messages;
  assert.equal(m!.fromName, "b\\u{202e}ob");
  assert.equal(m!.text, "\\u{7}");
});

Deno.test("`Store` notifies subscribers only when the state changes", () => {
  const store = new Store(initialState(SERVER));
  const seen: string[] = [];
  const stop = store.subscribe((s) => seen.push(s.phase));
  store.dispatch({ type: "busy", text: "…" });
  store.dispatch(
    event({ event: "sent", kind: "dm", to: BOB, to_name: "bob", recipients: 1, parts: 1 }),
  );
  stop();
  store.dispatch(READY);
  assert.deepEqual(seen, ["connecting"]);
  assert.equal(store.state.phase, "ready");
  const a = store.takeId();
  assert.equal(store.takeId(), a + 1);
});

function memoryStorage(): KeyValueStorage & { data: Map<string, string> } {
  const data = new Map<string, string>();
  return {
    data,
    getItem: (k) => data.get(k) ?? null,
    setItem: (k, v) => void data.set(k, v),
  };
}

Deno.test("`BrowserTrustStore` keeps server and user pins across page loads", () => {
  const storage = memoryStorage();
  const first = new BrowserTrustStore(storage);
  first.pinServer(SERVER, { server_id: "s1", pubkey: "KEY1" });
  first.pinUserKey(BOB, "BOBKEY");
  const second = new BrowserTrustStore(storage);
  assert.deepEqual(second.serverPin(SERVER), { server_id: "s1", pubkey: "KEY1" });
  assert.equal(second.userKey(BOB), "BOBKEY");
  assert.equal(second.serverPin("ws://other"), undefined);
  assert.equal(second.forgetServer(SERVER), true);
  assert.equal(second.forgetUser(BOB), true);
  assert.equal(second.forgetUser(BOB), false);
  const third = new BrowserTrustStore(storage);
  assert.equal(third.serverPin(SERVER), undefined);
  assert.equal(third.userKey(BOB), undefined);
});

Deno.test("`BrowserTrustStore` ignores malformed storage and survives a full one", () => {
  const storage = memoryStorage();
  storage.data.set(STORAGE_KEYS.servers, "not json");
  storage.data.set(STORAGE_KEYS.users, JSON.stringify({ [BOB]: 5, [CAROL]: "OK" }));
  const store = new BrowserTrustStore(storage);
  assert.equal(store.serverPin(SERVER), undefined);
  assert.equal(store.userKey(BOB), undefined);
  assert.equal(store.userKey(CAROL), "OK");
  const full = new BrowserTrustStore({
    getItem: () => null,
    setItem: () => {
      throw new DOMException("full", "QuotaExceededError");
    },
  });
  full.pinUserKey(BOB, "K");
  assert.equal(full.userKey(BOB), "K", "the pin holds for this page");
  assert.equal(full.failed, true);
});

Deno.test("`serverUrlOf()` derives the WebSocket URL from the page's location", () => {
  assert.equal(serverUrlOf({ protocol: "http:", host: "127.0.0.1:8765" }), SERVER);
  assert.equal(serverUrlOf({ protocol: "https:", host: "chat.example" }), "wss://chat.example");
});

Deno.test("`reduce()` keeps the block list from `blocks` events, quietly for the initial list", () => {
  let state = run(
    READY,
    event({
      event: "blocks",
      action: "list",
      blocked: [{ user_id: CAROL, display_name: "carol" }],
    }),
  );
  assert.deepEqual(state.blocked, [CAROL]);
  assert.deepEqual(state.notices, []);
  state = reduce(
    state,
    event({
      event: "blocks",
      action: "blocked",
      user_id: BOB,
      display_name: "bob",
      blocked: [{ user_id: BOB, display_name: "bob" }, { user_id: CAROL, display_name: "carol" }],
    }),
  );
  assert.ok(isBlocked(state, BOB));
  assert.match(state.notices[0]!.text, /^blocked bob/);
});

Deno.test("`reduce()` lists groups as conversations and files group messages under them", () => {
  const G = "44444444-4444-4444-8444-444444444444";
  let state = run(
    READY,
    event({
      event: "groups",
      groups: [{
        group_id: G,
        name: "team",
        creator_id: ME,
        members: [
          { user_id: ME, display_name: "alice", online: true, creator: true },
          { user_id: BOB, display_name: "bob", online: false, creator: false },
        ],
      }],
    }),
  );
  assert.deepEqual(conversationList(state), [PUBLIC, groupConversation(G)]);
  assert.equal(nameOf(state, groupConversation(G)), "# team");
  assert.equal(groupIdOf(groupConversation(G)), G);
  state = reduce(
    state,
    event({
      event: "group_message",
      group_id: G,
      group: "team",
      from: BOB,
      from_name: "bob",
      text: "hi team",
      verified: true,
      trusted: true,
    }),
  );
  assert.equal(state.conversations[groupConversation(G)]!.messages[0]!.text, "hi team");
  state = reduce(
    state,
    event({
      event: "group_change",
      group_id: G,
      group: "team",
      action: "left",
      user_id: ME,
      user_name: "alice",
      by: ME,
      by_name: "alice",
      self: true,
      by_self: true,
      members: [{ user_id: BOB, display_name: "bob" }],
    }),
  );
  assert.deepEqual(state.groups, {});
});

Deno.test("`reduce()` stays busy while a new identity registers, until the account event", () => {
  let state = run(READY, { type: "busy", text: "Registering the account…" });
  assert.equal(state.phase, "ready");
  assert.equal(state.busy, "Registering the account…", "the chat is not shown yet");
  state = reduce(
    state,
    event({ event: "account", action: "registered", username: "alice", user_id: ME }),
  );
  assert.equal(state.busy, undefined);
  assert.equal(state.me!.account, "alice");
});
