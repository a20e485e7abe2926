import assert from "node:assert/strict";
import { fixtureKeyPair } from "../tests/fixtures/keys.ts";
import { decodeBase64Url } from "./base64url.ts";
import { OAEP_MAX_PLAINTEXT } from "./rsa.ts";
import {
  decryptBlock,
  decryptText,
  encryptBlock,
  encryptText,
  sha256Hex,
  sha256HexSync,
  splitForOaep,
} from "./text_crypto.ts";

const enc = new TextEncoder();

function utf8Length(text: string): number {
  return enc.encode(text).length;
}

/** Asserts that `pieces` rejoin to `text` and each is well-formed and within `limit` bytes. */
function assertSplit(text: string, pieces: string[], limit = OAEP_MAX_PLAINTEXT): void {
  assert.equal(pieces.join(""), text);
  for (const [i, piece] of pieces.entries()) {
    assert.ok(piece.isWellFormed(), `piece ${i} splits a character`);
    assert.ok(utf8Length(piece) <= limit, `piece ${i} is ${utf8Length(piece)} bytes`);
    assert.ok(piece.length > 0, `piece ${i} is empty`);
  }
}

Deno.test("`splitForOaep()` turns the empty string into one empty piece", () => {
  assert.deepEqual(splitForOaep(""), [""]);
});

Deno.test("`splitForOaep()` keeps text that fits one block whole", () => {
  assert.deepEqual(splitForOaep("hello"), ["hello"]);
  const full = "a".repeat(446);
  assert.deepEqual(splitForOaep(full), [full]);
});

Deno.test("`splitForOaep()` fills each block with 446 ASCII bytes", () => {
  assert.deepEqual(splitForOaep("a".repeat(447)), ["a".repeat(446), "a"]);
  const pieces = splitForOaep("b".repeat(900));
  assert.deepEqual(pieces.map((p) => p.length), [446, 446, 8]);
});

Deno.test("`splitForOaep()` never splits an emoji", () => {
  // 445 ASCII bytes leave one byte in the first block: a 4-byte emoji must move on whole.
  for (const prefix of ["", "x", "xx", "xxx", "x".repeat(445)]) {
    const text = prefix + "😀".repeat(200) + "👩‍👩‍👧";
    const pieces = splitForOaep(text);
    assertSplit(text, pieces);
    assert.ok(pieces.length >= 2);
  }
  assert.deepEqual(splitForOaep("x".repeat(445) + "😀"), ["x".repeat(445), "😀"]);
});

Deno.test("`splitForOaep()` never splits a CJK character", () => {
  // 3-byte characters: 148 fit one block (444 bytes), the 149th would make 447.
  const text = "中".repeat(300);
  const pieces = splitForOaep(text);
  assertSplit(text, pieces);
  assert.deepEqual(pieces.map((p) => p.length), [148, 148, 4]);
  for (const prefix of ["a", "ab"]) {
    assertSplit(prefix + text, splitForOaep(prefix + text));
  }
});

Deno.test("`splitForOaep()` splits mixed text within a custom limit", () => {
  const text = "héllo wörld ✓ 😀 中文 ".repeat(40);
  for (const limit of [4, 5, 7, 16, 100]) {
    assertSplit(text, splitForOaep(text, limit), limit);
  }
});

Deno.test("`encryptText()` and `decryptText()` round-trip Unicode text", async () => {
  const { publicKey, privateKey } = await fixtureKeyPair("user5");
  for (const text of ["", "hello", "Zoë 😀 中文", "x".repeat(444) + "é"]) {
    const ciphertext = await encryptText(publicKey, text);
    assert.equal(ciphertext.length, 683);
    assert.equal(await decryptText(privateKey, ciphertext), text);
  }
});

Deno.test("`encryptText()` and `decryptText()` round-trip every piece of a long text", async () => {
  const { publicKey, privateKey } = await fixtureKeyPair("user5");
  const text = "😀中a".repeat(150);
  const pieces = splitForOaep(text);
  assert.equal(pieces.length, 3);
  const out: string[] = [];
  for (const piece of pieces) {
    out.push(await decryptText(privateKey, await encryptText(publicKey, piece)));
  }
  assert.equal(out.join(""), text);
});

Deno.test("`encryptText()` rejects text over 446 UTF-8 bytes with RangeError", async () => {
  const { publicKey } = await fixtureKeyPair("user5");
  await assert.rejects(encryptText(publicKey, "a".repeat(447)), RangeError);
  await assert.rejects(encryptText(publicKey, "é".repeat(224)), RangeError);
});

Deno.test("`decryptText()` rejects a block that is not valid UTF-8 with TypeError", async () => {
  const { publicKey, privateKey } = await fixtureKeyPair("user5");
  const ciphertext = await encryptBlock(publicKey, new Uint8Array([0x61, 0xff, 0x62]));
  await assert.rejects(decryptText(privateKey, ciphertext), TypeError);
});

Deno.test("`decryptText()` rejects a ciphertext for another key", async () => {
  const { publicKey } = await fixtureKeyPair("user5");
  const { privateKey: other } = await fixtureKeyPair("user6");
  await assert.rejects(decryptText(other, await encryptText(publicKey, "secret")));
});

Deno.test("`encryptBlock()` and `decryptBlock()` round-trip 446 bytes as base64url", async () => {
  const { publicKey, privateKey } = await fixtureKeyPair("user5");
  const block = crypto.getRandomValues(new Uint8Array(OAEP_MAX_PLAINTEXT));
  const ciphertext = await encryptBlock(publicKey, block);
  assert.match(ciphertext, /^[A-Za-z0-9_-]{683}$/);
  assert.equal(decodeBase64Url(ciphertext).length, 512);
  assert.deepEqual(await decryptBlock(privateKey, ciphertext), block);
});

Deno.test("`encryptBlock()` rejects 447 bytes with RangeError", async () => {
  const { publicKey } = await fixtureKeyPair("user5");
  await assert.rejects(encryptBlock(publicKey, new Uint8Array(447)), RangeError);
});

Deno.test("`decryptBlock()` rejects text that is not base64url with SyntaxError", async () => {
  const { privateKey } = await fixtureKeyPair("user5");
  await assert.rejects(decryptBlock(privateKey, "not base64!"), SyntaxError);
});

Deno.test("`sha256Hex()` matches the FIPS 180-2 test vectors", async () => {
  assert.equal(
    await sha256Hex(enc.encode("abc")),
    "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad",
  );
  assert.equal(
    await sha256Hex(new Uint8Array()),
    "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
  );
});

Deno.test("`sha256Hex()` hashes only the bytes of a view", async () => {
  const backing = enc.encode("xxabcxx");
  assert.equal(
    await sha256Hex(backing.subarray(2, 5)),
    "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad",
  );
});

Deno.test("`sha256HexSync()` gives the same digest as `sha256Hex()`", async () => {
  for (const text of ["", "abc", "x".repeat(5000)]) {
    const data = new TextEncoder().encode(text);
    assert.equal(sha256HexSync(data), await sha256Hex(data));
  }
  assert.equal(
    sha256HexSync(new TextEncoder().encode("abc")),
    "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad",
  );
});
