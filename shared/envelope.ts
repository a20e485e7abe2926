/**
 * The SOCP JSON envelope and its decoding at the boundary: a frame arrives as text, one call
 * returns a typed {@linkcode Envelope} or throws a {@linkcode ProtocolError} carrying the code to
 * send back. Payloads of known types are decoded by {@linkcode decodeFrame} into the
 * {@linkcode Frame} union.
 *
 * @module
 */

import { ProtocolError } from "./errors.ts";

/** A JSON object. */
export type JsonObject = { [key: string]: JsonValue };
/** Any JSON value. */
export type JsonValue = string | number | boolean | null | JsonValue[] | JsonObject;

/** The envelope every SOCP message shares, with an untyped payload. */
export interface Envelope {
  /** Case-sensitive message type. */
  type: string;
  /** Sender: a server or user id. */
  from: string;
  /** Recipient: a server or user id, `"*"`, `"public"`, or `host:port` for HELLO_JOIN. */
  to: string;
  /** Unix time in milliseconds (floats from buggy peers are kept as sent). */
  ts: number;
  /** Type-specific payload. */
  payload: JsonObject;
  /** Transport signature over canonical(payload); absent when unsigned. */
  sig?: string;
}

/** Default largest frame accepted, in bytes (1 MiB). */
export const DEFAULT_MAX_FRAME_BYTES = 1 << 20;

const UUID_ANY = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/** True for any RFC 4122 UUID string (peers sometimes send other versions). */
export function isUuid(value: unknown): boolean {
  return typeof value === "string" && UUID_ANY.test(value);
}

function isObject(value: unknown): value is JsonObject {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

/**
 * Parses one WebSocket text message into an {@linkcode Envelope}. A trailing newline is
 * tolerated; `sig` that is `""` or `null` counts as absent.
 *
 * @example
 * ```ts
 * import { parseEnvelope } from "./envelope.ts";
 * const env = parseEnvelope('{"type":"HEARTBEAT","from":"a","to":"b","ts":1,"payload":{}}\n');
 * console.assert(env.type === "HEARTBEAT" && env.sig === undefined);
 * ```
 */
export function parseEnvelope(
  text: string,
  options: { maxBytes?: number } = {},
): Envelope {
  const max = options.maxBytes ?? DEFAULT_MAX_FRAME_BYTES;
  // UTF-16 length ≤ UTF-8 length ≤ 3 × UTF-16 length: encode only when it could matter.
  const size = text.length > max ? text.length : text.length * 3 > max ? utf8Length(text) : 0;
  if (size > max) {
    throw new ProtocolError("FRAME_TOO_LARGE", `Frame of ${size} bytes exceeds ${max}`);
  }
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (cause) {
    throw new ProtocolError("BAD_FRAME", "Frame is not valid JSON", { cause });
  }
  return toEnvelope(value);
}

/** Number of UTF-8 bytes of a string. */
export function utf8Length(text: string): number {
  let n = 0;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c < 0x80) n += 1;
    else if (c < 0x800) n += 2;
    else if (c >= 0xd800 && c <= 0xdbff && i + 1 < text.length) {
      const d = text.charCodeAt(i + 1);
      if (d >= 0xdc00 && d <= 0xdfff) {
        n += 4;
        i++;
      } else n += 3;
    } else n += 3;
  }
  return n;
}

/** Validates an already-parsed value as an {@linkcode Envelope}. */
export function toEnvelope(value: unknown): Envelope {
  if (!isObject(value)) throw new ProtocolError("BAD_FRAME", "Frame is not a JSON object");
  const { type, from, to, ts, payload, sig } = value;
  if (typeof type !== "string" || type.length === 0 || type.length > 64) {
    throw new ProtocolError("BAD_FRAME", 'Frame has no string "type"');
  }
  if (typeof from !== "string" || from.length > 256) {
    throw new ProtocolError("BAD_FRAME", `${type} has no string "from"`);
  }
  if (typeof to !== "string" || to.length > 256) {
    throw new ProtocolError("BAD_FRAME", `${type} has no string "to"`);
  }
  if (typeof ts !== "number" || !Number.isFinite(ts) || ts < 0) {
    throw new ProtocolError("BAD_FRAME", `${type} has no numeric "ts"`);
  }
  const body = payload === undefined ? {} : payload;
  if (!isObject(body)) throw new ProtocolError("BAD_FRAME", `${type} payload is not an object`);
  if (sig !== undefined && sig !== null && typeof sig !== "string") {
    throw new ProtocolError("BAD_FRAME", `${type} "sig" is not a string`);
  }
  const env: Envelope = { type, from, to, ts, payload: body };
  if (typeof sig === "string" && sig.length > 0) env.sig = sig;
  return env;
}

/** Serialises an envelope for the wire, omitting an absent `sig` (never `"sig":""`). */
export function serializeEnvelope(env: Envelope): string {
  const out: Record<string, unknown> = {
    type: env.type,
    from: env.from,
    to: env.to,
    ts: env.ts,
    payload: env.payload,
  };
  if (env.sig) out.sig = env.sig;
  return JSON.stringify(out);
}

// ---------------------------------------------------------------------------------------------
// Payload field readers: each throws ProtocolError("BAD_FRAME") naming the field.

function bad(type: string, field: string, want: string): never {
  throw new ProtocolError("BAD_FRAME", `${type} payload field "${field}" must be ${want}`);
}

/** Reads a required non-empty string field. */
export function reqString(p: JsonObject, type: string, field: string, max = 1 << 20): string {
  const v = p[field];
  if (typeof v !== "string" || v.length === 0 || v.length > max) bad(type, field, "a string");
  return v;
}

/** Reads an optional string field (absent, null or "" give undefined). */
export function optString(p: JsonObject, type: string, field: string): string | undefined {
  const v = p[field];
  if (v === undefined || v === null || v === "") return undefined;
  if (typeof v !== "string") bad(type, field, "a string");
  return v;
}

/** Reads a required non-negative integer field. */
export function reqInt(p: JsonObject, type: string, field: string): number {
  const v = p[field];
  if (typeof v !== "number" || !Number.isSafeInteger(v) || v < 0) {
    bad(type, field, "a non-negative integer");
  }
  return v;
}

/** Reads an optional finite number field. */
export function optNumber(p: JsonObject, type: string, field: string): number | undefined {
  const v = p[field];
  if (v === undefined || v === null) return undefined;
  if (typeof v !== "number" || !Number.isFinite(v)) bad(type, field, "a number");
  return v;
}

/** Reads a required user or server UUID field. */
export function reqId(p: JsonObject, type: string, field: string): string {
  const v = p[field];
  if (typeof v !== "string" || !isUuid(v)) bad(type, field, "a UUID");
  return v;
}

/** Reads an optional object field. */
export function optObject(p: JsonObject, type: string, field: string): JsonObject | undefined {
  const v = p[field];
  if (v === undefined || v === null) return undefined;
  if (!isObject(v)) bad(type, field, "an object");
  return v;
}

/** Reads a required object field. */
export function reqObject(p: JsonObject, type: string, field: string): JsonObject {
  const v = p[field];
  if (!isObject(v)) bad(type, field, "an object");
  return v;
}

/** Reads an optional array field. */
export function optArray(p: JsonObject, type: string, field: string): JsonValue[] | undefined {
  const v = p[field];
  if (v === undefined || v === null) return undefined;
  if (!Array.isArray(v)) bad(type, field, "an array");
  return v;
}

export { isObject };
