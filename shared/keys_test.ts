import assert from "node:assert/strict";
import { fixtureKeyPair, fixturePem, weakKey } from "../tests/fixtures/keys.ts";
import { decodeBase64Url, encodeBase64Url } from "./base64url.ts";
import { KeyError } from "./errors.ts";
import {
  decodePublicKeyText,
  encodePublicKey,
  fingerprint,
  importPrivateKeyText,
  importPublicKeyText,
  pkcs1ToSpki,
  privateKeyToPem,
  publicKeyToPem,
  samePublicKey,
} from "./keys.ts";
import { rsa } from "./rsa.ts";

const enc = new TextEncoder();

/** Standard base64 with padding, through the platform's btoa (an independent encoder). */
function b64(bytes: Uint8Array): string {
  return btoa(String.fromCharCode(...bytes));
}

/** PEM text written independently of keys.ts. */
function pem(label: string, der: Uint8Array, eol = "\n"): string {
  const lines = b64(der).match(/.{1,64}/g)!;
  return `-----BEGIN ${label}-----${eol}${lines.join(eol)}${eol}-----END ${label}-----${eol}`;
}

/**
 * The PKCS#1 RSAPublicKey inside a DER SubjectPublicKeyInfo: the content of its BIT STRING.
 * Layout: SEQUENCE { SEQUENCE { OID rsaEncryption, NULL }, BIT STRING { 0x00, RSAPublicKey } }.
 */
function pkcs1Of(spki: Uint8Array): Uint8Array {
  let i = 0;
  const header = (tag: number): number => {
    assert.equal(spki[i], tag, `tag at ${i}`);
    const first = spki[i + 1]!;
    let length = first;
    let size = 2;
    if (first & 0x80) {
      length = 0;
      for (let k = 0; k < (first & 0x7f); k++) length = (length << 8) | spki[i + 2 + k]!;
      size += first & 0x7f;
    }
    i += size;
    return length;
  };
  header(0x30); // outer SEQUENCE
  const algorithmLength = header(0x30);
  i += algorithmLength; // skip AlgorithmIdentifier
  const bits = header(0x03);
  assert.equal(spki[i], 0x00, "no unused bits");
  return spki.slice(i + 1, i + bits);
}

/** Every textual encoding of a public key that Appendix D says socp must accept. */
function encodings(spki: Uint8Array): Record<string, string> {
  const pemText = pem("PUBLIC KEY", spki);
  const pkcs1 = pkcs1Of(spki);
  return {
    "base64url DER SPKI, no padding": encodeBase64Url(spki),
    "padded standard base64 DER SPKI": b64(spki),
    "padded base64url DER SPKI": b64(spki).replaceAll("+", "-").replaceAll("/", "_"),
    "standard base64 DER SPKI in 64-column lines": b64(spki).match(/.{1,64}/g)!.join("\n"),
    "raw PEM PUBLIC KEY": pemText,
    "raw PEM with CRLF and surrounding space": "  \r\n" + pem("PUBLIC KEY", spki, "\r\n") + "\n ",
    "base64url of the PEM text": encodeBase64Url(enc.encode(pemText)),
    "padded base64url of the PEM text": b64(enc.encode(pemText)).replaceAll("+", "-")
      .replaceAll("/", "_"),
    "padded standard base64 of the PEM text": b64(enc.encode(pemText)),
    "base64url PKCS#1 DER": encodeBase64Url(pkcs1),
    "padded base64 PKCS#1 DER": b64(pkcs1),
    "raw PEM RSA PUBLIC KEY": pem("RSA PUBLIC KEY", pkcs1),
    "base64url of RSA PUBLIC KEY PEM text": encodeBase64Url(
      enc.encode(pem("RSA PUBLIC KEY", pkcs1)),
    ),
    "raw PEM PUBLIC KEY holding PKCS#1": pem("PUBLIC KEY", pkcs1),
  };
}

async function spkiOf(name: "user0" | "user1" | "server0"): Promise<Uint8Array> {
  return (await fixtureKeyPair(name)).publicKey.spki;
}

Deno.test("`decodePublicKeyText()` turns every Appendix D encoding into the same DER SPKI", async () => {
  const spki = await spkiOf("user0");
  assert.equal(spki.length, 550);
  for (const [label, text] of Object.entries(encodings(spki))) {
    assert.deepEqual(decodePublicKeyText(text), spki, label);
  }
});

Deno.test("`decodePublicKeyText()` accepts weak keys, leaving strength to the importer", async () => {
  for (const name of ["weak2048", "exp3"] as const) {
    const spki = await weakKey(name);
    for (const [label, text] of Object.entries(encodings(spki))) {
      assert.deepEqual(decodePublicKeyText(text), spki, `${name}: ${label}`);
    }
  }
});

Deno.test("`decodePublicKeyText()` throws KeyError on empty or garbage text", () => {
  const bad = [
    "",
    "   \n",
    "not a key!",
    "AAAA",
    "MA",
    encodeBase64Url(enc.encode("hello, this is not DER at all")),
    "-----BEGIN PUBLIC KEY-----\nMIIB\n-----END PRIVATE KEY-----\n",
    "-----BEGIN PUBLIC KEY-----\n!!!!\n-----END PUBLIC KEY-----\n",
    "-----BEGIN PUBLIC KEY-----\n",
    encodeBase64Url(enc.encode("-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n")),
  ];
  for (const text of bad) {
    assert.throws(() => decodePublicKeyText(text), KeyError, JSON.stringify(text));
  }
});

Deno.test("`decodePublicKeyText()` keeps the base64 failure as the KeyError's cause", () => {
  try {
    decodePublicKeyText("not a key!");
    assert.fail("expected a KeyError");
  } catch (e) {
    assert.ok(e instanceof KeyError);
    assert.ok(e.cause instanceof SyntaxError);
  }
});

Deno.test("`pkcs1ToSpki()` wraps PKCS#1 into the exact SPKI WebCrypto exports", async () => {
  for (const spki of [await spkiOf("user0"), await weakKey("weak2048"), await weakKey("exp3")]) {
    const pkcs1 = pkcs1Of(spki);
    assert.equal(pkcs1[0], 0x30);
    assert.deepEqual(pkcs1ToSpki(pkcs1), spki);
  }
});

Deno.test("`importPublicKeyText()` imports every Appendix D encoding of an RSA-4096 key", async () => {
  const spki = await spkiOf("server0");
  for (const [label, text] of Object.entries(encodings(spki))) {
    const key = await importPublicKeyText(text);
    assert.deepEqual(key.spki, spki, label);
  }
});

Deno.test("`importPublicKeyText()` returns the cached key for the same text", async () => {
  const text = encodeBase64Url(await spkiOf("user1"));
  const first = await importPublicKeyText(text);
  assert.equal(await importPublicKeyText(text), first);
});

Deno.test("`importPublicKeyText()` rejects a 2048-bit key with KeyError", async () => {
  const spki = await weakKey("weak2048");
  for (const text of [encodeBase64Url(spki), pem("PUBLIC KEY", spki)]) {
    await assert.rejects(importPublicKeyText(text), KeyError);
  }
  await assert.rejects(importPublicKeyText(encodeBase64Url(spki)), /4096 bits, got 2048/);
});

Deno.test("`importPublicKeyText()` rejects a key with e = 3 with KeyError", async () => {
  const spki = await weakKey("exp3");
  await assert.rejects(importPublicKeyText(encodeBase64Url(spki)), KeyError);
  await assert.rejects(importPublicKeyText(encodeBase64Url(spki)), /exponent must be 65537/);
  await assert.rejects(importPublicKeyText(pem("RSA PUBLIC KEY", pkcs1Of(spki))), KeyError);
});

Deno.test("`importPublicKeyText()` rejects garbage with KeyError", async () => {
  for (const text of ["", "garbage!", "AAAA", encodeBase64Url(new Uint8Array(600).fill(0x30))]) {
    await assert.rejects(importPublicKeyText(text), KeyError, JSON.stringify(text));
  }
  // A DER SPKI with a corrupted modulus length is not well-formed.
  const broken = (await spkiOf("user0")).slice(0, 300);
  await assert.rejects(importPublicKeyText(encodeBase64Url(broken)), KeyError);
});

Deno.test("`encodePublicKey()` emits unpadded base64url DER SPKI (734 characters)", async () => {
  const { publicKey } = await fixtureKeyPair("user0");
  const text = encodePublicKey(publicKey);
  assert.ok(text.startsWith("MIICIjANBgkqhkiG9w0BAQEFAAOCAg8AMIICCgKCAgEA"), text.slice(0, 50));
  assert.equal(text.length, 734);
  assert.match(text, /^[A-Za-z0-9_-]+$/);
  assert.deepEqual(decodeBase64Url(text), publicKey.spki);
  assert.deepEqual((await importPublicKeyText(text)).spki, publicKey.spki);
});

Deno.test("`samePublicKey()` matches one key across encodings", async () => {
  const forms = Object.values(encodings(await spkiOf("user0")));
  for (const a of forms) {
    for (const b of forms) assert.ok(samePublicKey(a, b), `${a.slice(0, 30)} vs ${b.slice(0, 30)}`);
  }
});

Deno.test("`samePublicKey()` tells different keys and garbage apart", async () => {
  const a = encodings(await spkiOf("user0"));
  const b = encodings(await spkiOf("user1"));
  assert.equal(samePublicKey(a["raw PEM PUBLIC KEY"]!, b["raw PEM PUBLIC KEY"]!), false);
  assert.equal(
    samePublicKey(a["base64url DER SPKI, no padding"]!, b["base64url PKCS#1 DER"]!),
    false,
  );
  assert.equal(samePublicKey(a["base64url DER SPKI, no padding"]!, "garbage!"), false);
  assert.equal(samePublicKey("garbage!", a["raw PEM PUBLIC KEY"]!), false);
});

Deno.test("`publicKeyToPem()` writes a 64-column PUBLIC KEY PEM", async () => {
  const { publicKey } = await fixtureKeyPair("user0");
  const text = publicKeyToPem(publicKey);
  assert.equal(text, pem("PUBLIC KEY", publicKey.spki));
  const lines = text.trimEnd().split("\n");
  assert.equal(lines[0], "-----BEGIN PUBLIC KEY-----");
  assert.equal(lines.at(-1), "-----END PUBLIC KEY-----");
  for (const line of lines.slice(1, -1)) assert.ok(line.length <= 64);
  assert.deepEqual(decodePublicKeyText(text), publicKey.spki);
});

Deno.test("`privateKeyToPem()` reproduces the committed PKCS#8 PEM", async () => {
  const { privateKey } = await fixtureKeyPair("user2");
  const text = privateKeyToPem(privateKey);
  assert.equal(text, await fixturePem("user2"));
  assert.ok(text.startsWith("-----BEGIN PRIVATE KEY-----\n"));
  assert.ok(text.endsWith("\n-----END PRIVATE KEY-----\n"));
});

Deno.test("`importPrivateKeyText()` round-trips through `privateKeyToPem()`", async () => {
  const { publicKey, privateKey } = await fixtureKeyPair("user3");
  const again = await importPrivateKeyText(privateKeyToPem(privateKey));
  assert.deepEqual(again.pkcs8, privateKey.pkcs8);
  const data = enc.encode("round trip");
  assert.ok(await rsa().verify(publicKey, data, await rsa().sign(again, data)));
});

Deno.test("`importPrivateKeyText()` accepts base64url DER and padded, wrapped PEM", async () => {
  const { privateKey } = await fixtureKeyPair("user3");
  const fromB64 = await importPrivateKeyText(encodeBase64Url(privateKey.pkcs8));
  assert.deepEqual(fromB64.pkcs8, privateKey.pkcs8);
  const fromCrlf = await importPrivateKeyText(pem("PRIVATE KEY", privateKey.pkcs8, "\r\n"));
  assert.deepEqual(fromCrlf.pkcs8, privateKey.pkcs8);
});

Deno.test("`importPrivateKeyText()` rejects garbage and public keys with KeyError", async () => {
  const { publicKey } = await fixtureKeyPair("user3");
  for (
    const text of [
      "garbage!",
      "AAAA",
      "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PUBLIC KEY-----\n",
      publicKeyToPem(publicKey),
    ]
  ) {
    await assert.rejects(importPrivateKeyText(text), KeyError, text.slice(0, 40));
  }
});

Deno.test("`fingerprint()` is the first 8 bytes of SHA-256(SPKI) as grouped hex", async () => {
  const { publicKey } = await fixtureKeyPair("user0");
  const print = await fingerprint(publicKey);
  assert.match(print, /^[0-9a-f]{4}:[0-9a-f]{4}:[0-9a-f]{4}:[0-9a-f]{4}$/);
  const digest = new Uint8Array(
    await crypto.subtle.digest("SHA-256", new Uint8Array(publicKey.spki)),
  );
  const hex = Array.from(digest.slice(0, 8), (b) => b.toString(16).padStart(2, "0")).join("");
  assert.equal(print.replaceAll(":", ""), hex);
  assert.notEqual(await fingerprint((await fixtureKeyPair("user1")).publicKey), print);
});
