/**
 * The client's connection to its server: one dial → USER_HELLO → read loop, repeated after a
 * drop. It pins the server key per URL and checks the server's signature on every frame,
 * correlates requests with their answers, paces what it sends, keeps the frames the server has
 * not confirmed (see outbox.ts) and, when the connection drops, reconnects at once and then with
 * backoff, trying the known servers in turn, sends the unconfirmed frames again and carries on.
 * Its state is an explicit state machine ({@linkcode ConnectionState}); changes are reported as
 * typed {@linkcode ConnectionStatus} values. It sees only a {@linkcode Transport}; what frames
 * mean is up to the feature modules, which get every frame no request claimed through `onFrame`.
 *
 * @module
 */

import {
  type CloseInfo,
  type ContentSigVariant,
  decodeFrame,
  encodeKeyText,
  encodePublicKey,
  type Envelope,
  type Frame,
  type JsonObject,
  type KeyEncoding,
  keyEncodingOf,
  type KeyPair,
  parseEnvelope,
  type PublicKey,
  serializeEnvelope,
  signedEnvelope,
  type Transport,
  verifyEnvelope,
} from "../shared/mod.ts";
import { errorMessage } from "./_util.ts";
import { type Clock, systemClock } from "./clock.ts";
import { CommandError, HelloError } from "./errors.ts";
import type { EventSink } from "./events.ts";
import { type Logger, silentLogger } from "./logger.ts";
import { Outbox } from "./outbox.ts";
import { ConnectionClosedError, FramePacer, type PacerOptions } from "./pacer.ts";
import { type ServerGroupMember, ServerPins } from "./server_pins.ts";
import type { TrustStore } from "./trust_store.ts";

export type { ServerGroupMember } from "./server_pins.ts";

/** The `client` string sent in USER_HELLO. */
export const CLIENT_NAME = "socp/0.1";

/** A content_sig variant, or `"auto"`: chosen per server (see {@linkcode ServerTraits}). */
export type SigVariantChoice = ContentSigVariant | "auto";

/**
 * What the client learned about its server from the wire (docs/protocol.md, "Talking to other
 * implementations"): nothing here names an implementation, each trait is something the server
 * did.
 */
export interface ServerTraits {
  /** The ACK carried `socp.caps`: a socp server. */
  socp: boolean;
  /**
   * The server greeted with `CLIENT_WELCOME` (before its ACK): such a server checks content_sig
   * itself with variant B and drops other variants silently, so "auto" signs with B for it.
   */
  clientWelcome: boolean;
  /** How the server writes keys (learned from the first key it sends), if known yet. */
  keyEncoding?: KeyEncoding;
}

/** Who the user is. */
export interface Identity {
  /** The user's UUID. */
  userId: string;
  /** Name shown to others. */
  displayName: string;
  /** The user's RSA-4096 key pair. */
  keys: KeyPair;
  /** The account name, when the identity came from an account login. */
  account?: string;
  /** `seq` of the account record's latest signed statement (the next change uses a higher one). */
  accountSeq?: number;
}

/** How a session ended. */
export interface SessionEnd {
  /** WebSocket close code. */
  code: number;
  /** Close reason. */
  reason: string;
  /** True when this client closed it (`/quit`). */
  byUs: boolean;
}

/**
 * Where a connection is: dialing (`connecting`), waiting for the server's verdict on USER_HELLO
 * (`hello`), accepted (`ready`), lost and on its way back (`reconnecting`: waiting, dialing or
 * logging in again), or done (`closed`: refused, quit, or lost for good).
 */
export type ConnectionState = "connecting" | "hello" | "ready" | "reconnecting" | "closed";

/** A change of the connection, reported through `onStatus`. */
export type ConnectionStatus =
  | { status: "ready"; server: string; pinned: boolean; reconnected: boolean }
  | { status: "disconnected"; server: string; code: number; reason: string }
  | { status: "attempt_failed"; server: string; round: number; error: string }
  | { status: "closed"; end: SessionEnd };

/** Handles a frame from the server (decoded and signature-checked) that no request claimed. */
export type FrameHandler = (frame: Frame) => Promise<void> | void;

/** Opens a connection to a server URL; rejects when it cannot. */
export type Dialer = (url: string, signal: AbortSignal) => Promise<Transport>;

/** Milliseconds to wait before reconnect round `attempt + 1` (attempt is 0-based). */
export type Backoff = (attempt: number) => number;

/**
 * Exponential backoff from 500 ms to 30 s with ±20 % jitter (as the server's peer links).
 *
 * @example
 * ```ts
 * import { defaultBackoff } from "./connection.ts";
 * const first = defaultBackoff(0);
 * console.assert(first >= 400 && first <= 600 && defaultBackoff(20) <= 36_000);
 * ```
 */
export const defaultBackoff: Backoff = (attempt) => {
  const base = Math.min(30_000, 500 * 2 ** Math.min(attempt, 10));
  return Math.round(base * (0.8 + Math.random() * 0.4));
};

/** Runs on a fresh connection before USER_HELLO (e.g. an account login); throws HelloError. */
export type BeforeHello = (transport: Transport, serverUrl: string) => Promise<void>;

/** How to come back after a drop. */
export interface ReconnectOptions {
  /** Opens a connection (the same as the first one was opened with). */
  dial: Dialer;
  /** Other server URLs to try, in order (more come from the server group in the ACK). */
  servers?: readonly string[];
  /** Wait before each round of attempts after the first (default {@linkcode defaultBackoff}). */
  backoff?: Backoff;
  /** Rounds of attempts (each tries every known server once) before giving up (default ∞). */
  maxRounds?: number;
  /** Runs before USER_HELLO on each new connection (an account login again). */
  beforeHello?: BeforeHello;
}

/** Options for {@linkcode Connection.request}. */
export interface RequestOptions {
  /** How long to wait for the answer (default `requestTimeoutMs`). */
  timeoutMs?: number;
  /** A matching ERROR is the answer to this request: it is not handed to `onFrame` too. */
  claim?: boolean;
}

/** Options for {@linkcode Connection.sendEnvelope}. */
export interface SendOptions {
  /** Aborts the send (e.g. a file transfer the user cancelled). */
  signal?: AbortSignal;
}

/** Options for {@linkcode Connection}. */
export interface ConnectionOptions {
  /** The first connection, already open (e.g. after a login on it). */
  transport: Transport;
  /** The user; `account` is read when the `ready` event is reported. */
  identity: Identity;
  /** Server URL of `transport`, the key under which the server key is pinned. */
  serverUrl: string;
  /** Pinned keys. */
  trust: TrustStore;
  /** Receives the `ready`, `disconnected` and `reconnected` events, warnings and notices. */
  onEvent: EventSink;
  /** Receives every frame no request claimed, in order. */
  onFrame: FrameHandler;
  /** Hears about state changes. */
  onStatus?: (status: ConnectionStatus) => void;
  /** Hears about the other servers of the server group (from the USER_HELLO_OK ACK). */
  onServerGroup?: (members: ServerGroupMember[]) => void;
  /** Reconnect after a drop; without it a drop ends the connection. */
  reconnect?: ReconnectOptions;
  /** Time source (default the system clock). */
  clock?: Clock;
  /** Debug logger. */
  log?: Logger;
  /** Wait this long for the USER_HELLO_OK ACK before going on unpinned (default 2000 ms). */
  helloTimeoutMs?: number;
  /** Wait this long for the answer to a request (default 3000 ms). */
  requestTimeoutMs?: number;
  /** Outgoing rate limits. */
  pacing?: PacerOptions;
  /** Frames kept for resending, and queued while disconnected (default 1000). */
  outboxLimit?: number;
  /** Config file path, named in messages that tell the user how to fix a pin. */
  configPath?: string;
  /**
   * How to write this user's key (USER_HELLO, `sender_pub`): `der`, `pem` (base64url of the PEM
   * text, for servers that load keys only as PEM), or `auto` (default): DER in the first hello,
   * then as the server writes keys, learned from the first key it sends.
   */
  keyEncoding?: KeyEncoding | "auto";
}

/** One transport and what belongs to it. */
interface Link {
  readonly t: Transport;
  readonly url: string;
  readonly pacer: FramePacer;
  readonly reconnect: boolean;
  serverKey?: PublicKey;
  serverId?: string;
  buffer: Envelope[];
  helloTimedOut: boolean;
  traits: ServerTraits;
  /** Answers still due to barrier requests that timed out: they confirm nothing newer. */
  lateBarrierAnswers: number;
  hello?: { resolve(): void; reject(e: Error): void };
  loop?: Promise<CloseInfo>;
}

interface Waiter {
  match(frame: Frame): boolean;
  resolve(frame: Frame | undefined): void;
  claim?: boolean;
}

/** Ask the server to confirm once this many frames are unconfirmed. */
const CONFIRM_EVERY = 200;
/**
 * A barrier waits at least this long per unconfirmed frame (ms) on top of the request timeout:
 * a server signs every frame it passes on (RSA-4096), which takes tens of ms on a busy machine.
 */
const BARRIER_MS_PER_FRAME = 100;
/** Logins that cannot succeed on another try (retrying would only block the account). */
const FATAL_ON_RECONNECT: ReadonlySet<string> = new Set(["BAD_PASSWORD", "LOGIN_BLOCKED"]);
/** The server closed on purpose (normal close, policy): do not come back. */
const FINAL_CLOSE_CODES: ReadonlySet<number> = new Set([1000, 1008]);

/**
 * One user's connection to a server (and, after a drop, to the next one that takes it).
 *
 * @example
 * ```ts ignore
 * const connection = new Connection({ transport, identity, serverUrl, trust,
 *   onEvent: console.log, onFrame: (frame) => console.log(frame.type),
 *   reconnect: { dial: connectWebSocket, servers: [otherUrl] } });
 * await connection.start();   // USER_HELLO, waits for the ACK and pins the server key
 * const reply = await connection.request("LIST_REQUEST", {}, (f) => f.type === "LIST_RESPONSE");
 * await connection.quit();
 * ```
 */
export class Connection implements AsyncDisposable {
  #me: Identity;
  #myPub: string;
  #trust: TrustStore;
  #pins: ServerPins;
  #emit: EventSink;
  #onFrame: FrameHandler;
  #onStatus: (status: ConnectionStatus) => void;
  #onServerGroup: (members: ServerGroupMember[]) => void;
  #reconnect:
    | Required<Omit<ReconnectOptions, "beforeHello" | "servers">> & {
      beforeHello?: BeforeHello;
    }
    | undefined;
  #servers: string[];
  #refusedUrls: Set<string> = new Set();
  #clock: Clock;
  #log: Logger;
  #helloTimeoutMs: number;
  #requestTimeoutMs: number;
  #pacing: PacerOptions | undefined;
  #keyEncoding: KeyEncoding | "auto";
  #signing: Set<Promise<Envelope>> = new Set();
  /** Key encodings learned per server URL, for the hello after a reconnect. */
  #learnedEncoding: Map<string, KeyEncoding> = new Map();

  #link: Link;
  #state: ConnectionState = "connecting";
  #started = false;
  #everReady = false;
  /** Set by quit() (or a refused first hello): frames that still arrive are not processed. */
  #closing = false;
  #byUs = false;
  #waiters: Set<Waiter> = new Set();
  #lastTs = 0;
  #chain: Promise<void> = Promise.resolve();
  #outbox: Outbox;
  #writing: Promise<void> = Promise.resolve();
  #confirming: Promise<boolean> | undefined;
  /** Barriers in progress, one after the other. */
  #barriers: Promise<void> = Promise.resolve();
  /** How long the server took per frame to answer recent barriers (ms; 0: not measured). */
  #msPerFrame = 0;
  /** Aborted at the final close: long operations (files) stop. */
  #ops: AbortController = new AbortController();
  /** Aborted by quit(): stops waits and dials of the reconnect loop. */
  #stop: AbortController = new AbortController();
  #closed = Promise.withResolvers<SessionEnd>();
  #ended = false;

  /** Resolves when the connection has closed for good and every frame received was handled. */
  readonly closed: Promise<SessionEnd> = this.#closed.promise;

  /** Creates a connection; nothing is sent until {@linkcode Connection.start}. */
  constructor(options: ConnectionOptions) {
    this.#me = options.identity;
    this.#myPub = encodePublicKey(options.identity.keys.publicKey);
    this.#trust = options.trust;
    this.#pins = new ServerPins({
      trust: options.trust,
      onEvent: options.onEvent,
      ...(options.log ? { log: options.log } : {}),
      ...(options.configPath !== undefined ? { configPath: options.configPath } : {}),
    });
    this.#emit = options.onEvent;
    this.#onFrame = options.onFrame;
    this.#onStatus = options.onStatus ?? (() => {});
    this.#onServerGroup = options.onServerGroup ?? (() => {});
    const r = options.reconnect;
    this.#reconnect = r && {
      dial: r.dial,
      backoff: r.backoff ?? defaultBackoff,
      maxRounds: r.maxRounds ?? Infinity,
      ...(r.beforeHello ? { beforeHello: r.beforeHello } : {}),
    };
    this.#servers = [options.serverUrl];
    for (const url of r?.servers ?? []) {
      if (!this.#servers.includes(url)) this.#servers.push(url);
    }
    this.#clock = options.clock ?? systemClock;
    this.#log = options.log ?? silentLogger;
    this.#helloTimeoutMs = options.helloTimeoutMs ?? 2000;
    this.#requestTimeoutMs = options.requestTimeoutMs ?? 3000;
    this.#pacing = options.pacing;
    this.#keyEncoding = options.keyEncoding ?? "auto";
    this.#outbox = new Outbox({ limit: options.outboxLimit ?? 1000 });
    this.#link = this.#newLink(options.transport, options.serverUrl, false);
  }

  /** Where the connection is. */
  get state(): ConnectionState {
    return this.#state;
  }

  /** True once the server accepted the hello and until the connection drops or closes. */
  get ready(): boolean {
    return this.#state === "ready";
  }

  /** True from the first accepted hello until closed for good (also while reconnecting). */
  get open(): boolean {
    return this.#everReady && this.#state !== "closed" && !this.#closing;
  }

  /** The server's id (from its ACK or the pin), if known. */
  get serverId(): string | undefined {
    return this.#link.serverId;
  }

  /** True when the server key is pinned and every frame's signature is checked. */
  get pinned(): boolean {
    return this.#link.serverKey !== undefined;
  }

  /** The URL of the current (or last) server. */
  get serverUrl(): string {
    return this.#link.url;
  }

  /** The server URLs known, the current one first. */
  get servers(): readonly string[] {
    return this.#servers;
  }

  /** What the client learned about the current server from the wire. */
  get traits(): Readonly<ServerTraits> {
    return this.#link.traits;
  }

  /** How this user's key is written for the current server (see `keyEncoding` option). */
  get keyEncoding(): KeyEncoding {
    if (this.#keyEncoding !== "auto") return this.#keyEncoding;
    return this.#link.traits.keyEncoding ?? this.#learnedEncoding.get(this.#link.url) ?? "der";
  }

  /** This user's public key as written for the current server. */
  get ownKeyText(): string {
    return encodeKeyText(this.#myPub, this.keyEncoding);
  }

  /**
   * The content_sig variant to sign with: `choice`, or for `"auto"` B for a server that greeted
   * with CLIENT_WELCOME (it verifies content_sig with B and drops the rest) and A otherwise.
   */
  contentSigVariant(choice: SigVariantChoice): ContentSigVariant {
    if (choice !== "auto") return choice;
    return this.#link.traits.clientWelcome ? "B" : "A";
  }

  /** Aborted once the connection closes for good (or quit starts); for long sends (files). */
  get signal(): AbortSignal {
    return this.#ops.signal;
  }

  /** Frames sent (or queued) that the server has not confirmed yet. */
  get unconfirmed(): number {
    return this.#outbox.size;
  }

  /**
   * Sends USER_HELLO and waits for the server's verdict. Resolves once ready (after the
   * `ready` event); throws {@linkcode HelloError} when refused or disconnected.
   */
  async start(): Promise<void> {
    if (this.#started) throw new Error("Connection.start() was already called");
    this.#started = true;
    if (this.#closing) {
      throw new HelloError("CLOSED", "The connection was closed before it started");
    }
    const first = this.#link;
    try {
      await this.#hello(first);
    } catch (e) {
      this.#closing = true;
      if (first.loop) void first.loop.then((info) => this.#finish(info));
      else this.#finish({ code: 1000, reason: "" });
      throw e;
    }
    void this.#supervise(first).catch((e) => {
      this.#log.debug(`connection loop failed: ${e instanceof Error ? e.stack : String(e)}`);
      this.#finish({ code: 1011, reason: errorMessage(e) });
    });
  }

  /** A fresh timestamp, strictly above the previous one. */
  nextTs(): number {
    this.#lastTs = Math.max(Math.floor(this.#clock.now()), this.#lastTs + 1);
    return this.#lastTs;
  }

  /** Throws {@linkcode CommandError} unless the connection is ready (for requests). */
  requireReady(): void {
    if (this.#state === "ready") return;
    if (this.open) {
      throw new CommandError(
        "Not connected right now (reconnecting); try again once the client says it reconnected",
      );
    }
    throw new CommandError("Not connected");
  }

  /** Throws {@linkcode CommandError} unless frames can be sent or queued for a reconnect. */
  requireOpen(): void {
    if (!this.open) throw new CommandError("Not connected");
  }

  /** Sends a content frame from the user (see {@linkcode sendEnvelope}) with a fresh `ts`. */
  sendFrame(
    type: string,
    to: string,
    payload: JsonObject,
    options: SendOptions = {},
  ): Promise<"sent" | "queued"> {
    return this.sendEnvelope(
      { type, from: this.#me.userId, to, ts: this.nextTs(), payload },
      options,
    );
  }

  /**
   * Sends a content frame (a message, a file frame), paced, in order, and keeps it until the
   * server confirms it (see outbox.ts). Resolves `"sent"` once written, or `"queued"` when the
   * connection is down and the frame waits for the reconnect. Throws {@linkcode CommandError}
   * when the connection is closed for good, `signal` aborted, or too many frames wait already.
   */
  async sendEnvelope(env: Envelope, options: SendOptions = {}): Promise<"sent" | "queued"> {
    const signal = options.signal ?? this.#ops.signal;
    const closed = (cause?: unknown): CommandError =>
      new CommandError("Not sent: the connection is closed", { cause });
    if (signal.aborted || this.#closing || this.#state === "closed") throw closed(signal.reason);
    // Every user frame is signed with the user's key (reference §5: `sig` is required on user
    // content; some servers refuse frames without it).
    const text = serializeEnvelope(env.sig ? env : await this.#sign(env));
    await this.#makeRoom();
    const written = this.#outbox.push(text);
    if (this.#state !== "ready") return "queued";
    await this.#pump();
    if (written()) return "sent";
    if (signal.aborted || this.#closing || !this.#reconnect) throw closed();
    return "queued";
  }

  /**
   * Sends a request to the server and resolves with the first frame `match` accepts, or
   * `undefined` when none came in time or the connection is not ready. An answer also confirms
   * every frame written before the request (see outbox.ts).
   */
  async request(
    type: string,
    payload: JsonObject,
    match: (frame: Frame) => boolean,
    options: RequestOptions = {},
  ): Promise<Frame | undefined> {
    if (this.#state !== "ready") return undefined;
    const link = this.#link;
    const timeoutMs = options.timeoutMs ?? this.#requestTimeoutMs;
    let waiter!: Waiter;
    const reply = new Promise<Frame | undefined>((resolve) => {
      waiter = { match, resolve };
      if (options.claim) waiter.claim = true;
    });
    this.#waiters.add(waiter);
    const stop = new AbortController();
    const timer = this.#clock.sleep(timeoutMs, stop.signal).then(() => {
      if (this.#waiters.delete(waiter)) waiter.resolve(undefined);
    });
    try {
      const env = {
        type,
        from: this.#me.userId,
        to: link.serverId ?? "*",
        ts: this.nextTs(),
        payload,
      };
      const signed = serializeEnvelope(await this.#sign(env));
      let seq: number;
      try {
        seq = await link.pacer.send(signed, this.#ops.signal);
      } catch (e) {
        if (e instanceof ConnectionClosedError || this.#ops.signal.aborted) {
          throw new CommandError("Not sent: the connection is closed", { cause: e });
        }
        throw e;
      }
      const answer = await reply;
      if (answer !== undefined && this.#link === link) this.#outbox.confirm(seq);
      return answer;
    } finally {
      stop.abort();
      await timer;
      this.#waiters.delete(waiter);
    }
  }

  /**
   * Waits until the server has processed every frame written so far (the answer to a
   * PUBKEY_REQUEST for ourselves comes after all of them). Returns false when no answer came in
   * time; true at once when nothing is unconfirmed or the connection is not ready. Barriers run
   * one at a time, and wait in proportion to what is unconfirmed and to how fast the server
   * answered the last ones (a slow server is not mistaken for a lost frame).
   */
  barrier(): Promise<boolean> {
    const run = this.#barriers.then(() => this.#barrierOnce());
    this.#barriers = run.then(() => {}, () => {});
    return run;
  }

  async #barrierOnce(): Promise<boolean> {
    const pending = this.#outbox.written;
    if (pending === 0 || this.#state !== "ready") return true;
    const link = this.#link;
    const perFrame = Math.max(BARRIER_MS_PER_FRAME, 4 * this.#msPerFrame);
    const started = this.#clock.now();
    const reply = await this.request(
      "PUBKEY_REQUEST",
      { user_id: this.#me.userId },
      (f) => this.#isBarrierAnswer(f),
      { timeoutMs: Math.min(600_000, this.#requestTimeoutMs + perFrame * pending) },
    );
    if (reply !== undefined && pending >= 20) {
      // Over enough frames the server's own pace shows (not just the round trip).
      const took = (this.#clock.now() - started) / pending;
      this.#msPerFrame = this.#msPerFrame === 0 ? took : (this.#msPerFrame + took) / 2;
    } else if (reply === undefined && link === this.#link && link.t.open) {
      // Its answer may still come: it must not confirm a later barrier's frames.
      link.lateBarrierAnswers++;
    }
    return reply !== undefined;
  }

  #isBarrierAnswer(f: Frame): boolean {
    const me = this.#me.userId;
    return (f.type === "PUBKEY_RESPONSE" && f.p.user_id === me) ||
      (f.type === "ERROR" && (f.p.code === "UNKNOWN_TYPE" || f.p.code === "USER_NOT_FOUND"));
  }

  /**
   * Says that the server will close the connection on purpose (e.g. after DELETE_ACCOUNT), so
   * the close counts as ours; `false` takes that back.
   */
  expectClose(expected: boolean): void {
    this.#byUs = expected;
  }

  /**
   * Ends the connection: waits until the server took what was written, calls `beforeClose`,
   * sends CTRL_CLOSE and closes with 1000; then waits (briefly) for the close and the pins to be
   * saved. While reconnecting it ends at once (what is still queued is not sent).
   */
  async quit(options: { beforeClose?: () => void } = {}): Promise<void> {
    if (!this.#started) {
      // Never said hello: nothing to close politely.
      this.#closing = true;
      this.#finish({ code: 1000, reason: "" });
    }
    if (this.#state === "ready" && this.#outbox.written > 0 && !this.#closing) {
      // Make sure the server has taken everything we sent before we hang up.
      if (this.#outbox.written > 200) {
        this.#emit({
          event: "info",
          text: `Waiting for the server to take the last ${this.#outbox.written} frames`,
        });
      }
      await this.barrier().catch(() => false);
    }
    if (!this.#closing) {
      this.#closing = true;
      this.#byUs = true;
      this.#stop.abort();
      const waiting = this.#outbox.unsent;
      if (this.#state !== "ready" && waiting > 0) {
        this.#warn(`${waiting} queued frames were not sent: the client is not connected`);
      }
      if (this.#state !== "closed") {
        options.beforeClose?.();
        this.#ops.abort(new ConnectionClosedError("The session is closing"));
        await this.#closeLink(this.#link);
      }
    }
    const stop = new AbortController();
    await Promise.race([this.closed, this.#clock.sleep(3000, stop.signal)]);
    stop.abort();
    await Promise.allSettled([...this.#signing]);
    await this.#trust.flush();
  }

  /** Same as {@linkcode quit}. */
  async [Symbol.asyncDispose](): Promise<void> {
    await this.quit();
  }

  // ------------------------------------------------------------------------------------------
  // Dial → hello → read loop, and again after a drop

  #newLink(t: Transport, url: string, reconnect: boolean): Link {
    return {
      t,
      url,
      pacer: new FramePacer(t, this.#clock, this.#pacing),
      reconnect,
      buffer: [],
      helloTimedOut: false,
      traits: { socp: false, clientWelcome: false },
      lateBarrierAnswers: 0,
    };
  }

  /** Waits for the link to drop; reconnects while allowed; then finishes. */
  async #supervise(first: Link): Promise<void> {
    let info = await first.loop!;
    while (!this.#closing && this.#reconnect && !FINAL_CLOSE_CODES.has(info.code)) {
      if (!(await this.#comeBack(info))) break;
      info = await this.#link.loop!;
    }
    this.#finish(info);
  }

  /** The reconnect loop: rounds over the known servers with backoff. True once back. */
  async #comeBack(info: CloseInfo): Promise<boolean> {
    const r = this.#reconnect!;
    // Some WebSocket stacks report a broken connection as 0: it is an abnormal closure (1006).
    const lost = { code: info.code || 1006, reason: info.reason };
    const from = this.#link.url;
    this.#state = "reconnecting";
    this.#log.debug(`connection to ${from} lost (${lost.code} ${lost.reason})`);
    this.#emit({ event: "disconnected", server: from, code: lost.code, reason: lost.reason });
    this.#onStatus({ status: "disconnected", server: from, code: lost.code, reason: lost.reason });
    await this.#writing;
    this.#outbox.rewind();
    for (let round = 0; round < r.maxRounds; round++) {
      if (round > 0) {
        const ms = Math.max(0, r.backoff(round - 1));
        this.#log.debug(`reconnect round ${round + 1} in ${ms} ms`);
        await this.#clock.sleep(ms, this.#stop.signal);
      }
      const candidates = this.#candidates(from);
      if (candidates.length === 0) return false;
      for (const url of candidates) {
        if (this.#closing) return false;
        const outcome = await this.#attempt(url, round);
        if (outcome === "ready") return true;
        if (outcome === "fatal") return false;
      }
    }
    this.#warn(`Gave up reconnecting after ${r.maxRounds} rounds`);
    return false;
  }

  /** The server lost first, then the others in order, minus those that changed their key. */
  #candidates(first: string): string[] {
    return [first, ...this.#servers.filter((u) => u !== first)].filter((u) =>
      !this.#refusedUrls.has(u)
    );
  }

  async #attempt(url: string, round: number): Promise<"ready" | "retry" | "fatal"> {
    const r = this.#reconnect!;
    const failed = (error: string): "retry" => {
      this.#log.debug(`reconnect to ${url} failed: ${error}`);
      this.#onStatus({ status: "attempt_failed", server: url, round, error });
      return "retry";
    };
    let t: Transport;
    try {
      t = await r.dial(url, this.#stop.signal);
    } catch (e) {
      return failed(errorMessage(e));
    }
    if (this.#closing) {
      t.close(1000, "bye");
      return "fatal";
    }
    const link = this.#newLink(t, url, true);
    // quit() during the login or the hello ends this attempt at once.
    const onStop = (): void => t.close(1000, "bye");
    this.#stop.signal.addEventListener("abort", onStop, { once: true });
    try {
      if (r.beforeHello) await r.beforeHello(t, url);
      if (this.#closing) throw new HelloError("CLOSED", "Quit while reconnecting");
      await this.#hello(link);
    } catch (e) {
      this.#stop.signal.removeEventListener("abort", onStop);
      if (t.open) t.close(1000, "bye");
      await link.loop;
      if (this.#closing) return "fatal";
      this.#state = "reconnecting";
      if (!(e instanceof HelloError)) return failed(errorMessage(e));
      if (e.code === "SERVER_KEY_CHANGED" || e.code === "CONFIG") {
        // Loud, and that server is not tried again; the pin is never replaced.
        this.#refusedUrls.add(url);
        this.#emit({ event: "error", code: e.code, detail: e.message, source: "client" });
        return failed(e.code);
      }
      if (e.fromServer && FATAL_ON_RECONNECT.has(e.code)) {
        this.#emit({
          event: "error",
          code: e.code,
          detail: `Could not log in again on ${url}: ${e.message}; /login to log in`,
          source: "server",
        });
        return "fatal";
      }
      return failed(`${e.code}: ${e.message}`);
    }
    this.#stop.signal.removeEventListener("abort", onStop);
    this.#emit({ event: "reconnected", server: url });
    this.#onStatus({ status: "ready", server: url, pinned: this.pinned, reconnected: true });
    // Everything the old server did not confirm goes out again, byte-identical, then the rest
    // of what was queued; an answer to the next request confirms it.
    await this.#pump();
    if (this.#outbox.written > 0) void this.#confirmSoon();
    return "ready";
  }

  /**
   * USER_HELLO on a link: the pin of its URL is loaded, the read loop started, and the verdict
   * awaited (ACK, ERROR, or a timeout after which the client goes on unpinned). Throws
   * {@linkcode HelloError} (after closing the link) when refused or disconnected.
   */
  async #hello(link: Link): Promise<void> {
    const url = link.url;
    this.#link = link;
    try {
      const pinned = await this.#pins.pinned(url);
      if (pinned) {
        link.serverKey = pinned.key;
        if (pinned.serverId) link.serverId = pinned.serverId;
      }
    } catch (e) {
      void this.#closeLink(link);
      throw e;
    }
    this.#state = "hello";
    const helloKey = encodeKeyText(
      this.#myPub,
      this.#keyEncoding !== "auto" ? this.#keyEncoding : this.#learnedEncoding.get(url) ?? "der",
    );
    const verdict = new Promise<void>((resolve, reject) => (link.hello = { resolve, reject }));
    const hello = await signedEnvelope(this.#me.keys.privateKey, {
      type: "USER_HELLO",
      from: this.#me.userId,
      to: link.serverId ?? "*",
      ts: this.nextTs(),
      payload: {
        client: CLIENT_NAME,
        pubkey: helloKey,
        enc_pubkey: helloKey,
        meta: { display_name: this.#me.displayName },
        // socp extensions: this client takes AES-GCM file chunks (docs/protocol.md, "Files"),
        // which a socp server advertises to others in `meta.caps`, and presence in
        // PRESENCE_BATCH frames ("Presence in batches"). Other servers ignore both.
        caps: ["file-aes-gcm", "presence-batch"],
        // Proof of possession of the key (signed, for this id, fresh): servers require it for
        // account holders and to bind a known key to a new id (docs/security.md).
        user_id: this.#me.userId,
        hello_ts: Math.floor(this.#clock.now()),
      },
    });
    link.t.send(serializeEnvelope(hello));
    link.loop = this.#readLoop(link);
    const stop = new AbortController();
    const timer = this.#helloTimer(link, stop.signal);
    try {
      await verdict;
    } finally {
      stop.abort();
      await timer;
    }
  }

  /** A user frame signed with the user's key (transport `sig` over canonical(payload)). */
  #sign(env: Envelope): Promise<Envelope> {
    const { sig: _old, ...fields } = env;
    const signing = signedEnvelope(this.#me.keys.privateKey, fields);
    // quit() waits for signatures under way, so none outlives the connection.
    this.#signing.add(signing);
    const done = () => this.#signing.delete(signing);
    signing.then(done, done);
    return signing;
  }

  /** CTRL_CLOSE, then a close with 1000 once the socket has sent everything. */
  async #closeLink(link: Link): Promise<void> {
    if (!link.t.open) return;
    // Unsigned, so the close never waits for a signature (servers accept CTRL_CLOSE without one).
    link.t.send(serializeEnvelope({
      type: "CTRL_CLOSE",
      from: this.#me.userId,
      to: link.serverId ?? "*",
      ts: this.nextTs(),
      payload: {},
    }));
    await this.#drain(link.t);
    link.t.close(1000, "bye");
  }

  /** Waits while the socket still holds unsent data, giving up after 5 s without progress. */
  async #drain(t: Transport): Promise<void> {
    let last = t.bufferedAmount;
    let stalled = 0;
    while (t.bufferedAmount > 0 && stalled < 5000) {
      await this.#clock.sleep(20);
      const now = t.bufferedAmount;
      stalled = now < last ? 0 : stalled + 20;
      last = now;
    }
  }

  /** Closed for good: reports it once. */
  #finish(info: CloseInfo): void {
    if (this.#ended) return;
    this.#ended = true;
    this.#state = "closed";
    this.#closing = true;
    this.#stop.abort();
    this.#ops.abort(new ConnectionClosedError());
    for (const w of this.#waiters) w.resolve(undefined);
    this.#waiters.clear();
    const lost = this.#outbox.clear();
    if (lost > 0 && !this.#byUs) this.#warn(`${lost} frames could not be sent`);
    const end = { ...info, byUs: this.#byUs };
    this.#onStatus({ status: "closed", end });
    this.#closed.resolve(end);
  }

  // ------------------------------------------------------------------------------------------
  // Sending content frames: in order, kept until confirmed

  /** Writes the outbox's unsent frames, in order, while ready. One writer at a time. */
  #pump(): Promise<void> {
    const run = this.#writing.then(async () => {
      while (this.#state === "ready" && this.#outbox.unsent > 0) {
        const link = this.#link;
        let seq: number;
        try {
          seq = await link.pacer.send(this.#outbox.nextUnsent()!, this.#ops.signal);
        } catch (e) {
          if (e instanceof ConnectionClosedError || this.#ops.signal.aborted) return;
          throw e;
        }
        if (link !== this.#link) return; // dropped meanwhile: it goes out again after rewind
        this.#outbox.markWritten(seq);
        if (this.#outbox.written >= CONFIRM_EVERY) void this.#confirmSoon();
      }
    });
    this.#writing = run.catch((e) => this.#log.debug(`writing failed: ${errorMessage(e)}`));
    return run;
  }

  /** One barrier at a time, in the background, to trim the outbox. */
  #confirmSoon(): Promise<boolean> {
    this.#confirming ??= this.barrier().catch(() => false).finally(() => {
      this.#confirming = undefined;
    });
    return this.#confirming;
  }

  /** Waits until the outbox has room (while connected), or throws when it is full offline. */
  async #makeRoom(): Promise<void> {
    while (this.#outbox.full) {
      if (this.#state !== "ready") {
        throw new CommandError(
          `Not sent: ${this.#outbox.size} frames are already waiting for the connection to come back; try again once reconnected`,
        );
      }
      await this.#pump();
      if (this.#state !== "ready") continue;
      if (!(await this.#confirmSoon()) && this.#state === "ready") {
        // The server does not answer: keep memory bounded rather than stall forever.
        const n = this.#outbox.forget(Math.ceil(this.#outbox.limit / 2));
        this.#log.debug(`no confirmation from the server; stopped tracking ${n} frames`);
      }
    }
  }

  // ------------------------------------------------------------------------------------------
  // Receiving

  async #readLoop(link: Link): Promise<CloseInfo> {
    try {
      for await (const text of link.t) {
        await this.#serial(() => this.#onText(link, text));
      }
    } catch (e) {
      this.#log.debug(`read loop ended: ${errorMessage(e)}`);
    } finally {
      await this.#chain;
      for (const w of this.#waiters) w.resolve(undefined);
      this.#waiters.clear();
    }
    const info = await link.t.closed;
    if (link.hello) {
      const hello = link.hello;
      delete link.hello;
      hello.reject(
        new HelloError(
          "CONNECTION_CLOSED",
          `Connection closed (${info.code}) before the server accepted us`,
          2,
        ),
      );
    }
    return info;
  }

  #serial(fn: () => Promise<void> | void): Promise<void> {
    this.#chain = this.#chain.then(fn).catch((e) => {
      this.#log.debug(`handler failed: ${e instanceof Error ? e.stack : String(e)}`);
      this.#warn(`Internal error while handling a frame: ${errorMessage(e)}`);
    });
    return this.#chain;
  }

  async #helloTimer(link: Link, signal: AbortSignal): Promise<void> {
    await this.#clock.sleep(this.#helloTimeoutMs, signal);
    if (signal.aborted) return;
    link.helloTimedOut = true;
    if (link.buffer.length === 0 || link.traits.clientWelcome) {
      // Nothing at all yet: give the server a while longer to say anything. A server that
      // greeted with CLIENT_WELCOME sends its key in an ACK after its other greeting frames,
      // sometimes late: its frames wait for that key rather than being taken unauthenticated.
      await this.#clock.sleep(this.#helloTimeoutMs * 4, signal);
      if (signal.aborted) return;
    }
    await this.#serial(() => this.#finishHello(link));
  }

  async #onText(link: Link, text: string): Promise<void> {
    let env: Envelope;
    try {
      env = parseEnvelope(text);
    } catch (e) {
      this.#warn(`Dropped a malformed frame: ${errorMessage(e)}`);
      return;
    }
    // After a refusal, once we are closing, or from a connection given up, nothing is processed.
    if (this.#closing || link !== this.#link) return;
    if (link.hello) return await this.#onHelloFrame(link, env);
    if (this.#state !== "ready") return;
    await this.#accept(link, env);
  }

  async #onHelloFrame(link: Link, env: Envelope): Promise<void> {
    if (env.type === "ACK" && env.payload["msg_ref"] === "USER_HELLO_OK") {
      return await this.#onHelloAck(link, env);
    }
    if (env.type === "ERROR") {
      const code = typeof env.payload["code"] === "string" ? env.payload["code"] : "ERROR";
      const detail = typeof env.payload["detail"] === "string" && env.payload["detail"]
        ? env.payload["detail"]
        : "The server refused the connection";
      const hint = code === "NAME_IN_USE" && !link.reconnect
        ? "; close the other session, or use another config file for another identity"
        : "";
      this.#failHello(link, new HelloError(code, detail + hint, 1, true));
      return;
    }
    if (env.type === "CLIENT_WELCOME") link.traits.clientWelcome = true;
    if (link.buffer.length < 10_000) link.buffer.push(env);
    if (link.helloTimedOut && !link.traits.clientWelcome) await this.#finishHello(link);
  }

  async #onHelloAck(link: Link, env: Envelope): Promise<void> {
    const judged = await this.#pins.judgeAck(link.url, env, link.serverKey);
    if (judged.verdict === "drop") return;
    if (judged.verdict === "refuse") return this.#failHello(link, judged.error);
    if (judged.server) {
      link.serverKey = judged.server.key;
      link.serverId = judged.server.serverId;
    }
    this.#noteAckTraits(link, env);
    // The group's keys are taken only from an ACK signed by a pinned key.
    if (link.serverKey) {
      const members = this.#pins.learnGroup(env.payload);
      for (const m of members) if (!this.#servers.includes(m.url)) this.#servers.push(m.url);
      if (members.length > 0) this.#onServerGroup(members);
    }
    await this.#finishHello(link);
  }

  /** The server refused us: the hello fails, and the link is closed as quit() would. */
  #failHello(link: Link, error: HelloError): void {
    const hello = link.hello;
    delete link.hello;
    if (!link.reconnect) this.#closing = true;
    void this.#closeLink(link);
    hello?.reject(error);
  }

  async #finishHello(link: Link): Promise<void> {
    if (!link.hello || link !== this.#link) return;
    this.#state = "ready";
    const first = !this.#everReady;
    this.#everReady = true;
    const pinned = link.serverKey !== undefined;
    if (first) {
      this.#emit({
        event: "ready",
        user_id: this.#me.userId,
        display_name: this.#me.displayName,
        server: link.url,
        pinned,
        ...(this.#me.account !== undefined ? { account: this.#me.account } : {}),
      });
    }
    if (!pinned) {
      this.#warn(
        `The server at ${link.url} did not send its key (no USER_HELLO_OK ACK); its frames cannot be authenticated`,
      );
    }
    if (first) this.#onStatus({ status: "ready", server: link.url, pinned, reconnected: false });
    const hello = link.hello;
    delete link.hello;
    hello.resolve();
    for (const env of link.buffer.splice(0)) await this.#accept(link, env);
  }

  /** Traits the ACK shows: socp capabilities, and the server's key encoding. */
  #noteAckTraits(link: Link, env: Envelope): void {
    const socp = env.payload["socp"];
    if (typeof socp === "object" && socp !== null && !Array.isArray(socp)) link.traits.socp = true;
    this.#learnEncoding(link, env.payload["server_pub"]);
  }

  /** The server's key encoding, from the first key it sends (kept for the next hello). */
  #learnEncoding(link: Link, key: unknown): void {
    if (link.traits.keyEncoding !== undefined || typeof key !== "string" || key.length < 100) {
      return;
    }
    link.traits.keyEncoding = keyEncodingOf(key);
    this.#learnedEncoding.set(link.url, link.traits.keyEncoding);
  }

  /**
   * A USER_HELLO_OK ACK that comes after the client went ready unpinned (a slow server): its key
   * is judged and pinned as at hello time, and every later frame must verify with it.
   */
  async #lateAck(link: Link, env: Envelope): Promise<void> {
    const judged = await this.#pins.judgeAck(link.url, env, undefined);
    if (judged.verdict === "drop") return;
    if (judged.verdict === "refuse") {
      this.#emit({
        event: "error",
        code: judged.error.code,
        detail: judged.error.message,
        source: "client",
      });
      this.#closing = true;
      await this.#closeLink(link);
      return;
    }
    if (!judged.server) return;
    link.serverKey = judged.server.key;
    link.serverId = judged.server.serverId;
    this.#noteAckTraits(link, env);
    this.#emit({
      event: "info",
      text: `The server at ${link.url} sent its key late; its frames are authenticated from now on`,
    });
  }

  async #accept(link: Link, env: Envelope): Promise<void> {
    if (
      !link.serverKey && env.type === "ACK" && env.payload["msg_ref"] === "USER_HELLO_OK" &&
      typeof env.payload["server_pub"] === "string"
    ) {
      return await this.#lateAck(link, env);
    }
    if (env.type === "CLIENT_WELCOME") {
      link.traits.clientWelcome = true;
      return;
    }
    if (env.type === "PRESENCE_BATCH") return await this.#acceptBatch(link, env);
    if (link.serverKey) {
      if (!env.sig) {
        this.#warn(`Dropped a ${env.type} frame: it has no transport signature`);
        return;
      }
      if (!(await verifyEnvelope(link.serverKey, env))) {
        this.#warn(`Dropped a ${env.type} frame: its transport signature is not the server's`);
        return;
      }
    }
    let frame: Frame | undefined;
    try {
      frame = decodeFrame(env);
    } catch (e) {
      this.#warn(`Dropped a malformed ${env.type} frame: ${errorMessage(e)}`);
      return;
    }
    if (!frame) {
      this.#log.debug(`ignoring frame of unknown type ${env.type}`);
      return;
    }
    this.#log.debug(`<- ${env.type} from ${env.from}`);
    if (link.traits.keyEncoding === undefined) {
      const p = env.payload;
      const meta = p["meta"];
      this.#learnEncoding(
        link,
        p["server_pub"] ?? p["pubkey"] ?? p["sender_pub"] ??
          (typeof meta === "object" && meta !== null && !Array.isArray(meta)
            ? meta["pubkey"]
            : undefined),
      );
    }
    // The late answer to a barrier that timed out answers no one waiting now.
    const late = link.lateBarrierAnswers > 0 && this.#isBarrierAnswer(frame);
    if (late) link.lateBarrierAnswers--;
    const answered = late ? [] : [...this.#waiters].filter((w) => w.match(frame));
    const claimed = frame.type === "ERROR" && answered.some((w) => w.claim === true);
    if (!claimed) await this.#onFrame(frame);
    for (const w of answered) {
      this.#waiters.delete(w);
      w.resolve(frame);
    }
  }

  /**
   * PRESENCE_BATCH: the server's own signed USER_ADVERTISE / USER_REMOVE frames, collected
   * (server/presence_batch.ts). Each inner frame is taken as if it had come alone, so its
   * signature is checked with the server's key like any other frame's.
   */
  async #acceptBatch(link: Link, env: Envelope): Promise<void> {
    let frame: Frame | undefined;
    try {
      frame = decodeFrame(env);
    } catch (e) {
      this.#warn(`Dropped a malformed PRESENCE_BATCH frame: ${errorMessage(e)}`);
      return;
    }
    if (frame?.type !== "PRESENCE_BATCH") return;
    for (const inner of frame.p.frames) await this.#accept(link, inner);
  }

  #warn(text: string): void {
    this.#emit({ event: "warn", text });
  }
}
