/**
 * Tests of social_events.ts: the one-line text of the social events.
 *
 * @module
 */

import assert from "node:assert/strict";
import { formatEvent } from "./events.ts";
import type { GroupChangeEvent } from "./social_events.ts";

const BOB = "22222222-2222-4222-8222-222222222222";
const ALICE = "11111111-1111-4111-8111-111111111111";

Deno.test("formatEvent() writes the social events on one line", () => {
  assert.equal(
    formatEvent({ event: "whoelse", users: [{ user_id: BOB, display_name: "bob" }] }),
    "[whoelse] 1 other online: bob (22222222)",
  );
  assert.equal(formatEvent({ event: "whoelse", users: [] }), "[whoelse] nobody else is online");
  assert.equal(
    formatEvent({
      event: "whoelsesince",
      seconds: 60,
      users: [{ user_id: BOB, display_name: "bob", online: false, last_seen: 1, seconds_ago: 12 }],
    }),
    "[whoelsesince] 1 user online in the last 60 s: bob (22222222) last seen 12 s ago",
  );
  assert.equal(
    formatEvent({
      event: "not_delivered",
      reason: "blocked",
      kind: "message",
      to: BOB,
      to_name: "bob",
      count: 1,
    }),
    "[error] not delivered: bob has blocked you",
  );
  assert.equal(
    formatEvent({ event: "not_delivered", reason: "blocked", kind: "broadcast", count: 2 }),
    "[warn] not delivered to 2 users: they have blocked you",
  );
  assert.equal(
    formatEvent({ event: "random", to: BOB, to_name: "bob" }),
    "[random] your message went to bob (22222222)",
  );
  const added: GroupChangeEvent = {
    event: "group_change",
    group_id: "g",
    group: "team",
    action: "created",
    user_id: ALICE,
    user_name: "alice",
    by: ALICE,
    by_name: "alice",
    self: false,
    by_self: false,
    members: [{ user_id: ALICE, display_name: "alice" }, { user_id: BOB, display_name: "bob" }],
  };
  assert.equal(
    formatEvent(added),
    "[group] you were added to team by alice (members: alice, bob)",
  );
  assert.equal(
    formatEvent({ ...added, action: "left", user_id: BOB, user_name: "bob" }),
    "[group] bob left team",
  );
  assert.equal(
    formatEvent({
      event: "group_message",
      group_id: "g",
      group: "team",
      from: ALICE,
      from_name: "alice",
      text: "hi\nthere",
      verified: true,
      trusted: true,
    }),
    "[team] alice: hi\\nthere",
  );
  assert.equal(
    formatEvent({ event: "private_message", from: BOB, from_name: "bob", text: "psst" }),
    "[private] bob: psst",
  );
  assert.match(
    formatEvent({
      event: "private",
      action: "invited",
      peer: BOB,
      peer_name: "bob",
      address: "127.0.0.1:4000",
    }),
    /^\[private\] bob asks for a private chat .*127\.0\.0\.1:4000; \/accept bob/,
  );
  const multi = formatEvent({
    event: "blocks",
    action: "list",
    blocked: [{ user_id: BOB, display_name: "bob" }],
  }, { multiline: true });
  assert.equal(multi, "[blocks] you have blocked 1 user:\n  bob (22222222)");
});
