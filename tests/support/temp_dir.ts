/**
 * A temporary directory for the length of a test body, removed afterwards.
 *
 * @module
 */

/**
 * Runs `fn` with a fresh temporary directory (named with `prefix`) and removes the directory
 * and everything in it afterwards, whether `fn` resolved or rejected.
 *
 * @example
 * ```ts
 * import { withTempDir } from "./temp_dir.ts";
 *
 * let seen = "";
 * await withTempDir("socp_example_", async (dir) => {
 *   await Deno.writeTextFile(`${dir}/note.txt`, "hi");
 *   seen = dir;
 * });
 * console.assert(seen !== "" && !(await Deno.stat(seen).then(() => true, () => false)));
 * ```
 */
export async function withTempDir(
  prefix: string,
  fn: (dir: string) => Promise<void>,
): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix });
  try {
    await fn(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}
