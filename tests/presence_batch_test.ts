/**
 * Presence in batches (docs/protocol.md, "Presence in batches"): a client that announces
 * `presence-batch` gets its catch-up and later presence as PRESENCE_BATCH frames whose inner
 * frames are signed by the server, and order with other frames is kept. Real `socp server`
 * processes; the batch-taking users are scripted here.
 *
 * @module
 */

import assert from "node:assert/strict";
import {
  decodeFrame,
  encryptText,
  type Envelope,
  importPublicKeyText,
  type JsonObject,
  parseEnvelope,
  serializeEnvelope,
  signContent,
  verifyEnvelope,
} from "../shared/mod.ts";
import {
  advertOf,
  connectUser,
  listUsers,
  openServerPeer,
  openTransport,
  openUser,
  signedHello,
  startServer,
  TIMEOUTS,
  withTimeout,
} from "./support/mod.ts";
import { type FixtureKeyName, fixtureKeyPair } from "./fixtures/keys.ts";

/** A user that says hello with `caps` and keeps every frame it receives, unverified. */
async function batchUser(url: string, keyName: FixtureKeyName, caps: string[]) {
  const keys = await fixtureKeyPair(keyName);
  const userId = crypto.randomUUID();
  const transport = await openTransport(url);
  const frames: Envelope[] = [];
  let wake: (() => void) | undefined;
  const pump = (async () => {
    for await (const text of transport) {
      frames.push(parseEnvelope(text, { maxBytes: 16 << 20 }));
      wake?.();
    }
  })();
  transport.send(
    serializeEnvelope(await signedHello(keys, userId, { displayName: keyName, caps })),
  );
  /** Waits until `test` holds for the frames so far. */
  const until = async (test: (all: Envelope[]) => boolean, what: string) => {
    await withTimeout(
      (async () => {
        while (!test(frames)) await new Promise<void>((resolve) => (wake = resolve));
      })(),
      TIMEOUTS.frame,
      what,
    );
  };
  return {
    userId,
    keys,
    frames,
    until,
    async [Symbol.asyncDispose]() {
      transport.close(1000, "");
      await transport.closed;
      await pump;
    },
  };
}

/** Presence frames in arrival order, a batch's inner frames unpacked; `batched` marks those. */
function presence(frames: Envelope[]): { env: Envelope; batched: boolean }[] {
  return frames.flatMap((env): { env: Envelope; batched: boolean }[] => {
    if (env.type === "USER_ADVERTISE" || env.type === "USER_REMOVE") {
      return [{ env, batched: false }];
    }
    const frame = env.type === "PRESENCE_BATCH" ? decodeFrame(env) : undefined;
    return frame?.type === "PRESENCE_BATCH"
      ? frame.p.frames.map((inner) => ({ env: inner, batched: true }))
      : [];
  });
}

function advertised(frames: Envelope[]): string[] {
  return presence(frames)
    .filter((p) => p.env.type === "USER_ADVERTISE")
    .map((p) => String(p.env.payload["user_id"]));
}

Deno.test("a client with presence-batch gets its catch-up in one PRESENCE_BATCH of signed adverts", async () => {
  await using server = await startServer();
  const opts = { serverPub: server.pubkey };
  await using a = await connectUser(server.url, "user0", opts);
  await using b = await connectUser(server.url, "user1", opts);
  await using c = await connectUser(server.url, "user2", opts);
  await using d = await batchUser(server.url, "user3", ["presence-batch"]);
  await d.until(
    (all) => [a, b, c].every((u) => advertised(all).includes(u.userId)),
    "the catch-up adverts",
  );
  const batches = d.frames.filter((f) => f.type === "PRESENCE_BATCH");
  assert.equal(batches.length, 1, "the whole catch-up is one frame");
  assert.equal(batches[0]!.sig, undefined, "the batch itself is not signed");
  assert.equal(d.frames.filter((f) => f.type === "USER_ADVERTISE").length, 0);
  const serverKey = await importPublicKeyText(server.pubkey);
  for (const { env, batched } of presence(d.frames)) {
    assert.ok(batched);
    assert.ok(await verifyEnvelope(serverKey, env), "each inner frame is signed by the server");
  }
  assert.deepEqual(advertised(d.frames).sort(), [a.userId, b.userId, c.userId].sort());
});

Deno.test("a client without presence-batch gets single USER_ADVERTISE frames as before", async () => {
  await using server = await startServer();
  const opts = { serverPub: server.pubkey };
  await using a = await connectUser(server.url, "user0", opts);
  await using b = await connectUser(server.url, "user1", opts);
  await using d = await batchUser(server.url, "user3", []);
  await d.until((all) => advertised(all).length >= 2, "the catch-up adverts");
  assert.equal(d.frames.filter((f) => f.type === "PRESENCE_BATCH").length, 0);
  assert.deepEqual(
    d.frames.filter((f) => f.type === "USER_ADVERTISE").map((f) => f.payload["user_id"]).sort(),
    [a.userId, b.userId].sort(),
  );
});

Deno.test("collected presence is sent before any later frame: a newcomer's advert precedes its DM", async () => {
  await using server = await startServer();
  await using watcher = await batchUser(server.url, "user3", ["presence-batch"]);
  await watcher.until(
    (all) => all.some((f) => f.type === "ACK" && f.payload["msg_ref"] === "USER_HELLO_OK"),
    "the hello ACK",
  );
  // The newcomer's advert is collected for the watcher (up to 250 ms); its DM, sent right
  // behind its hello (both built beforehand), must not overtake it.
  await using newcomer = await openUser(server.url, "user0", { serverPub: server.pubkey });
  const ts = Date.now();
  const ciphertext = await encryptText(watcher.keys.publicKey, "hello right away");
  const dm = await newcomer.envelope("MSG_DIRECT", watcher.userId, {
    ciphertext,
    sender_pub: newcomer.pubkey,
    content_sig: await signContent(newcomer.keys.privateKey, {
      ciphertext,
      from: newcomer.userId,
      to: watcher.userId,
      ts,
    }),
  }, { ts });
  newcomer.send(serializeEnvelope(await newcomer.helloEnvelope()));
  newcomer.send(serializeEnvelope(dm));
  await watcher.until(
    (all) => all.some((f) => f.type === "USER_DELIVER"),
    "the newcomer's DM",
  );
  const dmAt = watcher.frames.findIndex((f) => f.type === "USER_DELIVER");
  const before = watcher.frames.slice(0, dmAt);
  assert.ok(
    advertised(before).includes(newcomer.userId),
    `the advert came first; frames: ${watcher.frames.map((f) => f.type).join(", ")}`,
  );
  // And leaving is told in order after joining.
  await newcomer.close();
  await watcher.until(
    (all) => presence(all).some((p) => p.env.type === "USER_REMOVE"),
    "the newcomer's USER_REMOVE",
  );
  const order = presence(watcher.frames)
    .filter((p) => p.env.payload["user_id"] === newcomer.userId)
    .map((p) => p.env.type);
  assert.deepEqual(order, ["USER_ADVERTISE", "USER_REMOVE"]);
});

Deno.test("a burst of joins costs one advert signature per user, and everyone is announced", async () => {
  await using server = await startServer();
  await using watcher = await batchUser(server.url, "user3", ["presence-batch"]);
  const acked = (all: Envelope[]) =>
    all.some((f) => f.type === "ACK" && f.payload["msg_ref"] === "USER_HELLO_OK");
  await watcher.until(acked, "the watcher's hello ACK");
  // 40 users say hello at once (half of them take batches). Before, each joiner's catch-up
  // signed a new advert for every user still joining: quadratic in the burst.
  const joiners = await Promise.all(
    Array.from(
      { length: 40 },
      (_, i) => batchUser(server.url, "user0", i % 2 === 0 ? ["presence-batch"] : []),
    ),
  );
  try {
    await Promise.all(joiners.map((j) => j.until(acked, "a joiner's hello ACK")));
    await watcher.until(
      (all) => joiners.every((j) => advertised(all).includes(j.userId)),
      "every joiner's advert",
    );
    // The last joiner learns everyone who joined before it settled, through catch-up or later.
    const last = joiners.at(-1)!;
    await last.until(
      (all) => [watcher, ...joiners.slice(0, -1)].every((u) => advertised(all).includes(u.userId)),
      "the last joiner to learn everyone",
    );
    const metrics = await (await fetch(`${server.url.replace(/^ws/, "http")}/metrics`)).text();
    const adverts = Number(
      /^socp_frames_out_total\{type="USER_ADVERTISE"\} (\d+)$/m.exec(metrics)?.[1] ?? "NaN",
    );
    assert.equal(adverts, 41, "one signed advert per user, however the joins interleave");
  } finally {
    for (const j of joiners) await j[Symbol.asyncDispose]();
  }
});

Deno.test("PRESENCE_BATCH goes only from a server to its clients: a user or a linked server sending one gets BAD_FRAME and nothing in it is believed", async () => {
  await using server = await startServer();
  const opts = { serverPub: server.pubkey };
  await using alice = await connectUser(server.url, "user0", opts);
  await using mallory = await connectUser(server.url, "user1", opts);
  await alice.next(advertOf(mallory.userId));
  // A forged advert for a user nobody hosts, signed by mallory (not by any server).
  const ghost = crypto.randomUUID();
  const forged = await mallory.envelope("USER_ADVERTISE", "*", {
    user_id: ghost,
    server_id: server.serverId,
    meta: { display_name: "ghost", pubkey: mallory.pubkey },
  });
  await mallory.sendFrame("PRESENCE_BATCH", mallory.serverId, {
    frames: [JSON.parse(serializeEnvelope(forged)) as JsonObject],
  });
  const refused = await mallory.nextError();
  assert.equal(refused.payload["code"], "BAD_FRAME");
  // The same from a linked server.
  await using peer = await openServerPeer(server.url, "server4", opts);
  await peer.helloLink(server.serverId);
  await peer.next(advertOf(alice.userId, server.serverId));
  await peer.sendFrame("PRESENCE_BATCH", server.serverId, {
    frames: [JSON.parse(serializeEnvelope(forged)) as JsonObject],
  });
  assert.equal((await peer.nextError()).payload["code"], "BAD_FRAME");
  // Nobody learned of the ghost, and the honest users still chat.
  assert.ok(!(await listUsers(alice)).includes(ghost));
  await alice.dm(mallory, "still here");
  assert.equal((await mallory.nextDm(alice)).text, "still here");
  assert.deepEqual(alice.received().filter(advertOf(ghost)), []);
});
