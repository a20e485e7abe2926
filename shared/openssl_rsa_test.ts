import assert from "node:assert/strict";
import { fixtureKeyPair, USER_KEYS } from "../tests/fixtures/keys.ts";
import { KeyError } from "./errors.ts";
import { chooseRsaBackend, loadOpenSslBackend, type OpenSslBackend } from "./openssl_rsa.ts";
import {
  OAEP_MAX_PLAINTEXT,
  type PrivateKey,
  PSS_SALT_SIGN,
  type PublicKey,
  webCryptoBackend as webCrypto,
} from "./rsa.ts";

// Loaded once for the file, outside any test, so the resource sanitizer does not count the
// library as a leak of the first test. A missing libcrypto fails here instead of skipping.
const loaded = loadOpenSslBackend();
const openssl: OpenSslBackend = (() => {
  assert.ok(
    loaded,
    "OpenSSL backend did not load: install libssl3 (libcrypto.so.3) and run with --allow-ffi",
  );
  return loaded;
})();

const enc = new TextEncoder();
const DATA = enc.encode('{"ciphertext":"QQ","sender_pub":"MIIC"}');

Deno.test("`loadOpenSslBackend()` opens libcrypto 3 and reports it", () => {
  assert.match(openssl.library, /libcrypto\.so/);
  assert.match(openssl.version, /^OpenSSL 3\./);
  assert.equal(openssl.inFlight, 0);
  assert.equal(openssl.queued, 0);
});

Deno.test("OpenSSL signatures (salt 478) verify with WebCrypto, and with OpenSSL", async () => {
  const { publicKey, privateKey } = await fixtureKeyPair("user0");
  const sig = await openssl.sign(privateKey, DATA);
  assert.equal(sig.length, 512);
  assert.equal(await webCrypto.verify(publicKey, DATA, sig, [PSS_SALT_SIGN]), true);
  assert.equal(await webCrypto.verify(publicKey, DATA, sig, [32]), false);
  assert.equal(await openssl.verify(publicKey, DATA, sig), true);
  assert.equal(await openssl.verify(publicKey, DATA, sig, [PSS_SALT_SIGN]), true);
});

Deno.test("OpenSSL signatures are randomised (PSS salt)", async () => {
  const { privateKey } = await fixtureKeyPair("user0");
  const a = await openssl.sign(privateKey, DATA);
  const b = await openssl.sign(privateKey, DATA);
  assert.notDeepEqual(a, b);
});

Deno.test("WebCrypto signatures verify with OpenSSL", async () => {
  const { publicKey, privateKey } = await fixtureKeyPair("user1");
  const sig = await webCrypto.sign(privateKey, DATA);
  assert.equal(await openssl.verify(publicKey, DATA, sig), true);
  assert.equal(await openssl.verify(publicKey, DATA, sig, [32]), false);
});

Deno.test("OpenSSL `verify()` accepts a salt-32 signature through the salts list", async () => {
  const { publicKey, privateKey } = await fixtureKeyPair("user0");
  for (
    const sig of [
      await webCrypto.sign(privateKey, DATA, 32),
      await openssl.sign(privateKey, DATA, 32),
    ]
  ) {
    assert.equal(await openssl.verify(publicKey, DATA, sig), true);
    assert.equal(await openssl.verify(publicKey, DATA, sig, [32]), true);
    assert.equal(await openssl.verify(publicKey, DATA, sig, [478]), false);
    assert.equal(await openssl.verify(publicKey, DATA, sig, []), false);
    assert.equal(await webCrypto.verify(publicKey, DATA, sig), true);
  }
});

Deno.test("OpenSSL `verify()` rejects bad signatures", async () => {
  const { publicKey, privateKey } = await fixtureKeyPair("user0");
  const sig = await openssl.sign(privateKey, DATA);
  const corrupted = sig.slice();
  corrupted[100]! ^= 0x40;
  const extended = new Uint8Array(513);
  extended.set(sig);
  for (
    const bad of [corrupted, sig.slice(0, 511), extended, new Uint8Array(), new Uint8Array(512)]
  ) {
    assert.equal(await openssl.verify(publicKey, DATA, bad), false, `length ${bad.length}`);
  }
  assert.equal(await openssl.verify(publicKey, enc.encode("other"), sig), false);
  assert.equal(await openssl.verify(publicKey, new Uint8Array(), sig), false);
  // Nonsense salt lengths never match, as no signature could carry them.
  assert.equal(await openssl.verify(publicKey, DATA, sig, [-1, 1.5, 479]), false);
});

Deno.test("OpenSSL `verify()` rejects a signature made by another key", async () => {
  const alice = await fixtureKeyPair("user0");
  const bob = await fixtureKeyPair("user1");
  assert.equal(
    await openssl.verify(bob.publicKey, DATA, await openssl.sign(alice.privateKey, DATA)),
    false,
  );
  assert.equal(
    await openssl.verify(bob.publicKey, DATA, await webCrypto.sign(alice.privateKey, DATA)),
    false,
  );
  assert.equal(
    await webCrypto.verify(bob.publicKey, DATA, await openssl.sign(alice.privateKey, DATA)),
    false,
  );
});

Deno.test("OpenSSL `sign()` and `verify()` handle empty data and views into a larger buffer", async () => {
  const { publicKey, privateKey } = await fixtureKeyPair("user2");
  const empty = await openssl.sign(privateKey, new Uint8Array());
  assert.equal(await webCrypto.verify(publicKey, new Uint8Array(), empty), true);
  assert.equal(await openssl.verify(publicKey, new Uint8Array(), empty), true);
  const backing = new Uint8Array(DATA.length + 10);
  backing.set(DATA, 7);
  const view = backing.subarray(7, 7 + DATA.length);
  const sig = await openssl.sign(privateKey, view);
  assert.equal(await webCrypto.verify(publicKey, DATA, sig), true);
  const sigBacking = new Uint8Array(600);
  sigBacking.set(sig, 40);
  assert.equal(await openssl.verify(publicKey, view, sigBacking.subarray(40, 552)), true);
});

Deno.test("OpenSSL `sign()` signs the data as it was when called", async () => {
  const { publicKey, privateKey } = await fixtureKeyPair("user0");
  const data = DATA.slice();
  const pending = openssl.sign(privateKey, data);
  data.fill(0);
  assert.equal(await webCrypto.verify(publicKey, DATA, await pending), true);
});

Deno.test("OpenSSL `sign()` rejects salt lengths a 4096-bit key cannot carry with RangeError", async () => {
  const { privateKey } = await fixtureKeyPair("user0");
  await assert.rejects(openssl.sign(privateKey, DATA, 479), RangeError);
  await assert.rejects(openssl.sign(privateKey, DATA, -1), RangeError);
});

Deno.test("each backend decrypts the other's OAEP ciphertexts", async () => {
  const { publicKey, privateKey } = await fixtureKeyPair("user3");
  for (
    const plaintext of [
      DATA,
      new Uint8Array(),
      crypto.getRandomValues(new Uint8Array(OAEP_MAX_PLAINTEXT)),
    ]
  ) {
    const ours = await openssl.encrypt(publicKey, plaintext);
    assert.equal(ours.length, 512);
    assert.deepEqual(await webCrypto.decrypt(privateKey, ours), plaintext);
    assert.deepEqual(await openssl.decrypt(privateKey, ours), plaintext);
    const theirs = await webCrypto.encrypt(publicKey, plaintext);
    assert.deepEqual(await openssl.decrypt(privateKey, theirs), plaintext);
  }
});

Deno.test("OpenSSL `encrypt()` is randomised and refuses 447 bytes with RangeError", async () => {
  const { publicKey } = await fixtureKeyPair("user0");
  assert.notDeepEqual(
    await openssl.encrypt(publicKey, DATA),
    await openssl.encrypt(publicKey, DATA),
  );
  await assert.rejects(openssl.encrypt(publicKey, new Uint8Array(447)), RangeError);
});

Deno.test("OpenSSL `decrypt()` rejects another key's, corrupted and truncated ciphertexts", async () => {
  const alice = await fixtureKeyPair("user0");
  const bob = await fixtureKeyPair("user1");
  const ciphertext = await webCrypto.encrypt(alice.publicKey, DATA);
  await assert.rejects(openssl.decrypt(bob.privateKey, ciphertext), DOMException);
  const corrupted = ciphertext.slice();
  corrupted[200]! ^= 1;
  await assert.rejects(openssl.decrypt(alice.privateKey, corrupted), DOMException);
  await assert.rejects(openssl.decrypt(alice.privateKey, ciphertext.slice(0, 511)), DOMException);
  await assert.rejects(openssl.decrypt(alice.privateKey, new Uint8Array()), DOMException);
  // Still decrypts after failures.
  assert.deepEqual(await openssl.decrypt(alice.privateKey, ciphertext), DATA);
});

Deno.test("64 concurrent OpenSSL signs all verify, at most two per core in flight", async () => {
  const keys = await Promise.all(USER_KEYS.slice(0, 4).map((name) => fixtureKeyPair(name)));
  const jobs = Array.from({ length: 64 }, (_, i) => {
    const data = enc.encode(`message ${i}`);
    const pair = keys[i % keys.length]!;
    return { data, pair, sig: openssl.sign(pair.privateKey, data) };
  });
  const slots = 2 * navigator.hardwareConcurrency;
  assert.equal(openssl.inFlight, Math.min(64, slots));
  assert.equal(openssl.queued, Math.max(0, 64 - slots));
  const sigs = await Promise.all(jobs.map((j) => j.sig));
  assert.equal(openssl.inFlight + openssl.queued, 0);
  for (const [i, job] of jobs.entries()) {
    assert.equal(await webCrypto.verify(job.pair.publicKey, job.data, sigs[i]!), true, `sign ${i}`);
    assert.equal(await openssl.verify(job.pair.publicKey, job.data, sigs[i]!), true, `sign ${i}`);
  }
});

Deno.test("OpenSSL operations beyond `maxInFlight` wait in FIFO order", async () => {
  await using limited = loadOpenSslBackend({ maxInFlight: 1 });
  assert.ok(limited);
  const { privateKey, publicKey } = await fixtureKeyPair("user0");
  const order: number[] = [];
  const all = Array.from({ length: 6 }, (_, i) =>
    limited.sign(privateKey, DATA).then((sig) => {
      order.push(i);
      return sig;
    }));
  assert.equal(limited.inFlight, 1);
  assert.equal(limited.queued, 5);
  for (const sig of await Promise.all(all)) {
    assert.equal(await webCrypto.verify(publicKey, DATA, sig), true);
  }
  assert.deepEqual(order, [0, 1, 2, 3, 4, 5]);
});

Deno.test("OpenSSL backend refuses a foreign or malformed key with KeyError", async () => {
  const junkPrivate: PrivateKey = { pkcs8: new Uint8Array(2400) };
  const junkPublic: PublicKey = { spki: new Uint8Array(550) };
  await assert.rejects(openssl.sign(junkPrivate, DATA), KeyError);
  await assert.rejects(openssl.verify(junkPublic, DATA, new Uint8Array(512)), KeyError);
  await assert.rejects(openssl.encrypt(junkPublic, DATA), KeyError);
  await assert.rejects(openssl.decrypt(junkPrivate, new Uint8Array(512)), KeyError);
});

Deno.test("OpenSSL backend accepts plain key shapes holding the DER bytes", async () => {
  const { publicKey, privateKey } = await fixtureKeyPair("user0");
  const bare: PrivateKey = { pkcs8: privateKey.pkcs8 };
  const barePublic: PublicKey = { spki: publicKey.spki };
  const sig = await openssl.sign(bare, DATA);
  assert.equal(await openssl.verify(barePublic, DATA, sig), true);
  assert.equal(await webCrypto.verify(publicKey, DATA, sig), true);
});

Deno.test("a closed OpenSSL backend refuses new operations", async () => {
  const backend = loadOpenSslBackend();
  assert.ok(backend);
  const { privateKey } = await fixtureKeyPair("user0");
  const running = backend.sign(privateKey, DATA);
  await backend.close();
  assert.equal((await running).length, 512);
  await assert.rejects(backend.sign(privateKey, DATA), /closed/);
  await backend.close();
});

Deno.test("`chooseRsaBackend()` picks OpenSSL, or WebCrypto when told to", async () => {
  const auto = chooseRsaBackend({ mode: "auto" });
  assert.equal(auto.name, "openssl");
  assert.match(auto.description, /^openssl \(libcrypto\.so(\.3)?, OpenSSL 3\./);
  await (auto.backend as OpenSslBackend).close();
  const forced = chooseRsaBackend({ mode: "webcrypto" });
  assert.equal(forced.backend, webCrypto);
  assert.equal(forced.description, "webcrypto (SOCP_RSA=webcrypto)");
  assert.throws(() => chooseRsaBackend({ mode: "fast" as "auto" }), RangeError);
});

Deno.test("`chooseRsaBackend()` falls back to WebCrypto with the reason when no library loads", () => {
  const missing = chooseRsaBackend({ mode: "auto", libraries: ["libcrypto-missing.so.9"] });
  assert.equal(missing.backend, webCrypto);
  assert.match(missing.description, /^webcrypto \(libcrypto-missing\.so\.9: /);
  assert.throws(
    () => chooseRsaBackend({ mode: "openssl", libraries: ["libcrypto-missing.so.9"] }),
    /SOCP_RSA=openssl, but OpenSSL could not be loaded/,
  );
  assert.equal(loadOpenSslBackend({ libraries: ["libcrypto-missing.so.9"] }), undefined);
});
