/**
 * The static bootstrap list (spec §7.1): introducers with host, port and pinned public key,
 * read from `bootstrap.yaml` (`bootstrap_servers:` list, or a bare list; JSON works too).
 *
 * The same file may hold a `server_group:` list in the same form: the operator's own servers,
 * which share account records, login failures and offline queues (docs/security.md). Servers
 * that join through an introducer but are not in that list get presence and routing only.
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
  return parseBootstrapFile(text).introducers;
}

/** The two lists of a bootstrap file. */
export interface BootstrapFile {
  /** `bootstrap_servers:` (or a bare list): introducers to join through. */
  introducers: BootstrapEntry[];
  /** `server_group:`: the operator's own servers (may include this one). */
  group: GroupEntry[];
}

/** A member of the operator's server group: its pinned key, and where clients reach it. */
export interface GroupEntry {
  /** Pinned public key, normalised to base64url DER SPKI. */
  pubkey: string;
  /** Host clients and servers dial (optional: learned from the link when absent). */
  host?: string;
  /** Port clients and servers dial (optional, with `host`). */
  port?: number;
}

/**
 * Parses bootstrap YAML (or JSON) text with its optional `server_group:` list.
 *
 * @example
 * ```ts
 * import { parseBootstrapFile } from "./bootstrap.ts";
 * const file = parseBootstrapFile("bootstrap_servers: []\nserver_group: []");
 * console.assert(file.introducers.length === 0 && file.group.length === 0);
 * ```
 */
export function parseBootstrapFile(text: string): BootstrapFile {
  let doc: unknown;
  try {
    doc = parse(text);
  } catch (cause) {
    throw new BootstrapError(`Bootstrap file is not valid YAML: ${(cause as Error).message}`, {
      cause,
    });
  }
  if (doc === null || doc === undefined) return { introducers: [], group: [] };
  if (Array.isArray(doc)) return { introducers: addressed(doc, "Bootstrap"), group: [] };
  const fields = typeof doc === "object" ? doc as Record<string, unknown> : {};
  const list = fields.bootstrap_servers ?? (fields.server_group !== undefined ? [] : undefined);
  if (!Array.isArray(list)) {
    throw new BootstrapError('Bootstrap file needs a "bootstrap_servers:" list');
  }
  const group = fields.server_group ?? [];
  if (!Array.isArray(group)) {
    throw new BootstrapError('"server_group:" in the bootstrap file must be a list');
  }
  return { introducers: addressed(list, "Bootstrap"), group: entries(group, "server_group") };
}

/** Entries that must have host and port. */
function addressed(list: unknown[], what: string): BootstrapEntry[] {
  return entries(list, what, true).map((e, i) => {
    if (e.host === undefined || e.port === undefined) {
      throw new BootstrapError(
        `${what} entry ${i + 1} has no "${e.host === undefined ? "host" : "port"}"`,
      );
    }
    return { host: e.host, port: e.port, pubkey: e.pubkey };
  });
}

function entries(list: unknown[], what: string, needAddress = false): GroupEntry[] {
  return list.map((item, i) => {
    if (typeof item !== "object" || item === null) {
      throw new BootstrapError(`${what} entry ${i + 1} is not a mapping`);
    }
    const { host, port, pubkey } = item as Record<string, unknown>;
    if (needAddress && host === undefined) {
      throw new BootstrapError(`${what} entry ${i + 1} has no "host"`);
    }
    if (host !== undefined && (typeof host !== "string" || host.length === 0)) {
      throw new BootstrapError(`${what} entry ${i + 1} has a bad "host"`);
    }
    const portNumber = typeof port === "string" ? Number(port) : port;
    if (
      port !== undefined &&
      (typeof portNumber !== "number" || !Number.isInteger(portNumber) || portNumber < 1 ||
        portNumber > 65535)
    ) {
      throw new BootstrapError(
        `${what} entry ${i + 1} has a bad "port": ${JSON.stringify(port)}`,
      );
    }
    if (typeof pubkey !== "string") {
      throw new BootstrapError(`${what} entry ${i + 1} has no "pubkey"`);
    }
    let normalised: string;
    try {
      normalised = encodeBase64Url(decodePublicKeyText(pubkey));
    } catch (cause) {
      const reason = cause instanceof KeyError ? cause.message : String(cause);
      throw new BootstrapError(`${what} entry ${i + 1} has a bad "pubkey": ${reason}`, {
        cause,
      });
    }
    const entry: GroupEntry = { pubkey: normalised };
    if (typeof host === "string" && typeof portNumber === "number") {
      entry.host = host;
      entry.port = portNumber;
    }
    return entry;
  });
}

/** Reads a bootstrap file; a missing file gives `undefined`. */
export async function loadBootstrap(path: string): Promise<BootstrapFile | undefined> {
  let text: string;
  try {
    text = await Deno.readTextFile(path);
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return undefined;
    throw error;
  }
  return parseBootstrapFile(text);
}

/** Renders a bootstrap file, with a `server_group:` list when `group` is given. */
export function renderBootstrap(
  introducers: readonly BootstrapEntry[],
  group: readonly GroupEntry[] = [],
): string {
  const lines = ["bootstrap_servers:"];
  const list = (items: readonly GroupEntry[]) => {
    for (const e of items) {
      if (e.host !== undefined && e.port !== undefined) {
        lines.push(`  - host: "${e.host}"`, `    port: ${e.port}`, `    pubkey: "${e.pubkey}"`);
      } else lines.push(`  - pubkey: "${e.pubkey}"`);
    }
  };
  list(introducers);
  if (group.length > 0) {
    lines.push(
      "# The operator's own servers: they share accounts, login failures and offline queues.",
      "server_group:",
    );
    list(group);
  }
  return lines.join("\n") + "\n";
}
