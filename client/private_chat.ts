/**
 * Peer-to-peer private chat: `/startprivate <user>`, `/accept <user>`, `/private <user> <text>`
 * and `/stopprivate <user>`. Messages of a private chat go over a direct WebSocket between the
 * two clients and never through a server.
 *
 * 1. The requester listens (`Deno.serve` with a WebSocket upgrade, on `--p2p-host` /
 *    `--p2p-port`, default 127.0.0.1 and a port the system picks) and sends the target, through
 *    the servers, an ordinary end-to-end encrypted and content-signed DM whose plaintext is a
 *    control message: {@linkcode P2P_PREFIX} + JSON `{type:"request", request_id, host, port,
 *    challenge, ts}`. The servers refuse it like any DM when the target blocked the requester.
 *    The target must be online.
 * 2. The target's user accepts with `/accept <user>` (never automatically: connecting shows the
 *    requester the target's network address, and an automatic connect would let anyone make the
 *    client dial an address of their choosing). The target's client dials the address.
 * 3. Both sides prove their keys: the dialer sends `P2P_HELLO` whose payload answers the
 *    requester's challenge and carries its own; the requester answers `P2P_WELCOME` answering
 *    that one. Each payload is `{kind:"socp-p2p-auth-v1", request_id, signer, peer, challenge}`
 *    signed with RSA-PSS like a transport signature, and checked against the key pinned for the
 *    peer (user_keys.ts). A request id is used once.
 * 4. Each message is a `P2P_MSG {ciphertext, content_sig}`: RSA-OAEP to the peer and signed
 *    exactly like a DM (`content_sig` over ciphertext, from, to, ts). `P2P_CLOSE {reason}` ends
 *    the chat (`/stopprivate`, `/logout`, `/quit`); a lost connection ends it too, and either
 *    way the other side is told.
 *
 * @module
 */

import {
  decryptText,
  encodeBase64Url,
  encryptText,
  type Envelope,
  isObject,
  type JsonObject,
  parseEnvelope,
  type PublicKey,
  serializeEnvelope,
  signContent,
  signedEnvelope,
  splitForOaep,
  type Transport,
  verifyContent,
  verifyEnvelope,
  webSocketTransport,
} from "../shared/mod.ts";
import { sendContent } from "./_content.ts";
import { errorMessage, ReplayCache } from "./_util.ts";
import type { BlockedAnswers } from "./blocked_answers.ts";
import type { Blocks } from "./blocks.ts";
import type { Clock } from "./clock.ts";
import type { Connection, Identity, SigVariantChoice } from "./connection.ts";
import { CommandError } from "./errors.ts";
import type { EventSink } from "./events.ts";
import { type Logger, silentLogger } from "./logger.ts";
import type { Presence } from "./presence.ts";
import type { ContentCheck, UserKeys } from "./user_keys.ts";

/** The start of the plaintext of a private-chat control message (sent as a DM). */
export const P2P_PREFIX = "socp-p2p-v1 ";
/** What the two sides sign when they authenticate a direct link. */
export const P2P_AUTH_KIND = "socp-p2p-auth-v1";
/** A request is answered within this long, or forgotten (ms). */
export const P2P_REQUEST_TTL_MS = 10 * 60_000;

/** Where the requester listens. */
export interface P2pListenOptions {
  /** Host to listen on and to tell the peer (default 127.0.0.1). */
  host?: string;
  /** Port (default 0: one the system picks). */
  port?: number;
}

/** Options for {@linkcode PrivateChats}. */
export interface PrivateChatsOptions {
  /** The user. */
  identity: Identity;
  /** The server connection (for the request DM). */
  connection: Connection;
  /** Who is online, names. */
  presence: Presence;
  /** Pinned keys of peers. */
  keys: UserKeys;
  /** The users we blocked. */
  blocks: Blocks;
  /** ERROR BLOCKED answers to the request. */
  blocked: BlockedAnswers;
  /** Receives `private`, `private_message`, `not_delivered` and warning events. */
  onEvent: EventSink;
  /** content_sig variant to sign with (`auto`: chosen per server). */
  sigVariant: SigVariantChoice;
  /** Where to listen. */
  listen?: P2pListenOptions;
  /** Time source. */
  clock: Clock;
  /** How long dialing and the key exchange may take (default 10 s). */
  connectTimeoutMs?: number;
  /** Debug logger. */
  log?: Logger;
}

/** Why a chat ends, as the other side is told. */
export type CloseReason = "stopped" | "quit" | "logout" | "disconnected";

const CLOSE_TEXT: Readonly<Record<CloseReason, string>> = {
  stopped: "closed it",
  quit: "quit",
  logout: "logged out",
  disconnected: "lost the connection to the server",
};

/** A request we sent and wait to be connected for. */
interface Outgoing {
  peer: string;
  challenge: string;
  at: number;
}

/** A request a peer sent us. */
interface Invite {
  requestId: string;
  host: string;
  port: number;
  challenge: string;
  at: number;
}

/** A control message (the plaintext of a DM after {@linkcode P2P_PREFIX}). */
type Control =
  | { type: "request"; request_id: string; host: string; port: number; challenge: string }
  | { type: "failed"; request_id: string; reason: string };

function randomChallenge(): string {
  return encodeBase64Url(crypto.getRandomValues(new Uint8Array(32)));
}

const HOST = /^[A-Za-z0-9.:_-]{1,253}$/;

/**
 * Parses a control message; undefined when `text` is not one or is malformed.
 *
 * @example
 * ```ts
 * import { parseControl, P2P_PREFIX } from "./private_chat.ts";
 * const text = P2P_PREFIX + JSON.stringify({ type: "failed", request_id: "r", reason: "x" });
 * console.assert(parseControl(text)?.type === "failed");
 * console.assert(parseControl("hello") === undefined);
 * ```
 */
export function parseControl(text: string): Control | undefined {
  if (!text.startsWith(P2P_PREFIX)) return undefined;
  let value: unknown;
  try {
    value = JSON.parse(text.slice(P2P_PREFIX.length));
  } catch {
    return undefined;
  }
  if (!isObject(value) || typeof value["request_id"] !== "string") return undefined;
  const requestId = value["request_id"].slice(0, 64);
  if (value["type"] === "request") {
    const { host, port, challenge } = value;
    if (
      typeof host !== "string" || !HOST.test(host) || typeof port !== "number" ||
      !Number.isInteger(port) || port < 1 || port > 65535 || typeof challenge !== "string" ||
      challenge.length < 16 || challenge.length > 128
    ) return undefined;
    return { type: "request", request_id: requestId, host, port, challenge };
  }
  if (value["type"] === "failed") {
    const reason = typeof value["reason"] === "string" ? value["reason"].slice(0, 200) : "";
    return { type: "failed", request_id: requestId, reason };
  }
  return undefined;
}

/** `ws://host:port/` for a listener address (IPv6 in brackets). */
export function p2pUrl(host: string, port: number): string {
  return `ws://${host.includes(":") ? `[${host}]` : host}:${port}/`;
}

/** One authenticated direct link. */
class PeerLink {
  readonly peer: string;
  readonly key: PublicKey;
  readonly transport: Transport;
  #lastTs = 0;
  #seen: ReplayCache = new ReplayCache(1024);
  closing = false;

  constructor(peer: string, key: PublicKey, transport: Transport) {
    this.peer = peer;
    this.key = key;
    this.transport = transport;
  }

  nextTs(now: number): number {
    this.#lastTs = Math.max(Math.floor(now), this.#lastTs + 1);
    return this.#lastTs;
  }

  isReplay(sig: string): boolean {
    return this.#seen.isReplay(sig);
  }
}

/**
 * The private chats of one session.
 *
 * @example
 * ```ts ignore
 * const chats = new PrivateChats({ identity, connection, presence, keys, blocks, blocked,
 *   onEvent, sigVariant: "A", clock: systemClock });
 * await chats.start("bob");          // listens, asks bob through the servers
 * // ... bob types /accept alice; both sides print {"event":"private","action":"opened"}
 * await chats.send("bob", "hi, directly");
 * await chats.closeAll("quit");
 * ```
 */
export class PrivateChats implements AsyncDisposable {
  #o: PrivateChatsOptions;
  #log: Logger;
  #links: Map<string, PeerLink> = new Map();
  #outgoing: Map<string, Outgoing> = new Map();
  #invites: Map<string, Invite> = new Map();
  #server: Deno.HttpServer<Deno.NetAddr> | undefined;
  #address: { host: string; port: number } | undefined;
  #tasks: Set<Promise<void>> = new Set();
  /** Incoming connections that have not proved their key yet. */
  #unauthenticated: Set<Transport> = new Set();
  #closed = false;

  /** Creates the feature; nothing listens until {@linkcode start}. */
  constructor(options: PrivateChatsOptions) {
    this.#o = options;
    this.#log = options.log ?? silentLogger;
  }

  /** The peers with an open private chat. */
  get peers(): string[] {
    return [...this.#links.keys()];
  }

  /** Where this client listens for private chats, once it does (`host:port`). */
  get address(): string | undefined {
    return this.#address && `${this.#address.host}:${this.#address.port}`;
  }

  /** `/startprivate <user>`: listens, and asks the user through the servers. */
  async start(target: string): Promise<void> {
    const { connection, presence, identity, keys, blocks, blocked } = this.#o;
    this.#open();
    connection.requireReady();
    const peer = presence.resolveUser(target) ?? await presence.findUser(target);
    if (peer === identity.userId) {
      throw new CommandError("You cannot start a private chat with yourself");
    }
    if (!presence.isOnline(peer)) {
      throw new CommandError(
        `${presence.who(peer)} is not online; a private chat needs both users online`,
      );
    }
    if ((await blocks.current()).has(peer)) {
      throw new CommandError(`You have blocked ${presence.who(peer)}; /unblock them first`);
    }
    if (this.#links.has(peer)) {
      throw new CommandError(
        `A private chat with ${presence.who(peer)} is open already; /private ${
          presence.nameOf(peer)
        } <text>`,
      );
    }
    const address = this.#listen();
    const key = await keys.keyFor(peer);
    const requestId = crypto.randomUUID();
    const challenge = randomChallenge();
    this.#expire();
    this.#outgoing.set(requestId, { peer, challenge, at: this.#o.clock.now() });
    const control = {
      type: "request",
      request_id: requestId,
      host: address.host,
      port: address.port,
      challenge,
    };
    const watch = blocked.watch([peer]);
    try {
      await sendContent(this.#o, {
        type: "MSG_DIRECT",
        to: peer,
        key,
        text: P2P_PREFIX + JSON.stringify(control),
      });
      await connection.barrier();
      if (blocked.report(watch, "private") > 0) {
        this.#outgoing.delete(requestId);
        return;
      }
    } catch (e) {
      this.#outgoing.delete(requestId);
      throw e;
    } finally {
      blocked.unwatch(watch);
    }
    this.#emit("requested", peer, { address: `${address.host}:${address.port}` });
  }

  /** `/accept <user>`: connects to the user who asked, and authenticates the link. */
  async accept(target: string): Promise<void> {
    const { presence, identity, keys } = this.#o;
    this.#open();
    this.#expire();
    const peer = this.#find(target, [...this.#invites.keys()]);
    const invite = peer === undefined ? undefined : this.#invites.get(peer);
    if (peer === undefined || invite === undefined) {
      throw new CommandError(
        `${target} has not asked you for a private chat (or the request expired)`,
      );
    }
    this.#invites.delete(peer);
    if (this.#links.has(peer)) {
      throw new CommandError(`A private chat with ${presence.who(peer)} is open already`);
    }
    const key = await keys.keyFor(peer);
    const url = p2pUrl(invite.host, invite.port);
    let transport: Transport;
    try {
      transport = await this.#dial(url);
    } catch (e) {
      const reason = `could not connect directly to ${invite.host}:${invite.port} (${
        errorMessage(e)
      }); a private chat needs a network path between the two clients (see --p2p-host)`;
      this.#emit("failed", peer, { reason });
      await this.#tellFailed(peer, invite.requestId, "could not connect to you directly");
      return;
    }
    try {
      const mine = randomChallenge();
      const hello = await signedEnvelope(identity.keys.privateKey, {
        type: "P2P_HELLO",
        from: identity.userId,
        to: peer,
        ts: Math.floor(this.#o.clock.now()),
        payload: {
          kind: P2P_AUTH_KIND,
          request_id: invite.requestId,
          signer: identity.userId,
          peer,
          challenge: invite.challenge,
          my_challenge: mine,
        },
      });
      transport.send(serializeEnvelope(hello));
      const reply = await this.#first(transport);
      if (reply.type === "P2P_REFUSED") {
        throw new Error(`refused: ${String(reply.payload["reason"] ?? "")}`);
      }
      const p = reply.payload;
      if (
        reply.type !== "P2P_WELCOME" || reply.from !== peer || p["kind"] !== P2P_AUTH_KIND ||
        p["request_id"] !== invite.requestId || p["signer"] !== peer ||
        p["peer"] !== identity.userId || p["challenge"] !== mine ||
        !(await verifyEnvelope(key, reply))
      ) {
        throw new Error("the other side did not prove the key pinned for it");
      }
    } catch (e) {
      transport.close(1008, "authentication failed");
      this.#emit("failed", peer, {
        reason: `the direct link was not authenticated: ${errorMessage(e)}`,
      });
      return;
    }
    this.#opened(peer, key, transport);
  }

  /** `/private <user> <text>`: over the direct link only; an error when there is none. */
  async send(target: string, text: string): Promise<void> {
    const { identity, presence, sigVariant } = this.#o;
    if (text.length === 0) throw new CommandError("Nothing to send");
    const peer = this.#find(target, [...this.#links.keys()]);
    const link = peer === undefined ? undefined : this.#links.get(peer);
    if (!link || link.closing || !link.transport.open) {
      const who = presence.resolveUser(target);
      throw new CommandError(
        `No private chat with ${who ? presence.who(who) : target}; /startprivate ${
          who ? presence.nameOf(who) : target
        } to ask for one (private messages never go through a server)`,
      );
    }
    const pieces = splitForOaep(text);
    for (const piece of pieces) {
      const ciphertext = await encryptText(link.key, piece);
      const ts = link.nextTs(this.#o.clock.now());
      const content_sig = await signContent(identity.keys.privateKey, {
        ciphertext,
        from: identity.userId,
        to: link.peer,
        ts,
      }, this.#o.connection.contentSigVariant(sigVariant));
      link.transport.send(serializeEnvelope({
        type: "P2P_MSG",
        from: identity.userId,
        to: link.peer,
        ts,
        payload: { ciphertext, content_sig },
      }));
    }
    this.#emit("sent", link.peer, { parts: pieces.length });
  }

  /** `/stopprivate <user>`. */
  async stop(target: string): Promise<void> {
    const peer = this.#find(target, [...this.#links.keys()]);
    if (peer === undefined) {
      const who = this.#o.presence.resolveUser(target);
      throw new CommandError(
        `No private chat with ${who ? this.#o.presence.who(who) : target} to stop`,
      );
    }
    await this.#close(peer, "stopped");
  }

  /** A user was blocked: a chat with them ends and their requests are forgotten. */
  onBlocked(userId: string): void {
    this.#invites.delete(userId);
    for (const [id, o] of this.#outgoing) if (o.peer === userId) this.#outgoing.delete(id);
    if (this.#links.has(userId)) void this.#close(userId, "stopped");
  }

  /**
   * A decrypted DM: true when it was a private-chat control message (handled here and not
   * shown as a DM).
   */
  divert(sender: string, text: string, check: ContentCheck): boolean {
    if (!text.startsWith(P2P_PREFIX)) return false;
    const { presence, blocks } = this.#o;
    if (!check.verified || !check.trusted) {
      this.#warn(
        `Ignored a private-chat message from ${
          presence.who(sender)
        }: its signature does not verify with the key pinned for that user`,
      );
      return true;
    }
    const control = parseControl(text);
    if (!control) {
      this.#warn(`Ignored a malformed private-chat message from ${presence.who(sender)}`);
      return true;
    }
    if (this.#closed || blocks.isBlocked(sender)) {
      this.#log.debug(`private-chat message from ${sender} ignored`);
      return true;
    }
    this.#expire();
    switch (control.type) {
      case "request":
        this.#invites.set(sender, {
          requestId: control.request_id,
          host: control.host,
          port: control.port,
          challenge: control.challenge,
          at: this.#o.clock.now(),
        });
        this.#emit("invited", sender, { address: `${control.host}:${control.port}` });
        return true;
      case "failed": {
        const pending = this.#outgoing.get(control.request_id);
        if (!pending || pending.peer !== sender) return true;
        this.#outgoing.delete(control.request_id);
        this.#emit("failed", sender, {
          reason: `${presence.nameOf(sender)} ${control.reason || "could not connect"}`,
        });
        return true;
      }
      default: {
        const never: never = control;
        return Boolean(never);
      }
    }
  }

  /** Ends every chat (telling the peers why) and stops listening. */
  async closeAll(reason: CloseReason): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    await Promise.all([...this.#links.keys()].map((peer) => this.#close(peer, reason)));
    this.#invites.clear();
    this.#outgoing.clear();
    for (const t of this.#unauthenticated) t.close(1001, "going away");
    const server = this.#server;
    this.#server = undefined;
    if (server) await server.shutdown().catch(() => {});
    await Promise.allSettled([...this.#tasks]);
  }

  /** Same as `closeAll("quit")`. */
  async [Symbol.asyncDispose](): Promise<void> {
    await this.closeAll("quit");
  }

  #open(): void {
    if (this.#closed) throw new CommandError("Not connected");
  }

  /** A peer among `ids` by id, id prefix or name; else the user `target` names, if in `ids`. */
  #find(target: string, ids: string[]): string | undefined {
    const { presence } = this.#o;
    const wanted = target.trim().toLowerCase();
    const exact = ids.filter((id) => id === wanted || presence.nameOf(id).toLowerCase() === wanted);
    if (exact.length === 1) return exact[0];
    if (exact.length > 1) {
      throw new CommandError(
        `"${target}" is ambiguous: ${
          exact.map((id) => presence.who(id, true)).join(", ")
        }; use the id`,
      );
    }
    const prefix = wanted.length >= 4 ? ids.filter((id) => id.startsWith(wanted)) : [];
    return prefix.length === 1 ? prefix[0] : undefined;
  }

  #expire(): void {
    const cutoff = this.#o.clock.now() - P2P_REQUEST_TTL_MS;
    for (const [id, o] of this.#outgoing) if (o.at < cutoff) this.#outgoing.delete(id);
    for (const [peer, i] of this.#invites) if (i.at < cutoff) this.#invites.delete(peer);
  }

  /** Starts the listener once; resolves with the address told to peers. */
  #listen(): { host: string; port: number } {
    if (this.#address) return this.#address;
    const host = this.#o.listen?.host ?? "127.0.0.1";
    const port = this.#o.listen?.port ?? 0;
    try {
      const server = Deno.serve({
        hostname: host,
        port,
        onListen: () => {},
        onError: () => new Response("error", { status: 500 }),
      }, (req) => this.#onRequest(req));
      this.#server = server;
      this.#address = { host, port: server.addr.port };
      return this.#address;
    } catch (e) {
      throw new CommandError(
        `Cannot listen for private chats on ${host}:${port}: ${
          errorMessage(e)
        }; choose another address with --p2p-host / --p2p-port`,
        { cause: e },
      );
    }
  }

  #onRequest(req: Request): Response {
    if (req.headers.get("upgrade")?.toLowerCase() !== "websocket") {
      return new Response("socp private chat: WebSocket only\n", { status: 426 });
    }
    if (this.#closed || this.#unauthenticated.size >= 8) {
      return new Response("busy\n", { status: 503 });
    }
    const { socket, response } = Deno.upgradeWebSocket(req);
    const transport = webSocketTransport(socket);
    this.#unauthenticated.add(transport);
    this.#track(
      this.#welcome(transport).finally(() => this.#unauthenticated.delete(transport)),
    );
    return response;
  }

  /** The requester's side of the key exchange on a new incoming connection. */
  async #welcome(transport: Transport): Promise<void> {
    const { identity, keys, presence } = this.#o;
    let hello: Envelope;
    try {
      hello = await this.#first(transport);
    } catch (e) {
      this.#log.debug(`direct connection without a hello: ${errorMessage(e)}`);
      transport.close(1008, "no hello");
      return;
    }
    const refuse = (reason: string): void => {
      this.#log.debug(`direct connection refused: ${reason}`);
      transport.send(serializeEnvelope({
        type: "P2P_REFUSED",
        from: identity.userId,
        to: hello.from,
        ts: Math.floor(this.#o.clock.now()),
        payload: { reason },
      }));
      transport.close(1008, "refused");
    };
    const p = hello.payload;
    const requestId = typeof p["request_id"] === "string" ? p["request_id"] : "";
    const pending = this.#outgoing.get(requestId);
    if (
      hello.type !== "P2P_HELLO" || !pending || pending.peer !== hello.from ||
      hello.to !== identity.userId || p["kind"] !== P2P_AUTH_KIND ||
      p["signer"] !== hello.from || p["peer"] !== identity.userId ||
      p["challenge"] !== pending.challenge || typeof p["my_challenge"] !== "string" ||
      p["my_challenge"].length < 16 || p["my_challenge"].length > 128
    ) {
      return refuse("unknown or expired request");
    }
    const peer = pending.peer;
    let key: PublicKey;
    try {
      key = await keys.keyFor(peer);
    } catch (e) {
      return refuse(`no key for the peer: ${errorMessage(e)}`);
    }
    if (!(await verifyEnvelope(key, hello))) {
      this.#warn(
        `A direct connection claiming to be ${
          presence.who(peer)
        } did not prove the key pinned for that user; refused`,
      );
      return refuse("signature does not verify");
    }
    // Used once: a copy of this hello cannot open a second link.
    this.#outgoing.delete(requestId);
    if (this.#links.has(peer) || this.#closed) return refuse("a private chat is open already");
    const welcome = await signedEnvelope(identity.keys.privateKey, {
      type: "P2P_WELCOME",
      from: identity.userId,
      to: peer,
      ts: Math.floor(this.#o.clock.now()),
      payload: {
        kind: P2P_AUTH_KIND,
        request_id: requestId,
        signer: identity.userId,
        peer,
        challenge: p["my_challenge"],
      },
    });
    transport.send(serializeEnvelope(welcome));
    this.#opened(peer, key, transport);
  }

  /** Registers an authenticated link and reads from it until it closes. */
  #opened(peer: string, key: PublicKey, transport: Transport): void {
    const link = new PeerLink(peer, key, transport);
    this.#links.set(peer, link);
    this.#emit("opened", peer);
    this.#track(this.#read(link));
  }

  async #read(link: PeerLink): Promise<void> {
    let reason: string | undefined;
    try {
      for await (const text of link.transport) {
        let env: Envelope;
        try {
          env = parseEnvelope(text, { maxBytes: 65_536 });
        } catch {
          this.#log.debug("malformed frame on a direct link dropped");
          continue;
        }
        if (env.type === "P2P_CLOSE") {
          const r = env.payload["reason"];
          const why = typeof r === "string" && r in CLOSE_TEXT ? r as CloseReason : "stopped";
          reason = `${this.#o.presence.nameOf(link.peer)} ${CLOSE_TEXT[why]}`;
          break;
        }
        if (env.type === "P2P_MSG") await this.#onMessage(link, env);
      }
    } catch (e) {
      this.#log.debug(`direct link read failed: ${errorMessage(e)}`);
    }
    if (link.transport.open) link.transport.close(1000, "bye");
    if (this.#links.get(link.peer) !== link) return;
    this.#links.delete(link.peer);
    if (link.closing) return;
    this.#emit("closed", link.peer, {
      reason: reason ?? "the direct connection was lost",
      by_peer: true,
    });
  }

  async #onMessage(link: PeerLink, env: Envelope): Promise<void> {
    const { identity, presence } = this.#o;
    const ciphertext = env.payload["ciphertext"];
    const sig = env.payload["content_sig"];
    if (
      env.from !== link.peer || env.to !== identity.userId || typeof ciphertext !== "string" ||
      typeof sig !== "string"
    ) {
      this.#log.debug("P2P_MSG with wrong fields dropped");
      return;
    }
    if (link.isReplay(sig)) return;
    const fields = { ciphertext, from: link.peer, to: identity.userId };
    if ((await verifyContent(link.key, sig, fields, [env.ts])) === undefined) {
      this.#warn(
        `Dropped a private message from ${presence.who(link.peer)}: its signature does not verify`,
      );
      return;
    }
    let text: string;
    try {
      text = await decryptText(identity.keys.privateKey, ciphertext);
    } catch {
      this.#warn(`could not decrypt a private message from ${presence.who(link.peer)}`);
      return;
    }
    this.#o.onEvent({
      event: "private_message",
      from: link.peer,
      from_name: presence.nameOf(link.peer),
      text,
    });
  }

  async #close(peer: string, reason: CloseReason): Promise<void> {
    const link = this.#links.get(peer);
    if (!link) return;
    link.closing = true;
    this.#links.delete(peer);
    link.transport.send(serializeEnvelope({
      type: "P2P_CLOSE",
      from: this.#o.identity.userId,
      to: peer,
      ts: Math.floor(this.#o.clock.now()),
      payload: { reason },
    }));
    link.transport.close(1000, "bye");
    const stop = new AbortController();
    await Promise.race([link.transport.closed, this.#o.clock.sleep(2000, stop.signal)]);
    stop.abort();
    this.#emit("closed", peer, {
      reason: reason === "stopped" ? "you closed it" : `you ${CLOSE_TEXT[reason]}`,
    });
  }

  /** Opens a WebSocket to a peer's listener, within the connect timeout. */
  async #dial(url: string): Promise<Transport> {
    let ws: WebSocket;
    try {
      ws = new WebSocket(url);
    } catch (e) {
      throw new Error(errorMessage(e));
    }
    const transport = webSocketTransport(ws);
    const timeoutMs = this.#o.connectTimeoutMs ?? 10_000;
    const stop = new AbortController();
    const opened = await Promise.race([
      new Promise<boolean>((resolve) => {
        ws.addEventListener("open", () => resolve(true), { once: true });
        ws.addEventListener("close", () => resolve(false), { once: true });
      }),
      this.#o.clock.sleep(timeoutMs, stop.signal).then(() => false),
    ]);
    stop.abort();
    if (!opened) {
      transport.close();
      await transport.closed;
      throw new Error("connection refused or timed out");
    }
    return transport;
  }

  /** The first frame on a new direct connection, within the connect timeout. */
  async #first(transport: Transport): Promise<Envelope> {
    const iterator = transport[Symbol.asyncIterator]();
    const stop = new AbortController();
    const timeoutMs = this.#o.connectTimeoutMs ?? 10_000;
    try {
      const next = await Promise.race([
        iterator.next(),
        this.#o.clock.sleep(timeoutMs, stop.signal).then(() => "timeout" as const),
      ]);
      if (next === "timeout") throw new Error("no answer in time");
      if (next.done) throw new Error("the connection closed");
      return parseEnvelope(next.value, { maxBytes: 65_536 });
    } finally {
      stop.abort();
    }
  }

  /** Tells the requester, through the servers, that the link could not be made. */
  async #tellFailed(peer: string, requestId: string, reason: string): Promise<void> {
    const { connection, keys } = this.#o;
    if (!connection.ready) return;
    try {
      const key = await keys.keyFor(peer);
      const control: JsonObject = { type: "failed", request_id: requestId, reason };
      await sendContent(this.#o, {
        type: "MSG_DIRECT",
        to: peer,
        key,
        text: P2P_PREFIX + JSON.stringify(control),
      });
    } catch (e) {
      this.#log.debug(`could not tell ${peer} that the link failed: ${errorMessage(e)}`);
    }
  }

  #track(task: Promise<void>): void {
    const t = task.catch((e) => this.#log.debug(`private chat task failed: ${errorMessage(e)}`));
    this.#tasks.add(t);
    void t.finally(() => this.#tasks.delete(t));
  }

  #emit(
    action: "requested" | "invited" | "opened" | "closed" | "failed" | "sent",
    peer: string,
    extra: { address?: string; reason?: string; by_peer?: boolean; parts?: number } = {},
  ): void {
    this.#o.onEvent({
      event: "private",
      action,
      peer,
      peer_name: this.#o.presence.nameOf(peer),
      ...extra,
    });
  }

  #warn(text: string): void {
    this.#o.onEvent({ event: "warn", text });
  }
}
