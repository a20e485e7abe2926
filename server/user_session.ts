/**
 * One user's connection: USER_HELLO checks, then every frame the user sends (rate limits,
 * identity checks, routing, list and key queries) until the connection closes.
 *
 * @module
 */

import {
  decodeFrame,
  encodePublicKey,
  type Envelope,
  type ErrorCode,
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
  type Transport,
  type UserHello,
  verifyEnvelope,
} from "../shared/mod.ts";
import { mayCarryKey, OrderedSender, socpMarker, withKeysIn } from "./peer_traits.ts";
import type { ServerConfig } from "./config.ts";
import {
  type Delivery,
  type DeliveryType,
  type Hub,
  isChannelTarget,
  USER_CAPS,
  type UserLink,
} from "./hub.ts";
import { short } from "./log.ts";
import { type Clock, type KeyedTokenBuckets, TokenBucket } from "./rate_limit.ts";
import type { SignLane } from "./sign_scheduler.ts";
import { PRESENCE_BATCH_CAP, PresenceBatcher } from "./presence_batch.ts";
import { type Accounts, addressOf } from "./accounts.ts";
import type { BlockLists } from "./block_lists.ts";
import type { ChatGroups } from "./chat_groups.ts";

/** Frame types a user may send without a transport signature even after a proven hello. */
const UNSIGNED_OK: ReadonlySet<string> = new Set(["HEARTBEAT", "CTRL_CLOSE", "ACK", "ERROR"]);

/** Most frames one connection may have in flight (signing) before reading pauses. */
const MAX_IN_FLIGHT = 64;

/**
 * Backpressure: when this connection's oldest signature has waited longer than this for the
 * server's signing scheduler, reading pauses until at most {@linkcode RESUME_PENDING} of its
 * signatures are left, so a connection that sends faster than its share of the cores is slowed
 * instead of growing a queue of signatures. What it sends meanwhile waits in its transport's
 * inbox, which is bounded (see `webSocketTransport`'s `maxQueuedChars`).
 */
const SIGN_BACKLOG_MS = 200;
const RESUME_PENDING = 4;

/**
 * ACCOUNTS_REQUEST per connection: 5 per 10 s, bursts of 10 (each one reads every account
 * record; matching is linear-time, see account_pattern.ts).
 */
const ACCOUNTS_RATE = { perTenSeconds: 5, burst: 10 } as const;

/**
 * PRESENCE_SINCE_REQUEST per connection: 10 per 10 s, bursts of 10 (each one walks every user
 * seen offline, up to 100,000 entries).
 */
const PRESENCE_SINCE_RATE = { perTenSeconds: 10, burst: 10 } as const;

/**
 * Takes a token from a per-connection budget, or refuses the frame with
 * `ERROR RATE_LIMIT "<limit>; try again in N s"`.
 */
function takeOrRefuse(bucket: TokenBucket, limit: string): void {
  if (bucket.take()) return;
  throw new ProtocolError(
    "RATE_LIMIT",
    `${limit}; try again in ${Math.ceil(bucket.waitMs() / 1000)} s`,
  );
}

/** Sends signed ERROR frames on one link, rate limited, never in answer to an ERROR. */
export class ErrorSender {
  #hub: Hub;
  #send: (text: string) => void;
  #bucket: TokenBucket;

  /** Creates a sender allowing `rate` errors per second. */
  constructor(
    hub: Hub,
    send: (text: string) => void,
    options: { rate?: number; clock?: Clock } = {},
  ) {
    this.#hub = hub;
    this.#send = send;
    const rate = options.rate ?? 10;
    this.#bucket = new TokenBucket({
      rate,
      burst: rate * 2,
      ...(options.clock ? { clock: options.clock } : {}),
    });
  }

  /** Sends `ERROR {code, detail}` to `to`, unless over the error rate. */
  async send(code: ErrorCode | string, detail: string, to: string): Promise<void> {
    if (!this.#bucket.take()) return;
    this.#send(await this.#hub.emit("ERROR", to, { code, detail }));
  }
}

/** Checks a USER_HELLO; returns the normalised public key text or throws ProtocolError. */
export async function checkHello(
  hello: UserHello,
  hub: Hub,
): Promise<
  { pubkey: string; displayName: string | undefined; proven: boolean; caps: string[] }
> {
  const env = hello.env;
  const claimed: string = env.from;
  if (!isUuid(env.from)) {
    throw new ProtocolError(
      "BAD_FRAME",
      `USER_HELLO "from" must be a UUID, got "${claimed.slice(0, 64)}"`,
    );
  }
  let pub;
  try {
    pub = await importPublicKeyText(hello.p.pubkey);
    if (hello.p.enc_pubkey && hello.p.enc_pubkey !== hello.p.pubkey) {
      await importPublicKeyText(hello.p.enc_pubkey);
    }
  } catch (error) {
    const reason = error instanceof KeyError ? error.message : "malformed key";
    throw new ProtocolError("BAD_KEY", `USER_HELLO key rejected: ${reason}`);
  }
  if (env.sig !== undefined && !(await verifyEnvelope(pub, env))) {
    throw new ProtocolError("INVALID_SIG", "USER_HELLO signature does not verify with its pubkey");
  }
  const proven = provesPossession(hello, hub);
  const pubkey = encodePublicKey(pub);
  const known = await hub.store.getUser(env.from);
  if (known && !known.deleted && known.pubkey !== pubkey) {
    throw new ProtocolError(
      "BAD_KEY",
      `User ${env.from} is registered with a different public key`,
    );
  }
  if (known && !known.deleted && known.pake_password && !proven) {
    throw new ProtocolError(
      "INVALID_SIG",
      `User ${env.from} has an account; USER_HELLO must be signed with "user_id" and "hello_ts"`,
    );
  }
  if (!proven && (!known || known.deleted)) {
    // Without proof of possession a hello may not bind someone else's key to a new id.
    const holder = await hub.store.getUserByPubkey(pubkey);
    if (holder && holder.user_id !== env.from) {
      throw new ProtocolError(
        "BAD_KEY",
        "That public key belongs to another user; a USER_HELLO that proves possession " +
          '(signed, with "user_id" and "hello_ts") is needed to use it for a new id',
      );
    }
  }
  if (!known || known.deleted) {
    await hub.store.putUser({
      user_id: env.from,
      pubkey,
      privkey_store: "",
      pake_password: "",
      meta: JSON.stringify(
        hello.p.meta.display_name ? { display_name: hello.p.meta.display_name } : {},
      ),
      version: 1,
      username: null,
      home_server: hub.serverId,
      updated_at: hub.now(),
      registered_at: 0,
      deleted: false,
      proof: "",
    });
    await hub.hooks.newUser?.(env.from);
  }
  // Only capabilities this server knows are advertised (a client cannot inject meta).
  const caps = (hello.p.caps ?? []).filter((c) => USER_CAPS.includes(c));
  return { pubkey, displayName: hello.p.meta.display_name, proven, caps };
}

/** How far a USER_HELLO's `hello_ts` may be from this server's clock. */
const HELLO_SKEW_MS = 5 * 60_000;

/**
 * True when the hello proves possession of its key: signed (already verified by the caller),
 * with `payload.user_id` equal to `from` and a fresh `payload.hello_ts`, never seen before.
 * Throws INVALID_SIG when it claims a proof that fails; false when it claims none (hellos of
 * other implementations' clients, accepted with the limits described in docs/security.md).
 */
function provesPossession(hello: UserHello, hub: Hub): boolean {
  const env = hello.env;
  const p = env.payload;
  if (env.sig === undefined || (p["user_id"] === undefined && p["hello_ts"] === undefined)) {
    return false;
  }
  if (p["user_id"] !== env.from) {
    throw new ProtocolError("INVALID_SIG", "USER_HELLO proof is for another user id");
  }
  const ts = p["hello_ts"];
  if (typeof ts !== "number" || Math.abs(ts - hub.now()) > HELLO_SKEW_MS) {
    throw new ProtocolError(
      "INVALID_SIG",
      "USER_HELLO proof is stale or has no hello_ts; check this computer's clock",
    );
  }
  if (!hub.seen.add(`USER_HELLO|${env.sig}`)) {
    throw new ProtocolError("INVALID_SIG", "USER_HELLO proof was already used (replay)");
  }
  return true;
}

/** Options for {@linkcode UserSession}. */
export interface UserSessionOptions {
  /** The routing core. */
  hub: Hub;
  /** Limits. */
  config: ServerConfig;
  /** Remote address, for logs. */
  remote: string;
  /** Account service (register, passwd, delete, list). */
  accounts?: Accounts;
  /**
   * REGISTER attempts per client address (see `addressOf`), shared by all connections of a
   * server; none when absent.
   */
  registerLimit?: KeyedTokenBuckets;
  /** Block lists (enforced on every delivery). */
  blocks?: BlockLists;
  /** Named group chats. */
  groups?: ChatGroups;
  /** Clock (ms). */
  clock?: Clock;
  /** This connection's lane in the server's signing scheduler, for backpressure. */
  lane?: SignLane;
}

/** One user connection after its first frame. */
export class UserSession implements UserLink {
  #transport: Transport;
  #hub: Hub;
  #config: ServerConfig;
  #remote: string;
  #userId = "";
  #errors: ErrorSender;
  #rate: TokenBucket;
  #outbox: Promise<void> = Promise.resolve();
  #inFlight = 0;
  /** Resolves reading again once the frames in flight are down to half the window. */
  #resume: (() => void) | undefined;
  #rejectedFiles = new Set<string>();
  #accounts: Accounts | undefined;
  #blocks: BlockLists | undefined;
  #groups: ChatGroups | undefined;
  #registerLimit: KeyedTokenBuckets | undefined;
  #accountsRate: TokenBucket;
  #presenceSinceRate: TokenBucket;
  /** USER_UPDATE: each one is gossiped to the whole mesh, so a few per minute at most. */
  #renameRate: TokenBucket;
  #lastActive = Date.now();
  /** When the frame being handled arrived (metrics clock), for the DM delivery histogram. */
  #arrivedAt = 0;
  /** The key the user said hello with: every `sig` the user sends must verify with it. */
  #key: PublicKey | undefined;
  /**
   * The hello proved possession of the key (socp's client): every frame must then be signed.
   * Other implementations' clients may send unsigned frames (reference §5 [REC]).
   */
  #proven = false;
  /** How keys are written to this client: as it wrote its own in USER_HELLO. */
  #keyEncoding: KeyEncoding = "der";
  #sender: OrderedSender;
  #lane: SignLane | undefined;
  /** Presence batching, when the client announced {@linkcode PRESENCE_BATCH_CAP}. */
  #presence: PresenceBatcher | undefined;

  /** Wraps a transport whose first frame was USER_HELLO. */
  constructor(transport: Transport, options: UserSessionOptions) {
    this.#transport = transport;
    this.#hub = options.hub;
    this.#config = options.config;
    this.#remote = options.remote;
    this.#accounts = options.accounts;
    this.#blocks = options.blocks;
    this.#groups = options.groups;
    this.#lane = options.lane;
    const clock = options.clock ? { clock: options.clock } : {};
    this.#errors = new ErrorSender(this.#hub, (t) => this.sendText(t), clock);
    this.#rate = new TokenBucket({ rate: this.#config.rate, burst: this.#config.burst, ...clock });
    this.#registerLimit = options.registerLimit;
    this.#sender = new OrderedSender((text) => this.#transport.send(text));
    this.#renameRate = new TokenBucket({
      rate: RENAME_RATE.perMinute / 60,
      burst: RENAME_RATE.burst,
      ...clock,
    });
    this.#presenceSinceRate = new TokenBucket({
      rate: PRESENCE_SINCE_RATE.perTenSeconds / 10,
      burst: PRESENCE_SINCE_RATE.burst,
      ...clock,
    });
    this.#accountsRate = new TokenBucket({
      rate: ACCOUNTS_RATE.perTenSeconds / 10,
      burst: ACCOUNTS_RATE.burst,
      ...clock,
    });
  }

  /** The user id this connection said hello as. */
  get userId(): string {
    return this.#userId;
  }

  /**
   * Sends a frame to the user. For a client that writes keys as PEM text, a frame carrying keys
   * is re-issued with them in that form first (frames keep their order).
   */
  sendText(text: string): void {
    this.#presence?.flush(); // presence collected so far goes first: order is kept
    this.#send(text);
  }

  /** Sends a presence frame, collected into a batch when the client takes them. */
  sendPresence(text: string): void {
    if (this.#presence) this.#presence.add(text);
    else this.sendText(text);
  }

  #send(text: string): void {
    if (this.#keyEncoding === "der" || !mayCarryKey(text)) return this.#sender.push(text);
    const encoding = this.#keyEncoding;
    this.#sender.push(text, (t) => withKeysIn(t, encoding, (fields) => this.#hub.reissue(fields)));
  }

  /** Closes the connection. */
  close(code: number, reason: string): void {
    this.#transport.close(code, reason);
  }

  /** Handles the hello, then every frame until the connection closes. */
  async run(hello: UserHello, frames: AsyncIterator<string>): Promise<void> {
    const hub = this.#hub;
    let checked;
    try {
      checked = await checkHello(hello, hub);
    } catch (error) {
      const code: ErrorCode = error instanceof ProtocolError ? error.code : "BAD_FRAME";
      hub.log.warn(`rejected USER_HELLO from ${this.#remote}: ${(error as Error).message}`);
      await this.#errors.send(code, (error as Error).message, hello.env.from.slice(0, 64));
      this.close(1008, code);
      return;
    }
    const userId = hello.env.from;
    if (hub.localLink(userId)) {
      hub.log.warn(`NAME_IN_USE: ${short(userId)} is already connected (from ${this.#remote})`);
      await this.#errors.send("NAME_IN_USE", `User ${userId} is already connected here`, userId);
      this.close(1008, "NAME_IN_USE");
      return;
    }
    const elsewhere = hub.onlineUser(userId);
    const moved = elsewhere !== undefined && elsewhere.serverId !== hub.serverId &&
      checked.proven && hub.mesh?.isGroupServer(elsewhere.serverId) === true;
    if (moved) {
      // A fresh proof of the key: the user failed over from a server of the group (which may
      // be dead but not yet declared so); the new session wins and is advertised.
      hub.log.info(`user ${short(userId)} moved here from server ${short(elsewhere.serverId)}`);
    } else if (elsewhere && elsewhere.serverId !== hub.serverId) {
      hub.log.warn(
        `NAME_IN_USE: ${short(userId)} is connected on server ${short(elsewhere.serverId)}`,
      );
      await this.#errors.send(
        "NAME_IN_USE",
        `User ${userId} is already connected on server ${elsewhere.serverId}`,
        userId,
      );
      this.close(1008, "NAME_IN_USE");
      return;
    }
    this.#userId = userId;
    if (hello.p.caps?.includes(PRESENCE_BATCH_CAP)) {
      this.#presence = new PresenceBatcher({
        from: hub.serverId,
        to: userId,
        send: (text) => this.#send(text),
        clock: () => hub.now(),
      });
    }
    this.#key = await importPublicKeyText(checked.pubkey);
    this.#proven = checked.proven;
    this.#keyEncoding = checked.proven
      ? keyEncodingOf(hello.p.pubkey)
      : this.#config.keyEncoding ?? keyEncodingOf(hello.p.pubkey);
    this.sendText(
      await hub.emit("ACK", userId, {
        msg_ref: "USER_HELLO_OK",
        server_id: hub.serverId,
        server_pub: hub.identity.publicKeyText,
        // The operator's other servers, so the client can fail over to them.
        group: (hub.mesh?.groupServers() ?? []).map((g) => ({ ...g })),
        socp: socpMarker(),
      }),
    );
    await hub.addLocalUser(this, {
      userId,
      pubkey: checked.pubkey,
      displayName: checked.displayName,
      ...(checked.caps.length > 0 ? { caps: checked.caps } : {}),
    });
    try {
      await this.#loop(frames);
    } finally {
      await this.#outbox;
      this.#presence?.flush();
      await this.#sender.flushed();
      await hub.removeLocalUser(this);
      this.#presence?.[Symbol.dispose]();
    }
  }

  async #next(frames: AsyncIterator<string>): Promise<IteratorResult<string> | "idle"> {
    const idle = this.#config.idleTimeoutMs;
    if (idle <= 0) return await frames.next();
    let timer: ReturnType<typeof setTimeout> | undefined;
    const left = Math.max(0, this.#lastActive + idle - Date.now());
    const timeout = new Promise<"idle">((resolve) => {
      timer = setTimeout(() => resolve("idle"), left);
    });
    try {
      return await Promise.race([frames.next(), timeout]);
    } finally {
      clearTimeout(timer);
    }
  }

  async #loop(frames: AsyncIterator<string>): Promise<void> {
    let pending: Promise<IteratorResult<string>> | undefined;
    while (true) {
      if (pending === undefined && this.#lane?.congested(SIGN_BACKLOG_MS)) {
        this.#hub.metrics.backpressure();
        await this.#lane.drainedTo(RESUME_PENDING);
      }
      pending ??= frames.next();
      const next = await this.#next({ next: () => pending! });
      if (next === "idle") {
        const seconds = Math.round(this.#config.idleTimeoutMs / 1000);
        this.#hub.log.info(`user ${short(this.#userId)} idle for ${seconds} s; logged out`);
        await this.#errors.send(
          "TIMEOUT",
          `Logged out after ${seconds} s without activity`,
          this.#userId,
        );
        this.close(1000, "Idle timeout");
        return;
      }
      pending = undefined;
      if (next.done) return;
      if (!this.#rate.take()) {
        await this.#errors.send(
          "RATE_LIMIT",
          `More than ${plural(this.#config.rate, "frame")}/s; frame dropped`,
          this.#userId,
        );
        continue;
      }
      if (isHeartbeat(next.value)) {
        this.#hub.metrics.frameIn("HEARTBEAT");
        continue; // liveness only: not activity, nothing to do
      }
      this.#lastActive = Date.now();
      try {
        await this.#handle(next.value);
      } catch (error) {
        if (error instanceof ProtocolError) {
          await this.#errors.send(error.code, error.message, this.#userId);
        } else {
          this.#hub.log.error(
            `internal error on ${short(this.#userId)}: ${(error as Error).stack}`,
          );
          await this.#errors.send(
            "INTERNAL_ERROR",
            "The server failed to handle that frame",
            this.#userId,
          );
        }
      }
      if (this.#transport.open === false) return;
    }
  }

  /**
   * Queues a send after every earlier one, so deliveries keep their order. When the recipient
   * left between routing and sending, the delivery goes to the offline queue instead.
   */
  async #ordered(delivery: Delivery, send: Promise<() => boolean>): Promise<void> {
    this.#inFlight++;
    this.#outbox = this.#outbox.then(async () => {
      try {
        if (!(await send)()) await this.#hub.hooks.offline?.(delivery);
      } catch (error) {
        this.#hub.log.error(`delivery failed: ${(error as Error).message}`);
      } finally {
        this.#inFlight--;
        if (this.#resume && this.#inFlight <= MAX_IN_FLIGHT / 2) {
          this.#resume();
          this.#resume = undefined;
        }
      }
    });
    // A full window pauses reading until half of it is done (not all of it: the rest keeps the
    // cores busy meanwhile).
    if (this.#inFlight >= MAX_IN_FLIGHT) {
      await new Promise<void>((resolve) => (this.#resume = resolve));
    }
  }

  async #handle(text: string): Promise<void> {
    this.#arrivedAt = this.#hub.metrics.now();
    const env = parseEnvelope(text, { maxBytes: this.#config.maxUserFrameBytes });
    if (env.type === "ERROR") {
      this.#hub.metrics.frameIn("ERROR");
      this.#hub.log.info(
        `ERROR from user ${short(this.#userId)}: ${JSON.stringify(env.payload).slice(0, 200)}`,
      );
      return;
    }
    const frame = decodeFrame(env);
    this.#hub.metrics.frameIn(frame?.type);
    if (frame === undefined) {
      throw new ProtocolError("UNKNOWN_TYPE", `Unknown message type "${env.type.slice(0, 64)}"`);
    }
    if (env.from !== this.#userId && frame.type !== "HEARTBEAT" && frame.type !== "CTRL_CLOSE") {
      throw new ProtocolError(
        "IDENTITY_MISMATCH",
        `This connection is user ${this.#userId}; a frame from "${
          env.from.slice(0, 64)
        }" is refused`,
      );
    }
    await this.#checkSig(env);
    await this.#dispatch(frame);
  }

  /**
   * A `sig` that is present must verify with the user's key; a client whose hello proved
   * possession of its key must sign every frame (reference §5: `sig` is required on user
   * content), while other implementations' clients may leave it out.
   */
  async #checkSig(env: Envelope): Promise<void> {
    if (env.sig !== undefined) {
      if (this.#key && !(await verifyEnvelope(this.#key, env))) {
        throw new ProtocolError(
          "INVALID_SIG",
          `${env.type.slice(0, 64)} signature does not verify with this user's key; frame dropped`,
        );
      }
      return;
    }
    if (this.#proven && !UNSIGNED_OK.has(env.type)) {
      throw new ProtocolError(
        "INVALID_SIG",
        `Message type '${env.type.slice(0, 64)}' requires signature; frame dropped`,
      );
    }
  }

  async #dispatch(frame: Frame): Promise<void> {
    const hub = this.#hub;
    switch (frame.type) {
      case "MSG_DIRECT":
      case "MSG_PUBLIC_CHANNEL":
      case "FILE_CHUNK":
      case "FILE_END":
        return await this.#deliver(frame.type, frame.env);
      case "FILE_START": {
        if (frame.p.size > this.#config.maxFileBytes) {
          this.#rejectedFiles.add(frame.p.file_id);
          throw new ProtocolError(
            "FILE_TOO_LARGE",
            `File "${
              frame.p.name.slice(0, 100)
            }" is ${frame.p.size} bytes; the limit is ${this.#config.maxFileBytes}`,
          );
        }
        return await this.#deliver(frame.type, frame.env);
      }
      case "LIST_REQUEST": {
        // Users who blocked this user are not shown to it.
        const users = hub.onlineUsers().filter((u) => !hub.hiddenFrom(this.#userId, u.userId));
        const ids = users.map((u) => u.userId);
        const names: JsonObject = {};
        for (const u of users) if (u.displayName !== undefined) names[u.userId] = u.displayName;
        this.sendText(
          await hub.emit("LIST_RESPONSE", this.#userId, {
            online_users: ids,
            users: ids,
            display_names: names,
          }),
        );
        return;
      }
      case "PUBKEY_REQUEST": {
        const id = frame.p.user_id;
        const online = hub.onlineUser(id);
        const stored = online?.pubkey ? undefined : await hub.store.getUser(id);
        let pubkey = online?.pubkey ?? (stored && !stored.deleted ? stored.pubkey : undefined);
        if (pubkey === undefined && online !== undefined && online.serverId !== hub.serverId) {
          // A user of a server whose USER_ADVERTISE carries no key: ask that server.
          pubkey = await hub.fetchRemoteKey(online);
        }
        if (pubkey === undefined) {
          throw new ProtocolError("USER_NOT_FOUND", `No key known for user "${id.slice(0, 64)}"`);
        }
        const payload: JsonObject = { user_id: id, pubkey };
        const name = online?.displayName ?? displayNameOf(stored?.meta);
        if (name !== undefined) payload.display_name = name;
        this.sendText(await hub.emit("PUBKEY_RESPONSE", this.#userId, payload));
        return;
      }
      case "REGISTER": {
        this.#checkRegisterRate();
        const record = await this.#service().register(
          this.#userId,
          frame.p.username,
          frame.p.privkey_store,
          frame.p.verifier,
          { seq: frame.p.seq, recordSig: frame.p.record_sig },
        );
        this.sendText(
          await hub.emit("ACK", this.#userId, {
            msg_ref: "REGISTER_OK",
            username: record.username ?? "",
            seq: record.version,
          }),
        );
        return;
      }
      case "PASSWD": {
        const record = await this.#service().passwd(
          this.#userId,
          frame.p.auth_key,
          frame.p.privkey_store,
          frame.p.verifier,
          { seq: frame.p.seq, recordSig: frame.p.record_sig, address: addressOf(this.#remote) },
        );
        this.sendText(
          await hub.emit("ACK", this.#userId, { msg_ref: "PASSWD_OK", seq: record.version }),
        );
        return;
      }
      case "DELETE_ACCOUNT": {
        const username = await this.#service().deleteAccount(this.#userId, frame.p.auth_key, {
          seq: frame.p.seq,
          recordSig: frame.p.record_sig,
          address: addressOf(this.#remote),
        });
        this.sendText(await hub.emit("ACK", this.#userId, { msg_ref: "DELETE_OK", username }));
        this.close(1000, "Account deleted");
        return;
      }
      case "ACCOUNTS_REQUEST": {
        takeOrRefuse(
          this.#accountsRate,
          `At most ${ACCOUNTS_RATE.perTenSeconds} account lists per 10 s (bursts of ${ACCOUNTS_RATE.burst})`,
        );
        const accounts = await this.#service().list(frame.p.pattern);
        this.sendText(
          await hub.emit("ACCOUNTS_RESPONSE", this.#userId, {
            pattern: frame.p.pattern,
            accounts: accounts.map((a) => ({ ...a })),
          }),
        );
        return;
      }
      case "LOGIN_START":
      case "LOGIN_PROOF":
        throw new ProtocolError(
          "BAD_REQUEST",
          "Already logged in on this connection; use /logout first",
        );
      case "LOGIN_PARAMS":
      case "LOGIN_OK":
      case "ACCOUNTS_RESPONSE":
      case "DIRECTORY_UPDATE":
      case "LOGIN_FAILURE":
      case "QUEUE_STORE":
      case "QUEUE_DONE":
      case "BLOCKS_RESPONSE":
      case "BLOCKS_UPDATE":
      case "PRESENCE_SINCE_RESPONSE":
      case "GROUP_LIST":
      case "GROUP_EVENT":
      case "GROUP_UPDATE":
        throw new ProtocolError(
          "BAD_FRAME",
          `${frame.type} is a server frame; users may not send it`,
        );
      case "BLOCKS_SET": {
        const seq = await this.#blockLists().set(
          this.#userId,
          frame.p.blocked,
          frame.p.seq,
          frame.p.sig,
        );
        this.sendText(await hub.emit("ACK", this.#userId, { msg_ref: "BLOCKS_OK", seq }));
        return;
      }
      case "BLOCKS_REQUEST": {
        const list = this.#blockLists().listOf(this.#userId);
        this.sendText(await hub.emit("BLOCKS_RESPONSE", this.#userId, { ...list }));
        return;
      }
      case "PRESENCE_SINCE_REQUEST": {
        takeOrRefuse(
          this.#presenceSinceRate,
          `At most ${PRESENCE_SINCE_RATE.perTenSeconds} presence queries per 10 s`,
        );
        const seconds = Math.min(frame.p.seconds, 366 * 86_400);
        const users = hub.presenceSince(this.#userId, seconds);
        this.sendText(
          await hub.emit("PRESENCE_SINCE_RESPONSE", this.#userId, {
            seconds: frame.p.seconds,
            users: users.map((u) => ({ ...u })),
          }),
        );
        return;
      }
      case "GROUP_CREATE": {
        const group = await this.#chatGroups().create(
          this.#userId,
          frame.p.name,
          frame.p.members,
        );
        this.sendText(
          await hub.emit("ACK", this.#userId, {
            msg_ref: "GROUP_OK",
            group: { ...group, members: [...group.members] },
          }),
        );
        return;
      }
      case "GROUP_CHANGE": {
        const group = await this.#chatGroups().change(
          this.#userId,
          frame.p.name,
          frame.p.action,
          frame.p.user_id,
        );
        this.sendText(
          await hub.emit("ACK", this.#userId, {
            msg_ref: "GROUP_OK",
            group: { ...group, members: [...group.members] },
          }),
        );
        return;
      }
      case "USER_UPDATE": {
        const name = checkDisplayName(frame.p.display_name);
        takeOrRefuse(this.#renameRate, `At most ${RENAME_RATE.perMinute} name changes per minute`);
        await hub.updateLocalUser(this, name);
        this.sendText(
          await hub.emit("ACK", this.#userId, { msg_ref: "USER_UPDATE_OK", display_name: name }),
        );
        return;
      }
      case "GROUP_LIST_REQUEST": {
        const groups = this.#chatGroups().groupsOf(this.#userId);
        this.sendText(
          await hub.emit("GROUP_LIST", this.#userId, {
            groups: groups.map((g) => ({ ...g, members: [...g.members] })),
          }),
        );
        return;
      }
      case "HEARTBEAT":
      case "ACK":
        return;
      case "CTRL_CLOSE":
        this.close(1000, "Bye");
        return;
      case "USER_HELLO":
        throw new ProtocolError("BAD_FRAME", "USER_HELLO was already received on this connection");
      case "ERROR":
        return;
      case "USER_DELIVER":
      case "USER_ADVERTISE":
      case "USER_REMOVE":
      case "PRESENCE_BATCH":
      case "LIST_RESPONSE":
      case "PUBKEY_RESPONSE":
      case "PUBLIC_CHANNEL_ADD":
      case "PUBLIC_CHANNEL_UPDATED":
      case "PUBLIC_CHANNEL_KEY_SHARE":
      case "SERVER_HELLO_JOIN":
      case "SERVER_HELLO_LINK":
      case "PEER_HELLO_LINK":
      case "SERVER_ANNOUNCE":
      case "SERVER_WELCOME":
      case "SERVER_DELIVER":
        throw new ProtocolError(
          "BAD_FRAME",
          `${frame.type} is a server frame; users may not send it`,
        );
      default: {
        const never: never = frame;
        throw new ProtocolError("UNKNOWN_TYPE", `Unhandled type ${(never as Frame).type}`);
      }
    }
  }

  /** REGISTER is limited per client address across connections (ERROR RATE_LIMIT). */
  #checkRegisterRate(): void {
    const limit = this.#registerLimit;
    const address = addressOf(this.#remote);
    if (!limit || limit.take(address)) return;
    const seconds = Math.ceil(limit.waitMs(address) / 1000);
    const wait = seconds >= 120 ? `${Math.ceil(seconds / 60)} minutes` : `${seconds} s`;
    throw new ProtocolError(
      "RATE_LIMIT",
      `Too many registrations from this address (at most ${this.#config.registerPerHour} per hour); try again in ${wait}`,
    );
  }

  #blockLists(): BlockLists {
    if (!this.#blocks) throw new ProtocolError("UNKNOWN_TYPE", "This server has no block lists");
    return this.#blocks;
  }

  #chatGroups(): ChatGroups {
    if (!this.#groups) throw new ProtocolError("UNKNOWN_TYPE", "This server has no groups");
    return this.#groups;
  }

  /**
   * Refuses a user frame the recipient must not get: the recipient blocked the sender, or the
   * frame names a group (`group_id`) that sender and recipient are not both members of.
   */
  #checkAllowed(recipient: string, payload: JsonObject): void {
    if (this.#blocks?.blocks(recipient, this.#userId)) {
      const name = this.#hub.onlineUser(recipient)?.displayName ?? recipient;
      throw new ProtocolError("BLOCKED", `Not delivered: ${name} has blocked you`);
    }
    const groupId = payload["group_id"];
    if (typeof groupId === "string" && groupId !== "public") {
      const groups = this.#groups;
      if (!groups?.isMember(groupId, this.#userId)) {
        throw new ProtocolError("FORBIDDEN", "You are not a member of that group");
      }
      if (!groups.isMember(groupId, recipient)) {
        throw new ProtocolError("FORBIDDEN", `User ${recipient} is not a member of that group`);
      }
    }
  }

  #service(): Accounts {
    if (!this.#accounts) throw new ProtocolError("UNKNOWN_TYPE", "This server has no accounts");
    return this.#accounts;
  }

  async #deliver(type: DeliveryType, env: Envelope): Promise<void> {
    const fileId = env.payload["file_id"];
    if (typeof fileId === "string" && this.#rejectedFiles.has(fileId)) {
      if (type === "FILE_END") this.#rejectedFiles.delete(fileId);
      return;
    }
    if (type !== "MSG_DIRECT" && isChannelTarget(env.to)) {
      // The server, not the payload, says who sent a channel-wide frame.
      await this.#hub.fanOut(
        { ...env, payload: { ...env.payload, sender: this.#userId } },
        undefined,
      );
      return;
    }
    const delivery: Delivery = {
      type,
      sender: this.#userId,
      recipient: env.to,
      ts: env.ts,
      payload: env.payload,
    };
    if (type === "FILE_CHUNK" || type === "FILE_END") {
      // One refusal per transfer, at FILE_START; the rest of a refused transfer is dropped.
      try {
        this.#checkAllowed(env.to, env.payload);
      } catch {
        return;
      }
    } else this.#checkAllowed(env.to, env.payload);
    const routed = this.#hub.route(delivery, { arrivedAt: this.#arrivedAt });
    if (routed.result === "not_found") {
      const outcome = this.#hub.hooks.offline
        ? await this.#hub.hooks.offline(delivery)
        : "not_found";
      if (outcome === "queued") {
        if (type !== "FILE_CHUNK") {
          this.sendText(
            await this.#hub.emit("ACK", this.#userId, {
              msg_ref: "QUEUED",
              user_id: env.to,
              detail: `User ${env.to} is offline; the message is queued`,
            }),
          );
        }
        return;
      }
      if (type === "FILE_CHUNK" || type === "FILE_END") return; // one error per transfer
      throw new ProtocolError("USER_NOT_FOUND", `User "${env.to.slice(0, 64)}" is not online`);
    }
    await this.#ordered(delivery, routed.send);
  }
}

/** USER_UPDATE per connection: 3 at once, then 6 per minute. */
const RENAME_RATE = { perMinute: 6, burst: 3 } as const;

/**
 * A display name a user may take: 1 to 64 characters once trimmed, no control characters or
 * bidirectional overrides (it is shown to everyone). Throws ProtocolError BAD_REQUEST.
 */
export function checkDisplayName(raw: string): string {
  const name = raw.trim();
  if (name.length === 0 || [...name].length > 64) {
    throw new ProtocolError("BAD_REQUEST", "A display name has 1 to 64 characters");
  }
  // deno-lint-ignore no-control-regex
  if (/[\x00-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]/.test(name)) {
    throw new ProtocolError("BAD_REQUEST", "A display name may not contain control characters");
  }
  return name;
}

/** A cheap check for HEARTBEAT frames, which do not count as activity. */
function isHeartbeat(text: string): boolean {
  return text.length < 2048 && text.includes('"HEARTBEAT"') &&
    /"type"\s*:\s*"HEARTBEAT"/.test(text);
}

function displayNameOf(meta: string | undefined): string | undefined {
  if (!meta) return undefined;
  try {
    const value = JSON.parse(meta) as Record<string, unknown>;
    return typeof value.display_name === "string" ? value.display_name : undefined;
  } catch {
    return undefined;
  }
}
