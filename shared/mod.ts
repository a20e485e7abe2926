/**
 * The SOCP v1.3 protocol layer shared by socp's server and client: envelope types, canonical
 * JSON, base64url, key encodings, signatures and encryption, plus the wording helpers both
 * commands use (counted nouns, command-line mistakes). Nothing here touches the network or the
 * file system.
 *
 * @example
 * ```ts
 * import { canonicalJson, encodeBase64Url } from "./mod.ts";
 * console.assert(canonicalJson({ b: 2, a: 1 }) === '{"a":1,"b":2}');
 * console.assert(encodeBase64Url(new Uint8Array([1])) === "AQ");
 * ```
 *
 * @module
 */

export * from "./base64url.ts";
export * from "./canonical_json.ts";
export * from "./content_sig.ts";
export * from "./envelope.ts";
export * from "./errors.ts";
export * from "./frames.ts";
export * from "./keys.ts";
export * from "./rsa.ts";
export * from "./text_crypto.ts";
export * from "./transport_sig.ts";
export * from "./transport.ts";
export * from "./account_crypto.ts";
export * from "./account_record.ts";
export * from "./block_list.ts";
export * from "./args_error.ts";
export * from "./plural.ts";
