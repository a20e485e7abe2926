/**
 * Splitting text and files into RSA-OAEP blocks (at most 446 bytes of plaintext each), on UTF-8
 * character boundaries so every block decrypts to valid text on its own.
 *
 * @module
 */

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

/** Encrypts one OAEP block of bytes and returns base64url ciphertext. */
export async function encryptBlock(key: PublicKey, plaintext: Uint8Array): Promise<string> {
  return encodeBase64Url(await rsa().encrypt(key, plaintext));
}

/** Decrypts one base64url ciphertext block. */
export async function decryptBlock(key: PrivateKey, ciphertext: string): Promise<Uint8Array> {
  return await rsa().decrypt(key, decodeBase64Url(ciphertext));
}

/** Encrypts a text that fits one block. */
export function encryptText(key: PublicKey, text: string): Promise<string> {
  return encryptBlock(key, enc.encode(text));
}

/** Decrypts a block to text (fatal on invalid UTF-8). */
export async function decryptText(key: PrivateKey, ciphertext: string): Promise<string> {
  return new TextDecoder("utf-8", { fatal: true }).decode(await decryptBlock(key, ciphertext));
}

/** Lowercase hex SHA-256 of bytes. */
export async function sha256Hex(data: Uint8Array): Promise<string> {
  const digest = new Uint8Array(await crypto.subtle.digest("SHA-256", new Uint8Array(data)));
  return Array.from(digest, (b) => b.toString(16).padStart(2, "0")).join("");
}
