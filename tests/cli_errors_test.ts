/**
 * A mistyped command line gets one line saying what is wrong and where the help is, instead of
 * the whole usage text or the argument parser's advice about positional arguments. (`socp server`
 * and `socp mesh` are covered in server_test.ts and mesh_command_test.ts.)
 *
 * @module
 */

import assert from "node:assert/strict";
import { join } from "node:path";
import { runMain, withTempDir } from "./support/mod.ts";

/** The stderr lines the command printed itself (not the `rsa backend:` notice). */
function ownLines(stderr: string): string[] {
  return stderr.split("\n").filter((line) => line !== "" && !line.startsWith("rsa backend:"));
}

Deno.test("socp client answers a mistyped flag with one line naming it, not parser advice", async () => {
  await withTempDir("socp_test_cli_", async (dir) => {
    const config = join(dir, "alice.json");
    const typo = await runMain(["client", config, "--serverr", "ws://127.0.0.1:1"]);
    assert.equal(typo.code, 1);
    assert.equal(typo.stdout, "");
    assert.deepEqual(ownLines(typo.stderr), [
      'socp client: Unknown option "--serverr"; did you mean "--server"? (socp client --help for more)',
    ]);
    await assert.rejects(() => Deno.stat(config), Deno.errors.NotFound);

    const missing = await runMain(["client"]);
    assert.equal(missing.code, 1);
    assert.deepEqual(ownLines(missing.stderr), [
      "socp client: Missing <config.json> (socp client --help for more)",
    ]);
  });
});

Deno.test("socp answers an unknown command with one line listing the commands", async () => {
  const out = await runMain(["sever"]);
  assert.equal(out.code, 64);
  assert.equal(out.stdout, "");
  const lines = ownLines(out.stderr);
  assert.equal(lines.length, 1, out.stderr);
  assert.match(lines[0]!, /^socp: Unknown command "sever"; the commands are server, client/);
  assert.match(lines[0]!, /\(socp --help for more\)$/);
});
