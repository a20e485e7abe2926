/**
 * Test helpers for the client: a scripted server on the far end of an in-memory transport,
 * an event recorder, and sessions wired to fixture keys.
 *
 * @module
 */

import {
  encodePublicKey,
  type Envelope,
  type JsonObject,
  type KeyPair,
  memoryTransportPair,
  parseEnvelope,
  serializeEnvelope,
  signPayload,
  type Transport,
} from "../shared/mod.ts";
import { type FixtureKeyName, fixtureKeyPair } from "../tests/fixtures/keys.ts";
import { withTimeout } from "../tests/support/timeout.ts";
import type { ClientEvent } from "./events.ts";
import { ClientSession, type ClientSessionOptions } from "./session.ts";
import { MemoryTrustStore } from "./trust_store.ts";

export { fixtureKeyPair };

/** Fixed ids used across tests. */
export const IDS = {
  alice: "11111111-1111-4111-8111-111111111111",
  bob: "22222222-2222-4222-8222-222222222222",
  carol: "33333333-3333-4333-8333-333333333333",
  server: "99999999-9999-4999-8999-999999999999",
} as const;

/** How the fake server signs a frame. */
export type SignMode = "good" | "none" | "bad";

/** Plays the server's side of a connection. */
export class FakeServer {
  readonly transport: Transport;
  readonly keys: KeyPair;
  readonly id: string;
  #iter: AsyncIterator<string>;
  #otherKey: KeyPair | undefined;

  constructor(transport: Transport, keys: KeyPair, id: string = IDS.server) {
    this.transport = transport;
    this.keys = keys;
    this.id = id;
    this.#iter = transport[Symbol.asyncIterator]();
  }

  get pub(): string {
    return encodePublicKey(this.keys.publicKey);
  }

  /** The next frame the client sent. */
  async next(ms = 5000): Promise<Envelope> {
    const r = await withTimeout(this.#iter.next(), ms, "a frame from the client");
    if (r.done) throw new Error("The client closed the connection");
    return parseEnvelope(r.value);
  }

  /** The next frame of a type, skipping others. */
  async nextOf(type: string, ms = 5000): Promise<Envelope> {
    for (;;) {
      const env = await this.next(ms);
      if (env.type === type) return env;
    }
  }

  /** Sends a frame to the client, signed as asked. */
  async send(
    type: string,
    payload: JsonObject,
    options: { sign?: SignMode; to?: string; from?: string; ts?: number } = {},
  ): Promise<void> {
    const env: Envelope = {
      type,
      from: options.from ?? this.id,
      to: options.to ?? IDS.alice,
      ts: options.ts ?? Date.now(),
      payload,
    };
    const mode = options.sign ?? "good";
    if (mode === "good") env.sig = await signPayload(this.keys.privateKey, payload);
    if (mode === "bad") {
      this.#otherKey ??= await fixtureKeyPair("server4");
      env.sig = await signPayload(this.#otherKey.privateKey, payload);
    }
    this.transport.send(serializeEnvelope(env));
  }

  /** Sends raw text. */
  sendRaw(text: string): void {
    this.transport.send(text);
  }

  /** Answers USER_HELLO with the socp ACK. */
  ack(options: { pub?: string; sign?: SignMode } = {}): Promise<void> {
    return this.send("ACK", {
      msg_ref: "USER_HELLO_OK",
      server_id: this.id,
      server_pub: options.pub ?? this.pub,
    }, { sign: options.sign ?? "good" });
  }
}

/** Records events and waits for them. */
export class EventLog {
  readonly events: ClientEvent[] = [];
  #waiters: { pred: (e: ClientEvent) => boolean; resolve: (e: ClientEvent) => void }[] = [];

  readonly sink = (e: ClientEvent): void => {
    this.events.push(e);
    this.#waiters = this.#waiters.filter((w) => {
      if (!w.pred(e)) return true;
      w.resolve(e);
      return false;
    });
  };

  /** The first recorded (or next) event matching `pred`. */
  wait<K extends ClientEvent["event"]>(
    kind: K,
    pred: (e: Extract<ClientEvent, { event: K }>) => boolean = () => true,
    ms = 5000,
  ): Promise<Extract<ClientEvent, { event: K }>> {
    const match = (e: ClientEvent): e is Extract<ClientEvent, { event: K }> =>
      e.event === kind && pred(e as Extract<ClientEvent, { event: K }>);
    const hit = this.events.find(match);
    if (hit) return Promise.resolve(hit);
    const p = new Promise<Extract<ClientEvent, { event: K }>>((resolve) =>
      this.#waiters.push({
        pred: match,
        resolve: (e) => resolve(e as Extract<ClientEvent, { event: K }>),
      })
    );
    return withTimeout(p, ms, `a "${kind}" event`);
  }

  of<K extends ClientEvent["event"]>(kind: K): Extract<ClientEvent, { event: K }>[] {
    return this.events.filter((e): e is Extract<ClientEvent, { event: K }> => e.event === kind);
  }
}

/** A session for `alice` (user0) wired to a fake server (server0). */
export interface Harness extends AsyncDisposable {
  session: ClientSession;
  server: FakeServer;
  events: EventLog;
  trust: MemoryTrustStore;
  keys: KeyPair;
  downloads: string;
}

/** Options for {@linkcode harness}. */
export interface HarnessOptions {
  user?: FixtureKeyName;
  userId?: string;
  name?: string;
  trust?: MemoryTrustStore;
  serverKey?: FixtureKeyName;
  downloads?: string;
  session?: Partial<ClientSessionOptions>;
}

/** Builds a session and fake server; call `start` yourself or use {@linkcode connected}. */
export async function harness(options: HarnessOptions = {}): Promise<Harness> {
  const [client, far] = memoryTransportPair();
  const keys = await fixtureKeyPair(options.user ?? "user0");
  const server = new FakeServer(far, await fixtureKeyPair(options.serverKey ?? "server0"));
  const events = new EventLog();
  const trust = options.trust ?? new MemoryTrustStore();
  const downloads = options.downloads ?? await Deno.makeTempDir({ prefix: "socp_client_test_" });
  const ownsDownloads = options.downloads === undefined;
  const session = new ClientSession({
    transport: client,
    identity: { userId: options.userId ?? IDS.alice, displayName: options.name ?? "alice", keys },
    serverUrl: "ws://test.invalid:1",
    trust,
    downloadsDir: downloads,
    onEvent: events.sink,
    requestTimeoutMs: 500,
    ...options.session,
  });
  return {
    session,
    server,
    events,
    trust,
    keys,
    downloads,
    async [Symbol.asyncDispose](): Promise<void> {
      client.close();
      far.close();
      await session.quit();
      if (ownsDownloads) await Deno.remove(downloads, { recursive: true });
    },
  };
}

/** A harness whose session has said hello and been ACKed. */
export async function connected(options: HarnessOptions = {}): Promise<Harness> {
  const h = await harness(options);
  const started = h.session.start();
  await h.server.nextOf("USER_HELLO");
  await h.server.ack();
  await withTimeout(started, 5000, "the session to start");
  return h;
}

/** Advertises a user to the client with its fixture key. */
export async function advertise(
  h: Harness,
  userId: string,
  name: string,
  key: FixtureKeyName,
): Promise<KeyPair> {
  const pair = await fixtureKeyPair(key);
  await h.server.send("USER_ADVERTISE", {
    user_id: userId,
    server_id: h.server.id,
    meta: { display_name: name, pubkey: encodePublicKey(pair.publicKey) },
  }, { to: "*" });
  await h.events.wait("presence", (e) => e.user_id === userId && e.online);
  return pair;
}

/** Awaits a rejection of class `cls` (whose message includes `includes`) and returns it. */
export async function rejectsWith<E extends Error>(
  fn: () => Promise<unknown>,
  cls: new (...args: never[]) => E,
  includes?: string,
): Promise<E> {
  try {
    await fn();
  } catch (e) {
    if (!(e instanceof cls)) throw new Error(`Expected ${cls.name}, got ${String(e)}`);
    if (includes !== undefined && !e.message.includes(includes)) {
      throw new Error(`Expected "${includes}" in the message "${e.message}"`);
    }
    return e;
  }
  throw new Error(`Expected a ${cls.name} rejection`);
}
