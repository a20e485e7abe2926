/**
 * File transfer: reading and chunking a file for `/file`, and reassembling, checking and saving
 * the files others send; {@linkcode FileTransfers} does both for a session. To other
 * implementations' clients chunks carry at most 446 bytes of plaintext, each RSA-OAEP encrypted
 * under the recipient's key (the spec); to a client that announced `file-aes-gcm` they carry up
 * to 44 KiB, AES-256-GCM under a per-file key wrapped in FILE_START, and FILE_END carries the
 * sender's signature over the file's SHA-256 and size (docs/protocol.md, "Files"). A file sent
 * in a group (`/file <group>`, groups.ts) is the same copy per member, every frame carrying the
 * `group_id`. Size and SHA-256 are checked before anything is written, and names from the
 * network never choose the folder.
 *
 * @module
 */

import {
  canonicalBytes,
  decodeBase64Url,
  decryptBlock,
  encodeBase64Url,
  encryptBlock,
  type Envelope,
  type JsonObject,
  OAEP_MAX_PLAINTEXT,
  type PrivateKey,
  type PublicKey,
  rsa,
  sha256Hex,
  signContent,
} from "../shared/mod.ts";
import { errorMessage, ReplayCache, senderOf } from "./_util.ts";
import type { Clock } from "./clock.ts";
import type { Connection, Identity, SigVariantChoice } from "./connection.ts";
import { CommandError } from "./errors.ts";
import type { EventSink, FileEvent } from "./events.ts";
import { type Logger, silentLogger } from "./logger.ts";
import type { Presence } from "./presence.ts";
import type { QueuedAcks } from "./queued_acks.ts";
import type { UserKeys } from "./user_keys.ts";

/** Largest file sent or accepted (16 MiB, the server's limit). */
export const MAX_FILE_BYTES = 16 * 1024 * 1024;
/** Plaintext bytes per FILE_CHUNK (one OAEP block). */
export const FILE_CHUNK_BYTES = OAEP_MAX_PLAINTEXT;
/** The capability (USER_ADVERTISE `meta.caps`) of a client that takes AES-GCM file chunks. */
export const FILE_AES_CAP = "file-aes-gcm";
/** FILE_START `enc` of an AES-GCM transfer. */
export const FILE_AES_ENC = "aes-256-gcm";
/**
 * Plaintext bytes per AES-GCM FILE_CHUNK: 44 KiB, whose ciphertext (plus the 16-byte tag) in
 * base64url and the envelope stay under the 65,536-byte user frame limit with about 4 KiB spare.
 */
export const AES_CHUNK_BYTES = 44 * 1024;
/** AES-GCM chunks sent between confirmations by the server (about 1.4 MiB). */
const AES_CONFIRM_EVERY = 32;
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
  // Imported here, not at the top: this module is also bundled for the browser (client/web),
  // which never reads or saves files by path.
  const { basename, resolve } = await import("node:path");
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

/**
 * {@linkcode readFileForSending} for a command (`/file`): a file that cannot be sent (missing,
 * too large, not a file) is a {@linkcode CommandError} with the reason.
 */
export async function readFileForCommand(path: string): Promise<OutgoingFile> {
  try {
    return await readFileForSending(path);
  } catch (e) {
    if (e instanceof FileTransferError) throw new CommandError(e.message, { cause: e });
    throw e;
  }
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
  /**
   * The sender's key text, put in FILE_START and every FILE_CHUNK as `sender_pub` (Group 17's
   * client reads it there; others ignore it). Not in AES-GCM chunks.
   */
  senderPub?: string;
  /**
   * Sends AES-GCM chunks (for a recipient whose client announced {@linkcode FILE_AES_CAP}):
   * the ids for the FILE_END signature and the key that makes it.
   */
  aes?: { from: string; to: string; privateKey: PrivateKey };
  /**
   * Resolves once the server has taken every frame sent so far (a barrier). AES-GCM chunks wait
   * for the answer about the chunks before the last {@linkcode AES_CONFIRM_EVERY}, so a fast
   * sender never runs more than two windows ahead of its server.
   */
  confirm?: () => Promise<unknown>;
}

/** The fields the FILE_END signature of an AES-GCM transfer covers. */
export interface FileEndFields {
  file_id: string;
  sha256: string;
  size: number;
  from: string;
  to: string;
}

/**
 * The bytes the FILE_END `file_sig` signs (RSA-PSS, like every socp signature): canonical JSON
 * of the file id, its lowercase hex SHA-256, its size, sender and recipient.
 *
 * @example
 * ```ts
 * import { fileEndPreimage } from "./file_transfer.ts";
 * const bytes = fileEndPreimage({ file_id: "f", sha256: "00", size: 1, from: "a", to: "b" });
 * console.assert(new TextDecoder().decode(bytes).startsWith('{"file_id":"f"'));
 * ```
 */
export function fileEndPreimage(fields: FileEndFields): Uint8Array {
  return canonicalBytes({
    file_id: fields.file_id,
    from: fields.from,
    sha256: fields.sha256.toLowerCase(),
    size: fields.size,
    to: fields.to,
    v: "socp-file-end-1",
  });
}

/** The AES-GCM IV of chunk `index`: 4 zero bytes, then the index (64-bit big-endian). */
function chunkIv(index: number): Uint8Array<ArrayBuffer> {
  const iv = new Uint8Array(12);
  new DataView(iv.buffer).setBigUint64(4, BigInt(index));
  return iv;
}

/** The AES-GCM additional data of chunk `index`: the index, 64-bit big-endian. */
function chunkAad(index: number): Uint8Array<ArrayBuffer> {
  const aad = new Uint8Array(8);
  new DataView(aad.buffer).setBigUint64(0, BigInt(index));
  return aad;
}

/** Encrypts one chunk under the per-file key. */
async function aesEncryptChunk(key: CryptoKey, index: number, plain: Uint8Array): Promise<string> {
  const sealed = await crypto.subtle.encrypt(
    { name: "AES-GCM", iv: chunkIv(index), additionalData: chunkAad(index) },
    key,
    plain as Uint8Array<ArrayBuffer>,
  );
  return encodeBase64Url(new Uint8Array(sealed));
}

/** Decrypts one chunk; throws when it was altered (or the key is wrong). */
async function aesDecryptChunk(key: CryptoKey, index: number, text: string): Promise<Uint8Array> {
  const sealed = decodeBase64Url(text) as Uint8Array<ArrayBuffer>;
  const plain = await crypto.subtle.decrypt(
    { name: "AES-GCM", iv: chunkIv(index), additionalData: chunkAad(index) },
    key,
    sealed,
  );
  return new Uint8Array(plain);
}

/** Unwraps a per-file key sent in FILE_START. */
async function unwrapFileKey(privateKey: PrivateKey, wrapped: string): Promise<CryptoKey> {
  const raw = await decryptBlock(privateKey, wrapped);
  if (raw.length !== 32) throw new RangeError(`The file key is ${raw.length} bytes, not 32`);
  return await crypto.subtle.importKey(
    "raw",
    raw as Uint8Array<ArrayBuffer>,
    { name: "AES-GCM" },
    false,
    ["decrypt"],
  );
}

/**
 * A progress reporter for sending `file` to `recipients` copies: emits `file_progress` (to
 * `peer`) each time the whole-percent figure changes; call it with the bytes sent so far.
 */
export function sendProgress(
  emit: EventSink,
  file: OutgoingFile,
  options: { peer: string; recipients: number },
): (done: number) => void {
  const total = Math.max(1, file.data.length * options.recipients);
  let lastPercent = -1;
  return (done) => {
    const percent = Math.floor((done * 100) / total);
    if (percent === lastPercent) return;
    lastPercent = percent;
    emit({
      event: "file_progress",
      direction: "send",
      name: file.name,
      peer: options.peer,
      percent,
    });
  };
}

/**
 * Sends FILE_START, the encrypted FILE_CHUNKs and FILE_END for one recipient. Returns the number
 * of chunks.
 */
export async function sendFileFrames(options: SendFileOptions): Promise<number> {
  if (options.aes) return await sendAesFileFrames(options, options.aes);
  const { file, key, mode, send, signal } = options;
  const fileId = options.fileId ?? crypto.randomUUID();
  const senderPub = options.senderPub === undefined ? {} : { sender_pub: options.senderPub };
  await send("FILE_START", {
    file_id: fileId,
    name: file.name,
    size: file.data.length,
    sha256: file.sha256,
    mode,
    ...senderPub,
  });
  const chunks = chunkBytes(file.data);
  const total = chunks.length;
  let sent = 0;
  for (const [index, chunk] of chunks.entries()) {
    if (signal?.aborted) throw signal.reason ?? new DOMException("Aborted", "AbortError");
    const ciphertext = await encryptBlock(key, chunk);
    await send("FILE_CHUNK", { file_id: fileId, index, ciphertext, total, ...senderPub });
    sent += chunk.length;
    options.onProgress?.(sent);
  }
  await send("FILE_END", { file_id: fileId });
  return chunks.length;
}

/**
 * The AES-GCM form: FILE_START with the wrapped per-file key, chunks of
 * {@linkcode AES_CHUNK_BYTES}, FILE_END with the signed SHA-256 and size.
 */
async function sendAesFileFrames(
  options: SendFileOptions,
  aes: NonNullable<SendFileOptions["aes"]>,
): Promise<number> {
  const { file, key, mode, send, signal } = options;
  const fileId = options.fileId ?? crypto.randomUUID();
  const fileKey = await crypto.subtle.generateKey({ name: "AES-GCM", length: 256 }, true, [
    "encrypt",
  ]);
  const raw = new Uint8Array(await crypto.subtle.exportKey("raw", fileKey));
  const wrapped = await encryptBlock(key, raw);
  raw.fill(0);
  await send("FILE_START", {
    file_id: fileId,
    name: file.name,
    size: file.data.length,
    sha256: file.sha256,
    mode,
    enc: FILE_AES_ENC,
    key: wrapped,
    ...(options.senderPub === undefined ? {} : { sender_pub: options.senderPub }),
  });
  const chunks = chunkBytes(file.data, AES_CHUNK_BYTES);
  const total = chunks.length;
  let sent = 0;
  let confirming: Promise<unknown> | undefined;
  try {
    for (const [index, chunk] of chunks.entries()) {
      if (signal?.aborted) throw signal.reason ?? new DOMException("Aborted", "AbortError");
      const ciphertext = await aesEncryptChunk(fileKey, index, chunk);
      await send("FILE_CHUNK", { file_id: fileId, index, ciphertext, total });
      sent += chunk.length;
      options.onProgress?.(sent);
      if (options.confirm && (index + 1) % AES_CONFIRM_EVERY === 0) {
        // Paced by the server's answers: wait for the previous window, then ask about this one.
        await confirming;
        confirming = options.confirm().catch(() => {});
      }
    }
  } finally {
    await confirming;
  }
  const fileSig = encodeBase64Url(
    await rsa().sign(
      aes.privateKey,
      fileEndPreimage({
        file_id: fileId,
        sha256: file.sha256,
        size: file.data.length,
        from: aes.from,
        to: aes.to,
      }),
    ),
  );
  await send("FILE_END", {
    file_id: fileId,
    sha256: file.sha256,
    size: file.data.length,
    file_sig: fileSig,
  });
  return total;
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
  const { join, resolve } = await import("node:path");
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

/**
 * Keeps a received file (already checked) under a safe base name and returns where it is: a
 * path for the terminal client ({@linkcode saveUnique}), a `blob:` URL in the browser.
 */
export type SaveFile = (name: string, data: Uint8Array) => Promise<string>;

/** A FILE_START manifest, as the receiver needs it. */
export interface FileManifest {
  file_id: string;
  name: string;
  size: number;
  /** Hex SHA-256 of the file; absent in Group 17's manifests (then nothing can be checked). */
  sha256?: string;
  mode: "dm" | "public";
  /** {@linkcode FILE_AES_ENC} for AES-GCM chunks; absent for the spec's RSA-OAEP chunks. */
  enc?: string;
  /** With `enc`: the per-file key, RSA-OAEP wrapped for this user. */
  key?: string;
  /** The FILE_START's `group_id`: the file was sent to the members of that group. */
  group_id?: string;
}

/** What a FILE_END says about the file (an AES-GCM transfer's FILE_END carries all three). */
export interface FileEndInfo {
  sha256?: string;
  size?: number;
  file_sig?: string;
}

/** The outcome of a finished incoming transfer. */
export type ReceiveResult =
  | { ok: true; sender: string; manifest: FileManifest; path: string; unverified: boolean }
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
  /** The per-file key of an AES-GCM transfer (undefined when it could not be unwrapped). */
  aesKey?: Promise<CryptoKey | undefined>;
}

/** Options for {@linkcode FileReceiver}. */
export interface FileReceiverOptions {
  /** The recipient's private key. */
  privateKey: PrivateKey;
  /** Folder to save into. */
  downloadsDir: string;
  /** Keeps a checked file instead of saving it into `downloadsDir` (the browser client). */
  save?: SaveFile;
  /** Milliseconds now (for idle expiry). */
  now: () => number;
  /** Chunks decrypted at once (default: the number of CPUs, at least 2). */
  parallelism?: number;
  /** Progress callback (percent steps of at least 5). */
  onProgress?: (sender: string, manifest: FileManifest, percent: number) => void;
  /** This user's id (the recipient an AES-GCM FILE_END signature names). */
  self?: string;
  /** The sender's key, to check an AES-GCM FILE_END signature (without it they are refused). */
  senderKey?: (sender: string) => Promise<PublicKey>;
}

/**
 * Reassembles incoming files by `(sender, file_id, index)`, in any chunk order, with caps on
 * size, chunk count and concurrent transfers.
 */
export class FileReceiver {
  #options: FileReceiverOptions;
  #active: Map<string, Incoming> = new Map();
  /** Transfers that ended, so frames sent again after a reconnect are not taken twice. */
  #ended: ReplayCache = new ReplayCache(1024);
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

  /**
   * True for a FILE_START of a transfer in progress or already ended: a copy (a sender resends
   * what its server had not confirmed when it reconnects), to ignore.
   */
  isDuplicate(sender: string, fileId: string): boolean {
    const key = `${sender}\n${fileId}`;
    return this.#active.has(key) || this.#ended.has(key);
  }

  /** Handles FILE_START. Returns a reason when the transfer is refused. */
  start(sender: string, manifest: FileManifest): string | undefined {
    this.#expire();
    const key = `${sender}\n${manifest.file_id}`;
    if (this.#active.has(key)) return `duplicate FILE_START for file ${manifest.file_id}`;
    if (manifest.size > MAX_FILE_BYTES) {
      return `it is ${manifest.size} bytes; the limit is ${MAX_FILE_BYTES}`;
    }
    if (manifest.sha256 !== undefined && !/^[0-9a-f]{64}$/i.test(manifest.sha256)) {
      return "its sha256 is not 64 hex digits";
    }
    if (this.#active.size >= MAX_ACTIVE_TRANSFERS) {
      return `${MAX_ACTIVE_TRANSFERS} transfers are already in progress`;
    }
    let aesKey: Promise<CryptoKey | undefined> | undefined;
    if (manifest.enc !== undefined) {
      if (manifest.enc !== FILE_AES_ENC) return `its encryption "${manifest.enc}" is not known`;
      if (manifest.key === undefined) return "its FILE_START carries no key";
      if (this.#options.senderKey === undefined || this.#options.self === undefined) {
        return "this client cannot check AES-GCM files";
      }
      const privateKey = this.#options.privateKey;
      aesKey = unwrapFileKey(privateKey, manifest.key).catch(() => undefined);
    }
    this.#active.set(key, {
      ...(aesKey ? { aesKey } : {}),
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
      if (t.aesKey) {
        const key = await t.aesKey;
        if (!key) {
          t.failed ??= "its key could not be unwrapped with this user's key";
          t.chunks.clear();
          return;
        }
        plain = await aesDecryptChunk(key, index, ciphertext);
      } else {
        plain = await decryptBlock(this.#options.privateKey, ciphertext);
      }
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

  /**
   * Handles FILE_END: checks and saves. Returns undefined for an unknown transfer. An AES-GCM
   * transfer is saved only when `info` holds the file's size and SHA-256 signed by the sender,
   * and they match what arrived.
   */
  async end(
    sender: string,
    fileId: string,
    info: FileEndInfo = {},
  ): Promise<ReceiveResult | undefined> {
    const key = `${sender}\n${fileId}`;
    const t = this.#active.get(key);
    if (!t) return undefined;
    this.#active.delete(key);
    this.#ended.isReplay(key);
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
    // Without a sha256 in the manifest (Group 17) the size is all that can be checked.
    const expected = t.manifest.sha256;
    const actual = await sha256Hex(data);
    if (expected !== undefined && actual !== expected.toLowerCase()) {
      return fail("sha256 mismatch");
    }
    if (t.aesKey) {
      const refused = await this.#checkSignedEnd(sender, fileId, info, data.length, actual);
      if (refused) return fail(refused);
    }
    try {
      const name = sanitizeFileName(t.manifest.name);
      const save = this.#options.save;
      const path = save
        ? await save(name, data)
        : await saveUnique(this.#options.downloadsDir, name, data);
      return { ok: true, sender, manifest: t.manifest, path, unverified: expected === undefined };
    } catch (e) {
      return fail(`cannot save it: ${(e as Error).message}`);
    }
  }

  /** Checks an AES-GCM FILE_END: signed by the sender, same size and SHA-256 as received. */
  async #checkSignedEnd(
    sender: string,
    fileId: string,
    info: FileEndInfo,
    size: number,
    sha256: string,
  ): Promise<string | undefined> {
    const { file_sig: sig, sha256: claimed } = info;
    if (sig === undefined || claimed === undefined || info.size === undefined) {
      return "its FILE_END carries no signed size and sha256";
    }
    if (info.size !== size) return `size mismatch: got ${size} bytes, FILE_END says ${info.size}`;
    if (claimed.toLowerCase() !== sha256) return "sha256 mismatch with FILE_END";
    let key: PublicKey;
    try {
      key = await this.#options.senderKey!(sender);
    } catch (e) {
      return `the sender's key is not known (${errorMessage(e)})`;
    }
    let raw: Uint8Array;
    try {
      raw = decodeBase64Url(sig);
    } catch {
      return "its FILE_END signature is not base64url";
    }
    const preimage = fileEndPreimage({
      file_id: fileId,
      sha256,
      size,
      from: sender,
      to: this.#options.self!,
    });
    if (!(await rsa().verify(key, preimage, raw))) {
      return "the sender's signature over the file does not verify";
    }
    return undefined;
  }

  #expire(): void {
    const cutoff = this.#options.now() - TRANSFER_IDLE_MS;
    for (const [key, t] of this.#active) if (t.touched < cutoff) this.#active.delete(key);
  }
}

/** Options for {@linkcode FileTransfers}. */
export interface FileTransfersOptions {
  /** The user. */
  identity: Identity;
  /** Where frames go. */
  connection: Connection;
  /** Finds recipients and names senders. */
  presence: Presence;
  /** Recipient keys. */
  keys: UserKeys;
  /** ACK QUEUED for offline recipients. */
  queued: QueuedAcks;
  /** Receives `file`, `file_progress`, `sent`, `queued`, info and warning events. */
  onEvent: EventSink;
  /** Folder for received files. */
  downloadsDir: string;
  /** Keeps received files instead of saving them into `downloadsDir` (the browser client). */
  saveFile?: SaveFile;
  /** Time source (idle expiry of incoming transfers). */
  clock: Clock;
  /** content_sig variant for chunk signatures (default `auto`: chosen per server). */
  sigVariant?: SigVariantChoice;
  /** Debug logger. */
  log?: Logger;
  /**
   * Reports a received file that came with a `group_id` (groups.ts names the group); without
   * it such a file is reported like any other.
   */
  groupFiles?: GroupFileReports;
}

/** Where {@linkcode FileTransfers} hands the outcome of a file sent in a group. */
export interface GroupFileReports {
  /** Emits `event` labelled with the group `groupId` names, once the sender is checked. */
  reportFile(groupId: string, event: FileEvent): void;
}

/** Options for {@linkcode FileTransfers.sendCopy}. */
export interface SendCopyOptions {
  /** The recipient's key. */
  key: PublicKey;
  /** FILE_START `mode`: `"dm"` (also for a group), or `"public"`. */
  mode: "dm" | "public";
  /** Puts `group_id` in every FILE_START, FILE_CHUNK and FILE_END: a file sent in a group. */
  groupId?: string;
  /** Aborts between chunks (so does the session closing). */
  signal?: AbortSignal;
  /** Called with the bytes of this copy sent so far after each chunk. */
  onProgress?: (sentBytes: number) => void;
}

/** What {@linkcode FileTransfers.sendCopy} sent. */
export interface SentCopy {
  /** FILE_CHUNK frames. */
  parts: number;
  /** True when some frames wait in the client until it is connected again. */
  pending: boolean;
}

/**
 * `/file` and incoming FILE_START / FILE_CHUNK / FILE_END for one session.
 *
 * @example
 * ```ts ignore
 * const files = new FileTransfers({ identity, connection, presence, keys, queued, onEvent,
 *   downloadsDir: "downloads", clock: systemClock });
 * await files.send("bob", "report.pdf");
 * ```
 */
export class FileTransfers {
  #o: FileTransfersOptions;
  #log: Logger;
  #receiver: FileReceiver;

  /** Creates the feature. */
  constructor(options: FileTransfersOptions) {
    this.#o = options;
    this.#log = options.log ?? silentLogger;
    this.#receiver = new FileReceiver({
      privateKey: options.identity.keys.privateKey,
      downloadsDir: options.downloadsDir,
      ...(options.saveFile ? { save: options.saveFile } : {}),
      now: () => options.clock.now(),
      self: options.identity.userId,
      senderKey: (sender) => options.keys.keyFor(sender),
      onProgress: (sender, manifest, percent) =>
        options.onEvent({
          event: "file_progress",
          direction: "receive",
          name: manifest.name,
          peer: sender,
          percent,
        }),
    });
  }

  /**
   * `/file`: sends a file to a user, or to every other online user when `target` is `public`.
   * Aborts between chunks when `signal` aborts or the session closes.
   */
  async send(target: string, path: string, signal?: AbortSignal): Promise<void> {
    this.#o.connection.requireOpen();
    await this.sendData(target, await readFileForCommand(path), signal);
  }

  /**
   * Like {@linkcode send} for a file already in memory (the browser client's picked file);
   * refuses one over {@linkcode MAX_FILE_BYTES}.
   */
  async sendData(target: string, file: OutgoingFile, signal?: AbortSignal): Promise<void> {
    const { connection, presence, keys, queued } = this.#o;
    const emit = this.#o.onEvent;
    connection.requireOpen();
    if (file.data.length > MAX_FILE_BYTES) {
      throw new CommandError(
        `File "${file.name}" is ${mib(file.data.length)}; the limit is ${mib(MAX_FILE_BYTES)}`,
      );
    }
    const isPublic = target === "public" || target === "*";
    const recipients = isPublic ? presence.others() : [await presence.findUser(target)];
    if (recipients.length === 0) {
      emit({ event: "info", text: "No one else is online; the file was not sent" });
      return;
    }
    const total = Math.max(1, file.data.length * recipients.length);
    const progress = sendProgress(emit, file, {
      peer: isPublic ? "public" : recipients[0]!,
      recipients: recipients.length,
    });
    let chunks = 0;
    let sent = 0;
    let pending = false;
    const watch = isPublic ? undefined : queued.watch(recipients[0]!);
    try {
      for (const [i, to] of recipients.entries()) {
        let key: PublicKey;
        try {
          key = await keys.keyFor(to);
        } catch (e) {
          if (!isPublic) throw e;
          emit({ event: "warn", text: `File not sent to ${presence.who(to)}: ${errorMessage(e)}` });
          continue;
        }
        const copy = await this.sendCopy(to, file, {
          key,
          mode: isPublic ? "public" : "dm",
          ...(signal ? { signal } : {}),
          onProgress: (bytes) => progress(i * file.data.length + bytes),
        });
        chunks = copy.parts;
        if (copy.pending) pending = true;
        sent++;
      }
      if (sent === 0) throw new CommandError("The file reached nobody");
      // Report it sent once the server has taken every chunk (and said so by answering); one
      // line either way: sent, or not confirmed (the server may still be passing it on).
      const confirmed = await connection.barrier();
      progress(total);
      const to = isPublic ? "public" : recipients[0]!;
      emit({
        event: "sent",
        kind: "file",
        to,
        to_name: isPublic ? "public" : presence.nameOf(to),
        recipients: sent,
        parts: chunks,
        name: file.name,
        size: file.data.length,
        ...(pending ? { pending: true } : {}),
        ts: Date.now(),
        ...(confirmed ? {} : { unconfirmed: true }),
      });
      if (watch && watch.acks > 0) {
        emit({ event: "queued", kind: "file", to, to_name: presence.nameOf(to), name: file.name });
      }
    } finally {
      queued.unwatch(watch);
    }
  }

  /**
   * Sends one recipient's copy of a file: FILE_START, FILE_CHUNKs, FILE_END. AES-GCM chunks,
   * paced by the server's answers, for a client that announced {@linkcode FILE_AES_CAP}; the
   * spec's RSA-OAEP chunks with `sender_pub`, `total` and a `content_sig` otherwise. With
   * `groupId` every frame carries `group_id` (servers deliver those only between members).
   * `/file <user>`, `/file public` and `/file <group>` (groups.ts) all send through here.
   */
  async sendCopy(to: string, file: OutgoingFile, options: SendCopyOptions): Promise<SentCopy> {
    const { connection, presence } = this.#o;
    const me = this.#o.identity;
    const abort = options.signal
      ? AbortSignal.any([options.signal, connection.signal])
      : connection.signal;
    const group = options.groupId === undefined ? {} : { group_id: options.groupId };
    // AES-GCM chunks for a client that said it takes them; the spec's chunks otherwise.
    const aes = presence.hasCap(to, FILE_AES_CAP);
    let pending = false;
    const parts = await sendFileFrames({
      file,
      key: options.key,
      mode: options.mode,
      signal: abort,
      senderPub: connection.ownKeyText,
      ...(aes
        ? {
          aes: { from: me.userId, to, privateKey: me.keys.privateKey },
          confirm: () => connection.barrier(),
        }
        : {}),
      send: async (type, payload) => {
        const ts = connection.nextTs();
        const body: JsonObject = { ...payload, ...group };
        if (type === "FILE_CHUNK" && !aes) {
          // A content signature per chunk, over ciphertext, from, to, ts, file_id, index and
          // total (Group 17's client checks it; others ignore it).
          body.content_sig = await signContent(me.keys.privateKey, {
            ciphertext: String(payload.ciphertext),
            from: me.userId,
            to,
            ts,
            extra: [String(payload.file_id), Number(payload.index), Number(payload.total)],
          }, connection.contentSigVariant(this.#o.sigVariant ?? "auto"));
        }
        const how = await connection.sendEnvelope(
          { type, from: me.userId, to, ts, payload: body },
          { signal: abort },
        );
        if (how === "queued") pending = true;
      },
      ...(options.onProgress ? { onProgress: options.onProgress } : {}),
    });
    return { parts, pending };
  }

  /** FILE_START: starts reassembling, or reports why the file is refused. */
  onStart(env: Envelope, manifest: FileManifest): void {
    const sender = senderOf(env);
    if (this.#receiver.isDuplicate(sender, manifest.file_id)) {
      return this.#log.debug(`copy of FILE_START for ${manifest.file_id} ignored`);
    }
    // The group it was sent in comes from FILE_START; chunks and FILE_END cannot change it.
    const groupId = fileGroupId(env.payload);
    const refused = this.#receiver.start(
      sender,
      groupId === undefined ? manifest : { ...manifest, group_id: groupId },
    );
    if (refused) {
      this.#emitFile(sender, manifest, { reason: refused }, groupId);
    } else {
      this.#log.debug(`receiving ${manifest.name} (${manifest.size} bytes) from ${sender}`);
    }
  }

  /** FILE_CHUNK: one encrypted piece. */
  async onChunk(
    env: Envelope,
    p: { file_id: string; index: number; ciphertext: string },
  ): Promise<void> {
    if (!(await this.#receiver.chunk(senderOf(env), p.file_id, p.index, p.ciphertext))) {
      this.#log.debug(`FILE_CHUNK for unknown file ${p.file_id} ignored`);
    }
  }

  /** FILE_END: checks the file and saves it (or says why not). */
  async onEnd(env: Envelope, fileId: string, info: FileEndInfo = {}): Promise<void> {
    const result = await this.#receiver.end(senderOf(env), fileId, info);
    if (!result) return this.#log.debug(`FILE_END for unknown file ${fileId}`);
    this.#log.debug(`FILE_END ${fileId}: ${result.ok ? "ok" : result.reason}`);
    this.#emitFile(
      result.sender,
      result.manifest,
      result.ok
        ? { path: result.path, ...(result.unverified ? { unverified: true } : {}) }
        : { reason: result.reason },
      result.manifest.group_id,
    );
  }

  /** Warns about every incoming file that is not complete (when the session ends). */
  warnIncomplete(): void {
    for (const { sender, manifest } of this.#receiver.active()) {
      this.#o.onEvent({
        event: "warn",
        text: `Incoming file "${manifest.name}" from ${
          this.#o.presence.who(sender)
        } was not complete; discarded`,
      });
    }
  }

  /** Reports a received file; one sent in a group goes to groups.ts to be named. */
  #emitFile(
    from: string,
    manifest: FileManifest,
    outcome: { path: string; unverified?: boolean } | { reason: string },
    groupId: string | undefined,
  ): void {
    const event: FileEvent = {
      event: "file",
      from,
      from_name: this.#o.presence.nameOf(from),
      name: manifest.name,
      size: manifest.size,
      mode: manifest.mode,
      ok: "path" in outcome,
      ...outcome,
    };
    const groups = this.#o.groupFiles;
    if (groupId !== undefined && groups) return groups.reportFile(groupId, event);
    this.#o.onEvent(event);
  }
}

/** The `group_id` of a file frame sent in a group (not the public channel's), if it has one. */
function fileGroupId(payload: JsonObject): string | undefined {
  const id = payload["group_id"];
  return typeof id === "string" && id.length > 0 && id !== "public" ? id : undefined;
}
