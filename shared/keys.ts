/**
 * Public and private key encodings. socp emits base64url (no padding) of DER
 * SubjectPublicKeyInfo and accepts every form seen in the wild: DER SPKI, PKCS#1 DER, PEM text,
 * base64url of PEM text, padded or unpadded base64 or base64url.
 *
 * @module
 */

import { decodeBase64Url, encodeBase64Url } from "./base64url.ts";
import { KeyError } from "./errors.ts";
import { type PrivateKey, type PublicKey, rsa } from "./rsa.ts";

const RSA_ALGORITHM_ID = new Uint8Array([
  0x30,
  0x0d,
  0x06,
  0x09,
  0x2a,
  0x86,
  0x48,
  0x86,
  0xf7,
  0x0d,
  0x01,
  0x01,
  0x01,
  0x05,
  0x00,
]);

function derLength(length: number): number[] {
  if (length < 0x80) return [length];
  const out: number[] = [];
  for (let n = length; n > 0; n >>= 8) out.unshift(n & 0xff);
  return [0x80 | out.length, ...out];
}

function derHeaderSize(der: Uint8Array): number {
  const first = der[1] ?? 0;
  return first < 0x80 ? 2 : 2 + (first & 0x7f);
}

/** Wraps a PKCS#1 RSAPublicKey DER in a SubjectPublicKeyInfo. */
export function pkcs1ToSpki(pkcs1: Uint8Array): Uint8Array {
  const bitString = [0x03, ...derLength(pkcs1.length + 1), 0x00];
  const bodyLength = RSA_ALGORITHM_ID.length + bitString.length + pkcs1.length;
  const out = new Uint8Array([0x30, ...derLength(bodyLength), ...RSA_ALGORITHM_ID, ...bitString]);
  const result = new Uint8Array(out.length + pkcs1.length);
  result.set(out);
  result.set(pkcs1, out.length);
  return result;
}

function pemBody(pem: string): { label: string; der: Uint8Array } {
  const match = /-----BEGIN ([A-Z0-9 ]+)-----([\s\S]*?)-----END \1-----/.exec(pem);
  if (!match) throw new KeyError("PEM text has no matching BEGIN/END lines");
  return { label: match[1]!, der: decodeBase64Url(match[2]!.replace(/\s+/g, "")) };
}

function normaliseDer(der: Uint8Array): Uint8Array {
  if (der[0] !== 0x30 || der.length < 16) throw new KeyError("Key is not DER");
  const inner = der[derHeaderSize(der)];
  if (inner === 0x30) return der; // SubjectPublicKeyInfo
  if (inner === 0x02) return pkcs1ToSpki(der); // PKCS#1 RSAPublicKey
  throw new KeyError("DER key is neither SubjectPublicKeyInfo nor PKCS#1");
}

/**
 * Turns any accepted textual public-key form into DER SubjectPublicKeyInfo bytes.
 * Throws `KeyError` when the text is none of them. Does not check strength.
 *
 * @example
 * ```ts
 * import { decodePublicKeyText } from "./keys.ts";
 * try { decodePublicKeyText("not a key"); } catch (e) { console.assert((e as Error).name === "KeyError"); }
 * ```
 */
export function decodePublicKeyText(text: string): Uint8Array {
  const trimmed = text.trim();
  if (trimmed.length === 0) throw new KeyError("Public key is empty");
  try {
    if (trimmed.startsWith("-----BEGIN")) {
      const { label, der } = pemBody(trimmed);
      return label === "RSA PUBLIC KEY" ? pkcs1ToSpki(der) : normaliseDer(der);
    }
    const raw = decodeBase64Url(trimmed);
    const asText = new TextDecoder().decode(raw.subarray(0, 11));
    if (asText === "-----BEGIN ") return decodePublicKeyText(new TextDecoder().decode(raw));
    return normaliseDer(raw);
  } catch (cause) {
    if (cause instanceof KeyError) throw cause;
    throw new KeyError("Public key text is not base64url, base64 or PEM", { cause });
  }
}

const cache = new Map<string, Promise<PublicKey>>();
const CACHE_LIMIT = 4096;

/**
 * Imports a public key given in any accepted text form, checking RSA-4096 and e = 65537.
 * Results are cached by text, so hot paths can call it per frame.
 *
 * @example
 * ```ts
 * import { importPublicKeyText } from "./keys.ts";
 * await importPublicKeyText("AAAA").catch((e) => console.assert(e.name === "KeyError"));
 * ```
 */
export function importPublicKeyText(text: string): Promise<PublicKey> {
  const hit = cache.get(text);
  if (hit) return hit;
  const pending = (async () => await rsa().importPublic(decodePublicKeyText(text)))();
  pending.catch(() => cache.delete(text));
  if (cache.size >= CACHE_LIMIT) {
    const oldest = cache.keys().next().value;
    if (oldest !== undefined) cache.delete(oldest);
  }
  cache.set(text, pending);
  return pending;
}

/**
 * socp's wire form of a public key: base64url (no padding) of DER SPKI.
 *
 * @example
 * ```ts
 * import { encodePublicKey } from "./keys.ts";
 * console.assert(encodePublicKey({ spki: new Uint8Array([48]) }) === "MA");
 * ```
 */
export function encodePublicKey(key: PublicKey): string {
  return encodeBase64Url(key.spki);
}

/** True when two public-key texts (in any accepted form) denote the same key. */
export function samePublicKey(a: string, b: string): boolean {
  if (a === b) return true;
  try {
    return encodeBase64Url(decodePublicKeyText(a)) === encodeBase64Url(decodePublicKeyText(b));
  } catch {
    return false;
  }
}

function toPem(label: string, der: Uint8Array): string {
  const b64 = encodeBase64Url(der).replaceAll("-", "+").replaceAll("_", "/");
  const padded = b64 + "=".repeat((4 - (b64.length % 4)) % 4);
  const lines = padded.match(/.{1,64}/g) ?? [];
  return `-----BEGIN ${label}-----\n${lines.join("\n")}\n-----END ${label}-----\n`;
}

/** PEM text ("PUBLIC KEY") of a public key. */
export function publicKeyToPem(key: PublicKey): string {
  return toPem("PUBLIC KEY", key.spki);
}

/** PEM text ("PRIVATE KEY", PKCS#8) of a private key. */
export function privateKeyToPem(key: PrivateKey): string {
  return toPem("PRIVATE KEY", key.pkcs8);
}

/** Imports a PKCS#8 private key from PEM text or base64url DER. */
export function importPrivateKeyText(text: string): Promise<PrivateKey> {
  const trimmed = text.trim();
  let der: Uint8Array;
  try {
    der = trimmed.startsWith("-----BEGIN") ? pemBody(trimmed).der : decodeBase64Url(trimmed);
  } catch (cause) {
    return Promise.reject(new KeyError("Private key text is not PEM or base64url", { cause }));
  }
  return rsa().importPrivate(der);
}

/**
 * A short, human-comparable fingerprint: the first 16 hex digits of SHA-256 over DER SPKI,
 * grouped in fours.
 */
export async function fingerprint(key: PublicKey): Promise<string> {
  const digest = new Uint8Array(await crypto.subtle.digest("SHA-256", new Uint8Array(key.spki)));
  const hex = Array.from(digest.subarray(0, 8), (b) => b.toString(16).padStart(2, "0")).join("");
  return hex.match(/.{4}/g)!.join(":");
}

/**
 * How a peer writes public keys on the wire: `der` = base64url of DER SPKI (socp and most
 * peers), `pem` = base64url of the PEM text (Group 56 and Group 40, which load every key as PEM).
 */
export type KeyEncoding = "der" | "pem";

/**
 * The encoding a key text is in, as far as it matters for answering in kind: `pem` for
 * base64url (or base64) of PEM text and for raw PEM, `der` for everything else.
 *
 * @example
 * ```ts
 * import { keyEncodingOf } from "./keys.ts";
 * console.assert(keyEncodingOf("LS0tLS1CRUdJTiBQVUJMSUMgS0VZLS0tLS0K") === "pem");
 * console.assert(keyEncodingOf("MIICIjANBgkqhkiG9w0BAQEFAAOCAg8AMIICCgKCAgEA") === "der");
 * ```
 */
export function keyEncodingOf(text: string): KeyEncoding {
  const t = text.trim();
  return t.startsWith("LS0tLS1") || t.startsWith("-----BEGIN") ? "pem" : "der";
}

/**
 * A public key text (any accepted form) written in `encoding`: DER SPKI or PEM text, each as
 * unpadded base64url. Returns the text unchanged when it is not a key.
 *
 * @example
 * ```ts
 * import { encodeKeyText, keyEncodingOf } from "./keys.ts";
 * console.assert(encodeKeyText("not a key", "pem") === "not a key");
 * console.assert(keyEncodingOf(encodeKeyText("not a key", "der")) === "der");
 * ```
 */
export function encodeKeyText(text: string, encoding: KeyEncoding): string {
  let der: Uint8Array;
  try {
    der = decodePublicKeyText(text);
  } catch {
    return text;
  }
  if (encoding === "der") return encodeBase64Url(der);
  return encodeBase64Url(new TextEncoder().encode(toPem("PUBLIC KEY", der)));
}

/** Payload fields that hold a public key, at the top level. */
const KEY_FIELDS = ["pubkey", "enc_pubkey", "server_pub", "sender_pub", "creator_pub"] as const;

/**
 * A copy of `payload` with every public key it carries written in `encoding`: the key fields at
 * the top level, `meta.pubkey`, the `pubkey` of `servers[]` / `clients[]` entries, and the same
 * inside a wrapped user envelope (`payload.payload`). `changed` says whether anything changed,
 * i.e. whether a signature over the payload has to be made again.
 *
 * @example
 * ```ts
 * import { rewriteKeyFields } from "./keys.ts";
 * const { changed } = rewriteKeyFields({ user_id: "u", meta: { display_name: "x" } }, "pem");
 * console.assert(changed === false);
 * ```
 */
export function rewriteKeyFields<T extends Record<string, unknown>>(
  payload: T,
  encoding: KeyEncoding,
): { payload: T; changed: boolean } {
  let changed = false;
  const fix = (obj: Record<string, unknown>): Record<string, unknown> => {
    const out: Record<string, unknown> = { ...obj };
    for (const field of KEY_FIELDS) {
      const v = out[field];
      if (typeof v === "string" && v.length > 0) {
        const w = encodeKeyText(v, encoding);
        if (w !== v) {
          out[field] = w;
          changed = true;
        }
      }
    }
    const meta = out["meta"];
    if (isRecord(meta) && typeof meta["pubkey"] === "string" && meta["pubkey"].length > 0) {
      const w = encodeKeyText(meta["pubkey"], encoding);
      if (w !== meta["pubkey"]) {
        out["meta"] = { ...meta, pubkey: w };
        changed = true;
      }
    }
    for (const list of ["servers", "clients"]) {
      const entries = out[list];
      if (Array.isArray(entries)) out[list] = entries.map((e) => (isRecord(e) ? fix(e) : e));
    }
    const inner = out["payload"];
    if (isRecord(inner)) out["payload"] = fix(inner);
    return out;
  };
  const rewritten = fix(payload) as T;
  return { payload: changed ? rewritten : payload, changed };
}

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}
