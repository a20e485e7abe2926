/**
 * Canonical JSON as SOCP peers sign it: keys sorted by code unit, `,` and `:` separators,
 * non-ASCII escaped as `\uXXXX` (Python's `ensure_ascii=True`), integers as integers.
 *
 * @module
 */

/** Options for {@linkcode canonicalJson}. */
export interface CanonicalJsonOptions {
  /** Escape non-ASCII characters as `\uXXXX` (default `true`, like Python's json). */
  ascii?: boolean;
}

/** Printable ASCII but quote and backslash: written as is (most strings, e.g. base64url). */
const PLAIN = /^[\x20\x21\x23-\x5b\x5d-\x7e]*$/;

function escapeString(value: string, ascii: boolean): string {
  if (PLAIN.test(value)) return '"' + value + '"';
  let out = '"';
  for (let i = 0; i < value.length; i++) {
    const c = value.charCodeAt(i);
    if (c === 0x22) out += '\\"';
    else if (c === 0x5c) out += "\\\\";
    else if (c === 0x0a) out += "\\n";
    else if (c === 0x0d) out += "\\r";
    else if (c === 0x09) out += "\\t";
    else if (c === 0x08) out += "\\b";
    else if (c === 0x0c) out += "\\f";
    else if (c < 0x20 || (ascii && c > 0x7e)) {
      out += "\\u" + c.toString(16).padStart(4, "0");
    } else out += value[i];
  }
  return out + '"';
}

function formatNumber(value: number): string {
  if (!Number.isFinite(value)) {
    throw new TypeError(`Cannot canonicalise non-finite number ${value}`);
  }
  if (Number.isInteger(value)) return value.toFixed(0);
  // Python's float repr: shortest digits, exponent form below 1e-4 and from 1e16.
  const [mantissa, exponentText] = value.toExponential().split("e") as [string, string];
  const exponent = Number(exponentText);
  if (exponent < -4 || exponent >= 16) {
    const sign = exponent < 0 ? "-" : "+";
    return `${mantissa}e${sign}${String(Math.abs(exponent)).padStart(2, "0")}`;
  }
  return String(value);
}

/**
 * Serialises `value` canonically. Throws `TypeError` for values JSON cannot carry.
 *
 * @example
 * ```ts
 * import { canonicalJson } from "./canonical_json.ts";
 * console.assert(canonicalJson({ b: 1, a: "é" }) === '{"a":"\\u00e9","b":1}');
 * ```
 */
export function canonicalJson(value: unknown, options: CanonicalJsonOptions = {}): string {
  const ascii = options.ascii ?? true;
  const walk = (v: unknown): string => {
    if (v === null) return "null";
    switch (typeof v) {
      case "string":
        return escapeString(v, ascii);
      case "number":
        return formatNumber(v);
      case "boolean":
        return v ? "true" : "false";
      case "object": {
        if (Array.isArray(v)) return "[" + v.map(walk).join(",") + "]";
        const obj = v as Record<string, unknown>;
        const keys = Object.keys(obj).filter((k) => obj[k] !== undefined).sort();
        return "{" + keys.map((k) => escapeString(k, ascii) + ":" + walk(obj[k])).join(",") + "}";
      }
      default:
        throw new TypeError(`Cannot canonicalise a value of type ${typeof v}`);
    }
  };
  return walk(value);
}

/** UTF-8 bytes of {@linkcode canonicalJson}. */
export function canonicalBytes(value: unknown, options: CanonicalJsonOptions = {}): Uint8Array {
  return new TextEncoder().encode(canonicalJson(value, options));
}
