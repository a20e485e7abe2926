import assert from "node:assert/strict";
import { join } from "node:path";
import { ensurePrivateFile, restrictMode } from "./file_mode.ts";
import { openSqliteStore } from "./sqlite_store.ts";

const unix = Deno.build.os !== "windows";
const mode = (path: string) => Deno.statSync(path).mode! & 0o777;

Deno.test({
  name: "`restrictMode()` removes group and other bits, and leaves narrower modes alone",
  ignore: !unix,
  async fn() {
    const file = await Deno.makeTempFile();
    try {
      await Deno.chmod(file, 0o664);
      assert.equal(await restrictMode(file, 0o600), true);
      assert.equal(mode(file), 0o600);
      assert.equal(await restrictMode(file, 0o600), false);
      await Deno.chmod(file, 0o400);
      assert.equal(await restrictMode(file, 0o600), false);
      assert.equal(mode(file), 0o400);
      assert.equal(await restrictMode(`${file}.missing`, 0o600), false);
    } finally {
      await Deno.remove(file);
    }
  },
});

Deno.test({
  name: "`ensurePrivateFile()` creates an empty 0600 file and keeps an existing one's content",
  ignore: !unix,
  async fn() {
    const dir = await Deno.makeTempDir();
    try {
      const path = join(dir, "f");
      await ensurePrivateFile(path);
      assert.equal(mode(path), 0o600);
      assert.equal((await Deno.readFile(path)).length, 0);
      await Deno.writeTextFile(path, "data");
      await Deno.chmod(path, 0o644);
      await ensurePrivateFile(path);
      assert.equal(mode(path), 0o600);
      assert.equal(await Deno.readTextFile(path), "data");
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});

Deno.test({
  name: "`openSqliteStore()` keeps the database and its -wal/-shm files at 0600, also when wider",
  ignore: !unix,
  async fn() {
    const dir = await Deno.makeTempDir();
    try {
      const path = join(dir, "new", "socp.db");
      {
        await using store = await openSqliteStore(path);
        await store.setSetting("k", "v");
        assert.equal(mode(join(dir, "new")), 0o700);
        for (const f of [path, `${path}-wal`, `${path}-shm`]) assert.equal(mode(f), 0o600, f);
      }
      await Deno.chmod(path, 0o644);
      await Deno.writeFile(`${path}-wal`, new Uint8Array(), { mode: 0o644 });
      await Deno.chmod(`${path}-wal`, 0o644);
      {
        await using store = await openSqliteStore(path);
        assert.equal(await store.getSetting("k"), "v");
        for (const f of [path, `${path}-wal`, `${path}-shm`]) assert.equal(mode(f), 0o600, f);
      }
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});
