/**
 * The server's data directory: created with mode 0700, or narrowed to 0700 when it exists with
 * wider permissions, since it holds the server key, sealed account keys, verifiers and queues.
 * One server at a time uses it: {@linkcode lockDataDir} holds an exclusive lock on
 * `<data-dir>/lock` while a server runs.
 *
 * @module
 */

import { join } from "node:path";
import { PRIVATE_DIR_MODE, PRIVATE_FILE_MODE, restrictMode } from "../storage/mod.ts";
import { ConfigError } from "./config.ts";

/** The lock file inside a data directory; it holds the pid of the server that locked it. */
export const LOCK_FILE = "lock";

/**
 * Makes sure `path` is a directory only its owner can enter: creates it (and missing parents)
 * with mode 0700, or narrows an existing one to 0700. Throws {@linkcode ConfigError} with a
 * one-line message when `path` is a file or cannot be created.
 *
 * @example
 * ```ts
 * import { prepareDataDir } from "./data_dir.ts";
 * const parent = await Deno.makeTempDir();
 * await prepareDataDir(`${parent}/data`);
 * console.assert((Deno.statSync(`${parent}/data`).mode! & 0o777) === 0o700);
 * await Deno.remove(parent, { recursive: true });
 * ```
 */
export async function prepareDataDir(path: string): Promise<void> {
  let info: Deno.FileInfo | undefined;
  try {
    info = await Deno.stat(path);
  } catch (error) {
    if (!(error instanceof Deno.errors.NotFound)) {
      throw new ConfigError(
        `Data directory "${path}" is not usable: ${(error as Error).message}`,
        { cause: error },
      );
    }
  }
  if (info && !info.isDirectory) {
    throw new ConfigError(
      `Data directory "${path}" exists but is not a directory; choose another --data-dir`,
    );
  }
  try {
    if (!info) await Deno.mkdir(path, { recursive: true, mode: PRIVATE_DIR_MODE });
    await restrictMode(path, PRIVATE_DIR_MODE);
  } catch (error) {
    throw new ConfigError(
      `Cannot create the data directory "${path}": ${(error as Error).message}`,
      { cause: error },
    );
  }
}

/** Thrown by {@linkcode lockDataDir} when another process holds the data directory's lock. */
export class DataDirInUseError extends ConfigError {
  /** The data directory. */
  readonly path: string;
  /** The pid of the server holding it, when its lock file names one. */
  readonly pid: number | undefined;

  /** Creates the error for `path` held by `pid`. */
  constructor(path: string, pid: number | undefined) {
    super(
      `Data directory "${path}" is in use by another socp server${
        pid === undefined ? "" : ` (pid ${pid})`
      }; stop it, or give this one its own --data-dir`,
    );
    this.name = "DataDirInUseError";
    this.path = path;
    this.pid = pid;
  }
}

/** An exclusive lock on a data directory; disposing it releases the lock. */
export interface DataDirLock extends AsyncDisposable {
  /** The lock file (`<data-dir>/lock`). */
  readonly path: string;
}

/**
 * Prepares the data directory `path` ({@linkcode prepareDataDir}) and takes an exclusive lock on
 * its lock file, which then holds this process's pid. Throws {@linkcode DataDirInUseError} (a
 * {@linkcode ConfigError} with a one-line message naming the other server's pid) when another
 * process holds the lock, and a plain {@linkcode ConfigError} when it cannot lock. The lock
 * is an advisory OS file lock: it ends with the process however it ends (also on SIGKILL), so a
 * lock file left behind never blocks the next start.
 *
 * @example
 * ```ts
 * import { lockDataDir } from "./data_dir.ts";
 * const dir = await Deno.makeTempDir();
 * {
 *   await using _lock = await lockDataDir(dir);
 *   const second = await lockDataDir(dir).then(() => "locked twice", (e: Error) => e.message);
 *   console.assert(second.includes("in use by another socp server"));
 * }
 * await using _again = await lockDataDir(dir); // released when the first was disposed
 * await Deno.remove(dir, { recursive: true });
 * ```
 */
export async function lockDataDir(path: string): Promise<DataDirLock> {
  await prepareDataDir(path);
  const lockPath = join(path, LOCK_FILE);
  let file: Deno.FsFile;
  let locked: boolean;
  try {
    file = await Deno.open(lockPath, {
      read: true,
      write: true,
      create: true,
      mode: PRIVATE_FILE_MODE,
    });
  } catch (error) {
    throw new ConfigError(
      `Cannot open the lock file "${lockPath}": ${(error as Error).message}`,
      { cause: error },
    );
  }
  try {
    locked = await file.tryLock(true);
  } catch (error) {
    file.close();
    throw new ConfigError(`Cannot lock "${lockPath}": ${(error as Error).message}`, {
      cause: error,
    });
  }
  if (!locked) {
    file.close();
    // The holder writes its pid right after locking; a reader racing that write sees none.
    const pid = (await Deno.readTextFile(lockPath).catch(() => "")).trim();
    throw new DataDirInUseError(path, /^\d+$/.test(pid) ? Number(pid) : undefined);
  }
  try {
    await file.truncate(0);
    const bytes = new TextEncoder().encode(`${Deno.pid}\n`);
    for (let written = 0; written < bytes.length;) {
      written += await file.write(bytes.subarray(written));
    }
  } catch (error) {
    file.close();
    throw new ConfigError(`Cannot write "${lockPath}": ${(error as Error).message}`, {
      cause: error,
    });
  }
  let released = false;
  return {
    path: lockPath,
    async [Symbol.asyncDispose](): Promise<void> {
      if (released) return;
      released = true;
      // Emptied while still held; the file stays, since deleting it could let two servers lock
      // two different files of the same name.
      await file.truncate(0).catch(() => {});
      file.close();
    },
  };
}
