/**
 * Interop with other SOCP implementations' server forms (reference Appendix D/E), played by a
 * scripted peer against a real socp server: what socp emits to them and which of their
 * variants it accepts.
 *
 * @module
 */

import assert from "node:assert/strict";
import {
  canonicalBytes,
  encodeBase64Url,
  encryptText,
  type Envelope,
  importPublicKeyText,
  type JsonObject,
  keyEncodingOf,
  publicKeyToPem,
  rsa,
  samePublicKey,
  serializeEnvelope,
  signContent,
  verifyEnvelope,
} from "../shared/mod.ts";
import { fixtureKeyPair } from "./fixtures/keys.ts";
import { connectUser, openServerPeer, type RawServer, startServer } from "./support/mod.ts";

const pemB64 = (pem: string) => encodeBase64Url(new TextEncoder().encode(pem));

/** A frame signed with PSS salt 32 (as G69, ari7rez and G29 sign). */
async function salt32Frame(
  peer: RawServer,
  type: string,
  to: string,
  payload: JsonObject,
): Promise<Envelope> {
  const sig = await rsa().sign(peer.keys.privateKey, canonicalBytes(payload), 32);
  return { type, from: peer.serverId, to, ts: Date.now(), payload, sig: encodeBase64Url(sig) };
}

Deno.test("socp interoperates with other implementations' server-to-server forms", async (t) => {
  await using server = await startServer({ serverKey: "server0" });
  const serverKey = await importPublicKeyText(server.pubkey);
  await using alice = await connectUser(server.url, "user0", {
    serverPub: server.pubkey,
    displayName: "alice",
  });

  await t.step(
    "a joiner gets SERVER_WELCOME with servers and clients lists, both id keys, and server_pub",
    async () => {
      await using joiner = await openServerPeer(server.url, "server3", {
        serverPub: server.pubkey,
      });
      // G17/G56 send the handshake unsigned; the key may be DER base64url.
      await joiner.sendFrame("SERVER_HELLO_JOIN", `${server.host}:${server.port}`, {
        host: "127.0.0.1",
        port: 9,
        pubkey: joiner.pubkey,
      }, { sign: "none" });
      const welcome = await joiner.next("SERVER_WELCOME");
      assert.ok(await verifyEnvelope(serverKey, welcome), "WELCOME is signed by the introducer");
      const p = welcome.payload;
      assert.equal(p["assigned_id"], joiner.serverId);
      assert.equal(p["server_id"], server.serverId);
      assert.equal(p["server_pub"], server.pubkey);
      for (const list of [p["servers"], p["clients"]]) {
        assert.ok(Array.isArray(list));
        const self = (list as JsonObject[]).find((e) => e["server_id"] === server.serverId);
        assert.ok(self, "the introducer lists itself");
        assert.equal(self["user_id"], server.serverId);
        assert.equal(self["pubkey"], server.pubkey);
        assert.equal(self["port"], server.port);
      }
      // Catch-up: the joiner learns alice, signed by her server, with her key in meta.
      const advert = await joiner.next((f) =>
        f.type === "USER_ADVERTISE" && f.payload["user_id"] === alice.userId
      );
      assert.equal(advert.payload["server_id"], server.serverId);
      assert.equal((advert.payload["meta"] as JsonObject)["pubkey"], alice.pubkey);
    },
  );

  await t.step(
    "a PEM-keyed, unsigned PEER_HELLO_LINK peer with salt-32 signatures can deliver and receive",
    async () => {
      await using peer = await openServerPeer(server.url, "server4", { serverPub: server.pubkey });
      const pem = publicKeyToPem(peer.keys.publicKey);
      await peer.sendFrame("PEER_HELLO_LINK", server.serverId, {
        host: "127.0.0.1",
        port: 9,
        pubkey: pemB64(pem), // G56/G40 send base64url of the PEM text
      }, { sign: "none" });
      await peer.next((f) => f.type === "USER_ADVERTISE" && f.payload["user_id"] === alice.userId);

      // A user hosted on the peer, advertised G69-style (salt 32), key as raw PEM in meta.
      const bobKeys = await fixtureKeyPair("user1");
      const bobId = crypto.randomUUID();
      peer.send(serializeEnvelope(
        await salt32Frame(peer, "USER_ADVERTISE", "*", {
          user_id: bobId,
          server_id: peer.serverId,
          meta: { display_name: "bob", pubkey: publicKeyToPem(bobKeys.publicKey) },
        }),
      ));
      const seen = await alice.next((f) =>
        f.type === "USER_ADVERTISE" && f.payload["user_id"] === bobId
      );
      const bobPub = (seen.payload["meta"] as JsonObject)["pubkey"];
      assert.equal(
        bobPub,
        encodeBase64Url(bobKeys.publicKey.spki),
        "re-issued with the key as DER base64url",
      );

      // alice → bob leaves as SERVER_DELIVER keeping the original ts, with orig_ts and msg_ts.
      const sent = await alice.dm({ userId: bobId, keys: bobKeys }, "hello bob");
      const deliver = await peer.next("SERVER_DELIVER");
      assert.ok(await verifyEnvelope(serverKey, deliver));
      assert.equal(deliver.ts, sent.ts);
      assert.equal(deliver.to, peer.serverId);
      const d = deliver.payload;
      assert.equal(d["user_id"], bobId);
      assert.equal(d["sender"], alice.userId);
      assert.equal(d["orig_ts"], sent.ts);
      assert.equal(d["msg_ts"], sent.ts);
      assert.equal(d["ciphertext"], sent.payload["ciphertext"]);
      assert.equal(d["content_sig"], sent.payload["content_sig"]);
      // The peer wrote its key as base64url(PEM): it gets keys in that form (same key).
      assert.ok(samePublicKey(String(d["sender_pub"]), alice.pubkey));
      assert.equal(keyEncodingOf(String(d["sender_pub"])), "pem");

      // bob → alice: a SERVER_DELIVER with only the envelope ts (no orig_ts), signed with salt 32.
      const ts = Date.now() - 5000;
      const ciphertext = await encryptText(alice.keys.publicKey, "hi alice");
      const contentSig = await signContent(bobKeys.privateKey, {
        ciphertext,
        from: bobId,
        to: alice.userId,
        ts,
      });
      const plain = await salt32Frame(peer, "SERVER_DELIVER", server.serverId, {
        user_id: alice.userId,
        ciphertext,
        sender: bobId,
        sender_pub: pemB64(publicKeyToPem(bobKeys.publicKey)),
        content_sig: contentSig,
      });
      peer.send(serializeEnvelope({ ...plain, ts }));
      const got = await alice.nextDm(bobId);
      assert.equal(got.text, "hi alice");
      assert.equal(got.frame.ts, ts, "USER_DELIVER keeps the original ts");

      // G56 form: SERVER_DELIVER wrapping a whole user envelope.
      const ts2 = Date.now() - 4000;
      const c2 = await encryptText(alice.keys.publicKey, "wrapped");
      await peer.sendFrame("SERVER_DELIVER", server.serverId, {
        user_id: alice.userId,
        type: "MSG_DIRECT",
        from: bobId,
        to: alice.userId,
        ts: ts2,
        payload: {
          ciphertext: c2,
          sender_pub: encodeBase64Url(bobKeys.publicKey.spki),
          content_sig: await signContent(bobKeys.privateKey, {
            ciphertext: c2,
            from: bobId,
            to: alice.userId,
            ts: ts2,
          }),
        },
      });
      const wrapped = await alice.nextDm(bobId);
      assert.equal(wrapped.text, "wrapped");
      assert.equal(wrapped.frame.ts, ts2);

      // A peer heartbeat with G17's {now} payload, an ERROR and an unknown type: the ERROR is
      // never answered, the unknown type gets UNKNOWN_TYPE, and the link keeps working.
      await peer.sendFrame("HEARTBEAT", server.serverId, { now: Math.floor(Date.now() / 1000) });
      await peer.sendFrame("ERROR", server.serverId, { code: "UNKNOWN_TYPE", detail: "whatever" });
      await peer.sendFrame("PUBLIC_CHANNEL_WHATEVER", server.serverId, {});
      const unknown = await peer.nextError("UNKNOWN_TYPE");
      assert.match(String(unknown.payload["detail"]), /PUBLIC_CHANNEL_WHATEVER/);
      const again = await alice.dm({ userId: bobId, keys: bobKeys }, "still linked");
      assert.equal((await peer.next("SERVER_DELIVER")).ts, again.ts);
      assert.equal(
        peer.pending().filter((f) => f.type === "ERROR").length,
        0,
        "no answer to the ERROR",
      );
    },
  );
});

Deno.test("catch-up to a new peer stays within 64 frames per 2 s (Group 17's per-sender limit)", async () => {
  await using server = await startServer({ serverKey: "server0" });
  // 80 users online: a foreign server that links gets 80 catch-up adverts.
  const users = [];
  try {
    for (let i = 0; i < 80; i++) {
      users.push(await connectUser(server.url, "user7", { serverPub: server.pubkey }));
    }
    await using peer = await openServerPeer(server.url, "server4", { serverPub: server.pubkey });
    await peer.helloLink(server.serverId);
    await peer.next("USER_ADVERTISE");
    const first = Date.now();
    const adverts = () => peer.received().filter((f) => f.type === "USER_ADVERTISE").length;
    // A rate is measured over a window of time, so this test waits for the window to pass.
    await new Promise((resolve) => setTimeout(resolve, 1900 - (Date.now() - first)));
    const inWindow = adverts();
    assert.ok(inWindow <= 64, `${inWindow} catch-up frames within 2 s`);
    assert.ok(inWindow >= 20, `the first burst goes at once (${inWindow})`);
    // All 80 arrive in the end.
    for (let i = 1; i < 80; i++) await peer.next("USER_ADVERTISE");
  } finally {
    await Promise.all(users.map((u) => u.close()));
  }
});
