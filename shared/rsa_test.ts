import assert from "node:assert/strict";
import { fixtureKeyPair, weakKeyBytes } from "../tests/fixtures/keys.ts";
import { KeyError } from "./errors.ts";
import { importPrivateKeyText, privateKeyToPem } from "./keys.ts";
import {
  OAEP_MAX_PLAINTEXT,
  type PrivateKey,
  PSS_SALT_SIGN,
  PSS_SALTS_VERIFY,
  type PublicKey,
  rsa,
  RSA_BITS,
  type RsaBackend,
  setRsaBackend,
  webCryptoBackend,
} from "./rsa.ts";

const enc = new TextEncoder();
const DATA = enc.encode('{"ciphertext":"QQ","sender_pub":"MIIC"}');

function randomBytes(n: number): Uint8Array {
  return crypto.getRandomValues(new Uint8Array(n));
}

/** Imports an SPKI directly with WebCrypto, bypassing socp, for interop checks. */
function rawPublic(spki: Uint8Array, alg: RsaHashedImportParams, usage: KeyUsage) {
  return crypto.subtle.importKey("spki", new Uint8Array(spki), alg, false, [usage]);
}

Deno.test("`rsa` constants match SOCP v1.3's RSA-4096 parameters", () => {
  assert.equal(RSA_BITS, 4096);
  assert.equal(OAEP_MAX_PLAINTEXT, 512 - 2 * 32 - 2);
  assert.equal(PSS_SALT_SIGN, 512 - 32 - 2);
  assert.deepEqual(PSS_SALTS_VERIFY, [478, 32]);
});

Deno.test("`rsa()` is the WebCrypto backend by default", () => {
  assert.equal(rsa(), webCryptoBackend);
});

Deno.test("`sign()` makes a 512-byte signature that `verify()` accepts", async () => {
  const { publicKey, privateKey } = await fixtureKeyPair("user0");
  const sig = await rsa().sign(privateKey, DATA);
  assert.equal(sig.length, 512);
  assert.equal(await rsa().verify(publicKey, DATA, sig), true);
});

Deno.test("`sign()` uses PSS salt 478 by default, as plain WebCrypto verifies", async () => {
  const { publicKey, privateKey } = await fixtureKeyPair("user0");
  const sig = await rsa().sign(privateKey, DATA);
  const key = await rawPublic(publicKey.spki, { name: "RSA-PSS", hash: "SHA-256" }, "verify");
  assert.ok(
    await crypto.subtle.verify(
      { name: "RSA-PSS", saltLength: 478 },
      key,
      new Uint8Array(sig),
      DATA,
    ),
  );
  assert.ok(
    !await crypto.subtle.verify(
      { name: "RSA-PSS", saltLength: 32 },
      key,
      new Uint8Array(sig),
      DATA,
    ),
  );
  assert.equal(await rsa().verify(publicKey, DATA, sig, [478]), true);
  assert.equal(await rsa().verify(publicKey, DATA, sig, [32]), false);
});

Deno.test("`verify()` accepts a salt-32 signature by trying 478 then 32", async () => {
  const { publicKey, privateKey } = await fixtureKeyPair("user0");
  const sig = await rsa().sign(privateKey, DATA, 32);
  assert.equal(sig.length, 512);
  assert.equal(await rsa().verify(publicKey, DATA, sig), true);
  assert.equal(await rsa().verify(publicKey, DATA, sig, [32]), true);
  assert.equal(await rsa().verify(publicKey, DATA, sig, [478]), false);
});

Deno.test("`verify()` rejects a signature over other data", async () => {
  const { publicKey, privateKey } = await fixtureKeyPair("user0");
  const sig = await rsa().sign(privateKey, DATA);
  assert.equal(await rsa().verify(publicKey, enc.encode("other"), sig), false);
  const flipped = DATA.slice();
  flipped[0]! ^= 1;
  assert.equal(await rsa().verify(publicKey, flipped, sig), false);
});

Deno.test("`verify()` rejects a signature made by another key", async () => {
  const alice = await fixtureKeyPair("user0");
  const bob = await fixtureKeyPair("user1");
  const sig = await rsa().sign(alice.privateKey, DATA);
  assert.equal(await rsa().verify(bob.publicKey, DATA, sig), false);
});

Deno.test("`verify()` rejects truncated, extended, empty and corrupted signatures", async () => {
  const { publicKey, privateKey } = await fixtureKeyPair("user0");
  const sig = await rsa().sign(privateKey, DATA);
  const extended = new Uint8Array(513);
  extended.set(sig);
  const corrupted = sig.slice();
  corrupted[100]! ^= 0x40;
  for (const bad of [sig.slice(0, 511), sig.slice(1), extended, new Uint8Array(), corrupted]) {
    assert.equal(await rsa().verify(publicKey, DATA, bad), false, `length ${bad.length}`);
  }
  assert.equal(await rsa().verify(publicKey, DATA, new Uint8Array(512)), false);
});

Deno.test("`sign()` and `verify()` handle byte views that do not start their buffer", async () => {
  const { publicKey, privateKey } = await fixtureKeyPair("user0");
  const backing = new Uint8Array(DATA.length + 10);
  backing.set(DATA, 7);
  const view = backing.subarray(7, 7 + DATA.length);
  const sig = await rsa().sign(privateKey, view);
  assert.equal(await rsa().verify(publicKey, DATA, sig), true);
  const sigBacking = new Uint8Array(600);
  sigBacking.set(sig, 40);
  assert.equal(await rsa().verify(publicKey, view, sigBacking.subarray(40, 552)), true);
});

Deno.test("`encrypt()` and `decrypt()` round-trip 446 bytes into a 512-byte ciphertext", async () => {
  const { publicKey, privateKey } = await fixtureKeyPair("user0");
  const plaintext = randomBytes(OAEP_MAX_PLAINTEXT);
  const ciphertext = await rsa().encrypt(publicKey, plaintext);
  assert.equal(ciphertext.length, 512);
  assert.deepEqual(await rsa().decrypt(privateKey, ciphertext), plaintext);
});

Deno.test("`encrypt()` and `decrypt()` round-trip an empty plaintext", async () => {
  const { publicKey, privateKey } = await fixtureKeyPair("user0");
  const ciphertext = await rsa().encrypt(publicKey, new Uint8Array());
  assert.equal(ciphertext.length, 512);
  assert.deepEqual(await rsa().decrypt(privateKey, ciphertext), new Uint8Array());
});

Deno.test("`encrypt()` is randomised", async () => {
  const { publicKey } = await fixtureKeyPair("user0");
  const a = await rsa().encrypt(publicKey, DATA);
  const b = await rsa().encrypt(publicKey, DATA);
  assert.notDeepEqual(a, b);
});

Deno.test("`encrypt()` throws RangeError on 447 bytes", async () => {
  const { publicKey } = await fixtureKeyPair("user0");
  await assert.rejects(rsa().encrypt(publicKey, new Uint8Array(447)), RangeError);
  await assert.rejects(rsa().encrypt(publicKey, new Uint8Array(4096)), /at most 446/);
});

Deno.test("`encrypt()` is OAEP-SHA256 with an empty label, as plain WebCrypto decrypts", async () => {
  const { publicKey, privateKey } = await fixtureKeyPair("user0");
  const alg = { name: "RSA-OAEP", hash: "SHA-256" };
  const priv = await crypto.subtle.importKey(
    "pkcs8",
    new Uint8Array(privateKey.pkcs8),
    alg,
    false,
    [
      "decrypt",
    ],
  );
  const ours = await rsa().encrypt(publicKey, DATA);
  assert.deepEqual(
    new Uint8Array(await crypto.subtle.decrypt({ name: "RSA-OAEP" }, priv, new Uint8Array(ours))),
    DATA,
  );
  const pub = await rawPublic(publicKey.spki, alg, "encrypt");
  const theirs = new Uint8Array(await crypto.subtle.encrypt({ name: "RSA-OAEP" }, pub, DATA));
  assert.deepEqual(await rsa().decrypt(privateKey, theirs), DATA);
});

Deno.test("`decrypt()` rejects a ciphertext for another key", async () => {
  const alice = await fixtureKeyPair("user0");
  const bob = await fixtureKeyPair("user1");
  const ciphertext = await rsa().encrypt(alice.publicKey, DATA);
  await assert.rejects(rsa().decrypt(bob.privateKey, ciphertext));
});

Deno.test("`decrypt()` rejects a corrupted or truncated ciphertext", async () => {
  const { publicKey, privateKey } = await fixtureKeyPair("user0");
  const ciphertext = await rsa().encrypt(publicKey, DATA);
  const corrupted = ciphertext.slice();
  corrupted[200]! ^= 1;
  await assert.rejects(rsa().decrypt(privateKey, corrupted));
  await assert.rejects(rsa().decrypt(privateKey, ciphertext.slice(0, 511)));
  await assert.rejects(rsa().decrypt(privateKey, new Uint8Array()));
});

Deno.test("`importPublic()` imports an RSA-4096 SPKI and keeps its own copy", async () => {
  const { publicKey } = await fixtureKeyPair("user0");
  const backing = new Uint8Array(publicKey.spki.length + 3);
  backing.set(publicKey.spki, 3);
  const key = await rsa().importPublic(backing.subarray(3));
  assert.deepEqual(key.spki, publicKey.spki);
  backing.fill(0);
  assert.deepEqual(key.spki, publicKey.spki);
});

Deno.test("`importPublic()` rejects a 2048-bit key and e = 3 with KeyError", async () => {
  await assert.rejects(rsa().importPublic((await weakKeyBytes("weak2048")).spki), KeyError);
  await assert.rejects(rsa().importPublic((await weakKeyBytes("exp3")).spki), KeyError);
});

Deno.test("`importPublic()` rejects malformed DER with KeyError", async () => {
  const { publicKey } = await fixtureKeyPair("user0");
  for (const der of [new Uint8Array(), new Uint8Array([0x30, 0]), publicKey.spki.slice(0, 100)]) {
    await assert.rejects(rsa().importPublic(der), KeyError);
  }
});

Deno.test("`importPrivate()` imports an RSA-4096 PKCS#8 key that signs", async () => {
  const { publicKey, privateKey } = await fixtureKeyPair("user4");
  const again = await rsa().importPrivate(privateKey.pkcs8);
  assert.deepEqual(again.pkcs8, privateKey.pkcs8);
  assert.ok(await rsa().verify(publicKey, DATA, await rsa().sign(again, DATA)));
});

Deno.test("`importPrivate()` rejects a 2048-bit key and malformed DER with KeyError", async () => {
  await assert.rejects(rsa().importPrivate((await weakKeyBytes("weak2048")).pkcs8), KeyError);
  await assert.rejects(
    rsa().importPrivate(new Uint8Array([0x30, 0x03, 0x02, 0x01, 0x00])),
    KeyError,
  );
  const { publicKey } = await fixtureKeyPair("user0");
  await assert.rejects(rsa().importPrivate(publicKey.spki), KeyError);
});

Deno.test("`importPrivate()` rejects a key with e = 3 with KeyError", async () => {
  // rsa.ts: "All keys are RSA-4096 with e = 65537"; reference §3: weak exponents MUST be rejected.
  // The public half of this key is refused by `importPublic()`, so peers could never use it.
  await assert.rejects(rsa().importPrivate((await weakKeyBytes("exp3")).pkcs8), KeyError);
});

Deno.test("`webCryptoBackend` refuses keys from another backend with TypeError", async () => {
  const foreignPublic: PublicKey = { spki: new Uint8Array(550) };
  const foreignPrivate: PrivateKey = { pkcs8: new Uint8Array(2400) };
  await assert.rejects(webCryptoBackend.sign(foreignPrivate, DATA), TypeError);
  await assert.rejects(
    webCryptoBackend.verify(foreignPublic, DATA, new Uint8Array(512)),
    TypeError,
  );
  await assert.rejects(webCryptoBackend.encrypt(foreignPublic, DATA), TypeError);
  await assert.rejects(webCryptoBackend.decrypt(foreignPrivate, new Uint8Array(512)), TypeError);
});

Deno.test("`setRsaBackend()` routes every RSA operation through the new backend", async () => {
  const { privateKey } = await fixtureKeyPair("user0");
  const calls: string[] = [];
  const counting: RsaBackend = {
    generate: () => Promise.reject(new Error("not in tests")),
    importPublic: (spki) => (calls.push("importPublic"), webCryptoBackend.importPublic(spki)),
    importPrivate: (pkcs8) => (calls.push("importPrivate"), webCryptoBackend.importPrivate(pkcs8)),
    publicKeyOf: (key) => (calls.push("publicKeyOf"), webCryptoBackend.publicKeyOf(key)),
    sign: (key, data, salt) => (calls.push("sign"), webCryptoBackend.sign(key, data, salt)),
    verify: (key, data, sig, salts) => (
      calls.push("verify"), webCryptoBackend.verify(key, data, sig, salts)
    ),
    encrypt: (key, data) => (calls.push("encrypt"), webCryptoBackend.encrypt(key, data)),
    decrypt: (key, data) => (calls.push("decrypt"), webCryptoBackend.decrypt(key, data)),
  };
  setRsaBackend(counting);
  try {
    assert.equal(rsa(), counting);
    // keys.ts goes through rsa() too.
    const imported = await importPrivateKeyText(privateKeyToPem(privateKey));
    await rsa().sign(imported, DATA);
    assert.deepEqual(calls, ["importPrivate", "sign"]);
  } finally {
    setRsaBackend(webCryptoBackend);
  }
  assert.equal(rsa(), webCryptoBackend);
});

Deno.test("`publicKeyOf()` derives the public half that verifies the private key's signatures", async () => {
  const { privateKey, publicKey } = await fixtureKeyPair("user1");
  const derived = await rsa().publicKeyOf(privateKey);
  assert.deepEqual(derived.spki, publicKey.spki);
  const sig = await rsa().sign(privateKey, DATA);
  assert.equal(await rsa().verify(derived, DATA, sig), true);
});
