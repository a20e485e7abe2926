/**
 * Tests of the reconnect loop of connection.ts, with fake servers of one group on in-memory
 * transports: failover to the next server, backoff, frames sent again byte-identical and shown
 * once, a changed server key refused, an account logged in again without a password, sends
 * queued while disconnected, the server group from the ACK.
 *
 * @module
 */

import assert from "node:assert/strict";
import { join } from "node:path";
import {
  encodePublicKey,
  type Envelope,
  parseEnvelope,
  sha256Hex,
  type Transport,
} from "../shared/mod.ts";
import { withTimeout } from "../tests/support/timeout.ts";
import { FakeAccountServer } from "./_fake_account_server.ts";
import { connected, EventLog, fixtureKeyPair, IDS, rejectsWith } from "./_test_util.ts";
import { ClientApp } from "./client_app.ts";
import { systemClock } from "./clock.ts";
import { ConfigTrustStore, loadOrCreateConfig } from "./config.ts";
import type { ReconnectOptions } from "./connection.ts";
import { CommandError } from "./errors.ts";
import { silentLogger } from "./logger.ts";
import { ClientSession } from "./session.ts";
import { MemoryTrustStore } from "./trust_store.ts";

const URL_A = "ws://a.invalid:1";
const URL_B = "ws://b.invalid:2";
const SERVER_B = "88888888-8888-4888-8888-888888888888";

interface Group extends AsyncDisposable {
  a: FakeAccountServer;
  b: FakeAccountServer;
  dial: (url: string) => Promise<Transport>;
}

/** Server A (key server0) and B (key server1), sharing accounts and known keys. */
async function group(): Promise<Group> {
  const a = await FakeAccountServer.create();
  const b = await FakeAccountServer.create({ key: "server1", id: SERVER_B, groupWith: a });
  return {
    a,
    b,
    dial: (url) => (url === URL_A ? a.connect() : b.connect()),
    async [Symbol.asyncDispose](): Promise<void> {
      await a.close();
      await b.close();
    },
  };
}

interface Alice extends AsyncDisposable {
  session: ClientSession;
  events: EventLog;
  trust: MemoryTrustStore;
  downloads: string;
}

/** alice (user0) connected to A, with reconnect options. */
async function alice(
  g: Group,
  options: { reconnect?: Partial<ReconnectOptions>; trust?: MemoryTrustStore; outbox?: number } =
    {},
): Promise<Alice> {
  const events = new EventLog();
  const trust = options.trust ?? new MemoryTrustStore();
  const downloads = await Deno.makeTempDir({ prefix: "socp_reconnect_test_" });
  const session = new ClientSession({
    transport: await g.a.connect(),
    identity: { userId: IDS.alice, displayName: "alice", keys: await fixtureKeyPair("user0") },
    serverUrl: URL_A,
    trust,
    downloadsDir: downloads,
    onEvent: events.sink,
    requestTimeoutMs: 1000,
    reconnect: { dial: g.dial, servers: [URL_B], backoff: () => 1, ...options.reconnect },
    ...(options.outbox !== undefined ? { outboxLimit: options.outbox } : {}),
  });
  await withTimeout(session.start(), 5000, "alice to connect");
  return {
    session,
    events,
    trust,
    downloads,
    async [Symbol.asyncDispose](): Promise<void> {
      await session.quit();
      await Deno.remove(downloads, { recursive: true });
    },
  };
}

/** Makes bob known (key) and online on the group, and in alice's directory. */
async function bobOnline(g: Group, client: Alice): Promise<void> {
  const bob = await fixtureKeyPair("user1");
  g.a.known.set(IDS.bob, encodePublicKey(bob.publicKey));
  client.trust.pinUserKey(IDS.bob, encodePublicKey(bob.publicKey)); // they talked before
  g.a.online.add(IDS.bob);
  g.b.online.add(IDS.bob);
  await client.session.list();
}

function typesOf(texts: string[]): string[] {
  return texts.map((t) => parseEnvelope(t).type);
}

Deno.test("Connection reconnects to the next server when its server drops, and says so", async () => {
  await using g = await group();
  await using me = await alice(g);
  await g.a.kill();
  const back = await me.events.wait("reconnected");
  assert.deepEqual(back, { event: "reconnected", server: URL_B });
  const lost = await me.events.wait("disconnected");
  assert.deepEqual([lost.server, lost.code], [URL_A, 1006]);
  assert.ok(me.session.ready);
  assert.equal(me.session.connection.serverUrl, URL_B);
  assert.equal(me.trust.serverPin(URL_B)?.pubkey, g.b.pub, "B pinned on first use");
  assert.equal(me.trust.serverPin(URL_A)?.pubkey, g.a.pub, "A's pin kept");
  assert.deepEqual(g.b.received.at(-1)?.slice(0, 1), ["USER_HELLO"]);
  assert.equal(me.events.of("ready").length, 1, "one ready event: a reconnect is not a new start");
  assert.deepEqual(await me.session.list(), [
    { user_id: IDS.alice, display_name: "alice", self: true },
  ]);
});

Deno.test("Connection waits with the backoff function between rounds of attempts", async () => {
  await using g = await group();
  const calls: number[] = [];
  await using me = await alice(g, {
    reconnect: {
      backoff: (attempt) => {
        calls.push(attempt);
        if (calls.length === 3) g.b.down = false;
        return 1;
      },
    },
  });
  g.b.down = true;
  await g.a.kill();
  await me.events.wait("reconnected");
  assert.deepEqual(calls, [0, 1, 2], "round 1 at once, then backoff(0), backoff(1), backoff(2)");
});

Deno.test("Connection retries a server that still thinks the user is connected elsewhere", async () => {
  await using g = await group();
  await using me = await alice(g);
  g.b.nameInUse = 2;
  await g.a.kill();
  await me.events.wait("reconnected");
  assert.equal(g.b.nameInUse, 0);
  assert.equal(me.events.of("error").length, 0, "a NAME_IN_USE while reconnecting is not shown");
});

Deno.test("frames the old server did not confirm are sent again byte-identical, and shown once", async () => {
  await using g = await group();
  await using me = await alice(g);
  await bobOnline(g, me);
  await me.session.sendDirect(IDS.bob, "did you get this?");
  assert.equal(me.session.connection.unconfirmed, 1, "no answer yet proves A processed it");
  assert.deepEqual(typesOf(g.a.content), ["MSG_DIRECT"]);
  await g.a.kill();
  await me.events.wait("reconnected");
  await me.session.list(); // an answer from B confirms what went out before it
  assert.deepEqual(g.b.content, g.a.content, "the same frame, byte for byte");
  assert.equal(me.session.connection.unconfirmed, 0);

  // bob's client gets both copies (A had delivered it, B delivers it again): one message.
  await using bob = await connected({ user: "user1", userId: IDS.bob, name: "bob" });
  for (const text of [...g.a.content, ...g.b.content]) {
    const env = parseEnvelope(text);
    await bob.server.send("USER_DELIVER", { ...env.payload, sender: env.from }, { ts: env.ts });
  }
  await bob.server.send("ERROR", { code: "MARK" });
  await bob.events.wait("error");
  const dms = bob.events.of("dm");
  assert.deepEqual(dms.map((d) => [d.text, d.verified]), [["did you get this?", true]]);
});

Deno.test("a public message and a file that arrive twice are shown and saved once", async () => {
  await using bob = await connected({ user: "user1", userId: IDS.bob, name: "bob" });
  await using a = await connected();
  const src = await Deno.makeTempDir();
  try {
    await bob.server.send("USER_ADVERTISE", {
      user_id: IDS.alice,
      meta: { display_name: "alice", pubkey: encodePublicKey(a.keys.publicKey) },
    }, { to: "*" });
    await a.server.send("USER_ADVERTISE", {
      user_id: IDS.bob,
      meta: { display_name: "bob", pubkey: encodePublicKey(bob.keys.publicKey) },
    }, { to: "*" });
    await a.events.wait("presence");
    const path = join(src, "twice.bin");
    const data = crypto.getRandomValues(new Uint8Array(1000));
    await Deno.writeFile(path, data);
    const sendingAll = a.session.sendPublic("hello twice");
    const pub = await a.server.nextOf("MSG_PUBLIC_CHANNEL");
    await sendingAll;
    const sendingFile = a.session.sendFile("bob", path);
    const file: Envelope[] = [];
    for (;;) {
      const env = await a.server.next();
      if (env.type === "PUBKEY_REQUEST") {
        await a.server.send("PUBKEY_RESPONSE", {
          user_id: IDS.alice,
          pubkey: encodePublicKey(a.keys.publicKey),
        });
        break;
      }
      if (env.type.startsWith("FILE_")) file.push(env);
    }
    await sendingFile;
    for (let copy = 0; copy < 2; copy++) {
      for (const env of [pub, ...file]) {
        await bob.server.send(env.type, { ...env.payload, sender: env.from }, { ts: env.ts });
      }
    }
    await bob.server.send("ERROR", { code: "MARK" });
    await bob.events.wait("error");
    assert.deepEqual(bob.events.of("all").map((e) => e.text), ["hello twice"]);
    const files = bob.events.of("file");
    assert.deepEqual(files.map((f) => [f.ok, f.name]), [[true, "twice.bin"]]);
    assert.deepEqual([...Deno.readDirSync(bob.downloads)].map((e) => e.name), ["twice.bin"]);
    assert.equal(
      await sha256Hex(await Deno.readFile(join(bob.downloads, "twice.bin"))),
      await sha256Hex(data),
    );
  } finally {
    await Deno.remove(src, { recursive: true });
  }
});

Deno.test("Connection refuses a next server whose key differs from its pin, loudly, and never re-pins", async () => {
  await using g = await group();
  const other = await fixtureKeyPair("server2");
  const trust = new MemoryTrustStore({
    servers: { [URL_B]: { server_id: SERVER_B, pubkey: encodePublicKey(other.publicKey) } },
  });
  await using me = await alice(g, { trust, reconnect: { maxRounds: 3 } });
  await g.a.kill();
  const refused = await me.events.wait("error", (e) => e.code === "SERVER_KEY_CHANGED");
  assert.match(refused.detail, /SERVER KEY CHANGED for ws:\/\/b\.invalid:2!/);
  const end = await withTimeout(me.session.closed, 5000, "the session to give up");
  assert.equal(end.byUs, false);
  assert.equal(trust.serverPin(URL_B)?.pubkey, encodePublicKey(other.publicKey), "pin kept");
  assert.equal(g.b.received.length, 1, "B is not tried again after refusing it");
  assert.ok(!me.session.open);
});

Deno.test("sends while disconnected are queued, in order, and go out after the reconnect", async () => {
  await using g = await group();
  await using me = await alice(g, { reconnect: { backoff: () => 5 } });
  await bobOnline(g, me);
  g.b.down = true;
  await g.a.kill();
  await me.events.wait("disconnected");
  assert.equal(me.session.connection.state, "reconnecting");
  await me.session.sendDirect(IDS.bob, "first");
  await me.session.sendDirect(IDS.bob, "second");
  const sent = me.events.of("sent");
  assert.deepEqual(sent.map((e) => e.pending), [true, true]);
  await rejectsWith(() => me.session.list(), CommandError, "reconnecting");
  g.b.down = false;
  await me.events.wait("reconnected");
  await me.session.list();
  const frames = g.b.content.map((t) => parseEnvelope(t));
  assert.deepEqual(frames.map((f) => f.type), ["MSG_DIRECT", "MSG_DIRECT"]);
  assert.ok(frames[0]!.ts < frames[1]!.ts, "in the order they were sent");
  assert.equal(me.session.connection.unconfirmed, 0);
});

Deno.test("the queue while disconnected is bounded, with a clear error beyond it", async () => {
  await using g = await group();
  await using me = await alice(g, { outbox: 2 });
  await bobOnline(g, me);
  g.b.down = true;
  await g.a.kill();
  await me.events.wait("disconnected");
  await me.session.sendDirect(IDS.bob, "one");
  await me.session.sendDirect(IDS.bob, "two");
  await rejectsWith(
    () => me.session.sendDirect(IDS.bob, "three"),
    CommandError,
    "2 frames are already waiting for the connection to come back",
  );
});

Deno.test("quit() while reconnecting ends at once and says what was not sent", async () => {
  await using g = await group();
  await using me = await alice(g, { reconnect: { backoff: () => 60_000 } });
  await bobOnline(g, me);
  g.b.down = true;
  await g.a.kill();
  await me.events.wait("disconnected");
  await me.session.sendDirect(IDS.bob, "never sent");
  await withTimeout(me.session.quit(), 1000, "quit while reconnecting");
  const end = await me.session.closed;
  assert.equal(end.byUs, true);
  assert.ok(me.events.of("warn").some((w) => /1 queued frames were not sent/.test(w.text)));
});

Deno.test("the server group in the ACK is pinned per URL and becomes a reconnect candidate", async () => {
  await using g = await group();
  g.a.group = [{ url: URL_B + "/", pubkey: g.b.pub }, { url: "http://no", pubkey: "x" }];
  const members: unknown[] = [];
  const events = new EventLog();
  const trust = new MemoryTrustStore();
  const session = new ClientSession({
    transport: await g.a.connect(),
    identity: { userId: IDS.alice, displayName: "alice", keys: await fixtureKeyPair("user0") },
    serverUrl: URL_A,
    trust,
    downloadsDir: "/nonexistent",
    onEvent: events.sink,
    reconnect: { dial: g.dial, backoff: () => 1 },
    onServerGroup: (m) => members.push(...m),
  });
  try {
    await session.start();
    assert.deepEqual(members, [{ server_id: "", url: URL_B, pubkey: g.b.pub }]);
    assert.deepEqual(trust.serverPin(URL_B), { server_id: "", pubkey: g.b.pub });
    await g.a.kill();
    assert.deepEqual(await events.wait("reconnected"), { event: "reconnected", server: URL_B });
    assert.deepEqual(trust.serverPin(URL_B), { server_id: SERVER_B, pubkey: g.b.pub }, "id learnt");
    assert.equal(events.of("info").length, 1, "B's key came pinned: no new pin announced");
  } finally {
    await session.quit();
  }
});

Deno.test("ClientApp logs an account in again after a drop without asking for the password", async () => {
  await using g = await group();
  await g.a.addAccount("bob", IDS.bob, await fixtureKeyPair("user1"), "s3cret");
  g.a.group = [{ server_id: SERVER_B, url: URL_B, pubkey: g.b.pub }];
  const dir = await Deno.makeTempDir({ prefix: "socp_reconnect_app_" });
  const loaded = await loadOrCreateConfig(join(dir, "me.json"), { noKey: true, account: "bob" });
  const trust = new ConfigTrustStore(loaded);
  const events = new EventLog();
  const asked: string[] = [];
  const app = new ClientApp({
    loaded,
    trust,
    serverUrl: URL_A,
    connect: g.dial,
    emit: events.sink,
    ask: (prompt) => {
      asked.push(prompt);
      return Promise.resolve("s3cret");
    },
    log: silentLogger,
    clock: systemClock,
    sigVariant: "A",
    downloadsDir: (id) => join(dir, "downloads", id),
    backoff: () => 1,
  });
  try {
    await app.startLogin("bob");
    assert.deepEqual(asked, ["Password for bob: "]);
    await g.a.kill();
    await events.wait("reconnected");
    assert.deepEqual(asked, ["Password for bob: "], "no second question");
    assert.deepEqual(g.b.received.at(-1)?.slice(0, 3), [
      "LOGIN_START",
      "LOGIN_PROOF",
      "USER_HELLO",
    ]);
    assert.equal(app.session?.userId, IDS.bob);
    await app.quit();
    const onDisk = JSON.parse(await Deno.readTextFile(loaded.path));
    assert.deepEqual(onDisk.failover_servers, [URL_A, URL_B], "the group is remembered");
    assert.equal(onDisk.servers[URL_B].pubkey, g.b.pub);
  } finally {
    await app.quit();
    await Deno.remove(dir, { recursive: true });
  }
});
