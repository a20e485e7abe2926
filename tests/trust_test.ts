/**
 * What a stranger, a server of the open federation and a member of the operator's server group
 * can and cannot do to accounts (docs/security.md). One real server (key `server0`) whose
 * bootstrap file names `server3` as its server group; scripted peers link to it as `server3`
 * (a group member) and `server4` (a stranger that joined the federation).
 */

import assert from "node:assert/strict";
import { join } from "node:path";
import {
  authKeyFor,
  type Envelope,
  type JsonObject,
  sealPrivateKey,
  serializeEnvelope,
  signAccountStatement,
  toKdfParams,
} from "../shared/mod.ts";
import { fixtureKeyPair } from "./fixtures/keys.ts";
import { startAddressRelay } from "./support/address_relay.ts";
import {
  advertOf,
  connectUser,
  FAST_KDF,
  fixturePubkey,
  isAck,
  LoginRefusedError,
  loginUser,
  openServerPeer,
  openUser,
  RawConnection,
  type RawServer,
  registerUser,
  type ServerNode,
  startServer,
} from "./support/mod.ts";

/** A server whose group is `server3`; extra flags as given. */
async function groupServer(args: string[] = []): Promise<{ server: ServerNode; dir: string }> {
  const dir = await Deno.makeTempDir({ prefix: "socp_test_trust_" });
  await Deno.writeTextFile(
    join(dir, "bootstrap.yaml"),
    `bootstrap_servers: []\nserver_group:\n  - pubkey: "${await fixturePubkey("server3")}"\n`,
  );
  const server = await startServer({ dataDir: dir, serverKey: "server0", args });
  return { server, dir };
}

function recordOf(frame: Envelope): JsonObject {
  return frame.payload["record"] as JsonObject;
}

function directoryUpdateFor(username: string): (f: Envelope) => boolean {
  return (f) => f.type === "DIRECTORY_UPDATE" && recordOf(f)["username"] === username;
}

/** Links a scripted server peer and waits for its first catch-up frame of `match`. */
async function link(server: ServerNode, key: "server3" | "server4"): Promise<RawServer> {
  const peer = await openServerPeer(server.url, key, { serverPub: server.pubkey });
  await peer.helloLink(server.serverId);
  return peer;
}

/** Logs in; resolves with the refusal code, or "ok". */
async function loginResult(
  url: string,
  username: string,
  password: string,
  server: ServerNode,
  key: "user0" | "user1",
  userId: string,
): Promise<string> {
  try {
    const user = await loginUser(url, username, password, {
      serverPub: server.pubkey,
      key,
      userId,
    });
    await user.close();
    return "ok";
  } catch (error) {
    if (error instanceof LoginRefusedError) return error.code;
    throw error;
  }
}

/** A record for `base`'s account with the attacker's key blob and verifier for `password`. */
async function takeoverRecord(base: JsonObject, password: string): Promise<JsonObject> {
  const attacker = await fixtureKeyPair("user1");
  const { store, verifier } = await sealPrivateKey(attacker.privateKey, password, {
    kdf: FAST_KDF,
  });
  return {
    ...base,
    privkey_store: JSON.stringify(store),
    pake_password: JSON.stringify({ scheme: "scrypt-auth-sha256", verifier }),
    version: Number(base["version"]) + 1,
  };
}

Deno.test("a stranger server learns no account record; a group member does", async () => {
  const { server, dir } = await groupServer();
  try {
    await using alice = await connectUser(server.url, "user0", { serverPub: server.pubkey });
    assert.ok(isAck("REGISTER_OK")(await registerUser(alice, "alice", "alice password")));
    await using member = await link(server, "server3");
    await using stranger = await link(server, "server4");
    await member.next(directoryUpdateFor("alice"));
    // A registration after both linked goes to the group only.
    await using bob = await connectUser(server.url, "user1", { serverPub: server.pubkey });
    assert.ok(isAck("REGISTER_OK")(await registerUser(bob, "bob", "bob password")));
    const update = await member.next(directoryUpdateFor("bob"));
    assert.ok(String(recordOf(update)["pake_password"]).includes("verifier"));
    // The stranger hosts a user that bob messages: its SERVER_DELIVER comes after everything
    // the server sent the stranger about bob's registration.
    const strangerUser = crypto.randomUUID();
    await stranger.sendFrame("USER_ADVERTISE", "*", {
      user_id: strangerUser,
      server_id: stranger.serverId,
      meta: { display_name: "s", pubkey: await fixturePubkey("user2") },
    });
    await bob.next(advertOf(strangerUser));
    await bob.dm({ userId: strangerUser, keys: await fixtureKeyPair("user2") }, "hello");
    await stranger.next("SERVER_DELIVER");
    const leaked = stranger.received().filter((f) =>
      f.type === "DIRECTORY_UPDATE" || f.type === "LOGIN_FAILURE"
    );
    assert.deepEqual(leaked.map((f) => f.type), [], "no private frame reached the stranger");
  } finally {
    await server[Symbol.asyncDispose]();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("neither a stranger nor a group member can take over, delete or lock out an account", async () => {
  const { server, dir } = await groupServer();
  try {
    const alice = await connectUser(server.url, "user0", { serverPub: server.pubkey });
    assert.ok(isAck("REGISTER_OK")(await registerUser(alice, "alice", "alice password")));
    const aliceId = alice.userId;
    await alice.close();
    await using member = await link(server, "server3");
    await using stranger = await link(server, "server4");
    const record = recordOf(await member.next(directoryUpdateFor("alice")));

    // The stranger: account records and login failures are not taken from it at all.
    const forged = await takeoverRecord(record, "attacker password");
    await stranger.sendFrame("DIRECTORY_UPDATE", "*", { record: forged });
    assert.match(String((await stranger.nextError("FORBIDDEN")).payload["detail"]), /group/);
    await stranger.sendFrame("DIRECTORY_UPDATE", "*", {
      record: { ...record, deleted: true, version: Number(record["version"]) + 1 },
    });
    await stranger.nextError("FORBIDDEN");
    // Nor queues, block lists or groups: every frame of the group's private state.
    const privateFrames: [string, Record<string, unknown>][] = [
      ["QUEUE_STORE", {
        entry_id: "e1",
        recipient: aliceId,
        sender: crypto.randomUUID(),
        frame: "{}",
        queued_at: 1,
      }],
      ["QUEUE_DONE", { entry_ids: ["e1"] }],
      ["BLOCKS_UPDATE", { user_id: aliceId, blocked: [], seq: 1, sig: "AA" }],
      ["GROUP_UPDATE", {
        group: {
          group_id: crypto.randomUUID(),
          name: "evil",
          creator_id: aliceId,
          created_at: 1,
          version: 1,
          members: [aliceId],
        },
      }],
    ];
    for (const [type, payload] of privateFrames) {
      await stranger.sendFrame(type, "*", payload as JsonObject);
      assert.match(String((await stranger.nextError("FORBIDDEN")).payload["detail"]), /group/);
    }
    for (let i = 0; i < 4; i++) {
      await stranger.sendFrame("LOGIN_FAILURE", "*", {
        username: "alice",
        address: "127.0.0.1",
        nonce: crypto.randomUUID(),
      });
      await stranger.nextError("FORBIDDEN");
    }

    // The group member: a record it made up is not signed by the account's key.
    const attacker = await fixtureKeyPair("user1");
    const proof = JSON.parse(String(record["proof"])) as JsonObject;
    const sig = await signAccountStatement(attacker.privateKey, {
      user_id: aliceId,
      pubkey: String(record["pubkey"]),
      username: "alice",
      privkey_store: JSON.parse(String(forged["privkey_store"])),
      verifier: JSON.parse(String(forged["pake_password"])).verifier,
      deleted: false,
      seq: Number(proof["seq"]) + 1,
    });
    await member.sendFrame("DIRECTORY_UPDATE", "*", {
      record: {
        ...forged,
        proof: JSON.stringify({ seq: Number(proof["seq"]) + 1, sig, username: "alice" }),
      },
    });
    await member.nextError("INVALID_SIG");
    // ... nor can it swap in its own key and sign with that.
    await member.sendFrame("DIRECTORY_UPDATE", "*", {
      record: {
        ...forged,
        pubkey: await fixturePubkey("user1"),
        proof: JSON.stringify({ seq: Number(proof["seq"]) + 1, sig, username: "alice" }),
      },
    });
    await member.nextError("BAD_KEY");
    // A block list it made up for alice is not signed by alice's key.
    await member.sendFrame("BLOCKS_UPDATE", "*", {
      user_id: aliceId,
      blocked: [crypto.randomUUID()],
      seq: Date.now(),
      sig: await signAccountStatement(attacker.privateKey, {
        user_id: aliceId,
        pubkey: String(record["pubkey"]),
        username: null,
        privkey_store: null,
        verifier: null,
        deleted: false,
        seq: 1,
      }),
    });
    await member.nextError("INVALID_SIG");
    // Failures it reports count for the address it names, not for the owner's.
    for (let i = 0; i < 4; i++) {
      await member.sendFrame("LOGIN_FAILURE", "*", {
        username: "alice",
        address: "10.9.9.9",
        nonce: crypto.randomUUID(),
      });
    }

    assert.equal(
      await loginResult(server.url, "alice", "attacker password", server, "user1", aliceId),
      "BAD_PASSWORD",
    );
    assert.equal(
      await loginResult(server.url, "alice", "alice password", server, "user0", aliceId),
      "ok",
    );
  } finally {
    await server[Symbol.asyncDispose]();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("a replayed older account record does not bring back an old password", async () => {
  const { server, dir } = await groupServer();
  try {
    await using alice = await connectUser(server.url, "user0", { serverPub: server.pubkey });
    assert.ok(isAck("REGISTER_OK")(await registerUser(alice, "alice", "old password")));
    await using member = await link(server, "server3");
    const old = recordOf(await member.next(directoryUpdateFor("alice")));
    // Alice changes her password (a statement signed with her key, newer seq).
    const params = toKdfParams(JSON.parse(String(old["privkey_store"])));
    const { store, verifier } = await sealPrivateKey(alice.keys.privateKey, "new password", {
      kdf: FAST_KDF,
    });
    const seq = Number(JSON.parse(String(old["proof"])).seq) + 1;
    alice.send(serializeEnvelope(
      await alice.envelope("PASSWD", alice.serverId, {
        auth_key: await authKeyFor("old password", params),
        privkey_store: { ...store },
        verifier,
        seq,
        record_sig: await signAccountStatement(alice.keys.privateKey, {
          user_id: alice.userId,
          pubkey: alice.pubkey,
          username: "alice",
          privkey_store: { ...store },
          verifier,
          deleted: false,
          seq,
        }),
      }),
    ));
    await alice.next(isAck("PASSWD_OK"));
    await member.next((f) => directoryUpdateFor("alice")(f) && recordOf(f)["version"] === seq);
    await alice.close();
    // The member replays the old record, with a newer envelope ts.
    await member.sendFrame("DIRECTORY_UPDATE", "*", { record: old }, { ts: Date.now() + 1 });
    assert.equal(
      await loginResult(server.url, "alice", "old password", server, "user0", alice.userId),
      "BAD_PASSWORD",
    );
    assert.equal(
      await loginResult(server.url, "alice", "new password", server, "user0", alice.userId),
      "ok",
    );
  } finally {
    await server[Symbol.asyncDispose]();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("three wrong passwords from 127.0.0.2 block that address, not the owner at 127.0.0.1", async () => {
  await using server = await startServer({ serverKey: "server0" });
  const alice = await connectUser(server.url, "user0", { serverPub: server.pubkey });
  assert.ok(isAck("REGISTER_OK")(await registerUser(alice, "alice", "alice password")));
  const aliceId = alice.userId;
  await alice.close();
  await using relay = startAddressRelay(server.port, "127.0.0.2");
  const codes: string[] = [];
  for (let i = 0; i < 4; i++) {
    codes.push(await loginResult(relay.url, "alice", "wrong", server, "user0", aliceId));
  }
  assert.deepEqual(codes, ["BAD_PASSWORD", "BAD_PASSWORD", "BAD_PASSWORD", "LOGIN_BLOCKED"]);
  assert.equal(
    await loginResult(relay.url, "alice", "alice password", server, "user0", aliceId),
    "LOGIN_BLOCKED",
    "the right password is refused at the blocked address",
  );
  assert.equal(
    await loginResult(server.url, "alice", "alice password", server, "user0", aliceId),
    "ok",
    "the owner at another address logs in",
  );
});

Deno.test("a USER_HELLO must prove possession of its key to claim it for a new id", async () => {
  await using server = await startServer({ serverKey: "server0" });
  const alice = await openUser(server.url, "user0", { serverPub: server.pubkey });
  const signedHello = await alice.helloEnvelope();
  alice.send(serializeEnvelope(signedHello));
  await alice.next(isAck("USER_HELLO_OK"));
  await alice.close();

  // Someone else's key, unsigned, for a new id.
  await using thief = await RawConnection.open(server.url, { serverPub: server.pubkey });
  thief.send({
    type: "USER_HELLO",
    from: crypto.randomUUID(),
    to: "*",
    ts: Date.now(),
    payload: { client: "x", pubkey: alice.pubkey, enc_pubkey: alice.pubkey },
  });
  assert.match(String((await thief.nextError("BAD_KEY")).payload["detail"]), /another user/);

  // Alice's own signed hello, replayed.
  await using replay = await RawConnection.open(server.url, { serverPub: server.pubkey });
  replay.send(serializeEnvelope(signedHello));
  assert.match(String((await replay.nextError("INVALID_SIG")).payload["detail"]), /replay/);

  // A proof for another id.
  const mallory = await openUser(server.url, "user1", { serverPub: server.pubkey });
  const forged = await mallory.envelope("USER_HELLO", "*", {
    ...((await mallory.helloEnvelope()).payload),
    user_id: crypto.randomUUID(),
  });
  mallory.send(serializeEnvelope(forged));
  assert.match(String((await mallory.nextError("INVALID_SIG")).payload["detail"]), /another/);
  await mallory.close();

  // An unsigned hello with a key nobody holds is still accepted (other implementations).
  await using foreign = await RawConnection.open(server.url, { serverPub: server.pubkey });
  const key = await fixturePubkey("user5");
  foreign.send({
    type: "USER_HELLO",
    from: crypto.randomUUID(),
    to: "*",
    ts: Date.now(),
    payload: { client: "other", pubkey: key, enc_pubkey: key },
  });
  await foreign.next(isAck("USER_HELLO_OK"));
});

Deno.test("a closed federation refuses servers that are not in its bootstrap file", async () => {
  const { server, dir } = await groupServer(["--federation", "closed"]);
  try {
    await using alice = await connectUser(server.url, "user0", { serverPub: server.pubkey });
    assert.ok(isAck("REGISTER_OK")(await registerUser(alice, "alice", "alice password")));
    await using stranger = await link(server, "server4");
    assert.match(String((await stranger.nextError("BAD_KEY")).payload["detail"]), /closed/);
    await stranger.closedByServer();
    await using member = await link(server, "server3");
    await member.next(directoryUpdateFor("alice"));
  } finally {
    await server[Symbol.asyncDispose]();
    await Deno.remove(dir, { recursive: true });
  }
});
