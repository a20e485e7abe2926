/**
 * Splitting text and files into RSA-OAEP blocks (at most 446 bytes of plaintext each), on UTF-8
 * character boundaries so every block decrypts to valid text on its own.
 *
 * @module
 */

import { sha256 } from "@noble/hashes/sha2.js";
import { decodeBase64Url, encodeBase64Url } from "./base64url.ts";
import { OAEP_MAX_PLAINTEXT, type PrivateKey, type PublicKey, rsa } from "./rsa.ts";

const enc = new TextEncoder();

/**
 * Splits text into pieces whose UTF-8 encoding fits one OAEP block, never cutting a character.
 *
 * @example
 * ```ts
 * import { splitForOaep } from "./text_crypto.ts";
 * console.assert(splitForOaep("a".repeat(900)).length === 3);
 * ```
 */
export function splitForOaep(text: string, limit: number = OAEP_MAX_PLAINTEXT): string[] {
  const pieces: string[] = [];
  let current = "";
  let size = 0;
  for (const ch of text) {
    const n = enc.encode(ch).length;
    if (size + n > limit && current.length > 0) {
      pieces.push(current);
      current = "";
      size = 0;
    }
    current += ch;
    size += n;
  }
  if (current.length > 0 || pieces.length === 0) pieces.push(current);
  return pieces;
}

/** Encrypts one OAEP block of bytes (optionally under an OAEP label); returns base64url. */
export async function encryptBlock(
  key: PublicKey,
  plaintext: Uint8Array,
  label?: Uint8Array,
): Promise<string> {
  return encodeBase64Url(await rsa().encrypt(key, plaintext, label));
}

/** Decrypts one base64url ciphertext block (optionally under an OAEP label). */
export async function decryptBlock(
  key: PrivateKey,
  ciphertext: string,
  label?: Uint8Array,
): Promise<Uint8Array> {
  return await rsa().decrypt(key, decodeBase64Url(ciphertext), label);
}

/** Encrypts a text that fits one block. */
export function encryptText(key: PublicKey, text: string, label?: Uint8Array): Promise<string> {
  return encryptBlock(key, enc.encode(text), label);
}

/** Decrypts a block to text (fatal on invalid UTF-8). */
export async function decryptText(
  key: PrivateKey,
  ciphertext: string,
  label?: Uint8Array,
): Promise<string> {
  return new TextDecoder("utf-8", { fatal: true }).decode(
    await decryptBlock(key, ciphertext, label),
  );
}

/**
 * The OAEP label of Group 17's public-channel key shares, and the fallback label of its public
 * messages: `public-v{version}` (reference Appendix E.1).
 *
 * @example
 * ```ts
 * import { publicVersionLabel } from "./text_crypto.ts";
 * console.assert(new TextDecoder().decode(publicVersionLabel(3)) === "public-v3");
 * ```
 */
export function publicVersionLabel(version: number): Uint8Array {
  return enc.encode(`public-v${version}`);
}

/**
 * Every OAEP label a Group 17 public message of `version` may carry, most likely first: labels
 * derived from the group key, `SHA256("public|" + version + "|" + groupkey)` (as raw digest or
 * hex, over the raw key or its base64url text), then `public-v{version}`.
 */
export async function publicMessageLabels(
  version: number,
  groupKey?: Uint8Array,
): Promise<Uint8Array[]> {
  const out: Uint8Array[] = [];
  if (groupKey !== undefined) {
    const prefix = enc.encode(`public|${version}|`);
    for (const keyPart of [groupKey, enc.encode(encodeBase64Url(groupKey))]) {
      const data = new Uint8Array(prefix.length + keyPart.length);
      data.set(prefix);
      data.set(keyPart, prefix.length);
      const digest = new Uint8Array(await crypto.subtle.digest("SHA-256", data));
      out.push(digest, enc.encode(toHex(digest)));
    }
  }
  out.push(publicVersionLabel(version));
  return out;
}

function toHex(bytes: Uint8Array): string {
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

/** Lowercase hex SHA-256 of bytes. */
export async function sha256Hex(data: Uint8Array): Promise<string> {
  return toHex(new Uint8Array(await crypto.subtle.digest("SHA-256", new Uint8Array(data))));
}

/**
 * Lowercase hex SHA-256 of a few KB, computed at once on the calling thread. For the short
 * inputs of a server's per-frame bookkeeping (replay keys) this is far cheaper than
 * {@linkcode sha256Hex}, whose WebCrypto call is handed to another thread and back; for files
 * use that one.
 *
 * @example
 * ```ts
 * import { sha256HexSync } from "./text_crypto.ts";
 * console.assert(sha256HexSync(new Uint8Array()).startsWith("e3b0c442"));
 * ```
 */
export function sha256HexSync(data: Uint8Array): string {
  return toHex(sha256(data));
}
