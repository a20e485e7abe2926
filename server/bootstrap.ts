/**
 * The static bootstrap list (spec §7.1): introducers with host, port and pinned public key,
 * read from `bootstrap.yaml` (`bootstrap_servers:` list, or a bare list; JSON works too).
 *
 * @module
 */

import { parse } from "yaml";
import { decodePublicKeyText, encodeBase64Url, KeyError } from "../shared/mod.ts";

/** One introducer. */
export interface BootstrapEntry {
  /** Host to dial. */
  host: string;
  /** Port to dial. */
  port: number;
  /** Pinned public key, normalised to base64url DER SPKI. */
  pubkey: string;
}

/** A bootstrap file is malformed; the message names the entry and field. */
export class BootstrapError extends Error {
  /** Creates the error. */
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = "BootstrapError";
  }
}

/**
 * Parses bootstrap YAML (or JSON) text.
 *
 * @example
 * ```ts
 * import { parseBootstrap } from "./bootstrap.ts";
 * console.assert(parseBootstrap("bootstrap_servers: []").length === 0);
 * ```
 */
export function parseBootstrap(text: string): BootstrapEntry[] {
  let doc: unknown;
  try {
    doc = parse(text);
  } catch (cause) {
    throw new BootstrapError(`Bootstrap file is not valid YAML: ${(cause as Error).message}`, {
      cause,
    });
  }
  if (doc === null || doc === undefined) return [];
  const list = Array.isArray(doc)
    ? doc
    : typeof doc === "object" && Array.isArray((doc as Record<string, unknown>).bootstrap_servers)
    ? (doc as Record<string, unknown[]>).bootstrap_servers!
    : undefined;
  if (list === undefined) {
    throw new BootstrapError('Bootstrap file needs a "bootstrap_servers:" list');
  }
  return list.map((item, i) => {
    if (typeof item !== "object" || item === null) {
      throw new BootstrapError(`Bootstrap entry ${i + 1} is not a mapping`);
    }
    const { host, port, pubkey } = item as Record<string, unknown>;
    if (typeof host !== "string" || host.length === 0) {
      throw new BootstrapError(`Bootstrap entry ${i + 1} has no "host"`);
    }
    const portNumber = typeof port === "string" ? Number(port) : port;
    if (
      typeof portNumber !== "number" || !Number.isInteger(portNumber) || portNumber < 1 ||
      portNumber > 65535
    ) {
      throw new BootstrapError(
        `Bootstrap entry ${i + 1} has a bad "port": ${JSON.stringify(port)}`,
      );
    }
    if (typeof pubkey !== "string") {
      throw new BootstrapError(`Bootstrap entry ${i + 1} has no "pubkey"`);
    }
    let normalised: string;
    try {
      normalised = encodeBase64Url(decodePublicKeyText(pubkey));
    } catch (cause) {
      const reason = cause instanceof KeyError ? cause.message : String(cause);
      throw new BootstrapError(`Bootstrap entry ${i + 1} has a bad "pubkey": ${reason}`, { cause });
    }
    return { host, port: portNumber, pubkey: normalised };
  });
}

/** Reads a bootstrap file; a missing file gives `undefined`. */
export async function loadBootstrap(path: string): Promise<BootstrapEntry[] | undefined> {
  let text: string;
  try {
    text = await Deno.readTextFile(path);
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return undefined;
    throw error;
  }
  return parseBootstrap(text);
}

/** Renders a bootstrap file. */
export function renderBootstrap(entries: readonly BootstrapEntry[]): string {
  const lines = ["bootstrap_servers:"];
  for (const e of entries) {
    lines.push(`  - host: "${e.host}"`, `    port: ${e.port}`, `    pubkey: "${e.pubkey}"`);
  }
  return lines.join("\n") + "\n";
}
