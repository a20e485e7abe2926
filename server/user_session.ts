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
  KeyError,
  parseEnvelope,
  ProtocolError,
  type Transport,
  type UserHello,
  verifyEnvelope,
} from "../shared/mod.ts";
import type { ServerConfig } from "./config.ts";
import {
  type Delivery,
  type DeliveryType,
  type Hub,
  isChannelTarget,
  type UserLink,
} from "./hub.ts";
import { short } from "./log.ts";
import { type Clock, TokenBucket } from "./rate_limit.ts";
import type { Accounts } from "./accounts.ts";

/** Most frames one connection may have in flight (signing) before reading pauses. */
const MAX_IN_FLIGHT = 64;

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
): Promise<{ pubkey: string; displayName: string | undefined }> {
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
  const pubkey = encodePublicKey(pub);
  const known = await hub.store.getUser(env.from);
  if (known && !known.deleted && known.pubkey !== pubkey) {
    throw new ProtocolError(
      "BAD_KEY",
      `User ${env.from} is registered with a different public key`,
    );
  }
  if (known && !known.deleted && known.pake_password && env.sig === undefined) {
    throw new ProtocolError(
      "INVALID_SIG",
      `User ${env.from} has an account; USER_HELLO must be signed`,
    );
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
    });
    await hub.hooks.newUser?.(env.from);
  }
  return { pubkey, displayName: hello.p.meta.display_name };
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
  /** Clock (ms). */
  clock?: Clock;
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
  #rejectedFiles = new Set<string>();
  #accounts: Accounts | undefined;
  #lastActive = Date.now();

  /** Wraps a transport whose first frame was USER_HELLO. */
  constructor(transport: Transport, options: UserSessionOptions) {
    this.#transport = transport;
    this.#hub = options.hub;
    this.#config = options.config;
    this.#remote = options.remote;
    this.#accounts = options.accounts;
    const clock = options.clock ? { clock: options.clock } : {};
    this.#errors = new ErrorSender(this.#hub, (t) => this.sendText(t), clock);
    this.#rate = new TokenBucket({ rate: this.#config.rate, burst: this.#config.burst, ...clock });
  }

  /** The user id this connection said hello as. */
  get userId(): string {
    return this.#userId;
  }

  /** Sends a frame to the user. */
  sendText(text: string): void {
    this.#transport.send(text);
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
    if (elsewhere && elsewhere.serverId !== hub.serverId) {
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
    this.sendText(
      await hub.emit("ACK", userId, {
        msg_ref: "USER_HELLO_OK",
        server_id: hub.serverId,
        server_pub: hub.identity.publicKeyText,
      }),
    );
    await hub.addLocalUser(this, {
      userId,
      pubkey: checked.pubkey,
      displayName: checked.displayName,
    });
    try {
      await this.#loop(frames);
    } finally {
      await this.#outbox;
      await hub.removeLocalUser(this);
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
          `More than ${this.#config.rate} frames/s; frame dropped`,
          this.#userId,
        );
        continue;
      }
      if (isHeartbeat(next.value)) continue; // liveness only: not activity, nothing to do
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
      }
    });
    if (this.#inFlight >= MAX_IN_FLIGHT) await this.#outbox;
  }

  async #handle(text: string): Promise<void> {
    const env = parseEnvelope(text, { maxBytes: this.#config.maxUserFrameBytes });
    if (env.type === "ERROR") {
      this.#hub.log.info(
        `ERROR from user ${short(this.#userId)}: ${JSON.stringify(env.payload).slice(0, 200)}`,
      );
      return;
    }
    const frame = decodeFrame(env);
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
    await this.#dispatch(frame);
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
        const users = hub.onlineUsers();
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
        const pubkey = online?.pubkey ?? (stored && !stored.deleted ? stored.pubkey : undefined);
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
        const record = await this.#service().register(
          this.#userId,
          frame.p.username,
          frame.p.privkey_store,
          frame.p.verifier,
        );
        this.sendText(
          await hub.emit("ACK", this.#userId, {
            msg_ref: "REGISTER_OK",
            username: record.username ?? "",
          }),
        );
        return;
      }
      case "PASSWD":
        await this.#service().passwd(
          this.#userId,
          frame.p.auth_key,
          frame.p.privkey_store,
          frame.p.verifier,
        );
        this.sendText(await hub.emit("ACK", this.#userId, { msg_ref: "PASSWD_OK" }));
        return;
      case "DELETE_ACCOUNT": {
        const username = await this.#service().deleteAccount(this.#userId, frame.p.auth_key);
        this.sendText(await hub.emit("ACK", this.#userId, { msg_ref: "DELETE_OK", username }));
        this.close(1000, "Account deleted");
        return;
      }
      case "ACCOUNTS_REQUEST": {
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
        throw new ProtocolError(
          "BAD_FRAME",
          `${frame.type} is a server frame; users may not send it`,
        );
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
    const routed = this.#hub.route(delivery);
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
