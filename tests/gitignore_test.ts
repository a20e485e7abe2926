/**
 * The `.gitignore` keeps what socp writes into a checkout (client configs and their keys, server
 * data) out of git, and ignores nothing that is tracked. Asked of git itself; outside a git
 * checkout the test is reported as ignored, with the reason in its name.
 *
 * @module
 */

import assert from "node:assert/strict";
import { fileURLToPath } from "node:url";

const ROOT = fileURLToPath(new URL("..", import.meta.url));

async function git(...args: string[]): Promise<{ code: number; stdout: string }> {
  const out = await new Deno.Command("git", { args, cwd: ROOT, stdout: "piped", stderr: "null" })
    .output();
  return { code: out.code, stdout: new TextDecoder().decode(out.stdout) };
}

const inCheckout = await git("rev-parse", "--is-inside-work-tree").then(
  (r) => r.code === 0 && r.stdout.trim() === "true",
  () => false,
);

/** True when git would ignore `path` (tracked or not). */
async function ignored(path: string): Promise<boolean> {
  const { code } = await git("check-ignore", "--quiet", "--no-index", path);
  assert.ok(code === 0 || code === 1, `git check-ignore ${path} failed with ${code}`);
  return code === 0;
}

Deno.test({
  name: inCheckout
    ? ".gitignore ignores client configs and keys made in the checkout, and no tracked file"
    : ".gitignore ignores client configs and keys (skipped: not a git checkout)",
  ignore: !inCheckout,
  async fn() {
    for (
      const path of [
        "alice.json",
        "alice.key.pem",
        "alice.history.json",
        "alice.input_history",
        "data/socp.db",
        "mesh-data/server1/lock",
      ]
    ) {
      assert.ok(await ignored(path), `${path} is not ignored`);
    }
    for (const path of ["deno.json", "deno.lock", "tests/fixtures/keys/exp3.json"]) {
      assert.ok(!(await ignored(path)), `${path} is ignored`);
    }
    // Tracked files that an ignore pattern matches: there must be none.
    const { stdout } = await git("ls-files", "--cached", "--ignored", "--exclude-standard");
    assert.equal(stdout, "");
  },
});
