/**
 * The server mesh (spec §7, §10): joining through bootstrap introducers, linking to every
 * server, pinned server keys, signature checks on every server frame, presence gossip,
 * forwarded delivery, loop and replay suppression, heartbeats, and re-dialling dead links.
 *
 * @module
 */

import {
  decodeFrame,
  encodeKeyText,
  encodePublicKey,
  type Envelope,
  type Frame,
  importPublicKeyText,
  isUuid,
  type JsonObject,
  type KeyEncoding,
  keyEncodingOf,
  KeyError,
  parseEnvelope,
  plural,
  ProtocolError,
  type PublicKey,
  samePublicKey,
  type Transport,
  verifyContent,
  verifyEnvelope,
  webSocketTransport,
} from "../shared/mod.ts";
import { type BootstrapEntry, type GroupEntry, loadBootstrap } from "./bootstrap.ts";
import { defaultBootstrapPath, type ServerConfig } from "./config.ts";
import { type Delivery, type DeliveryType, type Hub, isChannelTarget, USER_CAPS } from "./hub.ts";
import { short } from "./log.ts";
import type { GroupServer, LinkStatus, Mesh, MeshStatus } from "./mesh.ts";
import { PeerLink } from "./peer_link.ts";
import {
  capsOf,
  handshakeTraits,
  isSocpOnly,
  type PeerTraits,
  type RelayForm,
  relayFormOf,
  socpMarker,
  withKeysIn,
} from "./peer_traits.ts";
import { relayedContent, seenKey, stripRelayKeys } from "./seen_cache.ts";
import type { SocpServer } from "./server.ts";
import type { Accounts } from "./accounts.ts";
import type { OfflineQueue } from "./offline_queue.ts";
import type { BlockLists } from "./block_lists.ts";
import type { ChatGroups } from "./chat_groups.ts";

/** A server whose key is pinned. */
interface KnownServer {
  serverId: string;
  host: string | undefined;
  port: number | undefined;
  pubkeyText: string;
  pubkey: PublicKey;
  /** How the server writes keys (from the first key text seen for it). */
  encoding: KeyEncoding;
  /** Its socp capabilities, once a handshake showed them (kept for re-dials). */
  caps?: Set<string>;
}

/** How long a server-to-server PUBKEY_REQUEST waits for its answer. */
const PUBKEY_FORWARD_TIMEOUT_MS = 5000;

/** A frame with user content as it came from a link, and the server whose signature it has. */
interface Relayed {
  env: Envelope;
  text: string;
  signer: string | undefined;
}

/** Backoff before re-dial attempt `n` (0-based), in ms. */
export type Backoff = (attempt: number) => number;

/** Exponential backoff from 500 ms to 30 s with ±20 % jitter. */
export const defaultBackoff: Backoff = (attempt) => {
  const base = Math.min(30_000, 500 * 2 ** Math.min(attempt, 10));
  return Math.round(base * (0.8 + Math.random() * 0.4));
};

/** Opens a transport to a ws:// URL; rejects when it cannot connect. */
export type Dialer = (url: string, signal: AbortSignal) => Promise<Transport>;

/** Dials with a WebSocket, waiting for it to open (10 s at most). */
export const webSocketDialer: Dialer = (url, signal) =>
  new Promise((resolve, reject) => {
    let ws: WebSocket;
    try {
      ws = new WebSocket(url);
    } catch (error) {
      reject(error);
      return;
    }
    const transport = webSocketTransport(ws);
    const timer = setTimeout(() => fail(new Error(`Timed out connecting to ${url}`)), 10_000);
    const onAbort = () => fail(new Error("Aborted"));
    signal.addEventListener("abort", onAbort, { once: true });
    const fail = (error: Error) => {
      clearTimeout(timer);
      signal.removeEventListener("abort", onAbort);
      transport.close(1000, "");
      reject(error);
    };
    ws.addEventListener("open", () => {
      clearTimeout(timer);
      signal.removeEventListener("abort", onAbort);
      resolve(transport);
    }, { once: true });
    transport.closed.then(() => fail(new Error(`Could not connect to ${url}`)));
  });

/** Catch-up frames sent at once to a new link, then one every CATCH_UP_INTERVAL_MS. */
const CATCH_UP_BURST = 20;
/** 20 frames/s after the burst: with it, at most 60 frames in any 2 s. */
const CATCH_UP_INTERVAL_MS = 50;

/** Frame types that must carry a valid transport signature from a server. */
const MUST_SIGN: ReadonlySet<string> = new Set([
  "USER_ADVERTISE",
  "USER_REMOVE",
  "SERVER_DELIVER",
  "MSG_PUBLIC_CHANNEL",
  "FILE_START",
  "FILE_CHUNK",
  "FILE_END",
  "PUBLIC_CHANNEL_ADD",
  "PUBLIC_CHANNEL_UPDATED",
  "PUBLIC_CHANNEL_KEY_SHARE",
  "MSG_DIRECT",
  "DIRECTORY_UPDATE",
  "LOGIN_FAILURE",
  "QUEUE_STORE",
  "QUEUE_DONE",
  "BLOCKS_UPDATE",
  "GROUP_UPDATE",
  "PUBKEY_RESPONSE",
]);

/** Options for {@linkcode Federation}. */
export interface FederationOptions {
  /** The routing core. */
  hub: Hub;
  /** Configuration (heartbeat timings, limits, bootstrap path). */
  config: ServerConfig;
  /** This server's port as other servers should dial it. */
  port: () => number;
  /** Opens connections (default WebSocket). */
  dialer?: Dialer;
  /** Re-dial backoff (default {@linkcode defaultBackoff}). */
  backoff?: Backoff;
  /** Account directory (DIRECTORY_UPDATE gossip). */
  accounts?: Accounts;
  /** Offline queues (replicated within the server group). */
  queue?: OfflineQueue;
  /** Block lists (replicated within the server group). */
  blocks?: BlockLists;
  /** Group chats (replicated within the server group). */
  groups?: ChatGroups;
}

/** The mesh of one server. */
export class Federation implements Mesh {
  #hub: Hub;
  #config: ServerConfig;
  #port: () => number;
  #dialer: Dialer;
  #backoff: Backoff;
  #known = new Map<string, KnownServer>();
  #links = new Map<string, PeerLink>();
  /**
   * Further live links to a server that is not socp, kept open instead of closed as duplicates:
   * such a peer does not follow socp's rule for which duplicate survives, and one that loses
   * its link re-dials at once and drops our users meanwhile (Appendix E.1).
   */
  #spares = new Map<string, Set<PeerLink>>();
  /** Answers awaited from servers to forwarded PUBKEY_REQUESTs, by `serverId|userId`. */
  #pubkeyWaiters = new Map<string, ((pubkey: string | undefined) => void)[]>();
  #all = new Set<PeerLink>();
  #redialing = new Set<string>();
  /** A link has come up since start (ends `joining` in {@linkcode status}). */
  #everLinked = false;
  #abort = new AbortController();
  #tasks = new Set<Promise<unknown>>();
  #bootstrap: BootstrapEntry[] = [];
  /** The operator's other servers (`server_group:`), which share private state. */
  #group: GroupEntry[] = [];
  #accounts: Accounts | undefined;
  #queue: OfflineQueue | undefined;
  #blocks: BlockLists | undefined;
  #groups: ChatGroups | undefined;

  /** Creates the mesh; {@linkcode start} joins the network. */
  constructor(options: FederationOptions) {
    this.#hub = options.hub;
    this.#config = options.config;
    this.#port = options.port;
    this.#dialer = options.dialer ?? webSocketDialer;
    this.#backoff = options.backoff ?? defaultBackoff;
    this.#accounts = options.accounts;
    this.#queue = options.queue;
    this.#blocks = options.blocks;
    this.#groups = options.groups;
  }

  get #log() {
    return this.#hub.log;
  }

  get #me(): string {
    return this.#hub.serverId;
  }

  #spawn(task: Promise<unknown>): void {
    const tracked = task.catch((error) => {
      if (!this.#abort.signal.aborted) {
        this.#log.error(`mesh task failed: ${(error as Error).stack}`);
      }
    }).finally(() => this.#tasks.delete(tracked));
    this.#tasks.add(tracked);
  }

  #sleep(ms: number): Promise<boolean> {
    const signal = this.#abort.signal;
    return new Promise((resolve) => {
      if (signal.aborted) return resolve(false);
      const timer = setTimeout(() => {
        signal.removeEventListener("abort", onAbort);
        resolve(true);
      }, ms);
      const onAbort = () => {
        clearTimeout(timer);
        resolve(false);
      };
      signal.addEventListener("abort", onAbort, { once: true });
    });
  }

  // -------------------------------------------------------------------------------------------
  // Mesh interface

  /** Sends to one linked server (a socp-only frame only if it is a socp server). */
  sendToServer(serverId: string, text: string): boolean {
    const link = this.#links.get(serverId);
    if (link === undefined) return false;
    if (!link.socp && isSocpOnly(text)) return true;
    return link.send(text);
  }

  /** Sends to every linked server except one (socp-only frames to socp servers only). */
  broadcast(text: string, exceptServerId?: string): void {
    const socpOnly = isSocpOnly(text);
    for (const [id, link] of this.#links) {
      if (id !== exceptServerId && (link.socp || !socpOnly)) link.send(text);
    }
  }

  /** How public messages and files are relayed to a linked server (see peer_traits.ts). */
  relayForm(serverId: string): RelayForm {
    return this.#links.get(serverId)?.traits.relayForm ?? "inner";
  }

  /** True when the server announced the socp capability `cap`. */
  hasCap(serverId: string, cap: string): boolean {
    return this.#links.get(serverId)?.traits.caps?.has(cap) ?? false;
  }

  /**
   * Asks the server hosting a user for the user's key (a server-to-server PUBKEY_REQUEST, for
   * peers whose USER_ADVERTISE carries no key). Resolves with the key text, or undefined when
   * the server does not know it or does not answer in time.
   */
  async requestPubkey(serverId: string, userId: string): Promise<string | undefined> {
    const link = this.#links.get(serverId);
    if (link === undefined) return undefined;
    const key = `${serverId}|${userId}`;
    const { promise, resolve } = Promise.withResolvers<string | undefined>();
    const list = this.#pubkeyWaiters.get(key) ?? [];
    list.push(resolve);
    this.#pubkeyWaiters.set(key, list);
    if (list.length === 1) {
      link.send(await this.#hub.emit("PUBKEY_REQUEST", serverId, { user_id: userId }));
    }
    const timer = setTimeout(() => this.#answerPubkey(key, undefined), PUBKEY_FORWARD_TIMEOUT_MS);
    try {
      return await promise;
    } finally {
      clearTimeout(timer);
    }
  }

  #answerPubkey(key: string, pubkey: string | undefined): void {
    const list = this.#pubkeyWaiters.get(key);
    if (list === undefined) return;
    this.#pubkeyWaiters.delete(key);
    for (const resolve of list) resolve(pubkey);
  }

  /** The traits of a new link to a known server, before it says anything. */
  #knownTraits(known: KnownServer): PeerTraits {
    if (known.caps !== undefined) {
      return { caps: known.caps, keyEncoding: "der", relayForm: "inner", relayFormLearned: false };
    }
    return handshakeTraits({}, undefined, this.#config.keyEncoding ?? known.encoding);
  }

  /** Applies traits to a link: keys are re-issued in the peer's encoding when it is not DER. */
  #setTraits(link: PeerLink, traits: PeerTraits): void {
    link.traits = traits;
    if (traits.caps === undefined && traits.keyEncoding !== "der") {
      const encoding = traits.keyEncoding;
      link.rewrite = (text) =>
        withKeysIn(text, encoding, (fields) =>
          // A frame of another server re-issued by this one is this server's frame.
          this.#hub.reissue({
            ...fields,
            from: this.#known.has(fields.from) ? this.#me : fields.from,
          }));
    } else {
      link.rewrite = undefined;
    }
    const known = link.serverId === undefined ? undefined : this.#known.get(link.serverId);
    if (known && traits.caps !== undefined) known.caps = traits.caps;
  }

  /** Ids of servers with a live link. */
  linkedServers(): string[] {
    return [...this.#links.keys()];
  }

  /** Every known server with the state of its link, for /readyz and /metrics. */
  status(): MeshStatus {
    const links = [...this.#known.values()].map((k): LinkStatus => ({
      server_id: k.serverId,
      state: this.#links.get(k.serverId)?.state === "up"
        ? "up"
        : this.#redialing.has(k.serverId)
        ? "connecting"
        : "down",
      group: this.#inGroup(k.pubkeyText),
    })).sort((a, b) => (a.server_id < b.server_id ? -1 : 1));
    const peers = this.#known.size + this.#bootstrap.length;
    return { links, joining: !this.#everLinked && peers > 0 };
  }

  /** True when `serverId` is pinned to the key of a server-group member. */
  isGroupServer(serverId: string): boolean {
    const known = this.#known.get(serverId);
    return known !== undefined && this.#inGroup(known.pubkeyText);
  }

  #inGroup(keyText: string): boolean {
    return this.#group.some((g) => samePublicKey(g.pubkey, keyText));
  }

  /** True when a server with this key may link: any in an open federation. */
  #mayLink(keyText: string): boolean {
    if (this.#config.federation === "open") return true;
    return this.#inGroup(keyText) || this.#bootstrap.some((e) => samePublicKey(e.pubkey, keyText));
  }

  /** Sends to every linked server-group member except one. */
  broadcastGroup(text: string, exceptServerId?: string): void {
    for (const [id, link] of this.#links) {
      if (id !== exceptServerId && this.isGroupServer(id)) link.send(text);
    }
  }

  /** The other group servers with an address, for clients to fail over to. */
  groupServers(): GroupServer[] {
    const out: GroupServer[] = [];
    for (const g of this.#group) {
      const known = [...this.#known.values()].find((k) => samePublicKey(k.pubkeyText, g.pubkey));
      const host = g.host ?? known?.host;
      const port = g.port ?? known?.port;
      if (host === undefined || port === undefined) continue;
      const entry: GroupServer = { url: `ws://${host}:${port}`, pubkey: g.pubkey };
      if (known) entry.server_id = known.serverId;
      out.push(entry);
    }
    return out;
  }

  /** Loads pinned peers and the bootstrap list, then joins in the background. */
  async start(): Promise<void> {
    for (const peer of await this.#hub.store.listPeers()) {
      try {
        await this.#register(peer.server_id, peer.pubkey, peer.host, peer.port);
      } catch (error) {
        this.#log.warn(`stored peer ${short(peer.server_id)} skipped: ${(error as Error).message}`);
      }
    }
    const path = this.#config.bootstrapPath ?? defaultBootstrapPath(this.#config.dataDir);
    const file = await loadBootstrap(path);
    const entries = file?.introducers;
    if (file === undefined) {
      if (this.#config.bootstrapPath !== undefined) {
        throw new KeyError(`Bootstrap file ${path} does not exist`);
      }
    }
    const mine = this.#hub.identity.publicKeyText;
    this.#bootstrap = (entries ?? []).filter((e) => !samePublicKey(e.pubkey, mine));
    this.#group = (file?.group ?? []).filter((e) => !samePublicKey(e.pubkey, mine));
    if (this.#group.length > 0) {
      this.#log.info(`server group: this server and ${plural(this.#group.length, "other")}`);
    }
    if (this.#config.federation === "closed") {
      this.#log.info("closed federation: only servers in the bootstrap file may link");
    }
    if (this.#bootstrap.length === 0) {
      this.#log.info(
        this.#known.size > 0
          ? `no introducers; re-linking to ${plural(this.#known.size, "known server")}`
          : "no bootstrap file: running as a standalone first node",
      );
    } else if ((entries?.length ?? 0) < 3) {
      // Counted as listed: a mesh's file names all its servers, this one included.
      const listed = plural(entries?.length ?? 0, "introducer");
      this.#log.warn(`bootstrap file lists ${listed}; SOCP asks for at least 3`);
    }
    if (this.#bootstrap.length > 0) this.#spawn(this.#joinLoop());
    for (const known of this.#known.values()) this.#scheduleRedial(known.serverId, 0);
  }

  /** Closes every link and stops dialling. */
  async [Symbol.asyncDispose](): Promise<void> {
    this.#abort.abort();
    for (const link of this.#all) link.close(1001, "Server shutting down");
    await Promise.allSettled([...this.#tasks]);
  }

  // -------------------------------------------------------------------------------------------
  // Keys

  async #register(
    serverId: string,
    pubkeyText: string,
    host: string | undefined,
    port: number | undefined,
  ): Promise<KnownServer> {
    const existing = this.#known.get(serverId);
    if (existing) {
      if (!samePublicKey(existing.pubkeyText, pubkeyText)) {
        throw new ProtocolError("BAD_KEY", `Server ${serverId} is pinned to a different key`);
      }
      const changed = (host !== undefined && host !== existing.host) ||
        (port !== undefined && port !== existing.port);
      if (host !== undefined) existing.host = host;
      if (port !== undefined) existing.port = port;
      if (changed) await this.#persist(existing);
      return existing;
    }
    let pubkey: PublicKey;
    try {
      pubkey = await importPublicKeyText(pubkeyText);
    } catch (error) {
      throw new ProtocolError(
        "BAD_KEY",
        `Server ${serverId} key rejected: ${(error as Error).message}`,
      );
    }
    const known: KnownServer = {
      serverId,
      host,
      port,
      pubkeyText: encodePublicKey(pubkey),
      pubkey,
      encoding: keyEncodingOf(pubkeyText),
    };
    this.#known.set(serverId, known);
    await this.#persist(known);
    return known;
  }

  async #persist(known: KnownServer): Promise<void> {
    if (known.host === undefined || known.port === undefined) return;
    await this.#hub.store.putPeer({
      server_id: known.serverId,
      host: known.host,
      port: known.port,
      pubkey: known.pubkeyText,
      last_seen: this.#hub.now(),
    });
  }

  /**
   * The id of the server whose key verifies `env.sig`: `signer` when given, or else the first of
   * `env.from`, the link's server and the server hosting the user `env.from` (a channel frame
   * relayed by a third server keeps the signature of the sender's server); `undefined` when none
   * does. This server's own key counts, so an echo of its own frame verifies and is then dropped
   * as a duplicate.
   */
  async #verify(env: Envelope, link: PeerLink, signer?: string): Promise<string | undefined> {
    if (!env.sig) return undefined;
    const ids = signer !== undefined
      ? [signer]
      : [env.from, link.serverId, this.#hub.onlineUser(env.from)?.serverId];
    for (const id of new Set(ids)) {
      if (id === undefined) continue;
      const key = id === this.#me ? this.#hub.identity.publicKey : this.#known.get(id)?.pubkey;
      if (key && await verifyEnvelope(key, env)) return id;
    }
    return undefined;
  }

  // -------------------------------------------------------------------------------------------
  // Handshakes

  #helloPayload(): JsonObject {
    return {
      host: this.#config.advertiseHost,
      port: this.#port(),
      pubkey: this.#hub.identity.publicKeyText,
      server_id: this.#me,
      socp: socpMarker(),
    };
  }

  #welcomeEntries(except: string): JsonObject[] {
    const out: JsonObject[] = [{
      server_id: this.#me,
      user_id: this.#me,
      host: this.#config.advertiseHost,
      port: this.#port(),
      pubkey: this.#hub.identity.publicKeyText,
    }];
    for (const k of this.#known.values()) {
      if (k.serverId === except || k.host === undefined || k.port === undefined) continue;
      out.push({
        server_id: k.serverId,
        user_id: k.serverId,
        host: k.host,
        port: k.port,
        pubkey: k.pubkeyText,
      });
    }
    return out;
  }

  /**
   * Joins through the first reachable introducer, then keeps dialling every introducer not yet
   * linked (each is a pinned server of this network) until all are: servers that start at the
   * same moment still end in a full mesh, although a WELCOME lists only the servers its
   * introducer knew at that moment.
   */
  async #joinLoop(): Promise<void> {
    for (let attempt = 0; !this.#abort.signal.aborted; attempt++) {
      for (const entry of this.#bootstrap) {
        if (this.#abort.signal.aborted) return;
        if (!this.#linkedToKey(entry.pubkey)) await this.#join(entry);
      }
      const missing = this.#bootstrap.filter((e) => !this.#linkedToKey(e.pubkey)).length;
      if (missing === 0) return;
      const wait = this.#backoff(attempt);
      if (this.#links.size === 0) {
        this.#log.warn(`no introducer reachable; retrying in ${Math.round(wait / 1000)} s`);
      } else {
        this.#log.debug(`${missing} introducers not linked yet; dialling again in ${wait} ms`);
      }
      if (!(await this.#sleep(wait))) return;
    }
  }

  /** True when a live link goes to the server pinned to `keyText`. */
  #linkedToKey(keyText: string): boolean {
    for (const id of this.#links.keys()) {
      const known = this.#known.get(id);
      if (known && samePublicKey(known.pubkeyText, keyText)) return true;
    }
    return false;
  }

  /** SERVER_HELLO_JOIN → SERVER_WELCOME with one introducer; true on success. */
  async #join(entry: BootstrapEntry): Promise<boolean> {
    const url = `ws://${entry.host}:${entry.port}`;
    let transport: Transport;
    try {
      transport = await this.#dialer(url, this.#abort.signal);
    } catch (error) {
      this.#log.info(
        `introducer ${entry.host}:${entry.port} unreachable: ${(error as Error).message}`,
      );
      return false;
    }
    const link = this.#track(
      new PeerLink(transport, { direction: "out", remote: `${entry.host}:${entry.port}` }),
    );
    link.send(
      await this.#hub.emit(
        "SERVER_HELLO_JOIN",
        `${entry.host}:${entry.port}`,
        this.#helloPayload(),
      ),
    );
    const frames = transport[Symbol.asyncIterator]();
    const welcome = await this.#firstFrame(frames, link);
    if (welcome?.type !== "SERVER_WELCOME") {
      this.#log.warn(`introducer ${url} did not answer SERVER_WELCOME`);
      link.close(1002, "Expected SERVER_WELCOME");
      return false;
    }
    const env = welcome.env;
    if (welcome.p.server_pub && !samePublicKey(welcome.p.server_pub, entry.pubkey)) {
      this.#log.error(`introducer ${url} presented a key that is not the pinned one; skipped`);
      link.close(1008, "BAD_KEY");
      return false;
    }
    const introducerId = [welcome.p.server_id, env.from].find((v) => isUuid(v));
    if (introducerId === undefined) {
      this.#log.warn(`introducer ${url} has no UUID server id; skipped`);
      link.close(1002, "No server id");
      return false;
    }
    let known: KnownServer;
    try {
      known = await this.#register(introducerId, entry.pubkey, entry.host, entry.port);
    } catch (error) {
      this.#log.error(`introducer ${url}: ${(error as Error).message}`);
      link.close(1008, "BAD_KEY");
      return false;
    }
    if (env.sig && !(await verifyEnvelope(known.pubkey, env))) {
      this.#log.error(`SERVER_WELCOME from ${url} has a bad signature; skipped`);
      link.close(1008, "INVALID_SIG");
      return false;
    }
    if (welcome.p.assigned_id && welcome.p.assigned_id !== this.#me) {
      this.#log.warn(
        `introducer assigned id ${welcome.p.assigned_id}; keeping ${this.#me} (UUIDv4 collision is not credible)`,
      );
    }
    this.#log.info(`joined the mesh through ${short(introducerId)} at ${url}`);
    const joinTraits = handshakeTraits(
      env.payload,
      welcome.p.server_pub ?? entry.pubkey,
      this.#config.keyEncoding,
    );
    known.encoding = joinTraits.keyEncoding;
    if (joinTraits.caps !== undefined) known.caps = joinTraits.caps;
    this.#setTraits(link, joinTraits);
    if (!this.#linkUp(link, introducerId, this.#me)) return true;
    this.#spawn(this.#readLoop(link, frames));
    // Link to every other listed server, then announce ourselves.
    const dials: Promise<unknown>[] = [];
    for (const s of welcome.p.servers) {
      if (s.server_id === this.#me || s.server_id === introducerId) continue;
      if (s.pubkey === undefined || s.host === undefined || s.port === undefined) continue;
      if (!this.#mayLink(s.pubkey)) {
        this.#log.info(`welcome entry ${short(s.server_id)} skipped: not in the bootstrap file`);
        continue;
      }
      try {
        await this.#register(s.server_id, s.pubkey, s.host, s.port);
      } catch (error) {
        this.#log.warn(`welcome entry ${short(s.server_id)} skipped: ${(error as Error).message}`);
        continue;
      }
      if (!this.#links.has(s.server_id)) dials.push(this.#link(s.server_id));
    }
    await Promise.allSettled(dials);
    // Only now: a user counts as online only while its server is linked (hub.remoteAdvertise).
    await this.#applySnapshot(env.payload["snapshot"]);
    await this.#hub.gossip("SERVER_ANNOUNCE", this.#helloPayload());
    return true;
  }

  /** Users listed in a G17-style WELCOME `snapshot: {user_locations: {uid: {server_id}}}`. */
  async #applySnapshot(snapshot: unknown): Promise<void> {
    if (typeof snapshot !== "object" || snapshot === null) return;
    const locations = (snapshot as { user_locations?: unknown }).user_locations;
    if (typeof locations !== "object" || locations === null) return;
    for (const [userId, where] of Object.entries(locations as Record<string, unknown>)) {
      const serverId = typeof where === "string"
        ? where
        : typeof where === "object" && where !== null
        ? (where as { server_id?: unknown }).server_id
        : undefined;
      if (!isUuid(userId) || typeof serverId !== "string" || serverId === this.#me) continue;
      // A user already advertised (with its key and name) is not overwritten by a bare location.
      if (this.#hub.onlineUser(userId) !== undefined) continue;
      await this.#hub.remoteAdvertise({
        userId,
        serverId,
        pubkey: undefined,
        displayName: undefined,
      });
    }
  }

  /** Dials a known server and sends SERVER_HELLO_LINK; true when the link is up. */
  async #link(serverId: string): Promise<boolean> {
    const known = this.#known.get(serverId);
    if (!known || known.host === undefined || known.port === undefined) return false;
    const url = `ws://${known.host}:${known.port}`;
    let transport: Transport;
    try {
      transport = await this.#dialer(url, this.#abort.signal);
    } catch (error) {
      this.#log.debug(
        `server ${short(serverId)} at ${url} unreachable: ${(error as Error).message}`,
      );
      return false;
    }
    const link = this.#track(
      new PeerLink(transport, { direction: "out", remote: `${known.host}:${known.port}` }),
    );
    this.#setTraits(link, this.#knownTraits(known));
    link.send(await this.#hub.emit("SERVER_HELLO_LINK", serverId, this.#helloPayload()));
    if (!this.#linkUp(link, serverId, this.#me)) return this.#links.has(serverId);
    this.#spawn(this.#readLoop(link, transport[Symbol.asyncIterator]()));
    return true;
  }

  async #firstFrame(frames: AsyncIterator<string>, link: PeerLink): Promise<Frame | undefined> {
    let timer: ReturnType<typeof setTimeout> | undefined;
    const timeout = new Promise<"timeout">((resolve) => {
      timer = setTimeout(() => resolve("timeout"), 10_000);
    });
    try {
      while (true) {
        const next = await Promise.race([frames.next(), timeout]);
        if (next === "timeout" || next.done) return undefined;
        link.touch();
        try {
          const frame = decodeFrame(
            parseEnvelope(next.value, { maxBytes: this.#config.maxServerFrameBytes }),
          );
          this.#hub.metrics.frameIn(frame?.type);
          if (frame && frame.type !== "HEARTBEAT") return frame;
        } catch {
          return undefined;
        }
      }
    } finally {
      clearTimeout(timer);
    }
  }

  #track(link: PeerLink): PeerLink {
    this.#all.add(link);
    link.transport.closed.then(() => this.#all.delete(link));
    return link;
  }

  /** Accepts a connection whose first frame identifies a server. */
  acceptServer(transport: Transport, first: Envelope, remote: string): void {
    const link = this.#track(new PeerLink(transport, { direction: "in", remote }));
    this.#spawn(this.#acceptServer(link, first));
  }

  async #acceptServer(link: PeerLink, first: Envelope): Promise<void> {
    const frames = link.transport[Symbol.asyncIterator]();
    try {
      const frame = decodeFrame(first);
      if (
        frame === undefined ||
        (frame.type !== "SERVER_HELLO_JOIN" && frame.type !== "SERVER_HELLO_LINK" &&
          frame.type !== "PEER_HELLO_LINK" && frame.type !== "SERVER_ANNOUNCE")
      ) {
        throw new ProtocolError("BAD_FRAME", `Unexpected first server frame ${first.type}`);
      }
      const claimed = frame.p.server_id && frame.type !== "SERVER_HELLO_JOIN"
        ? frame.p.server_id
        : first.from;
      if (!isUuid(claimed)) {
        throw new ProtocolError("BAD_FRAME", `Server id "${claimed.slice(0, 64)}" is not a UUID`);
      }
      if (claimed === this.#me) {
        throw new ProtocolError("BAD_FRAME", "That is this server's own id");
      }
      const pinned = this.#known.get(claimed);
      const keyText = frame.p.pubkey ?? pinned?.pubkeyText;
      if (keyText === undefined) {
        throw new ProtocolError("BAD_KEY", `${first.type} carries no pubkey`);
      }
      let key: PublicKey;
      try {
        key = await importPublicKeyText(keyText);
      } catch (error) {
        throw new ProtocolError(
          "BAD_KEY",
          `${first.type} key rejected: ${(error as Error).message}`,
        );
      }
      if (first.sig && !(await verifyEnvelope(key, first))) {
        throw new ProtocolError(
          "INVALID_SIG",
          `${first.type} signature does not verify with its key`,
        );
      }
      if (!this.#mayLink(keyText)) {
        throw new ProtocolError(
          "BAD_KEY",
          "This server's federation is closed: its key is not in the bootstrap file",
        );
      }
      const listed = this.#bootstrap.find((e) =>
        e.host === frame.p.host && e.port === frame.p.port && !samePublicKey(e.pubkey, keyText)
      );
      if (listed) {
        throw new ProtocolError(
          "BAD_KEY",
          `${frame.p.host}:${frame.p.port} is a bootstrap introducer pinned to a different key`,
        );
      }
      let serverId = claimed;
      if (pinned && !samePublicKey(pinned.pubkeyText, keyText)) {
        if (frame.type !== "SERVER_HELLO_JOIN") {
          throw new ProtocolError("BAD_KEY", `Server ${claimed} is pinned to a different key`);
        }
        serverId = crypto.randomUUID(); // id taken by another key: assign a fresh one (§7.3)
      }
      const known = await this.#register(serverId, keyText, frame.p.host, frame.p.port);
      const traits = handshakeTraits(first.payload, keyText, this.#config.keyEncoding);
      known.encoding = keyEncodingOf(keyText);
      if (traits.caps !== undefined) known.caps = traits.caps;
      this.#setTraits(link, traits);
      if (frame.type === "SERVER_HELLO_JOIN") {
        link.send(
          await this.#hub.emit("SERVER_WELCOME", serverId, {
            assigned_id: serverId,
            server_id: this.#me,
            server_pub: this.#hub.identity.publicKeyText,
            servers: this.#welcomeEntries(serverId),
            clients: this.#welcomeEntries(serverId),
            socp: socpMarker(),
          }),
        );
      } else if (traits.caps !== undefined) {
        // A socp dialer learns this server's capabilities from the answer to its hello.
        link.send(
          await this.#hub.emit("ACK", serverId, {
            msg_ref: "SERVER_HELLO_OK",
            server_id: this.#me,
            socp: socpMarker(),
          }),
        );
      }
      this.#log.info(`${first.type} from ${short(serverId)} at ${link.remote}`);
      if (!this.#linkUp(link, serverId, serverId)) return;
      if (frame.type === "SERVER_ANNOUNCE") this.#hub.seen.add(seenKey(first));
      await this.#readLoop(link, frames);
    } catch (error) {
      if (!(error instanceof ProtocolError)) throw error;
      this.#log.warn(`server connection from ${link.remote} refused: ${error.message}`);
      link.send(
        await this.#hub.emit("ERROR", first.from.slice(0, 64), {
          code: error.code,
          detail: error.message,
        }),
      );
      link.close(1008, error.code);
    }
  }

  /**
   * handshaking → up. A second link to the same server keeps the one dialled by the lower
   * server id (both sides decide alike). Returns false when `link` lost and was closed.
   */
  #linkUp(link: PeerLink, serverId: string, dialer: string): boolean {
    const existing = this.#links.get(serverId);
    if (existing && existing.state === "up" && !(existing.socp && link.socp)) {
      // Another implementation's server: both links stay open (see #spares); frames go out on
      // the first, frames are read from both.
      this.#startLink(link, serverId);
      const spares = this.#spares.get(serverId) ?? new Set<PeerLink>();
      spares.add(link);
      this.#spares.set(serverId, spares);
      this.#log.info(`second link to server ${short(serverId)} kept open (${link.direction})`);
      return true;
    }
    if (existing && existing.state === "up") {
      const existingDialer = existing.direction === "out" ? this.#me : serverId;
      if (existingDialer <= dialer) {
        link.close(1000, "Duplicate link");
        return false;
      }
      this.#links.delete(serverId);
      existing.close(1000, "Replaced by a newer link");
    }
    this.#startLink(link, serverId);
    this.#links.set(serverId, link);
    this.#everLinked = true;
    this.#log.info(
      `linked to server ${short(serverId)} (${link.direction}, ${
        plural(this.#links.size, "link")
      })`,
      { event: "link_up", peer_server_id: serverId },
    );
    this.#spawn(this.#catchUp(link));
    return true;
  }

  /** handshaking → up with heartbeats; a silent link is taken down. */
  #startLink(link: PeerLink, serverId: string): void {
    link.up(serverId, {
      intervalMs: this.#config.heartbeatMs,
      deadAfterMs: this.#config.deadAfterMs,
      send: () => {
        this.#hub.emit("HEARTBEAT", serverId, {}).then((t) => link.send(t)).catch(() => {});
      },
      dead: () => {
        if (this.#spares.get(serverId)?.has(link) && this.#links.get(serverId)?.state === "up") {
          // A spare the peer stopped using: closing it could make the peer drop our users.
          this.#log.debug(`spare link to server ${short(serverId)} silent; left open`);
          return;
        }
        this.#log.warn(
          `server ${short(serverId)} silent for ${this.#config.deadAfterMs / 1000} s; link dead`,
        );
        link.close(1011, "Heartbeat timeout");
        // A hung peer never completes the close handshake, so the read loop may not end for a
        // long time: take the link down now (users removed, re-dial scheduled).
        this.#spawn(this.#linkDown(link));
      },
    });
  }

  /**
   * Catch-up for a newly linked server: our online users first, then the whole directory.
   * Frames are signed one at a time as they go, and after a first burst they are paced:
   * some peers (Group 17, Appendix E) drop more than 64 frames per 2 s from one server.
   */
  async #catchUp(link: PeerLink): Promise<void> {
    // Account records and queues are private to the server group: other servers get presence
    // only, paced for peers that limit frames per sender. Group members are socp servers.
    const group = link.serverId !== undefined && this.isGroupServer(link.serverId);
    const frames: [string, JsonObject][] = [
      ...this.#hub.localAdvertPayloads().map((p): [string, JsonObject] => ["USER_ADVERTISE", p]),
      ...(group ? (await this.#accounts?.syncPayloads()) ?? [] : []).map((
        p,
      ): [string, JsonObject] => ["DIRECTORY_UPDATE", p]),
      ...(group ? this.#blocks?.syncPayloads() ?? [] : []).map((
        p,
      ): [string, JsonObject] => ["BLOCKS_UPDATE", p]),
      ...(group ? this.#groups?.syncPayloads() ?? [] : []).map((
        p,
      ): [string, JsonObject] => ["GROUP_UPDATE", p]),
      ...(group ? (await this.#queue?.syncFrames()) ?? [] : []),
    ];
    for (const [i, [type, payload]] of frames.entries()) {
      if (!group && i >= CATCH_UP_BURST && !(await this.#sleep(CATCH_UP_INTERVAL_MS))) return;
      if (link.state === "closed") return;
      link.send(await this.#hub.emit(type, "*", payload));
    }
  }

  async #readLoop(link: PeerLink, frames: AsyncIterator<string>): Promise<void> {
    // What this link's frames cause to be signed shares the cores fairly with user connections.
    using lane = this.#hub.signer.lane(`server ${link.serverId ?? "?"}`);
    try {
      while (true) {
        const next = await frames.next();
        // A link closed by this side (heartbeat timeout, replaced) handles nothing more.
        if (next.done || link.state === "closed") break;
        link.touch();
        try {
          await lane.run(() => this.#handle(link, next.value));
        } catch (error) {
          await this.#report(link, error);
        }
      }
    } finally {
      await this.#linkDown(link);
    }
  }

  async #report(link: PeerLink, error: unknown): Promise<void> {
    const code = error instanceof ProtocolError ? error.code : "INTERNAL_ERROR";
    if (!(error instanceof ProtocolError)) {
      this.#log.error(
        `frame from ${short(link.serverId ?? "?")} failed: ${(error as Error).stack}`,
      );
    } else {
      this.#log.warn(
        `frame from ${short(link.serverId ?? "?")} refused: ${error.code} ${error.message}`,
      );
    }
    if (!link.mayReportError()) return;
    link.send(
      await this.#hub.emit("ERROR", link.serverId ?? "?", {
        code,
        detail: (error as Error).message,
      }),
    );
  }

  async #linkDown(link: PeerLink): Promise<void> {
    link.close();
    const serverId = link.serverId;
    if (serverId === undefined) return;
    const spares = this.#spares.get(serverId);
    spares?.delete(link);
    if (this.#links.get(serverId) !== link) return;
    const next = [...spares ?? []].find((l) => l.state === "up");
    if (next !== undefined) {
      // The peer still has a link up: use it, nothing is lost.
      spares!.delete(next);
      this.#links.set(serverId, next);
      this.#log.info(`link to server ${short(serverId)} closed; its other link takes over`);
      return;
    }
    this.#spares.delete(serverId);
    this.#links.delete(serverId);
    this.#log.warn(`link to server ${short(serverId)} closed`, {
      event: "link_down",
      peer_server_id: serverId,
    });
    await this.#hub.serverLost(serverId);
    if (!this.#abort.signal.aborted) this.#scheduleRedial(serverId, serverId < this.#me ? 1 : 0);
  }

  /** Re-dials a known server with backoff until linked (or it links to us). */
  #scheduleRedial(serverId: string, startAttempt: number): void {
    if (this.#redialing.has(serverId)) return;
    this.#redialing.add(serverId);
    this.#spawn((async () => {
      try {
        for (let attempt = startAttempt; !this.#abort.signal.aborted; attempt++) {
          if (attempt > 0 && !(await this.#sleep(this.#backoff(attempt - 1)))) return;
          if (this.#links.has(serverId)) return;
          if (await this.#link(serverId)) return;
        }
      } finally {
        this.#redialing.delete(serverId);
      }
    })());
  }

  // -------------------------------------------------------------------------------------------
  // Frames on an up link

  async #handle(link: PeerLink, text: string): Promise<void> {
    const env = parseEnvelope(text, { maxBytes: this.#config.maxServerFrameBytes });
    if (env.type === "ERROR") {
      this.#hub.metrics.frameIn("ERROR");
      this.#log.info(
        `ERROR from server ${short(link.serverId ?? "?")}: ${
          JSON.stringify(env.payload).slice(0, 300)
        }`,
      );
      return;
    }
    const frame = decodeFrame(env);
    this.#hub.metrics.frameIn(frame?.type);
    if (frame === undefined) {
      throw new ProtocolError("UNKNOWN_TYPE", `Unknown message type "${env.type.slice(0, 64)}"`);
    }
    if (!link.socp) {
      // Relay public messages and files to this peer the way it relays them itself.
      const form = relayFormOf(env);
      if (form !== undefined) {
        link.traits = { ...link.traits, relayForm: form, relayFormLearned: true };
      }
    }
    const type = frame.type;
    let signer: string | undefined;
    if (MUST_SIGN.has(type)) {
      signer = await this.#verify(
        env,
        link,
        type === "USER_ADVERTISE" || type === "USER_REMOVE"
          ? this.#presenceSigner(frame)
          : undefined,
      );
      if (signer === undefined) {
        throw new ProtocolError(
          "INVALID_SIG",
          `${type} from ${short(env.from)} has no valid signature`,
        );
      }
      // User content is recorded as seen only once #admit accepts it, so that a refused forgery
      // cannot suppress the genuine frame; a copy of content already accepted is dropped here.
      const key = seenKey(env);
      const duplicate = relayedContent(env) !== undefined
        ? this.#hub.seen.has(key)
        : !this.#hub.seen.add(key);
      if (duplicate) {
        this.#log.debug(`duplicate ${type} dropped`);
        return;
      }
    }
    await this.#dispatch(link, frame, text, signer);
  }

  /**
   * Presence frames must be signed by the hosting server (`payload.server_id`, else `from`),
   * whoever relays them: a linked server cannot advertise or remove another server's users.
   */
  #presenceSigner(frame: Frame): string {
    const p = frame.p as { server_id?: string };
    return p.server_id ?? frame.env.from;
  }

  async #dispatch(
    link: PeerLink,
    frame: Frame,
    text: string,
    signer?: string,
  ): Promise<void> {
    const from = link.serverId!;
    const hub = this.#hub;
    switch (frame.type) {
      case "ACK":
        if (frame.p.msg_ref === "SERVER_HELLO_OK") {
          const caps = capsOf(frame.env.payload);
          if (caps !== undefined && !link.socp) {
            this.#setTraits(link, {
              caps,
              keyEncoding: "der",
              relayForm: "inner",
              relayFormLearned: false,
            });
            const known = this.#known.get(from);
            if (known) known.caps = caps;
          }
          return;
        }
        if (frame.p.msg_ref === "QUEUE_STORED") {
          const entryId = frame.env.payload["entry_id"];
          if (typeof entryId === "string") this.#queue?.confirmed(from, entryId);
        }
        return;
      case "HEARTBEAT":
      case "ERROR":
        return;
      case "USER_ADVERTISE": {
        const serverId = frame.p.server_id ?? frame.env.from;
        if (serverId === this.#me) return;
        let pubkey = frame.p.meta.pubkey;
        if (pubkey !== undefined) {
          // Every key that enters must pass the same check (RSA-4096, e = 65537).
          try {
            pubkey = encodePublicKey(await importPublicKeyText(pubkey));
          } catch (error) {
            throw new ProtocolError(
              "BAD_KEY",
              `USER_ADVERTISE of "${frame.p.user_id.slice(0, 64)}" carries an unacceptable key: ${
                (error as Error).message
              }`,
            );
          }
        }
        // Capabilities of the user's client, as its server advertised them (only known ones),
        // so a socp sender here can use large file chunks with a socp user there.
        const caps = (frame.p.meta.caps ?? []).filter((c) => USER_CAPS.includes(c));
        const accepted = await hub.remoteAdvertise({
          userId: frame.p.user_id,
          serverId,
          pubkey,
          displayName: frame.p.meta.display_name,
          ...(caps.length > 0 ? { caps } : {}),
        });
        if (accepted) this.broadcast(text, from);
        else if (!this.linkedServers().includes(serverId)) {
          // Ignored only because the user's server is not linked here yet (a copy relayed by
          // another server overtook the link): the same advert straight from that server, once
          // linked, must not be dropped as already seen.
          hub.seen.delete(seenKey(frame.env));
        }
        return;
      }
      case "USER_REMOVE": {
        const serverId = frame.p.server_id ?? frame.env.from;
        await hub.remoteRemove(frame.p.user_id, serverId);
        this.broadcast(text, from);
        return;
      }
      case "SERVER_DELIVER":
        return await this.#serverDeliver(link, { env: frame.env, text, signer });
      case "MSG_DIRECT":
      case "MSG_PUBLIC_CHANNEL":
      case "FILE_START":
      case "FILE_CHUNK":
      case "FILE_END": {
        const sender = typeof frame.env.payload["sender"] === "string"
          ? frame.env.payload["sender"]
          : frame.env.from;
        const d: Delivery = {
          type: frame.type,
          sender,
          recipient: frame.env.to,
          ts: frame.env.ts,
          payload: stripRelayKeys(frame.env.payload),
        };
        const relayed: Relayed = { env: frame.env, text, signer };
        if (isChannelTarget(frame.env.to)) {
          if (await this.#admit(d, relayed)) await hub.fanOut(frame.env, text, from);
          return;
        }
        // A user frame forwarded as-is between servers (as some peers do).
        return await this.#deliverRemote(link, d, relayed);
      }
      case "PUBLIC_CHANNEL_ADD":
      case "PUBLIC_CHANNEL_UPDATED":
      case "PUBLIC_CHANNEL_KEY_SHARE": {
        if (frame.type === "PUBLIC_CHANNEL_UPDATED") hub.notePublicVersion(frame.p.version);
        this.broadcast(text, from);
        // Local users learn who joined elsewhere; another server's wraps are for its own users
        // (under its own key), so they are passed on to servers only.
        if (frame.type === "PUBLIC_CHANNEL_ADD") {
          hub.sendToLocal(await hub.emit(frame.type, "*", frame.env.payload, frame.env.ts));
        }
        return;
      }
      case "SERVER_ANNOUNCE":
      case "SERVER_HELLO_LINK":
      case "PEER_HELLO_LINK":
      case "SERVER_HELLO_JOIN": {
        const id = frame.p.server_id ?? frame.env.from;
        if (!isUuid(id) || id === this.#me || frame.p.pubkey === undefined) return;
        if (!this.#mayLink(frame.p.pubkey)) return;
        const announceKey = `${frame.type}|${id}|${frame.env.ts}`;
        if (!hub.seen.add(announceKey)) return;
        await this.#register(id, frame.p.pubkey, frame.p.host, frame.p.port);
        if (frame.type === "SERVER_ANNOUNCE") this.broadcast(text, from);
        if (!this.#links.has(id) && id < this.#me) this.#scheduleRedial(id, 0);
        return;
      }
      case "SERVER_WELCOME":
        return;
      case "DIRECTORY_UPDATE":
        this.#requireGroup(from, frame.type);
        if (this.#accounts && (await this.#accounts.applyRemote(frame.p.record))) {
          this.broadcastGroup(text, from);
        }
        return;
      case "QUEUE_STORE":
        this.#requireGroup(from, frame.type);
        await this.#queue?.storeReplica(frame.p);
        link.send(
          await hub.emit("ACK", from, { msg_ref: "QUEUE_STORED", entry_id: frame.p.entry_id }),
        );
        return;
      case "QUEUE_DONE":
        this.#requireGroup(from, frame.type);
        await this.#queue?.doneElsewhere(frame.p.entry_ids);
        return;
      case "BLOCKS_UPDATE":
        this.#requireGroup(from, frame.type);
        if (await this.#blocks?.applyRemote(frame.p)) this.broadcastGroup(text, from);
        return;
      case "GROUP_UPDATE":
        this.#requireGroup(from, frame.type);
        if (await this.#groups?.applyRemote(frame.env.payload, frame.p.group)) {
          this.broadcastGroup(text, from);
        }
        return;
      case "LOGIN_FAILURE":
        this.#requireGroup(from, frame.type);
        await this.#accounts?.noteFailure(frame.p.username, frame.p.address);
        this.broadcastGroup(text, from);
        return;
      case "PUBKEY_REQUEST": {
        // Another server asks for the key of a user of this server (their USER_ADVERTISE may
        // carry none). An unknown user gets `pubkey: null`, as Group 17 answers.
        const id = frame.p.user_id;
        const local = hub.localLink(id) ? hub.onlineUser(id)?.pubkey : undefined;
        link.send(
          await hub.emit("PUBKEY_RESPONSE", from, {
            user_id: id,
            pubkey: local === undefined ? null : encodeKeyText(local, link.traits.keyEncoding),
          }),
        );
        return;
      }
      case "PUBKEY_RESPONSE":
        this.#answerPubkey(`${from}|${frame.p.user_id}`, frame.p.pubkey);
        return;
      case "REGISTER":
      case "LOGIN_START":
      case "LOGIN_PARAMS":
      case "LOGIN_PROOF":
      case "LOGIN_OK":
      case "PASSWD":
      case "DELETE_ACCOUNT":
      case "ACCOUNTS_REQUEST":
      case "ACCOUNTS_RESPONSE":
      case "USER_HELLO":
      case "USER_DELIVER":
      case "LIST_REQUEST":
      case "LIST_RESPONSE":
      case "CTRL_CLOSE":
      case "BLOCKS_SET":
      case "BLOCKS_REQUEST":
      case "BLOCKS_RESPONSE":
      case "PRESENCE_SINCE_REQUEST":
      case "PRESENCE_SINCE_RESPONSE":
      case "USER_UPDATE":
      case "GROUP_CREATE":
      case "GROUP_CHANGE":
      case "GROUP_LIST_REQUEST":
      case "GROUP_LIST":
      case "GROUP_EVENT":
      case "PRESENCE_BATCH":
        throw new ProtocolError("BAD_FRAME", `${frame.type} is not a server-to-server frame`);
      default: {
        const never: never = frame;
        throw new ProtocolError("UNKNOWN_TYPE", `Unhandled ${(never as Frame).type}`);
      }
    }
  }

  /** Private state is taken only from the operator's server group. */
  #requireGroup(serverId: string, type: string): void {
    if (!this.isGroupServer(serverId)) {
      throw new ProtocolError(
        "FORBIDDEN",
        `${type} is accepted only from servers of this server's group`,
      );
    }
  }

  async #serverDeliver(link: PeerLink, relayed: Relayed): Promise<void> {
    // socp and G17 send a flat payload (`inner_type`, default MSG_DIRECT); G56 wraps a whole
    // user envelope {user_id, type, from, to, ts, payload}.
    const content = relayedContent(relayed.env);
    const type = content?.type ?? "";
    if (
      content === undefined ||
      !["MSG_DIRECT", "MSG_PUBLIC_CHANNEL", "FILE_START", "FILE_CHUNK", "FILE_END"].includes(type)
    ) {
      throw new ProtocolError(
        "UNKNOWN_TYPE",
        `SERVER_DELIVER carries unknown inner type "${type.slice(0, 64)}"`,
      );
    }
    const delivery: Delivery = {
      type: type as DeliveryType,
      sender: content.sender,
      recipient: content.recipient,
      ts: content.ts,
      payload: content.payload,
    };
    await this.#deliverRemote(link, delivery, relayed);
  }

  /**
   * Admits user content that came from a link (docs/protocol.md, "What a linked server is
   * trusted with") and records it as seen; false when it was seen already. Refused, before
   * anything is delivered or forwarded:
   * - `sender_pub` that is not an acceptable key, or not the key this server knows for the sender
   *   (from presence or the stored `users` record): BAD_KEY;
   * - a sender connected to this server, or online on a server other than the one whose
   *   signature the frame carries: INVALID_SIG, unless the content_sig verifies with the
   *   sender's known key (the user's own proof, e.g. a queued DM flushed by another server).
   * An offline or unknown sender passes with the key check alone (offline-queue flushes).
   */
  async #admit(d: Delivery, relayed: Relayed): Promise<boolean> {
    const hub = this.#hub;
    const online = d.sender === "" ? undefined : hub.onlineUser(d.sender);
    const known = d.sender === "" ? undefined : await hub.knownKey(d.sender);
    const senderPub = d.payload["sender_pub"];
    if (typeof senderPub === "string" && senderPub !== "") {
      try {
        await importPublicKeyText(senderPub);
      } catch (error) {
        throw new ProtocolError(
          "BAD_KEY",
          `sender_pub of "${d.sender.slice(0, 64)}" is not an acceptable key: ${
            (error as Error).message
          }`,
        );
      }
      if (known !== undefined && !samePublicKey(known, senderPub)) {
        throw new ProtocolError(
          "BAD_KEY",
          `sender_pub of "${d.sender.slice(0, 64)}" is not the key this server knows for that user`,
        );
      }
    }
    const host = online?.serverId;
    if (
      host !== undefined && (host === this.#me || relayed.signer !== host) &&
      !(known !== undefined && (await this.#contentProven(d, known, relayed.env.ts)))
    ) {
      throw new ProtocolError(
        "INVALID_SIG",
        host === this.#me
          ? `${d.type} claims to come from "${d.sender}", who is connected to this server`
          : `${d.type} from "${d.sender}" is not signed by that user's server ${host}`,
      );
    }
    return hub.seen.add(seenKey(relayed.env));
  }

  /** True when the content_sig of `d` verifies with `key` (variants A–D, original ts). */
  async #contentProven(d: Delivery, key: string, envelopeTs: number): Promise<boolean> {
    const sig = d.payload["content_sig"];
    const ciphertext = d.payload["ciphertext"];
    if (typeof sig !== "string" || typeof ciphertext !== "string") return false;
    let pub: PublicKey;
    try {
      pub = await importPublicKeyText(key);
    } catch {
      return false;
    }
    // DMs and files cover the recipient; public-channel content does not (§6.2).
    const fields = d.type === "MSG_PUBLIC_CHANNEL" || isChannelTarget(d.recipient)
      ? { ciphertext, from: d.sender }
      : { ciphertext, from: d.sender, to: d.recipient };
    return (await verifyContent(pub, sig, fields, [d.ts, envelopeTs])) !== undefined;
  }

  /** Delivers a frame that came from a server: local user, onward server, queue, or error. */
  async #deliverRemote(link: PeerLink, d: Delivery, relayed: Relayed): Promise<void> {
    if (!(await this.#admit(d, relayed))) {
      this.#log.debug(`duplicate ${d.type} dropped`);
      return;
    }
    const hub = this.#hub;
    if (this.#blocks?.blocks(d.recipient, d.sender)) {
      throw new ProtocolError("BLOCKED", `Not delivered: ${d.recipient} has blocked the sender`);
    }
    if (hub.localLink(d.recipient)) {
      const routed = hub.route(d);
      const send = routed.send;
      link.outbox = link.outbox.then(async () => {
        // The user left between routing and sending: keep the frame for the next login.
        if (!(await send)()) await hub.hooks.offline?.(d);
      }).catch((error) => {
        this.#log.error(`delivery failed: ${(error as Error).message}`);
      });
      return;
    }
    const where = hub.onlineUser(d.recipient);
    if (where && where.serverId !== this.#me && where.serverId !== link.serverId) {
      if (this.sendToServer(where.serverId, relayed.text)) return;
    }
    if (hub.hooks.offline && (await hub.hooks.offline(d)) === "queued") return;
    if (d.type === "MSG_DIRECT" || d.type === "FILE_START") {
      throw new ProtocolError("USER_NOT_FOUND", `User ${d.recipient} is not on this server`);
    }
  }
}

/** Builds the mesh for a server (used by `socp server`). */
export function createMesh(hub: Hub, server: SocpServer): Mesh {
  return new Federation({
    hub,
    config: server.config,
    port: () => server.addr.port,
    accounts: server.accounts,
    queue: server.offline,
    blocks: server.blocks,
    groups: server.groups,
  });
}
