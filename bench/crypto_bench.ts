/**
 * Micro-benchmarks of the hot-path primitives (run with `deno task bench`).
 *
 * @module
 */

import {
  canonicalBytes,
  decodeFrame,
  encryptBlock,
  parseEnvelope,
  rsa,
  signPayload,
} from "../shared/mod.ts";
import { fixtureKeyPair } from "../tests/fixtures/keys.ts";

const { privateKey, publicKey } = await fixtureKeyPair("user0");
const payload = {
  ciphertext: "x".repeat(683),
  sender: crypto.randomUUID(),
  sender_pub: "y".repeat(734),
  content_sig: "z".repeat(683),
};
const data = canonicalBytes(payload);
const sig478 = await rsa().sign(privateKey, data);
const sig32 = await rsa().sign(privateKey, data, 32);
const block = new Uint8Array(446);
const ciphertext = await rsa().encrypt(publicKey, block);
const frameText = JSON.stringify({
  type: "USER_DELIVER",
  from: crypto.randomUUID(),
  to: crypto.randomUUID(),
  ts: Date.now(),
  payload,
  sig: await signPayload(privateKey, payload),
});

Deno.bench("RSA-PSS sign (salt 478)", { group: "rsa", baseline: true }, async () => {
  await rsa().sign(privateKey, data);
});
Deno.bench("RSA-PSS verify (salt 478, first try)", { group: "rsa" }, async () => {
  await rsa().verify(publicKey, data, sig478);
});
Deno.bench("RSA-PSS verify (salt 32, second try)", { group: "rsa" }, async () => {
  await rsa().verify(publicKey, data, sig32);
});
Deno.bench("RSA-OAEP encrypt 446 bytes", { group: "rsa" }, async () => {
  await encryptBlock(publicKey, block);
});
Deno.bench("RSA-OAEP decrypt", { group: "rsa" }, async () => {
  await rsa().decrypt(privateKey, ciphertext);
});
Deno.bench("canonical JSON of a USER_DELIVER payload", { group: "frame", baseline: true }, () => {
  canonicalBytes(payload);
});
Deno.bench("parse and decode a USER_DELIVER frame", { group: "frame" }, () => {
  decodeFrame(parseEnvelope(frameText));
});
