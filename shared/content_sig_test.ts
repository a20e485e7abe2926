import assert from "node:assert/strict";
import { fixtureKeyPair } from "../tests/fixtures/keys.ts";
import { decodeBase64Url, encodeBase64Url } from "./base64url.ts";
import {
  CONTENT_SIG_VARIANTS,
  type ContentFields,
  contentPreimage,
  keySharePreimage,
  signContent,
  verifyContent,
} from "./content_sig.ts";
import { rsa } from "./rsa.ts";

const ALICE = "5b2c1f0e-8a7d-4c3b-9e21-0f6a7d3c2b11";
const BOB = "9d4e2a61-3f0b-4b7c-8a55-6e1f2d3c4b5a";
const TS = 1700000400000;
const enc = new TextEncoder();
const dec = new TextDecoder();

// "-_8A" decodes to [0xfb, 0xff, 0x00]: not valid UTF-8, and different from its own text.
const DM: ContentFields = { ciphertext: "-_8A", from: ALICE, to: BOB, ts: TS };
const PUBLIC: ContentFields = { ciphertext: "-_8A", from: ALICE, ts: TS };

function concat(...parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
}

async function sha256(data: Uint8Array): Promise<Uint8Array> {
  return new Uint8Array(await crypto.subtle.digest("SHA-256", new Uint8Array(data)));
}

function withoutTs({ ts: _, ...rest }: ContentFields): Omit<ContentFields, "ts"> {
  return rest;
}

Deno.test("`CONTENT_SIG_VARIANTS` lists A to D in the order they are tried", () => {
  assert.deepEqual(CONTENT_SIG_VARIANTS, ["A", "B", "C", "D"]);
});

Deno.test("`contentPreimage()` variant A is the UTF-8 of ciphertext + from + to + ts", async () => {
  assert.equal(dec.decode(await contentPreimage("A", DM)), `-_8A${ALICE}${BOB}1700000400000`);
  assert.equal(
    dec.decode(await contentPreimage("A", { ciphertext: "QQ", from: "a", to: "b", ts: 1 })),
    "QQab1",
  );
});

Deno.test("`contentPreimage()` variant A leaves out `to` for public content", async () => {
  assert.equal(dec.decode(await contentPreimage("A", PUBLIC)), `-_8A${ALICE}1700000400000`);
});

Deno.test("`contentPreimage()` variant B uses the raw ciphertext bytes", async () => {
  assert.deepEqual(
    await contentPreimage("B", DM),
    concat(new Uint8Array([0xfb, 0xff, 0x00]), enc.encode(`${ALICE}${BOB}1700000400000`)),
  );
  assert.deepEqual(
    await contentPreimage("B", PUBLIC),
    concat(new Uint8Array([0xfb, 0xff, 0x00]), enc.encode(`${ALICE}1700000400000`)),
  );
});

Deno.test("`contentPreimage()` variant C is the 32-byte SHA-256 of variant B", async () => {
  for (const fields of [DM, PUBLIC]) {
    const c = await contentPreimage("C", fields);
    assert.equal(c.length, 32);
    assert.deepEqual(c, await sha256(await contentPreimage("B", fields)));
  }
});

Deno.test("`contentPreimage()` variant D joins the fields with literal `|`", async () => {
  assert.equal(dec.decode(await contentPreimage("D", DM)), `-_8A|${ALICE}|${BOB}|1700000400000`);
  assert.equal(dec.decode(await contentPreimage("D", PUBLIC)), `-_8A|${ALICE}|1700000400000`);
});

Deno.test("`contentPreimage()` writes integer ts without a fraction and float ts as given", async () => {
  const fields = { ciphertext: "QQ", from: "a", to: "b" };
  assert.equal(
    dec.decode(await contentPreimage("A", { ...fields, ts: 1700000400000 })),
    "QQab1700000400000",
  );
  assert.equal(
    dec.decode(await contentPreimage("A", { ...fields, ts: 1700000400.5 })),
    "QQab1700000400.5",
  );
  assert.equal(dec.decode(await contentPreimage("D", { ...fields, ts: 1e21 })), "QQ|a|b|1e+21");
});

Deno.test("`contentPreimage()` variants B and C reject a ciphertext that is not base64", async () => {
  const fields = { ...DM, ciphertext: "hello world!" };
  await assert.rejects(contentPreimage("B", fields), SyntaxError);
  await assert.rejects(contentPreimage("C", fields), SyntaxError);
  assert.equal(dec.decode(await contentPreimage("A", fields)), `hello world!${ALICE}${BOB}${TS}`);
});

Deno.test("`signContent()` signs variant A by default", async () => {
  const { publicKey, privateKey } = await fixtureKeyPair("user0");
  const sig = await signContent(privateKey, DM);
  assert.equal(sig.length, 683);
  const raw = decodeBase64Url(sig);
  assert.equal(await rsa().verify(publicKey, await contentPreimage("A", DM), raw, [478]), true);
});

Deno.test("`signContent()` and `verifyContent()` agree on each variant A to D", async () => {
  const { publicKey, privateKey } = await fixtureKeyPair("user0");
  for (const variant of CONTENT_SIG_VARIANTS) {
    const sig = await signContent(privateKey, DM, variant);
    assert.equal(await verifyContent(publicKey, sig, withoutTs(DM), [TS]), variant);
  }
});

Deno.test("`verifyContent()` recognises each variant signed directly over its preimage", async () => {
  const { publicKey, privateKey } = await fixtureKeyPair("user1");
  for (const variant of CONTENT_SIG_VARIANTS) {
    const sig = await rsa().sign(privateKey, await contentPreimage(variant, PUBLIC));
    assert.equal(
      await verifyContent(publicKey, encodeBase64Url(sig), withoutTs(PUBLIC), [TS]),
      variant,
    );
  }
});

Deno.test("`verifyContent()` finds the right ts among the candidates", async () => {
  const { publicKey, privateKey } = await fixtureKeyPair("user0");
  const sig = await signContent(privateKey, DM, "B");
  const fields = withoutTs(DM);
  assert.equal(await verifyContent(publicKey, sig, fields, [TS + 100, TS + 100, TS]), "B");
  assert.equal(await verifyContent(publicKey, sig, fields, [TS, TS + 100]), "B");
  assert.equal(await verifyContent(publicKey, sig, fields, [TS + 1, TS - 1]), undefined);
  assert.equal(await verifyContent(publicKey, sig, fields, []), undefined);
});

Deno.test("`verifyContent()` verifies public content signed without `to`", async () => {
  const { publicKey, privateKey } = await fixtureKeyPair("user0");
  const sig = await signContent(privateKey, PUBLIC);
  assert.equal(await verifyContent(publicKey, sig, withoutTs(PUBLIC), [TS]), "A");
  assert.equal(await verifyContent(publicKey, sig, withoutTs(DM), [TS]), undefined);
});

Deno.test("`verifyContent()` fails when a covered field changed", async () => {
  const { publicKey, privateKey } = await fixtureKeyPair("user0");
  const sig = await signContent(privateKey, DM);
  const changed = [
    { ...withoutTs(DM), ciphertext: "-_8B" },
    { ...withoutTs(DM), from: BOB },
    { ...withoutTs(DM), to: ALICE },
  ];
  for (const fields of changed) {
    assert.equal(await verifyContent(publicKey, sig, fields, [TS]), undefined);
  }
});

Deno.test("`verifyContent()` returns undefined for another key", async () => {
  const { privateKey } = await fixtureKeyPair("user0");
  const { publicKey: other } = await fixtureKeyPair("user1");
  const sig = await signContent(privateKey, DM);
  assert.equal(await verifyContent(other, sig, withoutTs(DM), [TS]), undefined);
});

Deno.test("`verifyContent()` returns undefined for a garbage signature", async () => {
  const { publicKey } = await fixtureKeyPair("user0");
  for (const sig of ["", "!!!", "A", "c2ln", encodeBase64Url(new Uint8Array(512))]) {
    assert.equal(await verifyContent(publicKey, sig, withoutTs(DM), [TS]), undefined, sig);
  }
});

Deno.test("`verifyContent()` accepts a salt-32 signature over variant A", async () => {
  const { publicKey, privateKey } = await fixtureKeyPair("user0");
  const sig = await rsa().sign(privateKey, await contentPreimage("A", DM), 32);
  assert.equal(await verifyContent(publicKey, encodeBase64Url(sig), withoutTs(DM), [TS]), "A");
});

Deno.test("`verifyContent()` checks variant A and D when ciphertext is not base64", async () => {
  // Plaintext public messages (G56 `/all`) may carry text that B and C cannot decode.
  const { publicKey, privateKey } = await fixtureKeyPair("user0");
  const fields: ContentFields = { ciphertext: "hi there!", from: ALICE, ts: TS };
  for (const variant of ["A", "D"] as const) {
    const sig = await signContent(privateKey, fields, variant);
    assert.equal(await verifyContent(publicKey, sig, withoutTs(fields), [TS]), variant);
  }
});

Deno.test("`keySharePreimage()` is SHA-256 of canonical(shares) followed by creator_pub", async () => {
  const shares = [{ member: ALICE, wrapped_public_channel_key: "a2V5" }];
  const creatorPub = "MIICIjANBgkqhkiG9w0BAQEFAAOCAg8A";
  const image = await keySharePreimage(shares, creatorPub);
  assert.equal(image.length, 32);
  const text = `[{"member":"${ALICE}","wrapped_public_channel_key":"a2V5"}]${creatorPub}`;
  assert.deepEqual(image, await sha256(enc.encode(text)));
});

Deno.test("`keySharePreimage()` ignores member key order and depends on every input", async () => {
  const pub = "MIIC";
  const a = await keySharePreimage([{ member: ALICE, wrapped_public_channel_key: "a2V5" }], pub);
  const b = await keySharePreimage([{ wrapped_public_channel_key: "a2V5", member: ALICE }], pub);
  assert.deepEqual(a, b);
  assert.notDeepEqual(
    a,
    await keySharePreimage([{ member: BOB, wrapped_public_channel_key: "a2V5" }], pub),
  );
  assert.notDeepEqual(
    a,
    await keySharePreimage([{ member: ALICE, wrapped_public_channel_key: "a2V5" }], "MIID"),
  );
});
