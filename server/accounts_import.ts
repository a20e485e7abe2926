/**
 * `socp accounts import <file> [--data-dir <dir>]`: creates password accounts from a file of
 * `username password` lines (the `credentials.txt` format of the socket-chat system socp
 * replaces). Each account gets a new RSA-4096 identity whose private key is sealed under the
 * password exactly as `/register` does (scrypt + AES-256-GCM; the server keeps only the blob and
 * `SHA-256(auth_key)`), and a record signed by its own key. Every line is checked first; a file
 * with any bad line is reported with line numbers and nothing is written. The records reach the
 * other servers of the group when this server links to them.
 *
 * @module
 */

import { parseArgs } from "node:util";
import { join } from "node:path";
import {
  encodePublicKey,
  plural,
  rsa,
  sealPrivateKey,
  signAccountStatement,
  usernameKey,
  usernameProblem,
} from "../shared/mod.ts";
import { openSqliteStore, type UserRecord } from "../storage/mod.ts";
import { loadOrCreateIdentity } from "./identity.ts";

const USAGE = `Usage: socp accounts import <file> [--data-dir <dir>]

Creates a password account for every "username password" line of <file> in the server's data
directory (default ./data, or $SOCP_DATA_DIR). Blank lines and lines starting with # are
skipped. Stop the server first; the accounts reach the rest of the server group when it starts.`;

/** One account to create. */
export interface Credential {
  /** Line number in the file (1-based). */
  line: number;
  username: string;
  password: string;
}

/**
 * Parses a credentials file; returns the accounts, or the problems with their line numbers.
 *
 * @example
 * ```ts
 * import { parseCredentials } from "./accounts_import.ts";
 * const ok = parseCredentials("alice secret1\n# comment\nbob hunter22\n");
 * console.assert("accounts" in ok && ok.accounts.length === 2);
 * const bad = parseCredentials("alice\n");
 * console.assert("problems" in bad && bad.problems[0]!.startsWith("line 1"));
 * ```
 */
export function parseCredentials(
  text: string,
): { accounts: Credential[] } | { problems: string[] } {
  const accounts: Credential[] = [];
  const problems: string[] = [];
  const seen = new Map<string, number>();
  text.split(/\r?\n/).forEach((raw, i) => {
    const line = i + 1;
    const trimmed = raw.trim();
    if (trimmed === "" || trimmed.startsWith("#")) return;
    const parts = trimmed.split(/\s+/);
    if (parts.length !== 2) {
      problems.push(
        `line ${line}: expected "username password", got ${parts.length} field${
          parts.length === 1 ? "" : "s"
        }`,
      );
      return;
    }
    const [username, password] = parts as [string, string];
    const problem = usernameProblem(username);
    if (problem) {
      problems.push(`line ${line}: ${problem}`);
      return;
    }
    const key = usernameKey(username);
    const first = seen.get(key);
    if (first !== undefined) {
      problems.push(`line ${line}: "${username}" is already on line ${first}`);
      return;
    }
    seen.set(key, line);
    accounts.push({ line, username, password });
  });
  return problems.length > 0 ? { problems } : { accounts };
}

/** Runs `socp accounts …`; resolves with the exit code. */
export async function runAccounts(argv: string[]): Promise<number> {
  const [sub, ...rest] = argv;
  if (sub === "--help" || sub === "-h" || sub === undefined) {
    console.log(USAGE);
    return sub === undefined ? 64 : 0;
  }
  if (sub !== "import") {
    console.error(`socp accounts: unknown command "${sub}" (socp accounts --help for more)`);
    return 64;
  }
  let values;
  let positionals: string[];
  try {
    ({ values, positionals } = parseArgs({
      args: rest,
      allowPositionals: true,
      options: { "data-dir": { type: "string" }, help: { type: "boolean", short: "h" } },
    }));
  } catch (error) {
    console.error(`socp accounts import: ${(error as Error).message} (--help for more)`);
    return 64;
  }
  if (values.help) {
    console.log(USAGE);
    return 0;
  }
  if (positionals.length !== 1) {
    console.error("socp accounts import: give exactly one file (--help for more)");
    return 64;
  }
  const file = positionals[0]!;
  let text: string;
  try {
    text = await Deno.readTextFile(file);
  } catch (error) {
    console.error(`socp accounts import: cannot read "${file}": ${(error as Error).message}`);
    return 1;
  }
  const parsed = parseCredentials(text);
  if ("problems" in parsed) {
    for (const p of parsed.problems) console.error(`${file}: ${p}`);
    console.error(
      `socp accounts import: nothing imported (${plural(parsed.problems.length, "problem")})`,
    );
    return 1;
  }
  let dataDir: string;
  try {
    dataDir = values["data-dir"] ?? Deno.env.get("SOCP_DATA_DIR") ?? "data";
  } catch {
    dataDir = values["data-dir"] ?? "data";
  }
  return await importAccounts(parsed.accounts, dataDir, file);
}

async function importAccounts(
  accounts: Credential[],
  dataDir: string,
  file: string,
): Promise<number> {
  await Deno.mkdir(dataDir, { recursive: true, mode: 0o700 });
  await using store = await openSqliteStore(join(dataDir, "socp.db"));
  const taken = [];
  for (const a of accounts) {
    if (await store.getUserByName(a.username)) taken.push(a);
  }
  if (taken.length > 0) {
    for (const a of taken) {
      console.error(`${file}: line ${a.line}: the name "${a.username}" is taken on this server`);
    }
    console.error(`socp accounts import: nothing imported (${plural(taken.length, "problem")})`);
    return 1;
  }
  const { identity } = await loadOrCreateIdentity(dataDir, store);
  const records: UserRecord[] = [];
  for (const [i, a] of accounts.entries()) {
    console.error(`creating ${a.username} (${i + 1}/${accounts.length}): RSA-4096 key...`);
    const keys = await rsa().generate();
    const { store: sealed, verifier } = await sealPrivateKey(keys.privateKey, a.password);
    const userId = crypto.randomUUID();
    const pubkey = encodePublicKey(keys.publicKey);
    const seq = Date.now();
    const privkeyStore = { ...sealed };
    const sig = await signAccountStatement(keys.privateKey, {
      user_id: userId,
      pubkey,
      username: a.username,
      privkey_store: privkeyStore,
      verifier,
      deleted: false,
      seq,
    });
    records.push({
      user_id: userId,
      pubkey,
      privkey_store: JSON.stringify(privkeyStore),
      pake_password: JSON.stringify({ scheme: "scrypt-auth-sha256", verifier }),
      meta: JSON.stringify({ display_name: a.username }),
      version: seq,
      username: a.username,
      home_server: identity.serverId,
      updated_at: seq,
      registered_at: seq,
      deleted: false,
      proof: JSON.stringify({ seq, sig, username: a.username }),
    });
  }
  try {
    await store.putUsers(records);
  } catch (error) {
    console.error(`socp accounts import: nothing imported: ${(error as Error).message}`);
    return 1;
  }
  console.log(`imported ${records.length} account${records.length === 1 ? "" : "s"}`);
  return 0;
}
