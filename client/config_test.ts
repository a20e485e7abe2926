import assert from "node:assert/strict";
import { join } from "node:path";
import { encodePublicKey } from "../shared/mod.ts";
import { fixtureKeyPair, rejectsWith } from "./_test_util.ts";
import { addLocalIdentity, ConfigError, ConfigTrustStore, loadOrCreateConfig } from "./config.ts";

const generate = () => fixtureKeyPair("user0");

async function withDir(fn: (dir: string) => Promise<void>): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "socp_config_test_" });
  try {
    await fn(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

function mode(path: string): number {
  return Deno.statSync(path).mode! & 0o777;
}

Deno.test("loadOrCreateConfig() creates a 0600 config and key, then reuses them", async () => {
  await withDir(async (dir) => {
    const path = join(dir, "alice.json");
    const first = await loadOrCreateConfig(path, { generate });
    assert.equal(first.created, true);
    assert.match(
      first.config.user_id ?? "",
      /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/,
    );
    assert.equal(first.config.display_name, "alice");
    assert.equal(first.config.private_key_file, "alice.key.pem");
    const onDisk = JSON.parse(await Deno.readTextFile(path));
    assert.deepEqual(onDisk, {
      user_id: first.config.user_id,
      display_name: "alice",
      private_key_file: "alice.key.pem",
      known_keys: {},
      servers: {},
    });
    const keyText = await Deno.readTextFile(join(dir, "alice.key.pem"));
    assert.match(keyText, /^-----BEGIN PRIVATE KEY-----\n/);
    if (Deno.build.os !== "windows") {
      assert.equal(mode(path), 0o600);
      assert.equal(mode(join(dir, "alice.key.pem")), 0o600);
    }
    const again = await loadOrCreateConfig(path, {
      generate: () => Promise.reject(new Error("no")),
    });
    assert.equal(again.created, false);
    assert.equal(again.config.user_id, first.config.user_id);
    assert.equal(encodePublicKey(again.keys!.publicKey), encodePublicKey(first.keys!.publicKey));
    assert.deepEqual(again.warnings, []);
    assert.deepEqual([...Deno.readDirSync(dir)].map((e) => e.name).sort(), [
      "alice.json",
      "alice.key.pem",
    ]);
  });
});

Deno.test("loadOrCreateConfig() saves a new display name and keeps unknown fields", async () => {
  await withDir(async (dir) => {
    const path = join(dir, "bob.json");
    await loadOrCreateConfig(path, { generate, displayName: "Bobby" });
    const raw = JSON.parse(await Deno.readTextFile(path));
    raw.future_field = { x: 1 };
    await Deno.writeTextFile(path, JSON.stringify(raw));
    const loaded = await loadOrCreateConfig(path, { displayName: "Robert" });
    assert.equal(loaded.config.display_name, "Robert");
    const saved = JSON.parse(await Deno.readTextFile(path));
    assert.equal(saved.display_name, "Robert");
    assert.deepEqual(saved.future_field, { x: 1 });
    await rejectsWith(() => loadOrCreateConfig(path, { displayName: "  " }), ConfigError, "empty");
  });
});

Deno.test("loadOrCreateConfig() explains a corrupt config or key without a stack trace", async () => {
  await withDir(async (dir) => {
    const path = join(dir, "c.json");
    await Deno.writeTextFile(path, "{ not json");
    const e1 = await rejectsWith(() => loadOrCreateConfig(path), ConfigError, "is not valid JSON");
    assert.ok(e1.message.includes(path));

    await Deno.writeTextFile(
      path,
      JSON.stringify({ user_id: "nope", display_name: "c", private_key_file: "c.key.pem" }),
    );
    await rejectsWith(
      () => loadOrCreateConfig(path),
      ConfigError,
      'field "user_id" must be a UUID',
    );

    await Deno.writeTextFile(
      path,
      JSON.stringify({
        user_id: crypto.randomUUID(),
        display_name: "c",
        private_key_file: "c.key.pem",
      }),
    );
    await rejectsWith(() => loadOrCreateConfig(path), ConfigError, "Cannot read private key file");
    await Deno.writeTextFile(
      join(dir, "c.key.pem"),
      "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n",
    );
    await rejectsWith(
      () => loadOrCreateConfig(path),
      ConfigError,
      "is not a valid RSA-4096 PKCS#8 PEM key",
    );

    await Deno.writeTextFile(
      path,
      JSON.stringify({
        user_id: crypto.randomUUID(),
        display_name: "c",
        private_key_file: "c.key.pem",
        sig_variant: "Z",
      }),
    );
    await rejectsWith(() => loadOrCreateConfig(path), ConfigError, "sig_variant");
  });
});

Deno.test("loadOrCreateConfig() will not overwrite an orphaned key file", async () => {
  await withDir(async (dir) => {
    await Deno.writeTextFile(join(dir, "d.key.pem"), "precious");
    await rejectsWith(
      () => loadOrCreateConfig(join(dir, "d.json"), { generate }),
      ConfigError,
      "exists but config",
    );
    assert.equal(await Deno.readTextFile(join(dir, "d.key.pem")), "precious");
  });
});

Deno.test("loadOrCreateConfig() warns about a key file readable by others", {
  ignore: Deno.build.os === "windows",
}, async () => {
  await withDir(async (dir) => {
    const path = join(dir, "e.json");
    await loadOrCreateConfig(path, { generate });
    await Deno.chmod(join(dir, "e.key.pem"), 0o644);
    const loaded = await loadOrCreateConfig(path);
    assert.match(loaded.warnings[0]!, /readable by others; run: chmod 600/);
  });
});

Deno.test("ConfigTrustStore persists pins atomically with mode 0600", async () => {
  await withDir(async (dir) => {
    const path = join(dir, "f.json");
    const loaded = await loadOrCreateConfig(path, { generate });
    const store = new ConfigTrustStore(loaded);
    store.pinUserKey("22222222-2222-4222-8222-222222222222", "KEY1");
    store.pinServer("ws://h:1", { server_id: "s", pubkey: "SKEY" });
    store.pinUserKey("__proto__", "weird");
    await store.flush();
    const reloaded = await loadOrCreateConfig(path);
    assert.equal(reloaded.config.known_keys["22222222-2222-4222-8222-222222222222"], "KEY1");
    assert.equal(new ConfigTrustStore(reloaded).userKey("__proto__"), "weird");
    assert.equal(new ConfigTrustStore(reloaded).userKey("toString"), undefined);
    assert.deepEqual(reloaded.config.servers["ws://h:1"], { server_id: "s", pubkey: "SKEY" });
    if (Deno.build.os !== "windows") assert.equal(mode(path), 0o600);
    assert.deepEqual([...Deno.readDirSync(dir)].filter((e) => e.name.endsWith(".tmp")), []);
  });
});

Deno.test("loadOrCreateConfig() with noKey makes a config without a key; addLocalIdentity() adds one", async () => {
  await withDir(async (dir) => {
    const path = join(dir, "g.json");
    const first = await loadOrCreateConfig(path, {
      noKey: true,
      account: "Gina",
      generate: () => Promise.reject(new Error("no key wanted")),
    });
    assert.equal(first.created, true);
    assert.equal(first.keys, undefined);
    assert.deepEqual(JSON.parse(await Deno.readTextFile(path)), {
      display_name: "Gina",
      account: "Gina",
      known_keys: {},
      servers: {},
    });
    const again = await loadOrCreateConfig(path, { noKey: true });
    assert.equal(again.keys, undefined);
    assert.equal(again.config.account, "Gina");
    await addLocalIdentity(again, generate);
    const withKey = await loadOrCreateConfig(path);
    assert.equal(withKey.config.user_id, again.config.user_id);
    assert.equal(withKey.config.private_key_file, "g.key.pem");
    assert.ok(withKey.keys);
    await Deno.writeTextFile(path, JSON.stringify({ display_name: "x", account: "a b" }));
    await rejectsWith(() => loadOrCreateConfig(path), ConfigError, 'field "account"');
  });
});
