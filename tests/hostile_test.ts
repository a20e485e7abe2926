/**
 * A scripted misbehaving client against a real `socp server` process: malformed, oversize,
 * badly signed, spoofed and flooding frames, each answered with the right ERROR while two honest
 * users on the same server keep chatting (checked with a real DM after every abuse).
 *
 * @module
 */

import assert from "node:assert/strict";
import { encodeBase64Url, encryptText, type Envelope, signContent } from "../shared/mod.ts";
import { weakKey } from "./fixtures/keys.ts";
import {
  connectUser,
  eventually,
  expectRefusal,
  HelloRefusedError,
  isError,
  openUser,
  RawConnection,
  type RawUser,
  startServer,
  TimeoutError,
  TIMEOUTS,
} from "./support/mod.ts";

/** Asserts that alice and bob can still exchange end-to-end encrypted DMs both ways. */
async function assertStillChatting(alice: RawUser, bob: RawUser, label: string): Promise<void> {
  await alice.dm(bob, `ping after ${label}`);
  assert.equal((await bob.nextDm(alice)).text, `ping after ${label}`);
  await bob.dm(alice, `pong after ${label}`);
  assert.equal((await alice.nextDm(bob)).text, `pong after ${label}`);
}

/** An unsigned USER_HELLO envelope (a signature is optional on USER_HELLO). */
function hello(from: string, pubkey: string): Envelope {
  return {
    type: "USER_HELLO",
    from,
    to: "server",
    ts: Date.now(),
    payload: { client: "hostile", pubkey, enc_pubkey: pubkey, meta: { display_name: "mallory" } },
  };
}

/** A LIST_REQUEST from `user` padded to exactly `bytes` bytes of JSON. */
async function paddedListRequest(user: RawUser, to: string, bytes: number): Promise<string> {
  // Signed, as a client that proved its key must sign every frame; a signature is always 683
  // base64url characters, so the padding can be sized first.
  const frame = (pad: string, sig: string) =>
    JSON.stringify({ type: "LIST_REQUEST", from: user.userId, to, ts: 1, payload: { pad }, sig });
  const pad = "x".repeat(bytes - frame("", "s".repeat(683)).length);
  const signed = await user.envelope("LIST_REQUEST", to, { pad }, { ts: 1 });
  const text = frame(pad, signed.sig!);
  assert.equal(new TextEncoder().encode(text).length, bytes);
  return text;
}

Deno.test("socp server answers a misbehaving client with errors while others keep chatting", async (t) => {
  await using server = await startServer();
  const opts = { serverPub: server.pubkey };
  await using alice = await connectUser(server.url, "user0", { ...opts, displayName: "alice" });
  await using bob = await connectUser(server.url, "user1", { ...opts, displayName: "bob" });
  await using mallory = await connectUser(server.url, "user2", { ...opts, displayName: "mallory" });

  await t.step("malformed JSON gets BAD_FRAME and the connection stays open", async () => {
    mallory.send('{"type":"MSG_DIRECT","from":');
    mallory.send("not json at all");
    for (let i = 0; i < 2; i++) {
      const error = await mallory.nextError("BAD_FRAME");
      assert.match(String(error.payload["detail"]), /not valid JSON/);
    }
    assert.ok(mallory.isOpen);
    await assertStillChatting(alice, bob, "malformed JSON");
  });

  await t.step("JSON with wrong field types gets BAD_FRAME", async () => {
    const base = { type: "LIST_REQUEST", from: mallory.userId, to: server.serverId };
    const bad: object[] = [
      { ...base, ts: String(Date.now()), payload: {} },
      { ...base, ts: Date.now(), payload: [] },
      { ...base, ts: Date.now(), payload: "x" },
      { ...base, type: 42, ts: Date.now(), payload: {} },
      { ...base, from: null, ts: Date.now(), payload: {} },
      [base],
      {
        type: "MSG_DIRECT",
        from: mallory.userId,
        to: bob.userId,
        ts: Date.now(),
        payload: { ciphertext: 7 },
      },
    ];
    for (const frame of bad) {
      mallory.send(frame);
      const error = await mallory.nextError();
      assert.equal(error.payload["code"], "BAD_FRAME", `for ${JSON.stringify(frame)}`);
    }
    await assertStillChatting(alice, bob, "wrong field types");
  });

  await t.step("a frame over 65536 bytes gets FRAME_TOO_LARGE", async () => {
    const big = await mallory.envelope("MSG_DIRECT", bob.userId, {
      ciphertext: "A".repeat(70_000),
    });
    mallory.send(big);
    const error = await mallory.nextError("FRAME_TOO_LARGE");
    assert.match(String(error.payload["detail"]), /65536/);
    await assertStillChatting(alice, bob, "an oversize frame");
    // Nothing of it reached bob: his next frame from mallory's link is the real DM below.
    await mallory.dm(bob, "small");
    assert.equal((await bob.nextDm(mallory)).text, "small");
  });

  await t.step("a frame of exactly 65536 bytes is accepted and one byte more is not", async () => {
    mallory.send(await paddedListRequest(mallory, server.serverId, 65_536));
    await mallory.next("LIST_RESPONSE");
    mallory.send(await paddedListRequest(mallory, server.serverId, 65_537));
    await mallory.nextError("FRAME_TOO_LARGE");
    await mallory.sendFrame("LIST_REQUEST", server.serverId, {});
    await mallory.next("LIST_RESPONSE");
    assert.deepEqual(mallory.pending().filter(isError()), []);
  });

  await t.step("an unknown type gets UNKNOWN_TYPE and the connection stays open", async () => {
    await mallory.sendFrame("MSG_TELEPATHY", bob.userId, { thought: "hi" });
    const error = await mallory.nextError("UNKNOWN_TYPE");
    assert.match(String(error.payload["detail"]), /MSG_TELEPATHY/);
    await mallory.sendFrame("LIST_REQUEST", server.serverId, {});
    const list = await mallory.next("LIST_RESPONSE");
    assert.ok((list.payload["online_users"] as string[]).includes(mallory.userId));
    await assertStillChatting(alice, bob, "an unknown type");
  });

  await t.step(
    "a frame claiming another user's id gets IDENTITY_MISMATCH and is not delivered",
    async () => {
      const ts = Date.now();
      const ciphertext = await encryptText(bob.keys.publicKey, "I am alice");
      mallory.send(
        await mallory.envelope("MSG_DIRECT", bob.userId, {
          ciphertext,
          sender_pub: alice.pubkey,
          content_sig: await signContent(mallory.keys.privateKey, {
            ciphertext,
            from: alice.userId,
            to: bob.userId,
            ts,
          }),
        }, { from: alice.userId, ts }),
      );
      const error = await mallory.nextError("IDENTITY_MISMATCH");
      assert.match(String(error.payload["detail"]), new RegExp(mallory.userId));
      // Frames of one connection are handled in order: bob's first DM must be the marker.
      await mallory.dm(bob, "marker");
      const first = await bob.nextDm();
      assert.deepEqual([first.sender, first.text], [mallory.userId, "marker"]);
      await assertStillChatting(alice, bob, "a spoofed sender");
    },
  );

  await t.step("a server-only frame (USER_DELIVER) from a user gets BAD_FRAME", async () => {
    await mallory.sendFrame("USER_DELIVER", bob.userId, {
      ciphertext: "AAAA",
      sender: alice.userId,
      sender_pub: alice.pubkey,
      content_sig: "AAAA",
    });
    const error = await mallory.nextError("BAD_FRAME");
    assert.match(String(error.payload["detail"]), /server frame/);
    await mallory.dm(bob, "marker 2");
    assert.equal((await bob.nextDm(mallory)).text, "marker 2");
    assert.equal(bob.pending().filter((f) => f.type === "USER_DELIVER").length, 0);
    await assertStillChatting(alice, bob, "a server-only frame");
  });

  await t.step("an ERROR sent to the server is never answered with an ERROR", async () => {
    await mallory.sendFrame("ERROR", server.serverId, { code: "BOGUS", detail: "provoke" });
    mallory.send({
      type: "ERROR",
      from: mallory.userId,
      to: server.serverId,
      ts: Date.now(),
      payload: { code: "UNKNOWN_TYPE" },
    });
    // Frames of one connection are handled in order: an answer would come before this one.
    await mallory.sendFrame("LIST_REQUEST", server.serverId, {});
    await mallory.next("LIST_RESPONSE");
    assert.deepEqual(mallory.pending().filter(isError()), []);
    await assertStillChatting(alice, bob, "ERROR frames");
  });

  await t.step("a second USER_HELLO on a live connection gets BAD_FRAME", async () => {
    mallory.send(await mallory.helloEnvelope());
    await mallory.nextError("BAD_FRAME");
    assert.ok(mallory.isOpen);
  });

  await t.step("a first frame other than USER_HELLO gets an ERROR and a close", async () => {
    await using list = await RawConnection.open(server.url, opts);
    list.send({
      type: "LIST_REQUEST",
      from: crypto.randomUUID(),
      to: "server",
      ts: 1,
      payload: {},
    });
    await expectRefusal(list, "BAD_FRAME");

    await using unknown = await RawConnection.open(server.url, opts);
    unknown.send({ type: "HELLO_THERE", from: "x", to: "server", ts: 1, payload: {} });
    await expectRefusal(unknown, "UNKNOWN_TYPE");

    await using garbage = await RawConnection.open(server.url, opts);
    garbage.send("{{{");
    await expectRefusal(garbage, "BAD_FRAME");
    await assertStillChatting(alice, bob, "bad first frames");
  });

  await t.step("a USER_HELLO with a non-UUID user id gets an ERROR and a close", async () => {
    const keys = mallory.keys;
    for (const from of ["mallory", "", "12345678-1234-1234-1234-12345678901z"]) {
      await using conn = await RawConnection.open(server.url, opts);
      conn.send(hello(from, encodeBase64Url(keys.publicKey.spki)));
      const error = await expectRefusal(conn, "BAD_FRAME");
      assert.match(String(error.payload["detail"]), /UUID/);
    }
    await assertStillChatting(alice, bob, "non-UUID ids");
  });

  await t.step("a USER_HELLO whose signature does not verify gets INVALID_SIG", async () => {
    // Signed with user4's key while claiming user3's key.
    const liar = await openUser(server.url, "user4", opts);
    const honest = await openUser(server.url, "user3", opts);
    try {
      const env = await liar.envelope("USER_HELLO", "server", {
        client: "hostile",
        pubkey: honest.pubkey,
        enc_pubkey: honest.pubkey,
        meta: { display_name: "liar" },
      });
      liar.send(env);
      await expectRefusal(liar, "INVALID_SIG");
      // A garbage signature string is refused the same way.
      honest.send({ ...(await honest.helloEnvelope()), sig: "bm90IGEgc2lnbmF0dXJl" });
      await expectRefusal(honest, "INVALID_SIG");
    } finally {
      await liar.close();
      await honest.close();
    }
    await assertStillChatting(alice, bob, "bad signatures");
  });

  await t.step("weak or malformed keys in USER_HELLO get BAD_KEY", async () => {
    const keys: [string, string][] = [
      ["2048-bit key", encodeBase64Url(await weakKey("weak2048"))],
      ["e = 3 key", encodeBase64Url(await weakKey("exp3"))],
      ["garbage", "this is not a key"],
      ["truncated", alice.pubkey.slice(0, 300)],
    ];
    for (const [label, pubkey] of keys) {
      await using conn = await RawConnection.open(server.url, opts);
      conn.send(hello(crypto.randomUUID(), pubkey));
      const error = await expectRefusal(conn, "BAD_KEY");
      assert.ok(error.payload["detail"], label);
    }
    await assertStillChatting(alice, bob, "bad keys");
  });

  await t.step("re-connecting with the same id but a different key gets BAD_KEY", async () => {
    const userId = crypto.randomUUID();
    {
      await using first = await connectUser(server.url, "user5", { ...opts, userId });
      assert.equal(first.ack.payload["msg_ref"], "USER_HELLO_OK");
    }
    await using impostor = await openUser(server.url, "user6", { ...opts, userId });
    const refused = await impostor.hello().then(
      () => assert.fail("a different key for a known id was accepted"),
      (error: unknown) => error,
    );
    assert.ok(refused instanceof HelloRefusedError, String(refused));
    assert.equal(refused.code, "BAD_KEY");
    await impostor.closedByServer();
    // The rightful owner can still come back.
    await using back = await connectUser(server.url, "user5", { ...opts, userId });
    assert.equal(back.ack.payload["msg_ref"], "USER_HELLO_OK");
    await assertStillChatting(alice, bob, "a key change");
  });

  await t.step("an oversize USER_HELLO gets FRAME_TOO_LARGE and a close", async () => {
    await using conn = await RawConnection.open(server.url, opts);
    const env = hello(crypto.randomUUID(), alice.pubkey);
    env.payload["meta"] = { display_name: "x".repeat(70_000) };
    conn.send(env);
    await expectRefusal(conn, "FRAME_TOO_LARGE");
    await assertStillChatting(alice, bob, "an oversize hello");
  });

  await t.step("an oversize USER_HELLO is measured in UTF-8 bytes, not characters", async () => {
    await using conn = await RawConnection.open(server.url, opts);
    const env = hello(crypto.randomUUID(), alice.pubkey);
    // 25,000 characters, 75,000 UTF-8 bytes: over the 65,536-byte user frame limit.
    env.payload["meta"] = { display_name: "€".repeat(25_000) };
    conn.send(env);
    const reply = await conn.next(() => true);
    assert.deepEqual(
      [reply.type, reply.payload["code"]],
      ["ERROR", "FRAME_TOO_LARGE"],
      `a ${new TextEncoder().encode(JSON.stringify(env)).length}-byte USER_HELLO was answered ` +
        `with ${reply.type} ${JSON.stringify(reply.payload).slice(0, 60)}`,
    );
    await conn.closedByServer();
    await assertStillChatting(alice, bob, "a multibyte oversize hello");
  });

  await t.step(
    "a channel-wide frame is relayed with the real sender, whatever payload.sender says",
    async () => {
      const ciphertext = encodeBase64Url(new TextEncoder().encode("I am alice, honest"));
      try {
        await mallory.sendFrame("MSG_PUBLIC_CHANNEL", "public", {
          ciphertext,
          sender: alice.userId,
        });
        const isIt = (f: Envelope) =>
          f.type === "MSG_PUBLIC_CHANNEL" && f.payload["ciphertext"] === ciphertext;
        for (const user of [bob, alice]) {
          const frame = await user.next(isIt, 3000);
          assert.equal(frame.from, mallory.userId);
          assert.equal(
            frame.payload["sender"],
            mallory.userId,
            `${user.displayName} was told the sender is ${
              frame.payload["sender"] === alice.userId ? "alice" : String(frame.payload["sender"])
            }`,
          );
        }
        // No echo to the real sender: the LIST_RESPONSE comes after it would have.
        await mallory.sendFrame("LIST_REQUEST", server.serverId, {});
        await mallory.next("LIST_RESPONSE");
        assert.deepEqual(mallory.pending().filter(isIt), [], "the sender got its own frame back");
      } finally {
        for (const user of [alice, bob, mallory]) user.discard("MSG_PUBLIC_CHANNEL");
      }
      await assertStillChatting(alice, bob, "a forged payload.sender");
    },
  );

  await t.step(
    "a MSG_DIRECT to something that is not a user id is refused and reaches nobody",
    async () => {
      const targets = ["bobby", "*", "public"];
      try {
        for (const to of targets) {
          await mallory.sendFrame("MSG_DIRECT", to, {
            ciphertext: encodeBase64Url(new TextEncoder().encode(`dm to ${to}`)),
            sender_pub: mallory.pubkey,
            content_sig: "AAAA",
          });
        }
        await mallory.dm(bob, "marker 3");
        assert.equal((await bob.nextDm(mallory)).text, "marker 3");
        const leaked = [alice, bob].flatMap((u) =>
          u.pending().filter((f) => f.type === "MSG_DIRECT").map((f) =>
            `${u.displayName} <- ${f.to}`
          )
        );
        assert.deepEqual(leaked, [], "a MSG_DIRECT was fanned out to users");
        await mallory.sendFrame("LIST_REQUEST", server.serverId, {});
        await mallory.next("LIST_RESPONSE");
        const codes = mallory.discard(isError()).map((e) => String(e.payload["code"]));
        assert.equal(codes.length, targets.length, `errors: ${codes.join(", ") || "none"}`);
        for (const code of codes) {
          assert.ok(code === "USER_NOT_FOUND" || code === "BAD_FRAME", code);
        }
      } finally {
        for (const user of [alice, bob, mallory]) user.discard("MSG_DIRECT");
      }
      await assertStillChatting(alice, bob, "DMs to non-user targets");
    },
  );

  await t.step("every frame the server sent verifies with its key", async () => {
    await alice.verifyAllFromServer();
    await bob.verifyAllFromServer();
    await mallory.verifyAllFromServer();
  });
});

Deno.test("socp server rate-limits a flooding client and recovers", async () => {
  await using server = await startServer({ args: ["--rate", "20", "--burst", "20"] });
  const opts = { serverPub: server.pubkey };
  await using alice = await connectUser(server.url, "user0", { ...opts, displayName: "alice" });
  await using bob = await connectUser(server.url, "user1", { ...opts, displayName: "bob" });
  await using flood = await connectUser(server.url, "user2", { ...opts, displayName: "flood" });

  // ACK frames from a user are accepted and ignored, so only the limiter answers them.
  // (HEARTBEAT frames are skipped before the limiter; see server/user_session.ts.)
  const ack = JSON.stringify({
    type: "ACK",
    from: flood.userId,
    to: server.serverId,
    ts: Date.now(),
    payload: { msg_ref: "flood" },
  });
  for (let i = 0; i < 200; i++) flood.send(ack);
  await flood.nextError("RATE_LIMIT");

  // The honest users have their own buckets.
  await assertStillChatting(alice, bob, "a flood");

  // Once the bucket refills (20 tokens/s), the flooder is served again. Waiting for time to pass
  // is the point here, so poll: each try is a LIST_REQUEST that is either answered or dropped.
  await eventually(async () => {
    await flood.sendFrame("LIST_REQUEST", server.serverId, {});
    try {
      return await flood.next("LIST_RESPONSE", 300);
    } catch (error) {
      if (error instanceof TimeoutError) return undefined;
      throw error;
    }
  }, { timeoutMs: TIMEOUTS.eventually, what: "the flooding user to be served again" });
  await flood.dm(alice, "sorry about that");
  assert.equal((await alice.nextDm(flood)).text, "sorry about that");

  const errors = flood.received().filter(isError());
  assert.ok(errors.every((e) => e.payload["code"] === "RATE_LIMIT"));
  // Errors to one link are rate limited too (10/s, bursts of 20).
  assert.ok(errors.length <= 40, `${errors.length} RATE_LIMIT errors for 200 frames`);
  await flood.verifyAllFromServer();
});
