/**
 * Test helper: a scripted server that speaks the account frames (docs/protocol.md,
 * "Accounts"), so client tests can run `/register`, logins, `/passwd`, `/delete-account`,
 * `/accounts` and offline DMs without a real server. Every connection comes from
 * {@linkcode FakeAccountServer.connect}; every frame it sends is signed with a fixture server key.
 *
 * @module
 */

import {
  decodeBase64Url,
  encodeBase64Url,
  encodePublicKey,
  type Envelope,
  type JsonObject,
  type KeyPair,
  memoryTransportPair,
  parseEnvelope,
  sealPrivateKey,
  type Transport,
} from "../shared/mod.ts";
import type { FixtureKeyName } from "../tests/fixtures/keys.ts";
import { FAST_KDF } from "../tests/support/accounts.ts";
import { FakeServer, fixtureKeyPair, IDS } from "./_test_util.ts";

/** Options for {@linkcode FakeAccountServer.create}. */
export interface FakeAccountServerOptions {
  /** Fixture key the server signs with (default `server0`). */
  key?: FixtureKeyName;
  /** Server id (default `IDS.server`). */
  id?: string;
  /** Another fake server of the same group: accounts and known keys are shared with it. */
  groupWith?: FakeAccountServer;
}

/** One account of the fake server. */
export interface FakeAccount {
  username: string;
  userId: string;
  pubkey: string;
  store: JsonObject;
  verifier: string;
}

async function sha256(authKey: string): Promise<string> {
  const bytes = new Uint8Array(decodeBase64Url(authKey));
  return encodeBase64Url(new Uint8Array(await crypto.subtle.digest("SHA-256", bytes)));
}

/** The fake server; see the module doc. */
export class FakeAccountServer {
  readonly keys: KeyPair;
  readonly id: string;
  /** Accounts by lower-case name. */
  readonly accounts: Map<string, FakeAccount>;
  /** Ids of users who are online (said hello and did not leave). */
  readonly online: Set<string> = new Set();
  /** Known (offline) users' keys by id, answered to PUBKEY_REQUEST. */
  readonly known: Map<string, string>;
  /** Every MSG_DIRECT, MSG_PUBLIC_CHANNEL and FILE_* frame received, as sent (raw text). */
  readonly content: string[] = [];
  /** While true, {@linkcode FakeAccountServer.connect} fails as if the server were down. */
  down = false;
  /** Answer this many USER_HELLOs with NAME_IN_USE (the user is still known elsewhere). */
  nameInUse = 0;
  /** `payload.group` of the USER_HELLO_OK ACK, if any. */
  group: JsonObject[] | undefined;
  /** Resolves the next time a connection is opened (set by the tests). */
  onConnect: (() => void) | undefined;
  /** Every frame type received, in order, per connection. */
  readonly received: string[][] = [];
  /** Frames delivered to offline users (MSG_DIRECT, FILE_*), as received. */
  readonly queued: Envelope[] = [];
  /** Failed logins before the block. */
  loginAttempts = 3;
  /** Handles each frame of these types only after this many ms (a slow server). */
  readonly delays: Map<string, number> = new Map();
  /** Frame types it reads but never answers. */
  readonly ignore: Set<string> = new Set();
  /** Display names answered in PUBKEY_RESPONSE, by user id (USER_HELLO and USER_UPDATE set them). */
  readonly names: Map<string, string> = new Map();
  /** Answer USER_UPDATE with UNKNOWN_TYPE, as a server without it would. */
  noRename = false;
  #failures = new Map<string, number>();
  #blocked = new Set<string>();
  #tasks: Promise<void>[] = [];
  #connections: FakeServer[] = [];

  private constructor(keys: KeyPair, id: string, groupWith: FakeAccountServer | undefined) {
    this.keys = keys;
    this.id = id;
    this.accounts = groupWith?.accounts ?? new Map();
    this.known = groupWith?.known ?? new Map();
  }

  /** Creates a server signing with fixture key `server0` (or as the options say). */
  static async create(options: FakeAccountServerOptions = {}): Promise<FakeAccountServer> {
    return new FakeAccountServer(
      await fixtureKeyPair(options.key ?? "server0"),
      options.id ?? IDS.server,
      options.groupWith,
    );
  }

  /** base64url SPKI of the server key. */
  get pub(): string {
    return encodePublicKey(this.keys.publicKey);
  }

  /** Adds an account for a fixture key pair with a password (cheap KDF). */
  async addAccount(
    username: string,
    userId: string,
    keys: KeyPair,
    password: string,
  ): Promise<FakeAccount> {
    const sealed = await sealPrivateKey(keys.privateKey, password, { kdf: FAST_KDF });
    const account: FakeAccount = {
      username,
      userId,
      pubkey: encodePublicKey(keys.publicKey),
      store: { ...sealed.store },
      verifier: sealed.verifier,
    };
    this.accounts.set(username.toLowerCase(), account);
    this.known.set(userId, account.pubkey);
    return account;
  }

  /** Opens a new connection (pass as `connect`); rejects while `down`. */
  connect = (): Promise<Transport> => {
    if (this.down) return Promise.reject(new Error("Connection refused (the fake server is down)"));
    const [client, far] = memoryTransportPair();
    const connection = new FakeServer(far, this.keys, this.id);
    this.#connections.push(connection);
    const log: string[] = [];
    this.received.push(log);
    this.#tasks.push(this.#serve(connection, log));
    this.onConnect?.();
    return Promise.resolve(client);
  };

  /** The server dies: every connection breaks (close code 1006) and new ones are refused. */
  async kill(): Promise<void> {
    this.down = true;
    for (const c of this.#connections) c.transport.close(1006, "");
    await Promise.allSettled(this.#tasks);
  }

  /** Sends a frame on every open connection (e.g. an unsolicited ERROR). */
  async broadcast(type: string, payload: JsonObject): Promise<void> {
    for (const c of this.#connections) {
      if (c.transport.open) await c.send(type, payload, { to: "*" });
    }
  }

  /** Closes every connection and waits for the handlers. */
  async close(): Promise<void> {
    for (const c of this.#connections) c.transport.close();
    await Promise.allSettled(this.#tasks);
  }

  async #serve(connection: FakeServer, log: string[]): Promise<void> {
    const t = connection.transport;
    const send = (type: string, to: string, payload: JsonObject) =>
      connection.send(type, payload, { to });
    let me: string | undefined;
    let account: FakeAccount | undefined;
    try {
      for await (const text of t) {
        const env = parseEnvelope(text);
        log.push(env.type);
        const delay = this.delays.get(env.type);
        if (delay !== undefined) await new Promise((done) => setTimeout(done, delay));
        if (this.ignore.has(env.type)) continue;
        const p = env.payload;
        const error = (code: string, detail: string) => send("ERROR", me ?? "?", { code, detail });
        switch (env.type) {
          case "LOGIN_START": {
            const a = this.accounts.get(String(p["username"]).toLowerCase());
            const kdf = a
              ? {
                kdf: a.store["kdf"]!,
                N: a.store["N"]!,
                r: a.store["r"]!,
                p: a.store["p"]!,
                salt: a.store["salt"]!,
              }
              : { ...FAST_KDF, salt: "AAAAAAAAAAAAAAAAAAAAAA" };
            await send("LOGIN_PARAMS", "?", { username: String(p["username"]), kdf });
            break;
          }
          case "LOGIN_PROOF": {
            const name = String(p["username"]).toLowerCase();
            if (this.#blocked.has(name)) {
              await error("LOGIN_BLOCKED", "Too many failed attempts; blocked for 9 more seconds");
              break;
            }
            const a = this.accounts.get(name);
            if (!a || (await sha256(String(p["auth_key"]))) !== a.verifier) {
              const n = (this.#failures.get(name) ?? 0) + 1;
              this.#failures.set(name, n);
              if (n >= this.loginAttempts) {
                this.#blocked.add(name);
                await error(
                  "BAD_PASSWORD",
                  "Wrong username or password; too many failed attempts, blocked for 9 seconds",
                );
              } else {
                await error("BAD_PASSWORD", `Wrong username or password (${3 - n} left)`);
              }
              break;
            }
            this.#failures.delete(name);
            await send("LOGIN_OK", a.userId, {
              username: a.username,
              user_id: a.userId,
              pubkey: a.pubkey,
              privkey_store: a.store,
            });
            break;
          }
          case "ACCOUNTS_REQUEST": {
            const pattern = String(p["pattern"]);
            if (pattern.includes("[") && !pattern.includes("]")) {
              await error("BAD_REQUEST", `Malformed pattern "${pattern}": "[" is never closed`);
              break;
            }
            const re = new RegExp(
              "^" + pattern.replace(/[.]/g, "\\.").replace(/\*/g, ".*").replace(/\?/g, ".") + "$",
              "i",
            );
            const list = [...this.accounts.values()].filter((a) => re.test(a.username)).map((
              a,
            ) => ({ username: a.username, user_id: a.userId, online: this.online.has(a.userId) }));
            await send("ACCOUNTS_RESPONSE", me ?? "?", { pattern, accounts: list });
            break;
          }
          case "USER_HELLO": {
            if (this.nameInUse > 0) {
              this.nameInUse--;
              await error("NAME_IN_USE", `User ${env.from} is already connected on another server`);
              t.close(1008, "NAME_IN_USE");
              break;
            }
            me = env.from;
            this.online.add(me);
            this.known.set(me, String(p["pubkey"]));
            const hello = p["meta"] as JsonObject | undefined;
            if (typeof hello?.["display_name"] === "string") {
              this.names.set(me, hello["display_name"]);
            }
            account = [...this.accounts.values()].find((a) => a.userId === me);
            await send("ACK", me, {
              msg_ref: "USER_HELLO_OK",
              server_id: this.id,
              server_pub: this.pub,
              ...(this.group ? { group: this.group } : {}),
            });
            break;
          }
          case "REGISTER": {
            const name = String(p["username"]);
            if (this.accounts.has(name.toLowerCase())) {
              await error("NAME_IN_USE", `The name "${name}" is already taken`);
              break;
            }
            account = {
              username: name,
              userId: me!,
              pubkey: this.known.get(me!)!,
              store: p["privkey_store"] as JsonObject,
              verifier: String(p["verifier"]),
            };
            this.accounts.set(name.toLowerCase(), account);
            await send("ACK", me!, { msg_ref: "REGISTER_OK", username: name });
            break;
          }
          case "PASSWD": {
            if (!account || (await sha256(String(p["auth_key"]))) !== account.verifier) {
              await error("BAD_PASSWORD", "Wrong username or password");
              break;
            }
            account.store = p["privkey_store"] as JsonObject;
            account.verifier = String(p["verifier"]);
            await send("ACK", me!, { msg_ref: "PASSWD_OK" });
            break;
          }
          case "DELETE_ACCOUNT": {
            if (!account || (await sha256(String(p["auth_key"]))) !== account.verifier) {
              await error("BAD_PASSWORD", "Wrong username or password");
              break;
            }
            this.accounts.delete(account.username.toLowerCase());
            await send("ACK", me!, {
              msg_ref: "DELETE_OK",
              username: account.username,
            });
            t.close(1000, "Account deleted");
            break;
          }
          case "LIST_REQUEST": {
            const ids = [...this.online];
            await send("LIST_RESPONSE", me!, {
              online_users: ids,
              users: ids,
              display_names: {},
            });
            break;
          }
          case "PUBKEY_REQUEST": {
            const id = String(p["user_id"]);
            const pubkey = this.known.get(id);
            const name = this.names.get(id);
            if (pubkey === undefined) await error("USER_NOT_FOUND", `No key known for "${id}"`);
            else {
              await send("PUBKEY_RESPONSE", me!, {
                user_id: id,
                pubkey,
                ...(name !== undefined ? { display_name: name } : {}),
              });
            }
            break;
          }
          case "MSG_PUBLIC_CHANNEL":
            this.content.push(text);
            break;
          case "MSG_DIRECT":
          case "FILE_START":
          case "FILE_CHUNK":
          case "FILE_END": {
            this.content.push(text);
            if (this.online.has(env.to)) break; // delivery to online users is not needed here
            this.queued.push(env);
            if (env.type !== "FILE_CHUNK") {
              await send("ACK", me!, {
                msg_ref: "QUEUED",
                user_id: env.to,
                detail: `User ${env.to} is offline; the message is queued`,
              });
            }
            break;
          }
          case "GROUP_LIST_REQUEST":
            // No groups here (`/file <name>` asks first whether the name is a group).
            await send("GROUP_LIST", me!, { groups: [] });
            break;
          case "USER_UPDATE": {
            if (this.noRename) {
              await error("UNKNOWN_TYPE", 'Unknown message type "USER_UPDATE"');
              break;
            }
            const name = String(p["display_name"]);
            this.names.set(me!, name);
            await send("ACK", me!, { msg_ref: "USER_UPDATE_OK", display_name: name });
            break;
          }
          case "CTRL_CLOSE":
            t.close(1000, "Bye");
            break;
        }
      }
    } finally {
      if (me !== undefined) this.online.delete(me);
    }
  }
}
