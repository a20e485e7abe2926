/**
 * Tests of presence_history.ts: `/whoelse` and `/whoelsesince`.
 *
 * @module
 */

import assert from "node:assert/strict";
import { connected, IDS, rejectsWith } from "./_test_util.ts";
import { CommandError } from "./errors.ts";
import { MAX_SINCE_SECONDS, parseSeconds } from "./presence_history.ts";

Deno.test("whoElse() lists the users of a fresh LIST_RESPONSE except yourself", async () => {
  await using h = await connected();
  const asking = h.session.whoElse();
  await h.server.nextOf("LIST_REQUEST");
  await h.server.send("LIST_RESPONSE", {
    users: [IDS.alice, IDS.carol, IDS.bob],
    display_names: { [IDS.alice]: "alice", [IDS.bob]: "bob", [IDS.carol]: "Carol" },
  });
  assert.deepEqual(await asking, [
    { user_id: IDS.bob, display_name: "bob" },
    { user_id: IDS.carol, display_name: "Carol" },
  ]);
});

Deno.test("whoElseSince() asks PRESENCE_SINCE_REQUEST and lists online users first", async () => {
  await using h = await connected();
  const asking = h.session.whoElseSince(60);
  const req = await h.server.nextOf("PRESENCE_SINCE_REQUEST");
  assert.deepEqual(req.payload, { seconds: 60 });
  const now = Date.now();
  await h.server.send("PRESENCE_SINCE_RESPONSE", {
    seconds: 60,
    users: [
      { user_id: IDS.alice, display_name: "alice", online: true, last_seen: now },
      { user_id: IDS.bob, display_name: "bob", online: false, last_seen: now - 20_000 },
      { user_id: IDS.carol, display_name: "carol", online: true, last_seen: now },
    ],
  });
  const users = await asking;
  assert.deepEqual(users.map((u) => [u.display_name, u.online]), [["carol", true], [
    "bob",
    false,
  ]]);
  assert.ok(users[1]!.seconds_ago >= 19 && users[1]!.seconds_ago <= 25);
});

Deno.test("parseSeconds() takes whole numbers and says what is wrong with the rest", () => {
  assert.equal(parseSeconds(" 300 "), 300);
  assert.equal(parseSeconds("0"), 0);
  for (const bad of ["ten", "-5", "1.5", "1e3", ""]) {
    assert.throws(() => parseSeconds(bad), CommandError, bad.trim());
  }
  assert.throws(() => parseSeconds(String(MAX_SINCE_SECONDS + 1)), /at most 31622400/);
});

Deno.test("whoElseSince() refuses a bad number before asking", async () => {
  await using h = await connected();
  await rejectsWith(() => h.session.whoElseSince(-1), CommandError, "not a number of seconds");
});
