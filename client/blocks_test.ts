/**
 * Tests of blocks.ts (`/block`, `/unblock`, `/blocks`) and blocked_answers.ts (ERROR BLOCKED).
 *
 * @module
 */

import assert from "node:assert/strict";
import { verifyBlockList } from "../shared/mod.ts";
import { advertise, connected, type Harness, IDS, rejectsWith } from "./_test_util.ts";
import { BlockedAnswers, blockerName } from "./blocked_answers.ts";
import type { ClientEvent } from "./events.ts";
import { CommandError, ServerError } from "./errors.ts";

/** Answers the BLOCKS_REQUEST the client sends next. */
async function answerList(h: Harness, blocked: string[], seq: number): Promise<void> {
  await h.server.nextOf("BLOCKS_REQUEST");
  await h.server.send("BLOCKS_RESPONSE", { blocked, seq });
}

Deno.test("block() signs the whole new list with a seq above the server's and the clock", async () => {
  await using h = await connected();
  await advertise(h, IDS.bob, "bob", "user1");
  await advertise(h, IDS.carol, "carol", "user2");
  const future = Date.now() + 10_000_000;
  const blocking = h.session.block("bob");
  await answerList(h, [IDS.carol], future);
  const set = await h.server.nextOf("BLOCKS_SET");
  const p = set.payload as { blocked: string[]; seq: number; sig: string };
  assert.deepEqual(p.blocked, [IDS.bob, IDS.carol].sort());
  assert.equal(p.seq, future + 1);
  const list = { user_id: IDS.alice, blocked: p.blocked, seq: p.seq };
  assert.ok(await verifyBlockList(h.keys.publicKey, list, p.sig), "signed by the owner");
  await h.server.send("ACK", { msg_ref: "BLOCKS_OK", seq: p.seq });
  await blocking;
  const event = await h.events.wait("blocks");
  assert.equal(event.action, "blocked");
  assert.equal(event.display_name, "bob");
  assert.deepEqual(event.blocked.map((u) => u.display_name).sort(), ["bob", "carol"]);

  // With an old seq on the server, the next one is the time now.
  const before = Date.now();
  const unblocking = h.session.unblock("carol");
  await answerList(h, p.blocked, 5);
  const next = (await h.server.nextOf("BLOCKS_SET")).payload as { blocked: string[]; seq: number };
  assert.deepEqual(next.blocked, [IDS.bob]);
  assert.ok(next.seq >= before && next.seq <= Date.now());
  await h.server.send("ACK", { msg_ref: "BLOCKS_OK", seq: next.seq });
  await unblocking;
  assert.equal((await h.events.wait("blocks", (e) => e.action === "unblocked")).user_id, IDS.carol);
});

Deno.test("block() refuses yourself and unknown users without sending a list", async () => {
  await using h = await connected();
  await rejectsWith(() => h.session.block("alice"), CommandError, "cannot block yourself");
  const unknown = h.session.block("nobody");
  await h.server.nextOf("LIST_REQUEST");
  await h.server.send("LIST_RESPONSE", { users: [IDS.alice], display_names: {} });
  await h.server.nextOf("ACCOUNTS_REQUEST");
  await h.server.send("ACCOUNTS_RESPONSE", { pattern: "nobody", accounts: [] });
  await rejectsWith(() => unknown, CommandError, 'Unknown user "nobody"');
  // The server's verdict is passed on as a ServerError.
  const stranger = crypto.randomUUID();
  const refused = h.session.block(stranger);
  await answerList(h, [], 0);
  await h.server.nextOf("BLOCKS_SET");
  await h.server.send("ERROR", { code: "USER_NOT_FOUND", detail: `Unknown user "${stranger}"` });
  const e = await rejectsWith(() => refused, ServerError, "Unknown user");
  assert.equal(e.code, "USER_NOT_FOUND");
  assert.equal(h.events.of("error").length, 0, "the refusal is the command's answer");
});

Deno.test("unblock() finds blocked users by name even when offline, and refuses others", async () => {
  await using h = await connected();
  await advertise(h, IDS.bob, "bob", "user1");
  await h.server.send("USER_REMOVE", { user_id: IDS.bob }, { to: "*" });
  await h.events.wait("presence", (e) => !e.online);
  const unblocking = h.session.unblock("bob");
  await answerList(h, [IDS.bob], 7);
  const set = await h.server.nextOf("BLOCKS_SET");
  assert.deepEqual(set.payload["blocked"], []);
  await h.server.send("ACK", { msg_ref: "BLOCKS_OK", seq: set.payload["seq"] as number });
  await unblocking;
  const list = h.session.blockList();
  await answerList(h, [], 8);
  assert.deepEqual(await list, []);
  const again = h.session.unblock(IDS.bob);
  await answerList(h, [], 8);
  await rejectsWith(() => again, CommandError, "is not blocked");
});

Deno.test("ERROR BLOCKED nobody waits for becomes one not_delivered event naming the blocker", async () => {
  await using h = await connected();
  await h.server.send("ERROR", { code: "BLOCKED", detail: "Not delivered: bob has blocked you" });
  const e = await h.events.wait("not_delivered");
  assert.deepEqual([e.to_name, e.kind, e.count], ["bob", "message", 1]);
  assert.equal(h.events.of("error").length, 0);
});

Deno.test("BlockedAnswers attributes refusals to the watching send by name or id", () => {
  const events: ClientEvent[] = [];
  const names: Record<string, string> = { b1: "bob", c1: "carol" };
  const answers = new BlockedAnswers({
    onEvent: (e) => events.push(e),
    nameOf: (id) => names[id] ?? id,
  });
  assert.equal(blockerName("Not delivered: Bob Smith has blocked you"), "Bob Smith");
  assert.equal(blockerName("something else"), undefined);
  const group = answers.watch(["b1", "c1"]);
  const single = answers.watch(["d1"]);
  answers.onBlocked("Not delivered: carol has blocked you");
  answers.onBlocked("Not delivered: carol has blocked you");
  answers.onBlocked("Not delivered: d1 has blocked you");
  assert.deepEqual(group.refused, ["c1"]);
  assert.deepEqual(single.refused, ["d1"]);
  answers.unwatch(single);
  // One watch left: a name it cannot place is still its answer.
  answers.onBlocked("Not delivered: somebody has blocked you");
  assert.deepEqual(group.unknown, ["somebody"]);
  assert.equal(answers.report(group, "group", { group: "team" }), 2);
  assert.deepEqual(
    events.map((e) => e.event === "not_delivered" ? [e.to_name, e.group] : []),
    [["carol", "team"], ["somebody", "team"]],
  );
  answers.unwatch(group);
  answers.onBlocked("Not delivered: d1 has blocked you");
  assert.equal(events.length, 3, "unwatched: reported at once");
});
