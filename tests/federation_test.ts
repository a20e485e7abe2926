/**
 * Integration tests of the server mesh (spec §7, §10-11) with real `socp server` processes on
 * 127.0.0.1: presence gossip and catch-up, DMs, the public channel and files between users on
 * different servers, link health (a killed server, a hung server, restarts on the same port),
 * bootstrap introducers, and real client processes chatting across servers.
 *
 * @module
 */

import assert from "node:assert/strict";
import { join } from "node:path";
import {
  decryptBlock,
  encodeBase64Url,
  encryptText,
  type Envelope,
  importPublicKeyText,
  verifyContent,
} from "../shared/mod.ts";
import {
  advertOf,
  assertAllChat,
  assertDm,
  connectUser,
  entryOf,
  eventually,
  FAST_HEARTBEAT_ARGS,
  fixturePubkey,
  linkedPeers,
  listUsers,
  onlineEvent,
  type RawUser,
  readyClient,
  removeOf,
  type ServerNode,
  settle,
  shortId,
  sorted,
  startMesh,
  startMeshNode,
  TIMEOUTS,
  waitLinked,
  writeClientConfig,
} from "./support/mod.ts";

/** Connects a scripted user to `node`, checking every frame against the node's key. */
function userOn(node: ServerNode, key: `user${number}`, displayName: string): Promise<RawUser> {
  return connectUser(node.url, key, { serverPub: node.pubkey, displayName });
}

/** Waits until each of `users` has been told (USER_ADVERTISE) about each of the others. */
async function awaitPresence(users: readonly RawUser[]): Promise<void> {
  for (const user of users) {
    for (const other of users) {
      if (other !== user) await user.next(advertOf(other.userId, other.serverId));
    }
  }
}

/** Log lines in which a server refused a frame or a connection from another server. */
function refusals(nodes: readonly ServerNode[]): string[] {
  return nodes.flatMap((node) =>
    node.logLines().filter((line) => / refused: /.test(line)).map((line) =>
      `${shortId(node.serverId)}: ${line}`
    )
  );
}

Deno.test("a three-server mesh relays presence, DMs, the public channel and files", async (t) => {
  await using mesh = await startMesh(3);
  const [a, b, c] = mesh.nodes as [ServerNode, ServerNode, ServerNode];
  await using alice = await userOn(a, "user0", "alice");
  await using bob = await userOn(b, "user1", "bob");
  await using carol = await userOn(c, "user2", "carol");
  const users = [alice, bob, carol];

  await t.step("every server is linked to the two others", () => {
    for (const node of mesh.nodes) {
      const peers = linkedPeers(node.logLines());
      const others = mesh.nodes.filter((n) => n !== node).map((n) => shortId(n.serverId));
      assert.deepEqual(sorted([...peers]), sorted(others));
    }
  });

  await t.step("each user is told about the users on the other servers", async () => {
    for (const user of users) {
      for (const other of users) {
        if (other === user) continue;
        const advert = await user.next(advertOf(other.userId));
        assert.equal(advert.from, user.serverId, "presence is re-issued by the local server");
        assert.equal(advert.payload["server_id"], other.serverId);
        assert.deepEqual(advert.payload["meta"], {
          display_name: other.displayName,
          pubkey: other.pubkey,
        });
      }
    }
  });

  await t.step("LIST_RESPONSE on every server lists every user in the mesh", async () => {
    const everyone = sorted(users.map((u) => u.userId));
    for (const user of users) assert.deepEqual(await listUsers(user), everyone);
  });

  await t.step("DMs arrive in every direction with the original ts and content_sig", async () => {
    await assertAllChat(users, "mesh");
  });

  await t.step(
    "a per-recipient MSG_PUBLIC_CHANNEL reaches members on other servers once",
    async () => {
      const ts = Date.now();
      const sent = new Map<RawUser, string>();
      for (const member of [bob, carol]) {
        const ciphertext = await encryptText(
          member.keys.publicKey,
          `hi all (${member.displayName})`,
        );
        sent.set(member, ciphertext);
        await alice.sendPublic(member.userId, ciphertext, { ts, groupId: "public" });
      }
      for (const member of [bob, carol]) {
        const frame = await member.next("MSG_PUBLIC_CHANNEL");
        assert.equal(frame.from, alice.userId);
        assert.equal(frame.to, member.userId);
        assert.equal(frame.ts, ts);
        assert.equal(frame.payload["sender"], alice.userId);
        assert.equal(frame.payload["orig_ts"], ts);
        assert.equal(frame.payload["group_id"], "public");
        assert.equal(frame.payload["ciphertext"], sent.get(member));
        assert.equal(await member.decrypt(frame), `hi all (${member.displayName})`);
        const variant = await verifyContent(
          await importPublicKeyText(String(frame.payload["sender_pub"])),
          String(frame.payload["content_sig"]),
          { ciphertext: sent.get(member)!, from: alice.userId },
          [ts],
        );
        assert.equal(variant, "A");
      }
      await settle(bob, [alice, carol]);
      await settle(carol, [alice, bob]);
      for (const member of [bob, carol]) {
        assert.deepEqual(member.pending().filter((f) => f.type === "MSG_PUBLIC_CHANNEL"), []);
      }
    },
  );

  await t.step(
    "a plaintext MSG_PUBLIC_CHANNEL to public reaches every other user once",
    async () => {
      const ts = Date.now();
      const ciphertext = encodeBase64Url(new TextEncoder().encode("plain hello, mesh"));
      await alice.sendPublic("public", ciphertext, { ts });
      const isIt = (f: Envelope) =>
        f.type === "MSG_PUBLIC_CHANNEL" && f.payload["ciphertext"] === ciphertext;
      for (const member of [bob, carol]) {
        const frame = await member.next(isIt);
        assert.equal(frame.from, alice.userId);
        assert.equal(frame.to, "public");
        assert.equal(frame.ts, ts);
        assert.equal(frame.payload["sender"], alice.userId);
      }
      // Copies relayed through the third server would have arrived before these markers.
      await settle(bob, [alice, carol]);
      await settle(carol, [alice, bob]);
      await settle(alice, [bob, carol]);
      for (const user of users) {
        assert.deepEqual(user.pending().filter(isIt).map((f) => f.from), [], user.displayName);
      }
    },
  );

  await t.step("a file sent to a user on another server arrives intact", async () => {
    const bytes = crypto.getRandomValues(new Uint8Array(2000));
    const { fileId, sha256, chunks } = await alice.sendFile(carol, { name: "mesh.bin", bytes });
    const ofFile = (type: string) => (f: Envelope) =>
      f.type === type && f.payload["file_id"] === fileId;
    const start = await carol.next(ofFile("FILE_START"));
    assert.equal(start.payload["name"], "mesh.bin");
    assert.equal(start.payload["size"], bytes.length);
    assert.equal(start.payload["sha256"], sha256);
    assert.equal(start.payload["sender"], alice.userId);
    const parts: Envelope[] = [];
    for (let i = 0; i < chunks; i++) parts.push(await carol.next(ofFile("FILE_CHUNK")));
    await carol.next(ofFile("FILE_END"));
    parts.sort((x, y) => (x.payload["index"] as number) - (y.payload["index"] as number));
    assert.deepEqual(parts.map((p) => p.payload["index"]), [...Array(chunks).keys()]);
    const plain = await Promise.all(
      parts.map((p) => decryptBlock(carol.keys.privateKey, String(p.payload["ciphertext"]))),
    );
    const whole = new Uint8Array(plain.reduce((n, p) => n + p.length, 0));
    plain.reduce((offset, p) => (whole.set(p, offset), offset + p.length), 0);
    assert.deepEqual(whole, bytes);
  });

  await t.step(
    "a server joining later learns who is online, and the others learn its users",
    async () => {
      const d = await mesh.join("server3");
      await using dave = await userOn(d, "user3", "dave");
      for (const other of users) {
        const advert = await dave.next(advertOf(other.userId));
        assert.equal(advert.payload["server_id"], other.serverId);
        assert.equal((advert.payload["meta"] as Record<string, unknown>)["pubkey"], other.pubkey);
      }
      for (const user of users) {
        const advert = await user.next(advertOf(dave.userId));
        assert.equal(advert.payload["server_id"], d.serverId);
      }
      const everyone = sorted([...users, dave].map((u) => u.userId));
      for (const user of [...users, dave]) assert.deepEqual(await listUsers(user), everyone);
      await assertAllChat([dave, alice, carol], "late join");
      await dave.close();
      for (const user of users) await user.next(removeOf(dave.userId));
    },
  );

  await t.step("a user who leaves is removed on every server", async () => {
    await carol.close();
    for (const user of [alice, bob]) {
      const remove = await user.next(removeOf(carol.userId));
      assert.equal(remove.payload["server_id"], c.serverId);
      assert.deepEqual(await listUsers(user), sorted([alice.userId, bob.userId]));
    }
  });

  await t.step("every frame the users got verifies with their own server's key", async () => {
    for (const user of users) await user.verifyAllFromServer();
  });

  await t.step("honest servers never refuse each other's frames", () => {
    assert.deepEqual(refusals(mesh.nodes), []);
  });
});

Deno.test("mesh links recover from a killed server and from a hung server", async (t) => {
  await using mesh = await startMesh(3, { args: FAST_HEARTBEAT_ARGS });
  const [a, b, c] = mesh.nodes as [ServerNode, ServerNode, ServerNode];
  await using alice = await userOn(a, "user0", "alice");
  await using bob = await userOn(b, "user1", "bob");
  let carol = await userOn(c, "user2", "carol");
  try {
    await awaitPresence([alice, bob, carol]);

    await t.step("a server killed with SIGKILL: its users vanish on the others", async () => {
      const status = await c.kill("SIGKILL");
      assert.equal(status.signal, "SIGKILL");
      for (const user of [alice, bob]) {
        await user.next(removeOf(carol.userId), 5000);
        assert.deepEqual(await listUsers(user), sorted([alice.userId, bob.userId]));
      }
      await assertDm(alice, bob, "still here without C");
      // carol's connection died with her server.
      await carol.closed;
    });

    await t.step(
      "restarted on the same port and data dir, it rejoins with the same id and users chat again",
      async () => {
        const id = c.serverId;
        const port = c.port;
        await c.restart({ samePort: true });
        assert.equal(c.serverId, id);
        assert.equal(c.port, port);
        await mesh.waitFullyLinked();
        await carol.close().catch(() => {});
        carol = await userOn(c, "user2", "carol");
        for (const user of [alice, bob]) {
          await user.next(advertOf(carol.userId, c.serverId));
        }
        for (const other of [alice, bob]) await carol.next(advertOf(other.userId));
        await assertAllChat([alice, bob, carol], "restart");
      },
    );

    let resumed = 0;
    await t.step("a hung server (SIGSTOP) is declared dead by heartbeat timeout", async () => {
      const mark = { a: a.logLines().length, c: c.logLines().length };
      b.signal("SIGSTOP");
      try {
        for (const user of [alice, carol]) {
          await user.next(removeOf(bob.userId), 6000);
          assert.deepEqual(await listUsers(user), sorted([alice.userId, carol.userId]));
        }
        const silent = new RegExp(`server ${shortId(b.serverId)} silent for .*link dead`);
        await a.waitForLog(silent, { from: mark.a });
        await c.waitForLog(silent, { from: mark.c });
        await assertDm(alice, carol, "still here without B");
      } finally {
        resumed = b.logLines().length;
        b.signal("SIGCONT");
      }
    });

    await t.step("once resumed, it relinks and its user is back", async () => {
      // New links, made after the resume, as B's log shows them.
      await b.waitForLogs((lines) => {
        const peers = linkedPeers(lines.slice(resumed));
        return peers.has(shortId(a.serverId)) && peers.has(shortId(c.serverId));
      }, "B to link to A and C again after SIGCONT");
      for (const user of [alice, carol]) await user.next(advertOf(bob.userId, b.serverId));
      // B learns (again) who is on A and C from their catch-up adverts.
      const everyone = sorted([alice.userId, bob.userId, carol.userId]);
      await eventually(async () => {
        const listed = await listUsers(bob);
        return listed.join() === everyone.join() ? listed : undefined;
      }, { what: "B to list alice, bob and carol again" });
      await assertAllChat([alice, bob, carol], "resume");
    });
  } finally {
    await carol.close().catch(() => {});
  }
});

Deno.test("bootstrap skips an unreachable introducer and refuses one with the wrong key", async (t) => {
  await using mesh = await startMesh(1);
  const [a] = mesh.nodes as [ServerNode];
  // A port where nothing listens: bind one, note it, let it go.
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const deadPort = listener.addr.port;
  listener.close();

  await t.step("an unreachable first entry is skipped and the next one is used", async () => {
    await using b = await startMeshNode({
      root: mesh.root,
      name: "b",
      key: "server1",
      bootstrap: [
        { host: "127.0.0.1", port: deadPort, pubkey: await fixturePubkey("server3") },
        entryOf(a),
      ],
    });
    await b.waitForLog(new RegExp(`introducer 127\\.0\\.0\\.1:${deadPort} unreachable`));
    await b.waitForLog(new RegExp(`joined the mesh through ${shortId(a.serverId)}`));
    await waitLinked(b, [a]);
    await using alice = await userOn(a, "user0", "alice");
    await using bob = await userOn(b, "user1", "bob");
    await awaitPresence([alice, bob]);
    await assertAllChat([alice, bob], "second introducer");
  });

  await t.step(
    "an introducer whose key is not the pinned one is refused and not linked",
    async () => {
      const wrong = { ...entryOf(a), pubkey: await fixturePubkey("server3") };
      const aMark = a.logLines().length;
      await using c = await startMeshNode({
        root: mesh.root,
        name: "c",
        key: "server2",
        bootstrap: [wrong],
      });
      await c.waitForLog(/presented a key that is not the pinned one/);
      // The introducer saw the join, and re-dials a known server whose link closed: await the
      // outcome of that dial at c (linked, or refused).
      await a.waitForLog(new RegExp(`link to server ${shortId(c.serverId)} closed`), {
        from: aMark,
      });
      const outcome = await c.waitForLog(
        new RegExp(`linked to server ${shortId(a.serverId)}|server connection from .* refused`),
      );
      assert.doesNotMatch(
        outcome,
        /linked to server/,
        `c linked to a server its bootstrap pins to another key:\n${c.logLines().join("\n")}`,
      );
      assert.deepEqual([...linkedPeers(c.logLines())], []);
    },
  );
});

Deno.test({
  name: "socp clients on different servers use /tell, /all and /file across the mesh",
  async fn(t) {
    const dir = await Deno.makeTempDir({ prefix: "socp_test_mesh_clients_" });
    try {
      await using mesh = await startMesh(3);
      const [a, b, c] = mesh.nodes as [ServerNode, ServerNode, ServerNode];
      const aliceConfig = await writeClientConfig(dir, "alice", "user0");
      const bobConfig = await writeClientConfig(dir, "bob", "user1");
      const carolConfig = await writeClientConfig(dir, "carol", "user2");
      await using alice = await readyClient(a.url, aliceConfig.path);
      await using bob = await readyClient(b.url, bobConfig.path);
      await using carol = await readyClient(c.url, carolConfig.path);
      for (
        const [client, others] of [
          [alice, [bobConfig, carolConfig]],
          [bob, [aliceConfig, carolConfig]],
          [carol, [aliceConfig, bobConfig]],
        ] as const
      ) {
        for (const other of others) await client.waitFor(onlineEvent(other));
      }

      await t.step("/list on each client lists the users of all three servers", async () => {
        const everyone = sorted([aliceConfig, bobConfig, carolConfig].map((u) => u.userId));
        for (const client of [alice, bob, carol]) {
          await client.line("/list");
          const list = await client.waitFor("list");
          const ids = (list.users as { user_id: string }[]).map((u) => u.user_id);
          assert.deepEqual(sorted(ids), everyone);
        }
      });

      await t.step("/tell reaches a user on another server, verified", async () => {
        await alice.line("/tell carol hello carol, from server A ✓");
        const dm = await carol.waitFor("dm");
        assert.equal(dm.from, aliceConfig.userId);
        assert.equal(dm.text, "hello carol, from server A ✓");
        assert.equal(dm.verified, true);
        await carol.line("/tell bob and hello bob, from server C");
        const back = await bob.waitFor("dm");
        assert.equal(back.from, carolConfig.userId);
        assert.equal(back.text, "and hello bob, from server C");
        assert.equal(back.verified, true);
      });

      await t.step("/all reaches the users on both other servers", async () => {
        await bob.line("/all hello mesh");
        for (const client of [alice, carol]) {
          const all = await client.waitFor("all");
          assert.equal(all.from, bobConfig.userId);
          assert.equal(all.text, "hello mesh");
          assert.equal(all.verified, true);
        }
      });

      await t.step("/file reaches a user on another server intact", async () => {
        const bytes = crypto.getRandomValues(new Uint8Array(3000));
        const path = join(dir, "across.bin");
        await Deno.writeFile(path, bytes);
        await carol.line(`/file alice ${path}`);
        const file = await alice.waitFor("file", 2 * TIMEOUTS.event);
        assert.equal(file.ok, true, JSON.stringify(file));
        assert.equal(file.from, carolConfig.userId);
        assert.equal(file.size, 3000);
        assert.deepEqual(await Deno.readFile(String(file.path)), bytes);
      });
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});
