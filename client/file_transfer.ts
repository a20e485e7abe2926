/**
 * File transfer: reading and chunking a file for `/file`, and reassembling, checking and saving
 * the files others send. Chunks carry at most 446 bytes of plaintext, each RSA-OAEP encrypted
 * under the recipient's key; the manifest's size and SHA-256 are checked before anything is
 * written, and names from the network never choose the folder.
 *
 * @module
 */

import { basename, join, resolve } from "node:path";
import {
  decryptBlock,
  encryptBlock,
  OAEP_MAX_PLAINTEXT,
  type PrivateKey,
  type PublicKey,
  sha256Hex,
} from "../shared/mod.ts";

/** Largest file sent or accepted (16 MiB, the server's limit). */
export const MAX_FILE_BYTES = 16 * 1024 * 1024;
/** Plaintext bytes per FILE_CHUNK (one OAEP block). */
export const FILE_CHUNK_BYTES = OAEP_MAX_PLAINTEXT;
/** Incoming transfers kept at once per client. */
export const MAX_ACTIVE_TRANSFERS = 16;
/** An incoming transfer idle this long (ms) is dropped. */
export const TRANSFER_IDLE_MS = 5 * 60_000;

/** A file problem the user can fix (missing, too large, a folder...). */
export class FileTransferError extends Error {
  /** Creates the error. */
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = "FileTransferError";
  }
}

/** A file read for sending. */
export interface OutgoingFile {
  /** Base name sent in the manifest. */
  name: string;
  /** The whole file. */
  data: Uint8Array;
  /** Lowercase hex SHA-256 of `data`. */
  sha256: string;
}

function mib(n: number): string {
  return `${(n / (1024 * 1024)).toFixed(1)} MiB`;
}

/**
 * Reads a file for `/file`, refusing folders and files over {@linkcode MAX_FILE_BYTES}.
 *
 * @example
 * ```ts ignore
 * const file = await readFileForSending("report.pdf");
 * ```
 */
export async function readFileForSending(path: string): Promise<OutgoingFile> {
  let info: Deno.FileInfo;
  try {
    info = await Deno.stat(path);
  } catch (cause) {
    if (cause instanceof Deno.errors.NotFound) {
      throw new FileTransferError(`File "${path}" does not exist`, { cause });
    }
    throw new FileTransferError(`Cannot read "${path}": ${(cause as Error).message}`, { cause });
  }
  if (!info.isFile) throw new FileTransferError(`"${path}" is not a regular file`);
  if (info.size > MAX_FILE_BYTES) {
    throw new FileTransferError(
      `File "${path}" is ${mib(info.size)}; the limit is ${mib(MAX_FILE_BYTES)}`,
    );
  }
  let data: Uint8Array;
  try {
    data = await Deno.readFile(path);
  } catch (cause) {
    throw new FileTransferError(`Cannot read "${path}": ${(cause as Error).message}`, { cause });
  }
  if (data.length > MAX_FILE_BYTES) {
    throw new FileTransferError(`File "${path}" grew over ${mib(MAX_FILE_BYTES)} while reading`);
  }
  return { name: basename(resolve(path)), data, sha256: await sha256Hex(data) };
}

/** Splits data into chunks of at most `size` bytes (views, no copies). */
export function chunkBytes(data: Uint8Array, size: number = FILE_CHUNK_BYTES): Uint8Array[] {
  const out: Uint8Array[] = [];
  for (let i = 0; i < data.length; i += size) out.push(data.subarray(i, i + size));
  return out;
}

/** How {@linkcode sendFileFrames} sends one frame. */
export interface FrameSender {
  (
    type: "FILE_START" | "FILE_CHUNK" | "FILE_END",
    payload: Record<string, string | number>,
  ): Promise<void>;
}

/** Options for {@linkcode sendFileFrames}. */
export interface SendFileOptions {
  /** The file. */
  file: OutgoingFile;
  /** Recipient key the chunks are encrypted under. */
  key: PublicKey;
  /** `"dm"`, or `"public"` when sent to each channel member. */
  mode: "dm" | "public";
  /** Sends one frame (paced by the caller). */
  send: FrameSender;
  /** Called with the bytes sent so far after each chunk. */
  onProgress?: (sentBytes: number) => void;
  /** Aborts between chunks. */
  signal?: AbortSignal;
  /** File id (default a random UUID). */
  fileId?: string;
}

/**
 * Sends FILE_START, the encrypted FILE_CHUNKs and FILE_END for one recipient. Returns the number
 * of chunks.
 */
export async function sendFileFrames(options: SendFileOptions): Promise<number> {
  const { file, key, mode, send, signal } = options;
  const fileId = options.fileId ?? crypto.randomUUID();
  await send("FILE_START", {
    file_id: fileId,
    name: file.name,
    size: file.data.length,
    sha256: file.sha256,
    mode,
  });
  const chunks = chunkBytes(file.data);
  let sent = 0;
  for (const [index, chunk] of chunks.entries()) {
    if (signal?.aborted) throw signal.reason ?? new DOMException("Aborted", "AbortError");
    const ciphertext = await encryptBlock(key, chunk);
    await send("FILE_CHUNK", { file_id: fileId, index, ciphertext });
    sent += chunk.length;
    options.onProgress?.(sent);
  }
  await send("FILE_END", { file_id: fileId });
  return chunks.length;
}

// Characters that are unsafe in file names on some system, plus controls and bidi overrides.
// deno-lint-ignore no-control-regex
const BAD_NAME_CHARS = /[\x00-\x1f\x7f-\x9f<>:"/\\|?*\u202a-\u202e\u2066-\u2069]/g;
const WINDOWS_RESERVED = /^(con|prn|aux|nul|com[0-9]|lpt[0-9])(\..*)?$/i;

/**
 * A safe base name for a file name received from the network: no folders (only the part after
 * the last `/` or `\`), no control or reserved characters, never `.` or `..`, at most 200
 * characters (keeping the extension).
 *
 * @example
 * ```ts
 * import { sanitizeFileName } from "./file_transfer.ts";
 * console.assert(sanitizeFileName("../../etc/passwd") === "passwd");
 * console.assert(sanitizeFileName("..") === "file");
 * ```
 */
export function sanitizeFileName(name: string): string {
  const last = name.split(/[/\\]/).pop() ?? "";
  let clean = last.replace(BAD_NAME_CHARS, "_").trim().replace(/[. ]+$/, "");
  if (clean.length === 0) return "file";
  if (clean.startsWith(".")) clean = `_${clean}`; // no hidden files
  if (WINDOWS_RESERVED.test(clean)) clean = `_${clean}`;
  const chars = [...clean];
  if (chars.length > 200) {
    const dot = clean.lastIndexOf(".");
    const ext = dot > 0 && clean.length - dot <= 16 ? clean.slice(dot) : "";
    clean = chars.slice(0, 200 - [...ext].length).join("") + ext;
  }
  return clean;
}

/**
 * Writes `data` into `dir` under `name`, or `name (1)`, `name (2)`... if taken. Never overwrites
 * (the file is created exclusively). Returns the absolute path.
 */
export async function saveUnique(dir: string, name: string, data: Uint8Array): Promise<string> {
  await Deno.mkdir(dir, { recursive: true, mode: 0o700 });
  const dot = name.lastIndexOf(".");
  const stem = dot > 0 ? name.slice(0, dot) : name;
  const ext = dot > 0 ? name.slice(dot) : "";
  for (let n = 0; n < 10_000; n++) {
    const path = resolve(join(dir, n === 0 ? name : `${stem} (${n})${ext}`));
    try {
      await Deno.writeFile(path, data, { createNew: true, mode: 0o600 });
      return path;
    } catch (e) {
      if (e instanceof Deno.errors.AlreadyExists) continue;
      throw e;
    }
  }
  throw new FileTransferError(`Too many files named "${name}" in "${dir}"`);
}

/** A FILE_START manifest, as the receiver needs it. */
export interface FileManifest {
  file_id: string;
  name: string;
  size: number;
  sha256: string;
  mode: "dm" | "public";
}

/** The outcome of a finished incoming transfer. */
export type ReceiveResult =
  | { ok: true; sender: string; manifest: FileManifest; path: string }
  | { ok: false; sender: string; manifest: FileManifest; reason: string };

interface Incoming {
  sender: string;
  manifest: FileManifest;
  chunks: Map<number, Uint8Array>;
  indices: Set<number>;
  pending: Set<Promise<void>>;
  bytes: number;
  failed?: string;
  touched: number;
  lastPercent: number;
}

/** Options for {@linkcode FileReceiver}. */
export interface FileReceiverOptions {
  /** The recipient's private key. */
  privateKey: PrivateKey;
  /** Folder to save into. */
  downloadsDir: string;
  /** Milliseconds now (for idle expiry). */
  now: () => number;
  /** Chunks decrypted at once (default: the number of CPUs, at least 2). */
  parallelism?: number;
  /** Progress callback (percent steps of at least 5). */
  onProgress?: (sender: string, manifest: FileManifest, percent: number) => void;
}

/**
 * Reassembles incoming files by `(sender, file_id, index)`, in any chunk order, with caps on
 * size, chunk count and concurrent transfers.
 */
export class FileReceiver {
  #options: FileReceiverOptions;
  #active: Map<string, Incoming> = new Map();
  #inflight: Set<Promise<void>> = new Set();
  #limit: number;

  /** Creates a receiver. */
  constructor(options: FileReceiverOptions) {
    this.#options = options;
    this.#limit = options.parallelism ?? Math.max(2, navigator.hardwareConcurrency ?? 2);
  }

  /** Transfers in progress. */
  get activeCount(): number {
    return this.#active.size;
  }

  /** The transfers in progress, as (sender, manifest). */
  active(): { sender: string; manifest: FileManifest }[] {
    return [...this.#active.values()].map((t) => ({ sender: t.sender, manifest: t.manifest }));
  }

  /** Handles FILE_START. Returns a reason when the transfer is refused. */
  start(sender: string, manifest: FileManifest): string | undefined {
    this.#expire();
    const key = `${sender}\n${manifest.file_id}`;
    if (this.#active.has(key)) return `duplicate FILE_START for file ${manifest.file_id}`;
    if (manifest.size > MAX_FILE_BYTES) {
      return `it is ${manifest.size} bytes; the limit is ${MAX_FILE_BYTES}`;
    }
    if (!/^[0-9a-f]{64}$/i.test(manifest.sha256)) return "its sha256 is not 64 hex digits";
    if (this.#active.size >= MAX_ACTIVE_TRANSFERS) {
      return `${MAX_ACTIVE_TRANSFERS} transfers are already in progress`;
    }
    this.#active.set(key, {
      sender,
      manifest,
      chunks: new Map(),
      indices: new Set(),
      pending: new Set(),
      bytes: 0,
      touched: this.#options.now(),
      lastPercent: 0,
    });
    return undefined;
  }

  /** Handles FILE_CHUNK; unknown transfers are ignored (returns false). */
  async chunk(sender: string, fileId: string, index: number, ciphertext: string): Promise<boolean> {
    const t = this.#active.get(`${sender}\n${fileId}`);
    if (!t) return false;
    t.touched = this.#options.now();
    if (t.failed) return true;
    // Any chunk carries at least one byte, so a valid index is below the size.
    if (!Number.isSafeInteger(index) || index < 0 || index >= Math.max(1, t.manifest.size)) {
      t.failed = `chunk index ${index} is out of range`;
      return true;
    }
    if (t.indices.has(index)) return true;
    t.indices.add(index);
    // Decrypt in the background (RSA-4096 decryption is slow; several run in parallel), but
    // keep at most #limit in flight so a big file cannot queue unbounded work.
    const task = this.#decrypt(t, index, ciphertext);
    t.pending.add(task);
    this.#inflight.add(task);
    task.finally(() => {
      t.pending.delete(task);
      this.#inflight.delete(task);
    });
    while (this.#inflight.size >= this.#limit) await Promise.race(this.#inflight);
    return true;
  }

  async #decrypt(t: Incoming, index: number, ciphertext: string): Promise<void> {
    let plain: Uint8Array;
    try {
      plain = await decryptBlock(this.#options.privateKey, ciphertext);
    } catch {
      t.failed ??= `chunk ${index} could not be decrypted`;
      t.chunks.clear();
      return;
    }
    if (t.failed) return;
    t.bytes += plain.length;
    if (t.bytes > t.manifest.size) {
      t.failed = `more data arrived than the announced ${t.manifest.size} bytes`;
      t.chunks.clear();
      return;
    }
    t.chunks.set(index, plain);
    const percent = t.manifest.size === 0 ? 100 : Math.floor((t.bytes * 100) / t.manifest.size);
    if (percent - t.lastPercent >= 5) {
      t.lastPercent = percent;
      this.#options.onProgress?.(t.sender, t.manifest, percent);
    }
  }

  /** Handles FILE_END: checks and saves. Returns undefined for an unknown transfer. */
  async end(sender: string, fileId: string): Promise<ReceiveResult | undefined> {
    const key = `${sender}\n${fileId}`;
    const t = this.#active.get(key);
    if (!t) return undefined;
    this.#active.delete(key);
    await Promise.all(t.pending);
    const fail = (reason: string): ReceiveResult => ({
      ok: false,
      sender,
      manifest: t.manifest,
      reason,
    });
    if (t.failed) return fail(t.failed);
    const data = new Uint8Array(t.bytes);
    let offset = 0;
    for (let i = 0; i < t.chunks.size; i++) {
      const piece = t.chunks.get(i);
      if (!piece) return fail(`chunk ${i} is missing`);
      data.set(piece, offset);
      offset += piece.length;
    }
    if (data.length !== t.manifest.size) {
      return fail(`size mismatch: got ${data.length} bytes, expected ${t.manifest.size}`);
    }
    const digest = await sha256Hex(data);
    if (digest !== t.manifest.sha256.toLowerCase()) return fail("sha256 mismatch");
    try {
      const path = await saveUnique(
        this.#options.downloadsDir,
        sanitizeFileName(t.manifest.name),
        data,
      );
      return { ok: true, sender, manifest: t.manifest, path };
    } catch (e) {
      return fail(`cannot save it: ${(e as Error).message}`);
    }
  }

  #expire(): void {
    const cutoff = this.#options.now() - TRANSFER_IDLE_MS;
    for (const [key, t] of this.#active) if (t.touched < cutoff) this.#active.delete(key);
  }
}
