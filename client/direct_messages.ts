/**
 * Direct messages: `/tell` (MSG_DIRECT, end-to-end encrypted for the recipient and signed by
 * the sender, split into OAEP-sized pieces) and incoming USER_DELIVER (or a relayed MSG_DIRECT),
 * decrypted, checked against the sender's pinned key, and shown once even when it arrives again.
 *
 * @module
 */

import { decryptText, splitForOaep } from "../shared/mod.ts";
import { sendContent } from "./_content.ts";
import { sentTime, shownText, splitAction } from "./chat_format.ts";
import { ReplayCache } from "./_util.ts";
import type { Connection, Identity, SigVariantChoice } from "./connection.ts";
import { CommandError } from "./errors.ts";
import type { EventSink } from "./events.ts";
import { type Logger, silentLogger } from "./logger.ts";
import type { Presence } from "./presence.ts";
import type { QueuedAcks } from "./queued_acks.ts";
import type { ContentCheck, UserKeys } from "./user_keys.ts";

/** An incoming direct message, from USER_DELIVER or a relayed MSG_DIRECT. */
export interface IncomingDirect {
  /** The original sender. */
  sender: string;
  /** base64url RSA-OAEP ciphertext for us. */
  ciphertext: string;
  /** The key the sender signed with, if the frame says. */
  senderPub?: string | undefined;
  /** The content signature. */
  contentSig?: string | undefined;
  /** Candidate timestamps of the signature, in order of preference. */
  tsList: (number | undefined)[];
}

/** Options for {@linkcode DirectMessages}. */
export interface DirectMessagesOptions {
  /** The user. */
  identity: Identity;
  /** Where frames go. */
  connection: Connection;
  /** Finds recipients and names senders. */
  presence: Presence;
  /** Recipient keys and signature checks. */
  keys: UserKeys;
  /** ACK QUEUED for offline recipients. */
  queued: QueuedAcks;
  /** Receives `dm`, `sent`, `queued` and warning events. */
  onEvent: EventSink;
  /** content_sig variant to sign with (`auto`: chosen per server). */
  sigVariant: SigVariantChoice;
  /** Debug logger. */
  log?: Logger;
  /**
   * Sees each decrypted DM first; returning true takes it (a private-chat control message,
   * see private_chat.ts) and it is not shown as a DM.
   */
  divert?: (sender: string, text: string, check: ContentCheck) => boolean;
}

/**
 * Sends and receives direct messages.
 *
 * @example
 * ```ts ignore
 * const dms = new DirectMessages({ identity, connection, presence, keys, queued, onEvent,
 *   sigVariant: "A" });
 * await dms.send("bob", "hi");
 * ```
 */
export class DirectMessages {
  #o: DirectMessagesOptions;
  #log: Logger;
  #seen: ReplayCache = new ReplayCache();

  /** Creates the feature. */
  constructor(options: DirectMessagesOptions) {
    this.#o = options;
    this.#log = options.log ?? silentLogger;
  }

  /** `/tell`: sends `text` as one or more MSG_DIRECT frames. */
  async send(target: string, text: string): Promise<void> {
    const { connection, presence, keys, queued } = this.#o;
    connection.requireOpen();
    if (text.length === 0) throw new CommandError("Nothing to send");
    const to = await presence.findUser(target);
    const key = await keys.keyFor(to);
    const pieces = splitForOaep(text);
    const sentAt = Date.now();
    const watch = queued.watch(to);
    try {
      let queued = false;
      for (const piece of pieces) {
        const how = await sendContent(this.#o, { type: "MSG_DIRECT", to, key, text: piece });
        if (how === "queued") queued = true;
      }
      // For a user who is not online, wait for the server's verdict (ACK QUEUED or an error),
      // so the user hears once per message that it was queued.
      if (watch) await connection.barrier();
      this.#o.onEvent({
        event: "sent",
        kind: "dm",
        to,
        to_name: presence.nameOf(to),
        recipients: 1,
        parts: pieces.length,
        ...(queued ? { pending: true } : {}),
        ts: sentAt,
        ...shownText(text, this.#o.identity.displayName),
      });
      if (watch && watch.acks > 0) {
        this.#o.onEvent({ event: "queued", kind: "dm", to, to_name: presence.nameOf(to) });
      }
    } finally {
      queued.unwatch(watch);
    }
  }

  /** Shows an incoming direct message once (repeats, e.g. resent after a reconnect, are dropped). */
  async receive(m: IncomingDirect): Promise<void> {
    const { identity: me, presence, keys } = this.#o;
    if (this.#seen.isReplay(m.contentSig ?? m.ciphertext)) {
      return this.#log.debug("replayed DM dropped");
    }
    let text: string;
    try {
      text = await decryptText(me.keys.privateKey, m.ciphertext);
    } catch {
      this.#o.onEvent({
        event: "warn",
        text: `could not decrypt a message from ${presence.who(m.sender)}`,
      });
      return;
    }
    const check = await keys.verifyContent(m.sender, m.senderPub, m.contentSig, {
      ciphertext: m.ciphertext,
      from: m.sender,
      to: me.userId,
    }, m.tsList);
    if (this.#o.divert?.(m.sender, text, check)) return;
    const { text: body, action } = splitAction(text);
    const ts = sentTime(m.tsList, Date.now());
    // A sender without a known name (e.g. a message queued for this new config) is named by
    // the server first.
    presence.showNamed(m.sender, () => ({
      event: "dm",
      from: m.sender,
      from_name: presence.nameOf(m.sender),
      text: body,
      ...check,
      ts,
      ...(action ? { action: true } : {}),
    }));
  }
}
