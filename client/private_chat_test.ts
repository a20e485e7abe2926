/**
 * Tests of private_chat.ts: the request travels as an encrypted DM, the target accepts and
 * connects directly, both sides prove their pinned keys, messages go over the direct link only,
 * and the chat ends with a notice on `/stopprivate`, quit, or a refused or failed connection.
 *
 * @module
 */

import assert from "node:assert/strict";
import {
  decryptText,
  encodePublicKey,
  type Envelope,
  type KeyPair,
  parseEnvelope,
  serializeEnvelope,
  signedEnvelope,
  webSocketTransport,
} from "../shared/mod.ts";
import {
  advertise,
  connected,
  fixtureKeyPair,
  type Harness,
  IDS,
  rejectsWith,
} from "./_test_util.ts";
import { CommandError } from "./errors.ts";
import { P2P_AUTH_KIND, P2P_PREFIX, p2pUrl, parseControl } from "./private_chat.ts";

interface Pair extends AsyncDisposable {
  alice: Harness;
  bob: Harness;
  bobKeys: KeyPair;
}

async function pair(): Promise<Pair> {
  const alice = await connected();
  const bob = await connected({ user: "user1", userId: IDS.bob, name: "bob" });
  const bobKeys = await advertise(alice, IDS.bob, "bob", "user1");
  await advertise(bob, IDS.alice, "alice", "user0");
  return {
    alice,
    bob,
    bobKeys,
    async [Symbol.asyncDispose](): Promise<void> {
      await bob[Symbol.asyncDispose]();
      await alice[Symbol.asyncDispose]();
    },
  };
}

/** Answers the barrier (a PUBKEY_REQUEST for the harness's own user) and returns what came before. */
async function untilBarrier(h: Harness, self: string): Promise<Envelope[]> {
  const frames: Envelope[] = [];
  for (;;) {
    const env = await h.server.next();
    if (env.type === "BLOCKS_REQUEST") {
      await h.server.send("BLOCKS_RESPONSE", { blocked: [], seq: 0 }, { to: self });
      continue;
    }
    if (env.type === "PUBKEY_REQUEST" && env.payload["user_id"] === self) {
      await h.server.send("PUBKEY_RESPONSE", { user_id: self, pubkey: "x" }, { to: self });
      return frames;
    }
    frames.push(env);
  }
}

/** Alice asks bob; the request DM is handed to bob as his server would. */
async function request(p: Pair): Promise<{ requestId: string; challenge: string }> {
  const starting = p.alice.session.startPrivate("bob");
  const frames = await untilBarrier(p.alice, IDS.alice);
  await starting;
  const dm = frames.find((f) => f.type === "MSG_DIRECT")!;
  assert.equal(dm.to, IDS.bob);
  const plain = await decryptText(p.bobKeys.privateKey, dm.payload["ciphertext"] as string);
  const control = parseControl(plain);
  assert.ok(control?.type === "request", plain);
  assert.equal(control.host, "127.0.0.1");
  await p.bob.server.send("USER_DELIVER", {
    ciphertext: dm.payload["ciphertext"] as string,
    sender: IDS.alice,
    sender_pub: dm.payload["sender_pub"] as string,
    content_sig: dm.payload["content_sig"] as string,
  }, { ts: dm.ts, to: IDS.bob });
  const invited = await p.bob.events.wait("private", (e) => e.action === "invited");
  assert.equal(invited.peer, IDS.alice);
  assert.equal(invited.address, `${control.host}:${control.port}`);
  assert.equal(p.bob.events.of("dm").length, 0, "a control message is not shown as a DM");
  return { requestId: control.request_id, challenge: control.challenge };
}

Deno.test("a private chat opens on /accept and carries messages that never touch a server", async () => {
  await using p = await pair();
  await request(p);
  await p.bob.session.acceptPrivate("alice");
  await p.alice.events.wait("private", (e) => e.action === "opened" && e.peer === IDS.bob);
  await p.bob.events.wait("private", (e) => e.action === "opened" && e.peer === IDS.alice);

  await p.bob.session.sendPrivate("alice", "hi alice, directly");
  await p.alice.session.sendPrivate(IDS.bob, "é".repeat(300));
  const got = await p.alice.events.wait("private_message");
  assert.deepEqual([got.from, got.from_name, got.text], [IDS.bob, "bob", "hi alice, directly"]);
  await p.alice.events.wait("private", (e) => e.action === "sent" && e.parts === 2);
  const pieces = p.bob.events.of("private_message");
  while (pieces.length < 2) {
    await p.bob.events.wait("private_message", (e) => !pieces.includes(e));
    pieces.splice(0, pieces.length, ...p.bob.events.of("private_message"));
  }
  assert.equal(pieces.map((m) => m.text).join(""), "é".repeat(300));
  // Nothing of it reached either server: the next frame each one sees is this LIST_REQUEST.
  for (const [h, self] of [[p.alice, IDS.alice], [p.bob, IDS.bob]] as const) {
    const asking = h.session.whoElse();
    const next = await h.server.next();
    assert.equal(next.type, "LIST_REQUEST");
    await h.server.send("LIST_RESPONSE", { users: [self], display_names: {} }, { to: self });
    await asking;
  }

  await p.alice.session.stopPrivate("bob");
  const closed = await p.bob.events.wait("private", (e) => e.action === "closed");
  assert.deepEqual([closed.by_peer, closed.reason], [true, "alice closed it"]);
  await p.alice.events.wait(
    "private",
    (e) => e.action === "closed" && e.reason === "you closed it",
  );
  await rejectsWith(
    () => p.bob.session.sendPrivate("alice", "still there?"),
    CommandError,
    "No private chat with alice",
  );
});

Deno.test("quitting closes a private chat and the peer is told", async () => {
  await using p = await pair();
  await request(p);
  await p.bob.session.acceptPrivate("alice");
  await p.alice.events.wait("private", (e) => e.action === "opened");
  await p.bob.session.quit("logout");
  const closed = await p.alice.events.wait("private", (e) => e.action === "closed");
  assert.equal(closed.reason, "bob logged out");
});

Deno.test("a direct connection that cannot prove the pinned key is refused", async () => {
  await using p = await pair();
  const { requestId, challenge } = await request(p);
  const address = (await p.bob.events.wait("private", (e) => e.action === "invited")).address!;
  const [host, port] = address.split(":") as [string, string];
  const mallory = await fixtureKeyPair("user2");
  const ws = new WebSocket(p2pUrl(host, Number(port)));
  const t = webSocketTransport(ws);
  const hello = await signedEnvelope(mallory.privateKey, {
    type: "P2P_HELLO",
    from: IDS.bob,
    to: IDS.alice,
    ts: Date.now(),
    payload: {
      kind: P2P_AUTH_KIND,
      request_id: requestId,
      signer: IDS.bob,
      peer: IDS.alice,
      challenge,
      my_challenge: "c".repeat(43),
    },
  });
  t.send(serializeEnvelope(hello));
  const answer = await t[Symbol.asyncIterator]().next();
  assert.equal(parseEnvelope(answer.value as string).type, "P2P_REFUSED");
  await t.closed;
  await p.alice.events.wait("warn", (w) => w.text.includes("did not prove the key pinned"));
  assert.equal(p.alice.events.of("private").filter((e) => e.action === "opened").length, 0);
  // The genuine peer still gets in afterwards.
  await p.bob.session.acceptPrivate("alice");
  await p.alice.events.wait("private", (e) => e.action === "opened");
});

Deno.test("a request the server refuses as blocked says so and opens nothing", async () => {
  await using p = await pair();
  const starting = p.alice.session.startPrivate("bob");
  for (;;) {
    const env = await p.alice.server.next();
    if (env.type === "BLOCKS_REQUEST") {
      await p.alice.server.send("BLOCKS_RESPONSE", { blocked: [], seq: 0 });
    } else if (env.type === "MSG_DIRECT") {
      await p.alice.server.send("ERROR", {
        code: "BLOCKED",
        detail: "Not delivered: bob has blocked you",
      });
    } else if (env.type === "PUBKEY_REQUEST") {
      await p.alice.server.send("PUBKEY_RESPONSE", { user_id: IDS.alice, pubkey: "x" });
      break;
    }
  }
  await starting;
  const refused = await p.alice.events.wait("not_delivered");
  assert.deepEqual([refused.kind, refused.to_name], ["private", "bob"]);
  assert.equal(p.alice.events.of("private").length, 0);
});

Deno.test("an /accept that cannot connect says so, and tells the requester through the server", async () => {
  await using p = await pair();
  // A port nobody listens on: a listener that is gone.
  const gone = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = gone.addr.port;
  gone.close();
  const alicePub = encodePublicKey(p.alice.keys.publicKey);
  const control = {
    type: "request",
    request_id: crypto.randomUUID(),
    host: "127.0.0.1",
    port,
    challenge: "c".repeat(43),
  };
  const { encryptText, signContent } = await import("../shared/mod.ts");
  const ciphertext = await encryptText(p.bobKeys.publicKey, P2P_PREFIX + JSON.stringify(control));
  const ts = Date.now();
  const content_sig = await signContent(p.alice.keys.privateKey, {
    ciphertext,
    from: IDS.alice,
    to: IDS.bob,
    ts,
  });
  await p.bob.server.send("USER_DELIVER", {
    ciphertext,
    sender: IDS.alice,
    sender_pub: alicePub,
    content_sig,
  }, { ts, to: IDS.bob });
  await p.bob.events.wait("private", (e) => e.action === "invited");
  const accepting = p.bob.session.acceptPrivate("alice");
  const told = await p.bob.server.nextOf("MSG_DIRECT");
  await accepting;
  const failed = await p.bob.events.wait("private", (e) => e.action === "failed");
  assert.match(failed.reason!, /could not connect directly to 127\.0\.0\.1:\d+/);
  const aliceKeys = await fixtureKeyPair("user0");
  const plain = await decryptText(aliceKeys.privateKey, told.payload["ciphertext"] as string);
  assert.equal(parseControl(plain)?.type, "failed");
});

Deno.test("/startprivate needs the user online, and /private needs an open chat", async () => {
  await using p = await pair();
  await p.alice.server.send("USER_REMOVE", { user_id: IDS.bob }, { to: "*" });
  await p.alice.events.wait("presence", (e) => !e.online);
  await rejectsWith(() => p.alice.session.startPrivate(IDS.bob), CommandError, "is not online");
  await rejectsWith(
    () => p.alice.session.sendPrivate(IDS.bob, "hi"),
    CommandError,
    "No private chat with",
  );
});

Deno.test("socp client refuses a bad --p2p-port or --p2p-host before doing anything", async () => {
  const { runClient } = await import("./mod.ts");
  for (
    const [args, message] of [
      [["--p2p-port", "http"], /--p2p-port must be a port number from 0 to 65535, not "http"/],
      [["--p2p-port", "70000"], /--p2p-port must be a port number/],
      [["--p2p-host", "a b"], /--p2p-host must be a host name or IP address, not "a b"/],
    ] as const
  ) {
    const err: string[] = [];
    const code = await runClient(["me.json", ...args], {
      write: () => {},
      writeErr: (t) => err.push(t),
    });
    assert.equal(code, 1);
    assert.match(err.join(""), message);
  }
});
