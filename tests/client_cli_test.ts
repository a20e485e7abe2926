/**
 * Integration tests of the terminal client as real processes (`main.ts client --json`) talking
 * through a real `socp server`: DMs by display name, the public channel, files, `/list`, errors
 * and exit codes. Configs are written with fixture keys, so no client generates an RSA key.
 *
 * @module
 */

import assert from "node:assert/strict";
import { join } from "node:path";
import {
  type ClientConfigFile,
  type ClientNode,
  onlineEvent,
  readyClient,
  startClient,
  startServer,
  TIMEOUTS,
  writeClientConfig,
} from "./support/mod.ts";

/** Starts a client for `config` and checks that its `ready` event names that identity. */
function readyClientAs(url: string, config: ClientConfigFile): Promise<ClientNode> {
  return readyClient(url, config.path, {
    onReady(event) {
      assert.equal(event.user_id, config.userId);
      assert.equal(event.display_name, config.displayName);
      assert.equal(event.pinned, true);
    },
  });
}

Deno.test({
  name: "socp client sends DMs, public messages and files between real processes",
  async fn(t) {
    const dir = await Deno.makeTempDir({ prefix: "socp_test_clients_" });
    try {
      await using server = await startServer();
      const aliceConfig = await writeClientConfig(dir, "alice", "user0");
      const bobConfig = await writeClientConfig(dir, "bob", "user1");
      const carolConfig = await writeClientConfig(dir, "carol", "user2");

      await using alice = await readyClientAs(server.url, aliceConfig);
      await using bob = await readyClientAs(server.url, bobConfig);
      await alice.waitFor(onlineEvent(bobConfig));
      await using carol = await readyClientAs(server.url, carolConfig);
      await alice.waitFor(onlineEvent(carolConfig));
      await bob.waitFor(onlineEvent(carolConfig));

      await t.step("/list lists every online user", async () => {
        await alice.line("/list");
        const list = await alice.waitFor("list");
        const users = list.users as { user_id: string; display_name: string; self: boolean }[];
        const byId = new Map(users.map((u) => [u.user_id, u]));
        assert.deepEqual(
          [...byId.keys()].sort(),
          [aliceConfig.userId, bobConfig.userId, carolConfig.userId].sort(),
        );
        assert.equal(byId.get(aliceConfig.userId)?.self, true);
        assert.equal(byId.get(bobConfig.userId)?.display_name, "bob");
        assert.equal(byId.get(bobConfig.userId)?.self, false);
      });

      await t.step("/tell by display name arrives decrypted and verified", async () => {
        await alice.line("/tell bob hello bob, über-secret ✓");
        const sent = await alice.waitFor("sent");
        assert.equal(sent.kind, "dm");
        assert.equal(sent.to, bobConfig.userId);
        const dm = await bob.waitFor("dm");
        assert.equal(dm.from, aliceConfig.userId);
        assert.equal(dm.from_name, "alice");
        assert.equal(dm.text, "hello bob, über-secret ✓");
        assert.equal(dm.verified, true);
        assert.equal(dm.trusted, true);
      });

      await t.step("a long /tell is split and arrives whole", async () => {
        const long = "0123456789".repeat(100);
        await bob.line(`/tell alice ${long}`);
        let text = "";
        while (text.length < long.length) {
          const dm = await alice.waitFor("dm");
          assert.equal(dm.from, bobConfig.userId);
          assert.equal(dm.verified, true);
          text += String(dm.text);
        }
        assert.equal(text, long);
      });

      await t.step("/all reaches both other clients", async () => {
        await alice.line("/all hello everyone");
        for (const client of [bob, carol]) {
          const all = await client.waitFor("all");
          assert.equal(all.from, aliceConfig.userId);
          assert.equal(all.from_name, "alice");
          assert.equal(all.text, "hello everyone");
          assert.equal(all.verified, true);
          assert.equal(all.encrypted, true);
        }
      });

      await t.step("/file arrives intact at the reported path", async () => {
        const bytes = crypto.getRandomValues(new Uint8Array(5000));
        const path = join(dir, "report.bin");
        await Deno.writeFile(path, bytes);
        await alice.line(`/file bob ${path}`);
        const file = await bob.waitFor("file", 2 * TIMEOUTS.event);
        assert.equal(file.ok, true, JSON.stringify(file));
        assert.equal(file.from, aliceConfig.userId);
        assert.equal(file.name, "report.bin");
        assert.equal(file.size, 5000);
        assert.equal(typeof file.path, "string");
        assert.deepEqual(await Deno.readFile(String(file.path)), bytes);
      });

      await t.step("/tell to an unknown user prints an error", async () => {
        await alice.line("/tell nobody-by-that-name hi");
        const error = await alice.waitFor("error");
        assert.match(String(error.detail), /nobody-by-that-name/);
        assert.equal(error.source, "client");
      });

      await t.step("/quit exits with code 0 and the others see the user leave", async () => {
        await carol.line("/quit");
        const status = await carol.status;
        assert.equal(status.code, 0, carol.stderrText());
        const gone = await alice.waitFor((e) =>
          e.event === "presence" && e.user_id === carolConfig.userId && e.online === false
        );
        assert.equal(gone.display_name, "carol");
      });

      await t.step("end of input exits with code 0", async () => {
        const status = await bob.close();
        assert.equal(status.code, 0, bob.stderrText());
      });
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});

Deno.test({
  name: "socp client reports NAME_IN_USE when the same config runs twice",
  async fn() {
    const dir = await Deno.makeTempDir({ prefix: "socp_test_clients_" });
    try {
      await using server = await startServer();
      const aliceConfig = await writeClientConfig(dir, "alice", "user0");
      const bobConfig = await writeClientConfig(dir, "bob", "user1");
      await using alice = await readyClientAs(server.url, aliceConfig);
      await using bob = await readyClientAs(server.url, bobConfig);
      await alice.waitFor(onlineEvent(bobConfig));

      await using twin = await startClient(server.url, aliceConfig.path);
      const error = await twin.waitFor("error");
      assert.equal(error.code, "NAME_IN_USE");
      assert.equal(error.source, "server");
      const status = await twin.status;
      assert.equal(status.code, 1);

      // The first session is undisturbed.
      await bob.line("/tell alice are you still there?");
      const dm = await alice.waitFor("dm");
      assert.equal(dm.text, "are you still there?");
      assert.equal(dm.verified, true);
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});
