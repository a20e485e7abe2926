/**
 * Trust on first use: the keys the client has pinned for users (`known_keys`) and for servers
 * (`servers`, per server URL). A pin is only ever added, never silently replaced.
 *
 * @module
 */

/** The key pinned for one server URL. */
export interface ServerPin {
  /** The server's id as it gave it in its ACK. */
  server_id: string;
  /** base64url DER SPKI of the server key. */
  pubkey: string;
}

/** Where pins live; the config file implements it, tests use {@linkcode MemoryTrustStore}. */
export interface TrustStore {
  /** The key pinned for a user id (base64url DER SPKI). */
  userKey(userId: string): string | undefined;
  /** Pins a user key; callers check first that none is pinned yet. */
  pinUserKey(userId: string, pubkey: string): void;
  /** The pin for a server URL. */
  serverPin(url: string): ServerPin | undefined;
  /** Pins a server key for a URL (or updates the id under the same key). */
  pinServer(url: string, pin: ServerPin): void;
  /** Resolves once every change so far is persisted. */
  flush(): Promise<void>;
  /**
   * The pin the user chose to forget for a URL in this run (`--forget-server-key`), so the new
   * key can be shown next to the old one when it is pinned.
   */
  forgottenServerPin?(url: string): ServerPin | undefined;
}

/**
 * A {@linkcode TrustStore} held in memory.
 *
 * @example
 * ```ts
 * import { MemoryTrustStore } from "./trust_store.ts";
 * const store = new MemoryTrustStore();
 * store.pinUserKey("u", "KEY");
 * console.assert(store.userKey("u") === "KEY");
 * ```
 */
export class MemoryTrustStore implements TrustStore {
  /** Pinned user keys. */
  readonly users: Map<string, string> = new Map();
  /** Pinned server keys by URL. */
  readonly servers: Map<string, ServerPin> = new Map();

  /** Creates a store, optionally with initial pins. */
  constructor(init: { users?: Record<string, string>; servers?: Record<string, ServerPin> } = {}) {
    for (const [id, key] of Object.entries(init.users ?? {})) this.users.set(id, key);
    for (const [url, pin] of Object.entries(init.servers ?? {})) this.servers.set(url, pin);
  }
  /** The key pinned for a user. */
  userKey(userId: string): string | undefined {
    return this.users.get(userId);
  }
  /** Pins a user key. */
  pinUserKey(userId: string, pubkey: string): void {
    this.users.set(userId, pubkey);
  }
  /** The pin of a server URL. */
  serverPin(url: string): ServerPin | undefined {
    return this.servers.get(url);
  }
  /** Pins a server key. */
  pinServer(url: string, pin: ServerPin): void {
    this.servers.set(url, pin);
  }
  /** Nothing to persist. */
  flush(): Promise<void> {
    return Promise.resolve();
  }
}
