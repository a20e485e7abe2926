/**
 * Server keys, trust on first use per server URL: loading the pin before USER_HELLO, judging the
 * USER_HELLO_OK ACK against it (pin a first key, refuse a changed one loudly, never re-pin), and
 * pinning the other servers of the group the ACK names (`payload.group`).
 *
 * @module
 */

import {
  encodePublicKey,
  type Envelope,
  fingerprint,
  importPublicKeyText,
  isObject,
  type JsonObject,
  type PublicKey,
  samePublicKey,
  verifyEnvelope,
} from "../shared/mod.ts";
import { errorMessage } from "./_util.ts";
import { HelloError } from "./errors.ts";
import { type EventSink, shortId } from "./events.ts";
import { type Logger, silentLogger } from "./logger.ts";
import type { TrustStore } from "./trust_store.ts";

/** One other server of the operator's server group, from the USER_HELLO_OK ACK. */
export interface ServerGroupMember {
  /** The server's id; empty when the server naming it did not know it yet. */
  server_id: string;
  /** Its ws:// or wss:// URL. */
  url: string;
  /** Its key (base64url SPKI). */
  pubkey: string;
}

/** A server's pinned key and id. */
export interface PinnedServer {
  /** The key every frame from the server must be signed with. */
  key: PublicKey;
  /** The server's id (empty when pinned from a group list that did not know it). */
  serverId: string;
}

/** What to do with a USER_HELLO_OK ACK. */
export type AckVerdict =
  /** Go on; with `server`, the key (now pinned) every frame must be signed with. */
  | { verdict: "accept"; server?: PinnedServer }
  /** Ignore this ACK (its signature does not check out); a warning was reported. */
  | { verdict: "drop" }
  /** The server presents another key than the one pinned: refuse it. */
  | { verdict: "refuse"; error: HelloError };

/** Options for {@linkcode ServerPins}. */
export interface ServerPinsOptions {
  /** Where pins live. */
  trust: TrustStore;
  /** Receives the notice of a new pin and warnings. */
  onEvent: EventSink;
  /** Debug logger. */
  log?: Logger;
  /** Config file path, named in messages that tell the user how to fix a pin. */
  configPath?: string;
}

/**
 * The server side of trust on first use.
 *
 * @example
 * ```ts ignore
 * const pins = new ServerPins({ trust, onEvent });
 * const pinned = await pins.pinned(url);          // before USER_HELLO
 * const verdict = await pins.judgeAck(url, ack, pinned?.key);
 * ```
 */
export class ServerPins {
  #trust: TrustStore;
  #emit: EventSink;
  #log: Logger;
  #configHint: string;
  #configPath: string | undefined;

  /** Creates the pin book over a trust store. */
  constructor(options: ServerPinsOptions) {
    this.#trust = options.trust;
    this.#emit = options.onEvent;
    this.#log = options.log ?? silentLogger;
    this.#configHint = configHint(options.configPath);
    this.#configPath = options.configPath;
  }

  /** The key pinned for a URL, if any; throws HelloError `CONFIG` for an unusable pin. */
  async pinned(url: string): Promise<PinnedServer | undefined> {
    const pin = this.#trust.serverPin(url);
    if (!pin) return undefined;
    try {
      return { key: await importPublicKeyText(pin.pubkey), serverId: pin.server_id };
    } catch (e) {
      throw new HelloError(
        "CONFIG",
        `The server key pinned for ${url}${this.#configHint} is invalid (${
          errorMessage(e)
        }); remove "${url}" from "servers" there`,
      );
    }
  }

  /**
   * Judges the ACK from the server at `url`: its `server_pub` must be the pinned key (a first
   * key is pinned and announced) and sign the ACK; an ACK without a key must be signed by the
   * pinned key, if any.
   */
  async judgeAck(
    url: string,
    env: Envelope,
    pinnedKey: PublicKey | undefined,
  ): Promise<AckVerdict> {
    const p = env.payload;
    const serverPub = typeof p["server_pub"] === "string" && p["server_pub"]
      ? p["server_pub"]
      : undefined;
    const serverId = typeof p["server_id"] === "string" && p["server_id"]
      ? p["server_id"]
      : env.from;
    const pin = this.#trust.serverPin(url);
    if (serverPub === undefined) {
      if (pinnedKey && !(await verifyEnvelope(pinnedKey, env))) {
        return this.#drop("Dropped the server's ACK: it is not signed by the pinned server key");
      }
      return { verdict: "accept" };
    }
    if (pin && !samePublicKey(pin.pubkey, serverPub)) {
      const old = await fingerprintOf(pin.pubkey);
      const now = await fingerprintOf(serverPub);
      return {
        verdict: "refuse",
        error: new HelloError(
          "SERVER_KEY_CHANGED",
          `SERVER KEY CHANGED for ${url}! Pinned key fp ${old}, the server now presents fp ${now}. ` +
            `This may be an attack (or the server got a new key); refusing to continue. If the ` +
            `operator confirms the new key (fp ${now}), forget the old one: ` +
            forgetHint(this.#configPath, url),
        ),
      };
    }
    let key: PublicKey;
    try {
      key = await importPublicKeyText(serverPub);
    } catch (e) {
      this.#warn(`The server's ACK carries an unusable key (${errorMessage(e)}); ignoring it`);
      return { verdict: "accept" };
    }
    if (!(await verifyEnvelope(key, env))) {
      return this.#drop("Dropped the server's ACK: it is not signed by the key it carries");
    }
    if (!pin) {
      this.#trust.pinServer(url, { server_id: serverId, pubkey: encodePublicKey(key) });
      const fp = await fingerprint(key);
      const forgotten = this.#trust.forgottenServerPin?.(url);
      const before = forgotten === undefined
        ? ""
        : samePublicKey(forgotten.pubkey, serverPub)
        ? "; it is the same key as the one forgotten"
        : `, replacing the forgotten key fp ${await fingerprintOf(forgotten.pubkey)}`;
      this.#emit({
        event: "info",
        text: `Pinned the key of server ${shortId(serverId)} (fp ${fp}) for ${url}${before}`,
      });
    } else if (pin.server_id !== serverId) {
      this.#log.debug(`server id for ${url} is now ${serverId} (same key)`);
      this.#trust.pinServer(url, { server_id: serverId, pubkey: pin.pubkey });
    }
    return { verdict: "accept", server: { key, serverId } };
  }

  /**
   * `payload.group` of a verified ACK: the other servers of the operator's group
   * (`{server_id?, url, pubkey}`). Their keys are pinned per URL when not pinned yet (a different
   * pinned key is kept, with a warning; an id not given is learnt from that server's own ACK).
   * Absent or malformed entries are ignored.
   */
  learnGroup(payload: JsonObject): ServerGroupMember[] {
    const raw = payload["group"];
    if (!Array.isArray(raw)) return [];
    const members: ServerGroupMember[] = [];
    for (const item of raw.slice(0, 32)) {
      if (!isObject(item)) continue;
      const { server_id, url, pubkey } = item;
      if (typeof pubkey !== "string" || pubkey.length === 0) continue;
      const normal = typeof url === "string" ? normalizeWsUrl(url) : undefined;
      const id = typeof server_id === "string" ? server_id : "";
      if (normal !== undefined) members.push({ server_id: id, url: normal, pubkey });
    }
    for (const m of members) {
      const pin = this.#trust.serverPin(m.url);
      if (!pin) {
        this.#trust.pinServer(m.url, { server_id: m.server_id, pubkey: m.pubkey });
      } else if (!samePublicKey(pin.pubkey, m.pubkey)) {
        this.#warn(
          `The server group lists ${m.url} with another key than the one pinned for it; ` +
            `keeping the pin`,
        );
      }
    }
    return members;
  }

  #drop(warning: string): AckVerdict {
    this.#warn(warning);
    return { verdict: "drop" };
  }

  #warn(text: string): void {
    this.#emit({ event: "warn", text });
  }
}

/**
 * The command that forgets the key pinned for `url` (the client shows both fingerprints when it
 * pins the server's key again).
 *
 * @example
 * ```ts
 * import { forgetHint } from "./server_pins.ts";
 * console.assert(forgetHint("a.json", "ws://h:1") === 'socp client "a.json" --forget-server-key ws://h:1');
 * ```
 */
export function forgetHint(configPath: string | undefined, url: string): string {
  return `socp client ${
    configPath ? `"${configPath}"` : "<config.json>"
  } --forget-server-key ${url}`;
}

/** ` in "<path>"`, or ` in the config file`: where a pin can be fixed. */
export function configHint(configPath: string | undefined): string {
  return configPath ? ` in "${configPath}"` : " in the config file";
}

/**
 * A ws:// or wss:// URL in the form pins are stored under (no bare trailing slash), or
 * undefined for anything else.
 *
 * @example
 * ```ts
 * import { normalizeWsUrl } from "./server_pins.ts";
 * console.assert(normalizeWsUrl("ws://127.0.0.1:8765/") === "ws://127.0.0.1:8765");
 * console.assert(normalizeWsUrl("http://x") === undefined);
 * ```
 */
export function normalizeWsUrl(text: string): string | undefined {
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    return undefined;
  }
  if (url.protocol !== "ws:" && url.protocol !== "wss:") return undefined;
  return url.pathname === "/" && url.search === "" ? `${url.protocol}//${url.host}` : url.href;
}

/**
 * The fingerprint of a key given as text, or `(invalid key)`.
 *
 * @example
 * ```ts
 * import { fingerprintOf } from "./server_pins.ts";
 * console.assert((await fingerprintOf("not a key")) === "(invalid key)");
 * ```
 */
export async function fingerprintOf(text: string): Promise<string> {
  try {
    return await fingerprint(await importPublicKeyText(text));
  } catch {
    return "(invalid key)";
  }
}
