/**
 * `SocpServer`: one WebSocket port for users and servers. The first frame identifies a
 * connection: USER_HELLO makes a user session; SERVER_HELLO_JOIN, SERVER_HELLO_LINK,
 * PEER_HELLO_LINK or SERVER_ANNOUNCE hands it to the mesh; anything else gets an ERROR and
 * a close. Plain HTTP requests go to the operator endpoints (http.ts), on the same port or on
 * `--metrics-listen`.
 *
 * @module
 */

import {
  decodeFrame,
  parseEnvelope,
  ProtocolError,
  serializeEnvelope,
  type Transport,
  type UserHello,
  utf8Length,
  webSocketTransport,
} from "../shared/mod.ts";
import { openSqliteStore, type Store } from "../storage/mod.ts";
import { ConfigError, type ServerConfig } from "./config.ts";
import { httpHandler, type OperatorEndpoints, type Readiness } from "./http.ts";
import { loadWebAssets, type WebAssets } from "./web_assets.ts";
import { ServerMetrics } from "./metrics.ts";
import { Hub } from "./hub.ts";
import { loadOrCreateIdentity, type ServerIdentity } from "./identity.ts";
import { consoleLogger, type Logger, short } from "./log.ts";
import type { Mesh, MeshStatus } from "./mesh.ts";
import { ErrorSender, UserSession } from "./user_session.ts";
import { Accounts, addressOf, recordSeq } from "./accounts.ts";
import { OfflineQueue } from "./offline_queue.ts";
import { BlockLists } from "./block_lists.ts";
import { ChatGroups } from "./chat_groups.ts";
import { prepareDataDir } from "./data_dir.ts";
import { KeyedTokenBuckets } from "./rate_limit.ts";
import type { SignLane } from "./sign_scheduler.ts";
import { join } from "node:path";

/** Joins within this window are announced to the public channel together (one batch). */
const CHANNEL_BATCH_MS = 1000;

/** First frames that identify a server connection. */
export const SERVER_FIRST_TYPES: ReadonlySet<string> = new Set([
  "SERVER_HELLO_JOIN",
  "SERVER_HELLO_LINK",
  "PEER_HELLO_LINK",
  "SERVER_ANNOUNCE",
]);

/** How long a new connection may take to send its first frame. */
const FIRST_FRAME_TIMEOUT_MS = 10_000;

/**
 * Unread frames one user connection may have queued, in largest frames: far more than a client
 * that waits for answers ever has, so only a flood reaches it (the connection is then closed).
 */
const USER_INBOX_FRAMES = 256;

/** Options for {@linkcode SocpServer.start}. */
export interface StartOptions {
  /** Configuration. */
  config: ServerConfig;
  /** Logger (default: stderr at the configured level). */
  log?: Logger;
  /** Store (default: SQLite at `<dataDir>/socp.db`). */
  store?: Store;
  /** Builds the mesh once the hub exists. */
  mesh?: (hub: Hub, server: SocpServer) => Mesh;
}

/** A running server. */
export class SocpServer implements AsyncDisposable, OperatorEndpoints {
  /** Configuration. */
  readonly config: ServerConfig;
  /** Identity (id and keys). */
  readonly identity: ServerIdentity;
  /** Routing core. */
  readonly hub: Hub;
  /** Logger. */
  readonly log: Logger;
  /** Account service. */
  readonly accounts: Accounts;
  /** Offline queues. */
  readonly offline: OfflineQueue;
  /** Block lists (enforced here, replicated in the server group). */
  readonly blocks: BlockLists;
  /** Named group chats (membership, replicated in the server group). */
  readonly groups: ChatGroups;
  #store: Store;
  #http: Deno.HttpServer<Deno.NetAddr> | undefined;
  /** The `--metrics-listen` listener, when configured. */
  #metricsHttp: Deno.HttpServer<Deno.NetAddr> | undefined;
  #mesh: Mesh | undefined;
  /** REGISTER attempts per client address, across connections. */
  #registerLimit: KeyedTokenBuckets;
  #sessions = new Set<Promise<void>>();
  #transports = new Set<Transport>();
  #closed = false;

  private constructor(
    config: ServerConfig,
    identity: ServerIdentity,
    hub: Hub,
    store: Store,
    log: Logger,
  ) {
    this.config = config;
    this.identity = identity;
    this.hub = hub;
    this.#store = store;
    this.log = log;
    this.accounts = new Accounts(hub, config);
    this.offline = new OfflineQueue(hub, config);
    this.blocks = new BlockLists(hub);
    this.groups = new ChatGroups(hub);
    hub.blockLists = this.blocks;
    this.#registerLimit = new KeyedTokenBuckets({
      rate: config.registerPerHour / 3600,
      burst: config.registerPerHour,
    });
    hub.hooks = {
      offline: (d) => this.offline.offline(d),
      online: (userId) => this.offline.online(userId),
      newUser: async (userId) => {
        const record = await store.getUser(userId);
        if (record) await this.accounts.publish(record);
      },
    };
    this.accounts.onNameLost = (userId, username) => {
      const link = hub.localLink(userId);
      if (!link) return;
      hub.emit("ERROR", userId, {
        code: "NAME_IN_USE",
        detail:
          `The name "${username}" was registered elsewhere first; your account lost it. Register another name`,
      }).then((t) => link.sendText(t)).catch(() => {});
    };
  }

  /** Opens storage, loads or creates the identity, listens, and starts the mesh. */
  static async start(options: StartOptions): Promise<SocpServer> {
    const { config } = options;
    await prepareDataDir(config.dataDir);
    const store = options.store ?? await openSqliteStore(join(config.dataDir, "socp.db"));
    try {
      const { identity, created } = await loadOrCreateIdentity(config.dataDir, store);
      const log = options.log ??
        consoleLogger(`server ${short(identity.serverId)}`, config.logLevel, {
          format: config.logFormat,
          serverId: identity.serverId,
        });
      log.info(`${created ? "created" : "loaded"} server identity ${identity.serverId}`);
      const hub = new Hub({
        identity,
        store,
        log,
        metrics: new ServerMetrics(),
        channelBatchMs: CHANNEL_BATCH_MS,
      });
      await hub.init();
      const server = new SocpServer(config, identity, hub, store, log);
      await server.blocks.load();
      await server.groups.load();
      if (options.mesh) {
        server.#mesh = options.mesh(hub, server);
        hub.attachMesh(server.#mesh);
      }
      server.#listen(await loadWebAssets());
      await server.#mesh?.start();
      await server.offline.prune();
      return server;
    } catch (error) {
      await store.close();
      throw error;
    }
  }

  /** The bound address (port resolved when 0 was asked for). */
  get addr(): Deno.NetAddr {
    if (!this.#http) throw new Error("Server is not listening");
    return this.#http.addr;
  }

  /** ws:// URL of this server. */
  get url(): string {
    return `ws://${this.config.advertiseHost}:${this.addr.port}`;
  }

  /** The `--metrics-listen` address (port resolved), when configured. */
  get metricsAddr(): Deno.NetAddr | undefined {
    return this.#metricsHttp?.addr;
  }

  #listen(web: WebAssets): void {
    const separate = this.config.metricsListen;
    if (separate) {
      try {
        this.#metricsHttp = Deno.serve({
          ...separate,
          onListen: () => {},
          handler: httpHandler(this, { metrics: true }),
        });
      } catch (error) {
        if (!(error instanceof Deno.errors.AddrInUse)) throw error;
        throw new ConfigError(
          `--metrics-listen ${separate.hostname}:${separate.port} is already in use; pick another address`,
          { cause: error },
        );
      }
    }
    try {
      this.#http = Deno.serve({
        hostname: this.config.host,
        port: this.config.port,
        onListen: () => {},
        handler: httpHandler(this, {
          metrics: separate === undefined,
          web,
          upgrade: (request, info) => {
            const remote = `${info.remoteAddr.hostname}:${info.remoteAddr.port}`;
            const { socket, response } = Deno.upgradeWebSocket(request, { idleTimeout: 0 });
            // A user's unread frames are bounded (see UserSession's backpressure); a server
            // link's catch-up may legitimately queue more, and its frames are read at once.
            let inboxLimit = USER_INBOX_FRAMES * this.config.maxUserFrameBytes;
            const transport = webSocketTransport(socket, { maxQueuedChars: () => inboxLimit });
            const onServer = () => (inboxLimit = Infinity);
            this.#track(this.#accept(transport, remote, onServer), transport);
            return response;
          },
        }),
      });
    } catch (error) {
      this.#metricsHttp?.shutdown();
      throw error;
    }
  }

  /**
   * `GET /readyz`: ready when storage answers a trivial query, the port is listening and the
   * mesh is not still joining (it has no servers to link to, or a link came up since start).
   */
  async readiness(): Promise<Readiness> {
    let storage = "ok";
    try {
      await this.#store.getSetting("readiness_probe");
    } catch (error) {
      storage = `error: ${(error as Error).message}`;
    }
    const listening = this.#http !== undefined && !this.#closed;
    const mesh: MeshStatus = this.#mesh?.status() ?? { links: [], joining: false };
    const reasons: string[] = [];
    if (storage !== "ok") reasons.push(`storage does not answer (${storage})`);
    if (!listening) reasons.push("not listening");
    if (mesh.joining) reasons.push("joining the mesh: no link to another server is up yet");
    return {
      status: reasons.length === 0 ? "ready" : "not_ready",
      ...(reasons.length > 0 ? { reason: reasons.join("; ") } : {}),
      storage,
      listening,
      links: mesh.links,
      users_online: this.hub.localUserIds().length,
    };
  }

  /** `GET /metrics`: the Prometheus text, gauges read now. */
  async metricsText(): Promise<string> {
    let queued: number | undefined;
    try {
      queued = await this.#store.queueSize();
    } catch {
      queued = undefined; // storage closed or failing: the gauge is left without a sample
    }
    return this.hub.metrics.render({
      usersConnected: this.hub.localUserIds().length,
      links: this.#mesh?.status().links ?? [],
      offlineQueueFrames: queued,
      signWaiting: this.hub.signer.waiting,
    });
  }

  #track(session: Promise<void>, transport: Transport): void {
    this.#transports.add(transport);
    const done = session.catch((error) => {
      this.log.error(`connection handler failed: ${(error as Error).stack}`);
    }).finally(() => {
      this.#sessions.delete(done);
      this.#transports.delete(transport);
    });
    this.#sessions.add(done);
  }

  /**
   * Takes a connection (also used by tests with in-memory transports). Everything it signs
   * queues on a signing lane of its own, so it gets a fair share of the cores.
   */
  async #accept(transport: Transport, remote: string, onServer?: () => void): Promise<void> {
    using lane = this.hub.signer.lane(remote);
    await lane.run(() => this.#acceptOn({ lane, transport, remote, onServer }));
  }

  async #acceptOn(
    { lane, transport, remote, onServer }: {
      lane: SignLane;
      transport: Transport;
      remote: string;
      onServer: (() => void) | undefined;
    },
  ): Promise<void> {
    const frames = transport[Symbol.asyncIterator]();
    let timer: ReturnType<typeof setTimeout> | undefined;
    const timeout = new Promise<"timeout">((resolve) => {
      timer = setTimeout(() => resolve("timeout"), FIRST_FRAME_TIMEOUT_MS);
    });
    const first = await Promise.race([frames.next(), timeout]);
    clearTimeout(timer);
    if (first === "timeout") {
      this.log.info(`connection from ${remote} sent nothing for 10 s; closed`);
      await this.#reject(transport, "TIMEOUT", "No identifying first frame within 10 s");
      return;
    }
    if (first.done) return;
    try {
      const env = parseEnvelope(first.value, { maxBytes: this.config.maxServerFrameBytes });
      if (SERVER_FIRST_TYPES.has(env.type)) {
        this.hub.metrics.frameIn(env.type);
        if (!this.#mesh) throw new ProtocolError("UNKNOWN_TYPE", "This server does not federate");
        onServer?.();
        this.#mesh.acceptServer(transport, env, remote);
        await transport.closed;
        return;
      }
      if (utf8Length(first.value) > this.config.maxUserFrameBytes) {
        throw new ProtocolError(
          "FRAME_TOO_LARGE",
          `USER_HELLO exceeds ${this.config.maxUserFrameBytes} bytes`,
        );
      }
      let frame = decodeFrame(env);
      this.hub.metrics.frameIn(frame?.type);
      if (
        frame?.type === "LOGIN_START" || frame?.type === "LOGIN_PROOF" ||
        frame?.type === "ACCOUNTS_REQUEST"
      ) {
        const hello = await this.#loginPhase(transport, frames, first.value, remote);
        if (hello === undefined) return;
        frame = hello;
      }
      if (frame?.type !== "USER_HELLO") {
        throw new ProtocolError(
          frame === undefined ? "UNKNOWN_TYPE" : "BAD_FRAME",
          `The first frame must be USER_HELLO or a server handshake, not "${
            env.type.slice(0, 64)
          }"`,
        );
      }
      const session = new UserSession(transport, {
        hub: this.hub,
        config: this.config,
        remote,
        accounts: this.accounts,
        registerLimit: this.#registerLimit,
        blocks: this.blocks,
        groups: this.groups,
        lane,
      });
      await session.run(frame, frames);
    } catch (error) {
      if (!(error instanceof ProtocolError)) throw error;
      this.log.warn(`rejected connection from ${remote}: ${error.message}`);
      await this.#reject(transport, error.code, error.message);
    }
  }

  /**
   * Frames before USER_HELLO on an account connection: LOGIN_START → LOGIN_PARAMS,
   * LOGIN_PROOF → LOGIN_OK (or BAD_PASSWORD / LOGIN_BLOCKED, and the client may retry),
   * ACCOUNTS_REQUEST → ERROR NOT_LOGGED_IN (names are listed only to identified users, see
   * docs/protocol.md). Returns the USER_HELLO that ends the phase.
   */
  async #loginPhase(
    transport: Transport,
    frames: AsyncIterator<string>,
    firstText: string,
    remote: string,
  ): Promise<UserHello | undefined> {
    const errors = new ErrorSender(this.hub, (t) => transport.send(t));
    let text: string | undefined = firstText;
    for (let count = 0; count < 100; count++) {
      if (text === undefined) {
        const next = await frames.next();
        if (next.done) return undefined;
        text = next.value;
      }
      try {
        const env = parseEnvelope(text, { maxBytes: this.config.maxUserFrameBytes });
        text = undefined;
        if (env.type === "ERROR") continue;
        const frame = decodeFrame(env);
        this.hub.metrics.frameIn(frame?.type);
        switch (frame?.type) {
          case "USER_HELLO":
            return frame;
          case "LOGIN_START":
            transport.send(
              await this.hub.emit("LOGIN_PARAMS", "?", {
                username: frame.p.username,
                kdf: await this.accounts.loginParams(frame.p.username),
              }),
            );
            break;
          case "LOGIN_PROOF": {
            const user = await this.accounts.login(
              frame.p.username,
              frame.p.auth_key,
              addressOf(remote),
            );
            transport.send(
              await this.hub.emit("LOGIN_OK", user.user_id, {
                username: user.username ?? frame.p.username,
                user_id: user.user_id,
                pubkey: user.pubkey,
                privkey_store: JSON.parse(user.privkey_store),
                seq: recordSeq(user),
              }),
            );
            break;
          }
          case "ACCOUNTS_REQUEST":
            throw new ProtocolError(
              "NOT_LOGGED_IN",
              "Log in or say USER_HELLO first; account names are listed only to identified users",
            );
          case "CTRL_CLOSE":
            transport.close(1000, "Bye");
            return undefined;
          default:
            throw new ProtocolError(
              "NOT_LOGGED_IN",
              `Log in or say USER_HELLO before ${env.type.slice(0, 64)}`,
            );
        }
      } catch (error) {
        if (!(error instanceof ProtocolError)) throw error;
        text = undefined;
        await errors.send(error.code, error.message, "?");
      }
    }
    transport.close(1008, "Too many frames before USER_HELLO");
    return undefined;
  }

  async #reject(transport: Transport, code: string, detail: string): Promise<void> {
    const text = await this.hub.emit("ERROR", "?", { code, detail });
    transport.send(text);
    transport.close(1008, code);
  }

  /** Connects an in-memory transport as if it had arrived on the port (tests). */
  acceptTransport(transport: Transport, remote = "memory"): Promise<void> {
    const session = this.#accept(transport, remote);
    this.#track(session, transport);
    return session;
  }

  /** Stops listening, closes every connection and the store. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    await this.hub.close();
    await this.#mesh?.[Symbol.asyncDispose]();
    await this.offline[Symbol.asyncDispose]();
    for (const t of this.#transports) t.close(1001, "Server shutting down");
    await Promise.all([this.#http?.shutdown(), this.#metricsHttp?.shutdown()]);
    await Promise.allSettled([...this.#sessions]);
    await this.#store.close();
    this.log.info("server stopped");
  }

  /** Same as {@linkcode close}. */
  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }
}

export { serializeEnvelope };
