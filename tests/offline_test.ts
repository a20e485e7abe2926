/**
 * Integration tests of offline delivery (docs/protocol.md, "Offline delivery") with real
 * `socp server` and `socp client` processes: DMs and files to an offline account are queued
 * (the sender is told), survive restarts of every server, and arrive in order and exactly once
 * at the next login on any server; queue caps; no queue for unknown users.
 *
 * @module
 */

import assert from "node:assert/strict";
import { join } from "node:path";
import {
  type ClientEvent,
  connectUser,
  delay,
  errorEvent,
  isAck,
  loginUser,
  readyClient,
  registerUser,
  startMesh,
  startServer,
  TIMEOUTS,
  waitForAccounts,
  withTempDir,
  writeClientConfig,
} from "./support/mod.ts";

function dmTexts(events: ClientEvent[]): string[] {
  return events.filter((e) => e.event === "dm").map((e) => String(e.text));
}

Deno.test({
  name:
    "DMs and a file to an offline account are queued, survive restarts of both servers, and arrive once, in order, at the next login elsewhere",
  async fn() {
    await withTempDir("socp_test_offline_", async (dir) => {
      await using mesh = await startMesh(2);
      const [a, b] = mesh.nodes as [typeof mesh.nodes[0], typeof mesh.nodes[0]];

      // olga has an account and is offline.
      const olga = await connectUser(a.url, "user3", { displayName: "Olga" });
      assert.ok(isAck("REGISTER_OK")(await registerUser(olga, "olga", "pw")));
      await olga.close();
      await waitForAccounts(b, "olga", (r) => r.length === 1, "olga on B");

      // sam (on A) writes to her by account name; each /tell and /file says it was queued.
      const sam = await writeClientConfig(dir, "sam", "user4");
      const payload = new Uint8Array(3000).map((_, i) => (i * 7) % 256);
      const path = join(dir, "report.bin");
      await Deno.writeFile(path, payload);
      {
        await using client = await readyClient(a.url, sam.path);
        for (const text of ["one", "two", "three"]) {
          await client.line(`/tell olga ${text}`);
          const sent = await client.waitFor("sent");
          assert.equal(sent.to, olga.userId);
          const queued = await client.waitFor("queued");
          assert.deepEqual(queued, {
            event: "queued",
            kind: "dm",
            to: olga.userId,
            to_name: "Olga",
          });
        }
        await client.line(`/file olga ${path}`);
        await client.waitFor((e) => e.event === "sent" && e.kind === "file");
        const queued = await client.waitFor("queued");
        assert.equal(queued.kind, "file");
        assert.equal(queued.name, "report.bin");
        assert.equal(client.events().filter((e) => e.event === "queued").length, 4);
        assert.equal(client.events().filter((e) => e.event === "error").length, 0);
        assert.equal((await client.close()).code, 0);
      }

      // Both servers restart (same ports, same data); the queue is on disk.
      await a.restart({ samePort: true });
      await b.restart({ samePort: true });
      await mesh.waitFullyLinked();

      // olga logs in on B from a new machine: three DMs in order, then the file, once.
      const fresh = join(dir, "olga-laptop", "olga.json");
      {
        await using client = await readyClient(b.url, fresh, {
          args: ["--login", "olga"],
          passwords: ["pw"],
        });
        const file = await client.waitFor("file", 2 * TIMEOUTS.event);
        assert.equal(file.ok, true, JSON.stringify(file));
        assert.equal(file.name, "report.bin");
        assert.equal(file.from, sam.userId);
        assert.deepEqual(await Deno.readFile(String(file.path)), payload);
        const events = client.events();
        assert.deepEqual(dmTexts(events), ["one", "two", "three"]);
        const dms = events.filter((e) => e.event === "dm");
        assert.ok(dms.every((e) => e.from === sam.userId && e.verified === true));
        assert.ok(
          events.indexOf(dms.at(-1)!) < events.indexOf(file),
          "the file was sent after the DMs and arrives after them",
        );
        await delay(1000); // a duplicate would arrive right behind the originals
        assert.deepEqual(dmTexts(client.events()), ["one", "two", "three"]);
        assert.equal(client.events().filter((e) => e.event === "file").length, 1);
        assert.equal((await client.close()).code, 0);
      }

      // The next login (on A this time) brings nothing old, only what is new.
      {
        await using client = await readyClient(a.url, fresh, {
          args: ["--login", "olga"],
          passwords: ["pw"],
        });
        await using samRaw = await connectUser(a.url, "user4", { userId: sam.userId });
        await samRaw.dm(olga, "four");
        const dm = await client.waitFor("dm");
        assert.equal(dm.text, "four");
        await delay(500);
        assert.deepEqual(dmTexts(client.events()), ["four"]);
        assert.equal(client.events().filter((e) => e.event === "file").length, 0);
      }
    });
  },
});

Deno.test({
  name: "a full offline queue refuses more with QUEUE_LIMIT, shown to the sender as an error",
  async fn() {
    await withTempDir("socp_test_offline_", async (dir) => {
      await using server = await startServer({ args: ["--queue-max", "2"] });
      const pat = await connectUser(server.url, "user5");
      assert.ok(isAck("REGISTER_OK")(await registerUser(pat, "pat", "pw")));
      await pat.close();

      const me = await writeClientConfig(dir, "quinn", "user6");
      await using client = await readyClient(server.url, me.path);
      for (const text of ["first", "second"]) {
        await client.line(`/tell pat ${text}`);
        await client.waitFor("queued");
      }
      await client.line("/tell pat third");
      const full = await client.waitFor(errorEvent("QUEUE_LIMIT"));
      assert.equal(full.source, "server");
      assert.match(String(full.detail), /is offline and already has 2 messages waiting/);
      await client.line("/list");
      await client.waitFor("list");

      await using back = await loginUser(server.url, "pat", "pw", {
        serverPub: server.pubkey,
        key: "user5",
        userId: pat.userId,
      });
      assert.equal((await back.nextDm(me.userId)).text, "first");
      assert.equal((await back.nextDm(me.userId)).text, "second");
      await back.expectNone("USER_DELIVER", 500);
    });
  },
});

Deno.test({
  name: "ACK QUEUED names the offline user; a DM to an unknown user is refused, not queued",
  async fn() {
    await using server = await startServer();
    const rita = await connectUser(server.url, "user0");
    assert.ok(isAck("REGISTER_OK")(await registerUser(rita, "rita", "pw")));
    await rita.close();
    await using sender = await connectUser(server.url, "user1");
    await sender.dm(rita, "later");
    const ack = await sender.next(isAck("QUEUED"));
    assert.equal(ack.payload["user_id"], rita.userId);

    const nobody = {
      userId: crypto.randomUUID(),
      keys: { publicKey: rita.keys.publicKey },
    };
    await sender.dm(nobody, "to nobody");
    const refused = await sender.nextError("USER_NOT_FOUND");
    assert.match(String(refused.payload["detail"]), new RegExp(nobody.userId));
    assert.equal(sender.pending().filter(isAck("QUEUED")).length, 0);

    // Ciphertext only: the queued frame is delivered exactly as sent (the content signature
    // still verifies for the recipient).
    await using back = await loginUser(server.url, "rita", "pw", {
      serverPub: server.pubkey,
      key: "user0",
      userId: rita.userId,
    });
    const dm = await back.nextDm(sender);
    assert.equal(dm.text, "later");
  },
});
