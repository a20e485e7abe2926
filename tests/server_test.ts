/**
 * Integration tests of `socp server` as a real process, spoken to by scripted users over
 * WebSockets on 127.0.0.1: the user protocol (docs/protocol.md, spec §8-12), presence, the public
 * channel, file relay, limits, identity persistence and the command line.
 *
 * @module
 */

import assert from "node:assert/strict";
import { join } from "node:path";
import {
  decodeBase64Url,
  decryptBlock,
  encodeBase64Url,
  encryptText,
  type Envelope,
  importPublicKeyText,
  rsa,
  sha256Hex,
  verifyContent,
} from "../shared/mod.ts";
import { renderBootstrap } from "../server/mod.ts";
import {
  connectUser,
  fixturePubkey,
  HelloRefusedError,
  openUser,
  runMain,
  sorted,
  startServer,
  withTempDir,
} from "./support/mod.ts";

Deno.test("socp server routes, lists and relays between users on one server", async (t) => {
  await using server = await startServer({ args: ["--max-file-bytes", "1000"] });
  const opts = { serverPub: server.pubkey };
  await using alice = await connectUser(server.url, "user0", { ...opts, displayName: "alice" });
  await using bob = await connectUser(server.url, "user1", { ...opts, displayName: "bob" });

  await t.step("USER_HELLO is answered by a signed ACK with server_id and server_pub", () => {
    for (const user of [alice, bob]) {
      const ack = user.ack;
      assert.equal(ack.type, "ACK");
      assert.equal(ack.from, server.serverId);
      assert.equal(ack.to, user.userId);
      assert.equal(ack.payload["msg_ref"], "USER_HELLO_OK");
      assert.equal(ack.payload["server_id"], server.serverId);
      assert.equal(ack.payload["server_pub"], server.pubkey);
      assert.equal(typeof ack.sig, "string");
    }
  });

  await t.step(
    "a DM arrives as USER_DELIVER with the original ts, decrypting and verifying",
    async () => {
      const sent = await alice.dm(bob, "hello bob ✓");
      const dm = await bob.nextDm(alice);
      assert.equal(dm.text, "hello bob ✓");
      assert.equal(dm.variant, "A");
      const { frame } = dm;
      assert.equal(frame.from, server.serverId);
      assert.equal(frame.to, bob.userId);
      assert.equal(frame.ts, sent.ts);
      assert.equal(frame.payload["orig_ts"], sent.ts);
      assert.equal(frame.payload["msg_ts"], sent.ts);
      assert.equal(frame.payload["sender"], alice.userId);
      assert.equal(frame.payload["sender_pub"], alice.pubkey);
      assert.equal(frame.payload["ciphertext"], sent.payload["ciphertext"]);
      assert.equal(frame.payload["content_sig"], sent.payload["content_sig"]);
    },
  );

  await t.step("MSG_PRIVATE is accepted as an alias of MSG_DIRECT", async () => {
    await bob.dm(alice, "alias", { type: "MSG_PRIVATE" });
    assert.equal((await alice.nextDm(bob)).text, "alias");
  });

  await t.step(
    "a second connection with the same user id gets NAME_IN_USE; the first keeps working",
    async () => {
      await using dup = await openUser(server.url, "user1", { ...opts, userId: bob.userId });
      const refused = await dup.hello().then(
        () => assert.fail("the duplicate USER_HELLO was accepted"),
        (error: unknown) => error,
      );
      assert.ok(refused instanceof HelloRefusedError, String(refused));
      assert.equal(refused.code, "NAME_IN_USE");
      const closed = await dup.closedByServer();
      assert.equal(closed.code, 1008);
      assert.ok(bob.isOpen);
      await alice.dm(bob, "still there?");
      assert.equal((await bob.nextDm(alice)).text, "still there?");
    },
  );

  await t.step("a DM to an unknown user gets ERROR USER_NOT_FOUND", async () => {
    const ghost = { userId: crypto.randomUUID(), keys: bob.keys };
    await alice.dm(ghost, "anyone?");
    const error = await alice.nextError("USER_NOT_FOUND");
    assert.equal(error.from, server.serverId);
    assert.equal(error.to, alice.userId);
    assert.match(String(error.payload["detail"]), new RegExp(ghost.userId));
  });

  await t.step("LIST_REQUEST is answered with both users, sorted, with display names", async () => {
    await alice.sendFrame("LIST_REQUEST", server.serverId, {});
    const list = await alice.next("LIST_RESPONSE");
    const expected = sorted([alice.userId, bob.userId]);
    assert.deepEqual(list.payload["online_users"], expected);
    assert.deepEqual(list.payload["users"], expected);
    assert.deepEqual(list.payload["display_names"], {
      [alice.userId]: "alice",
      [bob.userId]: "bob",
    });
  });

  await t.step("PUBKEY_REQUEST is answered with the user's key and name", async () => {
    await alice.sendFrame("PUBKEY_REQUEST", server.serverId, { user_id: bob.userId });
    const response = await alice.next("PUBKEY_RESPONSE");
    assert.deepEqual(response.payload, {
      user_id: bob.userId,
      pubkey: bob.pubkey,
      display_name: "bob",
    });
    await alice.sendFrame("PUBKEY_REQUEST", server.serverId, { user_id: crypto.randomUUID() });
    await alice.nextError("USER_NOT_FOUND");
  });

  // Carol joins after alice and bob, and stays for the public-channel steps.
  const carol = await connectUser(server.url, "user2", { ...opts, displayName: "carol" });
  try {
    await t.step(
      "a user joining later is sent USER_ADVERTISE for everyone already online",
      async () => {
        for (const other of [alice, bob]) {
          const advert = await carol.next(
            (f) => f.type === "USER_ADVERTISE" && f.payload["user_id"] === other.userId,
          );
          // The advert signed once for every client, resent: a join costs no new signature.
          assert.equal(advert.to, "*");
          assert.equal(advert.payload["server_id"], server.serverId);
          assert.deepEqual(advert.payload["meta"], {
            display_name: other.displayName,
            pubkey: other.pubkey,
          });
        }
        for (const other of [alice, bob]) {
          const advert = await other.next(
            (f) => f.type === "USER_ADVERTISE" && f.payload["user_id"] === carol.userId,
          );
          assert.deepEqual(advert.payload["meta"], { display_name: "carol", pubkey: carol.pubkey });
        }
      },
    );

    await t.step("one channel key per server run, wrapped once per joining member", async () => {
      const isUpdateFor = (id: string) => (f: Envelope) =>
        f.type === "PUBLIC_CHANNEL_UPDATED" && Array.isArray(f.payload["wraps"]) &&
        f.payload["wraps"].some((w) =>
          typeof w === "object" && w !== null && !Array.isArray(w) && w["member_id"] === id
        );
      const keys = new Set<string>();
      const versions = new Set<number>();
      for (const user of [alice, bob, carol]) {
        const updated = await user.next(isUpdateFor(user.userId));
        const wraps = updated.payload["wraps"] as { member_id: string; wrapped_key: string }[];
        const mine = wraps.find((w) => w.member_id === user.userId)!;
        const key = await rsa().decrypt(user.keys.privateKey, decodeBase64Url(mine.wrapped_key));
        assert.equal(key.length, 32);
        keys.add(encodeBase64Url(key));
        versions.add(updated.payload["version"] as number);
      }
      assert.equal(keys.size, 1, "every member holds the same key");
      assert.equal(versions.size, 1, `members saw versions ${[...versions].join(", ")}`);
      for (const user of [alice, bob]) {
        const add = await user.next(
          (f) =>
            f.type === "PUBLIC_CHANNEL_ADD" &&
            Array.isArray(f.payload["add"]) && f.payload["add"].includes(carol.userId),
        );
        assert.equal(add.from, server.serverId);
      }
      // Joins are announced in batches: everyone gets the ADD (ids), but an UPDATED goes only to
      // members whose own wrap it carries, at most 8 to a frame, so a join costs the others only
      // its id and no one gets a frame sized by the batch.
      for (const user of [alice, bob, carol]) {
        const updates = user.received().filter((f) => f.type === "PUBLIC_CHANNEL_UPDATED");
        assert.ok(updates.length > 0);
        for (const updated of updates) {
          const wraps = updated.payload["wraps"] as { member_id: string }[];
          assert.ok(wraps.length <= 8, `${wraps.length} wraps in one frame`);
          assert.ok(wraps.some((w) => w.member_id === user.userId), "only its own chunk");
        }
      }
      // carol saw, in order: the ACK, the catch-up adverts, then the public channel frames.
      const order = carol.received().map((f) => f.type);
      assert.equal(order[0], "ACK");
      assert.ok(
        order.indexOf("PUBLIC_CHANNEL_ADD") > 0 &&
          order.lastIndexOf("USER_ADVERTISE") < order.indexOf("PUBLIC_CHANNEL_ADD"),
        order.join(", "),
      );
    });

    await t.step(
      "a per-recipient MSG_PUBLIC_CHANNEL is delivered to that member only",
      async () => {
        const ts = Date.now();
        const ciphertext = await encryptText(bob.keys.publicKey, "hi all (bob's copy)");
        await alice.sendPublic(bob.userId, ciphertext, { ts, groupId: "public" });
        const frame = await bob.next("MSG_PUBLIC_CHANNEL");
        assert.equal(frame.from, alice.userId);
        assert.equal(frame.to, bob.userId);
        assert.equal(frame.ts, ts);
        assert.equal(frame.payload["sender"], alice.userId);
        assert.equal(frame.payload["orig_ts"], ts);
        assert.equal(frame.payload["group_id"], "public");
        assert.equal(await bob.decrypt(frame), "hi all (bob's copy)");
        const variant = await verifyContent(
          await importPublicKeyText(String(frame.payload["sender_pub"])),
          String(frame.payload["content_sig"]),
          { ciphertext, from: alice.userId },
          [ts],
        );
        assert.equal(variant, "A");
        // carol's next frame from alice's connection proves she got no copy.
        await alice.dm(carol, "after the public message");
        await carol.nextDm(alice);
        assert.equal(carol.pending().filter((f) => f.type === "MSG_PUBLIC_CHANNEL").length, 0);
      },
    );

    await t.step(
      "a plaintext MSG_PUBLIC_CHANNEL to public is fanned out to everyone else",
      async () => {
        const ts = Date.now();
        const ciphertext = encodeBase64Url(new TextEncoder().encode("plain hello"));
        await alice.sendPublic("public", ciphertext, { ts });
        for (const user of [bob, carol]) {
          const frame = await user.next((f) =>
            f.type === "MSG_PUBLIC_CHANNEL" && f.to === "public"
          );
          assert.equal(frame.from, alice.userId);
          assert.equal(frame.ts, ts);
          assert.equal(frame.payload["sender"], alice.userId);
          assert.equal(frame.payload["ciphertext"], ciphertext);
        }
        // Frames of one connection are handled in order: the LIST_RESPONSE follows any echo.
        await alice.sendFrame("LIST_REQUEST", server.serverId, {});
        await alice.next("LIST_RESPONSE");
        assert.equal(alice.pending().filter((f) => f.type === "MSG_PUBLIC_CHANNEL").length, 0);
      },
    );
  } finally {
    await carol.close();
  }

  await t.step("USER_REMOVE tells the others when a user leaves", async () => {
    for (const user of [alice, bob]) {
      const remove = await user.next(
        (f) => f.type === "USER_REMOVE" && f.payload["user_id"] === carol.userId,
      );
      assert.equal(remove.payload["server_id"], server.serverId);
      assert.equal(remove.from, server.serverId);
    }
    await alice.sendFrame("LIST_REQUEST", server.serverId, {});
    const list = await alice.next("LIST_RESPONSE");
    assert.deepEqual(list.payload["online_users"], sorted([alice.userId, bob.userId]));
    // The key of a user who left is still known.
    await alice.sendFrame("PUBKEY_REQUEST", server.serverId, { user_id: carol.userId });
    const response = await alice.next("PUBKEY_RESPONSE");
    assert.equal(response.payload["pubkey"], carol.pubkey);
  });

  await t.step("CTRL_CLOSE ends a session with close code 1000", async () => {
    await using dave = await connectUser(server.url, "user3", { ...opts, displayName: "dave" });
    await alice.next((f) => f.type === "USER_ADVERTISE" && f.payload["user_id"] === dave.userId);
    await dave.sendFrame("CTRL_CLOSE", server.serverId, {});
    const closed = await dave.closedByServer();
    assert.equal(closed.code, 1000);
    await alice.next((f) => f.type === "USER_REMOVE" && f.payload["user_id"] === dave.userId);
    await dave.verifyAllFromServer();
  });

  await t.step("FILE_START, FILE_CHUNK and FILE_END are relayed intact", async () => {
    const bytes = crypto.getRandomValues(new Uint8Array(900));
    const { fileId, sha256 } = await alice.sendFile(bob, { name: "notes.bin", bytes });
    const start = await bob.next((f) => f.type === "FILE_START" && f.payload["file_id"] === fileId);
    assert.equal(start.payload["name"], "notes.bin");
    assert.equal(start.payload["size"], 900);
    assert.equal(start.payload["sha256"], sha256);
    assert.equal(start.payload["sender"], alice.userId);
    const chunks: Envelope[] = [];
    for (let i = 0; i < 3; i++) {
      chunks.push(
        await bob.next((f) => f.type === "FILE_CHUNK" && f.payload["file_id"] === fileId),
      );
    }
    await bob.next((f) => f.type === "FILE_END" && f.payload["file_id"] === fileId);
    chunks.sort((a, b) => (a.payload["index"] as number) - (b.payload["index"] as number));
    const parts = await Promise.all(
      chunks.map((c) => decryptBlock(bob.keys.privateKey, String(c.payload["ciphertext"]))),
    );
    const whole = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
    parts.reduce((offset, p) => (whole.set(p, offset), offset + p.length), 0);
    assert.deepEqual(whole, bytes);
    assert.equal(await sha256Hex(whole), sha256);
  });

  await t.step(
    "FILE_START over --max-file-bytes gets FILE_TOO_LARGE and nothing is relayed",
    async () => {
      const bytes = crypto.getRandomValues(new Uint8Array(1001));
      const { fileId } = await alice.sendFile(bob, { name: "big.bin", bytes });
      const error = await alice.nextError("FILE_TOO_LARGE");
      assert.match(String(error.payload["detail"]), /big\.bin/);
      await alice.dm(bob, "after the big file");
      await bob.nextDm(alice);
      assert.deepEqual(
        bob.pending().filter((f) => f.payload["file_id"] === fileId).map((f) => f.type),
        [],
      );
      assert.deepEqual(alice.pending().filter((f) => f.type === "ERROR").map((f) => f.payload), []);
    },
  );

  await t.step("every frame the server sent verifies with its key", async () => {
    await alice.verifyAllFromServer();
    await bob.verifyAllFromServer();
    await carol.verifyAllFromServer();
  });
});

Deno.test("socp server keeps its identity across restarts and writes its key with mode 0600", async () => {
  await using server = await startServer({ serverKey: null });
  const { serverId, pubkey } = server;
  const keyFile = join(server.dataDir, "server_key.pem");
  const info = await Deno.stat(keyFile);
  assert.equal(info.mode! & 0o777, 0o600);

  await server.restart();
  assert.equal(server.serverId, serverId);
  assert.equal(server.pubkey, pubkey);
  {
    await using alice = await connectUser(server.url, "user0", { serverPub: pubkey });
    assert.equal(alice.serverId, serverId);
  }

  const stopped = await server.kill("SIGTERM");
  assert.equal(stopped.code, 0, `exit on SIGTERM\n${server.stderrText()}`);
  const out = await runMain(["server", "--print-identity", "--data-dir", server.dataDir]);
  assert.equal(out.code, 0, out.stderr);
  assert.deepEqual(JSON.parse(out.stdout), { server_id: serverId, pubkey });
});

Deno.test("socp server answers a plain HTTP request for / with the web client page", async () => {
  await using server = await startServer();
  const response = await fetch(`http://127.0.0.1:${server.port}/`);
  const body = await response.text();
  assert.equal(response.status, 200);
  assert.match(body, /<script type="module" src="\/app.js">/);
});

/** The stderr lines `socp server` printed itself (not its `rsa backend:` notice). */
function ownLines(stderr: string): string[] {
  return stderr.split("\n").filter((line) => line !== "" && !line.startsWith("rsa backend:"));
}

Deno.test("socp server exits with code 64 and one line saying why for a bad flag", async () => {
  const unknown = await runMain(["server", "--no-such-flag"]);
  assert.equal(unknown.code, 64);
  assert.deepEqual(ownLines(unknown.stderr), [
    'socp server: Unknown option "--no-such-flag" (socp server --help for more)',
  ]);
  assert.equal(unknown.stdout, "");

  const typo = await runMain(["server", "--data-dri", "x"]);
  assert.equal(typo.code, 64);
  assert.deepEqual(ownLines(typo.stderr), [
    'socp server: Unknown option "--data-dri"; did you mean "--data-dir"? (socp server --help for more)',
  ]);

  const port = await runMain(["server", "--port", "seventy"]);
  assert.equal(port.code, 64);
  assert.equal(ownLines(port.stderr).length, 1, port.stderr);
  assert.match(port.stderr, /--port must be an integer.*"seventy" \(socp server --help for more\)/);
});

Deno.test("socp server locks its data directory; a second server on it is refused in one line", async () => {
  await using server = await startServer();
  const lockFile = join(server.dataDir, "lock");
  const refused = (pid: number) =>
    `socp server: Data directory "${server.dataDir}" is in use by another socp server ` +
    `(pid ${pid}); stop it, or give this one its own --data-dir`;

  const second = await runMain(["server", "--port", "0", "--data-dir", server.dataDir]);
  assert.equal(second.code, 1);
  assert.equal(second.stdout, "");
  assert.deepEqual(ownLines(second.stderr), [refused(server.process.pid)]);

  // SIGKILL leaves the lock file with a dead pid, but the OS lock died with the process.
  await server.kill("SIGKILL");
  assert.equal((await Deno.readTextFile(lockFile)).trim(), String(server.process.pid));
  await server.restart();
  assert.equal((await Deno.readTextFile(lockFile)).trim(), String(server.process.pid));
  const third = await runMain(["server", "--port", "0", "--data-dir", server.dataDir]);
  assert.deepEqual(ownLines(third.stderr), [refused(server.process.pid)]);

  // A clean stop releases the lock and empties the file.
  const stopped = await server.kill("SIGTERM");
  assert.equal(stopped.code, 0, server.stderrText());
  assert.equal(await Deno.readTextFile(lockFile), "");
});

Deno.test("socp server counts introducers and group servers in the singular when there is one", async () => {
  await withTempDir("socp_test_plural_", async (dir) => {
    // One other server, pinned but not running: it is the only introducer and group member.
    const closed = Deno.listen({ hostname: "127.0.0.1", port: 0 });
    const port = closed.addr.port;
    closed.close();
    const other = { host: "127.0.0.1", port, pubkey: await fixturePubkey("server1") };
    const bootstrap = join(dir, "bootstrap.yaml");
    await Deno.writeTextFile(bootstrap, renderBootstrap([other], [other]));
    await using server = await startServer({ args: ["--bootstrap", bootstrap] });
    assert.match(
      await server.waitForLog(/bootstrap file lists/),
      /bootstrap file lists 1 introducer; SOCP asks for at least 3$/,
    );
    assert.match(
      await server.waitForLog(/server group:/),
      /server group: this server and 1 other$/,
    );
  });
});
