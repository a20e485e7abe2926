/**
 * Per-peer behaviour learned from the wire (docs/protocol.md, "Talking to other
 * implementations"), in both roles: a real socp server against scripted clients and servers
 * that behave as Group 56's and Group 17's did live (reference Appendix E.1), and the real socp
 * client (connection.ts, session.ts) against scripted servers of both kinds.
 *
 * @module
 */

import assert from "node:assert/strict";
import {
  decryptText,
  encodeKeyText,
  encodePublicKey,
  encryptBlock,
  encryptText,
  importPublicKeyText,
  keyEncodingOf,
  publicMessageLabels,
  publicVersionLabel,
  samePublicKey,
  serializeEnvelope,
  signContent,
  signedEnvelope,
  verifyContent,
  verifyEnvelope,
} from "../shared/mod.ts";
import { advertise, harness, IDS } from "../client/_test_util.ts";
import { fixtureKeyPair } from "./fixtures/keys.ts";
import {
  connectUser,
  isError,
  openServerPeer,
  openUser,
  type RawServer,
  startServer,
  withTimeout,
} from "./support/mod.ts";

const pemOf = (key: string) => encodeKeyText(key, "pem");

/** Links a scripted peer with SERVER_HELLO_LINK; `socp` adds socp's capability marker. */
async function link(peer: RawServer, to: string, options: { pem?: boolean; socp?: boolean }) {
  const payload = peer.helloPayload({
    pubkey: options.pem ? pemOf(peer.pubkey) : peer.pubkey,
    ...(options.socp ? { socp: { caps: ["public-channel-wraps", "relay-inner-type"] } } : {}),
  });
  await peer.sendFrame("SERVER_HELLO_LINK", to, payload, { sign: "none" });
}

Deno.test("socp server: foreign clients may send unsigned frames and get keys as they write them; socp clients must sign", async () => {
  await using server = await startServer({ serverKey: "server0" });
  await using alice = await connectUser(server.url, "user0", { serverPub: server.pubkey });

  // A Group 56-style client: unsigned hello, no proof of possession, key as base64url(PEM).
  await using g56 = await openUser(server.url, "user1");
  g56.send(serializeEnvelope({
    type: "USER_HELLO",
    from: g56.userId,
    to: "*",
    ts: Date.now(),
    payload: {
      client: "cli-v1",
      pubkey: pemOf(g56.pubkey),
      enc_pubkey: pemOf(g56.pubkey),
      meta: {},
    },
  }));
  const ack = await g56.next((f) => f.type === "ACK");
  assert.equal(keyEncodingOf(String(ack.payload["server_pub"])), "pem", "server_pub as PEM text");
  assert.ok(samePublicKey(String(ack.payload["server_pub"]), server.pubkey));
  assert.ok(await verifyEnvelope(await importPublicKeyText(server.pubkey), ack));
  const catchUp = await g56.next((f) =>
    f.type === "USER_ADVERTISE" && f.payload["user_id"] === alice.userId
  );
  const meta = catchUp.payload["meta"] as Record<string, string>;
  assert.equal(keyEncodingOf(meta["pubkey"]!), "pem", "keys reach a PEM client as PEM");
  assert.ok(samePublicKey(meta["pubkey"]!, alice.pubkey));

  // Its unsigned DM is delivered (no proof of possession, so no signature required).
  const ts = Date.now();
  const ciphertext = await encryptText(alice.keys.publicKey, "from g56");
  await g56.sendFrame("MSG_DIRECT", alice.userId, {
    ciphertext,
    sender_pub: pemOf(g56.pubkey),
    content_sig: await signContent(g56.keys.privateKey, {
      ciphertext,
      from: g56.userId,
      to: alice.userId,
      ts,
    }),
  }, { ts, sign: false });
  assert.equal((await alice.nextDm(g56.userId)).text, "from g56");

  // A socp client proved its key: an unsigned frame is refused, a wrongly signed one too.
  await alice.sendFrame("LIST_REQUEST", server.serverId, {}, { sign: false });
  const refused = await alice.nextError("INVALID_SIG");
  assert.match(String(refused.payload["detail"]), /LIST_REQUEST' requires signature/);
  const other = await fixtureKeyPair("user2");
  const { sig: _sig, ...fields } = await alice.envelope("LIST_REQUEST", server.serverId, {});
  alice.send(serializeEnvelope(await signedEnvelope(other.privateKey, fields)));
  await alice.nextError("INVALID_SIG");
  await alice.sendFrame("LIST_REQUEST", server.serverId, {});
  await alice.next("LIST_RESPONSE");
  assert.deepEqual(alice.pending().filter(isError()), []);
});

Deno.test("socp server: socp-only frames, key encoding, relay form and key lookups follow each peer", async () => {
  await using server = await startServer({ serverKey: "server0" });
  const serverKey = await importPublicKeyText(server.pubkey);
  // A Group 56-style peer (keys as PEM text), a Group 17-style peer (DER, no socp marker) and
  // a socp peer.
  await using g56 = await openServerPeer(server.url, "server3", { serverPub: server.pubkey });
  await using g17 = await openServerPeer(server.url, "server4", { serverPub: server.pubkey });
  await using socp = await openServerPeer(server.url, "server1", { serverPub: server.pubkey });
  await link(g56, server.serverId, { pem: true });
  await link(g17, server.serverId, {});
  await link(socp, server.serverId, { socp: true });
  await socp.next((f) => f.type === "ACK" && f.payload["msg_ref"] === "SERVER_HELLO_OK");

  await using alice = await connectUser(server.url, "user0", { serverPub: server.pubkey });
  // Only the socp peer gets socp's public-channel frames (a wrapped group key in `wrapped_key`
  // reads as a 683-character "key" to a peer that puts member keys there).
  await socp.next("PUBLIC_CHANNEL_UPDATED");
  const advert = await g56.next((f) =>
    f.type === "USER_ADVERTISE" && f.payload["user_id"] === alice.userId
  );
  const meta = advert.payload["meta"] as Record<string, string>;
  assert.equal(keyEncodingOf(meta["pubkey"]!), "pem", "a PEM peer gets keys as PEM text");
  assert.ok(samePublicKey(meta["pubkey"]!, alice.pubkey));
  assert.equal(meta["pubkey"]!.length > 700, true);
  assert.ok(await verifyEnvelope(serverKey, advert), "re-issued and signed by the server");
  const advert17 = await g17.next((f) =>
    f.type === "USER_ADVERTISE" && f.payload["user_id"] === alice.userId
  );
  assert.equal((advert17.payload["meta"] as Record<string, string>)["pubkey"], alice.pubkey);

  // A Group 17-style user without a key in its advert: the server asks its server for the key.
  const bobKeys = await fixtureKeyPair("user1");
  const bobId = crypto.randomUUID();
  await g17.sendFrame("USER_ADVERTISE", "*", { user_id: bobId, server_id: g17.serverId });
  await alice.next((f) => f.type === "USER_ADVERTISE" && f.payload["user_id"] === bobId);
  await alice.sendFrame("PUBKEY_REQUEST", server.serverId, { user_id: bobId });
  const asked = await g17.next("PUBKEY_REQUEST");
  assert.equal(asked.payload["user_id"], bobId);
  await g17.sendFrame("PUBKEY_RESPONSE", server.serverId, {
    user_id: bobId,
    pubkey: encodePublicKey(bobKeys.publicKey),
  });
  const answer = await alice.next("PUBKEY_RESPONSE");
  assert.equal(answer.payload["pubkey"], encodePublicKey(bobKeys.publicKey));

  // A public message for bob goes to his Group 17-style server as the user frame itself.
  const sent = await alice.sendPublic(bobId, await encryptText(bobKeys.publicKey, "hi bob"));
  const relayed = await g17.next((f) =>
    f.type === "MSG_PUBLIC_CHANNEL" || f.type === "SERVER_DELIVER"
  );
  assert.equal(relayed.type, "MSG_PUBLIC_CHANNEL", "not SERVER_DELIVER with inner_type");
  assert.equal(relayed.from, alice.userId);
  assert.equal(relayed.to, bobId);
  assert.equal(relayed.ts, sent.ts);
  assert.equal(relayed.payload["content_sig"], sent.payload["content_sig"]);
  assert.ok(await verifyEnvelope(serverKey, relayed));

  // Round trips on the foreign links: had a socp-only frame been sent, it would have come first.
  for (const peer of [g56, g17]) {
    await peer.sendFrame("PUBKEY_REQUEST", server.serverId, { user_id: crypto.randomUUID() });
    const none = await peer.next("PUBKEY_RESPONSE");
    assert.equal(none.payload["pubkey"], null, "an unknown user is answered with pubkey null");
    const socpOnly = peer.received().filter((f) => f.type.startsWith("PUBLIC_CHANNEL_"));
    assert.deepEqual(socpOnly.map((f) => f.type), [], "no socp-only frames to a foreign peer");
  }
});

Deno.test("socp client against a Group 17-style server: late key, variant B, labelled public messages, files without sha256", async () => {
  await using h = await harness({ session: { helloTimeoutMs: 50 } });
  const started = h.session.start();
  const hello = await h.server.nextOf("USER_HELLO");
  assert.equal(hello.to, "*", "a `to` every server accepts");
  // Welcome and key share first; the key comes later than the client waits.
  await h.server.send("CLIENT_WELCOME", { user_id: IDS.alice });
  const groupKey = crypto.getRandomValues(new Uint8Array(32));
  await h.server.send("PUBLIC_CHANNEL_KEY_SHARE", {
    shares: [{
      member: IDS.alice,
      wrapped: await encryptBlock(h.keys.publicKey, groupKey, publicVersionLabel(3)),
    }],
    creator_pub: h.server.pub,
    version: 3,
  }, { to: "*" });
  await withTimeout(started, 10_000, "the session to go ready");
  assert.equal(h.session.pinned, false);
  await h.server.ack();
  await h.events.wait("info", (e) => /sent its key late/.test(e.text));
  assert.ok(h.session.pinned, "the late key is pinned and checked from now on");
  await h.server.send("USER_REMOVE", { user_id: IDS.carol }, { sign: "bad" });
  await h.events.wait("warn", (e) => /transport signature is not the server's/.test(e.text));

  // DMs: signed frames, content_sig variant B (this server drops others silently).
  const bob = await advertise(h, IDS.bob, "bob", "user1");
  const sending = h.session.sendDirect("bob", "hello 17");
  const dm = await h.server.nextOf("MSG_DIRECT");
  await sending;
  assert.ok(await verifyEnvelope(h.keys.publicKey, dm));
  const p = dm.payload as Record<string, string>;
  assert.equal(
    await verifyContent(h.keys.publicKey, p["content_sig"]!, {
      ciphertext: p["ciphertext"]!,
      from: IDS.alice,
      to: IDS.bob,
    }, [dm.ts]),
    "B",
  );
  assert.equal(await decryptText(bob.privateKey, p["ciphertext"]!), "hello 17");

  // `pubkey: null` means not found, not a malformed frame.
  const asking = h.session.sendDirect(IDS.carol, "?").catch((e: Error) => e);
  const req = await h.server.nextOf("PUBKEY_REQUEST");
  await h.server.send("PUBKEY_RESPONSE", { user_id: req.payload["user_id"]!, pubkey: null });
  assert.ok((await asking) instanceof Error);
  assert.deepEqual(h.events.of("warn").filter((w) => /malformed/i.test(w.text)), []);

  // A public message in Group 17's form: OAEP label from the group key of its version.
  const labels = await publicMessageLabels(3, groupKey);
  const ts = Date.now();
  const ciphertext = await encryptBlock(
    h.keys.publicKey,
    new TextEncoder().encode("public from 17"),
    labels[0],
  );
  await h.server.send("MSG_PUBLIC_CHANNEL", {
    ciphertext,
    sender_pub: encodePublicKey(bob.publicKey),
    content_sig: await signContent(bob.privateKey, { ciphertext, from: IDS.bob, ts }, "B"),
    group_id: "public",
    public_version: 3,
  }, { from: IDS.bob, to: IDS.alice, ts });
  const all = await h.events.wait("all");
  assert.equal(all.text, "public from 17");
  assert.equal(all.encrypted, true);
  assert.equal(all.verified, true);

  // A file whose manifest has no sha256: received, and said to be unchecked.
  const fileId = crypto.randomUUID();
  const data = new TextEncoder().encode("seventeen");
  await h.server.send("FILE_START", {
    file_id: fileId,
    name: "g17.txt",
    size: data.length,
    sender_pub: encodePublicKey(bob.publicKey),
  }, { from: IDS.bob });
  await h.server.send("FILE_CHUNK", {
    file_id: fileId,
    index: 0,
    total: 1,
    ciphertext: await encryptBlock(h.keys.publicKey, data),
    sender_pub: encodePublicKey(bob.publicKey),
  }, { from: IDS.bob });
  await h.server.send("FILE_END", { file_id: fileId }, { from: IDS.bob });
  const file = await h.events.wait("file");
  assert.equal(file.ok, true, file.reason);
  assert.equal(file.unverified, true);
  assert.equal(await Deno.readTextFile(file.path!), "seventeen");
});

Deno.test("socp client against a Group 56-style server: no ACK, keys as PEM text, every frame signed", async () => {
  await using h = await harness({ session: { helloTimeoutMs: 50 } });
  const started = h.session.start();
  const hello = await h.server.nextOf("USER_HELLO");
  assert.equal(hello.to, "*");
  // No ACK; a catch-up advert with the key as base64url(PEM).
  const bob = await fixtureKeyPair("user1");
  await h.server.send("USER_ADVERTISE", {
    user_id: IDS.bob,
    server_id: h.server.id,
    meta: { pubkey: pemOf(encodePublicKey(bob.publicKey)) },
  }, { to: IDS.alice });
  await withTimeout(started, 10_000, "the session to go ready");
  await h.events.wait("presence", (e) => e.user_id === IDS.bob && e.online);
  const sending = h.session.sendDirect(IDS.bob, "hello 56");
  const dm = await h.server.nextOf("MSG_DIRECT");
  await sending;
  assert.ok(await verifyEnvelope(h.keys.publicKey, dm), "signed with the user key");
  const p = dm.payload as Record<string, string>;
  assert.equal(p["sender"], IDS.alice);
  assert.equal(keyEncodingOf(p["sender_pub"]!), "pem", "sender_pub in the server's encoding");
  assert.ok(samePublicKey(p["sender_pub"]!, encodePublicKey(h.keys.publicKey)));
  assert.equal(
    await verifyContent(h.keys.publicKey, p["content_sig"]!, {
      ciphertext: p["ciphertext"]!,
      from: IDS.alice,
      to: IDS.bob,
    }, [dm.ts]),
    "A",
  );
  const list = h.session.list();
  const req = await h.server.nextOf("LIST_REQUEST");
  assert.ok(await verifyEnvelope(h.keys.publicKey, req), "requests are signed too");
  await list;
});
