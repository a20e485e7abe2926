/**
 * Three servers of one server group: every function keeps working while any one runs.
 * Offline-queued messages are held by every live member before the sender is told "queued",
 * are delivered once wherever the recipient logs in, and are not delivered again by a member
 * that was down meanwhile.
 */

import assert from "node:assert/strict";
import { authKeyFor, serializeEnvelope, signAccountStatement, toKdfParams } from "../shared/mod.ts";
import { fixtureKeyPair } from "./fixtures/keys.ts";
import {
  advertOf,
  connectUser,
  FAST_HEARTBEAT_ARGS,
  isAck,
  loginUser,
  preHelloFrame,
  RawConnection,
  type RawUser,
  registerUser,
  type ServerNode,
  startMesh,
  waitForAccounts,
} from "./support/mod.ts";

/** Registers `name` (fixture key `key`) on `node` and disconnects; resolves with its id. */
async function registered(node: ServerNode, key: "user1" | "user2", name: string) {
  const user = await connectUser(node.url, key, { serverPub: node.pubkey });
  assert.ok(isAck("REGISTER_OK")(await registerUser(user, name, `${name} password`)));
  const userId = user.userId;
  await user.close();
  return userId;
}

/** Sends a DM to an offline account and waits for the server's QUEUED answer. */
async function queueDm(from: RawUser, to: string, text: string): Promise<void> {
  await from.dm({ userId: to, keys: await fixtureKeyPair("user1") }, text);
  await from.next(isAck("QUEUED"));
}

function login(node: ServerNode, userId: string): Promise<RawUser> {
  return loginUser(node.url, "bob", "bob password", {
    serverPub: node.pubkey,
    key: "user1",
    userId,
  });
}

Deno.test("a DM queued through a server that is then killed for good reaches the recipient on a survivor, once", async () => {
  await using mesh = await startMesh(3, { args: FAST_HEARTBEAT_ARGS });
  const [a, b, c] = mesh.nodes as [ServerNode, ServerNode, ServerNode];
  const bobId = await registered(c, "user1", "bob");
  await waitForAccounts(a, "bob", (rows) => rows.length === 1, "A to know bob");
  await using alice = await connectUser(a.url, "user0", { serverPub: a.pubkey });
  await queueDm(alice, bobId, "sent while bob was away");
  await a.kill("SIGKILL");

  await using bob = await login(c, bobId);
  assert.equal((await bob.nextDm(alice)).text, "sent while bob was away");
  // Another message after the login comes next: the queued one was not delivered twice.
  await using carol = await connectUser(b.url, "user2", { serverPub: b.pubkey });
  await carol.dm({ userId: bobId, keys: await fixtureKeyPair("user1") }, "after login");
  const next = await bob.next("USER_DELIVER");
  assert.equal(next.payload["sender"], carol.userId, "no second copy of the queued DM");
});

Deno.test("a member that was down while a queued DM was delivered does not deliver it again", async () => {
  await using mesh = await startMesh(3, { args: FAST_HEARTBEAT_ARGS });
  const [a, b, c] = mesh.nodes as [ServerNode, ServerNode, ServerNode];
  const bobId = await registered(c, "user1", "bob");
  await waitForAccounts(a, "bob", (rows) => rows.length === 1, "A to know bob");
  await using alice = await connectUser(a.url, "user0", { serverPub: a.pubkey });
  await queueDm(alice, bobId, "queued on all three");
  await b.kill("SIGKILL");

  const bobOnC = await login(c, bobId);
  assert.equal((await bobOnC.nextDm(alice)).text, "queued on all three");
  await bobOnC.close();

  await b.restart({ samePort: true });
  await b.waitForLog(/dropped 1 queued frames delivered by another group server/);
  await using bob = await login(b, bobId);
  await alice.dm({ userId: bobId, keys: await fixtureKeyPair("user1") }, "fresh");
  const next = await bob.nextDm(alice);
  assert.equal(next.text, "fresh", "the first DM on the restarted member is the new one");
});

Deno.test("with two of three servers down, accounts can be created, listed, used and deleted", async () => {
  await using mesh = await startMesh(3, { args: FAST_HEARTBEAT_ARGS });
  const [a, b, c] = mesh.nodes as [ServerNode, ServerNode, ServerNode];
  await a.kill("SIGKILL");
  await b.kill("SIGKILL");

  const bobId = await registered(c, "user1", "bob");
  const rows = await waitForAccounts(c, "b*", (r) => r.length === 1, "bob listed");
  assert.equal(rows[0]?.user_id, bobId);
  await using bob = await login(c, bobId);
  await using carol = await connectUser(c.url, "user2", { serverPub: c.pubkey });
  await carol.dm({ userId: bobId, keys: await fixtureKeyPair("user1") }, "still here");
  assert.equal((await bob.nextDm(carol)).text, "still here");

  // Delete: the password proof again and the signed tombstone; then the name is free.
  const conn = await RawConnection.open(c.url, { serverPub: c.pubkey });
  conn.send(preHelloFrame("LOGIN_START", { username: "bob" }));
  const kdf = toKdfParams((await conn.next("LOGIN_PARAMS")).payload["kdf"]);
  await conn.close();
  const seq = Date.now() + 1;
  bob.send(serializeEnvelope(
    await bob.envelope("DELETE_ACCOUNT", bob.serverId, {
      auth_key: await authKeyFor("bob password", kdf),
      seq,
      record_sig: await signAccountStatement(bob.keys.privateKey, {
        user_id: bobId,
        pubkey: bob.pubkey,
        username: "bob",
        privkey_store: null,
        verifier: null,
        deleted: true,
        seq,
      }),
    }),
  ));
  await bob.next(isAck("DELETE_OK"));
  await waitForAccounts(c, "bob", (r) => r.length === 0, "bob gone");
});

Deno.test("a user whose server hangs signs in on another member at once, and is routed there", async () => {
  // Default heartbeat timings: nobody declares the hung server dead during this test.
  await using mesh = await startMesh(3);
  const [a, b, c] = mesh.nodes as [ServerNode, ServerNode, ServerNode];
  const alice = await connectUser(a.url, "user0", { serverPub: a.pubkey });
  await using carol = await connectUser(c.url, "user2", { serverPub: c.pubkey });
  await carol.next(advertOf(alice.userId, a.serverId));
  a.signal("SIGSTOP");
  await alice.close().catch(() => {});

  // The same identity on B, with a fresh proof of its key: the user moved.
  await using again = await connectUser(b.url, "user0", {
    serverPub: b.pubkey,
    userId: alice.userId,
  });
  await carol.next(advertOf(alice.userId, b.serverId));
  await carol.dm({ userId: alice.userId, keys: await fixtureKeyPair("user0") }, "found you");
  assert.equal((await again.nextDm(carol)).text, "found you");
  a.signal("SIGCONT");
});
