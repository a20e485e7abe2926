/**
 * Block lists, presence history and group chats as servers enforce them, over raw frames,
 * across two servers of one group (the terminal client's commands are tested in
 * tests/social_client_test.ts).
 */

import assert from "node:assert/strict";
import { normalizeBlocked, signBlockList } from "../shared/mod.ts";
import { fixtureKeyPair } from "./fixtures/keys.ts";
import {
  advertOf,
  connectUser,
  eventually,
  isAck,
  type RawUser,
  removeOf,
  type ServerNode,
  startMesh,
} from "./support/mod.ts";

/** Sends a signed BLOCKS_SET and waits for its ACK; resolves with the answer. */
async function setBlocks(user: RawUser, blocked: string[]) {
  const seq = Date.now();
  const sig = await signBlockList(user.keys.privateKey, {
    user_id: user.userId,
    blocked: normalizeBlocked(blocked),
    seq,
  });
  await user.sendFrame("BLOCKS_SET", user.serverId, { blocked, seq, sig });
  return await user.next((f) => isAck("BLOCKS_OK")(f) || f.type === "ERROR");
}

async function listOf(user: RawUser): Promise<string[]> {
  await user.sendFrame("LIST_REQUEST", user.serverId, {});
  const reply = await user.next("LIST_RESPONSE");
  return reply.payload["online_users"] as string[];
}

Deno.test("a block stops DMs and presence across servers, survives a restart, and an unblock restores both", async () => {
  await using mesh = await startMesh(2);
  const [a, b] = mesh.nodes as [ServerNode, ServerNode];
  const aliceKeys = await fixtureKeyPair("user0");
  await using alice = await connectUser(a.url, "user0", { serverPub: a.pubkey });
  const mallory = await connectUser(b.url, "user1", { serverPub: b.pubkey });
  await mallory.next(advertOf(alice.userId));

  assert.ok(isAck("BLOCKS_OK")(await setBlocks(alice, [mallory.userId])));
  // Mallory is told alice went away and no longer lists her.
  await mallory.next(removeOf(alice.userId));
  await eventually(async () => !(await listOf(mallory)).includes(alice.userId) || undefined, {
    what: "alice hidden from mallory",
  });
  // DMs from mallory are refused at the sender's server, with a clear reason.
  await mallory.dm({ userId: alice.userId, keys: aliceKeys }, "let me in");
  const refused = await mallory.nextError("BLOCKED");
  assert.match(String(refused.payload["detail"]), /has blocked you/);
  // A list signed with another key (what a server could make up) is refused.
  const forgedSeq = Date.now() + 1;
  await alice.sendFrame("BLOCKS_SET", alice.serverId, {
    blocked: [],
    seq: forgedSeq,
    sig: await signBlockList(mallory.keys.privateKey, {
      user_id: alice.userId,
      blocked: [],
      seq: forgedSeq,
    }),
  });
  await alice.nextError("INVALID_SIG");
  // Blocking oneself or an unknown user is refused.
  assert.equal((await setBlocks(alice, [alice.userId])).payload["code"], "BAD_REQUEST");
  assert.equal((await setBlocks(alice, [crypto.randomUUID()])).payload["code"], "USER_NOT_FOUND");

  // After a restart of both servers the block still holds (it was replicated and stored).
  await mallory.close();
  await a.restart({ samePort: true });
  await b.restart({ samePort: true });
  await mesh.waitFullyLinked();
  await using alice2 = await connectUser(a.url, "user0", {
    serverPub: a.pubkey,
    userId: alice.userId,
  });
  await using mallory2 = await connectUser(b.url, "user1", {
    serverPub: b.pubkey,
    userId: mallory.userId,
  });
  await alice2.next(advertOf(mallory2.userId));
  await mallory2.dm({ userId: alice2.userId, keys: aliceKeys }, "again");
  await mallory2.nextError("BLOCKED");
  assert.ok(!(await listOf(mallory2)).includes(alice2.userId));

  // Unblock: presence comes back and DMs arrive.
  assert.ok(isAck("BLOCKS_OK")(await setBlocks(alice2, [])));
  await mallory2.next(advertOf(alice2.userId));
  await mallory2.dm({ userId: alice2.userId, keys: aliceKeys }, "thanks");
  assert.equal((await alice2.nextDm(mallory2)).text, "thanks");
});

Deno.test("presence since: a user who left is listed inside the window and not outside it", async () => {
  await using mesh = await startMesh(2);
  const [a, b] = mesh.nodes as [ServerNode, ServerNode];
  await using alice = await connectUser(a.url, "user0", { serverPub: a.pubkey });
  const bob = await connectUser(b.url, "user1", { serverPub: b.pubkey });
  await alice.next(advertOf(bob.userId));
  await bob.close();
  await alice.next(removeOf(bob.userId));
  const since = async (seconds: number) => {
    await alice.sendFrame("PRESENCE_SINCE_REQUEST", alice.serverId, { seconds });
    const reply = await alice.next("PRESENCE_SINCE_RESPONSE");
    return reply.payload["users"] as { user_id: string; online: boolean }[];
  };
  const recent = await since(60);
  assert.deepEqual(
    recent.filter((u) => u.user_id === bob.userId).map((u) => u.online),
    [false],
    "bob left within the last minute",
  );
  assert.ok(!recent.some((u) => u.user_id === alice.userId), "the asker is not listed");
  // Once more than a second has passed, a one-second window no longer holds him.
  await eventually(
    async () => !(await since(1)).some((u) => u.user_id === bob.userId) || undefined,
    // Polled gently: presence queries are rate limited (10 per 10 s per connection).
    { what: "bob to fall out of a 1 s window", intervalMs: 500 },
  );
  assert.ok((await since(60)).some((u) => u.user_id === bob.userId));
});

Deno.test("a group across servers: members only, an offline member gets it later, a member who left gets nothing more", async () => {
  await using mesh = await startMesh(2);
  const [a, b] = mesh.nodes as [ServerNode, ServerNode];
  await using alice = await connectUser(a.url, "user0", { serverPub: a.pubkey });
  await using bob = await connectUser(b.url, "user1", { serverPub: b.pubkey });
  const carol = await connectUser(b.url, "user2", { serverPub: b.pubkey });
  await using dave = await connectUser(a.url, "user3", { serverPub: a.pubkey });
  await alice.next(advertOf(carol.userId));
  const keys = {
    bob: await fixtureKeyPair("user1"),
    carol: await fixtureKeyPair("user2"),
    alice: await fixtureKeyPair("user0"),
  };

  await alice.sendFrame("GROUP_CREATE", alice.serverId, {
    name: "team",
    members: [bob.userId, carol.userId],
  });
  const created = await alice.next(isAck("GROUP_OK"));
  const group = created.payload["group"] as { group_id: string; members: string[] };
  assert.equal(group.members.length, 3);
  const event = await bob.next("GROUP_EVENT");
  assert.equal(event.payload["action"], "created");
  assert.equal(event.payload["by"], alice.userId);
  // The name is taken now.
  await dave.sendFrame("GROUP_CREATE", dave.serverId, { name: "TEAM", members: [bob.userId] });
  await dave.nextError("NAME_IN_USE");

  // Carol goes offline; a group message reaches bob now and carol at her next login.
  await carol.close();
  await alice.next(removeOf(carol.userId));
  const groupDm = async (to: { userId: string }, key: typeof keys.bob, text: string) =>
    await alice.dm({ userId: to.userId, keys: key }, text, {
      extra: { group_id: group.group_id },
    });
  await groupDm(bob, keys.bob, "hello team");
  await groupDm(carol, keys.carol, "hello team");
  await alice.next(isAck("QUEUED"));
  const got = await bob.nextDm(alice);
  assert.equal(got.text, "hello team");
  assert.equal(got.frame.payload["group_id"], group.group_id);
  await using carol2 = await connectUser(b.url, "user2", {
    serverPub: b.pubkey,
    userId: carol.userId,
  });
  assert.equal((await carol2.nextDm(alice)).text, "hello team");

  // A non-member cannot send into the group.
  await dave.dm({ userId: bob.userId, keys: keys.bob }, "sneaky", {
    extra: { group_id: group.group_id },
  });
  await dave.nextError("FORBIDDEN");

  // Bob leaves: the others hear of it, and nothing for the group reaches him any more.
  await bob.sendFrame("GROUP_CHANGE", bob.serverId, { name: "team", action: "leave" });
  await bob.next(isAck("GROUP_OK"));
  const left = await alice.next((f) => f.type === "GROUP_EVENT" && f.payload["action"] === "left");
  assert.equal(left.payload["user_id"], bob.userId);
  await groupDm(bob, keys.bob, "after you left");
  await alice.nextError("FORBIDDEN");
  // Only the creator may remove members.
  await carol2.sendFrame("GROUP_CHANGE", carol2.serverId, {
    name: "team",
    action: "remove",
    user_id: alice.userId,
  });
  await carol2.nextError("FORBIDDEN");
  await carol2.sendFrame("GROUP_LIST_REQUEST", carol2.serverId, {});
  const list = await carol2.next("GROUP_LIST");
  const groups = list.payload["groups"] as { name: string; members: string[] }[];
  assert.deepEqual(groups.map((g) => [g.name, g.members.length]), [["team", 2]]);
  void keys.alice;
});
