/**
 * Randomised abuse: a user and a server peer send mutated versions of valid frames (fields
 * dropped, retyped, replaced with odd values, JSON cut short); the server must answer with
 * errors, never crash, and keep serving honest users. The seed is fixed, so a failure repeats.
 *
 * @module
 */

import assert from "node:assert/strict";
import type { JsonValue } from "../shared/mod.ts";
import { connectUser, openServerPeer, startServer } from "./support/mod.ts";

/** A small deterministic PRNG (mulberry32). */
function rng(seed: number): () => number {
  return () => {
    seed = (seed + 0x6d2b79f5) | 0;
    let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const ODD: JsonValue[] = [
  null,
  0,
  -1,
  1e308,
  1.5,
  "",
  "x".repeat(2000),
  "\u0000\ud800",
  [],
  {},
  [1, "a", null],
  { nested: { deeper: [{}] } },
  true,
  "public",
  "*",
  "00000000-0000-4000-8000-000000000000",
];

function mutate(value: JsonValue, random: () => number, depth = 0): JsonValue {
  if (depth > 3 || random() < 0.25) {
    return random() < 0.5 ? ODD[Math.floor(random() * ODD.length)]! : value;
  }
  if (Array.isArray(value)) return value.map((v) => mutate(v, random, depth + 1));
  if (value !== null && typeof value === "object") {
    const out: { [k: string]: JsonValue } = {};
    for (const [k, v] of Object.entries(value)) {
      const roll = random();
      if (roll < 0.15) continue; // dropped
      out[roll < 0.2 ? k + "_" : k] = mutate(v, random, depth + 1);
    }
    if (random() < 0.1) out["extra"] = ODD[Math.floor(random() * ODD.length)]!;
    return out;
  }
  return value;
}

Deno.test("the server survives 600 mutated user and server frames and keeps serving", async () => {
  await using server = await startServer({ args: ["--rate", "100000", "--burst", "100000"] });
  await using alice = await connectUser(server.url, "user0", { displayName: "alice" });
  await using bob = await connectUser(server.url, "user1", { displayName: "bob" });
  await using mallory = await connectUser(server.url, "user2", { displayName: "mallory" });
  await using peer = await openServerPeer(server.url, "server4");
  await peer.helloLink(server.serverId);
  const random = rng(20261122);
  const templates: { [k: string]: JsonValue }[] = [
    {
      type: "MSG_DIRECT",
      to: bob.userId,
      payload: { ciphertext: "QUJD", sender_pub: "x", content_sig: "y" },
    },
    { type: "MSG_PUBLIC_CHANNEL", to: "public", payload: { ciphertext: "QUJD" } },
    {
      type: "FILE_START",
      to: bob.userId,
      payload: { file_id: "f", name: "a.txt", size: 3, sha256: "00", mode: "dm" },
    },
    { type: "FILE_CHUNK", to: bob.userId, payload: { file_id: "f", index: 0, ciphertext: "QUJD" } },
    { type: "LIST_REQUEST", to: "s", payload: {} },
    { type: "PUBKEY_REQUEST", to: "s", payload: { user_id: bob.userId } },
    { type: "ACCOUNTS_REQUEST", to: "s", payload: { pattern: "a*" } },
    { type: "REGISTER", to: "s", payload: { username: "mal", privkey_store: {}, verifier: "v" } },
    {
      type: "SERVER_DELIVER",
      to: server.serverId,
      payload: { user_id: bob.userId, ciphertext: "QUJD", sender: alice.userId },
    },
    {
      type: "USER_ADVERTISE",
      to: "*",
      payload: {
        user_id: crypto.randomUUID(),
        server_id: peer.serverId,
        meta: { display_name: "z" },
      },
    },
    { type: "DIRECTORY_UPDATE", to: "*", payload: { record: { user_id: "u", pubkey: "k" } } },
    {
      type: "PUBLIC_CHANNEL_UPDATED",
      to: "*",
      payload: { version: 3, wraps: [{ member_id: "m" }] },
    },
  ];
  for (let i = 0; i < 600; i++) {
    const template = templates[Math.floor(random() * templates.length)]!;
    const toServer = random() < 0.4;
    const frame = mutate(
      { ...template, from: toServer ? peer.serverId : mallory.userId, ts: Date.now() },
      random,
    );
    let text = JSON.stringify(frame);
    if (random() < 0.05) text = text.slice(0, Math.floor(random() * text.length));
    (toServer ? peer : mallory).send(text);
    if (i % 100 === 99) {
      // Honest users still chat after every hundred.
      await alice.dm(bob, `still here ${i}`);
      assert.equal((await bob.nextDm(alice)).text, `still here ${i}`);
    }
  }
  assert.ok(mallory.received().some((f) => f.type === "ERROR"), "the abuse got errors");
  await bob.dm(alice, "done");
  assert.equal((await alice.nextDm(bob)).text, "done");
  const logs = server.stderrText();
  // Bad input is refused as a protocol error, never by an internal failure.
  assert.doesNotMatch(logs, /connection handler failed|internal error|failed: |Uncaught|panicked/);
  assert.ok(peer.received().some((f) => f.type === "ERROR"), "the peer's abuse got errors too");
});
