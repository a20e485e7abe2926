/**
 * What a linked server may make another server believe (docs/protocol.md, "What a linked server
 * is trusted with"): scripted server peers link to a real mesh and try to deliver frames in the
 * name of users they do not host, advertise users with weak keys, replay a relayed DM with a
 * changed `ts`, and keep users "online" after their server's link is gone. Each abuse is refused
 * or ignored, and the honest users keep chatting throughout.
 *
 * @module
 */

import assert from "node:assert/strict";
import {
  encodeBase64Url,
  encodePublicKey,
  encryptText,
  type Envelope,
  type JsonObject,
  type KeyPair,
  type PrivateKey,
  serializeEnvelope,
  signContent,
} from "../shared/mod.ts";
import { type FixtureKeyName, fixtureKeyPair, weakKey } from "./fixtures/keys.ts";
import {
  advertOf,
  assertAllChat,
  connectUser,
  FAST_HEARTBEAT_ARGS,
  listUsers,
  openServerPeer,
  type RawServer,
  type RawServerFrameOptions,
  type RawUser,
  type Recipient,
  removeOf,
  type ServerNode,
  settle,
  startMesh,
} from "./support/mod.ts";

/** A user hosted by a scripted server: an id and a fixture key. */
interface ScriptedUser {
  userId: string;
  keys: KeyPair;
  pubkey: string;
  displayName: string;
}

async function scriptedUser(key: FixtureKeyName, displayName: string): Promise<ScriptedUser> {
  const keys = await fixtureKeyPair(key);
  return {
    userId: crypto.randomUUID(),
    keys,
    pubkey: encodePublicKey(keys.publicKey),
    displayName,
  };
}

/** Connects a scripted user to `node`, checking every frame against the node's key. */
function userOn(node: ServerNode, key: FixtureKeyName, displayName: string): Promise<RawUser> {
  return connectUser(node.url, key, { serverPub: node.pubkey, displayName });
}

/**
 * Links a scripted server (fixture key `key`) to `node` with SERVER_HELLO_LINK and waits for the
 * node's catch-up advert of its local user `local`, so the link is up on both sides. Only frames
 * born at `node` may be awaited with `next` (they are checked against its key).
 */
async function linkPeer(
  node: ServerNode,
  key: FixtureKeyName,
  local: RawUser,
  serverId?: string,
): Promise<RawServer> {
  const peer = await openServerPeer(node.url, key, {
    serverPub: node.pubkey,
    ...(serverId === undefined ? {} : { serverId }),
  });
  await peer.helloLink(node.serverId);
  await peer.next(advertOf(local.userId, node.serverId));
  return peer;
}

/** The USER_ADVERTISE payload a scripted server sends for one of its users. */
function advert(peer: RawServer, user: ScriptedUser, meta: JsonObject = {}): JsonObject {
  return {
    user_id: user.userId,
    server_id: peer.serverId,
    meta: { display_name: user.displayName, pubkey: user.pubkey, ...meta },
  };
}

/** What a forged or relayed DM is made of. */
interface DmSpec {
  /** The claimed sending user. */
  sender: string;
  /** The key that makes `content_sig` (the sender's own for a genuine DM). */
  signWith: PrivateKey;
  /** `sender_pub` in the payload; `undefined` leaves it out. */
  senderPub: string | undefined;
  /** The recipient. */
  to: Recipient;
  /** Plain text. */
  text: string;
  /** Original ts (default now). */
  ts?: number;
}

/** The SERVER_DELIVER payload of a DM as socp relays it. */
async function deliverPayload(spec: DmSpec): Promise<JsonObject> {
  const ts = spec.ts ?? Date.now();
  const ciphertext = await encryptText(spec.to.keys.publicKey, spec.text);
  const contentSig = await signContent(spec.signWith, {
    ciphertext,
    from: spec.sender,
    to: spec.to.userId,
    ts,
  });
  const payload: JsonObject = {
    user_id: spec.to.userId,
    ciphertext,
    sender: spec.sender,
    content_sig: contentSig,
    orig_ts: ts,
    msg_ts: ts,
  };
  if (spec.senderPub !== undefined) payload.sender_pub = spec.senderPub;
  return payload;
}

/** Sends a SERVER_DELIVER from `peer` to `node` with envelope ts = the payload's `orig_ts`. */
async function sendDeliver(
  peer: RawServer,
  node: ServerNode,
  payload: JsonObject,
  options: RawServerFrameOptions = {},
): Promise<Envelope> {
  return await peer.sendFrame("SERVER_DELIVER", node.serverId, payload, {
    ts: payload["orig_ts"] as number,
    ...options,
  });
}

/** USER_DELIVER frames `user` has not consumed whose ciphertext is one of `ciphertexts`. */
function delivered(user: RawUser, ciphertexts: readonly unknown[]): Envelope[] {
  return user.pending().filter((f) =>
    f.type === "USER_DELIVER" && ciphertexts.includes(f.payload["ciphertext"])
  );
}

/** The DER SPKI of a fresh RSA-1024 key (too weak for SOCP). */
async function rsa1024(): Promise<Uint8Array> {
  const pair = await crypto.subtle.generateKey(
    {
      name: "RSA-PSS",
      modulusLength: 1024,
      publicExponent: new Uint8Array([1, 0, 1]),
      hash: "SHA-256",
    },
    true,
    ["sign", "verify"],
  );
  return new Uint8Array(await crypto.subtle.exportKey("spki", pair.publicKey));
}

/** Sends unsigned HEARTBEATs from `peer` to `node` every 200 ms until stopped. */
function keepAlive(peer: RawServer, node: ServerNode): Disposable & { stop(): void } {
  const timer = setInterval(() => {
    peer.sendFrame("HEARTBEAT", node.serverId, {}, { sign: "none" }).catch(() => {});
  }, 200);
  const stop = () => clearInterval(timer);
  return { stop, [Symbol.dispose]: stop };
}

Deno.test("a linked server cannot deliver frames in the name of users it does not host (finding 4)", async (t) => {
  await using mesh = await startMesh(2);
  const [a, b] = mesh.nodes as [ServerNode, ServerNode];
  await using alice = await userOn(a, "user0", "alice");
  await using dave = await userOn(a, "user3", "dave");
  await using bob = await userOn(b, "user1", "bob");
  const honest = [alice, dave, bob];
  for (const user of honest) {
    for (const other of honest) if (other !== user) await user.next(advertOf(other.userId));
  }
  // olga said hello on A once (A stores her key) and is offline now.
  const olga = await userOn(a, "user2", "olga");
  await alice.next(advertOf(olga.userId));
  await olga.close();
  await alice.next(removeOf(olga.userId));
  const mallory = await scriptedUser("user5", "mallory");

  await using evil = await linkPeer(a, "server4", alice);
  await evil.sendFrame("USER_ADVERTISE", "*", advert(evil, mallory));
  await alice.next(advertOf(mallory.userId, evil.serverId));

  /** Proves A handled every earlier frame of `evil`: mallory's own DM reaches alice. */
  async function marker(): Promise<void> {
    const text = `marker ${crypto.randomUUID()}`;
    await sendDeliver(
      evil,
      a,
      await deliverPayload({
        sender: mallory.userId,
        signWith: mallory.keys.privateKey,
        senderPub: mallory.pubkey,
        to: alice,
        text,
      }),
    );
    assert.equal((await alice.nextDm(mallory.userId)).text, text);
  }

  await t.step("a SERVER_DELIVER in the name of a user connected here is refused", async () => {
    const cases: [string, JsonObject, string][] = [
      [
        "dave's real key, mallory's content_sig",
        await deliverPayload({
          sender: dave.userId,
          signWith: mallory.keys.privateKey,
          senderPub: dave.pubkey,
          to: alice,
          text: "forged as dave",
        }),
        "INVALID_SIG",
      ],
      [
        "no sender_pub (the server would fill in dave's key)",
        await deliverPayload({
          sender: dave.userId,
          signWith: mallory.keys.privateKey,
          senderPub: undefined,
          to: alice,
          text: "forged as dave, no key",
        }),
        "INVALID_SIG",
      ],
      [
        "mallory's key as dave's sender_pub",
        await deliverPayload({
          sender: dave.userId,
          signWith: mallory.keys.privateKey,
          senderPub: mallory.pubkey,
          to: alice,
          text: "forged as dave, other key",
        }),
        "BAD_KEY",
      ],
    ];
    for (const [label, payload, code] of cases) {
      await sendDeliver(evil, a, payload);
      const error = await evil.nextError();
      assert.equal(error.payload["code"], code, `${label}: ${error.payload["detail"]}`);
    }
    await marker();
    assert.deepEqual(delivered(alice, cases.map(([, p]) => p["ciphertext"])), []);
  });

  await t.step(
    "a SERVER_DELIVER in the name of a user online on another server needs that server's signature",
    async () => {
      const forged = await deliverPayload({
        sender: bob.userId,
        signWith: mallory.keys.privateKey,
        senderPub: bob.pubkey,
        to: alice,
        text: "forged as bob",
      });
      for (const from of [evil.serverId, b.serverId]) {
        await sendDeliver(evil, a, forged, { from });
        const error = await evil.nextError();
        assert.equal(
          error.payload["code"],
          "INVALID_SIG",
          `from ${from}: ${error.payload["detail"]}`,
        );
      }
      const otherKey = await deliverPayload({
        sender: bob.userId,
        signWith: mallory.keys.privateKey,
        senderPub: mallory.pubkey,
        to: alice,
        text: "forged as bob, other key",
      });
      await sendDeliver(evil, a, otherKey);
      assert.equal((await evil.nextError()).payload["code"], "BAD_KEY");
      await marker();
      assert.deepEqual(delivered(alice, [forged["ciphertext"], otherKey["ciphertext"]]), []);
    },
  );

  await t.step("a user frame relayed as-is is held to the same rules", async () => {
    const ts = Date.now();
    const ciphertext = await encryptText(alice.keys.publicKey, "forged MSG_DIRECT as bob");
    const contentSig = await signContent(mallory.keys.privateKey, {
      ciphertext,
      from: bob.userId,
      to: alice.userId,
      ts,
    });
    await evil.sendFrame("MSG_DIRECT", alice.userId, {
      ciphertext,
      sender_pub: bob.pubkey,
      content_sig: contentSig,
    }, { from: bob.userId, ts });
    assert.equal((await evil.nextError()).payload["code"], "INVALID_SIG");
    // A channel-wide frame in the name of dave (connected to A).
    const plain = encodeBase64Url(new TextEncoder().encode("forged channel message"));
    await evil.sendFrame("MSG_PUBLIC_CHANNEL", "public", {
      ciphertext: plain,
      sender: dave.userId,
      sender_pub: dave.pubkey,
      content_sig: await signContent(mallory.keys.privateKey, {
        ciphertext: plain,
        from: dave.userId,
        ts,
      }),
    }, { from: dave.userId, ts });
    assert.equal((await evil.nextError()).payload["code"], "INVALID_SIG");
    await marker();
    await settle(bob, [alice]);
    const isForged = (f: Envelope) =>
      f.payload["ciphertext"] === ciphertext || f.payload["ciphertext"] === plain;
    for (const user of honest) {
      assert.deepEqual(user.pending().filter(isForged), [], user.displayName);
    }
  });

  await t.step("an offline sender's DM is delivered only with the key stored for her", async () => {
    const wrongKey = await deliverPayload({
      sender: olga.userId,
      signWith: mallory.keys.privateKey,
      senderPub: mallory.pubkey,
      to: alice,
      text: "forged as olga",
    });
    await sendDeliver(evil, a, wrongKey);
    assert.equal((await evil.nextError()).payload["code"], "BAD_KEY");
    // A queued DM of olga's, flushed after she left: her stored key, her own content_sig.
    const queued = await deliverPayload({
      sender: olga.userId,
      signWith: olga.keys.privateKey,
      senderPub: olga.pubkey,
      to: alice,
      text: "olga, queued earlier",
    });
    await sendDeliver(evil, a, queued);
    assert.equal((await alice.nextDm(olga)).text, "olga, queued earlier");
    await marker();
    assert.deepEqual(delivered(alice, [wrongKey["ciphertext"]]), []);
  });

  await t.step(
    "a DM whose content_sig proves its sender is delivered by any relay (a flushed queue)",
    async () => {
      const genuine = await deliverPayload({
        sender: bob.userId,
        signWith: bob.keys.privateKey,
        senderPub: bob.pubkey,
        to: alice,
        text: "bob, queued on another server",
      });
      await sendDeliver(evil, a, genuine);
      assert.equal((await alice.nextDm(bob)).text, "bob, queued on another server");
      await marker();
      assert.deepEqual(evil.pending().filter((f) => f.type === "ERROR"), []);
    },
  );

  await t.step("the honest users still chat", async () => {
    await assertAllChat(honest, "after forged senders");
    assert.ok(dave.isOpen && alice.isOpen);
  });
});

Deno.test("a USER_ADVERTISE with a weak or malformed key is refused and not forwarded (finding 5)", async (t) => {
  await using mesh = await startMesh(2);
  const [a, b] = mesh.nodes as [ServerNode, ServerNode];
  await using alice = await userOn(a, "user0", "alice");
  await using bob = await userOn(b, "user1", "bob");
  await alice.next(advertOf(bob.userId));
  await bob.next(advertOf(alice.userId));
  await using evil = await linkPeer(a, "server4", alice);
  // The same peer also links to B, so B shows its users (and would get A's forwarded adverts).
  await using _viaB = await linkPeer(b, "server4", bob, evil.serverId);
  const mallory = await scriptedUser("user5", "mallory");

  const weak: [string, string][] = [
    ["RSA-1024", encodeBase64Url(await rsa1024())],
    ["RSA-2048", encodeBase64Url(await weakKey("weak2048"))],
    ["RSA-4096 with e = 3", encodeBase64Url(await weakKey("exp3"))],
    ["not a key", "AAAA"],
  ];
  const ghosts: string[] = [];

  await t.step("each advert gets BAD_KEY", async () => {
    for (const [label, pubkey] of weak) {
      const ghost = crypto.randomUUID();
      ghosts.push(ghost);
      await evil.sendFrame("USER_ADVERTISE", "*", {
        user_id: ghost,
        server_id: evil.serverId,
        meta: { display_name: `weak ${label}`, pubkey },
      });
      const error = await evil.nextError();
      assert.equal(error.payload["code"], "BAD_KEY", `${label}: ${error.payload["detail"]}`);
    }
  });

  await t.step("a SERVER_ANNOUNCE with a weak key gets BAD_KEY", async () => {
    const id = crypto.randomUUID();
    await evil.sendFrame("SERVER_ANNOUNCE", "*", {
      server_id: id,
      host: "127.0.0.1",
      port: 9,
      pubkey: encodeBase64Url(await rsa1024()),
    });
    assert.equal((await evil.nextError()).payload["code"], "BAD_KEY");
  });

  await t.step("no weak-keyed user is shown, routed or forwarded", async () => {
    // A good advert on the same link reaches alice, and (forwarded by A) bob, after the others.
    await evil.sendFrame("USER_ADVERTISE", "*", advert(evil, mallory));
    await alice.next(advertOf(mallory.userId, evil.serverId));
    await bob.next(advertOf(mallory.userId, evil.serverId));
    // Had A forwarded a weak advert, B would have refused it (and logged so) before this one.
    assert.deepEqual(b.logLines().filter((line) => / refused: /.test(line)), []);
    assert.deepEqual(a.logLines().filter((line) => /ERROR from server/.test(line)), []);
    for (const user of [alice, bob]) {
      const told = user.received().filter((f) => ghosts.includes(String(f.payload["user_id"])));
      assert.deepEqual(told, [], `${user.displayName} was told about a weak-keyed user`);
      const listed = await listUsers(user);
      assert.deepEqual(listed.filter((id) => ghosts.includes(id)), []);
      assert.ok(listed.includes(mallory.userId));
    }
    await alice.dm({ userId: ghosts[0]!, keys: mallory.keys }, "to a weak key");
    assert.equal((await alice.nextError()).payload["code"], "USER_NOT_FOUND");
    await assertAllChat([alice, bob], "after weak adverts");
  });
});

Deno.test("a relayed DM replayed with a changed ts or as a user frame is delivered once (finding 6)", async (t) => {
  await using mesh = await startMesh(2);
  const [a, b] = mesh.nodes as [ServerNode, ServerNode];
  await using alice = await userOn(a, "user0", "alice");
  await using bob = await userOn(b, "user1", "bob");
  await alice.next(advertOf(bob.userId));
  await bob.next(advertOf(alice.userId));
  const mallory = await scriptedUser("user5", "mallory");
  await using evil = await linkPeer(a, "server4", alice);
  await evil.sendFrame("USER_ADVERTISE", "*", advert(evil, mallory));
  await alice.next(advertOf(mallory.userId, evil.serverId));

  async function marker(peer: RawServer): Promise<void> {
    const text = `marker ${crypto.randomUUID()}`;
    await sendDeliver(
      peer,
      a,
      await deliverPayload({
        sender: mallory.userId,
        signWith: mallory.keys.privateKey,
        senderPub: mallory.pubkey,
        to: alice,
        text,
      }),
    );
    assert.equal((await alice.nextDm(mallory.userId)).text, text);
  }

  await t.step("changed envelope ts, msg_ts, from or type: still one message", async () => {
    const payload = await deliverPayload({
      sender: mallory.userId,
      signWith: mallory.keys.privateKey,
      senderPub: mallory.pubkey,
      to: alice,
      text: "only once",
    });
    const ts = payload["orig_ts"] as number;
    await sendDeliver(evil, a, payload);
    const first = await alice.nextDm(mallory.userId);
    assert.equal(first.text, "only once");
    // Each copy still verifies for the recipient: orig_ts keeps the content_sig valid.
    await sendDeliver(evil, a, payload, { ts: ts + 1 });
    await sendDeliver(evil, a, { ...payload, msg_ts: ts + 2 }, { ts: ts + 2 });
    await sendDeliver(evil, a, payload, { ts: ts + 3, from: b.serverId });
    const userFrame = {
      ciphertext: payload["ciphertext"]!,
      sender_pub: mallory.pubkey,
      content_sig: payload["content_sig"]!,
      orig_ts: ts,
    };
    for (const type of ["MSG_DIRECT", "MSG_PRIVATE"]) {
      await evil.sendFrame(type, alice.userId, userFrame, { from: mallory.userId, ts: ts + 4 });
    }
    await marker(evil);
    // And over a new link, from a peer with another id.
    await using again = await linkPeer(a, "server4", alice);
    await sendDeliver(again, a, payload, { ts: ts + 5 });
    await marker(again);
    assert.deepEqual(delivered(alice, [payload["ciphertext"]]), []);
    assert.deepEqual(evil.pending().filter((f) => f.type === "ERROR"), []);
    assert.deepEqual(again.pending().filter((f) => f.type === "ERROR"), []);
  });

  await t.step(
    "a DM resent by its sender through another server reaches a server that has not seen it",
    async () => {
      const olga = await userOn(a, "user2", "olga");
      await alice.next(advertOf(olga.userId));
      const sent = await olga.dm(alice, "resent after failover");
      assert.equal((await alice.nextDm(olga)).text, "resent after failover");
      await olga.close();
      await alice.next(removeOf(olga.userId));
      await using moved = await connectUser(b.url, "user2", {
        serverPub: b.pubkey,
        displayName: "olga",
        userId: olga.userId,
      });
      await alice.next(advertOf(olga.userId, b.serverId));
      // A delivered the first copy locally, so the copy relayed by B is new to A; the client
      // drops such duplicates. A copy sent once more is suppressed at A.
      moved.send(serializeEnvelope(sent));
      assert.equal((await alice.nextDm(olga)).text, "resent after failover");
      moved.send(serializeEnvelope(sent));
      await settle(alice, [moved, bob]);
      assert.deepEqual(delivered(alice, [sent.payload["ciphertext"]]), []);
    },
  );

  await t.step("the honest users still chat", async () => {
    await assertAllChat([alice, bob], "after replays");
  });
});

Deno.test("a user is online only while its hosting server is linked: no ghosts (finding 8)", async (t) => {
  await using mesh = await startMesh(2, { args: FAST_HEARTBEAT_ARGS });
  const [a, b] = mesh.nodes as [ServerNode, ServerNode];
  await using alice = await userOn(a, "user0", "alice");
  await using bob = await userOn(b, "user1", "bob");
  await alice.next(advertOf(bob.userId));
  await bob.next(advertOf(alice.userId));
  const carl = await scriptedUser("user5", "carl");
  const cleo = await scriptedUser("user6", "cleo");
  // Never advertised by anyone: its DMs are delivered from any link, so they mark a point in
  // a link's frame order.
  const nobody = await scriptedUser("user7", "nobody");

  /** Proves `node` handled every earlier frame of `peer`: a DM from nobody reaches alice. */
  async function marker(peer: RawServer, node: ServerNode): Promise<void> {
    const text = `marker ${crypto.randomUUID()}`;
    await sendDeliver(
      peer,
      node,
      await deliverPayload({
        sender: nobody.userId,
        signWith: nobody.keys.privateKey,
        senderPub: nobody.pubkey,
        to: alice,
        text,
      }),
    );
    assert.equal((await alice.nextDm(nobody.userId)).text, text);
  }

  await t.step("a user of a server that A cannot reach is never listed on A", async () => {
    // C links to B only; its SERVER_ANNOUNCE (gossiped by B) gives A its key and an address
    // where nobody listens.
    await using c = await linkPeer(b, "server2", bob);
    using beat = keepAlive(c, b);
    await c.sendFrame("SERVER_ANNOUNCE", "*", c.helloPayload());
    await c.sendFrame("USER_ADVERTISE", "*", advert(c, carl));
    await bob.next(advertOf(carl.userId, c.serverId));
    // B forwards C's frames to A in order: carl's advert, then this DM.
    await marker(c, b);
    assert.deepEqual(alice.received().filter(advertOf(carl.userId)), []);
    assert.ok(
      !(await listUsers(alice)).includes(carl.userId),
      "A lists carl, whom it cannot reach",
    );
    assert.ok((await listUsers(bob)).includes(carl.userId));
    await assertAllChat([alice, bob], "while C is linked to B");

    // C goes silent: B declares its link dead after the lowered timeout and carl is gone.
    beat.stop();
    await bob.next(removeOf(carl.userId), 6000);
    assert.ok(!(await listUsers(bob)).includes(carl.userId));
    assert.ok(!(await listUsers(alice)).includes(carl.userId));
    await assertAllChat([alice, bob], "after C went silent");
  });

  await t.step(
    "when a server's link to A drops, its users leave A at once, and gossip about them is ignored until it relinks",
    async () => {
      await using d = await linkPeer(a, "server3", alice);
      using beatA = keepAlive(d, a);
      await using viaB = await linkPeer(b, "server3", bob, d.serverId);
      using beatB = keepAlive(viaB, b);
      await d.sendFrame("USER_ADVERTISE", "*", advert(d, cleo));
      await alice.next(advertOf(cleo.userId, d.serverId));
      await bob.next(advertOf(cleo.userId, d.serverId));
      assert.ok((await listUsers(alice)).includes(cleo.userId));

      beatA.stop();
      await d.close();
      await alice.next(removeOf(cleo.userId));
      assert.ok(!(await listUsers(alice)).includes(cleo.userId));
      // D (still linked to B) renames cleo; B gossips the advert to A, which has no link to D.
      const renamedAdvert = await viaB.sendFrame(
        "USER_ADVERTISE",
        "*",
        advert(viaB, cleo, { display_name: "cleo 2" }),
      );
      const renamed = await bob.next(advertOf(cleo.userId, d.serverId));
      assert.equal((renamed.payload["meta"] as JsonObject)["display_name"], "cleo 2");
      await marker(viaB, b);
      assert.deepEqual(alice.pending().filter(advertOf(cleo.userId)), []);
      assert.ok(
        !(await listUsers(alice)).includes(cleo.userId),
        "A lists cleo, whom it cannot reach",
      );
      await assertAllChat([alice, bob], "while D is linked to B only");

      // D links to A again; its catch-up advert brings cleo back, and alice can write to her.
      // It is the very advert A ignored when B relayed it (same ts, same signature), as when a
      // relayed copy overtakes the link: having ignored it must not make it a duplicate now.
      await using back = await linkPeer(a, "server3", alice, d.serverId);
      using beatBack = keepAlive(back, a);
      back.send(serializeEnvelope(renamedAdvert));
      await alice.next(advertOf(cleo.userId, d.serverId));
      const sent = await alice.dm(cleo, "welcome back, cleo");
      const relayed = await back.next((f) =>
        f.type === "SERVER_DELIVER" && f.payload["ciphertext"] === sent.payload["ciphertext"]
      );
      assert.equal(relayed.payload["user_id"], cleo.userId);

      // cleo moves to E; D's late USER_REMOVE does not evict her from A (spec §7.6 rule 2).
      await using e = await linkPeer(a, "server4", alice);
      using beatE = keepAlive(e, a);
      await e.sendFrame("USER_ADVERTISE", "*", advert(e, cleo));
      await alice.next(advertOf(cleo.userId, e.serverId));
      await back.sendFrame("USER_REMOVE", "*", { user_id: cleo.userId, server_id: back.serverId });
      await marker(back, a);
      assert.deepEqual(alice.pending().filter(removeOf(cleo.userId)), []);
      assert.ok((await listUsers(alice)).includes(cleo.userId));
      const moved = await alice.dm(cleo, "where are you now?");
      await e.next((f) =>
        f.type === "SERVER_DELIVER" && f.payload["ciphertext"] === moved.payload["ciphertext"]
      );

      // E goes silent: A declares its link dead after the lowered timeout; cleo leaves A.
      beatE.stop();
      await alice.next(removeOf(cleo.userId), 6000);
      assert.ok(!(await listUsers(alice)).includes(cleo.userId));
      beatBack.stop();
      beatB.stop();
      await assertAllChat([alice, bob], "after the ghosts left");
    },
  );
});
