/**
 * Sending text end-to-end encrypted and signed (private to client/): shared by direct and
 * public messages.
 *
 * @module
 */

import {
  type ContentFields,
  encryptText,
  type JsonObject,
  type PublicKey,
  signContent,
} from "../shared/mod.ts";
import type { Connection, Identity, SigVariantChoice } from "./connection.ts";

/** What {@linkcode sendContent} needs. */
export interface ContentSender {
  /** The sender. */
  identity: Identity;
  /** Where the frame goes. */
  connection: Connection;
  /** content_sig variant to sign with (`auto`: chosen per server, see connection.ts). */
  sigVariant: SigVariantChoice;
}

/**
 * Encrypts `text` for `key`, signs it (content_sig; public messages without `to`) and sends
 * it as one MSG_DIRECT or MSG_PUBLIC_CHANNEL frame: `"queued"` when it waits for a reconnect.
 */
export async function sendContent(
  sender: ContentSender,
  frame: {
    type: "MSG_DIRECT" | "MSG_PUBLIC_CHANNEL";
    to: string;
    key: PublicKey;
    text: string;
    extra?: JsonObject;
    /** OAEP label (Group 17's public form); none by default. */
    label?: Uint8Array;
  },
): Promise<"sent" | "queued"> {
  const { identity: me, connection } = sender;
  const { type, to, key, text } = frame;
  const ciphertext = await encryptText(key, text, frame.label);
  const ts = connection.nextTs();
  const fields: ContentFields = type === "MSG_DIRECT"
    ? { ciphertext, from: me.userId, to, ts }
    : { ciphertext, from: me.userId, ts };
  const variant = connection.contentSigVariant(sender.sigVariant);
  const content_sig = await signContent(me.keys.privateKey, fields, variant);
  return await connection.sendEnvelope({
    type,
    from: me.userId,
    to,
    ts,
    payload: {
      ciphertext,
      // `sender` too: some servers require it in MSG_DIRECT (others ignore it).
      sender: me.userId,
      sender_pub: connection.ownKeyText,
      content_sig,
      ...frame.extra,
    },
  });
}
