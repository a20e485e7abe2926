/**
 * The server mesh (spec §7, §10): joining through bootstrap introducers, linking to every
 * server, pinned server keys, signature checks on every server frame, presence gossip,
 * forwarded delivery, loop and replay suppression, heartbeats, and re-dialling dead links.
 *
 * @module
 */

import {
  decodeFrame,
  encodePublicKey,
  type Envelope,
  type Frame,
  importPublicKeyText,
  isUuid,
  type JsonObject,
  KeyError,
  parseEnvelope,
  ProtocolError,
  type PublicKey,
  samePublicKey,
  type Transport,
  TYPE_ALIASES,
  verifyEnvelope,
  webSocketTransport,
} from "../shared/mod.ts";
import { type BootstrapEntry, loadBootstrap } from "./bootstrap.ts";
import { defaultBootstrapPath, type ServerConfig } from "./config.ts";
import {
  type Delivery,
  type DeliveryType,
  type Hub,
  isChannelTarget,
  stripRelayKeys,
} from "./hub.ts";
import { short } from "./log.ts";
import type { Mesh } from "./mesh.ts";
import { PeerLink } from "./peer_link.ts";
import { seenKey } from "./seen_cache.ts";
import type { SocpServer } from "./server.ts";
import type { Accounts } from "./accounts.ts";

/** A server whose key is pinned. */
interface KnownServer {
  serverId: string;
  host: string | undefined;
  port: number | undefined;
  pubkeyText: string;
  pubkey: PublicKey;
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
  #all = new Set<PeerLink>();
  #redialing = new Set<string>();
  #abort = new AbortController();
  #tasks = new Set<Promise<unknown>>();
  #bootstrap: BootstrapEntry[] = [];
  #accounts: Accounts | undefined;

  /** Creates the mesh; {@linkcode start} joins the network. */
  constructor(options: FederationOptions) {
    this.#hub = options.hub;
    this.#config = options.config;
    this.#port = options.port;
    this.#dialer = options.dialer ?? webSocketDialer;
    this.#backoff = options.backoff ?? defaultBackoff;
    this.#accounts = options.accounts;
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

  /** Sends to one linked server. */
  sendToServer(serverId: string, text: string): boolean {
    return this.#links.get(serverId)?.send(text) ?? false;
  }

  /** Sends to every linked server except one. */
  broadcast(text: string, exceptServerId?: string): void {
    for (const [id, link] of this.#links) if (id !== exceptServerId) link.send(text);
  }

  /** Ids of servers with a live link. */
  linkedServers(): string[] {
    return [...this.#links.keys()];
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
    const entries = await loadBootstrap(path);
    if (entries === undefined) {
      if (this.#config.bootstrapPath !== undefined) {
        throw new KeyError(`Bootstrap file ${path} does not exist`);
      }
    }
    const mine = this.#hub.identity.publicKeyText;
    this.#bootstrap = (entries ?? []).filter((e) => !samePublicKey(e.pubkey, mine));
    if (entries === undefined || this.#bootstrap.length === 0) {
      this.#log.info(
        this.#known.size > 0
          ? `no introducers; re-linking to ${this.#known.size} known servers`
          : "no bootstrap file: running as a standalone first node",
      );
    } else if (this.#bootstrap.length < 3) {
      this.#log.warn(
        `bootstrap list has ${this.#bootstrap.length} introducers; SOCP asks for at least 3`,
      );
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
   * True when `env.sig` verifies with the key of `signer`, or else of `env.from`, of the link's
   * server, or of the server hosting the user `env.from` (a channel frame relayed by a third
   * server keeps the signature of the sender's server). This server's own key counts, so an
   * echo of its own frame verifies and is then dropped as a duplicate.
   */
  async #verify(env: Envelope, link: PeerLink, signer?: string): Promise<boolean> {
    if (!env.sig) return false;
    const ids = signer !== undefined
      ? [signer]
      : [env.from, link.serverId, this.#hub.onlineUser(env.from)?.serverId];
    for (const id of new Set(ids)) {
      const key = id === undefined
        ? undefined
        : id === this.#me
        ? this.#hub.identity.publicKey
        : this.#known.get(id)?.pubkey;
      if (key && await verifyEnvelope(key, env)) return true;
    }
    return false;
  }

  // -------------------------------------------------------------------------------------------
  // Handshakes

  #helloPayload(): JsonObject {
    return {
      host: this.#config.advertiseHost,
      port: this.#port(),
      pubkey: this.#hub.identity.publicKeyText,
      server_id: this.#me,
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

  async #joinLoop(): Promise<void> {
    for (let attempt = 0; !this.#abort.signal.aborted; attempt++) {
      for (const entry of this.#bootstrap) {
        if (this.#links.size > 0 && attempt > 0) return;
        if (await this.#join(entry)) return;
      }
      if (this.#links.size > 0) return;
      const wait = this.#backoff(attempt);
      this.#log.warn(`no introducer reachable; retrying in ${Math.round(wait / 1000)} s`);
      if (!(await this.#sleep(wait))) return;
    }
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
    await this.#applySnapshot(env.payload["snapshot"]);
    if (!this.#linkUp(link, introducerId, this.#me)) return true;
    this.#spawn(this.#readLoop(link, frames));
    // Link to every other listed server, then announce ourselves.
    const dials: Promise<unknown>[] = [];
    for (const s of welcome.p.servers) {
      if (s.server_id === this.#me || s.server_id === introducerId) continue;
      if (s.pubkey === undefined || s.host === undefined || s.port === undefined) continue;
      try {
        await this.#register(s.server_id, s.pubkey, s.host, s.port);
      } catch (error) {
        this.#log.warn(`welcome entry ${short(s.server_id)} skipped: ${(error as Error).message}`);
        continue;
      }
      if (!this.#links.has(s.server_id)) dials.push(this.#link(s.server_id));
    }
    await Promise.allSettled(dials);
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
      await this.#register(serverId, keyText, frame.p.host, frame.p.port);
      if (frame.type === "SERVER_HELLO_JOIN") {
        link.send(
          await this.#hub.emit("SERVER_WELCOME", serverId, {
            assigned_id: serverId,
            server_id: this.#me,
            server_pub: this.#hub.identity.publicKeyText,
            servers: this.#welcomeEntries(serverId),
            clients: this.#welcomeEntries(serverId),
          }),
        );
      }
      this.#log.info(`${first.type} from ${short(serverId)} at ${link.remote}`);
      if (!this.#linkUp(link, serverId, serverId)) return;
      if (frame.type === "SERVER_ANNOUNCE") this.#hub.seen.add(await seenKey(first));
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
    if (existing && existing.state === "up") {
      const existingDialer = existing.direction === "out" ? this.#me : serverId;
      if (existingDialer <= dialer) {
        link.close(1000, "Duplicate link");
        return false;
      }
      this.#links.delete(serverId);
      existing.close(1000, "Replaced by a newer link");
    }
    link.up(serverId, {
      intervalMs: this.#config.heartbeatMs,
      deadAfterMs: this.#config.deadAfterMs,
      send: () => {
        this.#hub.emit("HEARTBEAT", serverId, {}).then((t) => link.send(t)).catch(() => {});
      },
      dead: () => {
        this.#log.warn(
          `server ${short(serverId)} silent for ${this.#config.deadAfterMs / 1000} s; link dead`,
        );
        link.close(1011, "Heartbeat timeout");
        // A hung peer never completes the close handshake, so the read loop may not end for a
        // long time: take the link down now (users removed, re-dial scheduled).
        this.#spawn(this.#linkDown(link));
      },
    });
    this.#links.set(serverId, link);
    this.#log.info(
      `linked to server ${short(serverId)} (${link.direction}, ${this.#links.size} links)`,
    );
    this.#spawn(this.#catchUp(link));
    return true;
  }

  /**
   * Catch-up for a newly linked server: our online users first, then the whole directory.
   * Frames are signed one at a time as they go, and after a first burst they are paced:
   * some peers (Group 17, Appendix E) drop more than 64 frames per 2 s from one server.
   */
  async #catchUp(link: PeerLink): Promise<void> {
    const frames: [string, JsonObject][] = [
      ...this.#hub.localAdvertPayloads().map((p): [string, JsonObject] => ["USER_ADVERTISE", p]),
      ...((await this.#accounts?.syncPayloads()) ?? []).map((
        p,
      ): [string, JsonObject] => ["DIRECTORY_UPDATE", p]),
    ];
    for (const [i, [type, payload]] of frames.entries()) {
      if (i >= CATCH_UP_BURST && !(await this.#sleep(CATCH_UP_INTERVAL_MS))) return;
      if (link.state === "closed") return;
      link.send(await this.#hub.emit(type, "*", payload));
    }
  }

  async #readLoop(link: PeerLink, frames: AsyncIterator<string>): Promise<void> {
    try {
      while (true) {
        const next = await frames.next();
        // A link closed by this side (heartbeat timeout, replaced) handles nothing more.
        if (next.done || link.state === "closed") break;
        link.touch();
        try {
          await this.#handle(link, next.value);
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
    if (serverId === undefined || this.#links.get(serverId) !== link) return;
    this.#links.delete(serverId);
    this.#log.warn(`link to server ${short(serverId)} closed`);
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
      this.#log.info(
        `ERROR from server ${short(link.serverId ?? "?")}: ${
          JSON.stringify(env.payload).slice(0, 300)
        }`,
      );
      return;
    }
    const frame = decodeFrame(env);
    if (frame === undefined) {
      throw new ProtocolError("UNKNOWN_TYPE", `Unknown message type "${env.type.slice(0, 64)}"`);
    }
    const type = frame.type;
    if (MUST_SIGN.has(type)) {
      const signer = type === "USER_ADVERTISE" || type === "USER_REMOVE"
        ? this.#presenceSigner(frame)
        : undefined;
      if (!(await this.#verify(env, link, signer))) {
        throw new ProtocolError(
          "INVALID_SIG",
          `${type} from ${short(env.from)} has no valid signature`,
        );
      }
      if (!this.#hub.seen.add(await seenKey(env))) {
        this.#log.debug(`duplicate ${type} dropped`);
        return;
      }
    }
    await this.#dispatch(link, frame, text);
  }

  /**
   * Presence frames must be signed by the hosting server (`payload.server_id`, else `from`),
   * whoever relays them: a linked server cannot advertise or remove another server's users.
   */
  #presenceSigner(frame: Frame): string {
    const p = frame.p as { server_id?: string };
    return p.server_id ?? frame.env.from;
  }

  async #dispatch(link: PeerLink, frame: Frame, text: string): Promise<void> {
    const from = link.serverId!;
    const hub = this.#hub;
    switch (frame.type) {
      case "HEARTBEAT":
      case "ACK":
      case "ERROR":
        return;
      case "USER_ADVERTISE": {
        const serverId = frame.p.server_id ?? frame.env.from;
        let pubkey = frame.p.meta.pubkey;
        if (pubkey !== undefined) {
          try {
            pubkey = encodePublicKey(await importPublicKeyText(pubkey));
          } catch {
            pubkey = undefined;
          }
        }
        if (serverId === this.#me) return;
        const accepted = await hub.remoteAdvertise({
          userId: frame.p.user_id,
          serverId,
          pubkey,
          displayName: frame.p.meta.display_name,
        });
        if (accepted) this.broadcast(text, from);
        return;
      }
      case "USER_REMOVE": {
        const serverId = frame.p.server_id ?? frame.env.from;
        await hub.remoteRemove(frame.p.user_id, serverId);
        this.broadcast(text, from);
        return;
      }
      case "SERVER_DELIVER":
        return await this.#serverDeliver(link, frame.env, text);
      case "MSG_DIRECT":
      case "MSG_PUBLIC_CHANNEL":
      case "FILE_START":
      case "FILE_CHUNK":
      case "FILE_END": {
        if (isChannelTarget(frame.env.to)) {
          await hub.fanOut(frame.env, text, from);
          return;
        }
        // A user frame forwarded as-is between servers (as some peers do).
        const sender = typeof frame.env.payload["sender"] === "string"
          ? frame.env.payload["sender"]
          : frame.env.from;
        return await this.#deliverRemote(link, {
          type: frame.type,
          sender,
          recipient: frame.env.to,
          ts: frame.env.ts,
          payload: stripRelayKeys(frame.env.payload),
        }, text);
      }
      case "PUBLIC_CHANNEL_ADD":
      case "PUBLIC_CHANNEL_UPDATED":
      case "PUBLIC_CHANNEL_KEY_SHARE": {
        if (frame.type === "PUBLIC_CHANNEL_UPDATED") hub.notePublicVersion(frame.p.version);
        this.broadcast(text, from);
        if (frame.type !== "PUBLIC_CHANNEL_KEY_SHARE") {
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
        if (this.#accounts && (await this.#accounts.applyRemote(frame.p.record))) {
          this.broadcast(text, from);
        }
        return;
      case "LOGIN_FAILURE":
        await this.#accounts?.noteFailure(frame.p.username);
        this.broadcast(text, from);
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
      case "PUBKEY_REQUEST":
      case "PUBKEY_RESPONSE":
      case "CTRL_CLOSE":
        throw new ProtocolError("BAD_FRAME", `${frame.type} is not a server-to-server frame`);
      default: {
        const never: never = frame;
        throw new ProtocolError("UNKNOWN_TYPE", `Unhandled ${(never as Frame).type}`);
      }
    }
  }

  async #serverDeliver(link: PeerLink, env: Envelope, text: string): Promise<void> {
    const p = env.payload;
    // G56 wraps a whole user envelope: {user_id, type, from, to, ts, payload}.
    const inner =
      typeof p["payload"] === "object" && p["payload"] !== null && !Array.isArray(p["payload"]) &&
        typeof p["type"] === "string"
        ? p["payload"] as JsonObject
        : undefined;
    const rawType = inner
      ? String(p["type"])
      : typeof p["inner_type"] === "string"
      ? p["inner_type"]
      : "MSG_DIRECT";
    const type = (TYPE_ALIASES[rawType] ?? rawType) as string;
    if (
      !["MSG_DIRECT", "MSG_PUBLIC_CHANNEL", "FILE_START", "FILE_CHUNK", "FILE_END"].includes(type)
    ) {
      throw new ProtocolError(
        "UNKNOWN_TYPE",
        `SERVER_DELIVER carries unknown inner type "${type.slice(0, 64)}"`,
      );
    }
    const sender = inner && typeof p["from"] === "string"
      ? p["from"]
      : typeof p["sender"] === "string"
      ? p["sender"]
      : "";
    const tsValue = [p["orig_ts"], p["msg_ts"], inner ? p["ts"] : undefined].find((v) =>
      typeof v === "number"
    );
    const delivery: Delivery = {
      type: type as DeliveryType,
      sender,
      recipient: String(p["user_id"]),
      ts: typeof tsValue === "number" ? tsValue : env.ts,
      payload: inner ?? stripRelayKeys(p),
    };
    await this.#deliverRemote(link, delivery, text);
  }

  /** Delivers a frame that came from a server: local user, onward server, queue, or error. */
  async #deliverRemote(link: PeerLink, d: Delivery, text: string): Promise<void> {
    const hub = this.#hub;
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
      if (this.sendToServer(where.serverId, text)) return;
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
  });
}
