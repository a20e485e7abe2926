/**
 * `deno task install` (the `install` task of deno.json, with its permission set) puts a `socp`
 * command into a bin directory without any download: the test runs the task's command with a
 * temporary `--root` and runs the installed `socp` from another directory. Where the install
 * would need the network it fails; it is never skipped.
 *
 * @module
 */

import assert from "node:assert/strict";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { withTempDir } from "./support/mod.ts";

const ROOT = fileURLToPath(new URL("..", import.meta.url));

/** The `install` task's command line, as words. */
async function installTask(): Promise<string[]> {
  const config = JSON.parse(await Deno.readTextFile(join(ROOT, "deno.json")));
  const task = config.tasks?.install;
  assert.equal(typeof task, "string", "deno.json has no install task");
  return (task as string).split(/\s+/);
}

async function run(
  cmd: string,
  args: string[],
  options: { cwd: string; env?: Record<string, string> },
): Promise<{ code: number; stdout: string; stderr: string }> {
  const out = await new Deno.Command(cmd, {
    args,
    cwd: options.cwd,
    env: { NO_COLOR: "1", ...options.env },
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).output();
  const text = new TextDecoder();
  return { code: out.code, stdout: text.decode(out.stdout), stderr: text.decode(out.stderr) };
}

Deno.test("`deno task install` installs a socp command that runs from anywhere", async () => {
  const words = await installTask();
  assert.deepEqual(words.slice(0, 2), ["deno", "install"]);
  assert.ok(words.includes("--global") && words.includes("socp"), words.join(" "));
  for (const all of ["-A", "--allow-all"]) {
    assert.ok(!words.includes(all), `the install task grants ${all}`);
  }
  for (const permission of ["--allow-net", "--allow-read", "--allow-write", "--allow-run"]) {
    assert.ok(words.includes(permission), `the install task lacks ${permission}`);
  }

  await withTempDir("socp_test_install_", async (dir) => {
    const root = join(dir, "root");
    const install = await run(Deno.execPath(), ["install", "--root", root, ...words.slice(2)], {
      cwd: ROOT,
    });
    assert.equal(install.code, 0, `deno install failed:\n${install.stderr}`);

    const bin = join(root, "bin", Deno.build.os === "windows" ? "socp.cmd" : "socp");
    // The installed script runs `deno` from PATH: the Deno running this test.
    const path = `${dirname(Deno.execPath())}${Deno.build.os === "windows" ? ";" : ":"}${
      Deno.env.get("PATH") ?? ""
    }`;
    const elsewhere = join(dir, "elsewhere");
    await Deno.mkdir(elsewhere);
    const help = await run(bin, ["--help"], { cwd: elsewhere, env: { PATH: path } });
    assert.equal(help.code, 0, help.stderr);
    assert.match(help.stdout, /^Usage:$/m);
    assert.match(help.stdout, /^ {2}socp server \[options\]/m);
    assert.match(help.stdout, /^ {2}socp client <config\.json>/m);

    const server = await run(bin, ["server", "--help"], { cwd: elsewhere, env: { PATH: path } });
    assert.equal(server.code, 0, server.stderr);
    assert.match(server.stdout, /^Usage: socp server/);
  });
});
