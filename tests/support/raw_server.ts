/**
 * A scripted SOCP *server* peer in the test process, for hostile federation tests:
 * {@linkcode RawServer} is a {@linkcode RawConnection} that links to a real server with
 * SERVER_HELLO_LINK under a fixture key and then sends whatever frames a test scripts, honestly
 * signed with that key, signed with another key, with a garbage signature, or unsigned.
 *
 * @module
 */

import {
  encodePublicKey,
  type Envelope,
  type JsonObject,
  type KeyPair,
  type PrivateKey,
  serializeEnvelope,
  signedEnvelope,
  type Transport,
} from "../../shared/mod.ts";
import { type FixtureKeyName, fixtureKeyPair } from "../fixtures/keys.ts";
import { type OpenOptions, openTransport, RawConnection } from "./raw_user.ts";

/** How a scripted frame is signed. */
export type SignWith =
  /** With the peer's own key (default). */
  | "self"
  /** Not at all: no `sig` key. */
  | "none"
  /** With another private key. */
  | { key: PrivateKey }
  /** A literal `sig` string (e.g. garbage). */
  | { sig: string };

/** Options for one scripted frame. */
export interface RawServerFrameOptions {
  /** Envelope `from` (default the peer's id). */
  from?: string;
  /** Envelope `ts` (default now). */
  ts?: number;
  /** How to sign (default `"self"`). */
  sign?: SignWith;
}

/** Options for {@linkcode openServerPeer}. */
export interface ServerPeerOptions extends OpenOptions {
  /** The peer's server id (default a fresh UUIDv4). */
  serverId?: string;
}

/** A scripted server peer on one connection. */
export class RawServer extends RawConnection {
  /** The id this peer claims. */
  readonly serverId: string;
  /** Its key pair (a fixture key). */
  readonly keys: KeyPair;
  /** base64url SPKI of its public key. */
  readonly pubkey: string;

  /** Wraps an open transport; prefer {@linkcode openServerPeer}. */
  constructor(
    transport: Transport,
    identity: { serverId: string; keys: KeyPair },
    options: { serverPub?: string } = {},
  ) {
    super(transport, options);
    this.serverId = identity.serverId;
    this.keys = identity.keys;
    this.pubkey = encodePublicKey(identity.keys.publicKey);
  }

  /** Builds a frame from this peer, signed as `options.sign` says. */
  async frame(
    type: string,
    to: string,
    payload: JsonObject,
    options: RawServerFrameOptions = {},
  ): Promise<Envelope> {
    const fields = {
      type,
      from: options.from ?? this.serverId,
      to,
      ts: options.ts ?? Date.now(),
      payload,
    };
    const sign = options.sign ?? "self";
    if (sign === "none") return fields;
    if (sign === "self") return await signedEnvelope(this.keys.privateKey, fields);
    if ("key" in sign) return await signedEnvelope(sign.key, fields);
    return { ...fields, sig: sign.sig };
  }

  /** Builds, signs and sends a frame; returns it. */
  async sendFrame(
    type: string,
    to: string,
    payload: JsonObject,
    options: RawServerFrameOptions = {},
  ): Promise<Envelope> {
    const env = await this.frame(type, to, payload, options);
    this.send(serializeEnvelope(env));
    return env;
  }

  /** The SERVER_HELLO_LINK payload of this peer (`host`/`port` are where nobody listens). */
  helloPayload(overrides: JsonObject = {}): JsonObject {
    return {
      host: "127.0.0.1",
      port: 9,
      pubkey: this.pubkey,
      server_id: this.serverId,
      ...overrides,
    };
  }

  /**
   * Sends a self-signed SERVER_HELLO_LINK to `to` (the real server's id). The server answers
   * nothing on success; it starts sending catch-up frames, so callers await one of those.
   */
  async helloLink(to: string, options: RawServerFrameOptions = {}): Promise<Envelope> {
    return await this.sendFrame("SERVER_HELLO_LINK", to, this.helloPayload(), options);
  }
}

/**
 * Opens a connection to `url` as a server peer with fixture key `keyName` (no frame is sent).
 * Pass `serverPub` to have every frame handed out checked against the real server's key.
 */
export async function openServerPeer(
  url: string,
  keyName: FixtureKeyName,
  options: ServerPeerOptions = {},
): Promise<RawServer> {
  const keys = await fixtureKeyPair(keyName);
  const transport = await openTransport(url, options.timeoutMs);
  return new RawServer(
    transport,
    { serverId: options.serverId ?? crypto.randomUUID(), keys },
    options.serverPub !== undefined ? { serverPub: options.serverPub } : {},
  );
}
