import assert from "node:assert/strict";
import type { Envelope } from "../shared/mod.ts";
import { contentKey, relayedContent, SeenCache, seenKey } from "./seen_cache.ts";

const DM = {
  type: "SERVER_DELIVER",
  from: "server-1",
  to: "server-2",
  ts: 1000,
  payload: {
    user_id: "bob",
    sender: "alice",
    ciphertext: "Y2lwaGVy",
    sender_pub: "key",
    content_sig: "c2ln",
    orig_ts: 1000,
    msg_ts: 1000,
  },
} satisfies Envelope;

Deno.test("`seenKey()` of user content ignores what a relay can change", () => {
  const k = seenKey(DM);
  assert.equal(seenKey({ ...DM, ts: 1001 }), k);
  assert.equal(seenKey({ ...DM, from: "server-3", to: "server-4", sig: "x" }), k);
  assert.equal(seenKey({ ...DM, payload: { ...DM.payload, msg_ts: 7, orig_ts: 7 } }), k);
  assert.equal(seenKey({ ...DM, payload: { ...DM.payload, sender_pub: "other" } }), k);
});

Deno.test("`seenKey()` of user content depends on the recipient, the type and the content_sig", () => {
  const k = seenKey(DM);
  assert.notEqual(seenKey({ ...DM, payload: { ...DM.payload, user_id: "carol" } }), k);
  assert.notEqual(seenKey({ ...DM, payload: { ...DM.payload, content_sig: "b3RoZXI" } }), k);
  assert.notEqual(
    seenKey({ ...DM, payload: { ...DM.payload, inner_type: "MSG_PUBLIC_CHANNEL" } }),
    k,
  );
});

Deno.test("`seenKey()`: a SERVER_DELIVER and the same DM relayed as a user frame are one message", () => {
  const payload = { ciphertext: "Y2lwaGVy", sender_pub: "key", content_sig: "c2ln" };
  const k = seenKey(DM);
  for (const type of ["MSG_DIRECT", "MSG_PRIVATE"]) {
    assert.equal(seenKey({ type, from: "alice", to: "bob", ts: 1, payload }), k, type);
  }
  // G56's form: the whole user envelope inside the SERVER_DELIVER payload.
  const g56 = {
    type: "SERVER_DELIVER",
    from: "server-1",
    to: "server-2",
    ts: 5,
    payload: { user_id: "bob", type: "MSG_PRIVATE", from: "alice", to: "bob", ts: 1000, payload },
  };
  assert.equal(seenKey(g56), k);
  assert.deepEqual(relayedContent(g56), {
    type: "MSG_DIRECT",
    sender: "alice",
    recipient: "bob",
    ts: 1000,
    payload,
  });
});

Deno.test("`seenKey()` of content without content_sig hashes the payload less relay keys", () => {
  const chunk = { file_id: "f", index: 0, ciphertext: "Y2h1bms" };
  const frame = { type: "FILE_CHUNK", from: "alice", to: "bob", ts: 1, payload: chunk };
  const k = seenKey(frame);
  assert.equal(seenKey({ ...frame, ts: 2, payload: { ...chunk, orig_ts: 2 } }), k);
  assert.equal(
    seenKey({
      type: "SERVER_DELIVER",
      from: "s1",
      to: "s2",
      ts: 3,
      payload: { ...chunk, user_id: "bob", sender: "alice", inner_type: "FILE_CHUNK" },
    }),
    k,
  );
  assert.notEqual(seenKey({ ...frame, payload: { ...chunk, index: 1 } }), k);
});

Deno.test("`contentKey()` treats the channel targets `public` and `*` alike", () => {
  const content = { type: "MSG_PUBLIC_CHANNEL", sender: "a", ts: 1, payload: { content_sig: "s" } };
  assert.equal(
    contentKey({ ...content, recipient: "public" }),
    contentKey({ ...content, recipient: "*" }),
  );
});

Deno.test("`relayedContent()` is undefined for frames without user content", () => {
  assert.equal(
    relayedContent({ type: "USER_ADVERTISE", from: "s", to: "*", ts: 1, payload: {} }),
    undefined,
  );
});

Deno.test("`SeenCache.has()` does not record the key", () => {
  let now = 0;
  const seen = new SeenCache({ ttlMs: 1000, clock: () => now });
  assert.equal(seen.has("a"), false);
  assert.equal(seen.add("a"), true);
  assert.equal(seen.has("a"), true);
  now = 1000;
  assert.equal(seen.has("a"), false);
});

Deno.test("`SeenCache.delete()` forgets a key, so its next copy counts as new", () => {
  const seen = new SeenCache();
  assert.equal(seen.add("advert"), true);
  assert.equal(seen.add("advert"), false);
  seen.delete("advert");
  assert.equal(seen.has("advert"), false);
  assert.equal(seen.add("advert"), true);
  seen.delete("never-added");
  assert.equal(seen.size, 1);
});
