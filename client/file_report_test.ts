/**
 * What the sender of a file is told: one line, true to what the server confirmed, also when the
 * server is slow to pass the chunks on; and the confirmations (barriers) behind it.
 *
 * @module
 */

import assert from "node:assert/strict";
import { join } from "node:path";
import { encodePublicKey } from "../shared/mod.ts";
import { FakeAccountServer } from "./_fake_account_server.ts";
import { EventLog, fixtureKeyPair, IDS } from "./_test_util.ts";
import { formatEvent } from "./events.ts";
import { ClientSession } from "./session.ts";
import { MemoryTrustStore } from "./trust_store.ts";

const URL = "ws://test.invalid:1";

async function sender(server: FakeAccountServer, dir: string, requestTimeoutMs = 200) {
  const alice = await fixtureKeyPair("user0");
  const bob = await fixtureKeyPair("user1");
  server.online.add(IDS.bob);
  server.known.set(IDS.bob, encodePublicKey(bob.publicKey));
  const trust = new MemoryTrustStore();
  trust.pinUserKey(IDS.bob, encodePublicKey(bob.publicKey));
  const events = new EventLog();
  const session = new ClientSession({
    transport: await server.connect(),
    identity: { userId: IDS.alice, displayName: "alice", keys: alice },
    serverUrl: URL,
    trust,
    downloadsDir: join(dir, "downloads"),
    onEvent: events.sink,
    requestTimeoutMs,
  });
  await session.start();
  return { session, events };
}

Deno.test("/file to a slow server is reported sent once the server confirms, with no warning", async () => {
  const dir = await Deno.makeTempDir({ prefix: "socp_file_report_" });
  const server = await FakeAccountServer.create();
  try {
    // 70 ms per chunk: slower than the old fixed budget (200 ms + 20 ms per frame) allowed.
    server.delays.set("FILE_CHUNK", 70);
    const { session, events } = await sender(server, dir);
    const path = join(dir, "photo.bin");
    await Deno.writeFile(path, new Uint8Array(30 * 446).fill(7));
    await session.sendFile(IDS.bob, path);
    const sent = events.of("sent");
    assert.equal(sent.length, 1);
    assert.equal(sent[0]!.unconfirmed, undefined, "the server confirmed it");
    assert.deepEqual(events.of("warn"), []);
    assert.match(formatEvent(sent[0]!), /me → 22222222: file "photo.bin" \(13380 bytes\)$/);
    await session.quit();
  } finally {
    await server.close();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("/file the server never confirms is one warning line, not a warning and 'sent'", async () => {
  const dir = await Deno.makeTempDir({ prefix: "socp_file_report_" });
  const server = await FakeAccountServer.create();
  try {
    const { session, events } = await sender(server, dir);
    server.ignore.add("PUBKEY_REQUEST");
    const path = join(dir, "photo.bin");
    await Deno.writeFile(path, new Uint8Array(100).fill(1));
    await session.sendFile(IDS.bob, path);
    const sent = events.of("sent");
    assert.equal(sent.length, 1);
    assert.equal(sent[0]!.unconfirmed, true);
    assert.deepEqual(events.of("warn"), []);
    const line = formatEvent(sent[0]!);
    assert.match(
      line,
      /^\[warn\] file "photo.bin" \(100 bytes\) went out to 22222222, but the server/,
    );
    assert.ok(!line.includes("\n"));
    server.ignore.clear();
    await session.quit();
  } finally {
    await server.close();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("a late answer to a barrier that timed out does not confirm a later barrier's frames", async () => {
  const dir = await Deno.makeTempDir({ prefix: "socp_file_report_" });
  const server = await FakeAccountServer.create();
  try {
    const { session } = await sender(server, dir, 1000);
    const connection = session.connection;
    // Every PUBKEY_REQUEST (a barrier) is answered after 2 s, one after the other.
    server.delays.set("PUBKEY_REQUEST", 2000);
    const send = (text: string) =>
      connection.sendFrame("MSG_DIRECT", IDS.bob, { ciphertext: text });
    await send("one");
    assert.equal(await connection.barrier(), false, "no answer within 1.1 s");
    for (const text of ["two", "three"]) await send(text);
    // The first barrier's answer comes while this one waits (at 2 s): it must not count.
    assert.equal(await connection.barrier(), false, "its own answer only comes at 4 s");
    assert.equal(connection.unconfirmed, 3, "nothing was confirmed by the late answer");
    // Once the server keeps up again, a barrier confirms everything (after the late answers
    // still on their way: each barrier waits 1.3 s at most, a few are enough).
    server.delays.clear();
    let confirmed = false;
    for (let i = 0; i < 4 && !confirmed; i++) confirmed = await connection.barrier();
    assert.equal(confirmed, true);
    assert.equal(connection.unconfirmed, 0);
    await session.quit();
  } finally {
    await server.close();
    await Deno.remove(dir, { recursive: true });
  }
});
