import assert from "node:assert/strict";
import { fixtureKeyPair } from "../tests/fixtures/keys.ts";
import { decodeBase64Url, encodeBase64Url } from "./base64url.ts";
import { canonicalBytes } from "./canonical_json.ts";
import type { Envelope, JsonObject } from "./envelope.ts";
import { rsa } from "./rsa.ts";
import {
  signedEnvelope,
  signPayload,
  transportPreimages,
  verifyEnvelope,
} from "./transport_sig.ts";

const S1 = "aa11bb22-cc33-4d44-8e55-ff6677889900";
const ALICE = "5b2c1f0e-8a7d-4c3b-9e21-0f6a7d3c2b11";
const enc = new TextEncoder();
const dec = new TextDecoder();

const PAYLOAD: JsonObject = {
  user_id: ALICE,
  server_id: S1,
  meta: { display_name: "Alice", pubkey: "MIIC" },
};
const UNICODE: JsonObject = { user_id: ALICE, meta: { display_name: "Zoë 😀 中文" } };

function envelope(payload: JsonObject, sig?: string): Envelope {
  const env: Envelope = { type: "USER_ADVERTISE", from: S1, to: "*", ts: 1700000100000, payload };
  if (sig !== undefined) env.sig = sig;
  return env;
}

Deno.test("`signPayload()` signs the canonical payload with PSS salt 478", async () => {
  const { publicKey, privateKey } = await fixtureKeyPair("server0");
  const sig = await signPayload(privateKey, PAYLOAD);
  assert.equal(sig.length, 683);
  assert.match(sig, /^[A-Za-z0-9_-]+$/);
  const raw = decodeBase64Url(sig);
  assert.equal(await rsa().verify(publicKey, canonicalBytes(PAYLOAD), raw, [478]), true);
  // Python peers sign json.dumps(payload, sort_keys=True, separators=(",",":")).encode().
  const python = `{"meta":{"display_name":"Alice","pubkey":"MIIC"},"server_id":"${S1}",` +
    `"user_id":"${ALICE}"}`;
  assert.equal(await rsa().verify(publicKey, enc.encode(python), raw, [478]), true);
});

Deno.test("`signPayload()` signs non-ASCII text in its \\uXXXX-escaped form", async () => {
  const { publicKey, privateKey } = await fixtureKeyPair("server0");
  const raw = decodeBase64Url(await signPayload(privateKey, UNICODE));
  const escaped = String.raw`{"meta":{"display_name":"Zo\u00eb \ud83d\ude00 \u4e2d\u6587"},` +
    `"user_id":"${ALICE}"}`;
  assert.equal(await rsa().verify(publicKey, enc.encode(escaped), raw), true);
});

Deno.test("`signPayload()` and `verifyEnvelope()` round-trip", async () => {
  const { publicKey, privateKey } = await fixtureKeyPair("server0");
  const sig = await signPayload(privateKey, PAYLOAD);
  assert.equal(await verifyEnvelope(publicKey, envelope(PAYLOAD, sig)), true);
});

Deno.test("`signedEnvelope()` adds a sig that `verifyEnvelope()` accepts", async () => {
  const { publicKey, privateKey } = await fixtureKeyPair("server0");
  const fields = envelope(UNICODE);
  const env = await signedEnvelope(privateKey, fields);
  assert.deepEqual({ ...env, sig: undefined }, { ...fields, sig: undefined });
  assert.equal(typeof env.sig, "string");
  assert.equal(await verifyEnvelope(publicKey, env), true);
});

Deno.test("`verifyEnvelope()` ignores payload key order", async () => {
  const { publicKey, privateKey } = await fixtureKeyPair("server0");
  const sig = await signPayload(privateKey, PAYLOAD);
  const reordered: JsonObject = {
    meta: { pubkey: "MIIC", display_name: "Alice" },
    server_id: S1,
    user_id: ALICE,
  };
  assert.equal(await verifyEnvelope(publicKey, envelope(reordered, sig)), true);
});

Deno.test("`verifyEnvelope()` fails when the payload changed", async () => {
  const { publicKey, privateKey } = await fixtureKeyPair("server0");
  const sig = await signPayload(privateKey, PAYLOAD);
  const changes: JsonObject[] = [
    { ...PAYLOAD, user_id: S1 },
    { ...PAYLOAD, extra: 1 },
    { ...PAYLOAD, meta: { display_name: "Alice ", pubkey: "MIIC" } },
    { user_id: ALICE, server_id: S1 },
  ];
  for (const payload of changes) {
    assert.equal(await verifyEnvelope(publicKey, envelope(payload, sig)), false);
  }
});

Deno.test("`verifyEnvelope()` does not cover type, from, to or ts", async () => {
  const { publicKey, privateKey } = await fixtureKeyPair("server0");
  const env = await signedEnvelope(privateKey, envelope(PAYLOAD));
  const relayed: Envelope = { ...env, type: "USER_REMOVE", from: ALICE, to: S1, ts: 1 };
  assert.equal(await verifyEnvelope(publicKey, relayed), true);
});

Deno.test("`verifyEnvelope()` accepts a signature over the raw UTF-8 canonical form", async () => {
  // orjson-based peers leave non-ASCII unescaped.
  const { publicKey, privateKey } = await fixtureKeyPair("server1");
  const rawForm = `{"meta":{"display_name":"Zoë 😀 中文"},"user_id":"${ALICE}"}`;
  assert.deepEqual(canonicalBytes(UNICODE, { ascii: false }), enc.encode(rawForm));
  const sig = await rsa().sign(privateKey, enc.encode(rawForm));
  assert.equal(await verifyEnvelope(publicKey, envelope(UNICODE, encodeBase64Url(sig))), true);
});

Deno.test("`verifyEnvelope()` accepts a salt-32 signature", async () => {
  const { publicKey, privateKey } = await fixtureKeyPair("server1");
  const sig = await rsa().sign(privateKey, canonicalBytes(PAYLOAD), 32);
  assert.equal(await verifyEnvelope(publicKey, envelope(PAYLOAD, encodeBase64Url(sig))), true);
  const rawSig = await rsa().sign(privateKey, canonicalBytes(UNICODE, { ascii: false }), 32);
  assert.equal(await verifyEnvelope(publicKey, envelope(UNICODE, encodeBase64Url(rawSig))), true);
});

Deno.test("`verifyEnvelope()` accepts a padded standard-base64 signature", async () => {
  // G40 emits padded base64url; some peers use the standard alphabet.
  const { publicKey, privateKey } = await fixtureKeyPair("server1");
  const sig = await rsa().sign(privateKey, canonicalBytes(PAYLOAD));
  const padded = btoa(String.fromCharCode(...sig));
  assert.ok(padded.endsWith("="));
  assert.equal(await verifyEnvelope(publicKey, envelope(PAYLOAD, padded)), true);
});

Deno.test("`verifyEnvelope()` rejects a pre-hashed (G69-style) signature", async () => {
  const { publicKey, privateKey } = await fixtureKeyPair("server1");
  const digest = new Uint8Array(
    await crypto.subtle.digest("SHA-256", new Uint8Array(canonicalBytes(PAYLOAD))),
  );
  const sig = await rsa().sign(privateKey, digest);
  assert.equal(await verifyEnvelope(publicKey, envelope(PAYLOAD, encodeBase64Url(sig))), false);
});

Deno.test("`verifyEnvelope()` is false for an absent signature", async () => {
  const { publicKey } = await fixtureKeyPair("server0");
  assert.equal(await verifyEnvelope(publicKey, envelope(PAYLOAD)), false);
  assert.equal(await verifyEnvelope(publicKey, envelope(PAYLOAD, "")), false);
});

Deno.test("`verifyEnvelope()` is false for a garbage or wrong-length signature", async () => {
  const { publicKey, privateKey } = await fixtureKeyPair("server0");
  const good = await signPayload(privateKey, PAYLOAD);
  for (const sig of ["!!!", "not base64 at all", "A", "c2ln", good.slice(0, -4), good + "AAAA"]) {
    assert.equal(await verifyEnvelope(publicKey, envelope(PAYLOAD, sig)), false, sig.slice(0, 20));
  }
});

Deno.test("`verifyEnvelope()` is false for another key's signature", async () => {
  const { privateKey } = await fixtureKeyPair("server0");
  const { publicKey: other } = await fixtureKeyPair("server1");
  const sig = await signPayload(privateKey, PAYLOAD);
  assert.equal(await verifyEnvelope(other, envelope(PAYLOAD, sig)), false);
});

Deno.test("`transportPreimages()` gives one preimage for an ASCII payload", () => {
  const images = transportPreimages(PAYLOAD);
  assert.equal(images.length, 1);
  assert.equal(
    dec.decode(images[0]),
    `{"meta":{"display_name":"Alice","pubkey":"MIIC"},"server_id":"${S1}","user_id":"${ALICE}"}`,
  );
});

Deno.test("`transportPreimages()` gives the escaped form, then raw UTF-8, for non-ASCII", () => {
  const images = transportPreimages(UNICODE);
  assert.deepEqual(images.map((b) => dec.decode(b)), [
    String.raw`{"meta":{"display_name":"Zo\u00eb \ud83d\ude00 \u4e2d\u6587"},"user_id":"` +
    ALICE + `"}`,
    `{"meta":{"display_name":"Zoë 😀 中文"},"user_id":"${ALICE}"}`,
  ]);
});
