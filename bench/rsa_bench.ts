/**
 * RSA-4096 backends side by side: WebCrypto (the baseline of every group) and OpenSSL through
 * FFI (`shared/openssl_rsa.ts`), so `deno bench` prints how many times faster OpenSSL is for
 * each operation. Run with `deno task bench` (needs `--allow-read --allow-ffi`); without
 * libcrypto.so.3 the OpenSSL rows are left out and a warning is printed.
 *
 * The `concurrent` groups start 4 × `navigator.hardwareConcurrency` signs at once: throughput
 * on all cores, where the per-call groups show latency.
 *
 * @module
 */

import { loadOpenSslBackend } from "../shared/openssl_rsa.ts";
import { PSS_SALT_SIGN, type RsaBackend, webCryptoBackend } from "../shared/rsa.ts";
import { canonicalBytes } from "../shared/mod.ts";
import { fixtureKeyPair } from "../tests/fixtures/keys.ts";

const openssl = loadOpenSslBackend();
if (openssl === undefined) {
  console.error("rsa_bench: OpenSSL backend not available (libcrypto.so.3, --allow-ffi)");
}
const backends: [string, RsaBackend][] = [["webcrypto", webCryptoBackend]];
if (openssl !== undefined) backends.push(["openssl", openssl]);

const { privateKey, publicKey } = await fixtureKeyPair("user0");
const data = canonicalBytes({
  ciphertext: "x".repeat(683),
  sender: crypto.randomUUID(),
  sender_pub: "y".repeat(734),
  content_sig: "z".repeat(683),
});
const sig478 = await webCryptoBackend.sign(privateKey, data);
const sig32 = await webCryptoBackend.sign(privateKey, data, 32);
const block = new Uint8Array(446);
const ciphertext = await webCryptoBackend.encrypt(publicKey, block);
const batch = 4 * navigator.hardwareConcurrency;

for (const [name, backend] of backends) {
  const baseline = name === "webcrypto";
  Deno.bench(`${name}: PSS sign (salt ${PSS_SALT_SIGN})`, { group: "sign", baseline }, async () => {
    await backend.sign(privateKey, data);
  });
  Deno.bench(
    `${name}: ${batch} concurrent PSS signs`,
    { group: "sign concurrent", baseline },
    async () => {
      await Promise.all(Array.from({ length: batch }, () => backend.sign(privateKey, data)));
    },
  );
  Deno.bench(`${name}: PSS verify (salt 478)`, { group: "verify", baseline }, async () => {
    await backend.verify(publicKey, data, sig478);
  });
  Deno.bench(
    `${name}: PSS verify (salt 32, second try)`,
    { group: "verify 32", baseline },
    async () => {
      await backend.verify(publicKey, data, sig32);
    },
  );
  Deno.bench(`${name}: OAEP encrypt 446 bytes`, { group: "encrypt", baseline }, async () => {
    await backend.encrypt(publicKey, block);
  });
  Deno.bench(`${name}: OAEP decrypt`, { group: "decrypt", baseline }, async () => {
    await backend.decrypt(privateKey, ciphertext);
  });
  Deno.bench(
    `${name}: ${batch} concurrent OAEP decrypts`,
    { group: "decrypt concurrent", baseline },
    async () => {
      await Promise.all(
        Array.from({ length: batch }, () => backend.decrypt(privateKey, ciphertext)),
      );
    },
  );
}
