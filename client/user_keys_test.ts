/**
 * Tests of user_keys.ts: pinning advertised keys, key changes.
 *
 * @module
 */

import assert from "node:assert/strict";
import {
  decodeBase64Url,
  decryptText,
  encodeBase64Url,
  encodePublicKey,
  importPublicKeyText,
} from "../shared/mod.ts";
import { advertise, connected, fixtureKeyPair, IDS } from "./_test_util.ts";
import { MemoryTrustStore } from "./trust_store.ts";

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
