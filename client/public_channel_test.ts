/**
 * Tests of public_channel.ts: `/all`, incoming public messages, channel key wraps.
 *
 * @module
 */

import assert from "node:assert/strict";
import {
  decryptText,
  encodeBase64Url,
  encodePublicKey,
  encryptBlock,
  encryptText,
  signContent,
  verifyContent,
} from "../shared/mod.ts";
import { advertise, connected, IDS } from "./_test_util.ts";

Deno.test("sendPublic() sends one encrypted MSG_PUBLIC_CHANNEL per other member", async () => {
  await using h = await connected();
  const bob = await advertise(h, IDS.bob, "bob", "user1");
  const carol = await advertise(h, IDS.carol, "carol", "user2");
  const sending = h.session.sendPublic("hello all");
  const frames = [
    await h.server.nextOf("MSG_PUBLIC_CHANNEL"),
    await h.server.nextOf("MSG_PUBLIC_CHANNEL"),
  ];
  await sending;
  const byTo = new Map(frames.map((f) => [f.to, f]));
  for (const [id, pair] of [[IDS.bob, bob], [IDS.carol, carol]] as const) {
    const f = byTo.get(id)!;
    assert.deepEqual(f.from, IDS.alice);
    assert.deepEqual(f.payload["group_id"], "public");
    const ciphertext = f.payload["ciphertext"] as string;
    assert.deepEqual(await decryptText(pair.privateKey, ciphertext), "hello all");
    const v = await verifyContent(h.keys.publicKey, f.payload["content_sig"] as string, {
      ciphertext,
      from: IDS.alice,
    }, [f.ts]);
    assert.deepEqual(v, "A");
  }
  const sent = await h.events.wait("sent");
  assert.deepEqual([sent.kind, sent.recipients], ["all", 2]);
});

Deno.test("sendPublic() with nobody else online says so and sends nothing", async () => {
  await using h = await connected();
  await h.session.sendPublic("anyone?");
  const info = await h.events.wait("info", (i) => /No one else is online/.test(i.text));
  assert.ok(info);
  assert.deepEqual(h.events.of("sent").length, 0);
});

Deno.test("a plaintext base64url public message is accepted and marked unencrypted", async () => {
  await using h = await connected();
  const bob = await advertise(h, IDS.bob, "bob", "user1");
  const ciphertext = encodeBase64Url(new TextEncoder().encode("plain hello"));
  const ts = 1_700_000_600_000;
  const content_sig = await signContent(bob.privateKey, { ciphertext, from: IDS.bob, ts });
  await h.server.send("MSG_PUBLIC_CHANNEL", {
    ciphertext,
    sender_pub: encodePublicKey(bob.publicKey),
    content_sig,
  }, { from: IDS.bob, to: "public", ts });
  const all = await h.events.wait("all");
  assert.deepEqual(all, {
    event: "all",
    from: IDS.bob,
    from_name: "bob",
    text: "plain hello",
    verified: true,
    trusted: true,
    encrypted: false,
    ts, // when it was sent (the frame's ts), for the message time
  });
});

Deno.test("an encrypted public message uses payload.sender and msg_ts", async () => {
  await using h = await connected();
  const bob = await advertise(h, IDS.bob, "bob", "user1");
  const ciphertext = await encryptText(h.keys.publicKey, "secret all");
  const ts = 1_700_000_600_000;
  const content_sig = await signContent(bob.privateKey, { ciphertext, from: IDS.bob, ts }, "C");
  await h.server.send("MSG_PUBLIC_CHANNEL", {
    ciphertext,
    sender: IDS.bob,
    content_sig,
    group_id: "public",
    msg_ts: ts,
  }, { ts: ts + 5 });
  const all = await h.events.wait("all");
  assert.deepEqual([all.text, all.encrypted, all.verified, all.from], [
    "secret all",
    true,
    true,
    IDS.bob,
  ]);
});

Deno.test("PUBLIC_CHANNEL_UPDATED and KEY_SHARE wraps are unwrapped; malformed ones ignored", async () => {
  await using h = await connected();
  const key = crypto.getRandomValues(new Uint8Array(32));
  await h.server.send("PUBLIC_CHANNEL_UPDATED", {
    version: 3,
    wraps: [
      { member_id: IDS.bob, wrapped_key: "garbage" },
      { member_id: IDS.alice, wrapped_key: await encryptBlock(h.keys.publicKey, key) },
    ],
  });
  await h.server.send("PUBLIC_CHANNEL_KEY_SHARE", {
    shares: [{ member: IDS.alice, wrapped_public_channel_key: "bm90IGEga2V5" }],
    version: 9,
  });
  await h.server.send("PUBLIC_CHANNEL_UPDATED", { version: 4, wraps: "nonsense" });
  await h.server.send("ERROR", { code: "MARK" });
  await h.events.wait("error");
  assert.deepEqual(h.session.publicChannelVersion, 3);
  assert.deepEqual(h.events.of("dm").length + h.events.of("all").length, 0);
});
