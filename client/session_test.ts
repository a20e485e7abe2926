import assert from "node:assert/strict";
import {
  decodeBase64Url,
  decryptText,
  encodeBase64Url,
  encodePublicKey,
  encryptBlock,
  encryptText,
  importPublicKeyText,
  signContent,
  splitForOaep,
  verifyContent,
  verifyEnvelope,
} from "../shared/mod.ts";
import { withTimeout } from "../tests/support/timeout.ts";
import { advertise, connected, fixtureKeyPair, harness, IDS, rejectsWith } from "./_test_util.ts";
import { CommandError, HelloError } from "./session.ts";
import { MemoryTrustStore } from "./trust_store.ts";

const URL_ = "ws://test.invalid:1";

Deno.test("ClientSession.start() sends a self-signed USER_HELLO and pins the ACK's server key", async () => {
  await using h = await harness();
  const started = h.session.start();
  const hello = await h.server.nextOf("USER_HELLO");
  assert.deepEqual(hello.from, IDS.alice);
  assert.deepEqual(hello.to, "server");
  const myPub = encodePublicKey(h.keys.publicKey);
  assert.deepEqual(hello.payload, {
    client: "socp/0.1",
    pubkey: myPub,
    enc_pubkey: myPub,
    meta: { display_name: "alice" },
  });
  assert.ok(await verifyEnvelope(h.keys.publicKey, hello), "USER_HELLO is self-signed");
  await h.server.ack();
  await withTimeout(started, 5000, "start");
  assert.ok(h.session.pinned);
  assert.deepEqual(h.trust.serverPin(URL_), { server_id: IDS.server, pubkey: h.server.pub });
  const ready = await h.events.wait("ready");
  assert.deepEqual(ready, {
    event: "ready",
    user_id: IDS.alice,
    display_name: "alice",
    server: URL_,
    pinned: true,
  });
});

Deno.test("ClientSession addresses USER_HELLO to the pinned server id on later runs", async () => {
  const server = await fixtureKeyPair("server0");
  const trust = new MemoryTrustStore({
    servers: { [URL_]: { server_id: IDS.server, pubkey: encodePublicKey(server.publicKey) } },
  });
  await using h = await harness({ trust });
  const started = h.session.start();
  const hello = await h.server.nextOf("USER_HELLO");
  assert.deepEqual(hello.to, IDS.server);
  await h.server.ack();
  await started;
  assert.deepEqual(h.events.of("info").length, 0, "no new pin announced");
});

Deno.test("ClientSession refuses a server whose key differs from the pin", async () => {
  const other = await fixtureKeyPair("server1");
  const trust = new MemoryTrustStore({
    servers: { [URL_]: { server_id: IDS.server, pubkey: encodePublicKey(other.publicKey) } },
  });
  await using h = await harness({ trust });
  const started = h.session.start();
  await h.server.nextOf("USER_HELLO");
  await h.server.ack();
  const error = await rejectsWith(() => started, HelloError);
  assert.deepEqual(error.code, "SERVER_KEY_CHANGED");
  assert.deepEqual(error.exitCode, 1);
  assert.match(error.message, /SERVER KEY CHANGED.*remove "ws:\/\/test.invalid:1"/);
  assert.deepEqual(
    trust.serverPin(URL_)?.pubkey,
    encodePublicKey(other.publicKey),
    "pin untouched",
  );
});

Deno.test("ClientSession reports NAME_IN_USE during hello as a refusal", async () => {
  await using h = await harness();
  const started = h.session.start();
  await h.server.nextOf("USER_HELLO");
  await h.server.send("ERROR", { code: "NAME_IN_USE", detail: "already connected" });
  const error = await rejectsWith(() => started, HelloError);
  assert.deepEqual(error.code, "NAME_IN_USE");
  assert.deepEqual(error.exitCode, 1);
});

Deno.test("ClientSession fails with exit code 2 when the server hangs up during hello", async () => {
  await using h = await harness();
  const started = h.session.start();
  await h.server.nextOf("USER_HELLO");
  h.server.transport.close(1011, "bye");
  const error = await rejectsWith(() => started, HelloError);
  assert.deepEqual(error.code, "CONNECTION_CLOSED");
  assert.deepEqual(error.exitCode, 2);
});

Deno.test("ClientSession goes on unpinned when the server sends frames but no ACK", async () => {
  await using h = await harness({ session: { helloTimeoutMs: 50 } });
  const started = h.session.start();
  await h.server.nextOf("USER_HELLO");
  const bob = await fixtureKeyPair("user1");
  await h.server.send("USER_ADVERTISE", {
    user_id: IDS.bob,
    meta: { display_name: "bob", pubkey: encodePublicKey(bob.publicKey) },
  }, { sign: "none", to: "*" });
  await withTimeout(started, 5000, "start without ACK");
  assert.ok(!h.session.pinned);
  assert.deepEqual((await h.events.wait("ready")).pinned, false);
  await h.events.wait("presence", (e) => e.user_id === IDS.bob);
  assert.deepEqual(h.trust.serverPin(URL_), undefined);
});

Deno.test("ClientSession drops frames with a missing or foreign signature once pinned", async () => {
  await using h = await harness();
  const started = h.session.start();
  await h.server.nextOf("USER_HELLO");
  await h.server.ack();
  await started;
  const advert = (id: string, name: string) => ({ user_id: id, meta: { display_name: name } });
  await h.server.send("USER_ADVERTISE", advert(IDS.bob, "bob"), { sign: "none" });
  await h.server.send("USER_ADVERTISE", advert(IDS.carol, "carol"), { sign: "bad" });
  await h.server.send("USER_ADVERTISE", advert(IDS.server, "ok"), { sign: "good" });
  await h.events.wait("presence", (e) => e.display_name === "ok");
  assert.deepEqual(h.events.of("presence").length, 1);
  const warnings = h.events.of("warn").map((w) => w.text);
  assert.ok(warnings.some((w) => /no transport signature/.test(w)), warnings.join("\n"));
  assert.ok(warnings.some((w) => /signature is not the server's/.test(w)), warnings.join("\n"));
});

Deno.test("sendDirect() sends MSG_DIRECT the recipient can decrypt and verify", async () => {
  await using h = await connected();
  const bob = await advertise(h, IDS.bob, "Bob", "user1");
  const sending = h.session.sendDirect("bob", "hello bob");
  const env = await h.server.nextOf("MSG_DIRECT");
  await sending;
  assert.deepEqual(env.from, IDS.alice);
  assert.deepEqual(env.to, IDS.bob);
  assert.deepEqual(env.sig, undefined, "no transport sig on user frames");
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

Deno.test("an advert with a different key for a pinned user warns once and keeps the pin", async () => {
  const bob = await fixtureKeyPair("user1");
  const trust = new MemoryTrustStore({ users: { [IDS.bob]: encodePublicKey(bob.publicKey) } });
  await using h = await connected({ trust });
  await advertise(h, IDS.bob, "bob", "user2");
  await h.server.send("USER_ADVERTISE", {
    user_id: IDS.bob,
    meta: { pubkey: encodePublicKey((await fixtureKeyPair("user2")).publicKey) },
  });
  await h.server.send("ERROR", { code: "X" }); // a marker to know the advert was handled
  await h.events.wait("error");
  assert.deepEqual(h.events.of("warn").filter((w) => w.text.includes("KEY CHANGED")).length, 1);
  // Messages still go out under the pinned key.
  const sending = h.session.sendDirect("bob", "still you?");
  const env = await h.server.nextOf("MSG_DIRECT");
  await sending;
  assert.deepEqual(
    await decryptText(bob.privateKey, env.payload["ciphertext"] as string),
    "still you?",
  );
});

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

Deno.test("ERROR frames become error events; unknown frame types are ignored quietly", async () => {
  await using h = await connected();
  await h.server.send("FANCY_NEW_THING", { x: 1 });
  await h.server.send("ERROR", { code: "SOMETHING_ODD", detail: "strange" });
  const err = await h.events.wait("error");
  assert.deepEqual(err, {
    event: "error",
    code: "SOMETHING_ODD",
    detail: "strange",
    source: "server",
  });
  assert.deepEqual(h.events.of("warn").length, 0);
});

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

Deno.test("the session reports a server-side close", async () => {
  await using h = await connected();
  h.server.transport.close(1011, "going away");
  const end = await withTimeout(h.session.closed, 5000, "close");
  assert.deepEqual([end.code, end.byUs], [1011, false]);
  await rejectsWith(() => h.session.sendPublic("x"), CommandError, "Not connected");
});

Deno.test("quit() sends CTRL_CLOSE and closes with 1000", async () => {
  await using h = await connected();
  const quitting = h.session.quit();
  const close = await h.server.nextOf("CTRL_CLOSE");
  assert.deepEqual(close.from, IDS.alice);
  await quitting;
  const end = await h.session.closed;
  assert.deepEqual([end.code, end.byUs], [1000, true]);
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

Deno.test("keys pinned from USER_ADVERTISE are normalised to DER SPKI base64url", async () => {
  await using h = await connected();
  const bob = await fixtureKeyPair("user1");
  const spki = encodePublicKey(bob.publicKey);
  const pem = `-----BEGIN PUBLIC KEY-----\n${
    btoa(String.fromCharCode(...decodeBase64Url(spki))).match(/.{1,64}/g)!.join("\n")
  }\n-----END PUBLIC KEY-----\n`;
  await h.server.send("USER_ADVERTISE", {
    user_id: IDS.bob,
    meta: { display_name: "bob", pubkey: encodeBase64Url(new TextEncoder().encode(pem)) },
  });
  await h.events.wait("presence");
  assert.deepEqual(h.trust.userKey(IDS.bob), spki);
  assert.ok(await importPublicKeyText(h.trust.userKey(IDS.bob)!));
});
