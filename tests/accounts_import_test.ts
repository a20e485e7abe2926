/**
 * `socp accounts import <file>`: accounts from `username password` lines, sealed and signed as
 * `/register` does; a file with any bad line imports nothing and names the lines.
 */

import assert from "node:assert/strict";
import { join } from "node:path";
import {
  authKeyFor,
  encodePublicKey,
  openPrivateKey,
  rsa,
  toKdfParams,
  toPrivkeyStore,
} from "../shared/mod.ts";
import {
  listAccounts,
  preHelloFrame,
  RawConnection,
  runMain,
  startServer,
  withTempDir,
} from "./support/mod.ts";

/** Logs in over raw frames; resolves with the user id once the key blob opens and matches. */
async function login(url: string, serverPub: string, username: string, password: string) {
  await using conn = await RawConnection.open(url, { serverPub });
  conn.send(preHelloFrame("LOGIN_START", { username }));
  const params = toKdfParams((await conn.next("LOGIN_PARAMS")).payload["kdf"]);
  conn.send(
    preHelloFrame("LOGIN_PROOF", { username, auth_key: await authKeyFor(password, params) }),
  );
  const ok = await conn.next((f) => f.type === "LOGIN_OK" || f.type === "ERROR");
  assert.equal(ok.type, "LOGIN_OK", JSON.stringify(ok.payload));
  const key = await openPrivateKey(toPrivkeyStore(ok.payload["privkey_store"]), password);
  const pub = encodePublicKey(await rsa().publicKeyOf(key));
  assert.equal(pub, ok.payload["pubkey"], "the sealed key belongs to the account");
  return String(ok.payload["user_id"]);
}

Deno.test("`socp accounts import` creates accounts that log in with their passwords", async () => {
  await withTempDir("socp_test_import_", async (dir) => {
    const dataDir = join(dir, "data");
    const file = join(dir, "credentials.txt");
    await Deno.writeTextFile(file, "# users\nhans falcon\n\nyoda wise-one\n");
    const out = await runMain(["accounts", "import", file, "--data-dir", dataDir], {
      timeoutMs: 120_000,
    });
    assert.equal(out.code, 0, out.stderr);
    assert.match(out.stdout, /imported 2 accounts/);
    await using server = await startServer({ dataDir, serverKey: null });
    const rows = await listAccounts(server.url, "*", server.pubkey);
    assert.deepEqual(rows.map((r) => r.username).sort(), ["hans", "yoda"]);
    const hans = await login(server.url, server.pubkey, "hans", "falcon");
    assert.equal(hans, rows.find((r) => r.username === "hans")?.user_id);
    await login(server.url, server.pubkey, "Yoda", "wise-one");
    // Importing the same names again is refused: they are taken.
    const again = await runMain(["accounts", "import", file, "--data-dir", dataDir]);
    assert.equal(again.code, 1);
    assert.match(again.stderr, /line 2: the name "hans" is taken/);
  });
});

Deno.test("`socp accounts import` reports every bad line and imports nothing", async () => {
  await withTempDir("socp_test_import_", async (dir) => {
    const dataDir = join(dir, "data");
    const file = join(dir, "credentials.txt");
    await Deno.writeTextFile(
      file,
      "good secret\nnopassword\nbad!name pw\nGood again\nthree fields here\n",
    );
    const out = await runMain(["accounts", "import", file, "--data-dir", dataDir]);
    assert.equal(out.code, 1);
    assert.match(out.stderr, /line 2: expected "username password", got 1 field\b/);
    assert.match(out.stderr, /line 3: Username "bad!name" must be/);
    assert.match(out.stderr, /line 4: "Good" is already on line 1/);
    assert.match(out.stderr, /line 5: expected "username password", got 3 fields/);
    assert.match(out.stderr, /nothing imported \(4 problems\)/);
    // Not even the good line was kept (no database was made at all).
    await assert.rejects(Deno.stat(join(dataDir, "socp.db")), Deno.errors.NotFound);
    const missing = await runMain(["accounts", "import", join(dir, "none.txt")]);
    assert.equal(missing.code, 1);
    assert.match(missing.stderr, /cannot read/);
  });
});
