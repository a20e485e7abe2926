/**
 * Owner-only permissions for what a server keeps on disk (sealed keys, verifiers, queues):
 * directories 0700, files 0600, tightened when they already exist with wider modes. On systems
 * without Unix modes (Windows) these are no-ops.
 *
 * @module
 */

/** Mode of a private directory: owner only. */
export const PRIVATE_DIR_MODE = 0o700;
/** Mode of a private file: owner read and write. */
export const PRIVATE_FILE_MODE = 0o600;

/**
 * Sets `path` to `mode` when it grants anything `mode` does not (group or other bits, say).
 * Resolves with true when it changed the mode, false when it was already narrow enough, the
 * system has no Unix modes, or `path` does not exist.
 *
 * @example
 * ```ts
 * import { restrictMode } from "./file_mode.ts";
 * const path = await Deno.makeTempFile();
 * await Deno.chmod(path, 0o644);
 * console.assert(await restrictMode(path, 0o600));
 * console.assert((Deno.statSync(path).mode! & 0o777) === 0o600);
 * await Deno.remove(path);
 * ```
 */
export async function restrictMode(path: string, mode: number): Promise<boolean> {
  let info: Deno.FileInfo;
  try {
    info = await Deno.stat(path);
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return false;
    throw error;
  }
  if (info.mode === null || (info.mode & 0o777 & ~mode) === 0) return false;
  await Deno.chmod(path, mode);
  return true;
}

/**
 * Creates an empty file with mode 0600 unless `path` exists; then narrows the mode of an
 * existing one to 0600 (see {@linkcode restrictMode}).
 *
 * @example
 * ```ts
 * import { ensurePrivateFile } from "./file_mode.ts";
 * const dir = await Deno.makeTempDir();
 * await ensurePrivateFile(`${dir}/db`);
 * console.assert((Deno.statSync(`${dir}/db`).mode! & 0o777) === 0o600);
 * await Deno.remove(dir, { recursive: true });
 * ```
 */
export async function ensurePrivateFile(path: string): Promise<void> {
  try {
    const file = await Deno.open(path, { write: true, createNew: true, mode: PRIVATE_FILE_MODE });
    file.close();
  } catch (error) {
    if (!(error instanceof Deno.errors.AlreadyExists)) throw error;
  }
  await restrictMode(path, PRIVATE_FILE_MODE);
}
