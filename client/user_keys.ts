/**
 * Other users' keys, trust on first use: the key to encrypt for a user (pinned, else
 * advertised and then pinned, else asked for with PUBKEY_REQUEST), checking content signatures
 * against the pinned key, and the loud warning when a different key shows up for a pinned user.
 * A pin is never replaced silently.
 *
 * @module
 */

import {
  type ContentFields,
  encodePublicKey,
  type Frame,
  importPublicKeyText,
  type PublicKey,
  samePublicKey,
  verifyContent,
} from "../shared/mod.ts";
import { errorMessage } from "./_util.ts";
import type { Connection, Identity } from "./connection.ts";
import { CommandError } from "./errors.ts";
import type { EventSink } from "./events.ts";
import { type Logger, silentLogger } from "./logger.ts";
import { configHint, fingerprintOf } from "./server_pins.ts";
import type { TrustStore } from "./trust_store.ts";

/** How a content signature checked out. */
export interface ContentCheck {
  /** The signature verified (with the pinned key, or the key the frame carried). */
  verified: boolean;
  /** It verified with the key pinned for the sender (or a first-seen key, now pinned). */
  trusted: boolean;
}

/** Options for {@linkcode UserKeys}. */
export interface UserKeysOptions {
  /** The user. */
  identity: Identity;
  /** For PUBKEY_REQUEST. */
  connection: Connection;
  /** Pinned keys. */
  trust: TrustStore;
  /** Receives warnings. */
  onEvent: EventSink;
  /** The key a user's server advertised, if any. */
  advertisedKey: (userId: string) => string | undefined;
  /** How to name a user in messages (`name (id)`). */
  who: (userId: string, fullId?: boolean) => string;
  /** Debug logger. */
  log?: Logger;
  /** Config file path, named in messages that tell the user how to fix a pin. */
  configPath?: string;
}

const UUID_IN_TEXT = /[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}/i;

/**
 * Looks up, pins and checks other users' keys.
 *
 * @example
 * ```ts ignore
 * const keys = new UserKeys({ identity, connection, trust, onEvent, advertisedKey, who });
 * const key = await keys.keyFor(bobId);          // pinned, advertised or PUBKEY_REQUEST
 * ```
 */
export class UserKeys {
  #me: Identity;
  #myPub: string;
  #connection: Connection;
  #trust: TrustStore;
  #emit: EventSink;
  #advertisedKey: (userId: string) => string | undefined;
  #who: (userId: string, fullId?: boolean) => string;
  #log: Logger;
  #configHint: string;
  #warned: Set<string> = new Set();
  #requests: Set<string> = new Set();

  /** Creates the key book over a trust store. */
  constructor(options: UserKeysOptions) {
    this.#me = options.identity;
    this.#myPub = encodePublicKey(options.identity.keys.publicKey);
    this.#connection = options.connection;
    this.#trust = options.trust;
    this.#emit = options.onEvent;
    this.#advertisedKey = options.advertisedKey;
    this.#who = options.who;
    this.#log = options.log ?? silentLogger;
    this.#configHint = configHint(options.configPath);
  }

  /** The user's own key as base64url SPKI. */
  get ownKey(): string {
    return this.#myPub;
  }

  /** True when `text` is not the user's own key. */
  isForeignKey(text: string): boolean {
    return !samePublicKey(text, this.#myPub);
  }

  /**
   * Checks a content signature. `trusted` means it verified with the key pinned for the sender
   * (or a first-seen key, which is then pinned).
   */
  async verifyContent(
    sender: string,
    senderPub: string | undefined,
    sig: string | undefined,
    fields: Omit<ContentFields, "ts">,
    tsList: (number | undefined)[],
  ): Promise<ContentCheck> {
    const no = { verified: false, trusted: false };
    if (!sig) return no;
    const ts = tsList.filter((t): t is number => t !== undefined && Number.isFinite(t));
    const pinned = sender === this.#me.userId ? this.#myPub : this.#trust.userKey(sender);
    if (pinned) {
      const key = await importPublicKeyText(pinned).catch(() => undefined);
      if (key && (await verifyContent(key, sig, fields, ts))) {
        return { verified: true, trusted: true };
      }
      if (senderPub && !samePublicKey(senderPub, pinned)) {
        await this.#keyChanged(sender, pinned, senderPub);
        const other = await importPublicKeyText(senderPub).catch(() => undefined);
        if (other && (await verifyContent(other, sig, fields, ts))) {
          return { verified: true, trusted: false };
        }
      }
      return no;
    }
    const candidate = senderPub ?? this.#advertisedKey(sender);
    if (!candidate) {
      this.#fetchLater(sender);
      return no;
    }
    const key = await importPublicKeyText(candidate).catch(() => undefined);
    if (!key || !(await verifyContent(key, sig, fields, ts))) return no;
    await this.observeKey(sender, candidate);
    return { verified: true, trusted: true };
  }

  /** Pins a first-seen key; warns loudly when a different key shows up for a pinned user. */
  async observeKey(userId: string, text: string): Promise<"pinned" | "same" | "changed" | "bad"> {
    let normalized: string;
    try {
      normalized = encodePublicKey(await importPublicKeyText(text));
    } catch (e) {
      this.#log.debug(`unusable key for ${userId} ignored: ${errorMessage(e)}`);
      return "bad";
    }
    if (userId === this.#me.userId) return samePublicKey(normalized, this.#myPub) ? "same" : "bad";
    const pinned = this.#trust.userKey(userId);
    if (!pinned) {
      this.#trust.pinUserKey(userId, normalized);
      this.#log.debug(`pinned key of ${userId}`);
      return "pinned";
    }
    if (samePublicKey(pinned, normalized)) return "same";
    await this.#keyChanged(userId, pinned, normalized);
    return "changed";
  }

  /** The key to encrypt for a user: pinned, else advertised (then pinned), else requested. */
  async keyFor(userId: string): Promise<PublicKey> {
    if (userId === this.#me.userId) return this.#me.keys.publicKey;
    let pinned = this.#trust.userKey(userId);
    if (!pinned) {
      const advertised = this.#advertisedKey(userId);
      if (advertised) await this.observeKey(userId, advertised);
      pinned = this.#trust.userKey(userId);
    }
    if (!pinned && !this.#connection.ready) {
      throw new CommandError(
        `No key known for ${this.#who(userId)} yet, and the client is not connected; ` +
          `try again once it reconnected`,
      );
    }
    if (!pinned) {
      const reply = await this.#request(userId);
      pinned = this.#trust.userKey(userId);
      if (!pinned) {
        throw new CommandError(
          reply?.type === "ERROR"
            ? `${this.#who(userId)} is not known to the server`
            : `No public key for ${this.#who(userId)}; is the user online?`,
        );
      }
    }
    try {
      return await importPublicKeyText(pinned);
    } catch (e) {
      throw new CommandError(
        `The key pinned for ${this.#who(userId)} is unusable (${
          errorMessage(e)
        }); remove "${userId}" from "known_keys"${this.#configHint}`,
      );
    }
  }

  async #keyChanged(userId: string, oldText: string, newText: string): Promise<void> {
    const id = `${userId}\n${newText}`;
    if (this.#warned.has(id)) return;
    this.#warned.add(id);
    this.#emit({
      event: "warn",
      text: `KEY CHANGED for ${this.#who(userId, true)}! old fp ${await fingerprintOf(
        oldText,
      )}, new fp ${await fingerprintOf(newText)}; messages from this key are NOT trusted, ` +
        `and messages to this user still use the old key. If the change is expected, remove ` +
        `"${userId}" from "known_keys"${this.#configHint}`,
    });
  }

  #request(userId: string): Promise<Frame | undefined> {
    return this.#connection.request("PUBKEY_REQUEST", { user_id: userId }, (f) => {
      if (f.type === "PUBKEY_RESPONSE") return f.p.user_id === userId;
      if (f.type !== "ERROR" || f.p.code !== "USER_NOT_FOUND") return false;
      const detail = f.p.detail ?? "";
      return detail.includes(userId) || !UUID_IN_TEXT.test(detail);
    });
  }

  #fetchLater(userId: string): void {
    if (this.#requests.has(userId) || !this.#connection.ready) return;
    this.#requests.add(userId);
    this.#request(userId).catch(() => {}).finally(() => this.#requests.delete(userId));
  }
}
