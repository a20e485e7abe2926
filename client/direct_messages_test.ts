/**
 * Tests of direct_messages.ts: `/tell` frames and incoming USER_DELIVER.
 *
 * @module
 */

import assert from "node:assert/strict";
import {
  decryptText,
  encodePublicKey,
  encryptText,
  signContent,
  splitForOaep,
  verifyContent,
  verifyEnvelope,
} from "../shared/mod.ts";
import { advertise, connected, fixtureKeyPair, IDS, rejectsWith } from "./_test_util.ts";
import { CommandError } from "./errors.ts";
import { MemoryTrustStore } from "./trust_store.ts";

Deno.test("sendDirect() sends MSG_DIRECT the recipient can decrypt and verify", async () => {
  await using h = await connected();
  const bob = await advertise(h, IDS.bob, "Bob", "user1");
  const sending = h.session.sendDirect("bob", "hello bob");
  const env = await h.server.nextOf("MSG_DIRECT");
  await sending;
  assert.deepEqual(env.from, IDS.alice);
  assert.deepEqual(env.to, IDS.bob);
  // Signed with the user's key (some servers refuse user frames without `sig`).
  assert.ok(await verifyEnvelope(h.keys.publicKey, env), "user frames carry the user's sig");
  assert.deepEqual(env.payload["sender"], IDS.alice);
  assert.ok(Number.isSafeInteger(env.ts));
  const p = env.payload as Record<string, string>;
  assert.deepEqual(p["sender_pub"], encodePublicKey(h.keys.publicKey));
  assert.deepEqual(await decryptText(bob.privateKey, p["ciphertext"]!), "hello bob");
  const variant = await verifyContent(h.keys.publicKey, p["content_sig"]!, {
    ciphertext: p["ciphertext"]!,
    from: IDS.alice,
    to: IDS.bob,
  }, [env.ts]);
  assert.deepEqual(variant, "A");
  const sent = await h.events.wait("sent");
  assert.deepEqual([sent.kind, sent.to, sent.to_name, sent.parts], ["dm", IDS.bob, "Bob", 1]);
});

Deno.test("sendDirect() signs with the configured content_sig variant", async () => {
  await using h = await connected({ session: { sigVariant: "B" } });
  await advertise(h, IDS.bob, "bob", "user1");
  const sending = h.session.sendDirect(IDS.bob, "x");
  const env = await h.server.nextOf("MSG_DIRECT");
  await sending;
  const p = env.payload as Record<string, string>;
  const fields = { ciphertext: p["ciphertext"]!, from: IDS.alice, to: IDS.bob };
  assert.deepEqual(await verifyContent(h.keys.publicKey, p["content_sig"]!, fields, [env.ts]), "B");
});

Deno.test("sendDirect() splits a long message into OAEP-sized frames with rising ts", async () => {
  await using h = await connected();
  const bob = await advertise(h, IDS.bob, "bob", "user1");
  const text = "é".repeat(300) + "x".repeat(500);
  const expected = splitForOaep(text);
  assert.ok(expected.length >= 3);
  const sending = h.session.sendDirect("bob", text);
  const frames = [];
  for (let i = 0; i < expected.length; i++) frames.push(await h.server.nextOf("MSG_DIRECT"));
  await sending;
  const parts = await Promise.all(
    frames.map((f) => decryptText(bob.privateKey, f.payload["ciphertext"] as string)),
  );
  assert.deepEqual(parts.join(""), text);
  for (let i = 1; i < frames.length; i++) assert.ok(frames[i]!.ts > frames[i - 1]!.ts);
  assert.deepEqual((await h.events.wait("sent")).parts, expected.length);
});

Deno.test("sendDirect() asks PUBKEY_REQUEST for an unknown key and pins the answer", async () => {
  await using h = await connected();
  const bob = await fixtureKeyPair("user1");
  const sending = h.session.sendDirect(IDS.bob, "hi");
  const req = await h.server.nextOf("PUBKEY_REQUEST");
  assert.deepEqual(req.payload, { user_id: IDS.bob });
  await h.server.send("PUBKEY_RESPONSE", {
    user_id: IDS.bob,
    pubkey: encodePublicKey(bob.publicKey),
    display_name: "bob",
  });
  const env = await h.server.nextOf("MSG_DIRECT");
  await sending;
  assert.deepEqual(await decryptText(bob.privateKey, env.payload["ciphertext"] as string), "hi");
  assert.deepEqual(h.trust.userKey(IDS.bob), encodePublicKey(bob.publicKey));
});

Deno.test("sendDirect() reports an unknown user after USER_NOT_FOUND", async () => {
  await using h = await connected();
  const sending = h.session.sendDirect(IDS.carol, "hi");
  await h.server.nextOf("PUBKEY_REQUEST");
  await h.server.send("ERROR", { code: "USER_NOT_FOUND", detail: `${IDS.carol} is not online` });
  await rejectsWith(() => sending, CommandError, "not known to the server");
  const err = await h.events.wait("error");
  assert.deepEqual([err.code, err.source], ["USER_NOT_FOUND", "server"]);
});

async function deliverFrom(
  h: Awaited<ReturnType<typeof connected>>,
  sender: { id: string; key: "user1" | "user2"; pubOf?: "user1" | "user2" },
  text: string,
  variant: "A" | "B" | "C" | "D",
  options: { msgTs?: boolean; corrupt?: boolean } = {},
): Promise<void> {
  const signer = await fixtureKeyPair(sender.key);
  const pub = await fixtureKeyPair(sender.pubOf ?? sender.key);
  const ciphertext = await encryptText(h.keys.publicKey, text);
  const ts = 1_700_000_400_000;
  let sig = await signContent(signer.privateKey, {
    ciphertext,
    from: sender.id,
    to: IDS.alice,
    ts,
  }, variant);
  if (options.corrupt) sig = sig.slice(0, 10) + (sig[10] === "A" ? "B" : "A") + sig.slice(11);
  const payload: Record<string, string | number> = {
    ciphertext,
    sender: sender.id,
    sender_pub: encodePublicKey(pub.publicKey),
    content_sig: sig,
  };
  if (options.msgTs) payload["msg_ts"] = ts;
  await h.server.send("USER_DELIVER", payload, { ts: options.msgTs ? ts + 250 : ts });
}

Deno.test("USER_DELIVER is decrypted and verified (variant A, envelope ts)", async () => {
  await using h = await connected();
  await advertise(h, IDS.bob, "bob", "user1");
  await deliverFrom(h, { id: IDS.bob, key: "user1" }, "hi alice", "A");
  const dm = await h.events.wait("dm");
  assert.deepEqual(dm, {
    event: "dm",
    from: IDS.bob,
    from_name: "bob",
    text: "hi alice",
    verified: true,
    trusted: true,
    ts: 1_700_000_400_000, // when it was sent (the frame's ts), for the message time
  });
});

Deno.test("USER_DELIVER verifies variant B against payload.msg_ts and pins a first key", async () => {
  await using h = await connected();
  await deliverFrom(h, { id: IDS.bob, key: "user1" }, "via B", "B", { msgTs: true });
  const dm = await h.events.wait("dm");
  assert.deepEqual([dm.text, dm.verified, dm.trusted], ["via B", true, true]);
  const bob = await fixtureKeyPair("user1");
  assert.deepEqual(h.trust.userKey(IDS.bob), encodePublicKey(bob.publicKey));
});

Deno.test("USER_DELIVER with a bad content_sig is shown unverified", async () => {
  await using h = await connected();
  await advertise(h, IDS.bob, "bob", "user1");
  await deliverFrom(h, { id: IDS.bob, key: "user1" }, "forged?", "A", { corrupt: true });
  const dm = await h.events.wait("dm");
  assert.deepEqual([dm.text, dm.verified, dm.trusted], ["forged?", false, false]);
});

Deno.test("USER_DELIVER that cannot be decrypted gives a warning", async () => {
  await using h = await connected();
  const bob = await fixtureKeyPair("user1");
  const ciphertext = await encryptText(bob.publicKey, "not for alice");
  await h.server.send("USER_DELIVER", { ciphertext, sender: IDS.bob });
  const warn = await h.events.wait("warn", (w) => /could not decrypt/i.test(w.text));
  assert.match(warn.text, /22222222/);
  assert.deepEqual(h.events.of("dm").length, 0);
});

Deno.test("a changed sender key warns loudly and marks the message untrusted", async () => {
  const bob = await fixtureKeyPair("user1");
  const trust = new MemoryTrustStore({ users: { [IDS.bob]: encodePublicKey(bob.publicKey) } });
  await using h = await connected({ trust });
  await deliverFrom(h, { id: IDS.bob, key: "user2" }, "new key who dis", "A");
  const warn = await h.events.wait("warn", (w) => w.text.includes("KEY CHANGED"));
  assert.match(
    warn.text,
    /KEY CHANGED for .*22222222-2222-4222-8222-222222222222\)! old fp .*, new fp .*NOT trusted/,
  );
  const dm = await h.events.wait("dm");
  assert.deepEqual([dm.verified, dm.trusted], [true, false]);
  assert.deepEqual(h.trust.userKey(IDS.bob), encodePublicKey(bob.publicKey), "pin kept");
});

Deno.test("a replayed USER_DELIVER is shown once", async () => {
  await using h = await connected();
  const bob = await advertise(h, IDS.bob, "bob", "user1");
  const ciphertext = await encryptText(h.keys.publicKey, "once");
  const ts = 1_700_000_000_123;
  const content_sig = await signContent(bob.privateKey, {
    ciphertext,
    from: IDS.bob,
    to: IDS.alice,
    ts,
  });
  const payload = { ciphertext, sender: IDS.bob, content_sig };
  await h.server.send("USER_DELIVER", payload, { ts });
  await h.server.send("USER_DELIVER", payload, { ts });
  await h.server.send("ERROR", { code: "MARK" });
  await h.events.wait("error");
  assert.deepEqual(h.events.of("dm").length, 1);
});
