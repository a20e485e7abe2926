/**
 * Transport signatures (`sig`): RSASSA-PSS-SHA256 over canonical(payload).
 *
 * @module
 */

import { decodeBase64Url, encodeBase64Url } from "./base64url.ts";
import { canonicalBytes, canonicalJson } from "./canonical_json.ts";
import type { Envelope, JsonObject } from "./envelope.ts";
import { type PrivateKey, type PublicKey, rsa } from "./rsa.ts";

/**
 * Signs `payload` and returns the base64url signature (salt 478).
 *
 * @example
 * ```ts
 * import { signPayload } from "./transport_sig.ts";
 * console.assert(typeof signPayload === "function");
 * ```
 */
export async function signPayload(key: PrivateKey, payload: JsonObject): Promise<string> {
  return encodeBase64Url(await rsa().sign(key, canonicalBytes(payload)));
}

/**
 * Signs the canonical JSON of a statement (an account record, a block list) with a user's key;
 * returns base64url. Unlike a transport signature it is kept with the data it vouches for.
 */
export async function signStatement(key: PrivateKey, statement: JsonObject): Promise<string> {
  return encodeBase64Url(await rsa().sign(key, canonicalBytes(statement)));
}

/** True when `sig` (base64url) is `key`'s signature over the canonical JSON of `statement`. */
export async function verifyStatement(
  key: PublicKey,
  statement: JsonObject,
  sig: string,
): Promise<boolean> {
  let bytes: Uint8Array;
  try {
    bytes = decodeBase64Url(sig);
  } catch {
    return false;
  }
  return await rsa().verify(key, canonicalBytes(statement), bytes);
}

/** Builds a signed envelope: `sig` covers canonical(payload). */
export async function signedEnvelope(
  key: PrivateKey,
  fields: Omit<Envelope, "sig">,
): Promise<Envelope> {
  return { ...fields, sig: await signPayload(key, fields.payload) };
}

/** The byte strings a peer may have signed for this payload, most common first. */
export function transportPreimages(payload: JsonObject): Uint8Array[] {
  const ascii = canonicalJson(payload);
  const out = [new TextEncoder().encode(ascii)];
  const raw = canonicalJson(payload, { ascii: false });
  if (raw !== ascii) out.push(new TextEncoder().encode(raw));
  return out;
}

/**
 * True when `env.sig` verifies over canonical(payload) with `key` (escaped or raw UTF-8
 * canonical form; salt 478 or 32). An absent signature is false.
 */
export async function verifyEnvelope(key: PublicKey, env: Envelope): Promise<boolean> {
  if (!env.sig) return false;
  let sig: Uint8Array;
  try {
    sig = decodeBase64Url(env.sig);
  } catch {
    return false;
  }
  for (const data of transportPreimages(env.payload)) {
    if (await rsa().verify(key, data, sig)) return true;
  }
  return false;
}
