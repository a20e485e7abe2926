/**
 * Tests of random_message.ts (`/random`) and broadcast.ts (`/broadcast`).
 *
 * @module
 */

import assert from "node:assert/strict";
import { decryptText, encodePublicKey, type Envelope } from "../shared/mod.ts";
import { advertise, connected, type Harness, IDS, rejectsWith } from "./_test_util.ts";
import { CommandError } from "./errors.ts";
import { pickIndex } from "./random_message.ts";

/** Plays the server until the client's barrier; `answer` may reply to each frame. */
async function serve(
  h: Harness,
  answer: (env: Envelope) => Promise<void>,
): Promise<Envelope[]> {
  const frames: Envelope[] = [];
  for (;;) {
    const env = await h.server.next();
    if (env.type === "PUBKEY_REQUEST" && env.payload["user_id"] === IDS.alice) {
      await h.server.send("PUBKEY_RESPONSE", {
        user_id: IDS.alice,
        pubkey: encodePublicKey(h.keys.publicKey),
      });
      return frames;
    }
    frames.push(env);
    await answer(env);
  }
}

Deno.test("pickIndex() stays in range", () => {
  assert.equal(pickIndex(3, () => 0), 0);
  assert.equal(pickIndex(3, () => 0.5), 1);
  assert.equal(pickIndex(3, () => 0.9999999), 2);
  for (let i = 0; i < 100; i++) assert.ok(pickIndex(4) < 4);
});

Deno.test("sendRandom() never picks yourself or a user you blocked, and says who got it", async () => {
  await using h = await connected();
  const bob = await advertise(h, IDS.bob, "bob", "user1");
  await advertise(h, IDS.carol, "carol", "user2");
  const sending = h.session.sendRandom("guess who");
  const frames = await serve(h, async (env) => {
    if (env.type === "LIST_REQUEST") {
      await h.server.send("LIST_RESPONSE", {
        users: [IDS.alice, IDS.bob, IDS.carol],
        display_names: {},
      });
    }
    if (env.type === "BLOCKS_REQUEST") {
      await h.server.send("BLOCKS_RESPONSE", { blocked: [IDS.carol], seq: 3 });
    }
  });
  await sending;
  const dm = frames.find((f) => f.type === "MSG_DIRECT")!;
  assert.equal(dm.to, IDS.bob);
  assert.equal(await decryptText(bob.privateKey, dm.payload["ciphertext"] as string), "guess who");
  const random = await h.events.wait("random");
  assert.deepEqual([random.to, random.to_name], [IDS.bob, "bob"]);
});

Deno.test("sendRandom() with nobody else online is a clear error", async () => {
  await using h = await connected();
  const sending = h.session.sendRandom("anyone?");
  await h.server.nextOf("LIST_REQUEST");
  await h.server.send("LIST_RESPONSE", { users: [IDS.alice], display_names: {} });
  await h.server.nextOf("BLOCKS_REQUEST");
  await h.server.send("BLOCKS_RESPONSE", { blocked: [], seq: 0 });
  await rejectsWith(() => sending, CommandError, "No one else is online");
});

Deno.test("broadcast() sends like /all and says how many refused it", async () => {
  await using h = await connected();
  await advertise(h, IDS.bob, "bob", "user1");
  await advertise(h, IDS.carol, "carol", "user2");
  const sending = h.session.broadcast("hello all");
  const frames = await serve(h, async (env) => {
    if (env.type === "MSG_PUBLIC_CHANNEL" && env.to === IDS.carol) {
      await h.server.send("ERROR", {
        code: "BLOCKED",
        detail: "Not delivered: carol has blocked you",
      });
    }
  });
  await sending;
  assert.deepEqual(frames.filter((f) => f.type === "MSG_PUBLIC_CHANNEL").map((f) => f.to).sort(), [
    IDS.bob,
    IDS.carol,
  ]);
  const refused = await h.events.wait("not_delivered");
  assert.deepEqual([refused.kind, refused.count], ["broadcast", 1]);
  assert.equal(h.events.of("error").length, 0);
});
