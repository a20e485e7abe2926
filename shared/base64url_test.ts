import assert from "node:assert/strict";
import { decodeBase64Url, encodeBase64Url } from "./base64url.ts";

const enc = new TextEncoder();

/** Independent oracle: unpadded base64url through the platform's btoa. */
function viaBtoa(bytes: Uint8Array): string {
  return btoa(String.fromCharCode(...bytes)).replaceAll("+", "-").replaceAll("/", "_")
    .replace(/=+$/, "");
}

function randomBytes(n: number): Uint8Array {
  return crypto.getRandomValues(new Uint8Array(n));
}

Deno.test("`encodeBase64Url()` matches the RFC 4648 test vectors without padding", () => {
  const vectors: [string, string][] = [
    ["", ""],
    ["f", "Zg"],
    ["fo", "Zm8"],
    ["foo", "Zm9v"],
    ["foob", "Zm9vYg"],
    ["fooba", "Zm9vYmE"],
    ["foobar", "Zm9vYmFy"],
  ];
  for (const [plain, encoded] of vectors) {
    assert.equal(encodeBase64Url(enc.encode(plain)), encoded);
  }
});

Deno.test("`encodeBase64Url()` uses the URL-safe alphabet", () => {
  assert.equal(encodeBase64Url(new Uint8Array([0xfb, 0xff])), "-_8");
  assert.equal(encodeBase64Url(new Uint8Array([0xfb, 0xef, 0xbe])), "----");
  assert.equal(encodeBase64Url(new Uint8Array([0xff, 0xff, 0xff])), "____");
});

Deno.test("`encodeBase64Url()` and `decodeBase64Url()` round-trip every length 0 to 10", () => {
  for (let n = 0; n <= 10; n++) {
    for (let round = 0; round < 20; round++) {
      const bytes = randomBytes(n);
      const text = encodeBase64Url(bytes);
      assert.equal(text, viaBtoa(bytes), `length ${n}`);
      assert.equal(text.length, Math.ceil((n * 4) / 3));
      assert.deepEqual(decodeBase64Url(text), bytes);
    }
  }
});

Deno.test("`encodeBase64Url()` and `decodeBase64Url()` round-trip large random buffers", () => {
  for (const n of [255, 256, 512, 550, 4096, 65_536]) {
    const bytes = randomBytes(n);
    const text = encodeBase64Url(bytes);
    assert.equal(text, viaBtoa(bytes));
    assert.deepEqual(decodeBase64Url(text), bytes);
  }
});

Deno.test("`decodeBase64Url()` accepts padded input", () => {
  assert.deepEqual(decodeBase64Url("Zg=="), enc.encode("f"));
  assert.deepEqual(decodeBase64Url("Zm8="), enc.encode("fo"));
  assert.deepEqual(decodeBase64Url("Zm9v"), enc.encode("foo"));
  assert.deepEqual(decodeBase64Url("-_8="), new Uint8Array([0xfb, 0xff]));
});

Deno.test("`decodeBase64Url()` accepts the standard base64 alphabet", () => {
  assert.deepEqual(decodeBase64Url("+/8="), new Uint8Array([0xfb, 0xff]));
  assert.deepEqual(decodeBase64Url("++++"), decodeBase64Url("----"));
  assert.deepEqual(decodeBase64Url("////"), decodeBase64Url("____"));
  const bytes = randomBytes(300);
  assert.deepEqual(decodeBase64Url(btoa(String.fromCharCode(...bytes))), bytes);
});

Deno.test("`decodeBase64Url()` ignores white space anywhere", () => {
  assert.deepEqual(decodeBase64Url(" Zm9v\nYmFy\r\n\t "), enc.encode("foobar"));
  assert.deepEqual(decodeBase64Url("Zm9v YmE=\n"), enc.encode("fooba"));
  const bytes = randomBytes(200);
  const wrapped = btoa(String.fromCharCode(...bytes)).match(/.{1,64}/g)!.join("\n") + "\n";
  assert.deepEqual(decodeBase64Url(wrapped), bytes);
});

Deno.test("`decodeBase64Url()` decodes the empty string to no bytes", () => {
  assert.deepEqual(decodeBase64Url(""), new Uint8Array());
  assert.deepEqual(decodeBase64Url("  \n"), new Uint8Array());
});

Deno.test("`decodeBase64Url()` throws SyntaxError on characters outside both alphabets", () => {
  for (const text of ["Zm9v!", "Zm*v", "Zm.v", "é", "Zm9\u2603", "Zg==Zg", "Zm9v\0"]) {
    assert.throws(() => decodeBase64Url(text), SyntaxError, JSON.stringify(text));
  }
});

Deno.test("`decodeBase64Url()` throws SyntaxError when the length leaves one spare character", () => {
  for (const text of ["Z", "Zm9vY", "Zm9vY=", "Zm9vY===", "Zm9vYmFyZ"]) {
    assert.throws(() => decodeBase64Url(text), SyntaxError, text);
  }
});
