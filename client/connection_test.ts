/**
 * Tests of connection.ts through a session and a scripted server: the hello, server-key pinning,
 * signature checks on incoming frames, closing.
 *
 * @module
 */

import assert from "node:assert/strict";
import {
  encodePublicKey,
  type Envelope,
  type JsonObject,
  serializeEnvelope,
  signPayload,
  verifyEnvelope,
} from "../shared/mod.ts";
import { withTimeout } from "../tests/support/timeout.ts";
import { connected, fixtureKeyPair, harness, IDS, rejectsWith } from "./_test_util.ts";
import { CommandError, HelloError } from "./errors.ts";
import { MemoryTrustStore } from "./trust_store.ts";

const URL_ = "ws://test.invalid:1";

Deno.test("Connection.start() sends a self-signed USER_HELLO and pins the ACK's server key", async () => {
  await using h = await harness();
  const started = h.session.start();
  const hello = await h.server.nextOf("USER_HELLO");
  assert.deepEqual(hello.from, IDS.alice);
  assert.deepEqual(hello.to, "*", '"*" until the server id is known (every peer accepts it)');
  const myPub = encodePublicKey(h.keys.publicKey);
  assert.deepEqual(hello.payload, {
    client: "socp/0.1",
    pubkey: myPub,
    enc_pubkey: myPub,
    meta: { display_name: "alice" },
    caps: ["file-aes-gcm", "presence-batch"],
    user_id: IDS.alice,
    hello_ts: hello.payload["hello_ts"],
  });
  assert.ok(Math.abs(Number(hello.payload["hello_ts"]) - Date.now()) < 60_000, "fresh hello_ts");
  assert.ok(await verifyEnvelope(h.keys.publicKey, hello), "USER_HELLO is self-signed");
  await h.server.ack();
  await withTimeout(started, 5000, "start");
  assert.ok(h.session.pinned);
  assert.deepEqual(h.trust.serverPin(URL_), { server_id: IDS.server, pubkey: h.server.pub });
  const ready = await h.events.wait("ready");
  assert.deepEqual(ready, {
    event: "ready",
    user_id: IDS.alice,
    display_name: "alice",
    server: URL_,
    pinned: true,
  });
});

Deno.test("Connection addresses USER_HELLO to the pinned server id on later runs", async () => {
  const server = await fixtureKeyPair("server0");
  const trust = new MemoryTrustStore({
    servers: { [URL_]: { server_id: IDS.server, pubkey: encodePublicKey(server.publicKey) } },
  });
  await using h = await harness({ trust });
  const started = h.session.start();
  const hello = await h.server.nextOf("USER_HELLO");
  assert.deepEqual(hello.to, IDS.server);
  await h.server.ack();
  await started;
  assert.deepEqual(h.events.of("info").length, 0, "no new pin announced");
});

Deno.test("Connection refuses a server whose key differs from the pin", async () => {
  const other = await fixtureKeyPair("server1");
  const trust = new MemoryTrustStore({
    servers: { [URL_]: { server_id: IDS.server, pubkey: encodePublicKey(other.publicKey) } },
  });
  await using h = await harness({ trust });
  const started = h.session.start();
  await h.server.nextOf("USER_HELLO");
  await h.server.ack();
  const error = await rejectsWith(() => started, HelloError);
  assert.deepEqual(error.code, "SERVER_KEY_CHANGED");
  assert.deepEqual(error.exitCode, 1);
  assert.match(error.message, /SERVER KEY CHANGED.*--forget-server-key ws:\/\/test.invalid:1/);
  assert.deepEqual(
    trust.serverPin(URL_)?.pubkey,
    encodePublicKey(other.publicKey),
    "pin untouched",
  );
});

Deno.test("Connection reports NAME_IN_USE during hello as a refusal", async () => {
  await using h = await harness();
  const started = h.session.start();
  await h.server.nextOf("USER_HELLO");
  await h.server.send("ERROR", { code: "NAME_IN_USE", detail: "already connected" });
  const error = await rejectsWith(() => started, HelloError);
  assert.deepEqual(error.code, "NAME_IN_USE");
  assert.deepEqual(error.exitCode, 1);
});

Deno.test("Connection fails with exit code 2 when the server hangs up during hello", async () => {
  await using h = await harness();
  const started = h.session.start();
  await h.server.nextOf("USER_HELLO");
  h.server.transport.close(1011, "bye");
  const error = await rejectsWith(() => started, HelloError);
  assert.deepEqual(error.code, "CONNECTION_CLOSED");
  assert.deepEqual(error.exitCode, 2);
});

Deno.test("Connection goes on unpinned when the server sends frames but no ACK", async () => {
  await using h = await harness({ session: { helloTimeoutMs: 50 } });
  const started = h.session.start();
  await h.server.nextOf("USER_HELLO");
  const bob = await fixtureKeyPair("user1");
  await h.server.send("USER_ADVERTISE", {
    user_id: IDS.bob,
    meta: { display_name: "bob", pubkey: encodePublicKey(bob.publicKey) },
  }, { sign: "none", to: "*" });
  await withTimeout(started, 5000, "start without ACK");
  assert.ok(!h.session.pinned);
  assert.deepEqual((await h.events.wait("ready")).pinned, false);
  await h.events.wait("presence", (e) => e.user_id === IDS.bob);
  assert.deepEqual(h.trust.serverPin(URL_), undefined);
});

Deno.test("Connection drops frames with a missing or foreign signature once pinned", async () => {
  await using h = await harness();
  const started = h.session.start();
  await h.server.nextOf("USER_HELLO");
  await h.server.ack();
  await started;
  const advert = (id: string, name: string) => ({ user_id: id, meta: { display_name: name } });
  await h.server.send("USER_ADVERTISE", advert(IDS.bob, "bob"), { sign: "none" });
  await h.server.send("USER_ADVERTISE", advert(IDS.carol, "carol"), { sign: "bad" });
  await h.server.send("USER_ADVERTISE", advert(IDS.server, "ok"), { sign: "good" });
  await h.events.wait("presence", (e) => e.display_name === "ok");
  assert.deepEqual(h.events.of("presence").length, 1);
  const warnings = h.events.of("warn").map((w) => w.text);
  assert.ok(warnings.some((w) => /no transport signature/.test(w)), warnings.join("\n"));
  assert.ok(warnings.some((w) => /signature is not the server's/.test(w)), warnings.join("\n"));
});

Deno.test("Connection takes PRESENCE_BATCH frames one by one, checking each inner signature", async () => {
  await using h = await harness();
  const started = h.session.start();
  await h.server.nextOf("USER_HELLO");
  await h.server.ack();
  await started;
  const other = await fixtureKeyPair("server4");
  const inner = async (id: string, name: string, key: typeof other.privateKey | undefined) => {
    const payload = { user_id: id, meta: { display_name: name } };
    const env: Envelope = { type: "USER_ADVERTISE", from: IDS.server, to: "*", ts: 1, payload };
    if (key) env.sig = await signPayload(key, payload);
    return asJson(env);
  };
  const asJson = (env: Envelope) => JSON.parse(serializeEnvelope(env)) as JsonObject;
  const remove: Envelope = {
    type: "USER_REMOVE",
    from: IDS.server,
    to: "*",
    ts: 2,
    payload: { user_id: IDS.bob },
  };
  remove.sig = await signPayload(h.server.keys.privateKey, remove.payload);
  // Unsigned batch: bob (good), carol (foreign key), dave (no signature), then bob leaves.
  await h.server.send("PRESENCE_BATCH", {
    frames: [
      await inner(IDS.bob, "bob", h.server.keys.privateKey),
      await inner(IDS.carol, "carol", other.privateKey),
      await inner("44444444-4444-4444-8444-444444444444", "dave", undefined),
      asJson(remove),
    ],
  }, { sign: "none" });
  // A batch may not carry other frame types: the whole batch is dropped.
  await h.server.send("PRESENCE_BATCH", {
    frames: [{ type: "USER_DELIVER", from: IDS.server, to: IDS.alice, ts: 3, payload: {} }],
  }, { sign: "none" });
  await h.server.send("USER_ADVERTISE", { user_id: IDS.server, meta: { display_name: "last" } });
  await h.events.wait("presence", (e) => e.display_name === "last");
  const seen = h.events.of("presence").map((e) => `${e.display_name}:${e.online}`);
  assert.deepEqual(seen, ["bob:true", "bob:false", "last:true"]);
  const warnings = h.events.of("warn").map((w) => w.text).join("\n");
  assert.match(warnings, /USER_ADVERTISE frame: its transport signature is not the server's/);
  assert.match(warnings, /USER_ADVERTISE frame: it has no transport signature/);
  assert.match(warnings, /malformed PRESENCE_BATCH frame: .*only USER_ADVERTISE and USER_REMOVE/);
});

Deno.test("Connection reports a server-side close", async () => {
  await using h = await connected();
  h.server.transport.close(1011, "going away");
  const end = await withTimeout(h.session.closed, 5000, "close");
  assert.deepEqual([end.code, end.byUs], [1011, false]);
  await rejectsWith(() => h.session.sendPublic("x"), CommandError, "Not connected");
});

Deno.test("Connection.quit() sends CTRL_CLOSE and closes with 1000", async () => {
  await using h = await connected();
  const quitting = h.session.quit();
  const close = await h.server.nextOf("CTRL_CLOSE");
  assert.deepEqual(close.from, IDS.alice);
  await quitting;
  const end = await h.session.closed;
  assert.deepEqual([end.code, end.byUs], [1000, true]);
});
