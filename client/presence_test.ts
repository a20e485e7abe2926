/**
 * Tests of presence.ts: `/list`, USER_REMOVE, finding users by name.
 *
 * @module
 */

import assert from "node:assert/strict";
import { advertise, connected, IDS } from "./_test_util.ts";
import { CommandError } from "./errors.ts";

Deno.test("list() sends LIST_REQUEST and merges LIST_RESPONSE, sorted, with yourself marked", async () => {
  await using h = await connected();
  await advertise(h, IDS.carol, "Carol", "user2");
  const listing = h.session.list();
  const req = await h.server.nextOf("LIST_REQUEST");
  assert.deepEqual(req.payload, {});
  await h.server.send("LIST_RESPONSE", {
    online_users: [IDS.alice, IDS.bob, IDS.carol],
    users: [IDS.alice, IDS.bob, IDS.carol],
    display_names: { [IDS.bob]: "bob", [IDS.alice]: "alice", [IDS.carol]: "Carol" },
  });
  assert.deepEqual(await listing, [
    { user_id: IDS.alice, display_name: "alice", self: true },
    { user_id: IDS.bob, display_name: "bob", self: false },
    { user_id: IDS.carol, display_name: "Carol", self: false },
  ]);
});

Deno.test("USER_REMOVE takes a user offline", async () => {
  await using h = await connected();
  await advertise(h, IDS.bob, "bob", "user1");
  await h.server.send("USER_REMOVE", { user_id: IDS.bob, server_id: IDS.server });
  const gone = await h.events.wait("presence", (e) => !e.online);
  assert.deepEqual(gone.user_id, IDS.bob);
  assert.deepEqual(h.session.users().length, 1);
});

Deno.test("resolveUser() matches names case-insensitively and reports ambiguity with ids", async () => {
  await using h = await connected();
  await advertise(h, IDS.bob, "Sam", "user1");
  await advertise(h, IDS.carol, "sam", "user2");
  assert.deepEqual(h.session.resolveUser("ALICE"), IDS.alice);
  assert.deepEqual(h.session.resolveUser("3333"), IDS.carol);
  assert.deepEqual(h.session.resolveUser("nobody"), undefined);
  assert.throws(
    () => h.session.resolveUser("SAM"),
    (e: unknown) =>
      e instanceof CommandError &&
      /ambiguous.*22222222-2222-4222-8222-222222222222.*33333333/.test(e.message),
  );
});
