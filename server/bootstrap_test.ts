import assert from "node:assert/strict";
import { BootstrapError, parseBootstrap, renderBootstrap } from "./bootstrap.ts";
import { encodePublicKey } from "../shared/mod.ts";
import { fixtureKeyPair } from "../tests/fixtures/keys.ts";

Deno.test("`parseBootstrap()` reads the spec's YAML and normalises keys to DER base64url", async () => {
  const { publicKey } = await fixtureKeyPair("server1");
  const der = encodePublicKey(publicKey);
  const pem = `-----BEGIN PUBLIC KEY-----\n${
    btoa(String.fromCharCode(...publicKey.spki))
  }\n-----END PUBLIC KEY-----`;
  const text = `bootstrap_servers:
  - host: "127.0.0.1"
    port: 12345
    pubkey: "${der}"
  - host: "10.0.0.2"
    port: "5432"
    pubkey: |
${pem.split("\n").map((l) => "      " + l).join("\n")}
`;
  const entries = parseBootstrap(text);
  assert.equal(entries.length, 2);
  assert.deepEqual(entries[0], { host: "127.0.0.1", port: 12345, pubkey: der });
  assert.equal(entries[1]!.port, 5432);
  assert.equal(entries[1]!.pubkey, der);
  assert.deepEqual(parseBootstrap(renderBootstrap(entries)), entries);
});

Deno.test("`parseBootstrap()` names the entry and field that is wrong", async () => {
  const { publicKey } = await fixtureKeyPair("server1");
  const key = encodePublicKey(publicKey);
  assert.throws(
    () => parseBootstrap("bootstrap_servers: [{port: 1, pubkey: x}]"),
    /entry 1 has no "host"/,
  );
  assert.throws(
    () => parseBootstrap(`bootstrap_servers: [{host: a, port: 99999, pubkey: "${key}"}]`),
    /entry 1 has a bad "port"/,
  );
  assert.throws(
    () => parseBootstrap("bootstrap_servers: [{host: a, port: 1, pubkey: nope}]"),
    BootstrapError,
  );
  assert.throws(() => parseBootstrap("servers: 3"), /bootstrap_servers/);
  assert.throws(() => parseBootstrap("a: [b"), /not valid YAML/);
  assert.deepEqual(parseBootstrap(""), []);
});
