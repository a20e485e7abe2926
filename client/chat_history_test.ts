import assert from "node:assert/strict";
import { join } from "node:path";
import { ChatHistory, conversationOf, PUBLIC_CONVERSATION } from "./chat_history.ts";
import type { ClientEvent } from "./events.ts";

const ME = "11111111-1111-4111-8111-111111111111";
const BOB = "22222222-2222-4222-8222-222222222222";
const CAROL = "33333333-3333-4333-8333-333333333333";

function dm(from: string, text: string, ts: number): ClientEvent {
  return { event: "dm", from, from_name: "x", text, verified: true, trusted: true, ts };
}

Deno.test("ChatHistory keeps messages per conversation, in a private file that survives a restart", async () => {
  const dir = await Deno.makeTempDir({ prefix: "socp_history_test_" });
  try {
    const path = join(dir, "me.history.json");
    const history = await ChatHistory.open(path);
    history.record(ME, dm(BOB, "hi", 1));
    history.record(ME, {
      event: "sent",
      kind: "dm",
      to: BOB,
      to_name: "bob",
      recipients: 1,
      parts: 1,
      ts: 2,
      text: "hello",
    });
    history.record(ME, {
      event: "all",
      from: CAROL,
      from_name: "carol",
      text: "lunch?",
      verified: true,
      trusted: true,
      encrypted: true,
      ts: 3,
    });
    history.record(ME, { event: "info", text: "not a message" });
    history.record(ME, { ...dm(BOB, "replayed", 4), history: true } as ClientEvent);
    await history.flush();
    assert.equal((await Deno.stat(path)).mode! & 0o777, 0o600);

    const again = await ChatHistory.open(path);
    assert.deepEqual(again.conversation(ME, BOB).map((e) => e.text), ["hi", "hello"]);
    assert.deepEqual(again.conversation(ME, PUBLIC_CONVERSATION).map((e) => e.text), ["lunch?"]);
    assert.deepEqual(again.recent(ME, 2).map((e) => e.text), ["hello", "lunch?"]);
    assert.deepEqual(again.conversation(CAROL, BOB), [], "per identity");
    assert.deepEqual(again.peers(ME), [{ id: BOB, name: "bob" }]);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("ChatHistory is bounded per conversation and in conversations", () => {
  const history = ChatHistory.memory({ perConversation: 3, conversations: 2 });
  for (let i = 0; i < 5; i++) history.record(ME, dm(BOB, `b${i}`, i));
  assert.deepEqual(history.conversation(ME, BOB).map((e) => e.text), ["b2", "b3", "b4"]);
  history.record(ME, dm(CAROL, "c", 10));
  history.record(ME, {
    event: "all",
    from: CAROL,
    from_name: "carol",
    text: "p",
    verified: true,
    trusted: true,
    encrypted: true,
    ts: 11,
  });
  assert.deepEqual(history.conversation(ME, BOB), [], "the least recently active one went");
  assert.equal(history.conversation(ME, CAROL).length, 1);
  history.record(ME, dm(BOB, "x".repeat(10_000), 12));
  assert.ok(history.conversation(ME, BOB)[0]!.text!.length < 5000, "long texts are cut");
});

Deno.test("ChatHistory starts afresh from a corrupt file, and says so", async () => {
  const dir = await Deno.makeTempDir({ prefix: "socp_history_test_" });
  try {
    const path = join(dir, "me.history.json");
    await Deno.writeTextFile(path, "{{{");
    const problems: string[] = [];
    const history = await ChatHistory.open(path, { onError: (m) => problems.push(m) });
    assert.match(problems[0]!, /could not be read .*starting a new one/);
    assert.deepEqual(history.recent(ME, 10), []);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("conversationOf() names the conversation of each message event", () => {
  assert.equal(conversationOf(dm(BOB, "x", 1)), BOB);
  assert.equal(
    conversationOf({
      event: "sent",
      kind: "file",
      to: BOB,
      to_name: "bob",
      recipients: 1,
      parts: 1,
    }),
    undefined,
    "files are not kept",
  );
});
