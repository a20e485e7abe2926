/**
 * The per-user config file (e.g. `alice.json`) and its private key file (`alice.key.pem`).
 *
 * The first run creates both: a fresh UUIDv4 and an RSA-4096 key pair. Later runs reuse them.
 * The config also holds the pinned keys ({@linkcode TrustStore}); every write is atomic (temp
 * file + rename) with mode 0600. Unknown fields are kept, so later versions can add their own.
 *
 * @module
 */

import { basename, dirname, extname, isAbsolute, join, resolve } from "node:path";
import {
  CONTENT_SIG_VARIANTS,
  type ContentSigVariant,
  importPrivateKeyText,
  isObject,
  isUuid,
  type JsonObject,
  type KeyPair,
  keyPairOf,
  privateKeyToPem,
  rsa,
  usernameProblem,
} from "../shared/mod.ts";
import type { ServerPin, TrustStore } from "./trust_store.ts";

/** The typed fields of a config file. */
export interface ClientConfig {
  /**
   * The local identity's UUIDv4. Absent in a config made for logging in to an account
   * (`--login`): such a config has no local key until one is needed.
   */
  user_id?: string;
  /** Name shown to others (`meta.display_name`). */
  display_name: string;
  /** Server URL to use when none is given on the command line. */
  server?: string;
  /**
   * The other servers of the server's group (from its USER_HELLO_OK ACK): tried in order when
   * the server cannot be reached or the connection drops. Their keys are pinned in `servers`.
   */
  failover_servers?: string[];
  /** Path of the PKCS#8 PEM private key, relative to the config file (with `user_id`). */
  private_key_file?: string;
  /**
   * Account name remembered for convenience: the account of the local identity (after
   * `/register`), or, in a config without a local key, the account last logged in to.
   */
  account?: string;
  /** content_sig variant to sign with. */
  sig_variant?: ContentSigVariant;
  /** Pinned user keys: user id → base64url DER SPKI. */
  known_keys: Record<string, string>;
  /** Pinned server keys by server URL. */
  servers: Record<string, ServerPin>;
}

/** A config file or key file is missing, unreadable or malformed; the message says what to do. */
export class ConfigError extends Error {
  /** Creates a config error. */
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = "ConfigError";
  }
}

/** A loaded (or freshly created) config with its key pair. */
export interface LoadedConfig {
  /** Absolute path of the config file. */
  path: string;
  /** The typed config. */
  config: ClientConfig;
  /** Fields this version does not know, kept on write. */
  extra: JsonObject;
  /** The local identity's key pair; absent in a config without a local key. */
  keys?: KeyPair;
  /** True when this call created the config. */
  created: boolean;
  /** Non-fatal problems to show (e.g. a key file readable by others). */
  warnings: string[];
}

/** Options for {@linkcode loadOrCreateConfig}. */
export interface LoadConfigOptions {
  /** New display name to set (and save). */
  displayName?: string;
  /** Key generator for a new config (default `rsa().generate()`; tests pass a fixture). */
  generate?: () => Promise<KeyPair>;
  /**
   * Create a missing config without a local identity (no user id, no key): for logging in to
   * an account. An existing config without a key is then loaded as it is.
   */
  noKey?: boolean;
  /** Account name to remember in a config created with `noKey`. */
  account?: string;
}

const enc = new TextEncoder();

/**
 * Derives the key pair of a PKCS#8 private key given as PEM text (or base64url DER).
 *
 * @example
 * ```ts
 * import { keyPairFromPrivateText } from "./config.ts";
 * await keyPairFromPrivateText("not a key").catch((e) => console.assert(e.name === "KeyError"));
 * ```
 */
export async function keyPairFromPrivateText(text: string): Promise<KeyPair> {
  return await keyPairOf(await importPrivateKeyText(text));
}

/** The key pair of a private key (moved to shared/rsa.ts; kept here for importers). */
export { keyPairOf };

function isNotFound(e: unknown): boolean {
  return e instanceof Deno.errors.NotFound;
}

function describe(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}

function defaultName(path: string): string {
  return basename(path, extname(path)) || "user";
}

/** Checks a display name: 1 to 64 characters, no control characters. */
export function checkDisplayName(name: string): string {
  const trimmed = name.trim();
  if (trimmed.length === 0) throw new ConfigError("Display name is empty");
  if ([...trimmed].length > 64) {
    throw new ConfigError(`Display name "${trimmed}" is too long (max 64)`);
  }
  // deno-lint-ignore no-control-regex
  if (/[\x00-\x1f\x7f]/.test(trimmed)) {
    throw new ConfigError(`Display name "${trimmed}" contains control characters`);
  }
  return trimmed;
}

function validate(path: string, raw: unknown): { config: ClientConfig; extra: JsonObject } {
  const where = `Config file "${path}"`;
  if (!isObject(raw)) throw new ConfigError(`${where} does not hold a JSON object`);
  const {
    user_id,
    display_name,
    server,
    private_key_file,
    sig_variant,
    known_keys,
    servers,
    account,
    failover_servers,
    ...extra
  } = raw;
  const field = (name: string, want: string): ConfigError =>
    new ConfigError(`${where}: field "${name}" must be ${want}`);
  const local = (user_id !== undefined && user_id !== null) ||
    (private_key_file !== undefined && private_key_file !== null);
  if (local && !isUuid(user_id)) throw field("user_id", "a UUID");
  if (typeof display_name !== "string") throw field("display_name", "a string");
  if (server !== undefined && server !== null && typeof server !== "string") {
    throw field("server", "a ws:// or wss:// URL");
  }
  if (local && (typeof private_key_file !== "string" || private_key_file.length === 0)) {
    throw field("private_key_file", "a path");
  }
  if (
    account !== undefined && account !== null &&
    (typeof account !== "string" || usernameProblem(account) !== undefined)
  ) {
    throw field("account", "an account name (3-32 letters, digits, _ . -)");
  }
  if (
    sig_variant !== undefined && sig_variant !== null &&
    !(CONTENT_SIG_VARIANTS as readonly unknown[]).includes(sig_variant)
  ) {
    throw field("sig_variant", "one of A, B, C, D");
  }
  if (
    failover_servers !== undefined && failover_servers !== null &&
    (!Array.isArray(failover_servers) || !failover_servers.every((u) => typeof u === "string"))
  ) {
    throw field("failover_servers", "a list of ws:// or wss:// URLs");
  }
  const keys: Record<string, string> = Object.create(null);
  if (known_keys !== undefined && known_keys !== null) {
    if (!isObject(known_keys)) throw field("known_keys", "an object");
    for (const [id, key] of Object.entries(known_keys)) {
      if (typeof key !== "string") throw field(`known_keys.${id}`, "a base64url key");
      keys[id] = key;
    }
  }
  const pins: Record<string, ServerPin> = Object.create(null);
  if (servers !== undefined && servers !== null) {
    if (!isObject(servers)) throw field("servers", "an object");
    for (const [url, pin] of Object.entries(servers)) {
      if (
        !isObject(pin) || typeof pin["server_id"] !== "string" ||
        typeof pin["pubkey"] !== "string"
      ) {
        throw field(`servers.${url}`, "an object {server_id, pubkey}");
      }
      pins[url] = { server_id: pin["server_id"], pubkey: pin["pubkey"] };
    }
  }
  const config: ClientConfig = {
    display_name: display_name || defaultName(path),
    known_keys: keys,
    servers: pins,
  };
  if (local) {
    config.user_id = user_id as string;
    config.private_key_file = private_key_file as string;
  }
  if (typeof account === "string") config.account = account;
  if (typeof server === "string" && server.length > 0) config.server = server;
  if (Array.isArray(failover_servers) && failover_servers.length > 0) {
    config.failover_servers = failover_servers.filter((u): u is string => typeof u === "string");
  }
  if (typeof sig_variant === "string") config.sig_variant = sig_variant as ContentSigVariant;
  return { config, extra };
}

/** Absolute path of the key file a config names (or would name: `<config name>.key.pem`). */
export function keyFilePath(configPath: string, config: ClientConfig): string {
  const file = config.private_key_file ?? defaultKeyFile(configPath);
  return isAbsolute(file) ? file : join(dirname(configPath), file);
}

function defaultKeyFile(configPath: string): string {
  return `${basename(configPath, extname(configPath)) || "user"}.key.pem`;
}

/**
 * Writes a config atomically: a temp file (mode 0600) next to it, then a rename.
 *
 * @example
 * ```ts ignore
 * await writeConfig("/tmp/alice.json", loaded.config, loaded.extra);
 * ```
 */
export async function writeConfig(
  path: string,
  config: ClientConfig,
  extra: JsonObject = {},
): Promise<void> {
  const order: (keyof ClientConfig)[] = [
    "user_id",
    "display_name",
    "account",
    "server",
    "failover_servers",
    "private_key_file",
    "sig_variant",
    "known_keys",
    "servers",
  ];
  const typed: JsonObject = {};
  for (const key of order) {
    const value = config[key];
    if (value !== undefined) typed[key] = value as JsonObject[string];
  }
  const text = JSON.stringify({ ...extra, ...typed }, null, 2) + "\n";
  const tmp = `${path}.${crypto.randomUUID().slice(0, 8)}.tmp`;
  try {
    await Deno.writeFile(tmp, enc.encode(text), { mode: 0o600, createNew: true });
    if (Deno.build.os !== "windows") await Deno.chmod(tmp, 0o600);
    await Deno.rename(tmp, path);
  } catch (cause) {
    await Deno.remove(tmp).catch(() => {});
    throw new ConfigError(`Cannot write config file "${path}": ${describe(cause)}`, { cause });
  }
}

async function loadKey(path: string, config: ClientConfig, warnings: string[]): Promise<KeyPair> {
  const keyPath = keyFilePath(path, config);
  let text: string;
  try {
    text = await Deno.readTextFile(keyPath);
  } catch (cause) {
    throw new ConfigError(
      `Cannot read private key file "${keyPath}" named by "${path}": ${describe(cause)}`,
      { cause },
    );
  }
  try {
    const info = await Deno.stat(keyPath);
    if (info.mode !== null && (info.mode & 0o077) !== 0) {
      warnings.push(
        `private key file "${keyPath}" is readable by others; run: chmod 600 "${keyPath}"`,
      );
    }
  } catch {
    // stat problems surface when reading
  }
  try {
    return await keyPairFromPrivateText(text);
  } catch (cause) {
    throw new ConfigError(
      `Private key file "${keyPath}" is not a valid RSA-4096 PKCS#8 PEM key (${
        describe(cause)
      }); restore it from a backup, or move both it and "${path}" away to start over with a new identity`,
      { cause },
    );
  }
}

async function create(path: string, options: LoadConfigOptions): Promise<LoadedConfig> {
  const config: ClientConfig = {
    display_name: checkDisplayName(
      options.displayName ?? (options.noKey ? options.account : undefined) ?? defaultName(path),
    ),
    known_keys: Object.create(null),
    servers: Object.create(null),
  };
  if (options.account !== undefined) config.account = options.account;
  try {
    await Deno.mkdir(dirname(path), { recursive: true });
  } catch (cause) {
    throw new ConfigError(`Cannot create the folder of "${path}": ${describe(cause)}`, { cause });
  }
  const loaded: LoadedConfig = { path, config, extra: {}, created: true, warnings: [] };
  if (!options.noKey) {
    await addLocalIdentity(loaded, options.generate);
  } else {
    await writeConfig(path, config);
  }
  return loaded;
}

/**
 * Gives a config without a local key (one made for an account login) a new local identity: a
 * fresh UUID and key pair, written next to it. Sets `loaded.keys`.
 */
export async function addLocalIdentity(
  loaded: LoadedConfig,
  generate?: () => Promise<KeyPair>,
): Promise<KeyPair> {
  if (loaded.keys) return loaded.keys;
  const { path, config } = loaded;
  const keyName = defaultKeyFile(path);
  const keyPath = keyFilePath(path, { ...config, private_key_file: keyName });
  const keys = await (generate ?? (() => rsa().generate()))();
  try {
    await Deno.writeFile(keyPath, enc.encode(privateKeyToPem(keys.privateKey)), {
      mode: 0o600,
      createNew: true,
    });
    if (Deno.build.os !== "windows") await Deno.chmod(keyPath, 0o600);
  } catch (cause) {
    if (cause instanceof Deno.errors.AlreadyExists) {
      throw new ConfigError(
        `Key file "${keyPath}" exists but config "${path}" does not; restore the config, or move the key file away to create a new identity`,
        { cause },
      );
    }
    throw new ConfigError(`Cannot write key file "${keyPath}": ${describe(cause)}`, { cause });
  }
  config.user_id = crypto.randomUUID();
  config.private_key_file = keyName;
  await writeConfig(path, config, loaded.extra);
  loaded.keys = keys;
  return keys;
}

/**
 * Loads the config at `path`, creating it (and a new identity) when it does not exist.
 * Throws {@linkcode ConfigError} with a message fit for the user when anything is wrong.
 *
 * @example
 * ```ts ignore
 * const loaded = await loadOrCreateConfig("alice.json");
 * console.log(loaded.config.user_id);
 * ```
 */
export async function loadOrCreateConfig(
  path: string,
  options: LoadConfigOptions = {},
): Promise<LoadedConfig> {
  const abs = resolve(path);
  let text: string;
  try {
    text = await Deno.readTextFile(abs);
  } catch (cause) {
    if (isNotFound(cause)) return await create(abs, options);
    throw new ConfigError(`Cannot read config file "${abs}": ${describe(cause)}`, { cause });
  }
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (cause) {
    throw new ConfigError(
      `Config file "${abs}" is not valid JSON (${
        describe(cause)
      }); fix it, or move it away to create a new identity`,
      { cause },
    );
  }
  const { config, extra } = validate(abs, raw);
  const warnings: string[] = [];
  const loaded: LoadedConfig = { path: abs, config, extra, created: false, warnings };
  if (config.user_id !== undefined) loaded.keys = await loadKey(abs, config, warnings);
  if (options.displayName !== undefined) {
    const name = checkDisplayName(options.displayName);
    if (name !== config.display_name) {
      config.display_name = name;
      await writeConfig(abs, config, extra);
    }
  }
  return loaded;
}

/**
 * A {@linkcode TrustStore} backed by a loaded config: pins change the config in memory and are
 * written out in the background, one write at a time.
 */
export class ConfigTrustStore implements TrustStore {
  #loaded: LoadedConfig;
  #saving: Promise<void> = Promise.resolve();
  #onError: (error: Error) => void;
  #forgotten: Map<string, ServerPin> = new Map();

  /** Wraps a loaded config; `onError` hears about failed writes. */
  constructor(loaded: LoadedConfig, onError: (error: Error) => void = () => {}) {
    this.#loaded = loaded;
    this.#onError = onError;
  }
  /** The key pinned for a user. */
  userKey(userId: string): string | undefined {
    return Object.hasOwn(this.#loaded.config.known_keys, userId)
      ? this.#loaded.config.known_keys[userId]
      : undefined;
  }
  /** Pins a user key and saves. */
  pinUserKey(userId: string, pubkey: string): void {
    this.#loaded.config.known_keys[userId] = pubkey;
    this.#save();
  }
  /** The pin of a server URL. */
  serverPin(url: string): ServerPin | undefined {
    return Object.hasOwn(this.#loaded.config.servers, url)
      ? this.#loaded.config.servers[url]
      : undefined;
  }
  /** Pins a server key and saves. */
  pinServer(url: string, pin: ServerPin): void {
    this.#loaded.config.servers[url] = { ...pin };
    this.#save();
  }
  /**
   * Forgets the key pinned for a server URL (`--forget-server-key`) and saves; the next
   * connection pins the key the server presents, shown next to this one. Returns the forgotten
   * pin, or undefined when none was pinned.
   */
  forgetServer(url: string): ServerPin | undefined {
    const pin = this.serverPin(url);
    if (pin === undefined) return undefined;
    delete this.#loaded.config.servers[url];
    this.#forgotten.set(url, pin);
    this.#save();
    return pin;
  }
  /** The pin forgotten for a URL in this run, if any. */
  forgottenServerPin(url: string): ServerPin | undefined {
    return this.#forgotten.get(url);
  }
  /** Resolves when every pin so far is written. */
  flush(): Promise<void> {
    return this.#saving;
  }
  /** Writes the config (after any write in progress), e.g. after changing `account`. */
  save(): Promise<void> {
    this.#save();
    return this.#saving;
  }
  #save(): void {
    const { path, config, extra } = this.#loaded;
    this.#saving = this.#saving.then(() => writeConfig(path, config, extra)).catch((e) =>
      this.#onError(e instanceof Error ? e : new Error(String(e)))
    );
  }
}
