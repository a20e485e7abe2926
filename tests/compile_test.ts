/**
 * Builds the `socp` binary with `deno compile` (the `compile` task) and runs it. Compiling
 * downloads a Deno runtime from Deno's servers; where that host cannot be reached the test is
 * reported as ignored, with the reason in its name.
 */
import assert from "node:assert/strict";
import { join } from "node:path";

const ROOT = new URL("..", import.meta.url).pathname;
const dir = await Deno.makeTempDir({ prefix: "socp-compile-" });
const binary = join(dir, Deno.build.os === "windows" ? "socp.exe" : "socp");
const build = await new Deno.Command(Deno.execPath(), {
  args: ["compile", "--allow-all", "--output", binary, "main.ts"],
  cwd: ROOT,
  stdout: "piped",
  stderr: "piped",
}).output();
const buildLog = new TextDecoder().decode(build.stderr);
const downloadFailed = !build.success &&
  /dns error|failed to lookup|error sending request|download|Connection refused|tcp connect/i.test(
    buildLog,
  );
Deno.test({
  name: downloadFailed
    ? "`deno compile` builds a working socp binary (skipped: the Deno runtime download is unreachable here)"
    : "`deno compile` builds a working socp binary",
  ignore: downloadFailed,
  async fn() {
    try {
      assert.ok(build.success, `deno compile failed:\n${buildLog}`);
      const version = await new Deno.Command(binary, { args: ["--version"], stdout: "piped" })
        .output();
      assert.ok(version.success);
      assert.match(new TextDecoder().decode(version.stdout), /socp \d+\.\d+\.\d+/);
      const help = await new Deno.Command(binary, { args: ["server", "--help"], stdout: "piped" })
        .output();
      assert.match(new TextDecoder().decode(help.stdout), /Usage: socp server/);
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});

if (downloadFailed) await Deno.remove(dir, { recursive: true });
