/**
 * Trust on first use in the browser: the {@linkcode TrustStore} of the web client, kept in the
 * page's `localStorage` (per origin). Server keys are pinned per server URL and other users'
 * keys per user id, exactly as the terminal client pins them in its config file; a pin is only
 * replaced when the person asks for it ({@linkcode BrowserTrustStore.forgetServer},
 * {@linkcode BrowserTrustStore.forgetUser}) after the loud warning.
 *
 * @module
 */

import type { ServerPin, TrustStore } from "../trust_store.ts";

/** The part of the Web Storage API the store uses (`localStorage`, or a Map in tests). */
export interface KeyValueStorage {
  /** The value under `key`, or null. */
  getItem(key: string): string | null;
  /** Stores `value` under `key` (may throw when the quota is exceeded). */
  setItem(key: string, value: string): void;
}

/** Where the pins live in the storage. */
export const STORAGE_KEYS = {
  users: "socp.pins.users.v1",
  servers: "socp.pins.servers.v1",
} as const;

function readMap(storage: KeyValueStorage, key: string): Record<string, unknown> {
  try {
    const value: unknown = JSON.parse(storage.getItem(key) ?? "{}");
    return typeof value === "object" && value !== null && !Array.isArray(value)
      ? value as Record<string, unknown>
      : {};
  } catch {
    return {};
  }
}

function isPin(value: unknown): value is ServerPin {
  if (typeof value !== "object" || value === null) return false;
  const { server_id, pubkey } = value as Record<string, unknown>;
  return typeof server_id === "string" && typeof pubkey === "string";
}

/**
 * Pins kept in `localStorage`.
 *
 * @example
 * ```ts
 * import { BrowserTrustStore } from "./browser_trust_store.ts";
 * const data = new Map<string, string>();
 * const storage = {
 *   getItem: (k: string) => data.get(k) ?? null,
 *   setItem: (k: string, v: string) => void data.set(k, v),
 * };
 * new BrowserTrustStore(storage).pinUserKey("u", "KEY");
 * console.assert(new BrowserTrustStore(storage).userKey("u") === "KEY");
 * ```
 */
export class BrowserTrustStore implements TrustStore {
  #storage: KeyValueStorage;
  #users: Map<string, string> = new Map();
  #servers: Map<string, ServerPin> = new Map();
  #failed = false;

  /** Loads the pins from `storage` (malformed entries are ignored). */
  constructor(storage: KeyValueStorage) {
    this.#storage = storage;
    for (const [id, key] of Object.entries(readMap(storage, STORAGE_KEYS.users))) {
      if (typeof key === "string") this.#users.set(id, key);
    }
    for (const [url, pin] of Object.entries(readMap(storage, STORAGE_KEYS.servers))) {
      if (isPin(pin)) this.#servers.set(url, { server_id: pin.server_id, pubkey: pin.pubkey });
    }
  }

  /** True when the last write failed (storage full or disabled): pins last for this page only. */
  get failed(): boolean {
    return this.#failed;
  }

  /** The key pinned for a user id. */
  userKey(userId: string): string | undefined {
    return this.#users.get(userId);
  }

  /** Pins a user key. */
  pinUserKey(userId: string, pubkey: string): void {
    this.#users.set(userId, pubkey);
    this.#save(STORAGE_KEYS.users, Object.fromEntries(this.#users));
  }

  /** The pin of a server URL. */
  serverPin(url: string): ServerPin | undefined {
    return this.#servers.get(url);
  }

  /** Pins a server key for a URL. */
  pinServer(url: string, pin: ServerPin): void {
    this.#servers.set(url, { server_id: pin.server_id, pubkey: pin.pubkey });
    this.#save(STORAGE_KEYS.servers, Object.fromEntries(this.#servers));
  }

  /** Forgets the key pinned for a server URL (the next connection pins what it presents). */
  forgetServer(url: string): boolean {
    const had = this.#servers.delete(url);
    if (had) this.#save(STORAGE_KEYS.servers, Object.fromEntries(this.#servers));
    return had;
  }

  /** Forgets the key pinned for a user (the next key seen is pinned). */
  forgetUser(userId: string): boolean {
    const had = this.#users.delete(userId);
    if (had) this.#save(STORAGE_KEYS.users, Object.fromEntries(this.#users));
    return had;
  }

  /** Writes are synchronous: nothing to wait for. */
  flush(): Promise<void> {
    return Promise.resolve();
  }

  #save(key: string, value: object): void {
    try {
      this.#storage.setItem(key, JSON.stringify(value));
      this.#failed = false;
    } catch {
      this.#failed = true;
    }
  }
}
