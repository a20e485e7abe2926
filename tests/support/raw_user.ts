/**
 * A scripted SOCP user in the test process: {@linkcode RawConnection} is a bare WebSocket that
 * buffers every frame the server sends, so a test can await the one it wants (`next`) without
 * losing the others; {@linkcode RawUser} adds an identity (fixture key, UUID), the USER_HELLO
 * handshake, real end-to-end encrypted DMs, public-channel messages and files, and checks that
 * every frame it is handed is signed by the server key from the ACK. Hostile tests use both to
 * send what an honest client never would.
 *
 * @module
 */

import {
  type CloseInfo,
  decryptText,
  encodePublicKey,
  encryptBlock,
  encryptText,
  type Envelope,
  importPublicKeyText,
  type JsonObject,
  type KeyPair,
  OAEP_MAX_PLAINTEXT,
  parseEnvelope,
  type PublicKey,
  serializeEnvelope,
  sha256Hex,
  signContent,
  signedEnvelope,
  type Transport,
  verifyContent,
  verifyEnvelope,
  webSocketTransport,
} from "../../shared/mod.ts";
import { type FixtureKeyName, fixtureKeyPair } from "../fixtures/keys.ts";
import { TIMEOUTS, withTimeout } from "./timeout.ts";

/** Default wait for one frame. */
export const FRAME_TIMEOUT_MS: number = TIMEOUTS.frame;

/** Which frame to wait for: a type name, or a predicate over the envelope. */
export type FrameMatch = string | ((frame: Envelope) => boolean);

/** Options for opening a connection. */
export interface OpenOptions {
  /** The server key (base64url SPKI) frames must be signed with, known before the ACK. */
  serverPub?: string;
  /** How long to wait for the WebSocket to open (default 10 s). */
  timeoutMs?: number;
}

interface Waiter {
  match: (frame: Envelope) => boolean;
  resolve: (frame: Envelope) => void;
  reject: (error: Error) => void;
}

function matcher(match: FrameMatch): (frame: Envelope) => boolean {
  return typeof match === "string" ? (frame) => frame.type === match : match;
}

function describeMatch(match: FrameMatch): string {
  return typeof match === "string" ? match : "a matching frame";
}

/** A frame summary for diagnostics: type, and the code of an ERROR. */
export function summarize(frame: Envelope): string {
  const code = frame.type === "ERROR" ? `(${String(frame.payload["code"])})` : "";
  return `${frame.type}${code}`;
}

/** Matches an `ERROR` frame, optionally with a given code. */
export function isError(code?: string): (frame: Envelope) => boolean {
  return (frame) =>
    frame.type === "ERROR" && (code === undefined || frame.payload["code"] === code);
}

/** Opens a WebSocket and resolves once it is open. */
export async function openTransport(
  url: string,
  timeoutMs: number = TIMEOUTS.frame,
): Promise<Transport> {
  const ws = new WebSocket(url);
  const transport = webSocketTransport(ws);
  const opened = new Promise<boolean>((resolve) => {
    ws.addEventListener("open", () => resolve(true), { once: true });
    ws.addEventListener("close", () => resolve(false), { once: true });
  });
  let ok = false;
  try {
    ok = await withTimeout(opened, timeoutMs, `a WebSocket to ${url} to open`);
  } finally {
    if (!ok) {
      transport.close();
      await transport.closed;
    }
  }
  if (!ok) throw new Error(`Could not connect to ${url}`);
  return transport;
}

/**
 * One WebSocket connection to a server, buffering every frame it receives. Frames are parsed as
 * SOCP envelopes; `next` hands out the first buffered (or future) frame that matches and keeps the
 * rest for later calls. When a server key is known, every handed-out frame must verify with it.
 */
export class RawConnection implements AsyncDisposable {
  readonly #transport: Transport;
  readonly #buffer: Envelope[] = [];
  readonly #all: Envelope[] = [];
  readonly #waiters: Waiter[] = [];
  readonly #unparsable: string[] = [];
  readonly #pump: Promise<void>;
  #closeInfo: CloseInfo | undefined;
  #serverPubText: string | undefined;
  #serverKey: Promise<PublicKey> | undefined;

  /** Wraps an open transport; prefer {@linkcode RawConnection.open}. */
  constructor(transport: Transport, options: { serverPub?: string } = {}) {
    this.#transport = transport;
    if (options.serverPub !== undefined) this.setServerPub(options.serverPub);
    this.#pump = this.#run();
  }

  /** Opens a connection to `url` (no frame is sent). */
  static async open(url: string, options: OpenOptions = {}): Promise<RawConnection> {
    const transport = await openTransport(url, options.timeoutMs);
    return new RawConnection(
      transport,
      options.serverPub !== undefined ? { serverPub: options.serverPub } : {},
    );
  }

  async #run(): Promise<void> {
    for await (const text of this.#transport) {
      let frame: Envelope;
      try {
        frame = parseEnvelope(text, { maxBytes: 16 << 20 });
      } catch {
        this.#unparsable.push(text.slice(0, 200));
        continue;
      }
      this.#all.push(frame);
      const index = this.#waiters.findIndex((w) => w.match(frame));
      if (index >= 0) this.#waiters.splice(index, 1)[0]!.resolve(frame);
      else this.#buffer.push(frame);
    }
    this.#closeInfo = await this.#transport.closed;
    for (const waiter of this.#waiters.splice(0)) {
      waiter.reject(new Error(`Connection closed (${this.#closeText()}) ${this.#state()}`));
    }
  }

  #closeText(): string {
    const info = this.#closeInfo;
    return info ? `code ${info.code}${info.reason ? ` "${info.reason}"` : ""}` : "open";
  }

  #state(): string {
    const pending = this.#buffer.map(summarize).join(", ") || "none";
    return `[unconsumed frames: ${pending}; connection ${this.#closeText()}]`;
  }

  /** The server key frames must be signed with, once known (base64url SPKI). */
  get serverPub(): string | undefined {
    return this.#serverPubText;
  }

  /** Sets the server key every handed-out frame must verify with. */
  setServerPub(pubkey: string): void {
    this.#serverPubText = pubkey;
    this.#serverKey = importPublicKeyText(pubkey);
  }

  /** Sends a frame: an object is JSON-encoded, a string is sent as is. */
  send(frame: object | string): void {
    this.#transport.send(typeof frame === "string" ? frame : JSON.stringify(frame));
  }

  /**
   * The first frame (buffered or future) that matches, removed from the buffer. Rejects after
   * `timeoutMs`, when the connection closes first, or when the frame's transport signature does
   * not verify with the known server key.
   */
  async next(match: FrameMatch, timeoutMs: number = FRAME_TIMEOUT_MS): Promise<Envelope> {
    const test = matcher(match);
    const index = this.#buffer.findIndex(test);
    let frame: Envelope;
    if (index >= 0) {
      frame = this.#buffer.splice(index, 1)[0]!;
    } else if (this.#closeInfo !== undefined) {
      throw new Error(
        `Connection closed (${this.#closeText()}) before ${describeMatch(match)} ${this.#state()}`,
      );
    } else {
      const { promise, resolve, reject } = Promise.withResolvers<Envelope>();
      const waiter: Waiter = { match: test, resolve, reject };
      this.#waiters.push(waiter);
      try {
        frame = await withTimeout(
          promise,
          timeoutMs,
          () => `${describeMatch(match)} ${this.#state()}`,
        );
      } finally {
        const at = this.#waiters.indexOf(waiter);
        if (at >= 0) this.#waiters.splice(at, 1);
      }
    }
    this.#checkParsable();
    if (this.#serverKey !== undefined) await this.verifyFromServer(frame);
    return frame;
  }

  /** The next `ERROR` frame (with `code`, when given). */
  nextError(code?: string, timeoutMs: number = FRAME_TIMEOUT_MS): Promise<Envelope> {
    return this.next(isError(code), timeoutMs);
  }

  /**
   * Waits `ms` and asserts that no matching frame arrived meanwhile (and none is buffered). Only
   * for absences that cannot be proven by a later frame.
   */
  async expectNone(match: FrameMatch, ms: number): Promise<void> {
    await new Promise((resolve) => setTimeout(resolve, ms));
    const found = this.#buffer.find(matcher(match));
    if (found) {
      throw new Error(`Expected no ${describeMatch(match)}, got ${serializeEnvelope(found)}`);
    }
  }

  /** Unconsumed frames (a copy), oldest first. */
  pending(): Envelope[] {
    return [...this.#buffer];
  }

  /** Every frame received so far (a copy), consumed or not. */
  received(): Envelope[] {
    return [...this.#all];
  }

  /** Drops every unconsumed frame that matches (or all), returning them. */
  discard(match?: FrameMatch): Envelope[] {
    const test = match === undefined ? () => true : matcher(match);
    const out: Envelope[] = [];
    for (let i = this.#buffer.length - 1; i >= 0; i--) {
      if (test(this.#buffer[i]!)) out.unshift(this.#buffer.splice(i, 1)[0]!);
    }
    return out;
  }

  #checkParsable(): void {
    if (this.#unparsable.length > 0) {
      throw new Error(
        `The server sent a frame that is not a SOCP envelope: ${this.#unparsable[0]}`,
      );
    }
  }

  /**
   * Asserts that `frame` carries a transport signature that verifies with the server key (from
   * the ACK, or given when opening).
   */
  async verifyFromServer(frame: Envelope): Promise<void> {
    if (this.#serverKey === undefined) {
      throw new Error(`No server key known to verify ${summarize(frame)}`);
    }
    if (!frame.sig) throw new Error(`${summarize(frame)} from the server is not signed`);
    if (!(await verifyEnvelope(await this.#serverKey, frame))) {
      throw new Error(
        `${summarize(frame)} signature does not verify with the server key: ${
          serializeEnvelope(frame).slice(0, 300)
        }`,
      );
    }
  }

  /** Asserts that every frame received so far verifies with the server key. */
  async verifyAllFromServer(): Promise<void> {
    this.#checkParsable();
    for (const frame of this.#all) await this.verifyFromServer(frame);
  }

  /** True until the connection starts closing. */
  get isOpen(): boolean {
    return this.#transport.open;
  }

  /** Resolves with the close code and reason once the connection closed (either side). */
  get closed(): Promise<CloseInfo> {
    return this.#transport.closed;
  }

  /** Waits (bounded) for the server to close the connection. */
  async closedByServer(timeoutMs: number = FRAME_TIMEOUT_MS): Promise<CloseInfo> {
    return await withTimeout(this.#transport.closed, timeoutMs, "the server to close");
  }

  /** Closes the connection and waits until it is closed. */
  async close(): Promise<CloseInfo> {
    this.#transport.close(1000, "");
    const info = await withTimeout(this.#transport.closed, FRAME_TIMEOUT_MS, "the close");
    await this.#pump;
    return info;
  }

  /** Same as {@linkcode close}. */
  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }
}

/** The server refused a USER_HELLO with an ERROR frame. */
export class HelloRefusedError extends Error {
  /** The ERROR code. */
  readonly code: string;
  /** The ERROR frame. */
  readonly frame: Envelope;
  /** Creates the error from the server's ERROR frame. */
  constructor(frame: Envelope) {
    const code = String(frame.payload["code"]);
    super(`USER_HELLO refused with ${code}: ${String(frame.payload["detail"] ?? "")}`);
    this.name = "HelloRefusedError";
    this.code = code;
    this.frame = frame;
  }
}

/** Options for {@linkcode openUser} and {@linkcode connectUser}. */
export interface UserOptions extends OpenOptions {
  /** Display name sent in `meta.display_name` (default: the key name). */
  displayName?: string;
  /** User id (default a fresh UUIDv4). */
  userId?: string;
}

/** Something a DM can be encrypted for: a user id and its public key. */
export interface Recipient {
  /** User id. */
  readonly userId: string;
  /** Public key. */
  readonly keys: { readonly publicKey: PublicKey };
}

/** A DM as received and checked by {@linkcode RawUser.nextDm}. */
export interface ReceivedDm {
  /** The USER_DELIVER frame. */
  frame: Envelope;
  /** Decrypted text. */
  text: string;
  /** Sender user id (`payload.sender`). */
  sender: string;
  /** The content_sig variant that verified. */
  variant: string;
}

/** A scripted user: identity, handshake, encrypted DMs, on top of a {@linkcode RawConnection}. */
export class RawUser extends RawConnection {
  /** User id (UUID). */
  readonly userId: string;
  /** Display name. */
  readonly displayName: string;
  /** The fixture key pair. */
  readonly keys: KeyPair;
  /** base64url DER SPKI of the public key. */
  readonly pubkey: string;
  #ack: Envelope | undefined;

  /** Wraps an open transport for a user; prefer {@linkcode connectUser}. */
  constructor(
    transport: Transport,
    identity: { userId: string; displayName: string; keys: KeyPair },
    options: { serverPub?: string } = {},
  ) {
    super(transport, options);
    this.userId = identity.userId;
    this.displayName = identity.displayName;
    this.keys = identity.keys;
    this.pubkey = encodePublicKey(identity.keys.publicKey);
  }

  /** The server's ACK to USER_HELLO (after {@linkcode hello}). */
  get ack(): Envelope {
    if (!this.#ack) throw new Error("No ACK yet: call hello() first");
    return this.#ack;
  }

  /** The server id from the ACK. */
  get serverId(): string {
    return String(this.ack.payload["server_id"]);
  }

  /** A signed (by default) envelope from this user. */
  async envelope(
    type: string,
    to: string,
    payload: JsonObject,
    options: { ts?: number; from?: string; sign?: boolean } = {},
  ): Promise<Envelope> {
    const fields = {
      type,
      from: options.from ?? this.userId,
      to,
      ts: options.ts ?? Date.now(),
      payload,
    };
    return options.sign === false ? fields : await signedEnvelope(this.keys.privateKey, fields);
  }

  /** Builds, signs and sends a frame from this user; returns it. */
  async sendFrame(
    type: string,
    to: string,
    payload: JsonObject,
    options: { ts?: number; from?: string; sign?: boolean } = {},
  ): Promise<Envelope> {
    const env = await this.envelope(type, to, payload, options);
    this.send(serializeEnvelope(env));
    return env;
  }

  /** The self-signed USER_HELLO this user sends (see docs/protocol.md). */
  helloEnvelope(): Promise<Envelope> {
    return signedHello(this.keys, this.userId, { displayName: this.displayName, to: "server" });
  }

  /**
   * Sends USER_HELLO and waits for `ACK {msg_ref:"USER_HELLO_OK"}`, whose `server_pub` becomes
   * the key every later frame must verify with (it must match a key given when opening). Rejects
   * with {@linkcode HelloRefusedError} when the server answers with an ERROR.
   */
  async hello(timeoutMs: number = FRAME_TIMEOUT_MS): Promise<Envelope> {
    this.send(serializeEnvelope(await this.helloEnvelope()));
    const reply = await this.next(
      (f) => (f.type === "ACK" && f.payload["msg_ref"] === "USER_HELLO_OK") || f.type === "ERROR",
      timeoutMs,
    );
    if (reply.type === "ERROR") throw new HelloRefusedError(reply);
    const serverPub = reply.payload["server_pub"];
    if (typeof serverPub !== "string") throw new Error("USER_HELLO_OK ACK has no server_pub");
    if (this.serverPub !== undefined && this.serverPub !== serverPub) {
      throw new Error("USER_HELLO_OK ACK carries a different server_pub than expected");
    }
    this.setServerPub(serverPub);
    await this.verifyFromServer(reply);
    this.#ack = reply;
    return reply;
  }

  /** Encrypts `text` for `to` and sends it as MSG_DIRECT (content_sig variant A); returns it. */
  async dm(
    to: Recipient,
    text: string,
    options: { ts?: number; type?: "MSG_DIRECT" | "MSG_PRIVATE"; extra?: JsonObject } = {},
  ): Promise<Envelope> {
    const ts = options.ts ?? Date.now();
    const ciphertext = await encryptText(to.keys.publicKey, text);
    const contentSig = await signContent(this.keys.privateKey, {
      ciphertext,
      from: this.userId,
      to: to.userId,
      ts,
    });
    return await this.sendFrame(options.type ?? "MSG_DIRECT", to.userId, {
      ...options.extra,
      ciphertext,
      sender_pub: this.pubkey,
      content_sig: contentSig,
    }, { ts });
  }

  /**
   * Sends `ciphertext` as MSG_PUBLIC_CHANNEL to `to` (`"public"`, or one member's id) with
   * `sender_pub` and a content_sig over (ciphertext, this user, ts); returns it.
   */
  async sendPublic(
    to: string,
    ciphertext: string,
    options: { ts?: number; groupId?: string } = {},
  ): Promise<Envelope> {
    const ts = options.ts ?? Date.now();
    const contentSig = await signContent(this.keys.privateKey, {
      ciphertext,
      from: this.userId,
      ts,
    });
    return await this.sendFrame("MSG_PUBLIC_CHANNEL", to, {
      ciphertext,
      sender_pub: this.pubkey,
      content_sig: contentSig,
      ...(options.groupId === undefined ? {} : { group_id: options.groupId }),
    }, { ts });
  }

  /**
   * Sends a file to `to` the way the client does: FILE_START (mode `dm`), 446-byte OAEP chunks
   * under the recipient's key, FILE_END. Resolves with the file id, its SHA-256 (hex) and the
   * number of chunks.
   */
  async sendFile(
    to: Recipient,
    file: { name: string; bytes: Uint8Array },
  ): Promise<{ fileId: string; sha256: string; chunks: number }> {
    const { name, bytes } = file;
    const fileId = crypto.randomUUID();
    const sha256 = await sha256Hex(bytes);
    await this.sendFrame("FILE_START", to.userId, {
      file_id: fileId,
      name,
      size: bytes.length,
      sha256,
      mode: "dm",
    });
    let chunks = 0;
    for (let i = 0; i < bytes.length; i += OAEP_MAX_PLAINTEXT, chunks++) {
      const chunk = bytes.subarray(i, i + OAEP_MAX_PLAINTEXT);
      await this.sendFrame("FILE_CHUNK", to.userId, {
        file_id: fileId,
        index: chunks,
        ciphertext: await encryptBlock(to.keys.publicKey, chunk),
      });
    }
    await this.sendFrame("FILE_END", to.userId, { file_id: fileId });
    return { fileId, sha256, chunks };
  }

  /** Decrypts the `ciphertext` of a frame addressed to this user. */
  decrypt(frame: Envelope): Promise<string> {
    const ciphertext = frame.payload["ciphertext"];
    if (typeof ciphertext !== "string") {
      throw new TypeError(`${summarize(frame)} has no string ciphertext`);
    }
    return decryptText(this.keys.privateKey, ciphertext);
  }

  /**
   * The next USER_DELIVER (from `from`, when given): decrypted, with its content_sig verified
   * against `sender_pub` over (ciphertext, sender, this user, original ts).
   */
  async nextDm(
    from?: { userId: string } | string,
    timeoutMs: number = FRAME_TIMEOUT_MS,
  ): Promise<ReceivedDm> {
    const sender = typeof from === "string" ? from : from?.userId;
    const frame = await this.next(
      (f) => f.type === "USER_DELIVER" && (sender === undefined || f.payload["sender"] === sender),
      timeoutMs,
    );
    const text = await this.decrypt(frame);
    const p = frame.payload;
    const senderPub = await importPublicKeyText(String(p["sender_pub"]));
    const candidates = [p["msg_ts"], p["orig_ts"], frame.ts].filter(
      (v): v is number => typeof v === "number",
    );
    const variant = await verifyContent(senderPub, String(p["content_sig"]), {
      ciphertext: String(p["ciphertext"]),
      from: String(p["sender"]),
      to: this.userId,
    }, candidates);
    if (variant === undefined) {
      throw new Error(`content_sig of a DM from ${String(p["sender"])} does not verify`);
    }
    return { frame, text, sender: String(p["sender"]), variant };
  }
}

/**
 * A USER_HELLO from `userId` with `keys`, signed, with the id and a fresh time in the payload:
 * the proof of possession socp servers require of socp clients (docs/protocol.md). `caps` are
 * the client's capabilities (e.g. `presence-batch`).
 */
export async function signedHello(
  keys: KeyPair,
  userId: string,
  options: { displayName: string; caps?: readonly string[]; to?: string; client?: string },
): Promise<Envelope> {
  const pubkey = encodePublicKey(keys.publicKey);
  return await signedEnvelope(keys.privateKey, {
    type: "USER_HELLO",
    from: userId,
    to: options.to ?? "*",
    ts: Date.now(),
    payload: {
      client: options.client ?? "socp-tests",
      pubkey,
      enc_pubkey: pubkey,
      meta: { display_name: options.displayName },
      ...(options.caps === undefined ? {} : { caps: [...options.caps] }),
      user_id: userId,
      hello_ts: Date.now(),
    },
  });
}

/** Opens a connection for a user with a fixture key, without sending USER_HELLO. */
export async function openUser(
  url: string,
  keyName: FixtureKeyName,
  options: UserOptions = {},
): Promise<RawUser> {
  const keys = await fixtureKeyPair(keyName);
  const transport = await openTransport(url, options.timeoutMs);
  return new RawUser(
    transport,
    {
      userId: options.userId ?? crypto.randomUUID(),
      displayName: options.displayName ?? keyName,
      keys,
    },
    options.serverPub !== undefined ? { serverPub: options.serverPub } : {},
  );
}

/**
 * Connects a user with a fixture key: opens a WebSocket, sends a self-signed USER_HELLO and
 * awaits the ACK. Closes the connection and rejects when the server refuses.
 *
 * @example
 * ```ts ignore
 * await using alice = await connectUser(server.url, "user0", { displayName: "alice" });
 * ```
 */
export async function connectUser(
  url: string,
  keyName: FixtureKeyName,
  options: UserOptions = {},
): Promise<RawUser> {
  const user = await openUser(url, keyName, options);
  try {
    await user.hello();
  } catch (error) {
    await user.close();
    throw error;
  }
  return user;
}
