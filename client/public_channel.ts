/**
 * The public channel: `/all` (one MSG_PUBLIC_CHANNEL per other online member, encrypted for
 * each), incoming public messages (encrypted, or the base64url plaintext of other clients,
 * shown once), and unwrapping the channel key the server shares, to check it.
 *
 * @module
 */

import {
  decodeBase64Url,
  decryptBlock,
  decryptText,
  type Envelope,
  type KeyWrap,
  type PublicKey,
  publicMessageLabels,
  publicVersionLabel,
  splitForOaep,
} from "../shared/mod.ts";
import { sendContent } from "./_content.ts";
import { sentTime, shownText, splitAction } from "./chat_format.ts";
import { errorMessage, numberField, ReplayCache } from "./_util.ts";
import type { Connection, Identity, SigVariantChoice } from "./connection.ts";
import { CommandError } from "./errors.ts";
import type { EventSink } from "./events.ts";
import { type Logger, silentLogger } from "./logger.ts";
import type { Presence } from "./presence.ts";
import type { UserKeys } from "./user_keys.ts";

/** A MSG_PUBLIC_CHANNEL payload as the client reads it. */
export interface PublicPayload {
  ciphertext: string;
  sender_pub?: string;
  content_sig?: string;
  sender?: string;
}

/** Options for {@linkcode PublicChannel}. */
export interface PublicChannelOptions {
  /** The user. */
  identity: Identity;
  /** Where frames go. */
  connection: Connection;
  /** The members (everyone online) and their names. */
  presence: Presence;
  /** Recipient keys and signature checks. */
  keys: UserKeys;
  /** Receives `all`, `sent`, info and warning events. */
  onEvent: EventSink;
  /** content_sig variant to sign with (`auto`: chosen per server). */
  sigVariant: SigVariantChoice;
  /** Debug logger. */
  log?: Logger;
}

/**
 * Sends and receives public messages.
 *
 * @example
 * ```ts ignore
 * const channel = new PublicChannel({ identity, connection, presence, keys, onEvent,
 *   sigVariant: "A" });
 * await channel.send("hello everyone");
 * ```
 */
export class PublicChannel {
  #o: PublicChannelOptions;
  #log: Logger;
  #seen: ReplayCache = new ReplayCache();
  #version: number | undefined;
  /** Channel keys unwrapped, by version (Group 17 derives its message labels from them). */
  #groupKeys: Map<number, Uint8Array> = new Map();

  /** Creates the feature. */
  constructor(options: PublicChannelOptions) {
    this.#o = options;
    this.#log = options.log ?? silentLogger;
  }

  /** The channel key version last unwrapped, if any. */
  get version(): number | undefined {
    return this.#version;
  }

  /** `/all`: sends `text` to every other online user, encrypted for each. */
  async send(text: string): Promise<void> {
    const { connection, presence, keys } = this.#o;
    connection.requireOpen();
    if (text.length === 0) throw new CommandError("Nothing to send");
    const members = presence.others();
    if (members.length === 0) {
      this.#o.onEvent({ event: "info", text: "No one else is online; the message was not sent" });
      return;
    }
    const pieces = splitForOaep(text);
    const sentAt = Date.now();
    let sent = 0;
    let queued = false;
    for (const to of members) {
      let key: PublicKey;
      try {
        key = await keys.keyFor(to);
      } catch (e) {
        this.#o.onEvent({
          event: "warn",
          text: `Public message not sent to ${presence.who(to)}: ${errorMessage(e)}`,
        });
        continue;
      }
      for (const piece of pieces) {
        const how = await sendContent(this.#o, {
          type: "MSG_PUBLIC_CHANNEL",
          to,
          key,
          text: piece,
          extra: { group_id: "public" },
        });
        if (how === "queued") queued = true;
      }
      sent++;
    }
    if (sent === 0) throw new CommandError("The public message reached nobody");
    this.#o.onEvent({
      event: "sent",
      kind: "all",
      to: "public",
      to_name: "public",
      recipients: sent,
      parts: pieces.length,
      ...(queued ? { pending: true } : {}),
      ts: sentAt,
      ...shownText(text, this.#o.identity.displayName),
    });
  }

  /** Shows an incoming public message once; our own are ignored. */
  async receive(p: PublicPayload, env: Envelope): Promise<void> {
    const { identity: me, presence, keys } = this.#o;
    const sender = p.sender ?? env.from;
    if (sender === me.userId) return this.#log.debug("own public message ignored");
    if (this.#seen.isReplay(p.content_sig ?? p.ciphertext)) {
      return this.#log.debug("replayed public message dropped");
    }
    let text: string;
    let encrypted = true;
    try {
      text = await this.#decrypt(p.ciphertext, env.payload["public_version"]);
    } catch {
      try {
        text = new TextDecoder("utf-8", { fatal: true }).decode(decodeBase64Url(p.ciphertext));
        encrypted = false;
      } catch {
        this.#o.onEvent({
          event: "warn",
          text: `could not decrypt a public message from ${presence.who(sender)}`,
        });
        return;
      }
    }
    const tsList = [
      numberField(env.payload, "msg_ts"),
      numberField(env.payload, "orig_ts"),
      env.ts,
    ];
    const check = await keys.verifyContent(
      sender,
      p.sender_pub,
      p.content_sig,
      { ciphertext: p.ciphertext, from: sender },
      tsList,
    );
    const { text: body, action } = splitAction(text);
    const ts = sentTime(tsList, Date.now());
    presence.showNamed(sender, () => ({
      event: "all",
      from: sender,
      from_name: presence.nameOf(sender),
      text: body,
      encrypted,
      ...check,
      ts,
      ...(action ? { action: true } : {}),
    }));
  }

  /**
   * Decrypts a public message: without an OAEP label (socp), else with the labels of Group 17's
   * public form for the message's `public_version` (or every channel key version known).
   */
  async #decrypt(ciphertext: string, publicVersion: unknown): Promise<string> {
    const key = this.#o.identity.keys.privateKey;
    try {
      return await decryptText(key, ciphertext);
    } catch (first) {
      const versions = typeof publicVersion === "number" && Number.isSafeInteger(publicVersion)
        ? [publicVersion]
        : [...this.#groupKeys.keys()];
      for (const v of versions) {
        for (const label of await publicMessageLabels(v, this.#groupKeys.get(v))) {
          try {
            return await decryptText(key, ciphertext, label);
          } catch {
            // the next label
          }
        }
      }
      throw first;
    }
  }

  /**
   * PUBLIC_CHANNEL_UPDATED / KEY_SHARE: unwraps our share of the channel key (socp's without an
   * OAEP label, Group 17's with the label `public-v{version}`), to check it and, for Group 17's
   * public form, to derive the labels of its messages.
   */
  async onKeyWraps(wraps: KeyWrap[], version: number | undefined): Promise<void> {
    const mine = wraps.find((w) => w.member_id === this.#o.identity.userId);
    if (!mine) return;
    try {
      const key = await decryptBlock(this.#o.identity.keys.privateKey, mine.wrapped_key).catch(
        (e) => {
          if (version === undefined) throw e;
          return decryptBlock(
            this.#o.identity.keys.privateKey,
            mine.wrapped_key,
            publicVersionLabel(version),
          );
        },
      );
      if (key.length !== 32) {
        return this.#log.debug(`public channel key has ${key.length} bytes, not 32; ignored`);
      }
      if (version !== undefined) {
        this.#version = version;
        this.#groupKeys.set(version, key);
        if (this.#groupKeys.size > 8) this.#groupKeys.delete(this.#groupKeys.keys().next().value!);
      }
      this.#log.debug(`public channel key version ${version ?? "?"} unwrapped`);
    } catch {
      this.#log.debug("public channel key wrap could not be decrypted; ignored");
    }
  }
}
