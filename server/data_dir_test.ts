import assert from "node:assert/strict";
import { join } from "node:path";
import { ConfigError } from "./config.ts";
import { DataDirInUseError, LOCK_FILE, lockDataDir, prepareDataDir } from "./data_dir.ts";

const unix = Deno.build.os !== "windows";
const mode = (path: string) => Deno.statSync(path).mode! & 0o777;

Deno.test({
  name: "`prepareDataDir()` creates a missing directory with mode 0700",
  ignore: !unix,
  async fn() {
    const parent = await Deno.makeTempDir();
    try {
      await prepareDataDir(join(parent, "a", "data"));
      assert.equal(mode(join(parent, "a", "data")), 0o700);
    } finally {
      await Deno.remove(parent, { recursive: true });
    }
  },
});

Deno.test({
  name: "`prepareDataDir()` narrows an existing 0755 directory to 0700 and keeps its files",
  ignore: !unix,
  async fn() {
    const dir = await Deno.makeTempDir();
    try {
      await Deno.chmod(dir, 0o755);
      await Deno.writeTextFile(join(dir, "kept"), "x");
      await prepareDataDir(dir);
      assert.equal(mode(dir), 0o700);
      assert.equal(await Deno.readTextFile(join(dir, "kept")), "x");
      await Deno.chmod(dir, 0o500); // narrower than 0700: left alone
      await prepareDataDir(dir);
      assert.equal(mode(dir), 0o500);
      await Deno.chmod(dir, 0o700);
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});

Deno.test("`prepareDataDir()` refuses a file with a one-line ConfigError naming it", async () => {
  const file = await Deno.makeTempFile();
  try {
    await assert.rejects(() => prepareDataDir(file), (e: unknown) => {
      assert.ok(e instanceof ConfigError);
      assert.equal(
        e.message,
        `Data directory "${file}" exists but is not a directory; choose another --data-dir`,
      );
      return true;
    });
    await assert.rejects(() => prepareDataDir(join(file, "sub")), (e: unknown) => {
      assert.ok(e instanceof ConfigError);
      assert.match(e.message, /^Data directory ".*sub" is not usable: /);
      assert.ok(!e.message.includes("\n"));
      return true;
    });
  } finally {
    await Deno.remove(file);
  }
});

Deno.test("`lockDataDir()` refuses a second lock with one line naming the holder's pid", async () => {
  const parent = await Deno.makeTempDir();
  const dir = join(parent, "data");
  try {
    {
      await using lock = await lockDataDir(dir);
      assert.equal(lock.path, join(dir, LOCK_FILE));
      assert.equal((await Deno.readTextFile(lock.path)).trim(), String(Deno.pid));
      if (unix) assert.equal(mode(lock.path), 0o600);
      await assert.rejects(() => lockDataDir(dir), (e: unknown) => {
        assert.ok(e instanceof DataDirInUseError && e instanceof ConfigError);
        assert.equal(e.pid, Deno.pid);
        assert.equal(e.path, dir);
        assert.equal(
          e.message,
          `Data directory "${dir}" is in use by another socp server (pid ${Deno.pid}); ` +
            "stop it, or give this one its own --data-dir",
        );
        return true;
      });
    }
    // Released on dispose: the next lock succeeds and the file is kept.
    await using again = await lockDataDir(dir);
    assert.equal((await Deno.readTextFile(again.path)).trim(), String(Deno.pid));
  } finally {
    await Deno.remove(parent, { recursive: true });
  }
});

Deno.test("`lockDataDir()` takes over a lock file left behind by a process that is gone", async () => {
  const dir = await Deno.makeTempDir();
  try {
    // A crashed server leaves its pid in the file but holds no OS lock any more.
    await Deno.writeTextFile(join(dir, LOCK_FILE), "999999999\n");
    await using lock = await lockDataDir(dir);
    assert.equal((await Deno.readTextFile(lock.path)).trim(), String(Deno.pid));
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
