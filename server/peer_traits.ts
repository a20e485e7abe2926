/**
 * What socp learns about each peer from the wire, and how it answers in kind
 * (docs/protocol.md, "Talking to other implementations"): the capabilities a socp server
 * announces (`payload.socp.caps`), the key encoding a peer writes, how a peer relays user frames
 * other than DMs, and an ordered sender that re-issues frames whose keys must be written
 * differently for one peer.
 *
 * @module
 */

import {
  type Envelope,
  isObject,
  type JsonObject,
  type KeyEncoding,
  keyEncodingOf,
  parseEnvelope,
  rewriteKeyFields,
} from "../shared/mod.ts";

/**
 * Capabilities every socp server announces in `payload.socp.caps` of its SERVER_HELLO_*,
 * SERVER_WELCOME, SERVER_ANNOUNCE and its USER_HELLO_OK ACK. A peer without them is another
 * implementation: it gets no socp-only frames, and keys and relays in its own forms.
 */
export const SOCP_CAPS: readonly string[] = [
  // PUBLIC_CHANNEL_ADD / _UPDATED / _KEY_SHARE with socp's wraps (RSA-OAEP of a group key).
  "public-channel-wraps",
  // SERVER_DELIVER {inner_type} for public messages and files.
  "relay-inner-type",
  // Server-to-server PUBKEY_REQUEST / PUBKEY_RESPONSE.
  "pubkey-forward",
  // Transport `sig` from proven users is required.
  "signed-user-frames",
];

/** The `socp` payload member a socp server adds to its handshake frames and hello ACK. */
export function socpMarker(): JsonObject {
  return { caps: [...SOCP_CAPS] };
}

/** The capabilities a frame's payload announces, or undefined when it is not from socp. */
export function capsOf(payload: JsonObject): Set<string> | undefined {
  const marker = payload["socp"];
  if (!isObject(marker)) return undefined;
  const caps = marker["caps"];
  return new Set(Array.isArray(caps) ? caps.filter((c): c is string => typeof c === "string") : []);
}

/**
 * How a peer server wants user frames other than DMs (public messages, files) relayed:
 * `inner` = SERVER_DELIVER with `inner_type` (socp); `wrapped` = SERVER_DELIVER carrying the
 * whole user envelope `{user_id, type, from, to, ts, payload}`; `raw` = the user frame itself,
 * signed by the relaying server with `from` kept as the user.
 */
export type RelayForm = "inner" | "wrapped" | "raw";

/**
 * The relay form a peer uses itself, from a frame it relayed to us; undefined when the frame
 * says nothing.
 */
export function relayFormOf(env: Envelope): RelayForm | undefined {
  if (env.type === "SERVER_DELIVER") {
    if (typeof env.payload["inner_type"] === "string") return "inner";
    if (isObject(env.payload["payload"]) && typeof env.payload["type"] === "string") {
      return "wrapped";
    }
    return undefined;
  }
  return ["MSG_PUBLIC_CHANNEL", "FILE_START", "FILE_CHUNK", "FILE_END"].includes(env.type) &&
      /^[0-9a-f]{8}-[0-9a-f]{4}-/i.test(env.to)
    ? "raw"
    : undefined;
}

/** What socp knows of one peer server. */
export interface PeerTraits {
  /** Capabilities from its `socp` marker; undefined for another implementation. */
  caps: Set<string> | undefined;
  /** How it writes keys (and so how keys are written to it). */
  keyEncoding: KeyEncoding;
  /** How to relay public messages and files to it. */
  relayForm: RelayForm;
  /** The relay form was seen on the wire (not guessed from the handshake). */
  relayFormLearned: boolean;
}

/**
 * Traits of a peer from its handshake: a socp marker makes it socp (DER, `inner`); otherwise
 * the key encoding is that of the key it sent, and the relay form a first guess: `wrapped` for a
 * peer writing keys as PEM text (it wraps envelopes), `raw` for any other (it relays user
 * frames as they are), until the peer's own relays show otherwise.
 */
export function handshakeTraits(
  payload: JsonObject,
  keyText: string | undefined,
  forced?: KeyEncoding,
): PeerTraits {
  const caps = capsOf(payload);
  if (caps !== undefined) {
    return { caps, keyEncoding: "der", relayForm: "inner", relayFormLearned: false };
  }
  const keyEncoding = forced ?? (keyText === undefined ? "der" : keyEncodingOf(keyText));
  return {
    caps: undefined,
    keyEncoding,
    relayForm: keyEncoding === "pem" ? "wrapped" : "raw",
    relayFormLearned: false,
  };
}

/** Frame types only socp servers understand in socp's form. */
const SOCP_ONLY = /"type"\s*:\s*"PUBLIC_CHANNEL_(ADD|UPDATED|KEY_SHARE)"/;

/** True for a frame (JSON text) that only socp servers should get. */
export function isSocpOnly(text: string): boolean {
  return SOCP_ONLY.test(text.slice(0, 120));
}

/** True when a frame (JSON text) may carry a key whose encoding matters. */
export function mayCarryKey(text: string): boolean {
  return text.includes('"pubkey"') || text.includes('"sender_pub"') ||
    text.includes('"server_pub"') || text.includes('"creator_pub"');
}

/**
 * Re-issues a frame with its keys written in `encoding` (signing is the caller's: a frame
 * whose payload changes must be signed again). Returns the text unchanged when no key changed.
 */
export async function withKeysIn(
  text: string,
  encoding: KeyEncoding,
  reissue: (fields: Omit<Envelope, "sig">) => Promise<string>,
): Promise<string> {
  let env: Envelope;
  try {
    env = parseEnvelope(text, { maxBytes: 16 << 20 });
  } catch {
    return text;
  }
  const { payload, changed } = rewriteKeyFields(env.payload, encoding);
  if (!changed) return text;
  return await reissue({ type: env.type, from: env.from, to: env.to, ts: env.ts, payload });
}

/**
 * Sends frames in order, some of them only after an async step (a re-issue): while one is
 * pending, later frames wait behind it.
 */
export class OrderedSender {
  #send: (text: string) => void;
  #tail: Promise<void> = Promise.resolve();
  #pending = 0;

  /** Creates a sender over a synchronous `send`. */
  constructor(send: (text: string) => void) {
    this.#send = send;
  }

  /** Sends `text`, or the result of `step` once it resolves, after everything before it. */
  push(text: string, step?: (text: string) => Promise<string>): void {
    if (step === undefined && this.#pending === 0) {
      this.#send(text);
      return;
    }
    this.#pending++;
    const ready = step ? step(text).catch(() => text) : Promise.resolve(text);
    this.#tail = this.#tail.then(async () => {
      try {
        this.#send(await ready);
      } catch {
        // the transport closed meanwhile
      } finally {
        this.#pending--;
      }
    });
  }

  /** Resolves once everything pushed so far was sent. */
  flushed(): Promise<void> {
    return this.#tail;
  }
}
