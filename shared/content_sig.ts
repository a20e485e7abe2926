/**
 * End-to-end content signatures (`content_sig`). The spec leaves the byte layout open, so
 * peers differ (reference §6.2): socp signs variant A by default and verifies A, B, C and D.
 *
 * @module
 */

import { decodeBase64Url, encodeBase64Url } from "./base64url.ts";
import { canonicalJson } from "./canonical_json.ts";
import { type PrivateKey, type PublicKey, rsa } from "./rsa.ts";

/** The byte layouts socp can sign, and verifies. */
export const CONTENT_SIG_VARIANTS = ["A", "B", "C", "D"] as const;
/** One of {@linkcode CONTENT_SIG_VARIANTS}. */
export type ContentSigVariant = typeof CONTENT_SIG_VARIANTS[number];

/** The fields a content signature covers; `to` is absent for public-channel content. */
export interface ContentFields {
  /** base64url ciphertext as sent. */
  ciphertext: string;
  /** Original sender user id. */
  from: string;
  /** Recipient user id (DMs only). */
  to?: string;
  /** Original ts of the user frame. */
  ts: number;
  /**
   * Fields signed after `ts`, in order: Group 17's file chunks add `file_id`, `index` and
   * `total` (reference §6.2).
   */
  extra?: readonly (string | number)[];
}

const enc = new TextEncoder();

function concat(...parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
}

function tsText(ts: number): string {
  return Number.isInteger(ts) ? ts.toFixed(0) : String(ts);
}

/**
 * The bytes that variant `v` signs.
 *
 * @example
 * ```ts
 * import { contentPreimage } from "./content_sig.ts";
 * const bytes = await contentPreimage("A", { ciphertext: "QQ", from: "a", to: "b", ts: 1 });
 * console.assert(new TextDecoder().decode(bytes) === "QQab1");
 * ```
 */
export async function contentPreimage(
  v: ContentSigVariant,
  f: ContentFields,
): Promise<Uint8Array> {
  const to = f.to ?? "";
  const ts = tsText(f.ts);
  const extra = (f.extra ?? []).map((x) => (typeof x === "number" ? tsText(x) : x));
  const tail = extra.join("");
  switch (v) {
    case "A":
      return enc.encode(f.ciphertext + f.from + to + ts + tail);
    case "B":
      return concat(decodeBase64Url(f.ciphertext), enc.encode(f.from + to + ts + tail));
    case "C": {
      const data = concat(decodeBase64Url(f.ciphertext), enc.encode(f.from + to + ts + tail));
      return new Uint8Array(await crypto.subtle.digest("SHA-256", new Uint8Array(data)));
    }
    case "D":
      return enc.encode(
        [f.ciphertext, f.from, ...(f.to === undefined ? [] : [f.to]), ts, ...extra].join("|"),
      );
  }
}

/** Signs content with the given variant (default A) and returns base64url. */
export async function signContent(
  key: PrivateKey,
  fields: ContentFields,
  variant: ContentSigVariant = "A",
): Promise<string> {
  return encodeBase64Url(await rsa().sign(key, await contentPreimage(variant, fields)));
}

/**
 * Verifies a content signature, trying each candidate ts and variants A–D. Returns the variant
 * that verified, or `undefined`.
 */
export async function verifyContent(
  key: PublicKey,
  sig: string,
  fields: Omit<ContentFields, "ts">,
  candidateTs: readonly number[],
): Promise<ContentSigVariant | undefined> {
  let raw: Uint8Array;
  try {
    raw = decodeBase64Url(sig);
  } catch {
    return undefined;
  }
  const tried = new Set<number>();
  for (const ts of candidateTs) {
    if (tried.has(ts)) continue;
    tried.add(ts);
    for (const v of CONTENT_SIG_VARIANTS) {
      let data: Uint8Array;
      try {
        data = await contentPreimage(v, { ...fields, ts });
      } catch {
        continue;
      }
      if (await rsa().verify(key, data, raw)) return v;
    }
  }
  return undefined;
}

/** Key-share preimage: canonical(shares) followed by creator_pub, hashed with SHA-256. */
export async function keySharePreimage(shares: unknown, creatorPub: string): Promise<Uint8Array> {
  const data = enc.encode(canonicalJson(shares) + creatorPub);
  return new Uint8Array(await crypto.subtle.digest("SHA-256", data));
}
