/**
 * A scripted misbehaving *server* against a real three-server mesh: a raw WebSocket that links
 * to server A with SERVER_HELLO_LINK under its own fixture key and then sends forged presence,
 * badly signed, replayed, malformed and oversize frames, or tries to link with a stolen id or a
 * weak key. Each abuse is refused or ignored, and after each the honest users on the three
 * servers still chat with each other.
 *
 * @module
 */

import assert from "node:assert/strict";
import {
  encodeBase64Url,
  encodePublicKey,
  encryptText,
  type Envelope,
  type KeyPair,
  signContent,
} from "../shared/mod.ts";
import { fixtureKeyPair, weakKey } from "./fixtures/keys.ts";
import {
  advertOf,
  assertAllChat,
  assertDm,
  connectUser,
  expectRefusal,
  listUsers,
  openServerPeer,
  RawConnection,
  type RawServer,
  type RawUser,
  removeOf,
  type ServerNode,
  type SignWith,
  startMesh,
} from "./support/mod.ts";

/** A user hosted on the hostile server: an id and a fixture key. */
interface HostileUser {
  userId: string;
  keys: KeyPair;
  pubkey: string;
}

Deno.test("a hostile server peer is refused or ignored while honest users keep chatting", async (t) => {
  await using mesh = await startMesh(3);
  const [a, b, c] = mesh.nodes as [ServerNode, ServerNode, ServerNode];
  await using alice = await connectUser(a.url, "user0", {
    serverPub: a.pubkey,
    displayName: "alice",
  });
  await using bob = await connectUser(b.url, "user1", { serverPub: b.pubkey, displayName: "bob" });
  await using carol = await connectUser(c.url, "user2", {
    serverPub: c.pubkey,
    displayName: "carol",
  });
  const honest = [alice, bob, carol];
  for (const user of honest) {
    for (const other of honest) if (other !== user) await user.next(advertOf(other.userId));
  }
  const malloryKeys = await fixtureKeyPair("user5");
  const mallory: HostileUser = {
    userId: crypto.randomUUID(),
    keys: malloryKeys,
    pubkey: encodePublicKey(malloryKeys.publicKey),
  };

  /** Links a fresh hostile peer (key server4) to A and waits until A sent its catch-up. */
  async function linkHostile(): Promise<RawServer> {
    const evil = await openServerPeer(a.url, "server4", { serverPub: a.pubkey });
    await evil.helloLink(a.serverId);
    await evil.next(advertOf(alice.userId, a.serverId));
    return evil;
  }

  /** A SERVER_DELIVER from the hostile peer carrying a real DM from mallory to `to`. */
  async function deliverFrame(
    evil: RawServer,
    to: RawUser,
    text: string,
    sign: SignWith = "self",
  ): Promise<Envelope> {
    const ts = Date.now();
    const ciphertext = await encryptText(to.keys.publicKey, text);
    const contentSig = await signContent(mallory.keys.privateKey, {
      ciphertext,
      from: mallory.userId,
      to: to.userId,
      ts,
    });
    return await evil.frame("SERVER_DELIVER", a.serverId, {
      user_id: to.userId,
      ciphertext,
      sender: mallory.userId,
      sender_pub: mallory.pubkey,
      content_sig: contentSig,
      orig_ts: ts,
      msg_ts: ts,
    }, { ts, sign });
  }

  /**
   * Proves A has handled every earlier frame of `evil`: a marker DM from mallory through the
   * same link reaches alice (frames of one link are handled in order).
   */
  async function marker(evil: RawServer): Promise<void> {
    const text = `marker ${crypto.randomUUID()}`;
    evil.send(await deliverFrame(evil, alice, text));
    assert.equal((await alice.nextDm(mallory.userId)).text, text);
  }

  /** The honest users still chat in every direction, and nobody was told about `ghosts`. */
  async function stillHonest(label: string, ghosts: readonly string[] = []): Promise<void> {
    await assertAllChat(honest, label);
    for (const user of honest) {
      const told = user.received().filter((f) =>
        (f.type === "USER_ADVERTISE" || f.type === "USER_REMOVE") &&
        ghosts.includes(String(f.payload["user_id"]))
      );
      assert.deepEqual(told, [], `${user.displayName} was told about a forged user`);
      const listed = await listUsers(user);
      for (const ghost of ghosts) assert.ok(!listed.includes(ghost), `${ghost} listed`);
      for (const other of honest) assert.ok(listed.includes(other.userId));
    }
  }

  await t.step("a linked peer may advertise its own users", async () => {
    await using evil = await linkHostile();
    await evil.sendFrame("USER_ADVERTISE", "*", {
      user_id: mallory.userId,
      server_id: evil.serverId,
      meta: { display_name: "mallory", pubkey: mallory.pubkey },
    });
    const advert = await alice.next(advertOf(mallory.userId));
    assert.equal(advert.payload["server_id"], evil.serverId);
    await marker(evil);
    assert.deepEqual(evil.pending().filter((f) => f.type === "ERROR"), []);
    // (its link closes at the end of this step, and with it mallory's presence)
    await evil.close();
    await alice.next(removeOf(mallory.userId));
  });

  await t.step(
    "a USER_ADVERTISE for a user 'hosted' on another server, signed by the peer, is refused",
    async () => {
      await using evil = await linkHostile();
      const ghost = crypto.randomUUID();
      for (const from of [evil.serverId, b.serverId]) {
        await evil.sendFrame("USER_ADVERTISE", "*", {
          user_id: ghost,
          server_id: b.serverId,
          meta: { display_name: "ghost", pubkey: mallory.pubkey },
        }, { from });
        const error = await evil.nextError();
        assert.equal(
          error.payload["code"],
          "INVALID_SIG",
          `from ${from}: ${error.payload["detail"]}`,
        );
      }
      await marker(evil);
      await stillHonest("a forged advert", [ghost]);
    },
  );

  await t.step("a USER_REMOVE for a user hosted on another server has no effect", async () => {
    await using evil = await linkHostile();
    for (const from of [evil.serverId, b.serverId]) {
      await evil.sendFrame("USER_REMOVE", "*", {
        user_id: bob.userId,
        server_id: b.serverId,
      }, { from });
      const error = await evil.nextError();
      assert.equal(
        error.payload["code"],
        "INVALID_SIG",
        `from ${from}: ${error.payload["detail"]}`,
      );
    }
    // Validly signed, but the peer does not host bob: ignored.
    await evil.sendFrame("USER_REMOVE", "*", { user_id: bob.userId, server_id: evil.serverId });
    await marker(evil);
    assert.deepEqual(alice.received().filter(removeOf(bob.userId)), []);
    assert.ok((await listUsers(alice)).includes(bob.userId));
    await assertDm(alice, bob, "bob is still here");
    await stillHonest("a forged remove");
  });

  await t.step("garbage, foreign and missing signatures get INVALID_SIG", async () => {
    await using evil = await linkHostile();
    const ghost = crypto.randomUUID();
    const advert = {
      user_id: ghost,
      server_id: evil.serverId,
      meta: { display_name: "ghost", pubkey: mallory.pubkey },
    };
    const signed = await evil.frame("USER_ADVERTISE", "*", advert);
    const cases: [string, Envelope][] = [
      ["garbage sig", await evil.frame("USER_ADVERTISE", "*", advert, { sign: { sig: "AAAA" } })],
      [
        "sig by another key",
        await evil.frame("USER_ADVERTISE", "*", advert, { sign: { key: mallory.keys.privateKey } }),
      ],
      ["unsigned", await evil.frame("USER_ADVERTISE", "*", advert, { sign: "none" })],
      [
        "payload changed after signing",
        { ...signed, payload: { ...advert, meta: { display_name: "other" } } },
      ],
      ["forged DM", await deliverFrame(evil, alice, "forged", { key: mallory.keys.privateKey })],
    ];
    for (const [label, frame] of cases) {
      evil.send(frame);
      const error = await evil.nextError();
      assert.equal(error.payload["code"], "INVALID_SIG", `${label}: ${error.payload["detail"]}`);
    }
    await marker(evil);
    assert.deepEqual(
      alice.pending().filter((f) => f.type === "USER_DELIVER").map((f) => f.payload["sender"]),
      [],
    );
    await stillHonest("bad signatures", [ghost]);
  });

  await t.step("a replayed SERVER_DELIVER is delivered exactly once", async () => {
    await using evil = await linkHostile();
    const frame = await deliverFrame(evil, alice, "only once");
    evil.send(frame);
    evil.send(frame);
    assert.equal((await alice.nextDm(mallory.userId)).text, "only once");
    await marker(evil);
    // Replayed again over a new link from the same peer.
    await using again = await linkHostile();
    again.send(frame);
    await marker(again);
    const copies = alice.pending().filter((f) =>
      f.type === "USER_DELIVER" && f.payload["ciphertext"] === frame.payload["ciphertext"]
    );
    assert.deepEqual(copies, []);
    assert.deepEqual(evil.pending().filter((f) => f.type === "ERROR"), []);
    await stillHonest("a replay");
  });

  await t.step(
    "malformed, unknown and oversize frames get an ERROR; the link survives",
    async () => {
      await using evil = await linkHostile();
      const bad: [string, string][] = [
        ["BAD_FRAME", '{"type":"USER_ADVERTISE","from":'],
        ["BAD_FRAME", "[1, 2, 3]"],
        ["BAD_FRAME", JSON.stringify({ type: "USER_ADVERTISE", from: evil.serverId, to: "*" })],
        [
          "UNKNOWN_TYPE",
          JSON.stringify(await evil.frame("SERVER_TELEPATHY", a.serverId, { thought: "hi" })),
        ],
        [
          "FRAME_TOO_LARGE",
          JSON.stringify({
            type: "HEARTBEAT",
            from: evil.serverId,
            to: a.serverId,
            ts: Date.now(),
            payload: { pad: "x".repeat((1 << 20) + 10) },
          }),
        ],
      ];
      for (const [code, text] of bad) {
        evil.send(text);
        const error = await evil.nextError();
        assert.equal(
          error.payload["code"],
          code,
          `${text.slice(0, 60)}: ${error.payload["detail"]}`,
        );
      }
      assert.ok(evil.isOpen);
      await marker(evil);
      await stillHonest("malformed frames");
    },
  );

  await t.step(
    "SERVER_HELLO_LINK with the id of a pinned server but another key: BAD_KEY",
    async () => {
      await using impostor = await openServerPeer(a.url, "server4", {
        serverId: b.serverId,
        serverPub: a.pubkey,
      });
      await impostor.helloLink(a.serverId);
      const error = await expectRefusal(impostor, "BAD_KEY");
      assert.match(String(error.payload["detail"]), new RegExp(b.serverId));
      await stillHonest("an impostor link");
    },
  );

  await t.step("SERVER_HELLO_LINK with a weak key gets BAD_KEY", async () => {
    for (const name of ["weak2048", "exp3"] as const) {
      await using conn = await RawConnection.open(a.url, { serverPub: a.pubkey });
      const id = crypto.randomUUID();
      conn.send({
        type: "SERVER_HELLO_LINK",
        from: id,
        to: a.serverId,
        ts: Date.now(),
        payload: {
          host: "127.0.0.1",
          port: 9,
          pubkey: encodeBase64Url(await weakKey(name)),
          server_id: id,
        },
      });
      await expectRefusal(conn, "BAD_KEY");
    }
    await stillHonest("weak keys");
  });

  await t.step("SERVER_HELLO_LINK whose signature does not verify gets INVALID_SIG", async () => {
    await using liar = await openServerPeer(a.url, "server4", { serverPub: a.pubkey });
    await liar.helloLink(a.serverId, { sign: { key: mallory.keys.privateKey } });
    await expectRefusal(liar, "INVALID_SIG");
    await stillHonest("a badly signed hello");
  });

  // The last steps: if the server gives in, routing to the victims is broken afterwards.
  await t.step("a peer cannot take over a user hosted on another server", async () => {
    await using evil = await linkHostile();
    // Claims that bob now lives on the hostile server, under mallory's key.
    await evil.sendFrame("USER_ADVERTISE", "*", {
      user_id: bob.userId,
      server_id: evil.serverId,
      meta: { display_name: "bob", pubkey: mallory.pubkey },
    });
    await marker(evil);
    assert.deepEqual(
      alice.received().filter(advertOf(bob.userId, evil.serverId)).map((f) => f.payload),
      [],
      "A accepted the hostile server's claim to host bob (with another key) and told alice",
    );
    // alice's DMs still go to the real bob, on B, not to the hostile server.
    const sent = await alice.dm(bob, "are you the real bob?");
    const got = await bob.nextDm(alice, 5000).then(
      (dm) => dm.text,
      (error: Error) => error.message,
    );
    const stolen = evil.received().some((f) =>
      f.type === "SERVER_DELIVER" && f.payload["ciphertext"] === sent.payload["ciphertext"]
    );
    assert.ok(!stolen, "alice's DM to bob was routed to the hostile server");
    assert.equal(got, "are you the real bob?");
    await stillHonest("a takeover attempt");
  });

  await t.step("a peer cannot end a local user's session by claiming to host it", async () => {
    await using evil = await linkHostile();
    await using dave = await connectUser(a.url, "user3", {
      serverPub: a.pubkey,
      displayName: "dave",
    });
    await evil.next(advertOf(dave.userId, a.serverId));
    await evil.sendFrame("USER_ADVERTISE", "*", {
      user_id: dave.userId,
      server_id: evil.serverId,
      meta: { display_name: "dave", pubkey: mallory.pubkey },
    });
    await marker(evil);
    // A DM to dave proves his session is still open (and still routed to him).
    await assertDm(alice, dave, "dave is still on A");
    assert.ok(dave.isOpen);
    await stillHonest("a local takeover attempt");
  });
});
